import Foundation
import RedisProtocol
import OpsCore

enum LocksModule: ViewModule {
    static let id = ViewID.locks
    static let refreshEvery = 1.0

    static func layout(_ s: AppState) -> SplitLayout { SplitLayout.make(top: s.bodyTop, height: s.bodyHeight, pane: false) }

    static func entered(_ s: inout AppState) -> [Effect] {
        if !s.locks.board.loaded && !s.locks.board.scanning { s.locks.board.scanning = true; return [.scanLocks] }
        return tick(&s)
    }

    static func tick(_ s: inout AppState) -> [Effect] {
        // Locks live for seconds: the full set is read often while that is cheap.
        let (full, keys) = s.locks.board.due(now: s.now, every: refreshEvery,
                                             interval: LockBoard.rescanInterval(commands: s.locks.board.fullCost, least: 5, most: 60),
                                             height: layout(s).listHeight)
        return (full ? [.scanLocks] : []) + (keys.isEmpty ? [] : [.refreshLocks(keys)])
    }

    static func sync(_ s: inout AppState, tail: ChannelTail) { s.locks.board.sync(height: layout(s).listHeight) }

    /// The order rows take, from what was read (a countdown does not re-sort the list).
    static func order(_ s: AppState) -> (LockRow, LockRow) -> Bool {
        let exp = s.schema.lockTTL * 1000
        // Remaining when read: stuck locks (no TTL, or one far above SET NX EX's) rank as forever.
        func left(_ r: LockRow) -> Int64 {
            if r.isStuck(expectedMs: exp) { return .max }
            if case .expiresIn(let ms)? = r.ttl { return ms }
            return .max
        }
        switch s.locks.sort {
        case .state: return { a, b in
            let sa = a.isStuck(expectedMs: exp), sb = b.isStuck(expectedMs: exp)
            return sa != sb ? sa : left(a) < left(b)
        }
        case .protects: return { $0.protects.lexicographicallyPrecedes($1.protects) }
        case .held: return { left($0) < left($1) }
        case .remaining: return { left($0) > left($1) }
        case .value: return { ($0.value ?? []).lexicographicallyPrecedes($1.value ?? []) }
        }
    }

    /// States a `state:` filter (and `!`) can pick, in the order `!` goes through them.
    static let states = ["stuck", "held"]

