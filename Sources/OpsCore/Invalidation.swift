import Foundation
import Synchronization
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// What to invalidate: explicit keys (taken literally) and/or a glob, both relative to the prefix.
public struct InvalidationRequest: Sendable, Equatable {
    public var keys: [Bytes]
    public var glob: String?
    public init(keys: [Bytes] = [], glob: String? = nil) { self.keys = keys; self.glob = glob }

    public var description: String {
        var parts: [String] = []
        if let g = glob { parts.append("pattern \(g)") }
        if !keys.isEmpty { parts.append("\(keys.count) key\(keys.count == 1 ? "" : "s")") }
        return parts.joined(separator: " + ")
    }
}

/// The dry run's result: exactly the keys that would go.
public struct InvalidationPlan: Sendable, Equatable {
    public var request: InvalidationRequest
    public var keys: [Bytes]
    /// Keys that matched the glob but sit in a protected namespace (locks, counters) and were left out.
    public var protectedSkipped: Int
    public var sample: [Bytes] { Array(keys.prefix(10)) }
    public init(request: InvalidationRequest, keys: [Bytes], protectedSkipped: Int) {
        self.request = request; self.keys = keys; self.protectedSkipped = protectedSkipped
    }
}

/// The outcome of deleting a plan's keys.
public struct InvalidationReport: Sendable, Equatable {
    public var matched: Int
    public var deleted = 0
    public var alreadyGone = 0
    public var failed = 0
    public var failure: String?
    public var cancelled = false
    public var dryRun = false
    public var sample: [Bytes] = []
    public init(matched: Int) { self.matched = matched }

    /// `{"matched":N,"deleted":M,"dry_run":false,"sample":[...]}` (DESIGN.md section 3).
    public var json: JSON {
        .object([("matched", .int(Int64(matched))), ("deleted", .int(Int64(deleted))), ("dry_run", .bool(dryRun)),
                 ("sample", .array(sample.map { .bytes($0) }))])
    }
}

public struct InvalidationProgress: Sendable, Equatable {
    public var done: Int
    public var total: Int
    public var deleted: Int
    public var elapsed: Double
    public init(done: Int, total: Int, deleted: Int, elapsed: Double) { self.done = done; self.total = total; self.deleted = deleted; self.elapsed = elapsed }
    public var eta: Double? { done > 0 && done < total ? elapsed / Double(done) * Double(total - done) : nil }
}

/// Invalidation: plan (dry run) → confirm → execute with UNLINK in throttled, pipelined
/// batches → report, and an audit record. Never DEL on a pattern without a plan.
public struct Invalidator: Sendable {
    public var schema: KeySchema
    public var batchSize = 500
    /// Pause between batches, so Redis keeps serving the application.
    public var pauseBetweenBatches = 0.005
    /// A plan larger than this is refused (invalidate in narrower patterns).
    public var maxKeys = 2_000_000

    public init(schema: KeySchema) { self.schema = schema }

    /// Is the glob explicitly about a protected namespace (then its keys are not skipped)?
    func namesProtected(_ glob: String) -> Bool {
        schema.protectedPatterns.contains { p in
            let ns = p.split(separator: "*", maxSplits: 1).first.map(String.init) ?? p
            return !ns.isEmpty && glob.hasPrefix(ns)
        }
    }

    /// The dry run: SCAN (bounded COUNT) for the glob, EXISTS for explicit keys. Deletes nothing.
    public func plan(_ req: InvalidationRequest, on conn: RedisConnection, progress: ((Int) -> Void)? = nil,
                     cancelled: () -> Bool = { false }) throws -> InvalidationPlan {
        try plan(req, nodes: NodeSet(seed: conn), progress: progress, cancelled: cancelled)
    }

    /// The dry run over every primary in cluster mode.
    public func plan(_ req: InvalidationRequest, nodes: NodeSet, progress: ((Int) -> Void)? = nil,
                     cancelled: () -> Bool = { false }) throws -> InvalidationPlan {
        var keys: [Bytes] = []
        var seen = Set<Bytes>()
        var skipped = 0
        if let g = req.glob {
          let explicit = namesProtected(g)
          for conn in try nodes.scanNodes() {
            let scanner = KeyScanner(match: schema.fullGlob(g), count: 1000)
            while let page = try scanner.next(on: conn) {
                for k in page {
                    if !explicit && schema.isProtected(k) { skipped += 1; continue }
                    if seen.insert(k).inserted { keys.append(k) }
                }
                if keys.count > maxKeys {
                    throw RedisError.usage("more than \(maxKeys) keys match \(g); invalidate in narrower patterns")
                }
                progress?(keys.count)
                if cancelled() { break }
            }
            if cancelled() { break }
          }
        }
        if !req.keys.isEmpty {
            let full = req.keys.map { schema.fullKey($0) }
            for (conn, ks) in try nodes.group(full) {
                let r = try conn.pipeline(ks.map { [Bytes(utf8: "EXISTS"), $0] })
                for (k, v) in zip(ks, r) {
                    if let e = v.errorReply { throw RedisError.server(e) }
                    if v.int == 1 && seen.insert(k).inserted { keys.append(k) }
                }
            }
        }
        return InvalidationPlan(request: req, keys: keys, protectedSkipped: skipped)
    }

