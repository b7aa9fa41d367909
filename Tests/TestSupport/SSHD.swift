import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private `sshd` on a free loopback port, playing a bastion: a host key and a user key
/// made with ssh-keygen at test time, and an ssh client configuration (`-F`) that knows the
/// host key and offers the user key — what `REDIS_OPS_SSH_COMMAND` hands redis-ops.
public final class SSHD: @unchecked Sendable {
    public let dir: String
    public let port: Int
    public let configFile: String
    public let knownHosts: String
    /// sshd's pid. Not a Foundation `Process`: sshd closes the descriptors it inherits, which
    /// Foundation takes for its exit, and then blocks in wait4 on it (deadlocking every other
    /// Process's waitUntilExit).
    private var pid: pid_t = 0

    /// The alias the client configuration knows the bastion by.
    public static let alias = "bastion"

    /// `REDIS_OPS_SSH_COMMAND` for this bastion.
    public var sshCommand: String { "ssh -F \(configFile)" }

    public init() throws {
        dir = NSTemporaryDirectory() + "sshd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o700)
        let keygen = try which("ssh-keygen")
        for (name, type) in [("host_key", "ed25519"), ("user_key", "ed25519")] {
            let r = try run(keygen, ["-q", "-t", type, "-N", "", "-f", "\(dir)/\(name)"])
            guard r.status == 0 else { throw TestSupportError("ssh-keygen: \(r.stderr)") }
        }
        let user = String(cString: getpwuid(getuid())!.pointee.pw_name)
        try String(contentsOfFile: "\(dir)/user_key.pub", encoding: .utf8).write(toFile: "\(dir)/authorized_keys", atomically: true, encoding: .utf8)
        chmod("\(dir)/authorized_keys", 0o600)
        // Privilege separation wants this directory (as root).
        try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/sshd"
        var lastError: Error = TestSupportError("sshd did not start")
        var started: (pid_t, Int)? = nil
        for _ in 0..<5 {
            let p = freePort()
            let conf = """
            Port \(p)
            ListenAddress 127.0.0.1
            HostKey \(dir)/host_key
            PidFile \(dir)/sshd.pid
            AuthorizedKeysFile \(dir)/authorized_keys
            StrictModes no
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            PermitRootLogin prohibit-password
            AllowTcpForwarding yes
            X11Forwarding no
            PrintMotd no
            LogLevel VERBOSE
            """
            try conf.write(toFile: "\(dir)/sshd_config", atomically: true, encoding: .utf8)
            var fa = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&fa)
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&fa, 2, "\(dir)/sshd.log", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            let words: [String] = [sshd, "-D", "-e", "-f", "\(dir)/sshd_config"]
            let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
            var child: pid_t = 0
            let rc = posix_spawn(&child, sshd, &fa, nil, argv, environ)
            posix_spawn_file_actions_destroy(&fa)
            for a in argv { free(a) }
            if rc != 0 { lastError = TestSupportError("cannot run sshd: \(String(cString: strerror(rc)))"); continue }
            func alive() -> Bool { var st: Int32 = 0; return waitpid(child, &st, WNOHANG) == 0 }
            let end = Date().addingTimeInterval(5)
            while Date() < end && alive() && !canConnect(port: p) { usleep(20_000) }
            if alive() && canConnect(port: p) { started = (child, p); break }
            kill(child, SIGKILL); var st: Int32 = 0; waitpid(child, &st, 0)
            lastError = TestSupportError("sshd did not start: \((try? String(contentsOfFile: "\(dir)/sshd.log", encoding: .utf8)) ?? "")")
        }
        guard let (child, p) = started else { throw lastError }
        pid = child
        port = p
        let hostKey = try String(contentsOfFile: "\(dir)/host_key.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        knownHosts = "\(dir)/known_hosts"
        try "[127.0.0.1]:\(p) \(hostKey)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        configFile = "\(dir)/ssh_config"
        try """
        Host \(Self.alias)
          HostName 127.0.0.1
          Port \(p)
          User \(user)
          IdentityFile \(dir)/user_key
          IdentitiesOnly yes
          UserKnownHostsFile \(knownHosts)
          GlobalKnownHostsFile /dev/null
          StrictHostKeyChecking yes
          BatchMode yes
          LogLevel ERROR

        """.write(toFile: configFile, atomically: true, encoding: .utf8)
    }

    /// The environment that makes redis-ops use this bastion's client configuration.
    public var environment: [String: String] { ["REDIS_OPS_SSH_COMMAND": sshCommand] }

    /// The pids of sshd's processes (the listener and the sessions it forked).
    public func pids() -> Set<Int32> {
        guard pid > 0 else { return [] }
        let root = pid
        var out: Set<Int32> = [root]
        // Children (and their children): sshd forks a process per session.
        var frontier = [root]
        while let p = frontier.popLast() {
            let kids = readProcFile("/proc/\(p)/task/\(p)/children") ?? ""
            for k in kids.split(separator: " ").compactMap({ Int32($0) }) where out.insert(k).inserted { frontier.append(k) }
        }
        return out
    }

    public func stop() {
        guard pid > 0 else { return }
        for p in pids() { kill(p, SIGKILL) }
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        pid = 0
    }

    deinit { stop(); try? FileManager.default.removeItem(atPath: dir) }
}

/// A /proc file whole (they report a size of 0, so Foundation's String(contentsOfFile:) reads nothing).
public func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// The processes that hold TCP connections to `port` on 127.0.0.1 (from /proc: the socket
/// inodes of /proc/net/tcp matched against each process's fds).
public func processesConnected(toPort port: Int) -> [Int32: Int] {
    var inodes = Set<String>()
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = readProcFile(file) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            guard f.count > 9 else { continue }
            let remote = f[2].split(separator: ":")
            guard remote.count == 2, Int(remote[1], radix: 16) == port, f[3] == "01" else { continue }   // ESTABLISHED
            inodes.insert(String(f[9]))
        }
    }
    var out: [Int32: Int] = [:]
    guard let procs = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return out }
    for p in procs {
        guard let pid = Int32(p), let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/fd") else { continue }
        for fd in fds {
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/fd/\(fd)"),
                  link.hasPrefix("socket:["), inodes.contains(String(link.dropFirst(8).dropLast())) else { continue }
            out[pid, default: 0] += 1
        }
    }
    return out
}
