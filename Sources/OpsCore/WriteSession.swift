import Foundation
import DequeModule
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// The name of a kind of write, as the audit log records it (`"action"`).
public enum WriteKind: String, Sendable, Equatable, CaseIterable {
    case invalidate, delete, reset, release, expire, persist, publish, kill, config
}

/// Every write the tool makes, with what it needs. Switches over it are exhaustive (no
/// `default:`), so a new kind of write cannot fall into another's path.
public enum WriteAction: Sendable, Equatable {
    /// UNLINK keys matching a glob and/or named.
    case invalidate
    /// UNLINK one key the operator selected.
    case delete
    /// DEL rate-limit counters (the client's next request starts a new window).
    case reset
    /// Compare-and-delete stampede locks: only if each is still the one shown.
    case release([Bytes: LockExpectation])
    /// EXPIRE (… NX when only keys without a TTL are to get one).
    case expire(ttl: Int64, onlyWithoutTTL: Bool)
    /// PERSIST: the key keeps its value and loses its TTL.
    case persist
    /// PUBLISH one message.
    case publish(channel: Bytes, payload: Bytes)
    /// CLIENT KILL ID: end one client's connection.
    case kill(ClientRef)
    /// CONFIG SET one parameter (its previous value kept, to restore it).
    case config(parameter: String, value: String, previous: String?)

    public var kind: WriteKind {
        switch self {
        case .invalidate: return .invalidate
        case .delete: return .delete
        case .reset: return .reset
        case .release: return .release
        case .expire: return .expire
        case .persist: return .persist
        case .publish: return .publish
        case .kill: return .kill
        case .config: return .config
        }
    }

    /// The command a keyed write sends in batches (nil: a write of its own kind).
    var keyCommand: KeyCommand? {
        switch self {
        case .invalidate, .delete: return .unlink
        case .reset: return .del
        case .expire(let ttl, let nx): return .expire(ttl: ttl, onlyWithoutTTL: nx)
        case .persist: return .persist
        case .release, .publish, .kill, .config: return nil
        }
    }

    /// Whether it changes TTLs (counted as `updated`) rather than removing keys.
    public var updatesTTL: Bool { if case .expire = self { return true }; return self == .persist }
}

/// The commands of keyed writes, carried out in batches by the executor.
enum KeyCommand: Sendable, Equatable {
    case unlink, del, expire(ttl: Int64, onlyWithoutTTL: Bool), persist

    /// Whether one command takes many keys (UNLINK, DEL) or one (EXPIRE, PERSIST).
    var multiKey: Bool {
        switch self { case .unlink, .del: return true; case .expire, .persist: return false }
    }

    func command(_ keys: [Bytes]) -> [Bytes] {
        switch self {
        case .unlink: return [Bytes(utf8: "UNLINK")] + keys
        case .del: return [Bytes(utf8: "DEL")] + keys
        case .expire(let ttl, let nx): return [Bytes(utf8: "EXPIRE"), keys[0], Bytes(utf8: String(ttl))] + (nx ? [Bytes(utf8: "NX")] : [])
        case .persist: return [Bytes(utf8: "PERSIST"), keys[0]]
        }
    }
}

/// A client connection to end (Server view, `k`), as the operator was shown it.
public struct ClientRef: Sendable, Equatable {
    public var id: Int64
    public var address: String
    public var name: String
    public var ageSeconds: Int64
    public var lastCommand: String
    /// The node it is connected to (cluster mode), nil for the node of the seed.
    public var node: String?
    public init(id: Int64, address: String, name: String, ageSeconds: Int64, lastCommand: String, node: String? = nil) {
        self.id = id; self.address = address; self.name = name; self.ageSeconds = ageSeconds; self.lastCommand = lastCommand; self.node = node
    }
    var json: JSON {
        .object([("id", .int(id)), ("addr", .string(address)), ("name", .string(name)), ("age_s", .int(ageSeconds)),
                 ("cmd", .string(lastCommand)), ("node", node.map { .string($0) } ?? .null)])
    }
}

/// What a lock looked like when the operator was shown it: the release only goes ahead if
/// it still does — same value, and a PTTL not higher than what the lock shown would have
/// left by now — so a lock re-acquired meanwhile (the application's value is always "1",
/// but its TTL starts again at 10 s) is kept.
public struct LockExpectation: Sendable, Equatable {
    public var value: Bytes?
    /// PTTL when shown, ms; -1 for no TTL.
    public var pttl: Int64
    /// When it was read (wall clock).
    public var readAt: Double
    public init(value: Bytes?, pttl: Int64, readAt: Double) { self.value = value; self.pttl = pttl; self.readAt = readAt }

    /// The highest PTTL the lock shown can have now (ms), with `slack` for the round trips.
    public func ceiling(now: Double, slack: Int64 = 100) -> Int64 {
        pttl < 0 ? -1 : max(0, pttl - elapsedMs(since: readAt, now: now)) + slack
    }
}

/// A write as asked: keys named exactly (full names) and/or a glob relative to the prefix.
public struct WriteRequest: Sendable, Equatable {
    public var action: WriteAction
    public var keys: [Bytes]
    public var glob: String?

    public init(action: WriteAction, keys: [Bytes] = [], glob: String? = nil) {
        self.action = action; self.keys = keys; self.glob = glob
    }

    public static func publish(channel: Bytes, payload: Bytes) -> WriteRequest {
        WriteRequest(action: .publish(channel: channel, payload: payload))
    }

    public var summary: String {
        var parts: [String] = []
        if let g = glob { parts.append("pattern \(g)") }
        if !keys.isEmpty { parts.append("\(keys.count) key\(keys.count == 1 ? "" : "s")") }
        if case .publish(let c, _) = action { parts.append("channel \(c.lossyString)") }
        return parts.joined(separator: " + ")
    }
}

