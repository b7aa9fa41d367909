import Foundation
import DequeModule
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// Every kind of write the tool makes; the audit log names it.
public enum WriteAction: String, Sendable, Equatable, CaseIterable {
    case invalidate, delete, reset, release, expire, persist, publish

    var verb: String {
        switch self {
        case .invalidate, .delete: return "UNLINK"
        case .reset: return "DEL"
        case .release: return "compare-and-delete"
        case .expire: return "EXPIRE"
        case .persist: return "PERSIST"
        case .publish: return "PUBLISH"
        }
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
    /// expire: the TTL to give, in seconds.
    public var ttl: Int64?
    /// expire: only keys that have no TTL (the leak the Keys view flags); EXPIRE … NX.
    public var onlyWithoutTTL = false
    /// release: what each lock looked like when shown.
    public var expectations: [Bytes: LockExpectation] = [:]
    /// publish
    public var channel: Bytes?
    public var payload: Bytes?

    public init(action: WriteAction, keys: [Bytes] = [], glob: String? = nil) {
        self.action = action; self.keys = keys; self.glob = glob
    }

    public static func publish(channel: Bytes, payload: Bytes) -> WriteRequest {
        var r = WriteRequest(action: .publish)
        r.channel = channel; r.payload = payload
        return r
    }

    public var summary: String {
        var parts: [String] = []
        if let g = glob { parts.append("pattern \(g)") }
        if !keys.isEmpty { parts.append("\(keys.count) key\(keys.count == 1 ? "" : "s")") }
        if let c = channel { parts.append("channel \(c.lossyString)") }
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
public struct WriteReport: Sendable, Equatable {
    public var action: WriteAction
    public var matched: Int
    /// Keys removed (invalidate, delete, reset, release).
    public var deleted = 0
    /// Keys whose TTL was set (expire, persist).
    public var updated = 0
    public var alreadyGone = 0
    public var failed = 0
    /// Keys whose write was sent but whose reply was never read, and that no longer exist:
    /// deleted by this run, or expired meanwhile. Keys found still there are not counted.
    public var unknown = 0
    /// release: locks kept because they were re-acquired (or changed) since shown.
    public var kept = 0
    public var cancelled = false
    public var dryRun = false
    public var error: String?
    public var sample: [Bytes] = []
    /// publish: the number of subscribers that received it.
    public var receivers: Int?
    public var notes: [String] = []
    public var elapsed: Double = 0

    public init(action: WriteAction, matched: Int) { self.action = action; self.matched = matched }

    /// Keys not attempted (the run stopped or was cancelled first).
    public var notAttempted: Int { max(0, matched - (deleted + updated + alreadyGone + failed + unknown + kept)) }
    public var completed: Bool { error == nil && !cancelled && notAttempted == 0 }

    /// The `--json` report (ARCHITECTURE.md, "Contracts": matched, deleted, already_gone, failed, unknown, cancelled, dry_run, sample).
    public var json: JSON {
        var f: [(String, JSON)] = [("matched", .int(Int64(matched)))]
        if action == .expire || action == .persist { f.append(("updated", .int(Int64(updated)))) }
        f += [("deleted", .int(Int64(deleted))), ("already_gone", .int(Int64(alreadyGone))), ("failed", .int(Int64(failed))),
              ("unknown", .int(Int64(unknown)))]
        if action == .release { f.append(("kept", .int(Int64(kept)))) }
        f += [("cancelled", .bool(cancelled)), ("dry_run", .bool(dryRun)), ("sample", .array(sample.map { .bytes($0) }))]
        if let r = receivers { f.append(("receivers", .int(Int64(r)))) }
        if let e = error { f.append(("error", .string(e))) }
        return .object(f)
    }

    /// The report in words (the same facts as the JSON).
    public var text: String {
        if dryRun { return "dry run: \(matched) key\(matched == 1 ? "" : "s") would be \(action == .expire ? "given a TTL" : "deleted"); nothing was changed" }
        var parts = ["matched \(matched)"]
        switch action {
        case .expire, .persist: parts.append("updated \(updated)")
        case .publish: parts.append("received by \(receivers ?? 0) subscriber\(receivers == 1 ? "" : "s")")
        default: parts.append("deleted \(deleted)")
        }
        if action != .publish {
            parts.append("already gone \(alreadyGone)")
            parts.append("failed \(failed)")
            parts.append("unknown \(unknown)")
        }
        if action == .release { parts.append("kept \(kept)") }
        var s = parts.joined(separator: " · ")
        if unknown > 0 {
            s += "\n\(unknown) key(s): the write was sent but its reply never arrived; they no longer exist (deleted by this run, or expired meanwhile)"
        }
        if notAttempted > 0 && !dryRun { s += "\n\(notAttempted) key(s) not attempted" }
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
    public var startBatch = 64
    public var minBatch = 8
    public var maxBatch = 4096
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
    public var eta: Double? { done > 0 && done < total ? elapsed / Double(done) * Double(total - done) : nil }
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
        if req.action == .publish { return plan }
        // The scan drops its own duplicates; named keys are checked against the glob's.
        var fromGlob = Set<Int>()
        if let g = req.glob {
            let explicit = namesProtected(g)
            let withoutTTL = req.action == .expire && req.onlyWithoutTTL
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

    /// Records a dry run in the audit log (in read-only mode too: it writes nothing to Redis).
    @discardableResult
    public func recordDryRun(_ plan: WritePlan) -> WriteReport {
        var r = WriteReport(action: plan.request.action, matched: plan.keys.count)
        r.dryRun = true
        r.sample = plan.sample
        r.notes = plan.notes
        audit(plan, r)
        return r
    }

    private func audit(_ plan: WritePlan, _ r: WriteReport) {
        guard let log = context.audit else { return }
        do {
            let rec = try log.record(action: plan.request.action, server: context.server, aclUser: context.aclUser,
                                     request: plan.request, keys: plan.keys, report: r)
            // Read-only refuses every write to Redis, the audit PUBLISH included.
            try log.append(rec, publishOn: context.readOnly ? nil : try? nodes.seed())
        } catch {
            onNotice("the audit record could not be written: \(error)")
        }
    }

    // MARK: execute

    /// Carries out exactly the plan's keys and records the outcome. Never throws: what
    /// went wrong is in the report (`error`), with every key accounted for.
    public func execute(_ plan: WritePlan, cancelled: @escaping () -> Bool = { false },
                        progress: ((WriteProgress) -> Void)? = nil) -> WriteReport {
        var r = WriteReport(action: plan.request.action, matched: plan.request.action == .publish ? 0 : plan.keys.count)
        r.sample = plan.sample
        r.notes = plan.notes
        let start = monotonicNow()
        if context.readOnly {
            r.error = "read-only mode: \(plan.request.action.rawValue) refused, nothing was changed"
        } else {
            switch plan.request.action {
            case .invalidate, .delete, .reset, .expire, .persist:
                Executor(session: self, plan: plan, cancelled: cancelled, progress: progress, start: start).run(&r)
            case .release:
                release(plan, &r)
            case .publish:
                publish(plan, &r)
            }
        }
        r.elapsed = monotonicNow() - start
        audit(plan, r)
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

    private func release(_ plan: WritePlan, _ r: inout WriteReport) {
        for k in plan.keys {
            let exp = plan.request.expectations[k] ?? LockExpectation(value: nil, pttl: -1, readAt: wallClockNow())
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
                if case .server(let s) = e { r.failed += 1; r.error = s.message } else { r.unknown += 1; r.error = e.description }
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

    // MARK: publish

    private func publish(_ plan: WritePlan, _ r: inout WriteReport) {
        guard let ch = plan.request.channel, let payload = plan.request.payload else { r.error = "nothing to publish"; return }
        do {
            let reply = try nodes.seed().call([Bytes(utf8: "PUBLISH"), ch, payload])
            r.receivers = Int(reply.int ?? 0)
        } catch let e as RedisError {
            if case .server = e { r.error = e.description } else { r.error = "\(e.description) — whether it was published is unknown" }
        } catch { r.error = "\(error)" }
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

/// Runs the batched writes (UNLINK / DEL / EXPIRE) of one plan, node by node, paced by
/// the latency it measures, with every key accounted for.
private struct Executor {
    let session: WriteSession
    let plan: WritePlan
    let cancelled: () -> Bool
    let progress: ((WriteProgress) -> Void)?
    let start: Double

    var nodes: NodeSet { session.nodes }
    var action: WriteAction { plan.request.action }

    /// Keys waiting for one primary. A class: the queue is changed in place, never copied.
    final class Lane {
        var queue: Deque<Bytes>
        var batch: Int
        var baseRTT = Double.infinity
        var runID: String?
        /// Keys this server answered for (deleted, or already gone): after a failover they are
        /// checked on the new primary, which may not have received those deletes.
        var answered: [Bytes] = []
        init(queue: Deque<Bytes> = [], batch: Int) { self.queue = queue; self.batch = batch }
    }

    func commands(for keys: ArraySlice<Bytes>) -> [(keys: [Bytes], command: [Bytes])] {
        // Multi-key commands must stay within one slot in cluster mode.
        var groups: [(Int, [Bytes])] = []
        if nodes.isCluster {
            var idx: [Int: Int] = [:]
            for k in keys {
                let s = hashSlot(k)
                if let i = idx[s] { groups[i].1.append(k) } else { idx[s] = groups.count; groups.append((s, [k])) }
            }
        } else {
            groups = [(0, Array(keys))]
        }
        return groups.map { g in (g.1, command(g.1)) }
    }

    func command(_ keys: [Bytes]) -> [Bytes] {
        switch action {
        case .reset: return [Bytes(utf8: "DEL")] + keys
        case .expire:
            // One key per command: EXPIRE takes one key.
            return [Bytes(utf8: "EXPIRE"), keys[0], Bytes(utf8: String(plan.request.ttl ?? session.schema.cacheTTL))]
                + (plan.request.onlyWithoutTTL ? [Bytes(utf8: "NX")] : [])
        case .persist: return [Bytes(utf8: "PERSIST"), keys[0]]
        default: return [Bytes(utf8: "UNLINK")] + keys
        }
    }

    var perKeyCommands: Bool { action == .expire || action == .persist }

    /// The run id of the server behind a connection (nil if INFO is not permitted).
    static func runID(_ c: RedisConnection) -> String? {
        guard let text = try? c.call([Bytes(utf8: "INFO"), Bytes(utf8: "server")]).string else { return nil }
        return ServerInfo(text: text)["run_id"]
    }

    func run(_ r: inout WriteReport) {
        var lanes: [Endpoint: Lane] = [:]
        var order: [Endpoint] = []
        for (ep, ks) in nodes.group(plan.keys) {
            order.append(ep)
            lanes[ep] = Lane(queue: Deque(ks), batch: session.pacing.startBatch)
            // Which server each lane writes to: after a lost reply, CLIENT KILL goes only to the
            // same server (behind a failed-over endpoint an id can belong to someone else).
            if let c = try? (nodes.isCluster ? nodes.connection(to: ep) : nodes.seed()) { lanes[ep]?.runID = Self.runID(c) }
        }
        let budget = session.pacing.latencyBudgetMs / 1000
        var lastReport = 0.0
        var lost: [(ep: Endpoint, clientID: Int64?, keys: [Bytes])] = []
        func report(_ force: Bool = false) {
            let t = monotonicNow()
            if force || t - lastReport > 0.05 {
                lastReport = t
                let done = r.deleted + r.updated + r.alreadyGone + r.failed + r.unknown + r.kept
                progress?(WriteProgress(done: done, total: r.matched, deleted: r.deleted + r.updated, elapsed: t - start,
                                        batch: lanes.values.map(\.batch).max() ?? 0))
            }
        }
        while lanes.values.contains(where: { !$0.queue.isEmpty }) {
            if cancelled() { r.cancelled = true; break }
            // One round: a batch per node, sent together, then the replies read.
            var sent: [(ep: Endpoint, conn: RedisConnection, items: [(keys: [Bytes], command: [Bytes])], at: Double)] = []
            var unreachable = false
            for ep in order {
                guard let lane = lanes[ep], !lane.queue.isEmpty else { continue }
                let n = min(lane.batch, lane.queue.count)
                let batch = Array(lane.queue.prefix(n))
                let conn: RedisConnection
                do {
                    conn = try nodes.isCluster ? nodes.connection(to: ep) : nodes.seed()
                } catch {
                    // Nothing was sent: the keys wait in their lane until the node is back.
                    r.error = "\(error)"
                    unreachable = true
                    continue
                }
                lane.queue.removeFirst(n)
                let items: [(keys: [Bytes], command: [Bytes])] = perKeyCommands ? batch.map { ([$0], command([$0])) } : commands(for: batch[...])
                do {
                    try conn.send(items.map(\.command))
                    sent.append((ep, conn, items, monotonicNow()))
                } catch {
                    // Perhaps partly written: the outcome of these keys is unknown.
                    lost.append((ep, conn.clientID, batch))
                    r.error = "\(error)"
                }
            }
            var stop: String? = nil
            var pause = 0.0
            for s in sent {
                let replies: [RESPValue]
                do {
                    replies = try s.conn.receive(s.items.count)
                } catch {
                    lost.append((s.ep, s.conn.clientID, s.items.flatMap(\.keys)))
                    r.error = "\(error)"
                    continue
                }
                // Pacing: the round trip above the fastest one seen is time the server spent on
                // this batch, which the application's commands waited behind.
                let rtt = monotonicNow() - s.at
                guard let lane = lanes[s.ep] else { continue }
                lane.baseRTT = min(lane.baseRTT, rtt)
                let serverTime = rtt - lane.baseRTT
                if serverTime < budget * 0.5 { lane.batch = min(session.pacing.maxBatch, lane.batch * 2) }
                else if serverTime > budget * 0.9 {
                    lane.batch = max(session.pacing.minBatch, Int(Double(lane.batch) * 0.6))
                    if serverTime > budget * 1.5 { pause = max(pause, min(0.05, serverTime - budget)) }
                }
                var again: [Bytes] = []
                for (item, reply) in zip(s.items, replies) {
                    let n = item.keys.count
                    if case .integer(let v) = reply {
                        let done = Int(max(0, min(Int64(n), v)))
                        if perKeyCommands { r.updated += done } else { r.deleted += done }
                        r.alreadyGone += n - done
                        if lane.runID != nil { lane.answered.append(contentsOf: item.keys) }
                        continue
                    }
                    guard let e = reply.errorReply else { r.failed += n; continue }
                    switch e.kind {
                    case .ask:
                        // The slot is migrating: each key to wherever it is now (ASKING followed).
                        askEach(item.keys, &r)
                    case .tryAgain where item.keys.count > 1:
                        // Some of these keys are already on the other side of a migration: the same
                        // multi-key command would be refused until it ends, so one key at a time.
                        askEach(item.keys, &r)
                    case .moved, .tryAgain, .clusterDown:
                        // Refused, not carried out: safe to send again, to the owner now.
                        again += item.keys
                        if e.kind != .tryAgain { try? nodes.refresh() }
                        if e.kind != .moved { pause = max(pause, 0.05) }
                    case .readOnly:
                        r.failed += n
                        stop = "READONLY: \(e.message) — the server is a replica now (a failover?); nothing more was sent: re-run against the new primary"
                    case .noPerm, .unknownCommand:
                        r.failed += n
                        stop = e.message
                    default:
                        r.failed += n
                        if r.error == nil { r.error = e.message }
                    }
                }
                if stop == nil && !again.isEmpty { regroup(again, &lanes, &order, front: true) }
            }
            if let stop { r.error = stop; break }
            if !lost.isEmpty || unreachable {
                if !resolve(&lost, &lanes, &order, &r) { break }
                r.error = nil
            }
            report()
            if pause > 0 { usleep(UInt32(pause * 1_000_000)) }
        }
        for p in lost { r.unknown += p.keys.count }
        report(true)
    }

    /// ASK: the slot is migrating; each key is written on its own, following the redirection.
    func askEach(_ keys: [Bytes], _ r: inout WriteReport) {
        for k in keys {
            do {
                let reply = try nodes.call(command([k]), key: k)
                if let v = reply.int, reply.errorReply == nil {
                    let done = Int(min(1, max(0, v)))
                    if perKeyCommands { r.updated += done } else { r.deleted += done }
                    r.alreadyGone += 1 - done
                } else { r.failed += 1; r.error = reply.errorReply?.message }
            } catch { r.unknown += 1; r.error = "\(error)" }
        }
    }

    /// The keys that exist, asked of the nodes that own them (EXISTS, pipelined).
    func stillThere(_ keys: [Bytes]) throws -> [Bytes] {
        var out: [Bytes] = []
        for (conn, ks) in try nodes.groupConnections(keys) {
            var i = 0
            while i < ks.count {
                let chunk = ks[i..<min(ks.count, i + 10_000)]
                for (k, v) in zip(chunk, try conn.pipeline(chunk.map { [Bytes(utf8: "EXISTS"), $0] })) where v.int == 1 { out.append(k) }
                i += 10_000
            }
        }
        return out
    }

    func regroup(_ keys: [Bytes], _ lanes: inout [Endpoint: Lane], _ order: inout [Endpoint], front: Bool) {
        for (ep, ks) in nodes.group(keys) {
            if lanes[ep] == nil { lanes[ep] = Lane(batch: session.pacing.startBatch); order.append(ep) }
            if front { lanes[ep]!.queue.prepend(contentsOf: ks) } else { lanes[ep]!.queue.append(contentsOf: ks) }
        }
    }

    /// After a dropped connection or a timeout: reconnect (the slot map read again in
    /// cluster mode), make sure the old connection will run nothing more (CLIENT KILL ID),
    /// then EXISTS on each key whose outcome was lost. Keys still there go back in the
    /// queue (their state is known: not a blind retry); keys gone stay `unknown`. False
    /// when the server did not come back in time.
    func resolve(_ pending: inout [(ep: Endpoint, clientID: Int64?, keys: [Bytes])], _ lanes: inout [Endpoint: Lane],
                 _ order: inout [Endpoint], _ r: inout WriteReport) -> Bool {
        let deadline = monotonicNow() + session.reconnectDeadline
        var backoff = Backoff(base: 0.2, cap: 2)
        let lostKeys = pending.reduce(0) { $0 + $1.keys.count }
        session.onNotice(lostKeys > 0 ? "connection lost during the write (\(r.error ?? "?")); reconnecting to find out what happened to \(lostKeys) key(s)"
                                      : "a node is unreachable (\(r.error ?? "?")); waiting for it (or for a failover)")
        while true {
            if cancelled() { return false }
            do {
                if nodes.isCluster { try nodes.refresh() } else { _ = try nodes.seed() }
                for p in pending {
                    if let id = p.clientID, let c = try? (nodes.isCluster ? nodes.connection(to: p.ep) : nodes.seed()),
                       let was = lanes[p.ep]?.runID, Self.runID(c) == was {
                        _ = try? c.pipeline([[Bytes(utf8: "CLIENT"), Bytes(utf8: "KILL"), Bytes(utf8: "ID"), Bytes(utf8: String(id))]])
                    }
                }
                // Another server behind the endpoint (a failover): what the old primary said it
                // deleted may not have reached this one. Those keys are checked, and deleted again.
                if !nodes.isCluster, let lane = lanes.values.first, let was = lane.runID, let now = Self.runID(try nodes.seed()), now != was {
                    let back = try stillThere(lane.answered)
                    if !back.isEmpty {
                        let fromDeleted = min(back.count, r.deleted)
                        r.deleted -= fromDeleted
                        r.alreadyGone -= back.count - fromDeleted
                        regroup(back, &lanes, &order, front: true)
                        let note = "failover: \(back.count) key(s) the old primary had deleted were back on the new one (its deletes had not reached it): deleted again"
                        r.notes.append(note)
                        session.onNotice(note)
                    }
                    lane.answered = []
                    lane.runID = now
                }
                var stillThere: [Bytes] = []
                var gone = 0
                for p in pending {
                    for (conn, ks) in try nodes.groupConnections(p.keys) {
                        let replies = try conn.pipeline(ks.map { [Bytes(utf8: "EXISTS"), $0] })
                        for (k, v) in zip(ks, replies) {
                            if v.int == 0 { gone += 1 }
                            else if let e = v.errorReply, Redirect(e) == nil { throw RedisError.server(e) }
                            else { stillThere.append(k) }
                        }
                    }
                }
                r.unknown += gone
                if gone > 0 { r.notes.append("\(gone) key(s) whose reply was lost no longer exist (counted as unknown: deleted by this run, or expired)") }
                pending.removeAll()
                regroup(stillThere, &lanes, &order, front: true)
                // Lanes of nodes that are gone move to whoever serves their keys now.
                if nodes.isCluster {
                    var moved: [Bytes] = []
                    let primaries = Set(nodes.topology?.primaries ?? [])
                    for ep in order where !primaries.contains(ep) {
                        moved += lanes[ep]?.queue ?? []
                        lanes[ep] = nil
                    }
                    order.removeAll { lanes[$0] == nil }
                    regroup(moved, &lanes, &order, front: false)
                }
                // Every node with work left must answer before the run goes on.
                for ep in order where !(lanes[ep]?.queue.isEmpty ?? true) {
                    _ = try nodes.isCluster ? nodes.connection(to: ep) : nodes.seed()
                }
                session.onNotice("reconnected: \(gone) key(s) gone (outcome unknown), \(stillThere.count) still there (sent again)")
                return true
            } catch {
                if monotonicNow() > deadline {
                    r.error = "\(r.error ?? "connection lost"); the server did not come back within \(Int(session.reconnectDeadline)) s — the outcome of \(pending.reduce(0) { $0 + $1.keys.count }) key(s) is unknown"
                    return false
                }
                usleep(UInt32(backoff.nextDelay() * 1_000_000))
            }
        }
    }
}
