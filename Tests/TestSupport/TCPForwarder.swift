import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Plays an endpoint that moves, as ElastiCache's primary endpoint does in a failover: it
/// listens on a port and forwards every new connection to the current target; `switchTo`
/// points it elsewhere and, like the old primary going away, can drop the connections it
/// carries.
public final class TCPForwarder: @unchecked Sendable {
    public let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var target: Int
    private var open: [Int32] = []
    private var stopped = false

    public init(to target: Int) throws {
        self.target = target
        let (l, port) = try listenOnLoopback(backlog: 64)
        self.port = port
        listener = l
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(l, nil, nil)
                if c < 0 { return }
                lock.lock()
                let t = self.target   // the property: `target` alone is init's parameter here
                lock.unlock()
                let up = Self.connect(t)
                if up < 0 { close(c); continue }
                lock.lock(); open += [c, up]; lock.unlock()
                Thread.detachNewThread { Self.pipe(from: c, to: up) }
                Thread.detachNewThread { Self.pipe(from: up, to: c) }
            }
        }
    }

    static func connect(_ port: Int) -> Int32 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 { close(s); return -1 }
        return s
    }

    static func pipe(from a: Int32, to b: Int32) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(a, &buf, buf.count)
            if n <= 0 { break }
            var off = 0
            while off < n {
                let w = buf.withUnsafeBytes { send(b, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }
                if w <= 0 { shutdown(a, Int32(SHUT_RDWR)); return }
                off += w
            }
        }
        shutdown(b, Int32(SHUT_RDWR))
    }

    /// New connections go to `port`; with `dropExisting` the ones carried now are cut.
    public func switchTo(_ port: Int, dropExisting: Bool) {
        lock.lock()
        target = port
        let fds = dropExisting ? open : []
        if dropExisting { open.removeAll() }
        lock.unlock()
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    public func stop() {
        lock.lock(); defer { lock.unlock() }
        if stopped { return }
        stopped = true
        shutdown(listener, Int32(SHUT_RDWR)); close(listener)
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
    }
    deinit { stop() }
}
