import XCTest
import Foundation
@testable import OpsCore
import RedisClient
import RedisProtocol

func m(_ ch: String, _ p: String, at t: Double = 1000) -> ReceivedMessage {
    ReceivedMessage(channel: Bytes(utf8: ch), pattern: nil, payload: Bytes(utf8: p), receivedAt: t)
}

final class ChannelTailTests: XCTestCase {
    func testBoundedAndCountsEvictions() {
        var t = ChannelTail(capacity: 100)
        for i in 0..<25 { t.append(messages: (0..<10).map { m("c", "\(i)-\($0)") }) }
        XCTAssertEqual(t.count, 100)
        XCTAssertEqual(t.received, 250)
        XCTAssertEqual(t.evicted, 150)
        XCTAssertEqual(t[0].message?.payload, Bytes(utf8: "15-0"))
        XCTAssertEqual(t[99].message?.payload, Bytes(utf8: "24-9"))
        XCTAssertEqual(t.oldestSeq, 151)
        XCTAssertEqual(t.nextSeq, 251)
    }

    func testBatchLargerThanCapacityKeepsTheNewest() {
        var t = ChannelTail(capacity: 10)
        t.append(messages: (0..<1000).map { m("c", "\($0)") })
        XCTAssertEqual(t.count, 10)
        XCTAssertEqual(t.evicted, 990)
        XCTAssertEqual(t[9].message?.payload, Bytes(utf8: "999"))
        XCTAssertEqual(t[0].message?.payload, Bytes(utf8: "990"))
        XCTAssertEqual(t.channels[Bytes(utf8: "c")]?.total, 1000)
    }

    func testByteBudgetAndTruncation() {
        var t = ChannelTail(capacity: 1000, maxBytes: 10_000, maxStoredPayload: 1000)
        t.append(messages: (0..<50).map { _ in m("c", String(repeating: "x", count: 5000)) })
        XCTAssertLessThanOrEqual(t.bytes, 10_000)
        XCTAssertEqual(t[t.count - 1].originalSize, 5000)
        XCTAssertEqual(t[t.count - 1].message?.payload.count, 1000)
    }

