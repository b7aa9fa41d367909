import Foundation
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// Where every write and every dry run is recorded: one JSON line each, appended.
public struct AuditLog: Sendable {
    public var path: String
    /// A channel to publish each record on, so other operators see it (nil: none).
    public var channel: String?
    /// Beyond this many keys a record lists the first ones and names a file with all of them.
    public static let inlineKeys = 1000

    public init(path: String, channel: String? = nil) { self.path = path; self.channel = channel }

    /// `$REDIS_OPS_AUDIT_LOG`, else `$XDG_STATE_HOME/redis-ops/audit.log`, else `~/.local/state/redis-ops/audit.log`.
    public static func defaultPath(environment env: [String: String]) -> String {
        if let p = env["REDIS_OPS_AUDIT_LOG"], !p.isEmpty { return p }
        let base = env["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.local/state")
        return base + "/redis-ops/audit.log"
    }

    /// The log named by `--audit-log`, else the environment's; the channel from the environment.
    public static func resolve(explicit: String?, environment env: [String: String]) -> AuditLog {
        AuditLog(path: explicit.flatMap { $0.isEmpty ? nil : $0 } ?? defaultPath(environment: env),
                 channel: env["REDIS_OPS_AUDIT_CHANNEL"].flatMap { $0.isEmpty ? nil : $0 })
    }

    public static func localUser() -> String {
        if let pw = getpwuid(getuid()), let n = pw.pointee.pw_name { return String(cString: n) }
        return ProcessInfo.processInfo.environment["USER"] ?? "uid \(getuid())"
    }

    /// A key inside `keys`: text when it is valid UTF-8, else `{"base64":"…"}`.
    public static func keyJSON(_ k: Bytes) -> JSON {
        k.isValidUTF8 ? .bytes(k) : .object([("base64", .string(k.base64))])
    }

    /// The record of one write or dry run (ARCHITECTURE.md, "Contracts"). More than
    /// `inlineKeys` keys go to a file next to the log, which the record names.
    public func record(action: WriteAction, server: String, aclUser: String?, request: WriteRequest, keys: [Bytes],
                       report: WriteReport, at: Double = wallClockNow()) throws -> JSON {
        var f: [(String, JSON)] = [("ts", .string(isoTimestamp(at))), ("action", .string(action.rawValue)),
                                   ("local_user", .string(Self.localUser())), ("acl_user", .string(aclUser ?? "default")),
                                   ("server", .string(server))]
        if let g = request.glob { f.append(("pattern", .string(g))) }
        if action == .publish, let ch = request.channel {
            f.append(("channel", .bytes(ch)))
            f.append(("keys", .array([Self.keyJSON(ch)])))
        } else {
            f.append(("keys", .array(keys.prefix(Self.inlineKeys).map(Self.keyJSON))))
            if keys.count > Self.inlineKeys { f.append(("keys_file", .string(try writeKeysFile(keys, action: action, at: at)))) }
        }
        f += [("dry_run", .bool(report.dryRun)), ("matched", .int(Int64(report.matched))), ("deleted", .int(Int64(report.deleted))),
              ("already_gone", .int(Int64(report.alreadyGone))), ("failed", .int(Int64(report.failed))),
              ("unknown", .int(Int64(report.unknown))), ("cancelled", .bool(report.cancelled))]
        if action == .expire || action == .persist {
            f.append(("updated", .int(Int64(report.updated))))
            if let t = request.ttl { f.append(("ttl_s", .int(t))) }
        }
        if action == .release { f.append(("kept", .int(Int64(report.kept)))) }
        if action == .publish { f.append(("receivers", report.receivers.map { .int(Int64($0)) } ?? .null)) }
        if let e = report.error { f.append(("error", .string(e))) }
        return .object(f)
    }

    /// Every key, one JSON string (or base64 object) per line, in a file next to the log.
    func writeKeysFile(_ keys: [Bytes], action: WriteAction, at: Double) throws -> String {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let stamp = isoTimestamp(at).replacingOccurrences(of: ":", with: "").replacingOccurrences(of: "-", with: "")
        let file = dir + "/audit-keys-\(stamp)-\(action.rawValue)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).ndjson"
        var out = Bytes()
        out.reserveCapacity(keys.count * 24)
        for k in keys { Self.keyJSON(k).write(to: &out); out.append(10) }
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WriteRefused("cannot write the audit keys file \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { throw WriteRefused("cannot write the audit keys file \(file): \(String(cString: strerror(errno)))") }
            off += n
        }
        return file
    }

    /// Appends the record (creating the directory) and publishes it if a channel is set.
    public func append(_ record: JSON, publishOn conn: RedisConnection? = nil) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var line = Bytes()
        record.write(to: &line)
        line.append(10)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WriteRefused("cannot write the audit log \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if let ch = channel, let conn {
            _ = try? conn.pipeline([[Bytes(utf8: "PUBLISH"), Bytes(utf8: ch), Array(line.dropLast())]])
        }
    }

    /// The newest records, newest first (read from the end of the log: at most `maxBytes`).
    public func recent(limit: Int = 200, maxBytes: Int = 1 << 20) -> [AuditEntry] {
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        let start = size > UInt64(maxBytes) ? size - UInt64(maxBytes) : 0
        try? h.seek(toOffset: start)
        let data = (try? h.readToEnd()) ?? Data()
        var lines = data.split(separator: 10, omittingEmptySubsequences: true)
        if start > 0 && !lines.isEmpty { lines.removeFirst() }   // a partial first line
        var out: [AuditEntry] = []
        for line in lines.reversed() {
            if out.count >= limit { break }
            if let j = JSONParser.parse(Bytes(line)), let e = AuditEntry(j) { out.append(e) }
        }
        return out
    }
}

/// One audit record, read back for the console's Audit overlay.
public struct AuditEntry: Sendable, Equatable {
    public var ts: String
    public var action: String
    public var localUser: String
    public var aclUser: String
    public var server: String
    public var pattern: String?
    public var keys: [Bytes]
    public var keysFile: String?
    public var dryRun: Bool
    public var matched: Int
    public var deleted: Int
    public var alreadyGone: Int
    public var failed: Int
    public var unknown: Int
    public var cancelled: Bool
    public var error: String?

    init?(_ j: JSON) {
        guard case .object = j, let ts = j.field("ts")?.scalarText, let action = j.field("action")?.scalarText else { return nil }
        self.ts = ts
        self.action = action
        localUser = j.field("local_user")?.scalarText ?? "?"
        aclUser = j.field("acl_user")?.scalarText ?? "?"
        server = j.field("server")?.scalarText ?? "?"
        pattern = j.field("pattern")?.scalarText
        keysFile = j.field("keys_file")?.scalarText
        var ks: [Bytes] = []
        if case .array(let items)? = j.field("keys") {
            for it in items {
                if case .string(let s) = it { ks.append(Bytes(utf8: s)) }
                else if case .bytes(let b) = it { ks.append(b) }
                else if let b64 = it.field("base64")?.scalarText, let d = Data(base64Encoded: b64) { ks.append(Bytes(d)) }
            }
        }
        keys = ks
        func int(_ k: String) -> Int { Int(j.field(k)?.scalarText ?? "") ?? 0 }
        dryRun = j.field("dry_run")?.scalarText == "true"
        matched = int("matched"); deleted = int("deleted"); alreadyGone = int("already_gone"); failed = int("failed"); unknown = int("unknown")
        cancelled = j.field("cancelled")?.scalarText == "true"
        error = j.field("error")?.scalarText
    }
}