    /// Deletes exactly the plan's keys with UNLINK. Stops at the first NOPERM or READONLY
    /// (never retried blindly) or when `cancelled` says so; the report says how many went.
    public func execute(_ plan: InvalidationPlan, on conn: RedisConnection, cancelled: () -> Bool = { false },
                        progress: ((InvalidationProgress) -> Void)? = nil) -> InvalidationReport {
        do {
            return execute(plan, nodes: try NodeSet(seed: conn), cancelled: cancelled, progress: progress)
        } catch {
            var rep = InvalidationReport(matched: plan.keys.count)
            rep.failure = "\(error)"
            return rep
        }
    }

    /// Deletes with UNLINK, each batch grouped by the node that owns the keys (cluster mode).
    public func execute(_ plan: InvalidationPlan, nodes: NodeSet, cancelled: () -> Bool = { false },
                        progress: ((InvalidationProgress) -> Void)? = nil) -> InvalidationReport {
        var rep = InvalidationReport(matched: plan.keys.count)
        rep.sample = plan.sample
        let start = monotonicNow()
        var i = 0
        while i < plan.keys.count {
            if cancelled() { rep.cancelled = true; break }
            let batch = plan.keys[i..<min(plan.keys.count, i + batchSize)]
            do {
                var r: [RESPValue] = []
                for (conn, ks) in try nodes.group(batch) { r += try conn.pipeline(ks.map { [Bytes(utf8: "UNLINK"), $0] }) }
                for v in r {
                    if let e = v.errorReply {
                        rep.failed += 1
                        if rep.failure == nil { rep.failure = e.message }
                    } else if v.int == 1 { rep.deleted += 1 } else { rep.alreadyGone += 1 }
                }
                if let f = rep.failure, ServerError(f).kind == .noPerm || ServerError(f).kind == .readOnly || ServerError(f).kind == .unknownCommand {
                    break
                }
            } catch {
                rep.failure = "\(error)"
                break
            }
            i += batch.count
            progress?(InvalidationProgress(done: i, total: plan.keys.count, deleted: rep.deleted, elapsed: monotonicNow() - start))
            if pauseBetweenBatches > 0 && i < plan.keys.count { usleep(UInt32(pauseBetweenBatches * 1_000_000)) }
        }
        return rep
    }
}

/// Where invalidations are recorded: one JSON line each, appended.
public struct AuditLog: Sendable {
    public var path: String
    /// A channel to publish each record on, so other operators see it (nil: none).
    public var channel: String?

    public init(path: String, channel: String? = nil) { self.path = path; self.channel = channel }

    /// `$REDIS_OPS_AUDIT_LOG`, else `$XDG_STATE_HOME/redis-ops/audit.log`, else `~/.local/state/redis-ops/audit.log`.
    public static func defaultPath(environment env: [String: String]) -> String {
        if let p = env["REDIS_OPS_AUDIT_LOG"], !p.isEmpty { return p }
        let base = env["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.local/state")
        return base + "/redis-ops/audit.log"
    }

    public static func localUser() -> String {
        if let pw = getpwuid(getuid()), let n = pw.pointee.pw_name { return String(cString: n) }
        return ProcessInfo.processInfo.environment["USER"] ?? "uid \(getuid())"
    }

    public func record(server: String, aclUser: String?, what: InvalidationRequest, report: InvalidationReport, at: Double = wallClockNow()) -> JSON {
        var f: [(String, JSON)] = [("ts", .string(isoTimestamp(at))), ("local_user", .string(Self.localUser())),
                                   ("acl_user", .string(aclUser ?? "default")), ("server", .string(server))]
        if let g = what.glob { f.append(("pattern", .string(g))) }
        if !what.keys.isEmpty { f.append(("keys", .array(what.keys.prefix(100).map { .bytes($0) }))) }
        f += [("dry_run", .bool(report.dryRun)), ("matched", .int(Int64(report.matched))), ("deleted", .int(Int64(report.deleted))),
              ("already_gone", .int(Int64(report.alreadyGone))), ("failed", .int(Int64(report.failed))), ("cancelled", .bool(report.cancelled))]
        if let e = report.failure { f.append(("error", .string(e))) }
        return .object(f)
    }

    /// Appends the record (creating the directory) and publishes it if a channel is set.
    public func append(_ record: JSON, publishOn conn: RedisConnection? = nil) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var line = Bytes()
        record.write(to: &line)
        line.append(10)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RedisError.usage("cannot write the audit log \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if let ch = channel, let conn {
            _ = try? conn.pipeline([[Bytes(utf8: "PUBLISH"), Bytes(utf8: ch), Array(line.dropLast())]])
        }
    }
}