/// The dry run's result: exactly the keys the write would touch.
public struct WritePlan: Sendable, Equatable {
    public var request: WriteRequest
    public var keys: [Bytes]
    /// Keys that matched the glob but sit in a protected namespace (locks, counters) and were left out.
    public var protectedSkipped = 0
    /// Things the dry run had to do (a slot map that changed under it, a node that failed).
    public var notes: [String] = []
    public var sample: [Bytes] { Array(keys.prefix(10)) }
    public init(request: WriteRequest, keys: [Bytes]) { self.request = request; self.keys = keys }
}

/// The outcome of a write, exact: `deleted ≤ keys really deleted ≤ deleted + unknown`.
/// Its words (`text`) are derived from its numbers, never written ahead of them.
public struct WriteReport: Sendable, Equatable {
    public var action: WriteAction
    public var matched: Int
    /// Keys removed (invalidate, delete, reset, release).
    public var deleted = 0
    /// Keys whose TTL was set (expire, persist).
    public var updated = 0
    public var alreadyGone = 0
    public var failed = 0
    /// Keys whose write was sent but whose reply was never read. After reconnecting, the
    /// connection that sent it is killed and each key is checked: those still there are not
    /// counted here (they were not written; they are written again, or left when cancelled);
    /// those gone are (deleted by this run, or expired meanwhile). `unresolved` of them could
    /// not be checked at all (the server did not come back in time).
    public var unknown = 0
    public var unresolved = 0
    /// release: locks kept because they were re-acquired (or changed) since shown.
    public var kept = 0
    public var cancelled = false
    /// The signal that cancelled the run (SIGINT, SIGTERM, SIGHUP), if one did.
    public var signal: String?
    public var dryRun = false
    public var error: String?
    public var sample: [Bytes] = []
    /// publish: the number of subscribers that received it.
    public var receivers: Int?
    public var notes: [String] = []
    public var elapsed: Double = 0
    /// The outcome record could not be written to the audit log (the write itself happened).
    public var auditError: String?

    public init(action: WriteAction, matched: Int) { self.action = action; self.matched = matched }

    /// Keys not attempted (the run stopped or was cancelled first).
    public var notAttempted: Int { max(0, matched - (deleted + updated + alreadyGone + failed + unknown + kept)) }
    public var completed: Bool { error == nil && !cancelled && notAttempted == 0 }

    /// The `--json` report (ARCHITECTURE.md, "Contracts": matched, deleted, already_gone, failed, unknown, cancelled, dry_run, sample).
    public var json: JSON {
        var f: [(String, JSON)] = [("matched", .int(Int64(matched)))]
        if action.updatesTTL { f.append(("updated", .int(Int64(updated)))) }
        f += [("deleted", .int(Int64(deleted))), ("already_gone", .int(Int64(alreadyGone))), ("failed", .int(Int64(failed))),
              ("unknown", .int(Int64(unknown)))]
        if case .release = action { f.append(("kept", .int(Int64(kept)))) }
        f += [("cancelled", .bool(cancelled)), ("dry_run", .bool(dryRun)), ("sample", .array(sample.map { .bytes($0) }))]
        if let r = receivers { f.append(("receivers", .int(Int64(r)))) }
        if let e = error { f.append(("error", .string(e))) }
        return .object(f)
    }

    static func keys(_ n: Int) -> String { "\(n) key\(n == 1 ? "" : "s")" }

    /// What would happen, or happened, to the keys, in words.
    public var verbPast: String {
        switch action {
        case .expire: return "given a TTL"
        case .persist: return "made persistent"
        case .invalidate, .delete, .reset, .release: return "deleted"
        case .publish: return "published"
        case .kill: return "disconnected"
        case .config: return "set"
        }
    }

    /// The report in words (the same facts as the JSON).
    public var text: String {
        if dryRun { return "dry run: \(Self.keys(matched)) would be \(verbPast); nothing was changed" }
        var parts = ["matched \(matched)"]
        switch action {
        case .expire, .persist: parts.append("updated \(updated)")
        case .publish: parts.append(receivers.map { "received by \($0) subscriber\($0 == 1 ? "" : "s")" } ?? "receivers unknown")
        case .invalidate, .delete, .reset, .release, .kill, .config: parts.append("deleted \(deleted)")
        }
        if case .publish = action {} else {
            parts.append("already gone \(alreadyGone)")
            parts.append("failed \(failed)")
            parts.append("unknown \(unknown)")
        }
        if case .release = action { parts.append("kept \(kept)") }
        var s = parts.joined(separator: " · ")
        let checked = unknown - unresolved
        if checked > 0 {
            s += "\n\(Self.keys(checked)): the write was sent but its reply never arrived; checked after reconnecting, they no longer exist (\(verbPast) by this run, or expired meanwhile)"
        }
        if unresolved > 0 {
            s += "\n\(Self.keys(unresolved)): the write was sent but its reply never arrived, and the server could not be asked again: their outcome is unknown"
        }
        if notAttempted > 0 {
            s += "\n\(Self.keys(notAttempted)) not attempted\(cancelled ? " (cancelled\(signal.map { " by \($0)" } ?? ""))" : "")"
        }
        if case .publish = action, unknown > 0 {
            s += "\nthe reply to PUBLISH never arrived: whether it was published is unknown"
        }
        return s
    }
}

/// Refused before anything was sent (read-only mode, a plan too large).
public struct WriteRefused: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// How hard a write may push the server: the latency the application may see added (p99).
public struct Pacing: Sendable, Equatable {
    public var latencyBudgetMs: Double = 2
    /// Batches in flight per node at most (several keep a far server busy within the budget).
    public var maxInFlight = 32
    /// Keys per batch at most; `fixedBatch` sets it exactly (tests that need a known cadence).
    public var maxBatch = 4096
    public var fixedBatch: Int?
    public init(latencyBudgetMs: Double = 2) { self.latencyBudgetMs = latencyBudgetMs }
}

