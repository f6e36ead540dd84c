import Foundation
import Inventory
import OCI
import Testing
@testable import Build

/// Preflight verdicts from probe output (the facts a host reports), without a host.
@Suite struct PreflightJudgement {
    let host = HostSpec(name: "g1", address: "10.0.0.1", engine: .buildah, platforms: [Platform(architecture: "arm64")])

    func judge(_ probe: String) -> HostCheck {
        var r = HostCheck(name: host.name, address: "10.0.0.1:22", platforms: ["linux/arm64"], status: .ok, engine: "buildah", qemuHandlers: [])
        Preflight.judge(Probe(probe), host: host, into: &r)
        return r
    }

    @Test func nativeHostWithEngineAndDiskIsOK() {
        let r = judge("arch=aarch64\nengine=buildah version 1.28.2\ndisk=104857600\n")
        #expect(r.status == .ok)
        #expect(r.usable)
        #expect(r.freeDiskBytes == Int64(104_857_600) * 1024)
    }

    @Test func qemuHandlersGiveAWarningNotARefusal() {
        let r = judge("arch=aarch64\nengine=buildah version 1.28.2\ndisk=104857600\nbinfmt=qemu-x86_64\n")
        #expect(r.status == .warning)
        #expect(r.usable)
        #expect(r.qemuHandlers == ["qemu-x86_64"])
        #expect(r.reason?.contains("QEMU") == true)
    }

    @Test func x86HostDeclaredArmIsRefusedAsEmulation() {
        let r = judge("arch=x86_64\nengine=buildah version 1.28.2\ndisk=104857600\n")
        #expect(r.status == .archMismatch)
        #expect(!r.usable)
        #expect(r.reason?.contains("no emulation") == true)
    }

    @Test func missingEngineAndFullDiskAreBothReported() {
        let r = judge("arch=aarch64\nengine-error=sh: buildah: not found\ndisk=1024\n")
        #expect(r.status == .noEngine)
        #expect(r.reason?.contains("not found") == true)
        #expect(r.reason?.contains("MiB free") == true)
    }

    @Test func probeScriptQuotesTheWorkDir() {
        var h = host
        h.workDir = "/var/tmp/it's $(here)"
        #expect(Preflight.probeScript(for: h).contains(#"d='/var/tmp/it'\''s $(here)'"#))
    }
}