    static func rules(_ s: AppState) -> BoardRules<LockRow> {
        let exp = s.schema.lockTTL * 1000
        let schema = s.schema
        return BoardRules(precedes: order(s),
                          state: { r in r.isStuck(expectedMs: exp) ? "stuck" : "held" },
                          flagged: { $0.isStuck(expectedMs: exp) },
                          isExact: { r, t in exactName(r.protects, t, schema) || exactName(r.key, t, schema) })
    }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        switch ev {
        case .locks(let reading):
            s.locks.board.absorb(reading, rules(s))
            for r in reading.rows where s.locks.firstSeen[r.key] == nil { s.locks.firstSeen[r.key] = reading.at }
            s.locks.firstSeen = s.locks.firstSeen.filter { s.locks.board.index[$0.key] != nil }
        case .locksRefreshed(let fresh):
            _ = s.locks.board.absorbRefresh(fresh, rules(s))
        case .locksFailed(let why):
            s.locks.board.failed(why)
        default: break
        }
        sync(&s, tail: noTail)
        return []
    }

    static func perform(_ a: Action, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        if ListNav.isMove(a) {
            s.locks.board.move(a, page: max(1, layout(s).listHeight - 1))
            sync(&s, tail: tail)
            return []
        }
        switch a {
        case .back:
            if !s.locks.board.filter.isEmpty { return filterCommitted("", &s, tail: tail) }
        case .rescan:
            s.locks.board.scanning = true
            return [.scanLocks]
        case .nextMatch, .previousMatch:
            switch s.locks.board.jumpFlagged(forward: a == .nextMatch, rules(s)) {
            case nil: Reducer.flash(&s, "no lock shown is stuck", .info)
            case true?: Reducer.flash(&s, a == .nextMatch ? "no stuck lock below: back to the first" : "no stuck lock above: back to the last", .info)
            default: break
            }
        case .cycleState:
            let f = BoardFilter(s.locks.board.filter)
            return filterCommitted(f.withState(f.state == "stuck" ? nil : "stuck"), &s, tail: tail)
        case .sort:
            let all = LockSort.allCases
            s.locks.sort = all[(all.firstIndex(of: s.locks.sort)! + 1) % all.count]
            s.locks.board.recompute(rules(s))
            Reducer.flash(&s, "sorted by \(s.locks.sort == .state ? "state (stuck first)" : s.locks.sort.rawValue)", .info)
        case .delete:
            if s.session.readOnly { Reducer.flash(&s, "read-only mode: releasing a lock is refused (start without --read-only to allow it)", .error); return [] }
            guard let l = s.locks.board.selected else { Reducer.flash(&s, "no lock selected", .info); return [] }
            s.confirm = releaseConfirmation(l, s)
        default: break
        }
        sync(&s, tail: tail)
        return []
    }

    /// The question before releasing a lock (`d` and `:release LOCK` ask the same): it is
    /// released only if still the one shown (same value, TTL not higher).
    static func releaseConfirmation(_ l: LockRow, _ s: AppState) -> Confirmation {
        let k = l.key
        let exp = s.schema.lockTTL * 1000
        let value = l.value.map { "“" + Escaper.string($0, maxScalars: 40) + "”" } ?? "?"
        let ttl: String
        let pttl: Int64
        switch l.ttl {
        case .expiresIn(let ms)?: ttl = formatDuration(l.remainingMs(now: s.now) ?? 0) + " left"; pttl = ms
        case .persistent?: ttl = "no TTL (stuck)"; pttl = -1
        default: ttl = "TTL ?"; pttl = -1
        }
        let age = l.heldMs(expectedMs: exp, now: s.now).map { "held ~" + formatDuration($0) } ?? heldText(l, s)
        let req = WriteRequest(action: .release([k: LockExpectation(value: l.value, pttl: pttl, readAt: l.readAt)]), keys: [k])
        return Confirmation(question: "Release this lock? Only if it is still the one shown (audited)", subject: Escaper.string(k),
                                 detail: "value \(value) · \(ttl) · \(age)", effect: .execute(id: 0, WritePlan(request: req, keys: [k])))
    }

    static func filterText(_ s: AppState) -> String { s.locks.board.filter }

    static func filterTyped(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        s.locks.board.setFilter(text, rules(s))
        sync(&s, tail: tail)
        return []
    }

    static func filterCommitted(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        _ = filterTyped(text, &s, tail: tail)
        if !text.isEmpty && s.locks.board.visible.isEmpty { Reducer.flash(&s, "no lock matches “\(text)”", .info) }
        return []
    }

    /// HELD for a lock whose age cannot be read from its TTL: at least since the console saw it.
    static func heldText(_ l: LockRow, _ s: AppState) -> String {
        guard let first = s.locks.firstSeen[l.key] else { return "age unknown" }
        return "held ≥ " + formatDuration(Int64(max(0, s.now - first) * 1000)) + " (seen since)"
    }

    static func render(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext) {
        let l = s.locks.board
        let y0 = s.bodyTop - 1
        if !l.loaded { g.put(2, y0 + 1, "reading locks (SCAN \(Escaper.string(s.session.prefix))\(s.schema.lockPattern))…", .dim); return }
        let exp = s.schema.lockTTL * 1000
        let stuck = l.rows.lazy.filter { $0.isStuck(expectedMs: exp) }.count
        var parts: [(String, Role)] = [("\(grouped(l.rows.count)) locks held", .title), ("\(stuck) stuck", stuck > 0 ? .error : .normal),
                                       ("expected TTL \(s.schema.lockTTL)s (SET NX EX)", .dim)]
        if !l.filter.isEmpty { parts.insert((FilterText.quoted(l.filter, width: s.width) + ": \(l.visible.count)", .info), at: 1) }
        if l.truncated { parts.append(("only the first \(grouped(l.rows.count)) are held", .warning)) }
        parts.append(("read \(ago(s.now - l.lastFull))", .dim))
        if let e = l.error { parts.insert(("cannot read locks: \(Escaper.string(e))", .error), at: 0) }
        StatusLine.draw(&g, y: y0, parts)
        let T = TableLayout.fit([Column("state", "STATE", width: 6, priority: 9),
                                 Column("protects", "PROTECTS (CACHE KEY)", width: 20, grow: 10_000, priority: 10),
                                 Column("held", "HELD", width: 9, grow: 14, priority: 7, alignRight: true),
                                 Column("left", "REMAINING", width: 10, priority: 8, alignRight: true),
                                 Column("value", "VALUE", width: 8, grow: 12, priority: 4)], width: g.width)
        let sortCol: String = { switch s.locks.sort { case .state: return "state"; case .protects: return "protects"; case .held: return "held"; case .remaining: return "left"; case .value: return "value" } }()
        T.header(&g, y: s.bodyTop, sortedBy: sortCol)
        let L = layout(s)
        if l.visible.isEmpty { g.put(2, L.listTop + 1, l.filter.isEmpty ? "no locks held" : "no lock matches the filter", .dim) }
        for i in 0..<L.listHeight {
            let idx = l.scrollTop + i
            guard idx < l.visible.count else { break }
            let r = l.shown(idx)
            let y = L.listTop + i
            let isStuck = r.isStuck(expectedMs: exp)
            let left = r.remainingMs(now: s.now)
            T.put(&g, y: y, "state", isStuck ? "STUCK" : (left == 0 ? "ending" : "held"), isStuck ? .error : (left == 0 ? .dim : .ok))
            T.put(&g, y: y, "protects", runs: Escaper.runs(r.protects, maxScalars: 200), .normal)
            let held = r.heldMs(expectedMs: exp, now: s.now).map(formatDuration)
                ?? s.locks.firstSeen[r.key].map { "≥" + formatDuration(Int64(max(0, s.now - $0) * 1000)) } ?? "?"
            T.put(&g, y: y, "held", held, isStuck ? .warning : .normal)
            let remaining: String = {
                switch r.ttl {
                case .persistent?: return "no TTL"
                case .expiresIn?: return (left ?? 0) == 0 ? "ending" : formatDuration(left ?? 0)
                default: return "?"
                }
            }()
            T.put(&g, y: y, "left", remaining, isStuck ? .warning : .normal)
            if let v = r.value { T.put(&g, y: y, "value", runs: Escaper.runs(v, maxScalars: 40), .dim) }
            if idx == l.cursor { g.select(y: y) }
        }
    }
}
