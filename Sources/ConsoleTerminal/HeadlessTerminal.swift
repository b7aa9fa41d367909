import Foundation
import Synchronization
import ConsoleUI
#if canImport(Glibc)
import Glibc
#endif

/// A terminal with no screen: keys come from `press`, frames are kept in memory. The
/// console's loop runs on it unchanged (the benchmark measures the real thing).
public final class HeadlessTerminal: TerminalBackend, Sendable {
    private let keys = Mutex<[KeyInput]>([])
    private let pipeFDs: (Int32, Int32)
    public let width: Int
    public let height: Int

    public init(width: Int = 120, height: Int = 40) {
        self.width = width
        self.height = height
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        pipeFDs = (fds[0], fds[1])
    }
    deinit { close(pipeFDs.0); close(pipeFDs.1) }

    /// Queues a key for the console (from any thread) and wakes its loop.
    public func press(_ k: Key) {
        keys.withLock { $0.append(.key(k)) }
        var b: UInt8 = 1
        _ = write(pipeFDs.1, &b, 1)
    }

    public func type(_ text: String) { for c in text { press(.char(c)) } }

    public var size: (width: Int, height: Int) { (width, height) }
    public var inputFD: Int32 { pipeFDs.0 }

    public func readKey() -> KeyInput? {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(pipeFDs.0, &buf, 64) > 0 {}
        return keys.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    public func draw(_ g: CellGrid) {}
    public func invalidate() {}
    public func shutdown() {}
}
