import Foundation
import RedisProtocol
import OpsCore

/// Writes in the console. Pattern writes (`D`, `e` on a pattern) open a modal: dry run
/// (audited) → typed count → progress (Esc cancels after the current batch) → report.
/// Single-key writes (`d`, `r`, lock release, `e` on a key, `p`) ask y/n and report in a
/// line. All of them are carried out by OpsCore's WriteSession, as in the CLI.
enum WriteFlowModule {
    static func newID(_ s: inout AppState) -> Int {
        defer { s.nextWriteID += 1 }
        return s.nextWriteID
    }

    static func start(_ kind: WriteKind, glob: String, _ s: inout AppState) -> [Effect] {
        let glob = glob.trimmingCharacters(in: .whitespaces)
        guard !glob.isEmpty else { return [] }
        // A glob typed with the prefix means the same keys.
        let rel = s.schema.relative(Bytes(utf8: glob)).map { $0.lossyString } ?? glob
        let action: WriteAction
        switch kind {
        case .expire: action = .expire(ttl: s.schema.cacheTTL, onlyWithoutTTL: true)
        default: action = .invalidate
        }
        let req = WriteRequest(action: action, glob: rel)
        let id = newID(&s)
        s.write = WriteFlow(id: id, request: req, phase: .planning(found: 0))
        return [.plan(id: id, req)]
    }

    /// A y/n write was confirmed: it gets its id (its result is reported in a line).
    static func confirmed(_ e: Effect, _ s: inout AppState) -> Effect {
        guard case .execute(_, let plan) = e else { return e }
        let id = newID(&s)
        s.singleWrites.insert(id)
        return .execute(id: id, plan)
    }

