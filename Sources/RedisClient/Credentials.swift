#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Where the password comes from, read again when the server refuses it: ElastiCache rotates
/// AUTH tokens, IAM tokens expire every 15 minutes, vaults hand out new secrets. Every
/// connection (commands, subscribers, workers, cluster nodes) shares one source.
public final class CredentialSource: Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case fixed
        case file(String)
        case command(String)
    }

    public let kind: Kind
    private struct State {
        var password: Secret?
        /// Bumped each time a read gives a different password.
        var version = 0
        var lastRead = -Double.infinity
        var error: String?
    }
    private let state: Mutex<State>
    /// A command is run at most this often (seconds); a file is cheap to read.
    public let commandInterval: Double
    public let commandTimeout: Double

    public init(kind: Kind, initial: Secret?, commandInterval: Double = 5, commandTimeout: Double = 30) {
        self.kind = kind
        self.commandInterval = commandInterval
        self.commandTimeout = commandTimeout
        state = Mutex(State(password: initial, lastRead: monotonicNow()))
    }

    /// Where the password comes from, in words (never the password).
    public var description: String {
        switch kind {
        case .fixed: return "the password given"
        case .file(let p): return "the password file \(p)"
        case .command: return "the password command"
        }
    }

    /// The password to authenticate with now.
    public var current: Secret? { state.withLock { $0.password } }
    public var version: Int { state.withLock { $0.version } }
    /// Why the last read failed (the command's error), if it did.
    public var lastError: String? { state.withLock { $0.error } }

    /// Reads the source again (a command at most every `commandInterval` seconds). Returns
    /// whether the password changed.
    @discardableResult
    public func reread() -> Bool {
        state.withLock { s in
            let now = monotonicNow()
            switch kind {
            case .fixed: return false
            case .command: if now - s.lastRead < commandInterval { return false }
            case .file: break
            }
            s.lastRead = now
            do {
                let pw = try Self.read(kind, timeout: commandTimeout)
                s.error = nil
                if pw != s.password { s.password = pw; s.version += 1; return true }
            } catch {
                s.error = "\(error)"
            }
            return false
        }
    }

    /// The source's value, read now. A file loses one trailing LF or CR LF, as does a
    /// command's output.
    public static func read(_ kind: Kind, timeout: Double = 30) throws -> Secret? {
        switch kind {
        case .fixed: return nil
        case .file(let path):
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw RedisError.usage("cannot read the password file '\(path)': \((error as NSError).localizedDescription)")
            }
            return Secret(stripNewline(text))
        case .command(let cmd):
            return Secret(try runPasswordCommand(cmd, timeout: timeout))
        }
    }

    static func stripNewline(_ s: String) -> String {
        var scalars = Substring(s).unicodeScalars
        if scalars.last == "\n" { scalars.removeLast(); if scalars.last == "\r" { scalars.removeLast() } }
        else if scalars.last == "\r" { scalars.removeLast() }
        return String(scalars)
    }

    /// Runs `/bin/sh -c CMD` without a terminal (its own session, stdin from /dev/null),
    /// within `timeout` seconds: its standard output, less one trailing LF or CR LF, is the
    /// password. A failure says why, with what it wrote on stderr (never its stdout).
    public static func runPasswordCommand(_ cmd: String, timeout: Double) throws -> String {
        var outFDs: [Int32] = [-1, -1], errFDs: [Int32] = [-1, -1]
        guard pipe(&outFDs) == 0, pipe(&errFDs) == 0 else {
            throw RedisError.usage("the password command: cannot make a pipe: \(String(cString: strerror(errno)))")
        }
        for fd in outFDs + errFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // Its own session: no controlling terminal to ask a question on.
        let started = Spawn.start(["/bin/sh", "-c", cmd], searchPath: false, stdin: .devNull(O_RDONLY), stdout: .fd(outFDs[1]),
                                  stderr: .fd(errFDs[1]), newSession: true)
        close(outFDs[1]); close(errFDs[1])
        defer { close(outFDs[0]); close(errFDs[0]) }
        let pid: pid_t
        switch started {
        case .success(let p): pid = p
        case .failure(let e): throw RedisError.usage("the password command could not be started: \(e.message)")
        }
        var out = [UInt8](), err = [UInt8]()
        var fds = [pollfd(fd: outFDs[0], events: Int16(POLLIN), revents: 0), pollfd(fd: errFDs[0], events: Int16(POLLIN), revents: 0)]
        var open = 2
        let deadline = monotonicNow() + timeout
        var buf = [UInt8](repeating: 0, count: 4096)
        while open > 0 {
            let left = deadline - monotonicNow()
            if left <= 0 {
                kill(-pid, SIGKILL); kill(pid, SIGKILL)
                var st: Int32 = 0
                waitpid(pid, &st, 0)
                throw RedisError.usage("the password command did not finish within \(Int(timeout)) s")
            }
            for i in fds.indices { fds[i].revents = 0 }
            if poll(&fds, 2, Int32(min(left, 1) * 1000) + 1) <= 0 { continue }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = Glibc.read(fds[i].fd, &buf, buf.count)
                if n <= 0 { fds[i].fd = -1; open -= 1; continue }
                if i == 0 { if out.count < 1 << 16 { out += buf[0..<n] } } else if err.count < 4096 { err += buf[0..<n] }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        let stderrText = String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard exited, code == 0 else {
            let how = exited ? "exited with status \(code)" : "was killed by signal \(status & 0x7f)"
            throw RedisError.usage("the password command \(how)\(stderrText.isEmpty ? "" : ": \(stderrText)")")
        }
        let pw = stripNewline(String(decoding: out, as: UTF8.self))
        guard !pw.isEmpty else { throw RedisError.usage("the password command printed nothing\(stderrText.isEmpty ? "" : " (stderr: \(stderrText))")") }
        return pw
    }
}

