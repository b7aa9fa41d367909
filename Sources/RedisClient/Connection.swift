#if canImport(Glibc)
import Glibc
#endif
import RedisProtocol

/// A password that never shows up in a description, a log line or an error.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// Where and how to connect.
public struct ConnectionConfig: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: Secret?
    public var db: Int
    public var tls: TLSSettings?
    public var timeouts: Timeouts
    public var clientName: String?
    public var limits: DecoderLimits
    /// Where the password comes from when it can change (a file, a command): read again
    /// after a refusal. Takes precedence over `password`.
    public var credentials: CredentialSource?
    /// A bastion every connection goes through (`ssh -W`); nil: direct.
    public var via: SSHHop?

    public init(host: String = "127.0.0.1", port: Int = 6379, user: String? = nil, password: Secret? = nil,
                db: Int = 0, tls: TLSSettings? = nil, timeouts: Timeouts = Timeouts(), clientName: String? = "redis-ops",
                limits: DecoderLimits = .default) {
        self.host = host; self.port = port; self.user = user; self.password = password
        self.db = db; self.tls = tls; self.timeouts = timeouts; self.clientName = clientName; self.limits = limits
    }

    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The password to send now.
    public var currentPassword: Secret? { credentials?.current ?? password }
}

extension SSHHop: Equatable {
    public static func == (a: SSHHop, b: SSHHop) -> Bool { a === b }
}

extension CredentialSource: Equatable {
    public static func == (a: CredentialSource, b: CredentialSource) -> Bool { a === b }
}

/// One connection to one Redis server: handshake (TLS, AUTH, SELECT), pipelined
/// requests with replies matched in order, typed errors. Not thread-safe: one owner at a time.
///
/// `@unchecked Sendable`: its decoder and buffers are mutated without a lock; safe because
/// exactly one thread uses a connection at a time (its NodeSet's, or a subscriber worker's).
public final class RedisConnection: @unchecked Sendable {
    public let config: ConnectionConfig
    public let transport: Transport
    let decoder: RESPDecoder
    private var readBuffer: UnsafeMutableRawBufferPointer
    private var failure: RedisError?
    /// A read failure that followed data in the same `fillAvailable` call (thrown on the next).
    private var heldFailure: Error?
    /// The server's id for this connection (CLIENT ID), when the user may ask for it:
    /// lets a later connection make sure this one will run nothing more (CLIENT KILL ID).
    public private(set) var clientID: Int64?
    /// READONLY was sent (reads from a cluster replica).
    public var readOnlyMode = false
    /// How long the handshake's pipeline (AUTH, PING, CLIENT SETNAME/ID) took: a first
    /// measure of the round trip, the server's time being negligible.
    public private(set) var handshakeRTT: Double = 0

    public init(_ config: ConnectionConfig) throws {
        self.config = config
        do {
            self.transport = try Transport(host: config.host, port: config.port, tls: config.tls, timeouts: config.timeouts, via: config.via)
        } catch RedisError.tls(let ep, let reason) {
            throw RedisError.tls(endpoint: ep, reason: reason + Self.tlsBecause(config))
        }
        self.decoder = RESPDecoder(limits: config.limits)
        self.readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        do {
            try handshake()
        } catch let e as RedisError {
            // Through a bastion, a stream that ends at once is ssh saying why (the node is
            // unreachable from the bastion, the master went away).
            if transport.isViaSSH, case .closed = e, let why = transport.viaExplanation() {
                throw RedisError.connect(endpoint: config.endpoint, reason: why)
            }
            // A plain client on a TLS port only sees the connection go (or bytes that are not
            // RESP). If a TLS handshake succeeds on that port, say so.
            if config.tls == nil, Self.failsLikeTLS(e), Self.speaksTLS(config) {
                throw RedisError.tls(endpoint: config.endpoint, reason: "this port speaks TLS: connect with --tls (or a rediss:// URL)")
            }
            if case .tls(let ep, let reason) = e { throw RedisError.tls(endpoint: ep, reason: reason + Self.tlsBecause(config)) }
            throw e
        }
    }

    /// " — TLS is on because NODE_ENV=production; --no-tls turns it off" (or nothing).
    static func tlsBecause(_ config: ConnectionConfig) -> String {
        guard let why = config.tls?.because else { return "" }
        return " — TLS is on because \(why); --no-tls turns it off"
    }

