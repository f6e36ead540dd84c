// swift-tools-version:6.0
// coordinator: native multi-architecture container builds over SSH, merged into one OCI index.
import PackageDescription

let package = Package(
    name: "coordinator",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "coordinator", targets: ["coordinator"]),
    ],
    targets: [
        // MARK: C libraries (module map + shim only; each imported by exactly one Swift module)

        /// libssh2, imported only by `SSH`.
        .systemLibrary(name: "CLibSSH2", pkgConfig: "libssh2", providers: [.apt(["libssh2-1-dev"])]),
        /// OpenSSL libcrypto (SHA-256, HMAC), imported only by `Support`.
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // MARK: Basics

        /// Shell quoting, digests, exit codes, logging, JSON helpers: no I/O beyond stdio.
        .target(name: "Support", dependencies: ["CCrypto"]),

        // MARK: Model

        /// The inventory file: validation, defaults, platform normalisation.
        .target(name: "Inventory", dependencies: ["OCI", "Support"]),
        /// OCI values: references, digests, descriptors, manifests, index. Pure, no I/O.
        .target(name: "OCI", dependencies: ["Support"]),

        // MARK: Transports

        /// SSH sessions over libssh2: known_hosts, auth, exec streaming, upload.
        .target(name: "SSH", dependencies: ["CLibSSH2", "Support"]),
        /// Distribution API client: auth, credential helpers, retries, merge.
        .target(name: "Registry", dependencies: ["OCI", "Support"]),

        // MARK: Features

        /// Preflight, context packaging, engines, scheduling, publish.
        .target(name: "Build", dependencies: ["Inventory", "SSH", "OCI", "Registry", "Support"]),
        /// Reports: summary tables, JSON metadata.
        .target(name: "Report", dependencies: ["Build", "Support"]),

        // MARK: Commands

        /// Hand-written argument parsing and every command.
        .target(name: "CLI", dependencies: ["Build", "Report", "Inventory", "SSH", "OCI", "Registry", "Support"]),
        /// The executable: calls into CLI, nothing else.
        .executableTarget(name: "coordinator", dependencies: ["CLI"]),

        /// Benchmark driver: exercises library pieces the CLI has no command for (bench/*.sh call it).
        .executableTarget(name: "coordinator-bench", dependencies: ["SSH", "Build", "Support"], path: "bench/driver"),

        // MARK: Test support

        /// Starts real sshd hosts and a real registry for the tests (Deploy/ scripts).
        .target(name: "TestHarness", dependencies: ["Support"], path: "Tests/TestHarness"),

        // MARK: Tests

        .testTarget(name: "SupportTests", dependencies: ["Support", "TestHarness"]),
        .testTarget(name: "InventoryTests", dependencies: ["Inventory", "TestHarness"]),
        .testTarget(name: "OCITests", dependencies: ["OCI"]),
        .testTarget(name: "SSHTests", dependencies: ["SSH", "TestHarness"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "OCI", "TestHarness"]),
        .testTarget(name: "BuildTests", dependencies: ["Build", "TestHarness"]),
        .testTarget(name: "CLITests", dependencies: ["CLI", "TestHarness", "coordinator"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Support", "TestHarness"]),
    ]
)
