import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RedisClient
import OpsCore
import RedisProtocol

/// A real `redis-server` on a free loopback port, started for a test and always stopped.
public final class RedisServer: @unchecked Sendable {
    public enum Mode: Sendable {
        case plain
        case password(String)
        /// ACL users: each line is an ACL rule set, e.g. "alice on >pw ~app:* +@all".
        case acl(users: [String], defaultPassword: String?)
        case tls(TestCerts, requireClientCert: Bool)
    }

    public private(set) var port: Int = 0
    public let dir: URL
    public let mode: Mode
    private var process: Process?
    private let extraConfig: [String]

    public var host: String { "127.0.0.1" }
    /// Whether the process is alive (a test may have killed it).
    public var isRunning: Bool { process?.isRunning ?? false }
    /// The server's process id (for SIGSTOP / SIGCONT in fault tests).
    public var pid: Int32 { process?.processIdentifier ?? 0 }

    /// Starts a server; `extraConfig` lines go into its config file verbatim.
    public init(_ mode: Mode = .plain, extraConfig: [String] = [], port fixedPort: Int? = nil) throws {
        self.mode = mode
        self.extraConfig = extraConfig
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("redis-ops-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var lastError: Error = TestSupportError("redis-server did not start")
        for _ in 0..<5 {
            let p = fixedPort ?? freePort()
            do {
                try launch(port: p)
                self.port = p
                return
            } catch { lastError = error }
            if fixedPort != nil { break }
        }
        throw lastError
    }

    private func configText(port: Int) -> String {
        var lines = [
            "bind 127.0.0.1",
            "protected-mode no",
            "save \"\"",
            "appendonly no",
            "dir \(dir.path)",
            "logfile \(dir.appendingPathComponent("redis.log").path)",
            "daemonize no",
            "enable-debug-command local",
        ]
        switch mode {
        case .plain:
            lines.append("port \(port)")
        case .password(let pw):
            lines.append("port \(port)")
            lines.append("requirepass \(pw)")
        case .acl(let users, let defaultPassword):
            lines.append("port \(port)")
            if let pw = defaultPassword { lines.append("requirepass \(pw)") }
            for u in users { lines.append("user \(u)") }
        case .tls(let certs, let requireClient):
            lines.append("port 0")
            lines.append("tls-port \(port)")
            lines.append("tls-cert-file \(certs.serverCert)")
            lines.append("tls-key-file \(certs.serverKey)")
            lines.append("tls-ca-cert-file \(certs.caCert)")
            lines.append("tls-auth-clients \(requireClient ? "yes" : "no")")
        }
        lines += extraConfig
        return lines.joined(separator: "\n") + "\n"
    }

    private func launch(port: Int) throws {
        let conf = dir.appendingPathComponent("redis.conf")
        try configText(port: port).write(to: conf, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try which("redis-server"))
        p.arguments = [conf.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        // Wait until it accepts connections.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !p.isRunning {
                let log = (try? String(contentsOf: dir.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
                throw TestSupportError("redis-server exited: \(log.suffix(400))")
            }
            if canConnect(port: port) { return }
            usleep(20_000)
        }
        p.terminate()
        throw TestSupportError("redis-server did not listen on \(port)")
    }

    /// Stops the server (SIGTERM, then SIGKILL) and removes its directory.
    public func stop() {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        process = nil
        try? FileManager.default.removeItem(at: dir)
    }

    /// Kills the server and starts it again on the same port (for reconnect tests).
    public func restart(downFor seconds: Double = 0) throws {
        if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        if seconds > 0 { usleep(UInt32(seconds * 1_000_000)) }
        try launch(port: port)
    }

    deinit { stop() }

    /// A connection config for this server with the given credentials.
    public func config(user: String? = nil, password: String? = nil, tls: TLSSettings? = nil) -> ConnectionConfig {
        var pw = password
        if pw == nil, case .password(let p) = mode { pw = p }
        var t = tls
        if t == nil, case .tls(let certs, _) = mode { t = TLSSettings(caFile: certs.caCert, serverName: "localhost") }
        return ConnectionConfig(host: "127.0.0.1", port: port, user: user, password: pw.map(Secret.init), tls: t)
    }

    /// An administrative connection (the default user, full rights).
    public func admin() throws -> RedisConnection {
        switch mode {
        case .acl(_, let pw): return try RedisConnection(config(password: pw))
        default: return try RedisConnection(config())
        }
    }

    /// Runs redis-cli against this server (a real client, independent of ours).
    @discardableResult
    public func cli(_ args: [String], stdin: String? = nil) throws -> String {
        var base = ["-h", "127.0.0.1", "-p", String(port)]
        switch mode {
        case .password(let pw): base += ["-a", pw, "--no-auth-warning"]
        case .acl(_, let pw?): base += ["-a", pw, "--no-auth-warning"]
        case .tls(let certs, _): base += ["--tls", "--cacert", certs.caCert, "--sni", "localhost"]
        default: break
        }
        return try run(try which("redis-cli"), base + args, stdin: stdin).stdout
    }

}

/// Whether something accepts connections on a port of 127.0.0.1.
public func canConnect(port: Int) -> Bool {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    return withLoopback(port) { connect(s, $0, $1) == 0 }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Whether nothing listens on (or holds) a port on 127.0.0.1 now.
public func portIsFree(_ port: Int) -> Bool {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    return withLoopback(port) { bind(s, $0, $1) == 0 }
}

/// 127.0.0.1:`port` as a socket address, for connect or bind.
func withLoopback<T>(_ port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
}

/// A port that was free a moment ago on 127.0.0.1.
public func freePort() -> Int { DemoServer.freePort() }

public func which(_ name: String) throws -> String {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") + ["/usr/sbin", "/usr/bin"] {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    throw TestSupportError("\(name) not found on PATH")
}

public struct RunResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var stdoutBytes: Data
}

/// Two GNU functions Swift's Glibc module leaves out (it is imported without _GNU_SOURCE).
private struct GNUFunctions: @unchecked Sendable {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    let pipe2: Pipe2
    let closefrom: CloseFrom
    init() {
        guard let p = dlsym(nil, "pipe2"), let c = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
            fatalError("glibc without pipe2 or posix_spawn_file_actions_addclosefrom_np (needs glibc 2.34)")
        }
        pipe2 = unsafeBitCast(p, to: Pipe2.self)
        closefrom = unsafeBitCast(c, to: CloseFrom.self)
    }
}
private let glibc = GNUFunctions()

/// Runs a program to completion and collects its output.
///
/// posix_spawn and waitpid rather than Foundation.Process: tests start programs from several
/// threads at once (a tail in the background while a tmux server starts), and Process both
/// lets children inherit each other's pipes and can miss an exit. Here the child gets exactly
/// 0, 1 and 2 (every other descriptor is closed), and the read stops at the child's exit.
@discardableResult
public func run(_ path: String, _ args: [String], stdin: String? = nil, environment: [String: String]? = nil,
                timeout: Double = 60, started: (pid_t) -> Void = { _ in }) throws -> RunResult {
    var inFDs: [Int32] = [-1, -1], outFDs: [Int32] = [-1, -1], errFDs: [Int32] = [-1, -1]
    guard glibc.pipe2(&inFDs, O_CLOEXEC) == 0, glibc.pipe2(&outFDs, O_CLOEXEC) == 0, glibc.pipe2(&errFDs, O_CLOEXEC) == 0 else {
        throw TestSupportError("pipe: \(String(cString: strerror(errno)))")
    }
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    if stdin == nil { posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) } else { posix_spawn_file_actions_adddup2(&fa, inFDs[0], 0) }
    posix_spawn_file_actions_adddup2(&fa, outFDs[1], 1)
    posix_spawn_file_actions_adddup2(&fa, errFDs[1], 2)
    _ = glibc.closefrom(&fa, 3)
    let argv = ([path] + args).map { strdup($0) } + [nil]
    let envList = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv + envList { free(p) } }
    // As a shell starts a program: no signal blocked (a libdispatch thread blocks SIGINT,
    // SIGTERM, SIGHUP…, and the child would inherit that), default dispositions.
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attr, &none)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, sig) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &fa, &attr, argv, envList)
    close(inFDs[0]); close(outFDs[1]); close(errFDs[1])
    if rc != 0 {
        close(inFDs[1]); close(outFDs[0]); close(errFDs[0])
        throw TestSupportError("posix_spawn \(path): \(String(cString: strerror(rc)))")
    }
    started(pid)
    final class Box: @unchecked Sendable {
        var data = Data()
        let lock = NSLock(); var exited = false
        var hasExited: Bool { lock.lock(); defer { lock.unlock() }; return exited }
    }
    let ob = Box(), eb = Box()
    let g = DispatchGroup()
    for (fd, box) in [(outFDs[0], ob), (errFDs[0], eb)] {
        g.enter()
        DispatchQueue.global().async {
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&pfd, 1, 100)
                if ready == 0 { if ob.hasExited { break } else { continue } }
                if ready < 0 { if errno == EINTR { continue } else { break } }
                let n = read(fd, &buf, buf.count)
                if n <= 0 { break }
                box.data.append(contentsOf: buf[0..<n])
            }
            close(fd)
            g.leave()
        }
    }
    if let stdin {
        let w = inFDs[1]
        DispatchQueue.global().async {
            let bytes = Array(stdin.utf8)
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { write(w, $0.baseAddress! + off, bytes.count - off) }
                if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                off += n
            }
            close(w)
        }
    } else {
        close(inFDs[1])
    }
    let timer = DispatchWorkItem { kill(pid, SIGTERM) }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    timer.cancel()
    ob.lock.lock(); ob.exited = true; ob.lock.unlock()
    g.wait()
    // As Process reports it: the exit code, or the signal's number.
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : status & 0x7f
    return RunResult(status: code, stdout: String(decoding: ob.data, as: UTF8.self),
                     stderr: String(decoding: eb.data, as: UTF8.self), stdoutBytes: ob.data)
}

