import Foundation
import RedisProtocol
import OpsCore

/// An empty tail, for views whose sync does not look at the tail.
let noTail = ChannelTail(capacity: 1)

enum RateLimitsModule: ViewModule {
    static let id = ViewID.rateLimits
    static let refreshEvery = 1.0

    static func layout(_ s: AppState) -> SplitLayout {
        SplitLayout.make(top: s.bodyTop, height: s.bodyHeight, pane: s.rateLimits.detailOpen, minPane: 4)
    }

    /// The view's order: by default flagged first (blocked forever, blocked, broken, …).
    static func order(_ s: AppState) -> (RateLimitCounter, RateLimitCounter) -> Bool {
        switch s.rateLimits.sort {
        case .state: return RateLimitCounter.ordered
        case .count: return { ($0.count ?? -1) > ($1.count ?? -1) }
        case .ttl: return { rank($0) < rank($1) }
        case .identifier: return { $0.identifier.lexicographicallyPrecedes($1.identifier) }
        case .kind: return { $0.kind.rawValue < $1.kind.rawValue }
        }
    }

    /// States a `state:` filter (and `!`) can pick, in the order `!` goes through them.
    static let states = ["broken", "blocked", "near"]

    static func rules(_ s: AppState) -> BoardRules<RateLimitCounter> {
        let schema = s.schema
        return BoardRules(precedes: order(s), state: { $0.stateWord }, flagged: { $0.isFlagged },
                          isExact: { c, t in c.identifier == t || exactName(c.key, t, schema) })
    }

    static func rank(_ c: RateLimitCounter) -> Int64 {
        if case .expiresIn(let ms)? = c.ttl { return Int64(c.readAt * 1000) + ms }
        return Int64.max
    }

    static func entered(_ s: inout AppState) -> [Effect] {
        if !s.rateLimits.board.loaded && !s.rateLimits.board.scanning { s.rateLimits.board.scanning = true; return [.scanRateLimits(match: nil)] }
        return tick(&s)
    }

    static func tick(_ s: inout AppState) -> [Effect] {
        let (full, keys) = s.rateLimits.board.due(now: s.now, every: refreshEvery,
                                                  interval: RateLimitBoard.rescanInterval(commands: s.rateLimits.board.fullCost),
                                                  height: layout(s).listHeight)
        return (full ? [.scanRateLimits(match: nil)] : []) + (keys.isEmpty ? [] : [.refreshRateLimits(keys)])
    }

