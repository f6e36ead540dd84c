import Testing
@testable import Build

/// One dockerignore case: the patterns, a path, and whether docker leaves the path out of the context.
struct IgnoreCase: CustomTestStringConvertible, Sendable {
    let patterns: [String]
    let path: String
    let excluded: Bool
    var testDescription: String { "\(patterns) \(path) → \(excluded ? "excluded" : "sent")" }
}

private let cases: [IgnoreCase] = [
    // `**` crosses folders, including none at all.
    .init(patterns: ["**/*.go"], path: "main.go", excluded: true),
    .init(patterns: ["**/*.go"], path: "a/b/c.go", excluded: true),
    .init(patterns: ["**/*.go"], path: "a/b/c.golang", excluded: false),
    .init(patterns: ["a/**/b"], path: "a/b", excluded: true),
    .init(patterns: ["a/**/b"], path: "a/x/y/b", excluded: true),
    .init(patterns: ["a/**/b"], path: "a/xb", excluded: false),
    .init(patterns: ["**"], path: "any/thing", excluded: true),
    .init(patterns: ["foo/**"], path: "foo/x/y", excluded: true),
    .init(patterns: ["foo/**"], path: "foo", excluded: false),
    .init(patterns: ["**/node_modules"], path: "src/node_modules/x.js", excluded: true),
    // `*` and `?` stop at `/`; patterns are anchored at the context root.
    .init(patterns: ["*.go"], path: "main.go", excluded: true),
    .init(patterns: ["*.go"], path: "cmd/main.go", excluded: false),
    .init(patterns: ["*/*.txt"], path: "a/b.txt", excluded: true),
    .init(patterns: ["*/*.txt"], path: "a/b/c.txt", excluded: false),
    .init(patterns: ["a?c"], path: "abc", excluded: true),
    .init(patterns: ["a?c"], path: "a/c", excluded: false),
    .init(patterns: ["node_modules"], path: "src/node_modules/x.js", excluded: false),
    // A folder match covers what is below it; `!` re-includes under an excluded folder.
    .init(patterns: ["node_modules"], path: "node_modules/a/b.js", excluded: true),
    .init(patterns: ["dir", "!dir/keep.txt"], path: "dir/keep.txt", excluded: false),
    .init(patterns: ["dir", "!dir/keep.txt"], path: "dir/other.txt", excluded: true),
    .init(patterns: ["dir", "!dir/sub", "dir/sub/x"], path: "dir/sub/y", excluded: false),
    .init(patterns: ["dir", "!dir/sub", "dir/sub/x"], path: "dir/sub/x", excluded: true),
    .init(patterns: ["*", "!**/*.md"], path: "docs/a/readme.md", excluded: false),
    // Leading `/`, trailing `/`, cleaning, surrounding spaces.
    .init(patterns: ["/foo"], path: "foo", excluded: true),
    .init(patterns: ["/foo"], path: "a/foo", excluded: false),
    .init(patterns: ["dir/"], path: "dir", excluded: true),
    .init(patterns: ["dir/"], path: "dir/x", excluded: true),
    .init(patterns: ["dir/"], path: "dirx", excluded: false),
    .init(patterns: ["./foo/../bar"], path: "bar", excluded: true),
    .init(patterns: ["  foo  "], path: "foo", excluded: true),
    .init(patterns: ["! foo"], path: "foo", excluded: false),
    // Character classes: ranges, `^` negation; `!` inside a class is a literal, as in Go and moby.
    .init(patterns: ["[a-c].txt"], path: "b.txt", excluded: true),
    .init(patterns: ["[a-c].txt"], path: "d.txt", excluded: false),
    .init(patterns: ["[^a].txt"], path: "a.txt", excluded: false),
    .init(patterns: ["[^a].txt"], path: "b.txt", excluded: true),
    .init(patterns: ["[!a].txt"], path: "!.txt", excluded: true),
    .init(patterns: ["[!a].txt"], path: "b.txt", excluded: false),
    .init(patterns: ["[\\]x].txt"], path: "].txt", excluded: true),
    // Escapes make wildcards literal.
    .init(patterns: ["\\*.txt"], path: "*.txt", excluded: true),
    .init(patterns: ["\\*.txt"], path: "a.txt", excluded: false),
    .init(patterns: ["foo\\[1\\]"], path: "foo[1]", excluded: true),
    .init(patterns: ["foo\\[1\\]"], path: "foo1", excluded: false),
    // Regexp metacharacters are plain text.
    .init(patterns: ["a+b(c).txt"], path: "a+b(c).txt", excluded: true),
    .init(patterns: ["a.b"], path: "axb", excluded: false),
    // Last match wins.
    .init(patterns: ["*.md", "!README*.md", "README-secret.md"], path: "README.md", excluded: false),
    .init(patterns: ["*.md", "!README*.md", "README-secret.md"], path: "README-secret.md", excluded: true),
    .init(patterns: ["*.md", "!README*.md", "README-secret.md"], path: "x.md", excluded: true),
    .init(patterns: ["!a", "a"], path: "a", excluded: true),
    .init(patterns: ["a", "!a"], path: "a", excluded: false),
    // moby quirks kept for compatibility: `**foo` is a plain suffix; a negated class matches `/`.
    .init(patterns: ["**foo"], path: "barfoo", excluded: true),
    .init(patterns: ["a[^x]b"], path: "a/b", excluded: true),
]