public struct WriteProgress: Sendable, Equatable {
    public var done: Int
    public var total: Int
    public var deleted: Int
    public var elapsed: Double
    public var batch: Int
    public init(done: Int, total: Int, deleted: Int, elapsed: Double, batch: Int = 0) {
        self.done = done; self.total = total; self.deleted = deleted; self.elapsed = elapsed; self.batch = batch
    }
    /// Time left at the rate so far — only once the rate means something: pacing starts with
    /// small batches and grows them, so the first fraction of a second would promise hours.
    public var eta: Double? {
        guard done > 0, done < total, elapsed >= 1, done * 50 >= total || elapsed >= 5 else { return nil }
        return elapsed / Double(done) * Double(total - done)
    }
    public var rate: Double { elapsed > 0 ? Double(done) / elapsed : 0 }
}

/// Who writes, where: goes into every audit record.
public struct WriteContext: Sendable {
    public var server: String
    public var aclUser: String?
    public var readOnly: Bool
    public var audit: AuditLog?
    public init(server: String, aclUser: String?, readOnly: Bool, audit: AuditLog?) {
        self.server = server; self.aclUser = aclUser; self.readOnly = readOnly; self.audit = audit
    }
}

/// One write flow for the CLI and the console alike: plan (the dry run) → the caller
/// confirms → execute → report → audit record (dry runs recorded too).
public final class WriteSession {
    public let nodes: NodeSet
    public let schema: KeySchema
    public let context: WriteContext
    public var pacing = Pacing()
    /// A plan larger than this is refused (write in narrower patterns).
    public var maxKeys = 5_000_000
    /// How long a node may stay unreachable before the run stops (failover takes tens of seconds).
    public var reconnectDeadline: Double = 45
    public var onNotice: (String) -> Void = { _ in }

    public init(nodes: NodeSet, schema: KeySchema, context: WriteContext) {
        self.nodes = nodes; self.schema = schema; self.context = context
    }

    // MARK: plan

    /// Is the glob explicitly about a protected namespace (then its keys are not skipped)?
    func namesProtected(_ glob: String) -> Bool {
        schema.protectedPatterns.contains { p in
            let ns = p.split(separator: "*", maxSplits: 1).first.map(String.init) ?? p
            return !ns.isEmpty && glob.hasPrefix(ns)
        }
    }

    /// The dry run: SCAN for the glob (every shard, slots that moved read again), EXISTS for
    /// named keys. Changes nothing.
    public func plan(_ req: WriteRequest, progress: ((Int) -> Void)? = nil, cancelled: @escaping () -> Bool = { false }) throws -> WritePlan {
        var plan = WritePlan(request: req, keys: [])
        switch req.action {
        case .publish, .kill, .config: return plan
        case .invalidate, .delete, .reset, .release, .expire, .persist: break
        }
        // The scan drops its own duplicates; named keys are checked against the glob's.
        var fromGlob = Set<Int>()
        if let g = req.glob {
            let explicit = namesProtected(g)
            var withoutTTL = false
            if case .expire(_, let nx) = req.action { withoutTTL = nx }
            let scan = KeyspaceScan(nodes: nodes, match: schema.fullGlob(g), reader: TTLFilterReader(onlyWithoutTTL: withoutTTL))
            scan.cancelled = cancelled
            scan.onNotice = { plan.notes.append($0) }
            try scan.run { page in
                for k in page {
                    if !explicit && schema.isProtected(k) { plan.protectedSkipped += 1; continue }
                    plan.keys.append(k)
                    if !req.keys.isEmpty { fromGlob.insert(keyFingerprint(k)) }
                }
                if plan.keys.count > maxKeys {
                    throw WriteRefused("more than \(maxKeys) keys match \(g); write in narrower patterns")
                }
                progress?(plan.keys.count)
                return true
            }
            if scan.stats.slotsReread > 0 { plan.notes.append("\(scan.stats.slotsReread) slot(s) moved during the dry run and were read again") }
        }
        if !req.keys.isEmpty {
            for (conn, ks) in try nodes.groupConnections(req.keys) {
                let r = try conn.pipeline(ks.map { [Bytes(utf8: "EXISTS"), $0] })
                for (k, v) in zip(ks, r) {
                    var exists = v.int == 1
                    if let e = v.errorReply {
                        guard Redirect(e) != nil else { throw RedisError.server(e) }
                        exists = try nodes.call([Bytes(utf8: "EXISTS"), k], key: k).int == 1
                    }
                    if exists && !fromGlob.contains(keyFingerprint(k)) { fromGlob.insert(keyFingerprint(k)); plan.keys.append(k) }
                }
            }
        }
        return plan
    }

    /// Records a dry run in the audit log (in read-only mode too: it writes nothing to
    /// Redis). A record that cannot be written is in `auditError`.
    @discardableResult
    public func recordDryRun(_ plan: WritePlan) -> WriteReport {
        var r = WriteReport(action: plan.request.action, matched: plan.keys.count)
        r.dryRun = true
        r.sample = plan.sample
        r.notes = plan.notes
        if let log = context.audit {
            do {
                let keysFile = plan.keys.count > AuditLog.inlineKeys ? try log.writeKeysFile(plan.keys, kind: plan.request.action.kind) : nil
                try log.append(log.doneRecord(id: AuditLog.newID(), action: plan.request.action, server: context.server, aclUser: context.aclUser,
                                              request: plan.request, keys: plan.keys, keysFile: keysFile, report: r),
                               publishOn: context.readOnly ? nil : try? nodes.seed())
            } catch {
                r.auditError = "\(error)"
                onNotice("the dry run could not be recorded: \(error)")
            }
        }
        return r
    }

    // MARK: execute

