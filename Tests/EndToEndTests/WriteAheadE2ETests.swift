import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TestSupport

/// No write unrecorded: the intent is on disk before the first UNLINK; a signal (a closed
/// ssh session, `kill`, Ctrl-C) stops the run after the current batch and still writes the
/// report and the outcome; an audit log that cannot be written stops everything first.
final class WriteAheadE2ETests: XCTestCase {
    static let keys = 200_000

    func populated() throws -> RedisServer {
        let s = try RedisServer(.plain)
        try s.cli(["DEBUG", "POPULATE", String(Self.keys), "app:workspace"])
        return s
    }

    func dbsize(_ s: RedisServer) throws -> Int { Int(try s.cli(["DBSIZE"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }

    /// Starts `invalidate --yes --json` over every key; once deleting has begun, writes are
    /// paused on the server (`CLIENT PAUSE … WRITE`: reads still answered), so the signal
    /// finds batches stuck in flight — the hardest case, and a deterministic one.
    func interrupted(by sig: Int32, expect status: Int32) throws {
        let s = try populated()
        defer { s.stop() }
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString)/audit.log"
        let run = BackgroundRun(["invalidate", "--port", String(s.port), "--match", "workspace:*", "--yes", "--json", "--audit-log", log, "--io-timeout", "10"])
        let pid = run.pid
        try waitUntil("the deletion to start", timeout: 30) { try self.dbsize(s) < Self.keys }
        try s.cli(["CLIENT", "PAUSE", "6000", "WRITE"])
        usleep(200_000)
        kill(pid, sig)
        let t0 = Date()
        let r = try XCTUnwrap(run.wait(times: 0))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5.5, "the lost replies are settled without waiting for the pause to end")
        XCTAssertEqual(r.status, status, r.stderr)
        try s.cli(["CLIENT", "UNPAUSE"])
        usleep(300_000)
        let report = try XCTUnwrap(try ndjson(r.stdout).first, r.stdout)
        XCTAssertEqual(report["cancelled"] as? Bool, true)
        let deleted = report["deleted"] as! Int, unknown = report["unknown"] as! Int
        let reallyDeleted = Self.keys - (try dbsize(s))
        XCTAssertLessThanOrEqual(deleted, reallyDeleted, "deleted ≤ really deleted")
        XCTAssertLessThanOrEqual(reallyDeleted, deleted + unknown, "really deleted ≤ deleted + unknown")
        XCTAssertLessThan(reallyDeleted, Self.keys, "stopped partway")
        let name = sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGINT"
        XCTAssertTrue(r.stderr.contains(name), r.stderr)
        XCTAssertFalse(r.stderr.contains("they no longer exist") && unknown == 0, "the words come from the numbers: \(r.stderr)")
        // The record: the intent, then the outcome with the same id.
        let records = try ndjson(try String(contentsOfFile: log, encoding: .utf8))
        XCTAssertEqual(records.map { $0["phase"] as? String }, ["intent", "done"])
        XCTAssertEqual(records[0]["id"] as? String, records[1]["id"] as? String)
        XCTAssertEqual(records[0]["matched"] as? Int, Self.keys)
        XCTAssertNotNil(records[0]["keys_file"], "every key of the intent, beside the log")
        XCTAssertEqual(records[1]["cancelled"] as? Bool, true)
        XCTAssertEqual(records[1]["signal"] as? String, name)
        XCTAssertEqual(records[1]["deleted"] as? Int, deleted)
        XCTAssertEqual(records[1]["unknown"] as? Int, unknown)
    }

    func testSIGTERMStopsAfterTheBatchAndRecordsTheOutcome() throws { try interrupted(by: SIGTERM, expect: 143) }
    func testSIGHUPStopsAfterTheBatchAndRecordsTheOutcome() throws { try interrupted(by: SIGHUP, expect: 129) }

    /// Writes paused, then Ctrl-C: the batches in flight are settled (the old connection
    /// killed, the keys asked with EXISTS) — they were not deleted, and the report says so.
    func testSIGINTWhileWritesArePausedReportsExactlyWhatWasNotDone() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.cli(["DEBUG", "POPULATE", "350", "app:workspace"])
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        try s.cli(["CLIENT", "PAUSE", "20000", "WRITE"])
        defer { _ = try? s.cli(["CLIENT", "UNPAUSE"]) }
        let run = BackgroundRun(["invalidate", "--port", String(s.port), "--match", "workspace:*", "--yes", "--json", "--audit-log", log])
        let pid = run.pid
        // The dry run reads (allowed while paused); the UNLINKs then wait on the server.
        try waitUntil("the write to start", timeout: 20) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains(#""phase":"intent""#)
        }
        usleep(300_000)
        kill(pid, SIGINT)
        let r = try XCTUnwrap(run.wait(times: 0))
        XCTAssertEqual(r.status, 130, r.stderr)
        let report = try XCTUnwrap(try ndjson(r.stdout).first, r.stdout)
        XCTAssertEqual(report["cancelled"] as? Bool, true)
        XCTAssertEqual(report["deleted"] as? Int, 0)
        XCTAssertEqual(report["unknown"] as? Int, 0, "settled: each key was asked, and is still there")
        XCTAssertEqual(try s.cli(["DBSIZE"]), "350\n", "nothing was deleted")
        XCTAssertFalse(r.stderr.contains("no longer exist"), r.stderr)
        XCTAssertTrue(r.stderr.contains("350 not attempted"), r.stderr)
        try s.cli(["CLIENT", "UNPAUSE"])
        usleep(300_000)
        XCTAssertEqual(try s.cli(["DBSIZE"]), "350\n", "the UNLINKs that waited were never carried out (their connection was killed)")
    }

    /// An audit log that cannot be written: nothing is deleted, exit 2, the path and the cause.
    func testAnAuditLogThatCannotBeWrittenStopsTheWriteBeforeAnything() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.cli(["DEBUG", "POPULATE", "100", "app:workspace"])
        let dir = NSTemporaryDirectory() + "/audit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "x".write(toFile: dir + "/target", atomically: true, encoding: .utf8)
        symlink(dir + "/target", dir + "/link.log")
        try "".write(toFile: dir + "/file", atomically: true, encoding: .utf8)
        for (path, cause) in [("/dev/full", "not a regular file"), (dir + "/link.log", "symbolic link"), (dir + "/file/audit.log", "is not a directory")] {
            for dry in [false, true] {
                let r = try redisOps(["invalidate", "--port", String(s.port), "--match", "workspace:*", "--yes", "--audit-log", path] + (dry ? ["--dry-run"] : []))
                XCTAssertEqual(r.status, 2, "\(path): \(r.stderr)")
                XCTAssertTrue(r.stderr.contains(path) && r.stderr.contains(cause), r.stderr)
                XCTAssertFalse(r.stderr.contains("NSCocoaErrorDomain"), r.stderr)
                XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            }
        }
        XCTAssertEqual(try s.cli(["DBSIZE"]), "100\n", "nothing was deleted")
        XCTAssertEqual(try String(contentsOfFile: dir + "/target", encoding: .utf8), "x", "the link's target untouched")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/audit-keys"), "no keys file in /dev")
        // A directory that does not exist yet is made (0700), the log created 0600.
        let fresh = dir + "/new/deeper/audit.log"
        let ok = try redisOps(["invalidate", "--port", String(s.port), "--match", "workspace:*", "--yes", "--audit-log", fresh])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        var st = stat()
        XCTAssertEqual(stat(fresh, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertEqual(stat(dir + "/new/deeper", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertEqual(try doneRecords(fresh).first?["deleted"] as? Int, 100)
    }
}
