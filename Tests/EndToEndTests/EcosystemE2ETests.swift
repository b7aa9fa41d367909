import XCTest
import Foundation
import TestSupport

/// The conventions of the ecosystem: --version, redis-cli's spellings, NO_COLOR.
final class EcosystemE2ETests: XCTestCase {
    func testVersion() throws {
        for args in [["--version"], ["version"]] {
            let r = try redisOps(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertNotNil(r.stdout.range(of: #"^redis-ops \d+\.\d+\.\d+\n$"#, options: .regularExpression), r.stdout)
        }
        let h = try redisOps(["-h"])
        XCTAssertEqual(h.status, 0)
        XCTAssertTrue(h.stdout.contains("USAGE: redis-ops"), "-h stays help, as in redis-cli's --help (not -h HOST)")
    }

    func testRedisCliSpellings() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.cli(["-n", "3", "SET", "app:workspace:3", "in-db-3"])
        try s.cli(["SET", "app:workspace:0", "in-db-0"])
        func keys(_ args: [String]) throws -> [String] {
            let r = try redisOps(["keys", "--json"] + args)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try ndjson(r.stdout).map { $0["key"] as! String }
        }
        XCTAssertEqual(try keys(["-p", String(s.port)]), ["app:workspace:0"])
        XCTAssertEqual(try keys(["-p", String(s.port), "-n", "3"]), ["app:workspace:3"])
        XCTAssertEqual(try keys(["-u", "redis://127.0.0.1:\(s.port)/3"]), ["app:workspace:3"])
        // Before the subcommand too, as redis-cli users type them.
        let r = try redisOps(["-p", String(s.port), "-n", "3", "keys", "--json"])
        XCTAssertEqual(try ndjson(r.stdout).map { $0["key"] as! String }, ["app:workspace:3"])
    }

    func testAskpassReadsThePasswordWithoutEcho() throws {
        let s = try RedisServer(.password("s3cret-token"))
        defer { s.stop() }
        let pane = try TmuxPane(width: 100, height: 10, command: [redisOpsBinary(), "info", "--askpass", "--port", String(s.port), "--json"])
        defer { pane.kill() }
        try pane.waitFor("the question") { $0.contains("Password") || $0.contains("password") }
        try pane.type("s3cret-token")
        try pane.send("Enter")
        let screen = try pane.waitFor("the answer") { $0.contains("\"role\"") || $0.contains("EXITED") }
        XCTAssertTrue(screen.contains("\"role\":\"master\""), screen)
        XCTAssertFalse(screen.contains("s3cret-token"), "not echoed")
        XCTAssertEqual(try pane.waitForExit(), 0)
        // Without a terminal to ask on: a usage error, not a hang.
        let r = try redisOps(["info", "--askpass", "--port", String(s.port)])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--askpass needs a terminal"), r.stderr)
    }

    /// Ctrl-C at the --askpass prompt: the terminal gets its echo back (it stayed off before).
    func testAskpassInterruptedGivesTheTerminalItsEchoBack() throws {
        let s = try RedisServer(.password("pw"))
        defer { s.stop() }
        let quoted = redisOpsBinary().replacingOccurrences(of: "'", with: "'\\''")
        let pane = try TmuxPane(width: 100, height: 10, command: ["/bin/sh", "-c",
            "'\(quoted)' info --askpass --port \(s.port); echo status=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?echo'"])
        defer { pane.kill() }
        try pane.waitFor("the question") { $0.contains("Password") }
        // Ctrl-C is SIGINT to the program (sent to it alone: the pane's shells would die of it too).
        let pid = try XCTUnwrap(Int32(try spawnWait("/usr/bin/pgrep", ["-f", "^\(redisOpsBinary()) info --askpass --port \(s.port)$"]).output.split(separator: "\n").first ?? ""))
        kill(pid, SIGINT)
        let screen = try pane.waitFor("the end") { $0.contains("EXITED") }
        XCTAssertTrue(screen.contains("status=130"), screen)
        let flags = screen.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertTrue(flags.contains("echo"), "echo is on again:\n\(screen)")
        XCTAssertFalse(flags.contains("-echo"), screen)
    }

    /// Ctrl-\\ (SIGQUIT) in the console: the main screen and the cursor come back.
    func testSIGQUITRestoresTheTerminal() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try TmuxPane(width: 100, height: 24, command: [redisOpsBinary(), "--port", String(s.port)])
        defer { pane.kill() }
        try pane.waitFor("the console") { $0.contains("1 Events") }
        XCTAssertEqual(try pane.display("#{alternate_on}"), "1")
        let pid = try XCTUnwrap(Int32(try spawnWait("/usr/bin/pgrep", ["-f", "^\(redisOpsBinary()) --port \(s.port)$"]).output.split(separator: "\n").first ?? ""))
        kill(pid, SIGQUIT)   // Ctrl-\\, to the program alone
        try pane.waitFor("the end") { $0.contains("EXITED") }
        XCTAssertEqual(try pane.display("#{alternate_on}"), "0", "back on the main screen")
        XCTAssertEqual(try pane.display("#{cursor_flag}"), "1", "the cursor is shown")
    }

    /// Numbers that would silently disable a limit are refused, naming the option.
    func testNumericOptionsRefuseNaNInfinityAndNonsense() throws {
        for (args, option) in [(["tail", "--timeout", "nan", "c"], "--timeout"), (["tail", "--timeout", "inf", "c"], "--timeout"),
                               (["tail", "--count", "-1", "c"], "--count"), (["tail", "--timeout", "1e-9", "c"], "--timeout"),
                               (["invalidate", "--max-latency-ms", "nan", "--match", "x*", "--dry-run"], "--max-latency-ms"),
                               (["keys", "--io-timeout", "inf"], "--io-timeout"), (["keys", "--io-timeout", "1e300"], "--io-timeout"),
                               (["expire", "--ttl", "-5", "k"], "--ttl"), (["ratelimits", "--window", "0"], "--window"),
                               (["keys", "-p", "70000"], "--port")] {
            let r = try redisOps(args + ["--port", "1"].filter { _ in !args.contains("-p") })
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(option) && r.stderr.contains("must be"), "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one clear line: \(r.stderr)")
        }
    }

