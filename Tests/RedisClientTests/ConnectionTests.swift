import XCTest
import Foundation
@testable import RedisClient
import RedisProtocol
import TestSupport

final class PlainConnectionTests: XCTestCase {
    static let fixture = Shared { try RedisServer(.plain) }
    var server: RedisServer!
    override func setUpWithError() throws { server = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.stop() } }

    func testPipelineRepliesInOrder() throws {
        let c = try RedisConnection(server.config())
        var cmds: [[Bytes]] = []
        for i in 0..<500 { cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "pipe:\(i)"), Bytes(utf8: "v\(i)")]) }
        for i in 0..<500 { cmds.append([Bytes(utf8: "GET"), Bytes(utf8: "pipe:\(i)")]) }
        cmds.append([Bytes(utf8: "INCR"), Bytes(utf8: "pipe:0")])  // an error in the middle of a pipeline
        cmds.append([Bytes(utf8: "PING")])
        let r = try c.pipeline(cmds)
        XCTAssertEqual(r.count, 1002)
        for i in 0..<500 { XCTAssertEqual(r[500 + i], .bulk(Bytes(utf8: "v\(i)"))) }
        XCTAssertNotNil(r[1000].errorReply)
        XCTAssertEqual(r[1001], .simpleString(Bytes(utf8: "PONG")))
    }

    func testBinarySafeKeysAndValues() throws {
        let c = try RedisConnection(server.config())
        let key: Bytes = [0x6B, 0x00, 0x0A, 0xFF, 0x20, 0x2A]
        let val: Bytes = (0...255).map { UInt8($0) }
        try c.call([Bytes(utf8: "SET"), key, val])
        XCTAssertEqual(try c.call([Bytes(utf8: "GET"), key]), .bulk(val))
    }

    func testTypedServerErrors() throws {
        let c = try RedisConnection(server.config())
        XCTAssertThrowsError(try c.call("NOSUCHCOMMAND")) { e in
            guard case RedisError.server(let se) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(se.kind, .unknownCommand)
        }
        try c.call("SET", "str", "x")
        XCTAssertThrowsError(try c.call("LPUSH", "str", "y")) { e in
            guard case RedisError.server(let se) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(se.kind, .wrongType)
        }
        XCTAssertEqual(try c.call("PING"), .simpleString(Bytes(utf8: "PONG")), "still usable after error replies")
    }

    func testSelectDatabase() throws {
        var cfg = server.config()
        cfg.db = 3
        let c = try RedisConnection(cfg)
        try c.call("SET", "dbkey", "3")
        let admin = try server.admin()
        XCTAssertEqual(try admin.call("GET", "dbkey"), .bulk(nil))
        try admin.call("SELECT", "3")
        XCTAssertEqual(try admin.call("GET", "dbkey"), .bulk(Bytes(utf8: "3")))
    }

    func testConnectionRefusedSaysSo() {
        let port = freePort()
        XCTAssertThrowsError(try RedisConnection(ConnectionConfig(host: "127.0.0.1", port: port))) { e in
            XCTAssertTrue("\(e)".contains("connection refused"), "\(e)")
        }
    }

    func testUnresolvableHostSaysSo() {
        XCTAssertThrowsError(try RedisConnection(ConnectionConfig(host: "no-such-host.invalid", port: 6379))) { e in
            XCTAssertTrue("\(e)".contains("not resolved"), "\(e)")
        }
    }

    func testPasswordGivenToServerWithoutOne() {
        XCTAssertThrowsError(try RedisConnection(server.config(password: "x"))) { e in
            guard case RedisError.auth = e else { return XCTFail("\(e)") }
        }
    }

    func testScanCursorWalksEveryPageIncludingEmptyOnes() throws {
        let admin = try server.admin()
        var cmds: [[Bytes]] = []
        for i in 0..<2500 { cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "scan:\(i)"), Bytes(utf8: "1")]) }
        for i in 0..<3000 { cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "noise:\(i)"), Bytes(utf8: "1")]) }
        _ = try admin.pipeline(cmds)
        // COUNT 10 with a sparse MATCH yields many empty pages; the cursor walks them all.
        var s = KeyScanner(match: Bytes(utf8: "scan:1*"), count: 10)
        var got = Set<Bytes>()
        var emptyPages = 0
        while let page = try s.next(on: admin) {
            if page.isEmpty { emptyPages += 1 }
            got.formUnion(page)
        }
        let expected = (0..<2500).map { "scan:\($0)" }.filter { $0.hasPrefix("scan:1") }
        XCTAssertEqual(got, Set(expected.map { Bytes(utf8: $0) }))
        XCTAssertGreaterThan(emptyPages, 0)
        XCTAssertTrue(s.done)
        XCTAssertNil(s.nextCommand)
    }
}

