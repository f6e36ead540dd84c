import OCI
import Foundation

/// How long and how often to retry temporary failures (408, 429, 5xx, resets).
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    /// The first backoff; doubled each retry.
    public var initialDelay: Double
    /// The largest backoff between two attempts (also caps `Retry-After`).
    public var maxDelay: Double
    /// No retry starts once this many seconds have passed since the first attempt.
    public var maxTotal: Double

    /// A policy.
    public init(maxAttempts: Int = 5, initialDelay: Double = 0.2, maxDelay: Double = 5, maxTotal: Double = 30) {
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxTotal = maxTotal
    }

    /// No retries at all.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The wait before attempt `attempt + 1` (attempt counts from 1): `Retry-After` when given (capped),
    /// else exponential backoff with jitter in [d/2, d].
    public func delay(afterAttempt attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter { return min(max(retryAfter, 0), maxDelay) }
        let d = min(maxDelay, initialDelay * pow(2, Double(max(attempt - 1, 0))))
        return Double.random(in: (d / 2)...d)
    }

    /// Parses `Retry-After`: delta seconds or an HTTP date.
    public static func parseRetryAfter(_ value: String?, now: Date = Date()) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value) { return seconds }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: value).map { max(0, $0.timeIntervalSince(now)) }
    }
}

/// What a `RegistryClient` needs to know about the world: insecure hosts, credentials, retries.
public struct RegistrySettings: Sendable {
    /// Registries (host[:port]) to reach over plain HTTP although not on loopback (inventory `registries.<host>.insecure`).
    public var insecureRegistries: Set<String>
    /// Where credentials come from.
    public var credentials: any CredentialSource
    /// Retry policy.
    public var retry: RetryPolicy
    /// Per-request timeout in seconds.
    public var requestTimeout: Double
    /// `User-Agent`.
    public var userAgent: String

    /// Settings; credentials default to docker's config.json and containers' auth.json.
    public init(insecureRegistries: Set<String> = [], credentials: any CredentialSource = DockerCredentials(),
                retry: RetryPolicy = RetryPolicy(), requestTimeout: Double = 60, userAgent: String = "coordinator/0.1") {
        self.insecureRegistries = insecureRegistries
        self.credentials = credentials
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.userAgent = userAgent
    }

    /// Whether `registry` is spoken to over plain HTTP (loopback, or marked insecure).
    public func usesPlainHTTP(_ registry: String) -> Bool {
        Reference.isLoopback(registry: registry) || insecureRegistries.contains(registry)
    }

    /// The base URL of the registry's API, e.g. `https://ghcr.io`.
    public func baseURL(_ registry: String) -> String {
        let host = registry == Reference.dockerHub ? "registry-1.docker.io" : registry
        return (usesPlainHTTP(registry) ? "http://" : "https://") + host
    }
}
