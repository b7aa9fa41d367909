import XCTest
@testable import RedisProtocol

final class EncoderTests: XCTestCase {
    func testEncodesBinarySafeArguments() {
        let key: Bytes = [0x61, 0x00, 0x0D, 0x0A, 0xFF, 0x20, 0x22]
        let out = RESPEncoder.encode([Bytes(utf8: "GET"), key])
        XCTAssertEqual(out, Bytes(utf8: "*2\r\n$3\r\nGET\r\n$7\r\n") + key + Bytes(utf8: "\r\n"))
    }

    func testEncodesEmptyArgument() {
        XCTAssertEqual(RESPEncoder.encode([Bytes(utf8: "SET"), Bytes(utf8: "k"), []]),
                       Bytes(utf8: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"))
    }

    func testPipelineAppendsCommands() {
        var out = Bytes()
        RESPEncoder.append([Bytes(utf8: "PING")], to: &out)
        RESPEncoder.append([Bytes(utf8: "PING")], to: &out)
        XCTAssertEqual(out, Bytes(utf8: "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n"))
    }
}

final class DecoderTests: XCTestCase {
    func decodeAll(_ s: Bytes, limits: DecoderLimits = .default) throws -> [RESPValue] {
        let d = RESPDecoder(limits: limits)
        try d.feed(s)
        var out: [RESPValue] = []
        try d.drain(into: &out)
        return out
    }

    func testEveryReplyType() throws {
        let v = try decodeAll(Bytes(utf8: "+OK\r\n-ERR bad\r\n:42\r\n:-7\r\n$3\r\nabc\r\n$-1\r\n$0\r\n\r\n*2\r\n$1\r\na\r\n:1\r\n*0\r\n*-1\r\n"))
        XCTAssertEqual(v, [
            .simpleString(Bytes(utf8: "OK")), .error(Bytes(utf8: "ERR bad")), .integer(42), .integer(-7),
            .bulk(Bytes(utf8: "abc")), .bulk(nil), .bulk([]),
            .array([.bulk(Bytes(utf8: "a")), .integer(1)]), .array([]), .bulk(nil),
        ])
    }

    func testBinaryBulkWithCRLFInside() throws {
        let payload: Bytes = [0, 13, 10, 255, 27]
        let v = try decodeAll(Bytes(utf8: "$5\r\n") + payload + Bytes(utf8: "\r\n"))
        XCTAssertEqual(v, [.bulk(payload)])
    }

    func testPartialFramesByteByByte() throws {
        let wire = Bytes(utf8: "*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n+PONG\r\n")
        let d = RESPDecoder()
        var out: [RESPValue] = []
        for (i, b) in wire.enumerated() {
            try d.feed([b])
            try d.drain(into: &out)
            if i < wire.count - 8 { XCTAssertTrue(out.isEmpty, "no reply before the frame is complete (byte \(i))") }
        }
        XCTAssertEqual(out, [.array([.bulk(Bytes(utf8: "message")), .bulk(Bytes(utf8: "chan")), .bulk(Bytes(utf8: "hello"))]),
                             .simpleString(Bytes(utf8: "PONG"))])
    }

    func testNestedArrays() throws {
        let v = try decodeAll(Bytes(utf8: "*2\r\n*1\r\n:1\r\n*2\r\n$1\r\nx\r\n*0\r\n"))
        XCTAssertEqual(v, [.array([.array([.integer(1)]), .array([.bulk(Bytes(utf8: "x")), .array([])])])])
    }

    func testBulkLargerThanCapIsRefusedFromItsHeader() throws {
        let d = RESPDecoder(limits: DecoderLimits(maxElements: 100, maxBulkBytes: 1000))
        try d.feed(Bytes(utf8: "$999999999\r\nab"))
        XCTAssertThrowsError(try d.next()) { e in
            XCTAssertTrue((e as! ProtocolError).message.contains("999999999 bytes exceeds"), "\(e)")
        }
        // The decoder stays broken: the connection must be closed.
        XCTAssertThrowsError(try d.feed(Bytes(utf8: "+OK\r\n")))
    }

    func testArrayLargerThanCapIsRefused() throws {
        XCTAssertThrowsError(try decodeAll(Bytes(utf8: "*2000000000\r\n"), limits: DecoderLimits(maxElements: 1000, maxBulkBytes: 1000)))
    }

    func testNestedArrayLargerThanCapIsRefusedBeforeAllocation() throws {
        // The inner header arrives in the same chunk: the callback cap catches it.
        XCTAssertThrowsError(try decodeAll(Bytes(utf8: "*1\r\n*1000000\r\n"), limits: DecoderLimits(maxElements: 1000, maxBulkBytes: 1000))) { e in
            XCTAssertTrue("\(e)".contains("1000000 elements"), "\(e)")
        }
    }

    func testBulkInsideArrayOverCapIsRefused() throws {
        let d = RESPDecoder(limits: DecoderLimits(maxElements: 10, maxBulkBytes: 100))
        try d.feed(Bytes(utf8: "*2\r\n$1\r\na\r\n$5000\r\nxx"))
        XCTAssertThrowsError(try d.next())
    }

    func testUnterminatedLineBeyondCapIsRefused() throws {
        let d = RESPDecoder(limits: DecoderLimits(maxElements: 10, maxBulkBytes: 100))
        try d.feed(Bytes(utf8: "+" + String(repeating: "a", count: 300)))
        XCTAssertThrowsError(try d.next())
    }

    func testMalformedLengthIsRefused() throws {
        let d = RESPDecoder()
        try d.feed(Bytes(utf8: "$12x4\r\n"))
        XCTAssertThrowsError(try d.next())
    }

    func testUnknownTypeByteIsAProtocolError() throws {
        // A RESP3 map type byte (never sent by a RESP2 server): hiredis 0.14 cannot parse it.
        XCTAssertThrowsError(try decodeAll(Bytes(utf8: "%1\r\n+a\r\n+b\r\n")))
    }

    func testNestingDeeperThanHiredisSupportsIsAProtocolError() throws {
        let deep = String(repeating: "*1\r\n", count: 12) + ":1\r\n"
        XCTAssertThrowsError(try decodeAll(Bytes(utf8: deep)))
    }

    func testCapsAtExactLimitAreAccepted() throws {
        let v = try decodeAll(Bytes(utf8: "$4\r\nabcd\r\n*2\r\n:1\r\n:2\r\n"), limits: DecoderLimits(maxElements: 2, maxBulkBytes: 4))
        XCTAssertEqual(v.count, 2)
    }
}

final class ValueTests: XCTestCase {
    func testServerErrorClassification() {
        XCTAssertEqual(ServerError("WRONGPASS invalid username-password pair").kind, .wrongPass)
        XCTAssertEqual(ServerError("NOPERM User alice has no permissions to run the 'del' command").kind, .noPerm)
        XCTAssertEqual(ServerError("LOADING Redis is loading the dataset in memory").kind, .loading)
        XCTAssertEqual(ServerError("READONLY You can't write against a read only replica.").kind, .readOnly)
        XCTAssertEqual(ServerError("ERR unknown command 'CONFIG', with args beginning with: ").kind, .unknownCommand)
        XCTAssertEqual(ServerError("MOVED 3999 127.0.0.1:6381").kind, .moved)
        XCTAssertEqual(ServerError("NOAUTH Authentication required.").kind, .noAuth)
        XCTAssertTrue(ServerError("ERR unknown command 'CONFIG'").isNotAllowed)
    }

    func testTTLMeaning() {
        XCTAssertEqual(TTLState(pttl: -2), .gone)
        XCTAssertEqual(TTLState(pttl: -1), .persistent)
        XCTAssertEqual(TTLState(pttl: 1500), .expiresIn(ms: 1500))
        XCTAssertEqual(TTLState.persistent.jsonMilliseconds, -1)
    }
}