    /// Carries out exactly the plan's keys and records the outcome. The intent record is
    /// written (and flushed) first: when it cannot be, nothing is written to Redis and
    /// `AuditUnavailable` is thrown. Otherwise it does not throw: what went wrong is in the
    /// report (`error`), with every key accounted for, and a `done` record that could not be
    /// written is in `auditError`.
    public func execute(_ plan: WritePlan, cancelled: @escaping () -> Bool = { false },
                        progress: ((WriteProgress) -> Void)? = nil, signal: @escaping () -> String? = { nil }) throws -> WriteReport {
        let action = plan.request.action
        var r = WriteReport(action: action, matched: plan.keys.count)
        r.sample = plan.sample
        r.notes = plan.notes
        if case .publish(let ch, _) = action { r.matched = 0; r.sample = [ch] }
        if context.readOnly {
            // Refused before anything is sent; the refusal is on record like the rest.
            r.error = "read-only mode: \(action.kind.rawValue) refused, nothing was changed"
            if let log = context.audit {
                do {
                    try log.append(log.doneRecord(id: AuditLog.newID(), action: action, server: context.server, aclUser: context.aclUser,
                                                  request: plan.request, keys: Array(plan.keys.prefix(AuditLog.inlineKeys)), keysFile: nil, report: r))
                } catch { r.auditError = "\(error)" }
            }
            return r
        }
        // Write-ahead: the intent, with the exact keys, is on disk before anything is sent.
        let id = AuditLog.newID()
        var keysFile: String? = nil
        if let log = context.audit {
            if plan.keys.count > AuditLog.inlineKeys { keysFile = try log.writeKeysFile(plan.keys, kind: action.kind) }
            try log.append(log.intentRecord(id: id, action: action, server: context.server, aclUser: context.aclUser,
                                            request: plan.request, keys: plan.keys, keysFile: keysFile),
                           publishOn: try? nodes.seed())
        }
        let start = monotonicNow()
        switch action {
        case .invalidate, .delete, .reset, .expire, .persist:
            Executor(session: self, plan: plan, command: action.keyCommand!, cancelled: cancelled, progress: progress, start: start).run(&r)
        case .release(let expectations):
            release(plan, expectations, &r)
        case .publish(let channel, let payload):
            publish(channel, payload, &r)
        case .kill(let client):
            kill(client, &r)
        case .config(let parameter, let value, _):
            configSet(parameter, value, &r)
        }
        if r.cancelled { r.signal = signal() }
        r.elapsed = monotonicNow() - start
        if let log = context.audit {
            do {
                try log.append(log.doneRecord(id: id, action: action, server: context.server, aclUser: context.aclUser,
                                              request: plan.request, keys: plan.keys, keysFile: keysFile, report: r),
                               publishOn: try? nodes.seed())
            } catch {
                r.auditError = "\(error)"
                onNotice("the outcome could not be recorded: \(error)")
            }
        }
        return r
    }

    // MARK: release

    /// Deletes a lock only if it is still the one shown: same value, PTTL not above what it
    /// would have left by now. One EVAL per lock; where scripting is refused, WATCH / MULTI / EXEC.
    static let releaseScript = """
    local v = redis.call('GET', KEYS[1])
    if v == false then return 0 end
    if v ~= ARGV[1] then return -1 end
    local t = redis.call('PTTL', KEYS[1])
    local shown = tonumber(ARGV[2])
    if shown < 0 then
      if t >= 0 then return -2 end
    elseif t < 0 or t > shown then
      return -2
    end
    return redis.call('DEL', KEYS[1])
    """

    private func release(_ plan: WritePlan, _ expectations: [Bytes: LockExpectation], _ r: inout WriteReport) {
        for k in plan.keys {
            let exp = expectations[k] ?? LockExpectation(value: nil, pttl: -1, readAt: wallClockNow())
            do {
                let conn = try nodes.node(forKey: k)
                let outcome = try releaseOne(k, exp, conn)
                switch outcome {
                case 1: r.deleted += 1
                case 0: r.alreadyGone += 1
                default:
                    r.kept += 1
                    r.notes.append("\(k.lossyString) was re-acquired since it was shown (\(outcome == -1 ? "its value changed" : "its TTL went up")): kept")
                }
            } catch let e as RedisError {
                if case .server = e { r.failed += 1 } else {
                    // Sent, perhaps carried out: whether the lock went is unknown (a lock the
                    // application re-acquires at once makes EXISTS meaningless here).
                    r.unknown += 1; r.unresolved += 1
                }
                r.error = e.description
                break
            } catch {
                r.failed += 1; r.error = "\(error)"
                break
            }
        }
    }

    private func releaseOne(_ k: Bytes, _ exp: LockExpectation, _ conn: RedisConnection) throws -> Int64 {
        let value = exp.value ?? []
        let ceiling = exp.ceiling(now: wallClockNow())
        let reply = try conn.pipeline([[Bytes(utf8: "EVAL"), Bytes(utf8: Self.releaseScript), Bytes(utf8: "1"), k, value, Bytes(utf8: String(ceiling))]])[0]
        if case .integer(let n) = reply { return n }
        guard let e = reply.errorReply else { throw RedisError.protocolViolation("unexpected reply to the release script") }
        guard e.isNotAllowed || e.message.contains("NOSCRIPT") || e.message.lowercased().contains("script") else { throw RedisError.server(e) }
        // Scripting refused: an optimistic transaction does the same check.
        let b = { (s: String) in Bytes(utf8: s) }
        let pre = try conn.pipeline([[b("WATCH"), k], [b("GET"), k], [b("PTTL"), k]])
        if let e2 = pre.compactMap(\.errorReply).first { _ = try? conn.pipeline([[b("UNWATCH")]]); throw RedisError.server(e2) }
        guard let v = pre[1].bytes, !pre[1].isNull else { _ = try conn.pipeline([[b("UNWATCH")]]); return 0 }
        if v != value { _ = try conn.pipeline([[b("UNWATCH")]]); return -1 }
        let t = pre[2].int ?? -2
        if (ceiling < 0 && t >= 0) || (ceiling >= 0 && (t < 0 || t > ceiling)) { _ = try conn.pipeline([[b("UNWATCH")]]); return -2 }
        let tx = try conn.pipeline([[b("MULTI")], [b("DEL"), k], [b("EXEC")]])
        if let e3 = tx.compactMap(\.errorReply).first { throw RedisError.server(e3) }
        guard let results = tx[2].array, let first = results.first else { return -1 }  // EXEC nil: it changed meanwhile
        return first.int ?? 0
    }

