import XCTest
@testable import RedisClient
import RedisProtocol

final class OptionsTests: XCTestCase {
    func resolve(_ f: ConnectionFlags = ConnectionFlags(), env: [String: String] = [:], files: [String: String] = [:], mode: UInt32 = 0o600) throws -> ConnectionOptions {
        try ConnectionOptions.resolve(flags: f, environment: env, readFile: { p in
            guard let t = files[p] else { throw CocoaErrorStub() }
            return t
        }, fileMode: { _ in mode })
    }
    struct CocoaErrorStub: Error {}

    func testDefaults() throws {
        let o = try resolve()
        XCTAssertEqual(o.config.host, "127.0.0.1")
        XCTAssertEqual(o.config.port, 6379)
        XCTAssertNil(o.config.user)
        XCTAssertNil(o.config.password)
        XCTAssertNil(o.config.tls)
        XCTAssertEqual(o.prefix, "app:")
        XCTAssertFalse(o.readOnly)
    }

    func testURLParsing() throws {
        let u = try RedisURL(parsing: "rediss://alice:p%40ss%3Aw@cache.example.com:6380/2")
        XCTAssertTrue(u.tls)
        XCTAssertEqual(u.user, "alice")
        XCTAssertEqual(u.password, "p@ss:w")
        XCTAssertEqual(u.host, "cache.example.com")
        XCTAssertEqual(u.port, 6380)
        XCTAssertEqual(u.db, 2)
        let v = try RedisURL(parsing: "redis://:secret@10.1.2.3")
        XCTAssertNil(v.user)
        XCTAssertEqual(v.password, "secret")
        XCTAssertNil(v.port)
        let w = try RedisURL(parsing: "redis://[::1]:7000")
        XCTAssertEqual(w.host, "::1")
        XCTAssertEqual(w.port, 7000)
        XCTAssertThrowsError(try RedisURL(parsing: "http://x"))
        XCTAssertThrowsError(try RedisURL(parsing: "redis://h:99999"))
        XCTAssertThrowsError(try RedisURL(parsing: "redis://h/abc"))
        // ":@" is not "no password": it is a mistake, not a silent default.
        XCTAssertThrowsError(try RedisURL(parsing: "redis://:@")) { e in
            guard case RedisError.usage(let m) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("the password after ':' is empty"), m)
        }
        XCTAssertThrowsError(try RedisURL(parsing: "redis://ops:@h"))
        XCTAssertNoThrow(try RedisURL(parsing: "redis://ops@h"), "a user without a password is fine")
    }

    func testAPasswordInTheURLIsWarnedAbout() throws {
        var f = ConnectionFlags(); f.url = "redis://:hunter2@h:1"
        let o = try resolve(f)
        XCTAssertEqual(o.warnings.count, 1)
        XCTAssertTrue(o.warnings[0].contains("a password inside --url can be seen by other users"), o.warnings[0])
        XCTAssertFalse(o.warnings[0].contains("hunter2"))
        XCTAssertEqual(try resolve(ConnectionFlags(), env: ["REDIS_URL": "redis://:hunter2@h:1"]).warnings, [], "the application's own variable is not the command line")
    }

    /// A malformed URL may hold its password anywhere: the error never shows any of it.
    func testURLErrorsNeverShowCredentials() throws {
        for (url, secret) in [("redis://:hunter2/x@127.0.0.1:6379", "hunter2"), ("redis://:12/34@host", "34@host"),
                              ("redis://:s3cret@h:notaport", "s3cret"), ("redis://u:pw%zz@h", "pw%zz"), ("rediz://u:topsecret@h", "topsecret"),
                              ("redis://:hunter2", "hunter2")] {
            for flags in [{ var f = ConnectionFlags(); f.url = url; return f }(), ConnectionFlags()] {
                let env = flags.url == nil ? ["REDIS_URL": url] : [:]
                XCTAssertThrowsError(try resolve(flags, env: env), url) { e in
                    let text = "\(e)"
                    XCTAssertFalse(text.contains(secret), "\(url): \(text)")
                    XCTAssertTrue(text.contains("credentials hidden") || text.contains("may hold a password"), text)
                    XCTAssertTrue(text.hasPrefix(flags.url == nil ? "REDIS_URL:" : "--url:"), text)
                }
            }
        }
        XCTAssertThrowsError(try RedisURL(parsing: "redis://:12/34@host")) { XCTAssertTrue("\($0)".contains("%2F"), "\($0)") }
    }

    /// REDIS_URL is the application's; with a server named on the command line it is not used
    /// at all: not its password (for another host), and not its errors.
    func testAnUnusedREDIS_URLIsNotReadAndItsPasswordNeverGoesElsewhere() throws {
        var f = ConnectionFlags()
        f.host = "other"
        let o = try resolve(f, env: ["REDIS_URL": "redis://:hunter2/x@127.0.0.1:6379"])
        XCTAssertEqual(o.config.host, "other")
        let o2 = try resolve(f, env: ["REDIS_URL": "redis://:envpw@envhost:7000"])
        XCTAssertNil(o2.config.password, "REDIS_URL's password is for its own host")
        XCTAssertEqual(o2.config.port, 6379)
        var u = ConnectionFlags()
        u.url = "redis://h:7001"
        XCTAssertEqual(try resolve(u, env: ["REDIS_URL": "redis://:x/y@bad"]).config.port, 7001)
    }

    /// An empty --sni would tell OpenSSL to check no name at all.
    func testAnEmptySNIIsAUsageErrorNotAnUncheckedCertificate() {
        for name in ["", " "] {
            var f = ConnectionFlags()
            f.tls = true
            f.sni = name
            XCTAssertThrowsError(try resolve(f, env: [:])) { e in
                XCTAssertTrue("\(e)".contains("--sni needs a host name"), "\(e)")
                if case RedisError.usage = e {} else { XCTFail("a usage error: \(e)") }
            }
        }
    }

    func testRedactedURLNeverShowsPassword() {
        XCTAssertEqual(RedisURL.redact("redis://u:hunter2@h:1"), "redis://u:***@h:1")
        let u = try? RedisURL(parsing: "redis://u:hunter2@h:1/2")
        XCTAssertEqual("\(u!)", "redis://u:***@h:1/2")
        XCTAssertFalse(String(reflecting: u!).contains("hunter2"))
    }

    func testFlagsWinOverURLWhichWinsOverEnvironment() throws {
        var f = ConnectionFlags()
        f.url = "redis://urluser:urlpw@urlhost:7001/3"
        f.port = 7002
        let env = ["REDIS_URL": "redis://envurl:envpw@envurlhost:7003", "REDIS_HOST": "envhost", "REDIS_PORT": "7004",
                   "REDIS_AUTH_TOKEN": "token", "REDIS_USER": "envuser"]
        let o = try resolve(f, env: env)
        XCTAssertEqual(o.config.host, "urlhost")
        XCTAssertEqual(o.config.port, 7002)
        XCTAssertEqual(o.config.user, "urluser")
        XCTAssertEqual(o.config.password?.value, "urlpw")
        XCTAssertEqual(o.config.db, 3)
    }

    func testREDIS_URLWinsOverSeparateVariables() throws {
        let env = ["REDIS_URL": "redis://envurlhost:7003", "REDIS_HOST": "envhost", "REDIS_PORT": "7004", "REDIS_AUTH_TOKEN": "token"]
        let o = try resolve(env: env)
        XCTAssertEqual(o.config.host, "envurlhost")
        XCTAssertEqual(o.config.port, 7003)
        XCTAssertEqual(o.config.password?.value, "token", "the URL has no password, so the token still applies")
    }

    func testSeparateVariables() throws {
        let o = try resolve(env: ["REDIS_HOST": "h", "REDIS_PORT": "6380", "REDIS_AUTH_TOKEN": "tok", "REDIS_USER": "bob", "REDIS_PREFIX": "myapp"])
        XCTAssertEqual(o.config.host, "h")
        XCTAssertEqual(o.config.port, 6380)
        XCTAssertEqual(o.config.password?.value, "tok")
        XCTAssertEqual(o.config.user, "bob")
        XCTAssertEqual(o.prefix, "myapp:")
        XCTAssertThrowsError(try resolve(env: ["REDIS_PORT": "abc"]))
    }

    func testNodeEnvProductionTurnsTLSOn() throws {
        XCTAssertNotNil(try resolve(env: ["NODE_ENV": "production", "REDIS_HOST": "h"]).config.tls)
        XCTAssertNil(try resolve(env: ["NODE_ENV": "development"]).config.tls)
        XCTAssertNotNil(try resolve(env: ["REDIS_URL": "rediss://h"]).config.tls)
        var f = ConnectionFlags(); f.url = "redis://h"
        XCTAssertNil(try resolve(f, env: ["NODE_ENV": "production"]).config.tls, "an explicit redis:// flag URL is plain")
        var g = ConnectionFlags(); g.tls = true
        XCTAssertNotNil(try resolve(g).config.tls)
    }

    func testTLSFlagsAndVerificationDefaults() throws {
        var f = ConnectionFlags()
        f.cacert = "/ca.pem"; f.sni = "cache.example.com"
        let o = try resolve(f)
        XCTAssertEqual(o.config.tls?.caFile, "/ca.pem")
        XCTAssertEqual(o.config.tls?.serverName, "cache.example.com")
        XCTAssertEqual(o.config.tls?.insecure, false, "verification is on by default")
        var k = ConnectionFlags(); k.key = "/k.pem"
        XCTAssertThrowsError(try resolve(k))
    }

    func testPrefixRules() throws {
        var f = ConnectionFlags(); f.prefix = ""
        XCTAssertEqual(try resolve(f, env: ["REDIS_PREFIX": "x"]).prefix, "")
        f.prefix = "svc:"
        XCTAssertEqual(try resolve(f, env: ["REDIS_PREFIX": "x"]).prefix, "svc:")
        XCTAssertEqual(try resolve(env: ["REDIS_PREFIX": "x"]).prefix, "x:")
    }

    func testPasswordFile() throws {
        var f = ConnectionFlags(); f.passwordFile = "/pw"
        let o = try resolve(f, env: ["REDIS_AUTH_TOKEN": "other"], files: ["/pw": "s3cret\n"])
        XCTAssertEqual(o.config.password?.value, "s3cret")
        XCTAssertEqual(o.warnings, [])
        // Saved on Windows: CR LF (one Character in Swift) is stripped too.
        XCTAssertEqual(try resolve(f, files: ["/pw": "s3cret\r\n"]).config.password?.value, "s3cret")
        XCTAssertEqual(try resolve(f, files: ["/pw": "s3cret\r\n\r\n"]).config.password?.value, "s3cret")
        XCTAssertEqual(try resolve(f, files: ["/pw": " s3 cret\t\n"]).config.password?.value, " s3 cret\t", "only line endings go")
        // Readable by others: a warning, as ssh gives.
        let loose = try resolve(f, files: ["/pw": "s3cret\n"], mode: 0o100644)
        XCTAssertEqual(loose.warnings.count, 1)
        XCTAssertTrue(loose.warnings[0].contains("can be read by other users (mode 644)"), loose.warnings[0])
        f.passwordFile = "/missing"
        XCTAssertThrowsError(try resolve(f)) { e in XCTAssertTrue("\(e)".contains("/missing")) }
    }

    func testPasswordNeverInDescriptions() throws {
        var f = ConnectionFlags(); f.url = "redis://u:hunter2@h:1"
        let o = try resolve(f)
        XCTAssertFalse("\(o)".contains("hunter2"))
        XCTAssertFalse(String(reflecting: o).contains("hunter2"))
        XCTAssertFalse(o.summary.contains("hunter2"))
    }

    func testBackoffIsCappedAndJittered() {
        var b = Backoff(base: 0.1, cap: 2, seed: 42)
        var delays: [Double] = []
        for _ in 0..<20 { delays.append(b.nextDelay()) }
        XCTAssertTrue(delays.allSatisfy { $0 <= 2 && $0 >= 0.05 })
        XCTAssertLessThan(delays[0], 0.11)
        XCTAssertGreaterThan(delays[19], 0.99, "the ceiling grows to the cap")
        XCTAssertGreaterThan(Set(delays.suffix(10)).count, 5, "jittered, not constant")
        b.reset()
        XCTAssertLessThan(b.nextDelay(), 0.11)
    }

    func testGlobEscape() {
        XCTAssertEqual(globEscape(Bytes(utf8: "a*b?[c]\\")), Bytes(utf8: "a\\*b\\?\\[c\\]\\\\"))
    }
}

