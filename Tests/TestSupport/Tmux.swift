import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private tmux server running one command in a pane, driven like a person would.
public final class TmuxPane {
    public let socket: String
    public let statusFile: String
    private let tmux: String

    public init(width: Int = 120, height: Int = 40, command: [String], env: [String: String] = [:]) throws {
        tmux = try which("tmux")
        socket = "redis-ops-test-\(UUID().uuidString.prefix(8))"
        statusFile = NSTemporaryDirectory() + "/\(socket).status"
        let quoted = command.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        var envs = "LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color TZ=UTC"
        for (k, v) in env { envs += " \(k)='\(v.replacingOccurrences(of: "'", with: "'\\''"))'" }
        // After the program exits, record its status and keep the pane for inspection.
        // `swift test` exports NO_COLOR to what it runs; the pane gets colour unless a test asks.
        let shell = "env -u NO_COLOR \(envs) \(quoted); echo $? > \(statusFile); echo EXITED; sleep 600"
        let r = try spawnWait(tmux, ["-L", socket, "-f", "/dev/null", "new-session", "-d", "-x", String(width), "-y", String(height), "-s", "t", shell])
        if r.status != 0 { throw TestSupportError("tmux new-session failed (\(r.status))") }
    }

    @discardableResult
    public func tmuxCmd(_ args: [String]) throws -> String {
        try spawnWait(tmux, ["-L", socket] + args).output
    }

    public func capture() throws -> String { try tmuxCmd(["capture-pane", "-p", "-t", "t"]) }

    public func send(_ keys: String...) throws { try tmuxCmd(["send-keys", "-t", "t"] + keys) }

    /// Types literal text.
    public func type(_ text: String) throws { try tmuxCmd(["send-keys", "-t", "t", "-l", text]) }

    public func resize(_ w: Int, _ h: Int) throws { try tmuxCmd(["resize-window", "-t", "t", "-x", String(w), "-y", String(h)]) }

    public func display(_ format: String) throws -> String {
        try tmuxCmd(["display-message", "-p", "-t", "t", format]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits until the screen satisfies `cond`; returns the last capture.
    @discardableResult
    public func waitFor(_ what: String, timeout: Double = 10, _ cond: (String) -> Bool) throws -> String {
        let end = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < end {
            last = try capture()
            if cond(last) { return last }
            usleep(50_000)
        }
        throw TestSupportError("timed out waiting for \(what); screen:\n\(last)")
    }

    public var exitStatus: Int32? {
        guard let s = try? String(contentsOfFile: statusFile, encoding: .utf8) else { return nil }
        return Int32(s.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `D`, the pattern, Enter: the console's invalidation dry run (from the Keys view).
    /// Returns the screen once it shows `expecting`.
    @discardableResult
    public func invalidationDryRun(_ pattern: String, expecting: String = "would be deleted", timeout: Double = 15) throws -> String {
        try send("D")
        try type(pattern)
        try send("Enter")
        return try waitFor("the dry run of \(pattern)", timeout: timeout) { $0.contains(expecting) }
    }

    public func waitForExit(timeout: Double = 10) throws -> Int32 {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let s = exitStatus { return s }
            usleep(50_000)
        }
        throw TestSupportError("the program did not exit; screen:\n\((try? capture()) ?? "")")
    }

    public func kill() {
        _ = try? spawnWait(tmux, ["-L", socket, "kill-server"])
        try? FileManager.default.removeItem(atPath: statusFile)
    }

    deinit { kill() }
}

/// Runs a program with posix_spawn and waitpid (no Foundation.Process: its exit
/// monitoring can miss a child that forks a daemon, as `tmux new-session` does).
/// Output goes through a temporary file, so a daemon holding it open cannot block us.
public func spawnWait(_ path: String, _ args: [String]) throws -> (status: Int32, output: String) {
    let outPath = NSTemporaryDirectory() + "/spawn-\(UUID().uuidString)"
    defer { unlink(outPath) }
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&fa, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)
    let argv = ([path] + args).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &fa, nil, argv, environ)
    if rc != 0 { throw TestSupportError("posix_spawn \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, out)
}

/// redis-ops running in the background (e.g. a tail), with its result once it exits.
public final class BackgroundRun: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let startedSignal = DispatchSemaphore(value: 0)
    private var result: RunResult?
    private var startedPID: pid_t = 0
    public init(_ args: [String], env: [String: String] = [:], stdin: String? = nil) {
        DispatchQueue.global().async {
            self.result = try? redisOps(args, env: env, stdin: stdin, started: { self.startedPID = $0; self.startedSignal.signal() })
            if self.startedPID == 0 { self.startedSignal.signal() }
            self.done.signal()
        }
    }

    /// The process id, once it started (0 if it could not).
    public var pid: pid_t {
        startedSignal.wait()
        startedSignal.signal()
        return startedPID
    }
    /// Calls `tick` every `every` seconds (up to `times`) until the program exits; returns its result.
    public func wait(every: Double = 0.2, times: Int = 50, _ tick: (Int) throws -> Void = { _ in }) rethrows -> RunResult? {
        var n = 0
        while done.wait(timeout: .now() + every) == .timedOut {
            if n < times { n += 1; try tick(n) }
        }
        return result
    }
}
