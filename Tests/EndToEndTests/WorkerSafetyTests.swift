import XCTest
import Foundation
import Synchronization
import ConsoleTerminal
import ConsoleUI
import RedisClient
import RedisProtocol
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class Collected: @unchecked Sendable {
    let events = Mutex<[String]>([])
    func add(_ evs: [AppEvent]) { events.withLock { $0 += evs.map { "\($0)" } } }
    var all: [String] { events.withLock { $0 } }
}

final class WorkerSafetyTests: XCTestCase {
    func testAWriteIsNeverQueuedWhileDisconnected() throws {
        let c = Collected()
        // Nothing listens on this port: the worker is disconnected and retrying.
        let w = CommandWorker(config: ConnectionConfig(host: "127.0.0.1", port: freePort(), timeouts: Timeouts(connect: 0.2, io: 0.2)), post: c.add)
        w.start()
        defer { w.stop() }
        usleep(300_000)
        let ran = Atomic<Bool>(false)
        w.submit(CommandWorker.Job(isWrite: true, run: { _ in ran.store(true, ordering: .relaxed); return [] }))
        XCTAssertFalse(ran.load(ordering: .relaxed))
        XCTAssertTrue(c.all.contains { $0.contains("not connected to the server — nothing was changed") }, "\(c.all)")
        usleep(500_000)
        XCTAssertFalse(ran.load(ordering: .relaxed), "and it is not run later either")
    }

    func testACrashRestoresTheTerminal() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try TmuxPane(width: 100, height: 24, command: [redisOpsBinary(), "--port", String(s.port)])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        XCTAssertEqual(try pane.display("#{alternate_on}"), "1")
        let pid = try spawnWait("/usr/bin/pgrep", ["-f", "redis-ops --port \(s.port)"]).output.split(separator: "\n").first.flatMap { Int32($0) }
        kill(try XCTUnwrap(pid), SIGSEGV)
        let status = try pane.waitForExit()
        XCTAssertEqual(status, 128 + SIGSEGV)
        XCTAssertEqual(try pane.display("#{alternate_on}"), "0", "the crash handler left the alternate screen")
        XCTAssertEqual(try pane.display("#{cursor_flag}"), "1", "and showed the cursor again")
    }
}