/// The redis-ops binary under test: $REDIS_OPS_BIN, or the one built next to the test bundle.
public func redisOpsBinary() -> String {
    if let p = ProcessInfo.processInfo.environment["REDIS_OPS_BIN"], !p.isEmpty { return p }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if dir.lastPathComponent == "MacOS" { dir = dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    return dir.appendingPathComponent("redis-ops").path
}

/// Runs redis-ops with a clean environment (plus `env`).
@discardableResult
public func redisOps(_ args: [String], env: [String: String] = [:], stdin: String? = nil, timeout: Double = 60,
                     started: (pid_t) -> Void = { _ in }) throws -> RunResult {
    var e = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "LANG": "C.UTF-8"]
    for (k, v) in env { e[k] = v }
    return try run(redisOpsBinary(), args, stdin: stdin, environment: e, timeout: timeout, started: started)
}

/// The application's rate-limit script, verbatim (ARCHITECTURE.md, "The application").
public let rateLimitLua = rateLimitScript

extension RedisServer {
    /// Fills the server the way the application does, through redis-cli (a real, independent client).
    public func fillLikeTheApp(workspaces: Int = 20) throws {
        var script = ""
        for i in 1...workspaces {
            script += "SET app:workspace:\(i) '{\"id\":\(i),\"name\":\"Workspace \(i)\",\"plan\":\"pro\"}' EX 300\n"
        }
        // The app's stampede locks: `lock:${key}` for the cache key, prefixed once, value "1".
        script += "SET app:lock:workspace:3 1 NX EX 10\n"
        script += "SET app:lock:workspace:4 1 NX\n"
        script += "SET app:session:abc xyz\n"
        script += "HSET app:user:1 name Ann email ann@example.com\n"
        script += "SET other:workspace:1 outside-prefix\n"
        script += "SET workspace:1 no-prefix\n"
        try cli([], stdin: script)
        for _ in 0..<75 { try cli(["EVAL", rateLimitLua, "1", "app:ratelimit:ip:10.0.0.1", "60", "60"]) }
        for _ in 0..<10 { try cli(["EVAL", rateLimitLua, "1", "app:ratelimit:user:42", "60", "60"]) }
    }
}
