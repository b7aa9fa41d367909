import XCTest
import Foundation
@testable import OpsCore
import RedisClient
import RedisProtocol
import TestSupport

final class TailIntegrationTests: XCTestCase {
    func testBoundedBufferUnderAFlood() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let inbox = TailInbox(capacity: 1000)
        let w = SubscriptionWorker(config: s.config(), channels: [Bytes(utf8: "flood")], patterns: [Bytes(utf8: "flo*")], sink: inbox)
        w.start()
        defer { w.stop() }
        var tail = ChannelTail(capacity: 1000)
        // Wait for both subscriptions.
        let end = Date().addingTimeInterval(5)
        while Date() < end {
            _ = tail.absorb(inbox.take(), now: wallClockNow())
            if try s.admin().call("PUBSUB", "NUMPAT").int == 1, (try s.admin().call("PUBSUB", "NUMSUB", "flood").array?[1].int) == 1 { break }
            usleep(10_000)
        }
        let pub = try s.admin()
        let total = 100_000
        var i = 0
        while i < total {
            var cmds: [[Bytes]] = []
            for j in i..<min(total, i + 2000) { cmds.append([Bytes(utf8: "PUBLISH"), Bytes(utf8: "flood"), Bytes(utf8: "{\"n\":\(j)}")]) }
            _ = try pub.pipeline(cmds)
            i += 2000
        }
        // Each message arrives twice: once for the channel, once for the pattern.
        // The console's loop: take what arrived, about 60 times a second.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && tail.received < 2 * total { _ = tail.absorb(inbox.take(), now: wallClockNow()); usleep(16_000) }
        do {
            let t = tail
            XCTAssertEqual(t.received, 2 * total, "nothing lost on loopback")
            XCTAssertEqual(t.count, 1000, "the buffer stays bounded")
            XCTAssertEqual(t.evicted, 2 * total - 1000, "and counts what it evicts")
            XCTAssertEqual(t[999].message?.payload, Bytes(utf8: "{\"n\":\(total - 1)}"))
            XCTAssertEqual(t.channels[Bytes(utf8: "flood")]?.total, 2 * total)
        }
        let clients = try s.admin().call("CLIENT", "LIST").string ?? ""
        XCTAssertTrue(clients.contains("name=redis-ops-sub"), "the subscriber is still connected")
    }
}