    // MARK: publish, kill, config

    /// One command whose outcome is a single fact; a reply that never came leaves it unknown.
    private func single(_ args: [Bytes], on conn: () throws -> RedisConnection, _ r: inout WriteReport,
                        _ apply: (RESPValue, inout WriteReport) -> Void) {
        let c: RedisConnection
        do { c = try conn() } catch { r.failed = 1; r.error = "\(error) — nothing was sent"; return }
        do {
            apply(try c.call(args), &r)
        } catch let e as RedisError {
            if case .server = e { r.failed = 1; r.error = e.description; return }
            r.unknown = 1; r.unresolved = 1
            r.error = "\(e.description) — the command was sent but its reply never arrived: its outcome is unknown"
        } catch { r.failed = 1; r.error = "\(error)" }
    }

    private func publish(_ channel: Bytes, _ payload: Bytes, _ r: inout WriteReport) {
        single([Bytes(utf8: "PUBLISH"), channel, payload], on: { try nodes.seed() }, &r) { reply, r in r.receivers = Int(reply.int ?? 0) }
        r.failed = 0   // publish counts receivers, not keys
    }

    private func kill(_ c: ClientRef, _ r: inout WriteReport) {
        r.matched = 1
        let conn: () throws -> RedisConnection = {
            if let n = c.node, let ep = self.nodes.knownEndpoint(n) { return try self.nodes.connection(to: ep) }
            return try self.nodes.seed()
        }
        single([Bytes(utf8: "CLIENT"), Bytes(utf8: "KILL"), Bytes(utf8: "ID"), Bytes(utf8: String(c.id))], on: conn, &r) { reply, r in
            if (reply.int ?? 0) > 0 { r.deleted = 1 } else { r.alreadyGone = 1 }
        }
    }

    private func configSet(_ parameter: String, _ value: String, _ r: inout WriteReport) {
        r.matched = 1
        // In a cluster every node has its own configuration: set it on each primary and replica.
        let targets: [Endpoint?] = nodes.isCluster ? (nodes.topology?.shards.flatMap { [$0.primary] + $0.replicas } ?? []).map { Optional($0) } : [nil]
        var done = 0
        for ep in targets {
            var one = WriteReport(action: r.action, matched: 1)
            single([Bytes(utf8: "CONFIG"), Bytes(utf8: "SET"), Bytes(utf8: parameter), Bytes(utf8: value)],
                   on: { try ep.map { try self.nodes.connection(to: $0) } ?? self.nodes.seed() }, &one) { _, _ in done += 1 }
            if let e = one.error { r.error = ep.map { "\($0): \(e)" } ?? e; r.unknown = one.unknown; r.failed = one.failed; break }
        }
        if r.error == nil { r.updated = 1 }
    }
}

/// Reads PTTL of each key when only keys without a TTL are wanted (expire of the leak).
final class TTLFilterReader: PageReader {
    let onlyWithoutTTL: Bool
    init(onlyWithoutTTL: Bool) { self.onlyWithoutTTL = onlyWithoutTTL }
    func request(_ keys: [Bytes]) -> (commands: [[Bytes]], token: Void) {
        (onlyWithoutTTL ? keys.map { [Bytes(utf8: "PTTL"), $0] } : [], ())
    }
    func rows(_ keys: [Bytes], _ token: Void, _ replies: ArraySlice<RESPValue>) -> [Bytes] {
        guard onlyWithoutTTL else { return keys }
        return zip(keys, replies).compactMap { $1.int == -1 ? $0 : nil }
    }
}

/// Runs the batched writes (UNLINK / DEL / EXPIRE / PERSIST) of one plan: per node, several
/// batches in flight on one connection, each sized and spaced by the node's `Pacer` so the
/// rate is bounded by the latency budget on the server's side, not by the round trip. Every
/// key is accounted for: a reply that never came is resolved (reconnect, CLIENT KILL ID on
/// the old connection, then EXISTS or PTTL) before the report, even when cancelled.
private final class Executor {
    let session: WriteSession
    let plan: WritePlan
    let command: KeyCommand
    let cancelled: () -> Bool
    let progress: ((WriteProgress) -> Void)?
    let start: Double
    var nodes: NodeSet { session.nodes }

    init(session: WriteSession, plan: WritePlan, command: KeyCommand, cancelled: @escaping () -> Bool,
         progress: ((WriteProgress) -> Void)?, start: Double) {
        self.session = session; self.plan = plan; self.command = command; self.cancelled = cancelled
        self.progress = progress; self.start = start
    }

    /// One request in flight: the keys of each of its commands.
    struct Batch { var items: [[Bytes]] }

    /// The keys waiting for one primary, and its connection.
    final class NodeLane {
        let ep: Endpoint
        var queue = Deque<Bytes>()
        var lane: Lane<Batch>?
        /// The server this lane writes to (INFO run_id): a failover behind the same address
        /// changes it, and CLIENT KILL must never reach someone else's connection id.
        var runID: String?
        /// Keys this server answered for: after a failover they are checked on the new
        /// primary, which may not have received those writes.
        var answered: [Bytes] = []
        /// Since when the node keeps saying "not now" (TRYAGAIN, CLUSTERDOWN, LOADING, BUSY).
        var retryingSince: Double?
        var pausedUntil = 0.0
        var backoff = Backoff(base: 0.05, cap: 2)
        var lastBatch = 0
        init(_ ep: Endpoint) { self.ep = ep }
    }

    /// Sent, but the reply never read: resolved after reconnecting.
    struct Lost { var ep: Endpoint; var clientID: Int64?; var runID: String?; var keys: [Bytes] }