final class AuthTests: XCTestCase {
    func testPasswordRightAndWrong() throws {
        let s = try RedisServer(.password("s3cret-pw"))
        defer { s.stop() }
        let c = try RedisConnection(s.config())
        XCTAssertEqual(try c.call("PING"), .simpleString(Bytes(utf8: "PONG")))
        XCTAssertThrowsError(try RedisConnection(s.config(password: "wrong-pw"))) { e in
            guard case RedisError.auth(let m) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("WRONGPASS") || m.contains("invalid password"), m)
            XCTAssertFalse(m.contains("wrong-pw"))
        }
        var none = s.config(); none.password = nil
        XCTAssertThrowsError(try RedisConnection(none)) { e in
            XCTAssertTrue("\(e)".contains("requires a password"), "\(e)")
        }
    }

    func testACLUserAndNOPERM() throws {
        let s = try RedisServer(.acl(users: ["alice on >alicepw ~app:* &* +@all -flushall -memory", "default off"], defaultPassword: nil))
        defer { s.stop() }
        let c = try RedisConnection(s.config(user: "alice", password: "alicepw"))
        try c.call("SET", "app:x", "1")
        XCTAssertThrowsError(try c.call("SET", "other:x", "1")) { e in
            guard case RedisError.server(let se) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(se.kind, .noPerm)
        }
        XCTAssertThrowsError(try c.call("MEMORY", "USAGE", "app:x")) { e in
            guard case RedisError.server(let se) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(se.isNotAllowed)
        }
        XCTAssertThrowsError(try RedisConnection(s.config(user: "alice", password: "nope"))) { e in
            guard case RedisError.auth = e else { return XCTFail("\(e)") }
            XCTAssertFalse("\(e)".contains("nope"))
        }
    }
}