    static func sync(_ s: inout AppState, tail: ChannelTail) {
        s.rateLimits.board.sync(height: layout(s).listHeight)
        if s.rateLimits.board.visible.isEmpty { s.rateLimits.detailOpen = false }
    }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        let o = rules(s)
        switch ev {
        case .rateLimits(let reading):
            s.rateLimits.board.absorb(reading, o)
            // History is kept for counters still there only.
            if reading.match == nil { s.rateLimits.history = s.rateLimits.history.filter { s.rateLimits.board.index[$0.key] != nil } }
        case .rateLimitsRefreshed(let fresh, _):
            for c in s.rateLimits.board.absorbRefresh(fresh, o) {
                guard let n = c.count else { continue }
                var h = s.rateLimits.history[c.key] ?? []
                h.append(n)
                if h.count > 120 { h.removeFirst(h.count - 120) }
                s.rateLimits.history[c.key] = h
            }
        case .rateLimitsFailed(let why):
            s.rateLimits.board.failed(why)
        default: break
        }
        sync(&s, tail: noTail)
        return []
    }

    static func perform(_ a: Action, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        if ListNav.isMove(a) {
            s.rateLimits.board.move(a, page: max(1, layout(s).listHeight - 1))
            sync(&s, tail: tail)
            return []
        }
        switch a {
        case .back:
            if s.rateLimits.detailOpen { s.rateLimits.detailOpen = false }
            else if !s.rateLimits.board.filter.isEmpty { return filterCommitted("", &s, tail: tail) }
        case .details:
            if s.rateLimits.board.selectedKey != nil { s.rateLimits.detailOpen.toggle() }
        case .sort:
            let all = CounterSort.allCases
            s.rateLimits.sort = all[(all.firstIndex(of: s.rateLimits.sort)! + 1) % all.count]
            s.rateLimits.board.recompute(rules(s))
            Reducer.flash(&s, "sorted by \(s.rateLimits.sort.rawValue)", .info)
        case .rescan:
            s.rateLimits.board.scanning = true
            return [.scanRateLimits(match: nil)]
        case .nextMatch, .previousMatch:
            switch s.rateLimits.board.jumpFlagged(forward: a == .nextMatch, rules(s)) {
            case nil: Reducer.flash(&s, "no counter shown is broken, blocked or near its limit", .info)
            case true?: Reducer.flash(&s, a == .nextMatch ? "no flagged row below: back to the first" : "no flagged row above: back to the last", .info)
            default: break
            }
        case .cycleState:
            let f = BoardFilter(s.rateLimits.board.filter)
            let next = f.state.flatMap { states.firstIndex(of: $0) }.map { $0 + 1 < states.count ? states[$0 + 1] : nil } ?? states.first
            return filterCommitted(f.withState(next), &s, tail: tail)
        case .reset:
            guard let c = s.rateLimits.board.selected else { Reducer.flash(&s, "no counter selected", .info); return [] }
            if s.session.readOnly {
                Reducer.flash(&s, "read-only mode: resetting a counter is refused (start without --read-only to allow it)", .error)
                return []
            }
            s.confirm = resetConfirmation(c, s)
        default: break
        }
        sync(&s, tail: tail)
        return []
    }

    /// The question before resetting a counter (`r` and `:reset IDENTIFIER` ask the same).
    static func resetConfirmation(_ c: RateLimitCounter, _ s: AppState) -> Confirmation {
        let count = c.count.map { "\($0)/\(c.limit)" } ?? "?"
        return Confirmation(question: "Reset this counter? (DEL, audited: the client's next request starts a new window)", subject: Escaper.string(c.key),
                            detail: "\(c.stateWord) · \(count) · \(ttlText(c, now: s.now))",
                            effect: .execute(id: 0, WritePlan(request: WriteRequest(action: .reset, keys: [c.key]), keys: [c.key])))
    }

    static func filterText(_ s: AppState) -> String { s.rateLimits.board.filter }

    static func filterTyped(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        s.rateLimits.board.setFilter(text, rules(s))
        sync(&s, tail: tail)
        return []
    }

    /// Enter keeps the filter: every counter held is searched at once, and the server too,
    /// for counters that appeared since the last full reading.
    static func filterCommitted(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        _ = filterTyped(text, &s, tail: tail)
        let q = BoardFilter(text)
        // A state alone needs no search: every counter is held (or the status line says not).
        guard q.exact != nil || !q.needles.isEmpty else { return [] }
        if s.rateLimits.board.visible.isEmpty { Reducer.flash(&s, "no counter matches “\(text)” yet; searching the server…", .info) }
        let ns = Bytes(utf8: s.schema.rateLimitPattern.split(separator: "*", maxSplits: 1).first.map(String.init) ?? "")
        let glob: Bytes
        if let e = q.exact {
            // `=user:1234`: the identifier itself, or a full key name.
            let rel = s.schema.relative(e).map { $0.hasPrefix(ns) ? Array($0[ns.count...]) : $0 } ?? e
            glob = KeySchema.literalGlob(ns + rel)
        } else {
            glob = KeySchema.literalGlob(ns) + Bytes(utf8: "*") + KeyFilter.caseInsensitiveGlob(q.needles[0]) + Bytes(utf8: "*")
        }
        return [.scanRateLimits(match: glob.lossyString)]
    }

    // MARK: rendering

    static func render(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext) {
        let r = s.rateLimits.board
        let y0 = s.bodyTop - 1
        if !r.loaded {
            g.put(2, y0 + 1, "reading rate-limit counters (SCAN \(Escaper.string(s.session.prefix))\(s.schema.rateLimitPattern))…", .dim)
            return
        }
        let all = r.rows
        let blocked = all.lazy.filter(\.isBlocked).count
        let broken = all.lazy.filter(\.isBroken).count
        let forever = all.lazy.filter(\.blocksForever).count
        var parts: [(String, Role)] = [("\(grouped(all.count)) counters", .title), ("\(grouped(blocked)) blocked", blocked > 0 ? .error : .normal),
                                       ("\(broken) broken (no TTL)\(forever > 0 ? ", \(forever) blocked forever" : "")", broken > 0 ? .warning : .normal),
                                       ("limit \(s.schema.rateLimit) per \(s.schema.rateWindow)s", .dim)]
        if r.truncated { parts.append(("only the first \(grouped(all.count)) are held", .warning)) }
        if !r.filter.isEmpty { parts.insert((FilterText.quoted(r.filter, width: s.width) + ": \(grouped(r.visible.count))", .info), at: 1) }
        parts.append(("all read \(ago(s.now - r.lastFull))\(r.scanning ? ", reading…" : ""); rows on screen every \(Int(refreshEvery))s", .dim))
        if let e = r.error { parts.insert(("cannot read counters: \(Escaper.string(e))", .error), at: 0) }
        StatusLine.draw(&g, y: y0, parts)

        let T = TableLayout.fit([Column("state", "STATE", width: 7, priority: 9),
                                 Column("id", "IDENTIFIER", width: 16, grow: 12, priority: 10),
                                 Column("kind", "KIND", width: 5, priority: 3),
                                 Column("count", "COUNT", width: 9, priority: 8),
                                 Column("bar", "USAGE", width: 12, grow: 8, priority: 4),
                                 Column("reset", "RETRY-AFTER / RESET", width: 22, grow: 10_000, priority: 7)], width: g.width)
        let sortCol: String = { switch s.rateLimits.sort { case .state: return "state"; case .count: return "count"; case .ttl: return "reset"; case .identifier: return "id"; case .kind: return "kind" } }()
        T.header(&g, y: s.bodyTop, sortedBy: sortCol)
        let L = layout(s)
        if r.visible.isEmpty {
            g.put(2, L.listTop + 1, r.filter.isEmpty ? "no rate-limit counters under \(Escaper.string(s.session.prefix))\(s.schema.rateLimitPattern)" : "no counter matches the filter", .dim)
        }
        for i in 0..<L.listHeight {
            let idx = r.scrollTop + i
            guard idx < r.visible.count else { break }
            let c = r.shown(idx)
            let y = L.listTop + i
            let (label, role): (String, Role) = {
                if c.isBroken { return ("BROKEN", c.isBlocked ? .error : .warning) }
                switch c.state {
                case .blocked: return ("BLOCKED", .error)
                case .near: return ("near", .warning)
                case .ok: return ("ok", .ok)
                case .unknown: return ("?", .dim)
                }
            }()
            T.put(&g, y: y, "state", label, role)
            T.put(&g, y: y, "id", runs: Escaper.runs(c.identifier, maxScalars: 80), .normal)
            T.put(&g, y: y, "kind", c.kind.rawValue, .dim)
            T.put(&g, y: y, "count", c.count.map { "\($0)/\(c.limit)" } ?? "not a number", .normal)
            if let b = T.slot("bar"), let n = c.count, b.w >= 8 {
                let barW = b.w - 6
                let frac = min(1.0, Double(n) / Double(max(1, c.limit)))
                let full = Int((frac * Double(barW)).rounded())
                g.put(b.x, y, String(repeating: "█", count: full), c.isBlocked ? .barFull : (c.state == .near ? .warning : .ok))
                g.put(b.x + full, y, String(repeating: "░", count: barW - full), .barEmpty)
                g.put(b.x + barW + 1, y, padLeft("\(Int((Double(n) / Double(max(1, c.limit)) * 100).rounded()))%", 5), .normal)
            }
            var reset = ttlText(c, now: s.now)
            if c.blocksForever { reset += " — blocked forever" }
            else if c.isBroken { reset += " — never resets" }
            else if c.isBlocked { reset = "Retry-After " + reset.replacingOccurrences(of: "resets in ", with: "") }
            if c.ttlAboveWindow { reset += " — longer than the window" }
            T.put(&g, y: y, "reset", reset, c.isBroken || c.ttlAboveWindow ? .warning : .normal)
            if idx == r.cursor { g.select(y: y) }
        }
        if s.rateLimits.detailOpen { detail(&g, s, L) }
    }

    static func detail(_ g: inout CellGrid, _ s: AppState, _ L: SplitLayout) {
        guard L.paneHeight > 0, let c = s.rateLimits.board.selected else { return }
        let key = c.key
        var y = L.paneTop
        g.fill(y: y, role: .columnHeader)
        g.put(0, y, " " + Escaper.string(c.key), .columnHeader)
        y += 1
        let lines: [(String, Role)] = [
            ("count \(c.count.map(String.init) ?? "?") of \(c.limit) per \(c.window) s · \(ttlText(c, now: s.now))", .normal),
            (explain(c), c.isBroken ? .warning : (c.isBlocked ? .error : .normal)),
        ]
        for (t, role) in lines where y < L.paneTop + L.paneHeight { g.put(1, y, t, role); y += 1 }
        let h = s.rateLimits.history[key] ?? []
        if y < L.paneTop + L.paneHeight {
            let x = g.put(1, y, "count while on screen: ", .dim)
            g.put(x, y, h.count < 2 ? "sampling…" : sparkline(h.map(Double.init), width: max(0, g.width - 40), min: 0) + "  (\(h.first!) → \(h.last!))", .info)
        }
    }

    static func explain(_ c: RateLimitCounter) -> String {
        if c.blocksForever { return "Broken (no TTL) and over the limit: the window never ends, so this client is blocked forever. Reset it (r)." }
        if c.isBroken { return "Broken (no TTL): the window never ends, so once over the limit this client will be blocked forever. Reset it (r)." }
        if c.ttlAboveWindow { return "The TTL is longer than the \(c.window) s window: the client waits longer than the application intends." }
        if c.isBlocked { return "Blocked: every request gets 429 until the window ends (the TTL is the Retry-After)." }
        if c.state == .near { return "Near the limit (≥ 80 %)." }
        return "Under the limit."
    }
}

/// "resets in 41s", counted down locally from the PTTL read with the counter.
public func ttlText(_ c: RateLimitCounter, now: Double) -> String {
    switch c.ttl {
    case .persistent?: return "no TTL"
    case .expiresIn(let ms)?:
        let left = ms - elapsedMs(since: c.readAt, now: now)
        return left <= 0 ? "window over" : "resets in " + formatDuration(left)
    default: return "TTL ?"
    }
}
