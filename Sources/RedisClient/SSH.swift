#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A bastion every connection goes through: one multiplexed ssh connection (the "master",
/// its control socket in a private 0700 directory), and one `ssh -W node:port` per Redis
/// connection over it. It is the operator's own ssh — `~/.ssh/config`, the agent,
/// `known_hosts`, `ProxyJump`, an SSM `ProxyCommand` all apply, and host-key checking is never
/// turned off. A connection whose master is gone fails: it never goes around the bastion.
/// The hops of this process, ended at exit (`ssh -O exit`). A master whose process died
/// anyway ends a minute after its last stream (ControlPersist=60).
nonisolated(unsafe) private var activeHops: [SSHHop] = []
private let registerExitOnce: Void = { atexit { for h in activeHops { h.stop() } } }()

public final class SSHHop: Sendable, CustomStringConvertible {
    public let user: String?
    public let host: String
    public let port: Int?
    /// The ssh command: `$REDIS_OPS_SSH_COMMAND` split as a shell would, else `ssh`.
    public let command: [String]
    private struct State {
        var dir: String?
        var up = false
        var lastStart = -Double.infinity
        var lastError: String?
    }
    private let state = Mutex(State())

    /// `[user@]host[:port]`.
    public init(_ spec: String, environment env: [String: String] = ProcessInfo.processInfo.environment) throws {
        var rest = Substring(spec.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { throw RedisError.usage("--via needs a host: [user@]host[:port]") }
        if let at = rest.lastIndex(of: "@") {
            let u = rest[..<at]
            guard !u.isEmpty else { throw RedisError.usage("--via '\(spec)': the user before '@' is empty") }
            user = String(u)
            rest = rest[rest.index(after: at)...]
        } else { user = nil }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw RedisError.usage("--via '\(spec)': the port is not a number from 1 to 65535") }
                port = p
            } else { port = nil }
        } else if let colon = rest.lastIndex(of: ":"), !rest[..<colon].contains(":") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw RedisError.usage("--via '\(spec)': the port is not a number from 1 to 65535")
            }
            host = String(rest[..<colon]); port = p
        } else { host = String(rest); port = nil }
        guard !host.isEmpty, !host.hasPrefix("-") else { throw RedisError.usage("--via '\(spec)': not a host") }
        if let c = env["REDIS_OPS_SSH_COMMAND"], !c.trimmingCharacters(in: .whitespaces).isEmpty {
            command = try Self.shellWords(c)
        } else {
            command = ["ssh"]
        }
    }

    public var description: String { (user.map { "\($0)@" } ?? "") + host + (port.map { ":\($0)" } ?? "") }

    /// The destination arguments (`-p`, `-l`, then the host).
    var destination: [String] {
        var a: [String] = []
        if let p = port { a += ["-p", String(p)] }
        if let u = user { a += ["-l", u] }
        return a + ["--", host]
    }

    /// Splits a command line into words as a shell would (quotes and backslashes), as git does
    /// with GIT_SSH_COMMAND. No expansion of variables or globs.
    public static func shellWords(_ s: String) throws -> [String] {
        var words: [String] = []
        var cur = ""
        var inWord = false
        var quote: Character? = nil
        var it = s.makeIterator()
        while let c = it.next() {
            if let q = quote {
                if c == q { quote = nil; continue }
                if q == "\"" && c == "\\", let n = it.next() {
                    if n == "\"" || n == "\\" || n == "$" || n == "`" { cur.append(n) } else { cur.append(c); cur.append(n) }
                    continue
                }
                cur.append(c)
                continue
            }
            switch c {
            case "'", "\"": quote = c; inWord = true
            case "\\":
                if let n = it.next() { cur.append(n); inWord = true }
            case " ", "\t", "\n":
                if inWord { words.append(cur); cur = ""; inWord = false }
            default: cur.append(c); inWord = true
            }
        }
        if quote != nil { throw RedisError.usage("REDIS_OPS_SSH_COMMAND: an unterminated quote") }
        if inWord { words.append(cur) }
        guard !words.isEmpty else { throw RedisError.usage("REDIS_OPS_SSH_COMMAND is empty") }
        return words
    }

    // MARK: the master

    /// Makes sure the master is up (starting it if needed: at most once every 2 s after a
    /// failure, so a dead bastion is not hammered). Throws with the hop named.
    public func ensureUp() throws -> String {
        try state.withLock { s -> String in
            if s.up, let d = s.dir, FileManager.default.fileExists(atPath: d + "/cm"), Self.masterAlive(self, d) { return d }
            let now = monotonicNow()
            if now - s.lastStart < 2, let e = s.lastError { throw RedisError.connect(endpoint: description, reason: e) }
            s.lastStart = now
            if s.dir == nil {
                s.dir = try Self.privateDirectory()
                _ = registerExitOnce
                activeHops.append(self)
            }
            let d = s.dir!
            unlink(d + "/cm")
            do {
                try Self.startMaster(self, d)
                s.up = true
                s.lastError = nil
                return d
            } catch let e as RedisError {
                s.up = false
                if case .connect(_, let r) = e { s.lastError = r }
                throw e
            }
        }
    }

    static func privateDirectory() throws -> String {
        var template = Array("/tmp/redis-ops-ssh-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RedisError.usage("cannot make a private directory for the ssh control socket: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    /// `ssh -O check`: the master answers on its socket.
    static func masterAlive(_ hop: SSHHop, _ dir: String) -> Bool {
        let r = run(hop.command + ["-o", "ControlPath=\(dir)/cm", "-O", "check"] + hop.destination, timeout: 5)
        return r.status == 0
    }

    static func startMaster(_ hop: SSHHop, _ dir: String) throws {
        // -f: ssh goes to the background once authenticated; a prompt (a passphrase, a second
        // factor) is asked on the terminal, before the console takes it.
        let args = hop.command + ["-f", "-N", "-o", "ControlMaster=yes", "-o", "ControlPath=\(dir)/cm", "-o", "ControlPersist=60",
                                  "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3", "-o", "ExitOnForwardFailure=yes"] + hop.destination
        let r = run(args, timeout: 60, keepStderrFile: dir + "/master.err")
        if r.status != 0 {
            throw RedisError.connect(endpoint: hop.description, reason: explainMaster(hop, r.stderr, status: r.status))
        }
    }

    /// ssh's own words, turned into what to do about them.
    static func explainMaster(_ hop: SSHHop, _ err: String, status: Int32) -> String {
        let lines = err.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        let last = lines.last ?? (status == -1 ? "timed out" : "exit status \(status)")
        let portArg = hop.port.map { "-p \($0) " } ?? ""
        if err.contains("Host key verification failed") || err.contains("host key is known") || err.contains("No matching host key") {
            return "host key for \(hop.host) is not known: ssh-keyscan \(portArg)\(hop.host), check the key it prints against the bastion's, and add it to ~/.ssh/known_hosts"
        }
        if err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            return "ssh to \(hop.host): the host key changed (REMOTE HOST IDENTIFICATION HAS CHANGED) — find out why before going on"
        }
        if let l = lines.first(where: { $0.contains("Permission denied") }), let r = l.range(of: "Permission denied") {
            var what = String(l[r.lowerBound...])
            if what.hasSuffix(".") { what.removeLast() }
            return "ssh to \(hop.host): \(what) — check the user, the key and the agent (ssh-add -l)"
        }
        if err.contains("Could not resolve hostname") { return "ssh to \(hop.host): the host name could not be resolved" }
        if err.contains("Connection refused") { return "ssh to \(hop.host): connection refused (is sshd listening on \(hop.port.map(String.init) ?? "22")?)" }
        if err.contains("timed out") || status == -1 { return "ssh to \(hop.host): timed out" }
        return "ssh to \(hop.host) failed: \(last)"
    }

    /// Ends the master (`ssh -O exit`) and removes its directory.
    public func stop() {
        let dir = state.withLock { s -> String? in defer { s.up = false }; return s.dir }
        guard let d = dir else { return }
        _ = Self.run(command + ["-o", "ControlPath=\(d)/cm", "-O", "exit"] + destination, timeout: 5)
        try? FileManager.default.removeItem(atPath: d)
    }

    // MARK: connections

    /// A stream to `host:port` as seen from the bastion: a socket to our end of an
    /// `ssh -W host:port` over the master.
    public func open(host: String, port: Int) throws -> SSHStream {
        let dir = try ensureUp()
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sv) == 0 else {
            throw RedisError.connect(endpoint: "\(host):\(port)", reason: "cannot make a socket pair: \(String(cString: strerror(errno)))")
        }
        var errFDs: [Int32] = [-1, -1]
        guard pipe(&errFDs) == 0 else { close(sv[0]); close(sv[1]); throw RedisError.connect(endpoint: "\(host):\(port)", reason: "cannot make a pipe") }
        for fd in [sv[0], errFDs[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let target = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        // ControlMaster=no and ProxyCommand=false: without the master, this ssh cannot reach
        // anything — it never opens a connection of its own around the bastion.
        let args = command + ["-o", "ControlMaster=no", "-o", "ControlPath=\(dir)/cm", "-o", "ProxyCommand=false",
                              "-o", "ClearAllForwardings=yes", "-W", target] + destination
        // Its own session: Ctrl-C is ours to handle.
        let started = Spawn.start(args, searchPath: true, stdin: .fd(sv[1]), stdout: .fd(sv[1]), stderr: .fd(errFDs[1]), newSession: true)
        close(sv[1]); close(errFDs[1])
        let pid: pid_t
        switch started {
        case .success(let p): pid = p
        case .failure(let e):
            close(sv[0]); close(errFDs[0])
            throw RedisError.connect(endpoint: target, reason: "cannot run \(command[0]): \(e.message)")
        }
        return SSHStream(fd: sv[0], pid: pid, stderrFD: errFDs[0], hop: self, target: target)
    }

    // MARK: running ssh

    struct RunResult { var status: Int32; var stderr: String }

    /// Runs ssh (stdin /dev/null) and waits; stderr is kept (in a file for a master that
    /// goes to the background with it still open).
    static func run(_ args: [String], timeout: Double, keepStderrFile: String? = nil) -> RunResult {
        let errPath = keepStderrFile ?? NSTemporaryDirectory() + "/redis-ops-ssh-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).err"
        let errFD = Glibc.open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { if errFD >= 0 { close(errFD) }; if keepStderrFile == nil { unlink(errPath) } }
        let started = Spawn.start(args, searchPath: true, stdin: .devNull(O_RDONLY), stdout: .devNull(O_WRONLY),
                                  stderr: errFD >= 0 ? .fd(errFD) : nil, newSession: false)
        let pid: pid_t
        switch started {
        case .success(let p): pid = p
        case .failure(let e): return RunResult(status: 127, stderr: "cannot run \(args[0]): \(e.message)")
        }
        let end = monotonicNow() + timeout
        var status: Int32 = 0
        var exited = false
        while monotonicNow() < end {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { exited = true; break }
            usleep(10_000)
        }
        if !exited { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
        let text = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        if !exited { return RunResult(status: -1, stderr: text) }
        return RunResult(status: (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), stderr: text)
    }
}

/// One `ssh -W` child: our end of its socket pair, its pid, its stderr.
public final class SSHStream: Sendable {
    public let fd: Int32
    let pid: pid_t
    let stderrFD: Int32
    let hop: SSHHop
    let target: String
    /// What ssh said, once read (its stderr can be read only once).
    private let said = Mutex<String?>(nil)

    init(fd: Int32, pid: pid_t, stderrFD: Int32, hop: SSHHop, target: String) {
        self.fd = fd; self.pid = pid; self.stderrFD = stderrFD; self.hop = hop; self.target = target
    }

    /// Why the stream ended, in the hop's words: what ssh wrote, waited for briefly.
    public func explainEnd() -> String {
        if let s = said.withLock({ $0 }) { return s }
        let s = readExplanation()
        said.withLock { $0 = s }
        return s
    }

    private func readExplanation() -> String {
        var text = ""
        var buf = [UInt8](repeating: 0, count: 4096)
        let end = monotonicNow() + 1
        var p = pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)
        while monotonicNow() < end {
            if poll(&p, 1, 100) > 0 {
                let n = Glibc.read(stderrFD, &buf, buf.count)
                if n <= 0 { break }
                text += String(decoding: buf[0..<n], as: UTF8.self)
            }
        }
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        if let l = lines.first(where: { $0.contains("open failed") || $0.contains("connect failed") || $0.contains("forwarding") || $0.contains("open refused") }) {
            let why = l.components(separatedBy: "open failed: ").last ?? l
            return "the bastion \(hop.host) cannot reach node \(target) (ssh -W: \(why.hasSuffix(".") ? String(why.dropLast()) : why))"
        }
        if text.contains("Control socket connect") || text.contains("ProxyCommand") || text.contains("kex_exchange_identification") || text.contains("Connection closed by") {
            return "the ssh connection to \(hop.host) is gone (the control master ended); nothing was sent around it"
        }
        return lines.last.map { "ssh -W \(target) via \(hop.host): \($0)" } ?? "ssh -W \(target) via \(hop.host) ended"
    }

    /// Closes our end; ssh then ends, and is reaped.
    public func close() {
        Glibc.close(fd)
        Glibc.close(stderrFD)
        var st: Int32 = 0
        if waitpid(pid, &st, WNOHANG) == 0 {
            kill(pid, SIGTERM)
            for _ in 0..<20 { if waitpid(pid, &st, WNOHANG) != 0 { return }; usleep(5_000) }
            kill(pid, SIGKILL)
            waitpid(pid, &st, 0)
        }
    }
}