    static func failsLikeTLS(_ e: RedisError) -> Bool {
        switch e { case .closed, .protocolViolation, .timeout: return true; default: return false }
    }

    /// Whether a TLS handshake (certificate unchecked: we only ask whether it is TLS) succeeds.
    static func speaksTLS(_ config: ConnectionConfig) -> Bool {
        let t = try? Transport(host: config.host, port: config.port, tls: TLSSettings(insecure: true),
                               timeouts: Timeouts(connect: min(2, config.timeouts.connect), io: 2), via: config.via)
        t?.close()
        return t != nil
    }

    deinit {
        transport.close()
        readBuffer.deallocate()
    }

    public var isBroken: Bool { failure != nil }

    private func handshake() throws {
        var cmds: [[Bytes]] = []
        var authIndex = -1
        let password = config.currentPassword
        if let pw = password {
            authIndex = cmds.count
            if let u = config.user, !u.isEmpty {
                cmds.append([Bytes(utf8: "AUTH"), Bytes(utf8: u), Bytes(utf8: pw.value)])
            } else {
                cmds.append([Bytes(utf8: "AUTH"), Bytes(utf8: pw.value)])
            }
        } else if let u = config.user, !u.isEmpty {
            // An ACL user with no password (nopass): AUTH still needs an argument.
            authIndex = cmds.count
            cmds.append([Bytes(utf8: "AUTH"), Bytes(utf8: u), Bytes(utf8: "")])
        }
        let pingIndex = cmds.count
        cmds.append([Bytes(utf8: "PING")])
        var selectIndex = -1
        if config.db != 0 {
            selectIndex = cmds.count
            cmds.append([Bytes(utf8: "SELECT"), Bytes(utf8: String(config.db))])
        }
        if let n = config.clientName {
            cmds.append([Bytes(utf8: "CLIENT"), Bytes(utf8: "SETNAME"), Bytes(utf8: n)])
        }
        let idIndex = cmds.count
        cmds.append([Bytes(utf8: "CLIENT"), Bytes(utf8: "ID")])
        let t0 = monotonicNow()
        let replies = try pipeline(cmds)
        handshakeRTT = monotonicNow() - t0
        if authIndex >= 0, let e = replies[authIndex].errorReply {
            let who = config.user.map { "user '\($0)'" } ?? "the default user"
            if e.message.contains("without any password configured") {
                throw RedisError.auth("a password was given but the server has none configured (\(e.message))")
            }
            // The password may have rotated: its source is read again for the next attempt.
            config.credentials?.reread()
            let from = config.credentials.map { " (from \($0))" } ?? " (check --password-file, --password-command, REDIS_AUTH_TOKEN or the URL)"
            throw RedisError.auth("\(e.code): invalid password for \(who)\(from)")
        }
        if let e = replies[pingIndex].errorReply {
            if e.kind == .noAuth {
                config.credentials?.reread()
                throw RedisError.auth("the server requires a password (NOAUTH); give one with --password-file, --password-command, REDIS_AUTH_TOKEN or the URL")
            }
            if e.kind != .noPerm { throw RedisError.server(e) }
        }
        if selectIndex >= 0, let e = replies[selectIndex].errorReply {
            throw RedisError.server(ServerError("\(e.code) SELECT \(config.db) failed: \(e.message)"))
        }
        // CLIENT SETNAME and CLIENT ID may be forbidden for this user; that's fine.
        if case .integer(let id) = replies[idIndex] { clientID = id }
    }

    // MARK: requests

    /// Sends every command in one write and returns their replies in order. Error
    /// replies are returned as `.error` values; I/O and protocol problems throw (and
    /// leave the connection closed).
    public func pipeline(_ commands: [[Bytes]]) throws -> [RESPValue] {
        if commands.isEmpty { return [] }
        try send(commands)
        return try receive(commands.count)
    }

    /// Writes commands without waiting for their replies (read them later with `receive`),
    /// so the caller can work while the server does.
    public func send(_ commands: [[Bytes]]) throws {
        if let f = failure { throw f }
        if commands.isEmpty { return }
        var out = Bytes()
        for c in commands { RESPEncoder.append(c, to: &out) }
        do {
            try transport.writeAll(out, timeout: config.timeouts.io)
        } catch let e as RedisError {
            throw breakConnection(e)
        }
    }