    func testGapsAndFilters() {
        var t = ChannelTail()
        t.append(messages: [m("workspace:1:events", #"{"type":"member.added","data":{"user":{"id":7}}}"#)])
        t.append(gap: TailGap(from: 1, to: 2, reason: "connection reset"))
        t.append(messages: [m("workspace:2:events", "plain TEXT")])
        XCTAssertEqual(t.gaps, 1)
        XCTAssertEqual(t.entries(filter: TailFilter("type=member.added")).count, 1)
        XCTAssertEqual(t.entries(filter: TailFilter("data.user.id=7")).count, 1)
        XCTAssertEqual(t.entries(filter: TailFilter("data.user.id=8")).count, 0)
        XCTAssertEqual(t.entries(filter: TailFilter("text")).count, 1)
        XCTAssertEqual(t.entries(filter: TailFilter("WORKSPACE:2")).count, 1)
        XCTAssertEqual(t.entries(upTo: 2).count, 2)
    }

    /// A pattern that brings hundreds of thousands of channels must not grow the console
    /// without bound: the busiest are counted, the rest estimated.
    func testPerChannelCountersAreBoundedAndTheBusiestKept() {
        var t = ChannelTail(capacity: 1000)
        let n = 300_000
        var batch: [ReceivedMessage] = []
        for i in 0..<n {
            batch.append(ReceivedMessage(channel: Bytes(utf8: "workspace:\(i):events"), pattern: nil, payload: [], receivedAt: 1000 + Double(i) / Double(n)))
            if batch.count == 1000 { t.append(messages: batch); batch = [] }
        }
        // Two busy channels, on and on.
        for _ in 0..<50 {
            t.append(messages: (0..<20).map { j in ReceivedMessage(channel: Bytes(utf8: j % 2 == 0 ? "busy:a" : "busy:b"), pattern: nil, payload: [], receivedAt: 1001) })
        }
        XCTAssertLessThanOrEqual(t.channels.count, 2 * ChannelTail.maxChannels)
        let heard = t.channelsHeard
        XCTAssertFalse(heard.exact)
        XCTAssertEqual(Double(heard.count), Double(n + 2), accuracy: Double(n) * 0.03, "the estimate is within 3 %")
        let top = t.busiest(3, at: 1001.5)
        XCTAssertEqual(Set(top.prefix(2).map(\.name)), [Bytes(utf8: "busy:a"), Bytes(utf8: "busy:b")])
        XCTAssertEqual(top[0].stats.total, 500)
        XCTAssertEqual(t.received, n + 1000)
        // Few channels: counted exactly.
        var small = ChannelTail(capacity: 10)
        small.append(messages: (0..<7).map { ReceivedMessage(channel: Bytes(utf8: "c\($0)"), pattern: nil, payload: [], receivedAt: 1) })
        XCTAssertEqual(small.channelsHeard.count, 7)
        XCTAssertTrue(small.channelsHeard.exact)
    }

    func testInboxIsBoundedCountsDropsAndKeepsOrderUnderConcurrentDelivery() {
        let inbox = TailInbox(capacity: 1000)
        let g = DispatchGroup()
        for w in 0..<4 {
            g.enter()
            DispatchQueue.global().async {
                for i in 0..<500 { inbox.deliver([m("c\(w)", "\(i)")]) }
                g.leave()
            }
        }
        // The console's side: take everything now and then, without holding the lock while it works.
        var tail = ChannelTail(capacity: 1000)
        for _ in 0..<200 { _ = tail.absorb(inbox.take(), now: 1000) }
        g.wait()
        _ = tail.absorb(inbox.take(), now: 1000)
        XCTAssertEqual(tail.received, 2000, "dropped messages still count")
        XCTAssertEqual(tail.count, 1000)
        XCTAssertEqual(tail.evicted, 1000)
        XCTAssertEqual((0..<4).map { tail.channels[Bytes(utf8: "c\($0)")]?.total ?? 0 }, [500, 500, 500, 500])
    }

    func testInboxKeepsAGapWhereItHappened() {
        let inbox = TailInbox(capacity: 3)
        inbox.deliver([m("c", "1"), m("c", "2")])
        inbox.notice(.gap(from: 5, to: 6, reason: "server closed the connection"))
        inbox.deliver([m("c", "3"), m("c", "4")])
        var tail = ChannelTail(capacity: 10)
        let notices = tail.absorb(inbox.take(), now: 7)
        XCTAssertEqual(notices, [.gap(TailGap(from: 5, to: 6, reason: "server closed the connection"))])
        // Over capacity the oldest messages went; the gap stays between what came before and after it.
        XCTAssertEqual((0..<tail.count).map { e -> String in
            switch tail[e].kind { case .message(let x): return x.payload.lossyString; case .gap: return "gap"; case .note: return "note" }
        }, ["2", "gap", "3", "4"])
        XCTAssertEqual(tail.received, 4)
        XCTAssertEqual(tail.evicted, 1)
    }

    func testRateFollowsAFloodThatStops() {
        var st = ChannelStats()
        st.add(1000, at: 100.2)
        st.add(1000, at: 101.5)
        XCTAssertGreaterThan(st.rate(at: 101.6), 500)
        XCTAssertLessThan(st.rate(at: 104.2), st.rate(at: 102.2), "it falls as time passes, computed when shown")
        XCTAssertEqual(st.rate(at: 106.1), 0, "once the last message is out of the four-second window the rate reads 0")
    }
}

final class JSONTests: XCTestCase {
    func testParseAndCompact() {
        let j = JSONParser.parse(Bytes(utf8: #" { "a" : [1, -2.5, true, null, "x\"y\u00e9\ud83d\ude00"], "b": {} } "#))!
        XCTAssertEqual(j.serialized(), #"{"a":[1,-2.5,true,null,"x\"yé😀"],"b":{}}"#)
        XCTAssertNil(JSONParser.parse(Bytes(utf8: "{\"a\":}")))
        XCTAssertNil(JSONParser.parse(Bytes(utf8: "[1,]")))
        XCTAssertNil(JSONParser.parse(Bytes(utf8: "{} x")))
        XCTAssertNil(JSONParser.parse(Bytes(utf8: String(repeating: "[", count: 100) + String(repeating: "]", count: 100))), "depth is bounded")
    }

    func testPretty() {
        let j = JSONParser.parse(Bytes(utf8: #"{"type":"member.added","ids":[1,2],"empty":[]}"#))!
        XCTAssertEqual(j.prettyLines(), ["{", #"  "type": "member.added","#, #"  "ids": ["#, "    1,", "    2", "  ],", #"  "empty": []"#, "}"])
    }

    func testStringEscapingOfInvalidBytesAndControls() {
        XCTAssertEqual(JSON.stringLiteral([0x61, 0xFF, 0x0A, 0x1B, 0x22, 0x5C]), #""a\u00ff\n\u001b\"\\""#)
        XCTAssertEqual(JSON.stringLiteral(Bytes(utf8: "é\u{2028}\u{85}")), #""é\u2028\u0085""#)
        XCTAssertEqual(JSON.int(-1234567890123).serialized(), "-1234567890123")
        XCTAssertEqual(JSON.object([("k", .bytes([0xC3]))]).serialized(), #"{"k":"\u00c3"}"#)
        // Bidi overrides, zero-width characters and tags too: `jq -r` must not put them on a terminal.
        XCTAssertEqual(JSON.stringLiteral(Bytes(utf8: "a\u{202E}b\u{200B}c\u{2066}d\u{FEFF}e\u{E0041}f")),
                       #""a\u202eb\u200bc\u2066d\ufeffe\udb40\udc41f""#)
        let parsed = try? JSONSerialization.jsonObject(with: Data(JSON.stringLiteral(Bytes(utf8: "x\u{E0041}\u{202E}")).utf8), options: .fragmentsAllowed) as? String
        XCTAssertEqual(parsed, "x\u{E0041}\u{202E}", "still the same text once parsed")
    }

    func testTimestamps() {
        XCTAssertEqual(isoTimestamp(1_795_708_800.123), "2026-11-26T16:00:00.123Z")
        XCTAssertEqual(isoTimestamp(1_795_708_800.9996), "2026-11-26T16:00:01.000Z")
    }
}

final class SchemaTests: XCTestCase {
    func testGlob() {
        XCTAssertTrue(globMatch(Bytes(utf8: "workspace:*"), Bytes(utf8: "workspace:12")))
        XCTAssertFalse(globMatch(Bytes(utf8: "workspace:*"), Bytes(utf8: "lock:workspace:1")))
        XCTAssertTrue(globMatch(Bytes(utf8: "a?c"), Bytes(utf8: "abc")))
        XCTAssertTrue(globMatch(Bytes(utf8: "[a-c]x"), Bytes(utf8: "bx")))
        XCTAssertFalse(globMatch(Bytes(utf8: "[^a-c]x"), Bytes(utf8: "bx")))
        XCTAssertTrue(globMatch(Bytes(utf8: "a\\*"), Bytes(utf8: "a*")))
        XCTAssertFalse(globMatch(Bytes(utf8: "a\\*"), Bytes(utf8: "ab")))
        XCTAssertTrue(globMatch(Bytes(utf8: "*:events"), Bytes(utf8: "workspace:1:events")))
    }

    func testKindsAndPrefix() {
        let s = KeySchema(prefix: "app:")
        XCTAssertEqual(s.kind(of: Bytes(utf8: "app:workspace:1")), .cache)
        XCTAssertEqual(s.kind(of: Bytes(utf8: "app:lock:app:workspace:1")), .lock)
        XCTAssertEqual(s.kind(of: Bytes(utf8: "app:ratelimit:ip:1.2.3.4")), .rateLimit)
        XCTAssertEqual(s.kind(of: Bytes(utf8: "app:session:1")), .other)
        XCTAssertEqual(s.kind(of: Bytes(utf8: "workspace:1")), .other)
        XCTAssertEqual(s.fullGlob("workspace:*"), Bytes(utf8: "app:workspace:*"))
        XCTAssertEqual(KeySchema(prefix: "a*b:").fullGlob("x"), Bytes(utf8: "a\\*b:x"))
        XCTAssertTrue(s.isProtected(Bytes(utf8: "app:lock:x")))
        XCTAssertFalse(s.isProtected(Bytes(utf8: "app:workspace:1")))
    }

    func testFormats() {
        XCTAssertEqual(formatDuration(299_512), "4m59s")
        XCTAssertEqual(formatDuration(850), "850ms")
        XCTAssertEqual(formatDuration(3_720_000), "1h02m")
        XCTAssertEqual(formatBytes(93), "93 B")
        XCTAssertEqual(formatBytes(1536), "1.5 KB")
    }
}

final class ReplyTextTests: XCTestCase {
    func testReplyLinesSplitCRLFAndLF() {
        XCTAssertEqual("# Stats\r\ncmdstat_get:calls=3,usec=1\r\ncmdstat_set:calls=2\r\n".replyLines, ["# Stats", "cmdstat_get:calls=3,usec=1", "cmdstat_set:calls=2"])
        XCTAssertEqual("id=1 addr=a\nid=2 addr=b\n".replyLines.count, 2)
        XCTAssertEqual(ServerInfo(text: "# Server\r\nredis_version:7.0.15\r\nrole:master\r\n")["role"], "master")
        XCTAssertEqual(ClientSummary(clientList: "id=1 name=api sub=0\r\nid=2 name=api sub=0\r\n").total, 2)
    }
}
