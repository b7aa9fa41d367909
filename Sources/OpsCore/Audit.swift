import Foundation
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// The audit log could not be written: nothing is written to Redis before its intent record
/// is (the CLI exits 2; the console keeps the dialog open and says why).
public struct AuditUnavailable: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let cause: String
    public init(path: String, cause: String) { self.path = path; self.cause = cause }
    public var description: String { "the audit log \(path) cannot be written: \(cause); nothing was written to Redis" }
}

/// Where every write and every dry run is recorded: one JSON line each, appended.
///
/// Write-ahead: before the first write of a flow, an `intent` record (action, server,
/// pattern, keys or keys_file, count, id) is written and flushed to disk; the `done` record
/// with the outcome follows, with the same id. If the intent cannot be written, nothing is
/// written to Redis. Dry runs write only a `done` record. The log is opened with
/// `O_APPEND|O_NOFOLLOW` (a symbolic link is refused), created 0600, and must be a regular
/// file; the keys file of a large write goes beside it.
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

    /// A fresh id tying an intent record to its outcome.
    public static func newID() -> String {
        var g = SystemRandomNumberGenerator()
        return String(format: "%016llx", g.next() as UInt64)
    }

    /// A key inside `keys`: text when it is valid UTF-8, else `{"base64":"…"}`.
    public static func keyJSON(_ k: Bytes) -> JSON {
        k.isValidUTF8 ? .bytes(k) : .object([("base64", .string(k.base64))])
    }

    // MARK: records

    /// The fields every record of a write carries: who, where, what (keys inline up to
    /// `inlineKeys`, else the first ones and `keys_file`).
    func head(phase: String, id: String, action: WriteAction, server: String, aclUser: String?, request: WriteRequest,
              keys: [Bytes], keysFile: String?, at: Double) -> [(String, JSON)] {
        var f: [(String, JSON)] = [("ts", .string(isoTimestamp(at))), ("phase", .string(phase)), ("id", .string(id)),
                                   ("action", .string(action.kind.rawValue)),
                                   ("local_user", .string(Self.localUser())), ("acl_user", .string(aclUser ?? "default")),
                                   ("server", .string(server))]
        if let g = request.glob { f.append(("pattern", .string(g))) }
        switch action {
        case .publish(let ch, _):
            f.append(("channel", .bytes(ch)))
            f.append(("keys", .array([Self.keyJSON(ch)])))
        case .kill(let c):
            f.append(("client", c.json))
            f.append(("keys", .array([])))
        case .config(let name, let value, let previous):
            f.append(("parameter", .string(name)))
            f.append(("value", .string(value)))
            f.append(("previous", previous.map { .string($0) } ?? .null))
            f.append(("keys", .array([])))
        case .invalidate, .delete, .reset, .release, .expire, .persist:
            f.append(("keys", .array(keys.prefix(Self.inlineKeys).map(Self.keyJSON))))
            if let kf = keysFile { f.append(("keys_file", .string(kf))) }
        }
        if case .expire(let ttl, _) = action { f.append(("ttl_s", .int(ttl))) }
        return f
    }

    /// The intent record, written before the first write.
    public func intentRecord(id: String, action: WriteAction, server: String, aclUser: String?, request: WriteRequest,
                             keys: [Bytes], keysFile: String?, at: Double = wallClockNow()) -> JSON {
        var f = head(phase: "intent", id: id, action: action, server: server, aclUser: aclUser, request: request,
                     keys: keys, keysFile: keysFile, at: at)
        f += [("dry_run", .bool(false)), ("matched", .int(Int64(keys.count)))]
        return .object(f)
    }

    /// The outcome record (of a write or a dry run).
    public func doneRecord(id: String, action: WriteAction, server: String, aclUser: String?, request: WriteRequest, keys: [Bytes],
                           keysFile: String?, report: WriteReport, at: Double = wallClockNow()) -> JSON {
        var f = head(phase: "done", id: id, action: action, server: server, aclUser: aclUser, request: request,
                     keys: keys, keysFile: keysFile, at: at)
        f += [("dry_run", .bool(report.dryRun)), ("matched", .int(Int64(report.matched))), ("deleted", .int(Int64(report.deleted))),
              ("already_gone", .int(Int64(report.alreadyGone))), ("failed", .int(Int64(report.failed))),
              ("unknown", .int(Int64(report.unknown))), ("cancelled", .bool(report.cancelled))]
        switch action {
        case .expire, .persist: f.append(("updated", .int(Int64(report.updated))))
        case .release: f.append(("kept", .int(Int64(report.kept))))
        case .publish: f.append(("receivers", report.receivers.map { .int(Int64($0)) } ?? .null))
        case .invalidate, .delete, .reset, .kill, .config: break
        }
        if let sig = report.signal { f.append(("signal", .string(sig))) }
        if let e = report.error { f.append(("error", .string(e))) }
        return .object(f)
    }

    // MARK: files

    /// Makes the log's directory (0700 for what it creates); a failure names the cause.
    func makeDirectory() throws {
        let dir = (path as NSString).deletingLastPathComponent
        guard !dir.isEmpty else { return }
        var st = stat()
        if stat(dir, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw AuditUnavailable(path: path, cause: "\(dir) is not a directory") }
            return
        }
        var built = dir.hasPrefix("/") ? "" : "."
        for part in dir.split(separator: "/", omittingEmptySubsequences: true) {
            built += "/" + part
            if mkdir(built, 0o700) != 0 && errno != EEXIST {
                throw AuditUnavailable(path: path, cause: "cannot create the directory \(built): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Opens the log for appending: never through a symbolic link, only a regular file.
    func openForAppend() throws -> Int32 {
        try makeDirectory()
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 {
            let e = errno
            if e == ELOOP { throw AuditUnavailable(path: path, cause: "it is a symbolic link (refused)") }
            throw AuditUnavailable(path: path, cause: String(cString: strerror(e)))
        }
        var st = stat()
        if fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            throw AuditUnavailable(path: path, cause: "it is not a regular file (refused)")
        }
        return fd
    }

    /// Writes all of `bytes`, then makes them durable; any failure is thrown with its cause.
    static func writeAll(_ fd: Int32, _ bytes: Bytes, path: String) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw AuditUnavailable(path: path, cause: String(cString: strerror(n < 0 ? errno : EIO))) }
            off += n
        }
        if fdatasync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw AuditUnavailable(path: path, cause: "cannot flush it to disk: \(String(cString: strerror(errno)))")
        }
    }

    /// Checks that the log can be written (opened, a regular file), without writing to it.
    public func check() throws {
        let fd = try openForAppend()
        close(fd)
    }

    /// Every key, one JSON string (or base64 object) per line, in a new file beside the log.
    public func writeKeysFile(_ keys: [Bytes], kind: WriteKind, at: Double = wallClockNow()) throws -> String {
        try makeDirectory()
        let dir = (path as NSString).deletingLastPathComponent
        let stamp = isoTimestamp(at).replacingOccurrences(of: ":", with: "").replacingOccurrences(of: "-", with: "")
        let file = (dir.isEmpty ? "." : dir) + "/audit-keys-\(stamp)-\(kind.rawValue)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).ndjson"
        var out = Bytes()
        out.reserveCapacity(keys.count * 24)
        for k in keys { Self.keyJSON(k).write(to: &out); out.append(10) }
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditUnavailable(path: path, cause: "cannot create the keys file \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try Self.writeAll(fd, out, path: file)
        return file
    }

    /// Appends one record (flushed to disk before it returns), then publishes it if a
    /// channel is set (best effort: the file is the record).
    public func append(_ record: JSON, publishOn conn: RedisConnection? = nil) throws {
        var line = Bytes()
        record.write(to: &line)
        line.append(10)
        let fd = try openForAppend()
        defer { close(fd) }
        try Self.writeAll(fd, line, path: path)
        if let ch = channel, let conn {
            _ = try? conn.pipeline([[Bytes(utf8: "PUBLISH"), Bytes(utf8: ch), Array(line.dropLast())]])
        }
    }

    // MARK: reading

    /// The newest writes and dry runs, newest first (read from the end of the log: at most
    /// `maxBytes`). Outcomes come from the `done` records; an intent whose outcome was never
    /// recorded (the process ended first) is shown as such.
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
        var finished = Set<String>()
        for line in lines.reversed() {
            if out.count >= limit { break }
            guard let j = JSONParser.parse(Bytes(line)), var e = AuditEntry(j) else { continue }
            if e.phase == "intent" {
                if let id = e.id, finished.contains(id) { continue }
                e.outcomeMissing = true
            } else if let id = e.id {
                finished.insert(id)
            }
            out.append(e)
        }
        return out
    }
}

/// One audit record, read back for the console's Audit overlay.
public struct AuditEntry: Sendable, Equatable {
    public var ts: String
    public var phase: String?
    public var id: String?
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
    /// An intent record with no outcome after it: the process ended before it could say.
    public var outcomeMissing = false

    init?(_ j: JSON) {
        guard case .object = j, let ts = j.field("ts")?.scalarText, let action = j.field("action")?.scalarText else { return nil }
        self.ts = ts
        self.action = action
        phase = j.field("phase")?.scalarText
        id = j.field("id")?.scalarText
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