    /// Reads the next `count` replies, in order.
    public func receive(_ count: Int) throws -> [RESPValue] {
        if let f = failure { throw f }
        do {
            var replies: [RESPValue] = []
            replies.reserveCapacity(count)
            while replies.count < count {
                while replies.count < count, let v = try decoder.next() { replies.append(v) }
                if replies.count == count { break }
                try fill(timeout: config.timeouts.io)
            }
            return replies
        } catch let e as ProtocolError {
            throw breakConnection(.protocolViolation(e.message))
        } catch let e as RedisError {
            throw breakConnection(e)
        }
    }

    /// The socket, for a caller that polls several connections at once.
    public var fd: Int32 { transport.fd }
    /// Decrypted bytes waiting inside OpenSSL (poll cannot see them).
    public var hasBufferedInput: Bool { transport.hasBufferedInput }

    /// The replies that can be read now, without waiting (none when nothing arrived).
    /// A failure breaks the connection and is thrown once the replies before it are taken.
    public func availableReplies() throws -> [RESPValue] {
        if let f = failure { throw f }
        var out: [RESPValue] = []
        do {
            while let v = try decoder.next() { out.append(v) }
            _ = try fillAvailable()
            while let v = try decoder.next() { out.append(v) }
        } catch let e as ProtocolError {
            if out.isEmpty { throw breakConnection(.protocolViolation(e.message)) }
            heldFailure = RedisError.protocolViolation(e.message)
        } catch let e as RedisError {
            if out.isEmpty { throw breakConnection(e) }
            heldFailure = e
        }
        return out
    }

    /// Reads more bytes into the decoder.
    func fill(timeout: Double) throws {
        let n = try transport.read(into: readBuffer, timeout: timeout)
        try decoder.feed(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
    }

    /// Reads whatever is available now (non-blocking), feeding the decoder. Returns bytes read.
    /// Bytes that arrived just before the connection failed are delivered first: the failure
    /// is held back and thrown by the next call (a message published just before a server
    /// died must not be lost with it).
    func fillAvailable() throws -> Int {
        if let e = heldFailure { heldFailure = nil; throw e }
        var total = 0
        while true {
            let n: Int
            do { n = try transport.readSome(into: readBuffer) } catch {
                if total == 0 { throw error }
                heldFailure = error
                return total
            }
            if n == 0 { return total }
            total += n
            try decoder.feed(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
            if total >= 4 * readBuffer.count { return total }
        }
    }

    @discardableResult
    func breakConnection(_ e: RedisError) -> RedisError {
        if failure == nil { failure = e }
        transport.close()
        return e
    }

    /// One command; an error reply throws `RedisError.server`.
    @discardableResult
    public func call(_ args: [Bytes]) throws -> RESPValue {
        let r = try pipeline([args])[0]
        if let e = r.errorReply { throw RedisError.server(e) }
        return r
    }

    @discardableResult
    public func call(_ args: String...) throws -> RESPValue {
        try call(args.map { Bytes(utf8: $0) })
    }

    public func close() {
        if failure == nil { failure = .closed("closed by redis-ops") }
        transport.close()
    }
}

/// Capped, jittered exponential backoff ("full jitter" over an exponential ceiling).
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double
    public private(set) var attempt: Int = 0
    private var rng: SplitMix

    public init(base: Double = 0.2, cap: Double = 10, seed: UInt64 = UInt64(truncatingIfNeeded: monotonicNowNanos())) {
        self.base = base; self.cap = cap; self.rng = SplitMix(seed: seed)
    }

    /// The ceiling for the current attempt (before jitter).
    public var ceiling: Double { min(cap, base * pow2(attempt)) }

    /// The delay before the next try: uniformly random in [ceiling/2, ceiling], never above `cap`.
    public mutating func nextDelay() -> Double {
        let c = ceiling
        attempt += 1
        let r = Double(rng.next() >> 11) / Double(1 << 53)
        return c / 2 + r * c / 2
    }

    public mutating func reset() { attempt = 0 }

    private func pow2(_ n: Int) -> Double { n >= 60 ? Double.greatestFiniteMagnitude : Double(UInt64(1) << UInt64(n)) }
}

/// SplitMix64: a small, seedable generator (backoff jitter, the demo's reproducible traffic).
public struct SplitMix: Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

public func monotonicNowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
