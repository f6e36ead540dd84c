import Build
import Testing

@Test func baseImageRegistriesSkipScratchStagesAndArgs() {
    let dockerfile = """
        # syntax=docker/dockerfile:1
        ARG BASE=ignored.example.com/x
        FROM --platform=$BUILDPLATFORM 123456789012.dkr.ecr.eu-west-1.amazonaws.com/base/golang:1.23 AS build
        RUN go build
        from build as test
        FROM ${BASE}
        FROM scratch
        FROM \\
          registry.example.com:5000/team/runtime@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        FROM debian:12
        FROM 123456789012.dkr.ecr.eu-west-1.amazonaws.com/base/distroless
        COPY --from=build /app /app
        """
    #expect(BaseImages.registries(dockerfile: dockerfile) == [
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "registry.example.com:5000", "docker.io",
    ])
}

@Test func baseImageRegistriesOfACRLFDockerfileWithCommentsInAContinuation() {
    let dockerfile = "# syntax=docker/dockerfile:1\r\nFROM \\\r\n# the runtime\r\n\r\n  quay.io/team/base:1 AS base\r\nFROM base\r\n"
    #expect(BaseImages.registries(dockerfile: dockerfile) == ["quay.io"])
}

@Test func dockerfileWithoutFromNamesNoRegistry() {
    #expect(BaseImages.registries(dockerfile: "").isEmpty)
    #expect(BaseImages.registries(dockerfile: "FROM scratch\nCOPY a /a\n").isEmpty)
}
