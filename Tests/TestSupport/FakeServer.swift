import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A scripted TCP server on loopback for protocol faults a real server cannot produce:
/// for each chunk a connection sends, it answers `reply(n)` (n counts from 1) and keeps the socket open.
public final class FakeServer: @unchecked Sendable {
    public let port: Int
    private let listener: Int32
    private var clients: [Int32] = []
    private let lock = NSLock()
    private var stopped = false

    public convenience init(reply: @escaping @Sendable (_ request: Int) -> [UInt8]) throws {
        try self.init(respond: { n, _ in (reply(n), false) })
    }

    /// Answers each chunk from what it says; `close` shuts the connection right after the answer
    /// (data and end of stream arriving together, as when a server dies just after a write).
    public init(respond: @escaping @Sendable (_ request: Int, _ bytes: [UInt8]) -> (reply: [UInt8], close: Bool)) throws {
        let (listener, port) = try listenOnLoopback(backlog: 8)
        self.port = port
        self.listener = listener
        let l = listener
        Thread.detachNewThread { [self] in
            var n = 0
            while true {
                let c = accept(l, nil, nil)
                if c < 0 { return }
                lock.lock(); clients.append(c); lock.unlock()
                n += 1
                let idx = n
                Thread.detachNewThread {
                    var buf = [UInt8](repeating: 0, count: 4096)
                    // Answer every request chunk with the script.
                    var req = 0
                    _ = idx
                    while true {
                        let got = recv(c, &buf, 4096, 0)
                        if got <= 0 { break }
                        req += 1
                        let (r, closing) = respond(req, Array(buf[0..<got]))
                        if !r.isEmpty { _ = r.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
                        if closing { shutdown(c, Int32(SHUT_RDWR)); break }
                    }
                }
            }
        }
    }

    public func stop() {
        lock.lock(); defer { lock.unlock() }
        if stopped { return }
        stopped = true
        shutdown(listener, Int32(SHUT_RDWR)); close(listener)
        for c in clients { shutdown(c, Int32(SHUT_RDWR)); close(c) }
    }
    deinit { stop() }
}

/// A listening TCP socket on 127.0.0.1 and a free port the kernel chose.
func listenOnLoopback(backlog: Int32) throws -> (fd: Int32, port: Int) {
    let l = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    var one: Int32 = 1
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(l, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0, listen(l, backlog) == 0 else { close(l); throw TestSupportError("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(l, $0, &len) } }
    return (l, Int(UInt16(bigEndian: addr.sin_port)))
}

/// The commands of a request chunk (RESP arrays of bulk strings, as clients send them).
public func respCommands(_ bytes: [UInt8]) -> [[String]] {
    var out: [[String]] = []
    var i = 0
    func line() -> String? {
        guard let end = (i..<max(i, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { return nil }
        defer { i = end + 2 }
        return String(decoding: bytes[i..<end], as: UTF8.self)
    }
    while i < bytes.count, bytes[i] == UInt8(ascii: "*") {
        guard let head = line(), let n = Int(head.dropFirst()) else { break }
        var args: [String] = []
        for _ in 0..<n {
            guard let len = line().flatMap({ Int($0.dropFirst()) }), i + len + 2 <= bytes.count else { return out }
            args.append(String(decoding: bytes[i..<(i + len)], as: UTF8.self))
            i += len + 2
        }
        out.append(args)
    }
    return out
}

/// A scripted server that speaks enough Redis for a client to connect (PING, CLIENT,
/// INFO, AUTH, SELECT answered) and answers everything else with `answer` (a raw RESP reply).
public func scriptedRedis(runID: String = "0123456789abcdef0123456789abcdef01234567",
                          _ answer: @escaping @Sendable ([String]) -> String) throws -> FakeServer {
    try FakeServer(respond: { _, bytes in
        var out = ""
        for cmd in respCommands(bytes) {
            switch cmd.first?.uppercased() {
            case "PING": out += "+PONG\r\n"
            case "AUTH", "SELECT", "READONLY": out += "+OK\r\n"
            case "CLIENT": out += cmd.count > 1 && cmd[1].uppercased() == "ID" ? ":7\r\n" : "+OK\r\n"
            case "INFO":
                let text = "# Server\r\nredis_version:7.0.15\r\nrun_id:\(runID)\r\ntcp_port:6379\r\n# Cluster\r\ncluster_enabled:0\r\n"
                out += "$\(text.utf8.count)\r\n\(text)\r\n"
            default: out += answer(cmd)
            }
        }
        return (Array(out.utf8), false)
    })
}