    var lanes: [Endpoint: NodeLane] = [:]
    var order: [Endpoint] = []
    var lost: [Lost] = []
    /// MOVED replies per key (at most `maxRedirects`, with a growing pause between rounds).
    var redirects: [Int: Int] = [:]
    var movedBackoff = Backoff(base: 0.02, cap: 1)
    let maxRedirects = 5
    /// Set when the run must send nothing more (cancelled, or a refusal that retrying cannot fix).
    var stopping: String?
    /// Why the run stopped short (a refusal retrying cannot fix), and the first error a key got.
    var fatalReason: String?
    var replyError: String?
    var cancelledAt: Double?
    var lastReport = 0.0
    var lastRefresh = 0.0

    var multiKey: Bool { command.multiKey }
    var budget: Double { session.pacing.latencyBudgetMs / 1000 }

    /// The run id of the server behind a connection (nil if INFO is not permitted).
    static func runID(_ reply: RESPValue?) -> String? {
        guard let text = reply?.string else { return nil }
        return ServerInfo(text: text)["run_id"]
    }

    func connection(_ ep: Endpoint) throws -> RedisConnection { try nodes.isCluster ? nodes.connection(to: ep) : nodes.seed() }

    func run(_ r: inout WriteReport) {
        for (ep, ks) in nodes.group(plan.keys) {
            let nl = NodeLane(ep)
            nl.queue = Deque(ks)
            lanes[ep] = nl
            order.append(ep)
        }
        learnRunIDs()
        while true {
            if stopping == nil && cancelled() { r.cancelled = true; stopping = "cancelled"; cancelledAt = monotonicNow() }
            let inFlight = lanes.values.contains { !($0.lane?.isIdle ?? true) }
            let queued = lanes.values.contains { !$0.queue.isEmpty }
            if !inFlight && (!queued || stopping != nil) && lost.isEmpty { break }
            let now = monotonicNow()
            var wake = now + 0.05
            var unreachable: String?
            if stopping == nil {
                for ep in order {
                    guard let nl = lanes[ep], !nl.queue.isEmpty else { continue }
                    if now < nl.pausedUntil { wake = min(wake, nl.pausedUntil); continue }
                    do { wake = min(wake, try send(nl, now)) } catch {
                        unreachable = "\(error)"
                        dropLane(nl, &r)
                    }
                }
            }
            let active = lanes.values.compactMap { $0.lane?.isIdle == false ? $0.lane : nil }
            if !active.isEmpty { Lane.wait(active, until: wake) } else if unreachable == nil && lost.isEmpty { usleep(UInt32(max(0, wake - monotonicNow()) * 1_000_000)) }
            for ep in order {
                guard let nl = lanes[ep], let lane = nl.lane else { continue }
                do {
                    for (batch, replies) in try lane.completed() { apply(batch, replies, nl, &r) }
                    // A reply overdue (the io timeout), or a cancelled run past its grace: the
                    // outcome of what is in flight is found out after reconnecting.
                    if let t = lane.oldestSentAt {
                        let overdue = monotonicNow() - t > nodes.config.timeouts.io
                        let graceOver = cancelledAt.map { monotonicNow() - $0 > min(2, nodes.config.timeouts.io) } ?? false
                        if overdue || graceOver {
                            r.error = overdue ? "no reply from \(ep) within \(formatSecondsShort(nodes.config.timeouts.io))" : r.error
                            dropLane(nl, &r)
                        }
                    }
                } catch {
                    r.error = "\(error)"
                    dropLane(nl, &r)
                }
            }
            if !lost.isEmpty || unreachable != nil {
                if let u = unreachable, r.error == nil { r.error = u }
                if !resolve(&r) { break }
                r.error = nil
            }
            report(r)
        }
        if let f = fatalReason { r.error = f } else if r.error == nil { r.error = replyError }
        for l in lost { r.unknown += l.keys.count; r.unresolved += l.keys.count }
        lost = []
        for nl in lanes.values { nl.lane?.conn.close() }
        report(r, force: true)
    }

    func stop(_ why: String) {
        if fatalReason == nil { fatalReason = why }
        if stopping == nil { stopping = why }
    }

    /// Whether the command removes keys (counted as deleted) or changes their TTL (updated).
    var removes: Bool {
        switch command { case .unlink, .del: return true; case .expire, .persist: return false }
    }

    /// Learns which server each lane writes to (INFO server, asked of every node at once).
    func learnRunIDs() {
        var asked: [(NodeLane, RedisConnection)] = []
        for ep in order {
            guard let nl = lanes[ep], let c = try? connection(ep), (try? c.send([[Bytes(utf8: "INFO"), Bytes(utf8: "server")]])) != nil else { continue }
            asked.append((nl, c))
        }
        for (nl, c) in asked { nl.runID = Self.runID(try? c.receive(1).first) }
    }

    /// Sends as many batches as the pacer allows now; returns when to look again.
    func send(_ nl: NodeLane, _ now: Double) throws -> Double {
        if nl.lane == nil {
            // A connection of the lane's own: askEach and resolve use the pooled ones meanwhile.
            nl.lane = Lane(try nodes.dedicatedConnection(to: nl.ep), pacer: nodes.pacer(for: nl.ep, budget: budget))
            nl.lane?.maxInFlight = max(1, session.pacing.maxInFlight)
        }
        let lane = nl.lane!
        while lane.hasRoom, !nl.queue.isEmpty {
            let n = min(nl.queue.count, session.pacing.fixedBatch ?? lane.pacer.units(.write, limits: 1...max(1, session.pacing.maxBatch)))
            let cost = lane.pacer.estimate(.write, units: n)
            let d = lane.pacer.delay(.write, cost: cost, now: now)
            if d > 0 { return now + d }
            let keys = Array(nl.queue.prefix(n))
            nl.queue.removeFirst(n)
            nl.lastBatch = n
            let items: [[Bytes]] = multiKey ? groupedBySlot(keys) : keys.map { [$0] }
            do {
                try lane.send(items.map { command.command($0) }, tag: Batch(items: items), kind: .write, units: n)
            } catch {
                // Perhaps partly written: everything in flight (this batch included) is unknown.
                lost.append(Lost(ep: nl.ep, clientID: lane.conn.clientID, runID: nl.runID, keys: keys))
                throw error
            }
        }
        return now + 0.05
    }