/// Authentication retries that never trip a security alarm: after a refusal, at most one
/// attempt per connection every 5 s, growing to 60 s — but at once when the password's
/// source gives a different password (a rotated token, an updated file).
public struct AuthRetry: Sendable {
    static let steps: [Double] = [5, 10, 20, 40, 60]
    public private(set) var refusedSince: Double?
    /// Wall-clock time of the first refusal, for "refused since 14:02:11".
    public private(set) var refusedSinceWall: Double?
    private var attempts = 0
    private var nextAt = 0.0
    private var versionTried = -1
    public init() {}

    public var isRefused: Bool { refusedSince != nil }

    /// A refusal: the next attempt waits (5 s, then longer) unless the password changes.
    public mutating func refused(version: Int, now: Double = monotonicNow()) {
        if refusedSince == nil { refusedSince = now; refusedSinceWall = wallClockNow() }
        nextAt = now + Self.steps[min(attempts, Self.steps.count - 1)]
        attempts += 1
        versionTried = version
    }

    /// Whether to try again now: the wait is over, or the source has a new password.
    public func due(version: Int, now: Double = monotonicNow()) -> Bool { now >= nextAt || version != versionTried }

    public func secondsLeft(now: Double = monotonicNow()) -> Double { max(0, nextAt - now) }

    public mutating func succeeded() { self = AuthRetry() }

    /// "authentication refused since 14:02:11; trying again in 20 s with the password from …"
    public func message(_ source: CredentialSource?, now: Double = monotonicNow()) -> String {
        let since = refusedSinceWall.map { hhmmss($0) } ?? "now"
        let from = source.map { " with the password from \($0)" } ?? ""
        let err = source?.lastError.map { " (reading it failed: \($0))" } ?? ""
        return "authentication refused since \(since); trying again in \(Int(secondsLeft(now: now).rounded(.up))) s\(from)\(err)"
    }
}

/// `14:02:11`, local time.
public func hhmmss(_ t: Double) -> String {
    var tt = time_t(t)
    var tm = tm()
    localtime_r(&tt, &tm)
    return String(format: "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec)
}
