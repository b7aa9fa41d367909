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