    /// Whether an event is about the open dialog's write.
    static func mine(_ id: Int, _ s: AppState) -> Bool { s.write?.id == id }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        switch ev {
        case .planProgress(let id, let n):
            if mine(id, s), case .planning? = s.write?.phase { s.write?.phase = .planning(found: n) }
        case .planned(let id, let plan):
            if mine(id, s) { s.write?.phase = .confirming(plan); s.write?.scroll = 0; s.write?.typed = "" }
        case .writeProgress(let id, let p):
            guard mine(id, s) else { return [] }
            switch s.write?.phase {
            case .running(let plan, _)?: s.write?.phase = .running(plan, p)
            case .cancelling(let plan, _)?: s.write?.phase = .cancelling(plan, p)
            default: break
            }
        case .written(let id, let r):
            if s.singleWrites.remove(id) != nil { return singleWriteDone(r, &s) }
            guard mine(id, s), let w = s.write, !isFinished(w.phase) else { return [] }
            if case .running(let plan, _) = w.phase, r.action == .invalidate, let g = plan.request.glob { ActivityModule.invalidated(g, &s) }
            if case .cancelling(let plan, _) = w.phase, r.action == .invalidate, let g = plan.request.glob { ActivityModule.invalidated(g, &s) }
            s.write?.phase = .done(r)
            switch r.action {
            case .invalidate, .expire: return KeysModule.scan(&s)
            case .delete, .reset, .release, .persist, .publish, .kill, .config: return []
            }
        case .writeFailed(let id, let why):
            if s.singleWrites.remove(id) != nil { Reducer.flash(&s, why, .error); return [] }
            if mine(id, s) { s.write?.phase = .failed(why) }
        case .writeRefused(let id, let why):
            // The audit log cannot take the intent: nothing was written; the question stays open.
            if s.singleWrites.remove(id) != nil { Reducer.flash(&s, why, .error); return [] }
            guard mine(id, s) else { return [] }
            switch s.write?.phase {
            case .running(let plan, _)?, .cancelling(let plan, _)?:
                s.write?.phase = .confirming(plan)
            default: break
            }
            Reducer.flash(&s, why, .error)
        case .writeCancelled(let id):
            if s.singleWrites.remove(id) != nil { Reducer.flash(&s, "cancelled before it started: nothing written", .info); return [] }
            guard mine(id, s), let w = s.write else { return [] }
            switch w.phase {
            case .running(let plan, _), .cancelling(let plan, _):
                var r = WriteReport(action: plan.request.action, matched: plan.keys.count)
                r.cancelled = true
                r.sample = plan.sample
                r.notes = ["cancelled before it started: nothing written"]
                s.write?.phase = .done(r)
            case .planning:
                s.write = nil
            default: break
            }
        default: break
        }
        return []
    }

    static func isFinished(_ p: WriteFlow.Phase) -> Bool {
        if case .done = p { return true }
        if case .failed = p { return true }
        return false
    }

    /// A y/n write finished: say what happened, in words taken from the numbers, and show it
    /// in the lists at once.
    static func singleWriteDone(_ r: WriteReport, _ s: inout AppState) -> [Effect] {
        let key = r.sample.first.map { Escaper.string($0) } ?? ""
        if r.unknown > 0 {
            let what: String
            switch r.action {
            case .publish: what = "the reply to PUBLISH never arrived: whether it was published is unknown"
            case .kill: what = "the reply to CLIENT KILL never arrived: whether the client was disconnected is unknown"
            case .config: what = "the reply to CONFIG SET never arrived: whether it was set is unknown"
            case .invalidate, .delete, .reset, .release, .expire, .persist:
                what = r.unresolved > 0
                    ? "the reply never arrived and the server could not be asked again: whether \(key) was \(r.verbPast) is unknown"
                    : "the reply never arrived; checked after reconnecting, \(key) \(r.action.updatesTTL ? "has changed" : "no longer exists"): \(r.verbPast) by this run, or \(r.action.updatesTTL ? "changed" : "expired") meanwhile"
            }
            Reducer.flash(&s, "\(r.action.kind.rawValue) \(key): \(what) (audited as unknown)", .warning)
            return []
        }
        if let e = r.error {
            Reducer.flash(&s, "\(r.action.kind.rawValue) \(key): \(e)" + (r.deleted + r.updated > 0 ? "" : " — nothing was changed"), .error)
            return []
        }
        if r.deleted + r.alreadyGone > 0 {
            let now = s.now
            s.keys.snapshot?.window.update(r.sample.map { KeyInfo(key: $0, type: "none", ttl: .gone, bytes: nil, kind: s.schema.kind(of: $0), readAt: now) })
            let keys = Set(r.sample)
            s.rateLimits.board.remove(keys, RateLimitsModule.rules(s))
            RateLimitsModule.sync(&s, tail: noTail)
            s.locks.board.remove(keys, LocksModule.rules(s))
            LocksModule.sync(&s, tail: noTail)
        }
        switch r.action {
        case .reset:
            Reducer.flash(&s, r.deleted > 0 ? "reset \(key): the client's next request starts a new window (audited)" : "\(key) was already gone (its window had ended)", .info)
        case .release:
            if r.kept > 0 { Reducer.flash(&s, "\(key) was re-acquired since it was shown: kept, nothing was deleted", .warning) }
            else { Reducer.flash(&s, r.deleted > 0 ? "released \(key) (audited)" : "\(key) was already released", .info) }
        case .expire(let ttl, _):
            Reducer.flash(&s, r.updated > 0 ? "\(key) now expires in \(ttl) s (audited)" : "\(key) already had a TTL (or is gone): unchanged", .info)
        case .persist:
            Reducer.flash(&s, r.updated > 0 ? "\(key) no longer expires (PERSIST, audited)" : "\(key) had no TTL (or is gone): unchanged", .info)
        case .publish:
            Reducer.flash(&s, "published: \(r.receivers ?? 0) subscriber\(r.receivers == 1 ? "" : "s") received it (audited)", .info)
        case .kill(let c):
            Reducer.flash(&s, r.deleted > 0 ? "disconnected client \(c.id) \(Escaper.string(Bytes(utf8: c.address))) (CLIENT KILL, audited)" : "client \(c.id) had already gone", .info)
            // Gone from the list at once; the next CLIENT LIST says the rest.
            s.server.reading?.clients?.clients.removeAll { $0.id == c.id }
            ServerModule.reselectClient(&s)
        case .config(let p, let v, _):
            Reducer.flash(&s, "\(p) set to “\(Escaper.string(Bytes(utf8: v)))” (audited)", .info)
            return ActivityModule.configWritten(r, &s)
        case .invalidate, .delete:
            Reducer.flash(&s, r.deleted > 0 ? "deleted \(key) (UNLINK, audited)" : "\(key) was already gone", .info)
        }
        return []
    }

    static func key(_ s: inout AppState, _ k: Key) -> [Effect] {
        guard var w = s.write else { return [] }
        switch w.phase {
        case .planning:
            if k == .escape {
                s.write = nil
                Reducer.flash(&s, "dry run abandoned — nothing was changed", .info)
                return [.cancelWrite(id: w.id)]
            }
        case .confirming(let plan):
            let room = listRoom(s, plan)
            switch k {
            case .escape:
                s.write = nil
                Reducer.flash(&s, "cancelled — nothing was changed", .info)
                return []
            case .backspace: if !w.typed.isEmpty { w.typed.removeLast() }
            case .char(let c) where c.isNumber: w.typed.append(c)
            case .down, .char("j"): w.scroll += 1
            case .up, .char("k"): w.scroll -= 1
            case .pageDown: w.scroll += room
            case .pageUp: w.scroll -= room
            case .home, .char("g"): w.scroll = 0
            case .end, .char("G"): w.scroll = plan.keys.count
            case .enter:
                if plan.keys.isEmpty { s.write = nil; return [] }
                guard w.typed == String(plan.keys.count) else {
                    Reducer.flash(&s, "type exactly \(plan.keys.count) to confirm", .warning)
                    return []
                }
                w.phase = .running(plan, WriteProgress(done: 0, total: plan.keys.count, deleted: 0, elapsed: 0))
                s.write = w
                s.flash = nil
                return [.execute(id: w.id, plan)]
            default: break
            }
            w.scroll = max(0, min(w.scroll, max(0, plan.keys.count - room)))
            s.write = w
        case .running(let plan, let p):
            if k == .escape {
                w.phase = .cancelling(plan, p)
                s.write = w
                return [.cancelWrite(id: w.id)]
            }
        case .cancelling:
            break
        case .done, .failed:
            s.write = nil
        }
        return []
    }

    static func boxSize(_ s: AppState) -> (w: Int, h: Int) { (min(s.width - 2, 100), min(s.height - 2, max(12, s.height * 3 / 4))) }

    /// Lines above the key list in the confirmation: the verdict, the protected keys, notes.
    static func headLines(_ plan: WritePlan) -> Int { 1 + (plan.protectedSkipped > 0 ? 1 : 0) + min(2, plan.notes.count) }

    /// Rows of the key list in the confirmation (what the keys scroll by, and what is drawn).
    static func listRoom(_ s: AppState, _ plan: WritePlan) -> Int {
        // Inside the frame: a blank line, the head, the list, its position line, the prompt.
        max(1, boxSize(s).h - 2 - 1 - headLines(plan) - 2)
    }

    static func title(_ s: AppState, _ w: WriteFlow) -> String {
        let g = Escaper.string(s.session.prefix) + (w.request.glob ?? "")
        switch w.request.action {
        case .expire(let ttl, _): return "Give keys without a TTL the cache TTL (\(ttl) s): \(g)"
        default: return "Invalidate \(g)"
        }
    }

    static func render(_ g: inout CellGrid, _ s: AppState, _ w: WriteFlow) {
        let (bw, bh) = boxSize(s)
        guard bw > 10, bh > 5 else { return }
        let inner = Modal.frame(&g, title: title(s, w), width: bw, height: bh)
        var y = inner.y + 1
        let maxX = inner.x + inner.w
        let bottom = inner.y + inner.h
        func line(_ t: String, _ r: Role = .normal) { if y < bottom { g.put(inner.x, y, t, r, maxX: maxX); y += 1 } }
        let setsTTL = w.request.action.updatesTTL
        let verb = setsTTL ? "given the TTL (EXPIRE … NX)" : "deleted (UNLINK)"
        func bar(_ p: WriteProgress) {
            let barW = max(4, inner.w - 8)
            let full = p.total == 0 ? barW : min(barW, Int(Double(barW) * Double(p.done) / Double(p.total)))
            if y < bottom {
                g.put(inner.x, y, String(repeating: "█", count: full), .ok)
                g.put(inner.x + full, y, String(repeating: "░", count: barW - full), .barEmpty)
                g.put(inner.x + barW + 1, y, padLeft("\(p.total == 0 ? 100 : p.done * 100 / p.total)%", 5), .normal)
                y += 1
            }
            line("\(grouped(p.deleted)) \(setsTTL ? "updated" : "deleted") of \(grouped(p.total)) · \(String(format: "%.1f", p.elapsed)) s · \(grouped(Int(p.rate))) keys/s · batch \(p.batch)"
                 + (p.done < p.total ? (p.eta.map { " · ETA \(formatDuration(Int64($0 * 1000)))" } ?? " · ETA estimating…") : ""))
        }
        switch w.phase {
        case .planning(let n):
            line("Dry run: scanning (SCAN, never KEYS)… \(grouped(n)) matching so far", .info)
            line("Nothing is changed yet. Esc abandons.", .dim)
        case .confirming(let plan):
            let n = plan.keys.count
            line("Dry run: \(grouped(n)) key\(n == 1 ? "" : "s") would be \(verb). Recorded in the audit log.", n == 0 ? .info : .warning)
            if plan.protectedSkipped > 0 { line("\(plan.protectedSkipped) protected key(s) (\(s.schema.protectedPatterns.joined(separator: ", "))) are left out: name the namespace to include them.", .dim) }
            for note in plan.notes.prefix(2) { line(Escaper.string(note), .dim) }
            let room = listRoom(s, plan)
            let top = max(0, min(w.scroll, max(0, n - room)))
            for k in plan.keys.dropFirst(top).prefix(room) { line("  " + Escaper.string(k, maxScalars: 200)) }
            if n > room {
                line("  keys \(top + 1)–\(min(n, top + room)) of \(grouped(n)) · ↑↓ PgUp PgDn scroll", .dim)
            }
            y = max(y, bottom - 1)
            if n == 0 { line("Nothing to do. Any key closes.", .dim) }
            else { line("Type \(n) and Enter to carry it out; Esc cancels: " + w.typed + "▏", .prompt) }
        case .running(_, let p):
            line("\(setsTTL ? "Setting TTLs" : "Deleting with UNLINK"), paced to the server's latency… Esc stops after the current batch.", .info)
            bar(p)
        case .cancelling(_, let p):
            line("Stopping after the current batch…", .warning)
            bar(p)
        case .done(let r):
            line(r.cancelled ? "Cancelled." : (r.error == nil ? "Done." : "Stopped."), r.error == nil && !r.cancelled ? .ok : .error)
            for l in r.text.split(separator: "\n") { line(String(l)) }
            if let e = r.error { line("reason: " + Escaper.string(e), .error) }
            for note in r.notes.prefix(3) { line(Escaper.string(note), .dim) }
            line("Recorded in the audit log (A shows it). Any key closes.", .dim)
        case .failed(let why):
            line("Failed: " + Escaper.string(why), .error)
            line("Nothing more was changed. Any key closes.", .dim)
        }
    }
}