final class TLSTests: XCTestCase {
    static let fixture = Shared { () throws -> (TestCerts, RedisServer) in
        let certs = try TestCerts.shared.get()
        return (certs, try RedisServer(.tls(certs, requireClientCert: false), extraConfig: ["requirepass tlspw"]))
    }
    var certs: TestCerts!
    var server: RedisServer!
    override func setUpWithError() throws { (certs, server) = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.1.stop() } }

    func cfg(_ tls: TLSSettings, host: String = "127.0.0.1") -> ConnectionConfig {
        ConnectionConfig(host: host, port: server.port, password: Secret("tlspw"), tls: tls)
    }

    func testVerifiedConnectionByIPAndByName() throws {
        let c = try RedisConnection(cfg(TLSSettings(caFile: certs.caCert)))
        XCTAssertTrue(c.transport.isTLS)
        XCTAssertEqual(try c.call("PING"), .simpleString(Bytes(utf8: "PONG")))
        let d = try RedisConnection(cfg(TLSSettings(caFile: certs.caCert), host: "localhost"))
        XCTAssertEqual(try d.call("PING"), .simpleString(Bytes(utf8: "PONG")))
    }

    func testWrongCAIsNotTrusted() {
        XCTAssertThrowsError(try RedisConnection(cfg(TLSSettings(caFile: certs.otherCACert)))) { e in
            guard case RedisError.tls(_, let why) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("certificate not trusted"), why)
        }
    }

    func testSystemStoreDoesNotTrustTestCA() {
        XCTAssertThrowsError(try RedisConnection(cfg(TLSSettings()))) { e in
            XCTAssertTrue("\(e)".contains("not trusted"), "\(e)")
        }
    }

    func testHostNameMismatchViaSNI() {
        XCTAssertThrowsError(try RedisConnection(cfg(TLSSettings(caFile: certs.caCert, serverName: "other.example")))) { e in
            XCTAssertTrue("\(e)".contains("host name mismatch"), "\(e)")
        }
    }

    func testInsecureSkipsVerification() throws {
        let c = try RedisConnection(cfg(TLSSettings(caFile: certs.otherCACert, serverName: "other.example", insecure: true)))
        XCTAssertEqual(try c.call("PING"), .simpleString(Bytes(utf8: "PONG")))
    }

    func testPlainClientOnTLSPortFailsClearly() {
        var c = cfg(TLSSettings())
        c.tls = nil
        c.timeouts = Timeouts(connect: 2, io: 2)
        XCTAssertThrowsError(try RedisConnection(c)) { e in
            // It says the port speaks TLS and what to do; not a protocol or authentication error.
            guard case RedisError.tls(_, let why)? = e as? RedisError else { return XCTFail("unexpected error: \(e)") }
            XCTAssertEqual(why, "this port speaks TLS: connect with --tls (or a rediss:// URL)")
            XCTAssertFalse((e as! RedisError).isTransient, "not retried as if the server were down")
        }
    }

    func testTLSClientOnAPlainPortSaysTheHandshakeFailed() throws {
        let plain = try RedisServer(.plain)
        defer { plain.stop() }
        let c = ConnectionConfig(host: "127.0.0.1", port: plain.port, tls: TLSSettings(caFile: certs.caCert), timeouts: Timeouts(connect: 3, io: 3))
        XCTAssertThrowsError(try RedisConnection(c)) { e in
            guard case RedisError.tls(_, let why) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("handshake"), why)
        }
    }

    func testCertificateForAnotherHostIsRejected() throws {
        let other = try RedisServer(.tls(certs.withOtherHostServerCert, requireClientCert: false))
        defer { other.stop() }
        let c = ConnectionConfig(host: "127.0.0.1", port: other.port, tls: TLSSettings(caFile: certs.caCert))
        XCTAssertThrowsError(try RedisConnection(c)) { e in
            XCTAssertTrue("\(e)".contains("host name mismatch"), "\(e)")
        }
        var byName = c; byName.host = "localhost"
        XCTAssertThrowsError(try RedisConnection(byName)) { e in
            XCTAssertTrue("\(e)".contains("host name mismatch"), "\(e)")
        }
        var sni = c; sni.tls?.serverName = "other.example"
        XCTAssertEqual(try RedisConnection(sni).call("PING"), .simpleString(Bytes(utf8: "PONG")), "the right name verifies")
    }

    func testClientCertificate() throws {
        let s = try RedisServer(.tls(certs, requireClientCert: true))
        defer { s.stop() }
        var c = ConnectionConfig(host: "127.0.0.1", port: s.port, tls: TLSSettings(caFile: certs.caCert))
        c.timeouts = Timeouts(connect: 3, io: 3)
        // The server's TLS 1.3 alert races our first write: the cause must be named either way.
        for _ in 0..<12 {
            XCTAssertThrowsError(try RedisConnection(c).call("PING")) { e in
                guard case RedisError.tls(_, let why)? = e as? RedisError else { return XCTFail("\(e)") }
                XCTAssertEqual(why, "the server requires a client certificate (give it with --cert and --key)")
                XCTAssertFalse((e as! RedisError).isTransient)
            }
        }
        c.tls?.certFile = certs.clientCert
        c.tls?.keyFile = certs.clientKey
        XCTAssertEqual(try RedisConnection(c).call("PING"), .simpleString(Bytes(utf8: "PONG")))
    }
}
