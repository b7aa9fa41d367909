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
    /// Replies (server → client chunks) to drop on the connections carried now.
    private var swallow = 0
    /// Requests whose reply is dropped: a client chunk containing one of these arms its
    /// connection to lose the next reply it gets.
    private var swallowAfter: [[UInt8]] = []
    private var armed = Set<Int32>()
    /// Round trips per connection: a request that follows a reply starts a new one.
    private var turnCount = 0
    private var lastWasReply: [Int32: Bool] = [:]

    /// Round trips the clients made so far (over every connection carried).
    public var turns: Int { lock.lock(); defer { lock.unlock() }; return turnCount }
    /// Seconds each chunk is held in each direction (a tunnel's one-way delay).
    public let delay: Double

    /// `delay`: held this long each way, in order (25 ms each way plays a 50 ms tunnel).
    public init(to target: Int, delay: Double = 0) throws {
        self.target = target
        self.delay = delay
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
                let d = self.delay
                Thread.detachNewThread { self.pipe(from: c, to: up, delay: d, replies: false, pair: c) }
                Thread.detachNewThread { self.pipe(from: up, to: c, delay: d, replies: true, pair: c) }
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

    /// The next `n` replies on the connections open now are lost (the request reached the
    /// server and was carried out; its answer never comes back).
    public func swallowNextReplies(_ n: Int = 1) {
        lock.lock(); swallow += n; lock.unlock()
    }

    /// The reply to the next request containing `marker` (e.g. "UNLINK") is lost.
    public func swallowReply(to marker: String) {
        lock.lock(); swallowAfter.append(Array(marker.utf8)); lock.unlock()
    }

    private func takeSwallow(_ pair: Int32) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if armed.remove(pair) != nil { return true }
        if swallow > 0 { swallow -= 1; return true }
        return false
    }

    private func arm(_ pair: Int32, _ chunk: ArraySlice<UInt8>) {
        lock.lock(); defer { lock.unlock() }
        guard !swallowAfter.isEmpty else { return }
        let bytes = Array(chunk)
        for (i, m) in swallowAfter.enumerated() where bytes.count >= m.count {
            for start in 0...(bytes.count - m.count) where bytes[start..<(start + m.count)].elementsEqual(m) {
                armed.insert(pair)
                swallowAfter.remove(at: i)
                return
            }
        }
    }

    private final class Queue: @unchecked Sendable {
        let cond = NSCondition()
        var chunks: [(due: Double, bytes: [UInt8])] = []
        var closed = false
    }

    func pipe(from a: Int32, to b: Int32, delay: Double, replies: Bool, pair: Int32) {
        // With a delay, a second thread delivers each chunk when it is due, in order.
        let q = Queue()
        if delay > 0 {
            Thread.detachNewThread {
                while true {
                    q.cond.lock()
                    while q.chunks.isEmpty && !q.closed { q.cond.wait() }
                    if q.chunks.isEmpty && q.closed { q.cond.unlock(); break }
                    let (due, bytes) = q.chunks.removeFirst()
                    q.cond.unlock()
                    let wait = due - Date().timeIntervalSince1970
                    if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
                    if !Self.sendAll(b, bytes) { shutdown(a, Int32(SHUT_RDWR)); return }
                }
                shutdown(b, Int32(SHUT_RDWR))
            }
        }
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(a, &buf, buf.count)
            if n <= 0 { break }
            if replies && takeSwallow(pair) { continue }
            if !replies { arm(pair, buf[0..<n]) }
            lock.lock()
            if !replies && lastWasReply[pair] != false { turnCount += 1 }
            lastWasReply[pair] = replies
            lock.unlock()
            if delay > 0 {
                q.cond.lock(); q.chunks.append((Date().timeIntervalSince1970 + delay, Array(buf[0..<n]))); q.cond.signal(); q.cond.unlock()
            } else if !Self.sendAll(b, Array(buf[0..<n])) {
                shutdown(a, Int32(SHUT_RDWR)); return
            }
        }
        if delay > 0 { q.cond.lock(); q.closed = true; q.cond.signal(); q.cond.unlock() } else { shutdown(b, Int32(SHUT_RDWR)) }
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let w = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if w <= 0 { return false }
            off += w
        }
        return true
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