    /// Multi-key commands must stay within one slot in cluster mode.
    func groupedBySlot(_ keys: [Bytes]) -> [[Bytes]] {
        guard nodes.isCluster else { return [keys] }
        var groups: [[Bytes]] = []
        var idx: [Int: Int] = [:]
        for k in keys {
            let s = hashSlot(k)
            if let i = idx[s] { groups[i].append(k) } else { idx[s] = groups.count; groups.append([k]) }
        }
        return groups
    }

    /// The lane's connection is gone (or must go): what it had in flight is lost until resolved.
    func dropLane(_ nl: NodeLane, _ r: inout WriteReport) {
        guard let lane = nl.lane else { return }
        let keys = lane.abandon().flatMap { $0.items.flatMap { $0 } }
        if !keys.isEmpty { lost.append(Lost(ep: nl.ep, clientID: lane.conn.clientID, runID: nl.runID, keys: keys)) }
        lane.conn.close()
        nl.lane = nil
    }

    func count(_ done: Int, of n: Int, _ r: inout WriteReport) {
        if removes { r.deleted += done } else { r.updated += done }
        r.alreadyGone += n - done
    }

    func apply(_ batch: Batch, _ replies: [RESPValue], _ nl: NodeLane, _ r: inout WriteReport) {
        var again: [Bytes] = []
        for (keys, reply) in zip(batch.items, replies) {
            let n = keys.count
            if case .integer(let v) = reply {
                count(Int(max(0, min(Int64(n), v))), of: n, &r)
                nl.answered.append(contentsOf: keys)
                nl.retryingSince = nil
                nl.backoff.reset()
                continue
            }
            guard let e = reply.errorReply else { r.failed += n; continue }
            switch e.disposition {
            case .redirect where e.kind == .ask:
                askEach(keys, &r)   // the slot is migrating: each key wherever it is now (ASKING)
            case .redirect:
                // MOVED: not carried out; to the owner now, a few times at most, with a pause.
                for k in keys {
                    let fp = keyFingerprint(k)
                    let c = (redirects[fp] ?? 0) + 1
                    redirects[fp] = c
                    if c > maxRedirects { r.failed += 1; stop("\(e.message): redirected more than \(maxRedirects) times — the slot map keeps changing; re-run later") }
                    else { again.append(k) }
                }
                if monotonicNow() - lastRefresh > 0.1 { try? nodes.refresh(); lastRefresh = monotonicNow() }
                let pause = movedBackoff.nextDelay()
                for l in lanes.values { l.pausedUntil = max(l.pausedUntil, monotonicNow() + pause) }
            case .retry where e.kind == .tryAgain && n > 1:
                // Some keys are already on the other side of a migration: one key at a time.
                askEach(keys, &r)
            case .retry:
                // Not carried out ("not now"): again after a pause, within a deadline.
                let since = nl.retryingSince ?? monotonicNow()
                nl.retryingSince = since
                if monotonicNow() - since > session.reconnectDeadline {
                    r.failed += n
                    stop("\(e.message) — the node did not accept writes for \(Int(session.reconnectDeadline)) s; nothing more was sent")
                } else {
                    nl.queue.prepend(contentsOf: keys)
                    nl.pausedUntil = monotonicNow() + nl.backoff.nextDelay()
                    if e.kind == .clusterDown && monotonicNow() - lastRefresh > 0.5 { try? nodes.refresh(); lastRefresh = monotonicNow() }
                }
            case .failover:
                r.failed += n
                stop("READONLY: \(e.message) — the server is a replica now (a failover?); nothing more was sent: re-run against the new primary")
            case .fatal:
                r.failed += n
                if e.kind == .noPerm || e.kind == .unknownCommand { stop(e.message) } else if replyError == nil { replyError = e.message }
            }
        }
        if !again.isEmpty { regroup(again, front: true) }
    }

    /// ASK (or TRYAGAIN on a batch): each key on its own, following the redirection. A reply
    /// lost here is resolved like any other.
    func askEach(_ keys: [Bytes], _ r: inout WriteReport) {
        for k in keys {
            do {
                let reply = try nodes.call(command.command([k]), key: k)
                if let v = reply.int, reply.errorReply == nil { count(Int(min(1, max(0, v))), of: 1, &r) }
                else { r.failed += 1; if replyError == nil { replyError = reply.errorReply?.message } }
            } catch let e as RedisError where e.disposition == .failover {
                lost.append(Lost(ep: nodes.endpoint(forKey: k), clientID: nil, runID: nil, keys: [k]))
                r.error = e.description
            } catch {
                r.failed += 1; if replyError == nil { replyError = "\(error)" }
            }
        }
    }

    func regroup(_ keys: [Bytes], front: Bool) {
        for (ep, ks) in nodes.group(keys) {
            if lanes[ep] == nil { lanes[ep] = NodeLane(ep); order.append(ep) }
            if front { lanes[ep]!.queue.prepend(contentsOf: ks) } else { lanes[ep]!.queue.append(contentsOf: ks) }
        }
    }

    func report(_ r: WriteReport, force: Bool = false) {
        let t = monotonicNow()
        guard force || t - lastReport > 0.05 else { return }
        lastReport = t
        let done = r.deleted + r.updated + r.alreadyGone + r.failed + r.unknown + r.kept
        progress?(WriteProgress(done: done, total: r.matched, deleted: r.deleted + r.updated, elapsed: t - start,
                                batch: lanes.values.map(\.lastBatch).max() ?? 0))
    }

    // MARK: resolving lost replies

