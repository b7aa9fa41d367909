#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The thread of a subscriber worker and its doorbell: other threads `poke()` it after
/// posting a change; the worker polls `doorbell` beside its sockets and `drain()`s it.
/// Shared by `SubscriptionWorker` and `ShardSubscriptionWorker`.
final class WorkerThread: Sendable {
    /// The read end, for the worker's `poll`.
    let doorbell: Int32
    private let ringer: Int32
    private let finished = DispatchSemaphore(value: 0)

    init() {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        doorbell = fds[0]
        ringer = fds[1]
    }

    func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let t = Thread { [self] in body(); finished.signal() }
        t.name = name
        t.start()
    }

    /// Wakes the worker (non-blocking: a full pipe already means "wake up").
    func poke() { var b: UInt8 = 1; _ = write(ringer, &b, 1) }

    func drain() { var buf = [UInt8](repeating: 0, count: 64); while read(doorbell, &buf, 64) > 0 {} }

    /// Sleeps up to `seconds`, waking early when poked; false when `running()` turned false.
    func pause(_ seconds: Double, while running: () -> Bool) -> Bool {
        let end = monotonicNow() + seconds
        while running() {
            let left = end - monotonicNow()
            if left <= 0 { return true }
            var p = pollfd(fd: doorbell, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, Int32(min(left, 1.0) * 1000) + 1)
            drain()
        }
        return false
    }

    /// Waits for the thread to end (after the worker was told to stop and poked), then closes the pipe.
    func join() { finished.wait(); close(doorbell); close(ringer) }
}
