import XCTest
import Foundation
import TestSupport

/// The subcommands give the console's answers: full names, state words, default patterns,
/// names piped from `keys --json`, and TLS that says why it is on.
final class HeadlessEqualsConsoleTests: XCTestCase {
    func audit() -> [String: String] { ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString)"] }

    func testFullNamesAreTakenAsTheyArePrintedWithANote() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.fillLikeTheApp()
        let port = String(s.port)
        let r = try redisOps(["--port", port, "invalidate", "app:workspace:4", "workspace:5", "--yes", "--json"], env: audit())
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try ndjson(r.stdout).first?["deleted"] as? Int, 2, r.stdout)
        XCTAssertTrue(r.stderr.contains("'app:workspace:4' already starts with the prefix app:: taken as the full name"), r.stderr)
        XCTAssertEqual(try s.cli(["EXISTS", "app:workspace:4", "app:workspace:5"]).trimmingCharacters(in: .whitespacesAndNewlines), "0")
        // expire takes the same names.
        let e = try redisOps(["--port", port, "expire", "app:session:abc", "--ttl", "60", "--yes", "--json"], env: audit())
        XCTAssertEqual(e.status, 0, e.stderr)
        let ttl = Int(try s.cli(["TTL", "app:session:abc"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -9
        XCTAssertTrue((1...60).contains(ttl), "TTL \(ttl)")
    }

    /// `keys --json | … | invalidate --stdin --dry-run`: the names piped are the names meant.
    func testInvalidateAndExpireReadNamesFromStandardInput() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.fillLikeTheApp()
        try s.cli(["SET", "app:workspace:bin\u{7F}", "x"])
        let port = String(s.port)
        let listed = try redisOps(["--port", port, "keys", "--match", "workspace:1*", "--json"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        let names = try ndjson(listed.stdout).map { $0["key"] as! String }
        XCTAssertEqual(names.count, 11)
        let dry = try redisOps(["--port", port, "invalidate", "--stdin", "--dry-run", "--json"], env: audit(), stdin: listed.stdout)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        let report = try XCTUnwrap(try ndjson(dry.stdout).first)
        XCTAssertEqual(report["matched"] as? Int, 11)
        XCTAssertEqual(report["dry_run"] as? Bool, true)
        XCTAssertEqual(Set((report["sample"] as! [String])).isSubset(of: Set(names)), true)
        // Plain lines, relative or full, blank lines ignored.
        let lines = "workspace:2\n\napp:workspace:3\r\n"
        let del = try redisOps(["--port", port, "invalidate", "--stdin", "--yes", "--json"], env: audit(), stdin: lines)
        XCTAssertEqual(try ndjson(del.stdout).first?["deleted"] as? Int, 2, del.stderr)
        // NDJSON with key_base64 names bytes exactly.
        let b64 = Data("app:workspace:bin\u{7F}".utf8).base64EncodedString()
        let bin = try redisOps(["--port", port, "invalidate", "--stdin", "--yes", "--json"], env: audit(),
                               stdin: #"{"key":"ignored","key_base64":"\#(b64)"}"# + "\n")
        XCTAssertEqual(try ndjson(bin.stdout).first?["deleted"] as? Int, 1, bin.stderr)
        // expire --stdin.
        let ex = try redisOps(["--port", port, "expire", "--stdin", "--yes", "--json"], env: audit(), stdin: #"{"key":"app:session:abc"}"# + "\n")
        XCTAssertEqual(ex.status, 0, ex.stderr)
        XCTAssertNotEqual(try s.cli(["TTL", "app:session:abc"]).trimmingCharacters(in: .whitespacesAndNewlines), "-1")
        // A bad line is a usage error that names it; nothing is written.
        let bad = try redisOps(["--port", port, "invalidate", "--stdin", "--yes"], env: audit(), stdin: "workspace:6\n{\"nokey\":1}\n")
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("standard input, line 2"), bad.stderr)
        XCTAssertEqual(try s.cli(["EXISTS", "app:workspace:6"]).trimmingCharacters(in: .whitespacesAndNewlines), "1")
    }

    func testRateLimitsSayTheirState() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.fillLikeTheApp()
        try s.cli(["SET", "app:ratelimit:user:1234", "19"])        // no TTL: broken, under the limit
        try s.cli(["SET", "app:ratelimit:user:666", "75"])         // no TTL, over: blocks forever
        let port = String(s.port)
        let j = try redisOps(["--port", port, "ratelimits", "--json"])
        XCTAssertEqual(j.status, 0, j.stderr)
        let rows = try ndjson(j.stdout)
        func row(_ id: String) -> [String: Any]? { rows.first { $0["identifier"] as? String == id } }
        XCTAssertEqual(row("user:1234")?["state"] as? String, "broken")
        XCTAssertEqual(row("user:666")?["state"] as? String, "broken")
        XCTAssertEqual(row("ip:10.0.0.1")?["state"] as? String, "blocked")
        XCTAssertEqual(row("user:42")?["state"] as? String, "ok")
        XCTAssertEqual(rows.first?["identifier"] as? String, "user:666", "blocked forever first")
        let t = try redisOps(["--port", port, "ratelimits"])
        let line = t.stdout.split(separator: "\n").first { $0.contains("user:1234") }.map(String.init) ?? ""
        XCTAssertTrue(line.contains("broken"), line)
        XCTAssertFalse(line.hasPrefix("ok"), line)
        let forever = t.stdout.split(separator: "\n").first { $0.contains("user:666") }.map(String.init) ?? ""
        XCTAssertTrue(forever.contains("blocked forever"), forever)
    }

    func testNodeEnvTLSSaysWhyAndNoTLSTurnsItOff() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let env = ["NODE_ENV": "production", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(s.port)]
        let r = try redisOps(["keys", "--io-timeout", "2"], env: env)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("TLS is on because NODE_ENV=production; --no-tls turns it off"), r.stderr)
        let ok = try redisOps(["keys", "--no-tls"], env: env)
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }

    func testCommandLineCosmetics() throws {
        let nosuch = try redisOps(["nosuch"])
        XCTAssertEqual(nosuch.status, 2)
        XCTAssertTrue(nosuch.stderr.contains("unknown command 'nosuch'; the commands are"), nosuch.stderr)
        XCTAssertFalse(nosuch.stderr.contains("--buffer"), "not the console's usage")
        // The parser's own words are not taken for unknown commands: `make install` writes
        // the completion scripts this way, and `help SUBCOMMAND` is what people type.
        for shell in ["bash", "zsh", "fish"] {
            let c = try redisOps(["--generate-completion-script", shell])
            XCTAssertEqual(c.status, 0, c.stderr)
            XCTAssertTrue(c.stdout.contains("invalidate"), "\(shell) completion: \(c.stdout.prefix(200))")
        }
        // An option put before its subcommand is named as such, not its value taken for a command.
        let misplaced = try redisOps(["--port", "1", "--max-latency-ms", "1.4", "invalidate", "--match", "x:*"])
        XCTAssertEqual(misplaced.status, 2)
        XCTAssertTrue(misplaced.stderr.contains("Unknown option '--max-latency-ms'"), misplaced.stderr)
        XCTAssertFalse(misplaced.stderr.contains("unknown command"), misplaced.stderr)
        let helpKeys = try redisOps(["help", "keys"])
        XCTAssertEqual(helpKeys.status, 0, helpKeys.stderr)
        XCTAssertTrue(helpKeys.stdout.contains("--match"), helpKeys.stdout)
        let help = try redisOps(["keys", "--help"])
        // --match's help, up to the next option, says its default once.
        let after = help.stdout.components(separatedBy: "--match <match>").dropFirst().first ?? ""
        let matchHelp = after.components(separatedBy: "\n  --").first ?? ""
        XCTAssertEqual(matchHelp.components(separatedBy: "default").count - 1, 1, matchHelp)
        // The console's older `--pattern GLOB` still parses (it needs a terminal, and says so).
        let console = try redisOps(["--pattern", "workspace:*:events", "--port", "1"])
        XCTAssertEqual(console.status, 2)
        XCTAssertTrue(console.stderr.contains("needs a terminal"), console.stderr)
        let flag = try redisOps(["--pattern", "--channel", "workspace:*:events", "--port", "1"])
        XCTAssertTrue(flag.stderr.contains("needs a terminal"), flag.stderr)
    }
}