    /// The keys for which the write did not happen (or was undone by a failover), among `keys`.
    func notWritten(_ keys: [Bytes]) throws -> [Bytes] {
        var out: [Bytes] = []
        let probe: (Bytes) -> [Bytes]
        let missing: (RESPValue) -> Bool
        switch command {
        case .unlink, .del:
            probe = { [Bytes(utf8: "EXISTS"), $0] }; missing = { $0.int == 1 }
        case .expire:
            probe = { [Bytes(utf8: "PTTL"), $0] }; missing = { $0.int == -1 }
        case .persist:
            probe = { [Bytes(utf8: "PTTL"), $0] }; missing = { ($0.int ?? -1) >= 0 }
        }
        for (conn, ks) in try nodes.groupConnections(keys) {
            var i = 0
            while i < ks.count {
                let chunk = ks[i..<min(ks.count, i + 10_000)]
                for (k, v) in zip(chunk, try conn.pipeline(chunk.map(probe))) {
                    if let e = v.errorReply, Redirect(e) == nil { throw RedisError.server(e) }
                    if v.errorReply != nil || missing(v) { out.append(k) }   // a redirect: not known written, so not counted
                }
                i += 10_000
            }
        }
        return out
    }

    /// After a dropped connection, a timeout or an unreachable node: reconnect (the slot map
    /// read again in cluster mode), make sure the old connection will run nothing more
    /// (CLIENT KILL ID, on the same server only), re-check what a failed-over node had
    /// acknowledged, then check each key whose reply was lost. Keys not written go back in
    /// the queue (their state is known: not a blind retry) — or, when the run is stopping,
    /// stay not attempted; keys written stay `unknown`. False when the server did not come
    /// back in time (the lost keys' outcome is then unknown, unchecked).
    func resolve(_ r: inout WriteReport) -> Bool {
        let window = stopping != nil ? min(10, session.reconnectDeadline) : session.reconnectDeadline
        let deadline = monotonicNow() + window
        var backoff = Backoff(base: 0.2, cap: 2)
        let lostKeys = lost.reduce(0) { $0 + $1.keys.count }
        session.onNotice(lostKeys > 0 ? "connection lost during the write (\(r.error ?? "?")); reconnecting to find out what happened to \(lostKeys) key(s)"
                                      : "a node is unreachable (\(r.error ?? "?")); waiting for it (or for a failover)")
        while true {
            do {
                if nodes.isCluster { try nodes.refresh() } else { _ = try nodes.seed() }
                // Make sure what was sent on the lost connections is not carried out later.
                for l in lost {
                    guard let id = l.clientID, let was = l.runID, let c = try? connection(l.ep),
                          let now = Self.runID(try? c.pipeline([[Bytes(utf8: "INFO"), Bytes(utf8: "server")]]).first), now == was else { continue }
                    _ = try? c.pipeline([[Bytes(utf8: "CLIENT"), Bytes(utf8: "KILL"), Bytes(utf8: "ID"), Bytes(utf8: String(id))]])
                }
                try recheckFailedOver(&r)
                var requeue: [Bytes] = []
                var gone = 0
                for l in lost {
                    let missing = try notWritten(l.keys)
                    gone += l.keys.count - missing.count
                    requeue += missing
                }
                r.unknown += gone
                if gone > 0 {
                    r.notes.append("\(gone) key(s) whose reply was lost were checked after reconnecting: \(removes ? "no longer there" : "changed") (counted as unknown: written by this run, or changed meanwhile)")
                }
                lost.removeAll()
                if stopping == nil { regroup(requeue, front: true) }
                // Lanes of nodes that are no longer primaries move to whoever serves their keys now.
                if nodes.isCluster {
                    let primaries = Set(nodes.topology?.primaries ?? [])
                    var moved: [Bytes] = []
                    for ep in order where !primaries.contains(ep) {
                        moved += lanes[ep]?.queue ?? []
                        lanes[ep]?.lane?.conn.close()
                        lanes[ep] = nil
                    }
                    order.removeAll { lanes[$0] == nil }
                    regroup(moved, front: false)
                }
                // Every node with work left must answer before the run goes on.
                if stopping == nil {
                    for ep in order where !(lanes[ep]?.queue.isEmpty ?? true) { _ = try connection(ep) }
                }
                session.onNotice("reconnected: \(gone) key(s) whose reply was lost are written (outcome unknown), \(requeue.count) were not\(stopping == nil ? " (sent again)" : " (left: the run is stopping)")")
                return true
            } catch {
                if monotonicNow() > deadline {
                    let n = lost.reduce(0) { $0 + $1.keys.count }
                    r.error = "\(r.error ?? "connection lost"); the server did not come back within \(Int(window)) s — the outcome of \(n) key(s) is unknown"
                    return false
                }
                usleep(UInt32(backoff.nextDelay() * 1_000_000))
            }
        }
    }

    /// Another server behind a lane's address (a failover, a restart), or a node that is no
    /// longer a primary: what the old server said it wrote may not have reached the new one.
    /// Those keys are checked where they live now, taken off the counts, and written again.
    func recheckFailedOver(_ r: inout WriteReport) throws {
        let primaries = nodes.isCluster ? Set(nodes.topology?.primaries ?? []) : []
        for ep in order {
            guard let nl = lanes[ep], !nl.answered.isEmpty else { continue }
            var changed = nodes.isCluster && !primaries.contains(ep)
            var now: String? = nil
            if !changed, let was = nl.runID, let c = try? connection(ep) {
                now = Self.runID(try c.pipeline([[Bytes(utf8: "INFO"), Bytes(utf8: "server")]]).first)
                changed = now != nil && now != was
            }
            guard changed else { continue }
            let back = try notWritten(nl.answered)
            nl.answered = []
            if let now { nl.runID = now }
            guard !back.isEmpty else { continue }
            let fromCounted = min(back.count, removes ? r.deleted : r.updated)
            if removes { r.deleted -= fromCounted } else { r.updated -= fromCounted }
            r.alreadyGone -= back.count - fromCounted
            if stopping == nil { regroup(back, front: true) }
            let note = "failover: \(back.count) key(s) the old primary had \(removes ? "deleted" : "updated") were not so on the new one (its writes had not reached it): \(stopping == nil ? "written again" : "left as not attempted")"
            r.notes.append(note)
            session.onNotice(note)
        }
    }
}

func formatSecondsShort(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s) }
