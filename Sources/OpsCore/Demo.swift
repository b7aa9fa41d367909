import Foundation
import Synchronization
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// A small seeded random generator (SplitMix64), so `--seed N` makes a demo reproducible.
public struct DemoRandom: Sendable {
    private var gen: SplitMix
    public init(seed: UInt64) { gen = SplitMix(seed: seed) }
    public mutating func next() -> UInt64 { gen.next() }
    public mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    public mutating func pick<T>(_ xs: [T]) -> T { xs[int(0...(xs.count - 1))] }
}

/// The application's rate-limit script, verbatim (ARCHITECTURE.md, "The application").
public let rateLimitScript = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local current = redis.call('INCR', key)
if current == 1 then
redis.call('EXPIRE', key, window)
end
if current > limit then
local ttl = redis.call('TTL', key)
return {0, current, ttl}
end
return {1, current, window}
"""

/// Fills a server the way the application does and keeps realistic traffic going.
public final class DemoTraffic: Sendable {
    public let schema: KeySchema
    public let workspaces: Int
    private let config: ConnectionConfig
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let seed: UInt64

    /// The application's own consumer: a separate subscriber connection (client name
    /// `app-sub`) on the channels of the workspaces that have users online (1–30 of the 40
    /// that publish), draining what it gets. It is who the console's channels pane counts.
    private let consumer: SubscriptionWorker

    public init(config: ConnectionConfig, schema: KeySchema = KeySchema(prefix: "app:"), workspaces: Int = 3000, seed: UInt64 = 42) {
        self.config = config; self.schema = schema; self.workspaces = workspaces; self.seed = seed
        var app = config
        app.clientName = "app"
        consumer = SubscriptionWorker(config: app, channels: (1...30).map { Bytes(utf8: "workspace:\($0):events") }, patterns: [], sink: DiscardSink())
    }

    static let names = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne"]
    static let plans = ["free", "team", "pro", "enterprise"]
    static let eventTypes = ["member.added", "member.removed", "plan.changed", "document.updated", "document.created", "invite.sent", "comment.added"]

    func key(_ rel: String) -> Bytes { schema.prefix + Bytes(utf8: rel) }

    func workspaceJSON(_ id: Int, _ r: inout DemoRandom) -> Bytes {
        let name = "\(r.pick(Self.names)) \(id)"
        return Bytes(utf8: #"{"id":\#(id),"name":"\#(name)","plan":"\#(r.pick(Self.plans))","members":\#(r.int(1...250)),"features":{"sso":\#(r.chance(0.3)),"audit":\#(r.chance(0.5))},"updatedAt":"2026-11-26T\#(String(format: "%02d:%02d", r.int(0...23), r.int(0...59))):00Z"}"#)
    }

    func cmd(_ parts: [Any]) -> [Bytes] {
        parts.map { p in
            if let b = p as? Bytes { return b }
            return Bytes(utf8: "\(p)")
        }
    }

    /// The initial keyspace.
    public func fill() throws {
        let c = try RedisConnection(config)
        var r = DemoRandom(seed: seed)
        var cmds: [[Bytes]] = []
        func flush() throws { if !cmds.isEmpty { _ = try c.pipeline(cmds); cmds.removeAll() } }
        for id in 1...workspaces {
            // Cache-aside entries at every stage of their 300 s life.
            cmds.append(cmd(["SET", key("workspace:\(id)"), workspaceJSON(id, &r), "EX", r.int(5...Int(schema.cacheTTL))]))
            if cmds.count >= 1000 { try flush() }
        }
        // Entries that break the conventions: no TTL (a leak) and a TTL far above 300 s.
        cmds.append(cmd(["SET", key("workspace:leaked-1"), workspaceJSON(999_001, &r)]))
        cmds.append(cmd(["SET", key("workspace:leaked-2"), workspaceJSON(999_002, &r)]))
        cmds.append(cmd(["SET", key("workspace:long-ttl"), workspaceJSON(999_003, &r), "EX", 86_400]))
        // Locks as the application takes them: `lock:${key}` for the cache key `workspace:{id}`,
        // prefixed once by its client, value always "1", SET NX EX 10. A few held, one stuck (no TTL).
        for _ in 0..<5 { cmds.append(cmd(["SET", key("lock:workspace:\(r.int(1...workspaces))"), "1", "NX", "EX", r.int(2...10)])) }
        cmds.append(cmd(["SET", key("lock:workspace:17"), "1", "NX"]))
        // Other types, some without TTL.
        for u in 1...40 { cmds.append(cmd(["HSET", key("user:\(u)"), "name", "User \(u)", "email", "user\(u)@example.com", "role", r.pick(["owner", "admin", "member"])])) }
        for i in 0..<30 { cmds.append(cmd(["RPUSH", key("queue:emails"), #"{"to":"user\#(i)@example.com","template":"invite"}"#])) }
        for u in 1...25 { cmds.append(cmd(["SADD", key("online:users"), "u\(u)"])) }
        for w in 1...50 { cmds.append(cmd(["ZADD", key("leaderboard:activity"), r.int(0...5000), "workspace:\(w)"])) }
        for i in 0..<20 { cmds.append(cmd(["XADD", key("audit:stream"), "*", "event", r.pick(Self.eventTypes), "n", i])) }
        cmds.append(cmd(["SET", key("config:feature-flags"), #"{"newEditor":true,"betaBilling":false}"#]))
        cmds.append(cmd(["SET", key("session:9f2c1e"), "u12", "EX", 3600]))
        // A counter with no TTL blocks its client forever.
        cmds.append(cmd(["SET", key("ratelimit:ip:203.0.113.99"), 150]))
        try flush()
        // Rate-limit counters made by the application's own script.
        let sha = try c.call(cmd(["SCRIPT", "LOAD", rateLimitScript])).bytes ?? []
        let clients: [(String, Int)] = [("ip:198.51.100.7", 95), ("ip:198.51.100.8", 61), ("user:42", 58), ("user:7", 12), ("ip:192.0.2.10", 49), ("user:1001", 3)]
        for (id, hits) in clients {
            for _ in 0..<hits { cmds.append(cmd(["EVALSHA", sha, 1, key("ratelimit:\(id)"), schema.rateLimit, schema.rateWindow])) }
        }
        try flush()
        c.close()
    }

    public func start() {
        let t = Thread { [self] in self.loop(); self.finished.signal() }
        t.name = "redis-ops-demo-traffic"
        t.start()
        consumer.start()
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
        consumer.stop()
    }

    /// Drops what the demo's consumer receives (it only has to keep its socket drained).
    private struct DiscardSink: SubscriberSink {
        func deliver(_ messages: [ReceivedMessage]) {}
        func notice(_ notice: SubscriberNotice) {}
    }

    /// Live traffic: events at a few per second with occasional bursts, cache-aside
    /// refreshes, locks coming and going, clients hitting the rate limiter.
    private func loop() {
        var r = DemoRandom(seed: seed &+ 1)
        var conn: RedisConnection?
        var sha: Bytes = []
        var tick = 0
        while !stopping.load(ordering: .relaxed) {
            usleep(200_000)
            tick += 1
            do {
                if conn == nil {
                    conn = try RedisConnection(config)
                    sha = try conn!.call(cmd(["SCRIPT", "LOAD", rateLimitScript])).bytes ?? []
                }
                guard let c = conn else { continue }
                var cmds: [[Bytes]] = []
                let burst = tick % 75 == 0
                for _ in 0..<(burst ? 60 : r.int(0...2)) {
                    let ws = r.int(1...40)
                    let type = r.pick(Self.eventTypes)
                    let payload = #"{"type":"\#(type)","workspaceId":\#(ws),"userId":"u\#(r.int(1...300))","at":"\#(isoTimestamp(wallClockNow()))"}"#
                    cmds.append(cmd(["PUBLISH", "workspace:\(ws):events", payload]))
                }
                // Cache-aside: a read that misses refills with TTL 300 (under a stampede lock).
                for _ in 0..<r.int(1...8) {
                    let id = r.int(1...workspaces)
                    cmds.append(cmd(["SET", key("lock:workspace:\(id)"), "1", "NX", "EX", Int(schema.lockTTL)]))
                    cmds.append(cmd(["SET", key("workspace:\(id)"), workspaceJSON(id, &r), "EX", Int(schema.cacheTTL), "NX"]))
                    if r.chance(0.7) { cmds.append(cmd(["DEL", key("lock:workspace:\(id)")])) }
                }
                // Clients hitting the limiter; one abusive client keeps hammering.
                for _ in 0..<r.int(0...3) {
                    cmds.append(cmd(["EVALSHA", sha, 1, key("ratelimit:" + r.pick(["ip:198.51.100.\(r.int(1...20))", "user:\(r.int(1...60))"])), schema.rateLimit, schema.rateWindow]))
                }
                for _ in 0..<r.int(0...4) {
                    cmds.append(cmd(["EVALSHA", sha, 1, key("ratelimit:ip:198.51.100.7"), schema.rateLimit, schema.rateWindow]))
                }
                _ = try c.pipeline(cmds)
            } catch {
                conn = nil
                usleep(500_000)
            }
        }
        conn?.close()
    }
}

/// A private redis-server for the demo: free loopback port, no persistence, stopped on exit.
public final class DemoServer: Sendable {
    public let port: Int
    public let pid: pid_t
    /// The server's password (random, made for this run): the console is handed it.
    public let password: Secret
    /// The same password in a file only we can read, for other tools (`--password-file`).
    public let passwordFile: String
    let dir: String

    public static func findBinary() -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/bin:/usr/sbin:/usr/local/bin"
        for d in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(d)/redis-server") { return "\(d)/redis-server" }
        return nil
    }

    /// A new private directory (mkdtemp: 0700, a name nobody could guess or plant beforehand),
    /// checked to be a directory we own that no one else can enter.
    static func privateDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "/redis-ops-demo-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RedisError.usage("cannot make a private directory for the demo: \(String(cString: strerror(errno)))")
        }
        let dir = String(cString: made)
        var st = stat()
        guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid(), st.st_mode & 0o077 == 0 else {
            throw RedisError.usage("the demo's directory \(dir) is not a private directory of ours: refusing to use it")
        }
        return dir
    }

    /// Writes a new file in our private directory (never through a link, never over a file).
    static func writeNew(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RedisError.usage("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { throw RedisError.usage("cannot write \(path): \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    public init(port requested: Int?) throws {
        guard let bin = DemoServer.findBinary() else {
            throw RedisError.usage("redis-server is not installed (apt-get install redis-server, or run `make demo`)")
        }
        let port = requested ?? DemoServer.freePort()
        dir = try DemoServer.privateDirectory()
        var rng = SystemRandomNumberGenerator()
        let pw = (0..<4).map { _ in String(format: "%016llx", rng.next() as UInt64) }.joined()
        password = Secret(pw)
        passwordFile = dir + "/password"
        let conf = """
        bind 127.0.0.1
        port \(port)
        protected-mode yes
        requirepass \(pw)
        save ""
        appendonly no
        daemonize no
        dir \(dir)
        logfile \(dir)/redis.log
        notify-keyspace-events Egx$e
        """
        do {
            try DemoServer.writeNew(dir + "/redis.conf", conf)
            try DemoServer.writeNew(passwordFile, pw + "\n")
        } catch {
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(bin), strdup(dir + "/redis.conf"), nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, bin, &fa, nil, argv, environ)
        if rc != 0 { try? FileManager.default.removeItem(atPath: dir); throw RedisError.usage("cannot start redis-server: \(String(cString: strerror(rc)))") }
        self.pid = pid
        self.port = port
        demoServerPID.store(pid, ordering: .relaxed)
        let deadline = monotonicNow() + 10
        while monotonicNow() < deadline {
            if (try? RedisConnection(config(timeouts: Timeouts(connect: 0.2, io: 1))))?.close() != nil { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let log = (try? String(contentsOfFile: dir + "/redis.log", encoding: .utf8)) ?? ""
                try? FileManager.default.removeItem(atPath: dir)
                throw RedisError.connect(endpoint: "127.0.0.1:\(port)", reason: "the demo redis-server exited: \(log.split(separator: "\n").last ?? "")")
            }
            usleep(50_000)
        }
        stop()
        throw RedisError.connect(endpoint: "127.0.0.1:\(port)", reason: "the demo redis-server did not start")
    }

    /// How to reach it (with its password).
    public func config(timeouts: Timeouts = Timeouts()) -> ConnectionConfig {
        ConnectionConfig(host: "127.0.0.1", port: port, password: password, timeouts: timeouts)
    }

    public func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<50 {
            if waitpid(pid, &status, WNOHANG) == pid { break }
            usleep(40_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, WNOHANG)
        demoServerPID.store(0, ordering: .relaxed)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A port that was free a moment ago on 127.0.0.1.
    public static func freePort() -> Int {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// The demo server's pid, for signal handlers (a crash must not leave it running).
public let demoServerPID = Atomic<Int32>(0)