/// --password-command: what it prints (less one newline) is the password; it runs without a
/// terminal, within its time limit; a failure says why with its stderr, never its stdout.
final class PasswordCommandTests: XCTestCase {
    func testItsOutputLessOneNewlineIsThePassword() throws {
        XCTAssertEqual(try CredentialSource.runPasswordCommand("printf 's3cret\\n'", timeout: 5), "s3cret")
        XCTAssertEqual(try CredentialSource.runPasswordCommand("printf 'a b\\r\\n'", timeout: 5), "a b")
        XCTAssertEqual(try CredentialSource.runPasswordCommand("printf 'two\\n\\n'", timeout: 5), "two\n", "only one newline goes")
        XCTAssertEqual(try CredentialSource.runPasswordCommand("tty >/dev/null 2>&1 && echo has-tty || echo no-tty", timeout: 5), "no-tty")
    }

    /// redis-ops ignores SIGPIPE; a helper it starts must not inherit that (an ignored signal
    /// survives exec), or `… | head -1` in a password command writes EPIPE errors.
    func testTheCommandRunsWithSIGPIPEAtItsDefault() throws {
        let before = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, before) }
        let probe = #"m=$(awk '/^SigIgn/ { print $2 }' /proc/self/status); [ $(( 0x$m & 0x1000 )) -eq 0 ] && echo default || echo ignored"#
        XCTAssertEqual(try CredentialSource.runPasswordCommand(probe, timeout: 10), "default")
        // What a password command typically does: the first line of a longer output.
        XCTAssertEqual(try CredentialSource.runPasswordCommand("yes tok3n | head -1", timeout: 10), "tok3n")
    }

    func testAFailureSaysWhyWithItsStderrButNeverItsOutput() {
        XCTAssertThrowsError(try CredentialSource.runPasswordCommand("echo hunter2; echo 'token expired' >&2; exit 3", timeout: 5)) { e in
            XCTAssertTrue("\(e)".contains("exited with status 3") && "\(e)".contains("token expired"), "\(e)")
            XCTAssertFalse("\(e)".contains("hunter2"))
        }
        XCTAssertThrowsError(try CredentialSource.runPasswordCommand("true", timeout: 5)) { XCTAssertTrue("\($0)".contains("printed nothing"), "\($0)") }
        let t0 = Date()
        XCTAssertThrowsError(try CredentialSource.runPasswordCommand("sleep 30", timeout: 0.5)) { XCTAssertTrue("\($0)".contains("did not finish"), "\($0)") }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
    }

    func testAtMostOnePasswordSource() {
        var f = ConnectionFlags()
        f.passwordFile = "/x"
        f.passwordCommand = "echo x"
        XCTAssertThrowsError(try ConnectionOptions.resolve(flags: f, environment: [:], readFile: { _ in "x" })) {
            XCTAssertTrue("\($0)".contains("at most one of --password-file, --password-command and --askpass"), "\($0)")
        }
    }

    /// Bounded: 5 s after a refusal, growing to 60 s; at once when the source changes.
    func testAuthRetryWaitsLongerEachTimeButNotForANewPassword() {
        var r = AuthRetry()
        r.refused(version: 1, now: 100)
        XCTAssertFalse(r.due(version: 1, now: 104))
        XCTAssertTrue(r.due(version: 1, now: 105))
        XCTAssertTrue(r.due(version: 2, now: 100.1), "a new password is tried at once")
        r.refused(version: 1, now: 105)
        XCTAssertEqual(r.secondsLeft(now: 105), 10)
        for _ in 0..<6 { r.refused(version: 1, now: 200) }
        XCTAssertEqual(r.secondsLeft(now: 200), 60, "never more than a minute")
    }
}
