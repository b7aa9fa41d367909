import XCTest
import Foundation
import Synchronization
@testable import ConsoleTerminal
import ConsoleUI
import RedisClient
import RedisProtocol
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class Collected: @unchecked Sendable {
    let events = Mutex<[String]>([])
    let links = Mutex<[LinkState]>([])
    func add(_ evs: [AppEvent]) { events.withLock { $0 += evs.map { "\($0)" } } }
    var all: [String] { events.withLock { $0 } }
}

final class WorkerSafetyTests: XCTestCase {
    func testAWriteIsNeverQueuedWhileDisconnected() throws {
        let c = Collected()
        let port = freePort()
        // Nothing listens on the port yet: the worker is disconnected and retrying.
        let w = Worker(name: "test", config: ConnectionConfig(host: "127.0.0.1", port: port, timeouts: Timeouts(connect: 0.2, io: 0.5)),
                       post: c.add, onLink: { l in c.links.withLock { $0.append(l) } })
        w.start()
        defer { w.stop() }
        usleep(300_000)
        let refused = Atomic<Bool>(false)
        w.submit(Worker.Job(isWrite: true, run: { _ in refused.store(true, ordering: .relaxed); return [] }))
        XCTAssertTrue(c.all.contains { $0.contains("not connected to the server — nothing was changed") }, "\(c.all)")
        // Now the server comes: the worker connects, and the refused write is still not run.
        let s = try RedisServer(.plain, port: port)
        defer { s.stop() }
        let end = Date().addingTimeInterval(15)
        while Date() < end, !c.links.withLock({ $0.contains(.connected) }) { usleep(20_000) }
        XCTAssertTrue(c.links.withLock { $0.contains(.connected) }, "the worker reconnected")
        let ran = Atomic<Bool>(false)
        w.submit(Worker.Job(isWrite: true, run: { _ in ran.store(true, ordering: .relaxed); return [] }))
        let end2 = Date().addingTimeInterval(5)
        while Date() < end2, !ran.load(ordering: .relaxed) { usleep(10_000) }
        XCTAssertTrue(ran.load(ordering: .relaxed), "a write submitted while connected runs (the flag can become true)")
        XCTAssertFalse(refused.load(ordering: .relaxed), "the write refused while disconnected never ran")
    }

    /// A job cancelled while still queued (Esc on a write waiting behind a long job) reports
    /// that it never started — the dialog waiting for it must not wait for ever.
    func testACancelledQueuedJobReportsThatItNeverStarted() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = Collected()
        let w = Worker(name: "test", config: s.config(), post: c.add, onLink: { l in c.links.withLock { $0.append(l) } })
        w.start()
        defer { w.stop() }
        let end = Date().addingTimeInterval(10)
        while Date() < end, !c.links.withLock({ $0.contains(.connected) }) { usleep(20_000) }
        let release = DispatchSemaphore(value: 0)
        // A long job holds the worker; the write waits behind it.
        w.submit(Worker.Job(tag: "long", run: { _ in release.wait(); return [] }))
        let ran = Atomic<Bool>(false)
        w.submit(Worker.Job(tag: "write-9", isWrite: true, run: { _ in ran.store(true, ordering: .relaxed); return [.notice("ran", .info)] },
                            onCancelledBeforeStart: { [.writeCancelled(id: 9)] }))
        w.cancel(tag: "write-9")
        release.signal()
        usleep(300_000)
        XCTAssertFalse(ran.load(ordering: .relaxed), "never run")
        XCTAssertTrue(c.all.contains { $0.contains("writeCancelled(id: 9)") }, "reported: \(c.all)")
    }

    /// Many threads post and wake while the loop drains and takes, as the console does. A
    /// wake-up lost between the flag and the pipe leaves the loop asleep with events waiting.
    func testNoWakeUpIsLostWhenWakeUpsRaceDrains() throws {
        let wake = WakePipe()
        let inbox = Inbox()
        let producers = 6, perProducer = 4000
        let done = Atomic<Int>(0)
        for p in 0..<producers {
            Thread.detachNewThread {
                for i in 0..<perProducer {
                    inbox.post([.notice("\(p)-\(i)", .info)])
                    wake.wake()
                    if i % 64 == 0 { usleep(UInt32.random(in: 0...200)) }
                }
                done.add(1, ordering: .relaxed)
            }
        }
        var taken = 0
        var longestSleep = 0.0
        let deadline = monotonicNow() + 60
        while taken < producers * perProducer && monotonicNow() < deadline {
            var fd = pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0)
            let t = monotonicNow()
            // The console sleeps until a wake-up (or its next tick): 3 s here.
            _ = poll(&fd, 1, 3000)
            let slept = monotonicNow() - t
            if fd.revents != 0 { wake.drain() }
            let evs = inbox.take()
            if evs.isEmpty && done.load(ordering: .relaxed) < producers { longestSleep = max(longestSleep, slept) }
            taken += evs.count
        }
        XCTAssertEqual(taken, producers * perProducer)
        XCTAssertLessThan(longestSleep, 2.5, "the loop slept through a wake-up while events were being posted")
        // After the producers stop, one more wake-up still wakes the loop at once.
        inbox.post([.notice("last", .info)])
        wake.wake()
        var fd = pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&fd, 1, 1000), 1, "the pipe is readable: the flag was not left set")
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