    func testNoColorLeavesOnlyBoldReverseAndUnderline() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.fillLikeTheApp()
        func escapes(_ env: [String: String], _ args: [String] = []) throws -> String {
            let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port)] + args, env: env)
            defer { pane.kill() }
            try pane.waitFor("console") { $0.contains("1 Events") }
            try pane.send("3")
            try pane.waitFor("rate limits") { $0.contains("BLOCKED") }
            return try pane.tmuxCmd(["capture-pane", "-p", "-e", "-t", "t"])
        }
        // A colour is an SGR parameter 30–38, 40–48, 90–97 or 100–107 (39 and 49 are the defaults).
        let colour = #"\x1b\[([0-9]+;)*(3[0-8]|4[0-8]|9[0-7]|10[0-7])(;[0-9]+)*m"#
        let coloured = try escapes([:])
        XCTAssertNotNil(coloured.range(of: colour, options: .regularExpression), "colour by default")
        for (env, args) in [(["NO_COLOR": "1"], [String]()), ([:], ["--no-color"])] {
            let plain = try escapes(env, args)
            XCTAssertNil(plain.range(of: colour, options: .regularExpression), "no colour with \(env) \(args)")
            XCTAssertTrue(plain.contains("\u{1B}[7m") || plain.contains("\u{1B}[1m"), "reverse or bold still mark what matters")
        }
    }
}

/// The README's least-privilege ACL is enough for every subcommand, with nothing refused.
final class ReadmeACLTests: XCTestCase {
    func testTheDocumentedACLRunsEverySubcommand() throws {
        let rule = try fencedBlock(in: try repositoryText("README.md"), after: "ACL SETUSER ").replacingOccurrences(of: "\\\n", with: " ")
            .replacingOccurrences(of: ">…", with: ">pw").split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let s = try RedisServer(.acl(users: [rule, "default on nopass ~* &* +@all"], defaultPassword: nil))
        defer { s.stop() }
        try s.cli([], stdin: (1...50).map { "SET app:workspace:\($0) {} EX 300\n" }.joined() + "SET app:ratelimit:ip:10.0.0.1 75 EX 40\n")
        let audit = NSTemporaryDirectory() + "/audit-\(UUID().uuidString)"
        let env = ["REDIS_AUTH_TOKEN": "pw", "REDIS_OPS_AUDIT_LOG": audit]
        let base = ["--port", String(s.port), "--user", "ops"]
        for args in [["keys", "--json"], ["info"], ["ratelimits", "--json"],
                     ["invalidate", "--match", "workspace:1*", "--yes", "--json"],
                     ["expire", "--match", "workspace:*", "--yes", "--json"],
                     ["publish", "workspace:1:events", "{}"]] {
            let r = try redisOps(args + base, env: env)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("NOPERM") || r.stderr.contains("not permitted"), "\(args): \(r.stderr)")
        }
        let tail = BackgroundRun(["tail", "--json", "--count", "1", "--timeout", "10", "workspace:2:events"] + base, env: env)
        try s.waitForSubscribers("workspace:2:events")
        try s.cli(["PUBLISH", "workspace:2:events", "{}"])
        let t = try XCTUnwrap(tail.wait(times: 0))
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertEqual(try ndjson(t.stdout).count, 1)
    }
}