@Test("dockerignore table gives docker's results", arguments: cases)
func dockerignoreCaseMatchesDocker(_ c: IgnoreCase) throws {
    let rules = try IgnoreRules(patterns: c.patterns)
    #expect(rules.excludes(c.path) == c.excluded)
}

@Test func ignoreFileCommentsAndBlankLinesAreSkippedOnlyInColumnOne() throws {
    let rules = try IgnoreRules(parsing: "\u{FEFF}# comment\n\n  \n#foo\n #bar\nbaz\r\n")
    #expect(rules.patterns.map(\.description) == ["#bar", "baz"])
    #expect(!rules.excludes("#foo"))
    #expect(rules.excludes("#bar"))
    #expect(rules.excludes("baz"))
}

@Test("malformed patterns are rejected like Go's filepath.Match", arguments: ["[", "a[b", "[]", "[^]", "a\\", "[a-]", "!"])
func malformedPatternIsRejected(_ pattern: String) {
    #expect(throws: IgnorePatternError.self) { try IgnorePattern(pattern) }
}

@Test func excludedFolderIsSkippedUnlessALaterReincludeCanReachBelowIt() throws {
    #expect(try !IgnoreRules(patterns: ["node_modules"]).mayReinclude(below: "node_modules"))
    #expect(try !IgnoreRules(patterns: ["node_modules", "!README.md"]).mayReinclude(below: "node_modules"))
    #expect(try !IgnoreRules(patterns: ["!**/*.md", "node_modules"]).mayReinclude(below: "node_modules"))
    #expect(try IgnoreRules(patterns: ["node_modules", "!**/*.md"]).mayReinclude(below: "node_modules"))
    #expect(try IgnoreRules(patterns: ["dir", "!dir/keep"]).mayReinclude(below: "dir"))
    #expect(try !IgnoreRules(patterns: ["dir", "!dir/keep"]).mayReinclude(below: "other"))
    #expect(try IgnoreRules(patterns: ["*", "!*/x"]).mayReinclude(below: "a"))
    #expect(try !IgnoreRules(patterns: ["*", "!*/x"]).mayReinclude(below: "a/b"))
}

@Test func badPatternInIgnoreFileNamesFileAndLine() throws {
    let dir = try TempDir()
    defer { dir.cleanup() }
    let file = try dir.write(".dockerignore", "ok\n# fine\nbad[\n")
    #expect(throws: ContextError.badIgnorePattern(file: file, line: 3, pattern: "bad[", reason: "unclosed character class")) {
        try IgnoreFile.load(file)
    }
}
