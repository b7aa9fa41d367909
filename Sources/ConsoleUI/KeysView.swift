import Foundation
import RedisProtocol
import OpsCore

extension KeysState {
    var rows: [KeyInfo] { snapshot?.window.rows ?? [] }
    /// Rows shown: the window, or the part of it matching what is being typed.
    public var visibleCount: Int { preview?.count ?? rows.count }
    public func visible(_ i: Int) -> KeyInfo { rows[preview?[i] ?? i] }
    var selectedRow: KeyInfo? { visibleCount > 0 && cursor < visibleCount ? visible(cursor) : nil }
}

enum KeysModule: ViewModule {
    /// How long a scan took: milliseconds under a second (a small scan is not "0.0 s").
    static func took(_ seconds: Double) -> String {
        seconds < 1 ? "\(max(1, Int((seconds * 1000).rounded()))) ms" : String(format: "%.1f s", seconds)
    }

    static let id = ViewID.keys
    /// Rows on screen are read again this often.
    static let refreshEvery = 2.0

    static func layout(_ s: AppState) -> SplitLayout {
        SplitLayout.make(top: s.bodyTop, height: s.bodyHeight, pane: s.keys.pane != .none, paneShare: 0.6, minPane: 4)
    }

    static func scan(_ s: inout AppState) -> [Effect] {
        s.keys.generation += 1
        s.keys.scanning = true
        s.keys.error = nil
        return [.scanKeys(generation: s.keys.generation, filter: s.keys.filter, sort: s.keys.sort)]
    }

    static func entered(_ s: inout AppState) -> [Effect] {
        if s.keys.snapshot == nil && !s.keys.scanning { return scan(&s) }
        return tick(&s)
    }

    static func tick(_ s: inout AppState) -> [Effect] {
        guard let snap = s.keys.snapshot else { return s.keys.scanning ? [] : scan(&s) }
        var out: [Effect] = []
        // A complete scan is repeated at a pace its cost allows; the rows on screen more often.
        if !s.keys.scanning, snap.done, let fin = snap.finishedAt,
           s.now - fin >= KeyBrowser.rescanInterval(commands: snap.stats.commands) {
            out += scan(&s)
        }
        if s.now - s.keys.lastRefresh >= refreshEvery, !onScreen(s).isEmpty {
            s.keys.lastRefresh = s.now
            out.append(.refreshKeys(onScreen(s)))
        }
        return out
    }

    /// Keys on screen (and the one inspected).
    static func onScreen(_ s: AppState) -> [Bytes] {
        let h = layout(s).listHeight
        var keys: [Bytes] = []
        var i = s.keys.scrollTop
        while i < s.keys.visibleCount && i < s.keys.scrollTop + h { keys.append(s.keys.visible(i).key); i += 1 }
        if let k = s.keys.inspector?.key, !keys.contains(k) { keys.append(k) }
        return keys
    }

    static func sync(_ s: inout AppState, tail: ChannelTail) {
        let n = s.keys.visibleCount
        if n == 0 { s.keys.cursor = 0; s.keys.scrollTop = 0; s.keys.selectedKey = nil; return }
        s.keys.cursor = max(0, min(s.keys.cursor, n - 1))
        s.keys.selectedKey = s.keys.visible(s.keys.cursor).key
        // Past the last row of a window over a bigger set, a line says how many more there are:
        // it scrolls into view with the last row.
        let hint = s.keys.preview == nil && (s.keys.snapshot?.window.hidden ?? 0) > 0
        let keep = hint && s.keys.cursor == n - 1 ? n : s.keys.cursor
        s.keys.scrollTop = ListNav.window(s.keys.scrollTop, keeping: keep, height: layout(s).listHeight, count: n + (hint ? 1 : 0))
    }

    /// After the rows changed: the cursor goes back to the selected key if it is still shown.
    /// After a new filter it is on the first match (the rows arrive in pages: the first row
    /// may change), or on the key selected before the filter once that one is among them.
    static func reselect(_ s: inout AppState) {
        // An exact match for the name typed comes first and is the key meant.
        if s.keys.followFirst, s.keys.visibleCount > 0, let ex = KeyFilter(s.keys.filter, schema: s.schema).exactCandidate, KeyWindow.names(s.keys.visible(0).key, exactly: ex) {
            s.keys.cursor = 0
            s.keys.selectedKey = s.keys.visible(0).key
            s.keys.preferredKey = nil
            return
        }
        if let p = s.keys.preferredKey, let i = (0..<s.keys.visibleCount).first(where: { s.keys.visible($0).key == p }) {
            s.keys.cursor = i
            s.keys.selectedKey = p
            s.keys.preferredKey = nil
            s.keys.followFirst = false
            return
        }
        if s.keys.followFirst {
            s.keys.cursor = 0
            s.keys.selectedKey = s.keys.visibleCount > 0 ? s.keys.visible(0).key : nil
            return
        }
        guard let k = s.keys.selectedKey else { return }
        if s.keys.cursor < s.keys.visibleCount, s.keys.visible(s.keys.cursor).key == k { return }
        for i in 0..<s.keys.visibleCount where s.keys.visible(i).key == k { s.keys.cursor = i; return }
    }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        switch ev {
        case .keysSnapshot(let gen, let snap):
            guard gen == s.keys.generation else { return [] }
            s.keys.snapshot = snap
            s.keys.scanning = !snap.done
            s.keys.error = nil
            // The narrowing shown while typing indexes the old rows: computed again for the
            // new ones (and for a state filter, which the server cannot do).
            if let p = s.prompt, p.purpose == .filter { narrow(p.text, &s) } else { narrow(nil, &s) }
            reselect(&s)
            s.keys.lastRefresh = s.now
            for n in snap.notices.suffix(1) where snap.done { Reducer.flash(&s, n, .warning, .view(.keys)) }
        case .keysFailed(let gen, let why):
            guard gen == s.keys.generation else { return [] }
            s.keys.scanning = false
            s.keys.error = why
        case .keysRefreshed(let fresh):
            s.keys.refreshError = nil
            s.keys.snapshot?.window.update(fresh)
            if var ins = s.keys.inspector, let f = fresh.first(where: { $0.key == ins.key }), var v = ins.value {
                v.ttl = f.ttl; v.readAt = f.readAt
                if f.isGone { v.note = "the key is gone (deleted or expired)" }
                ins.value = v
                s.keys.inspector = ins
            }
        case .keysRefreshFailed(let why):
            s.keys.refreshError = why
        case .inspected(let v, let appended):
            guard var ins = s.keys.inspector, ins.key == v.key else { return [] }
            if appended, var old = ins.value {
                old.items += v.items
                old.next = v.next
                old.ttl = v.ttl; old.readAt = v.readAt; old.length = v.length
                ins.value = old
            } else {
                ins.value = v
                ins.scroll = 0
            }
            ins.loading = false
            ins.error = nil
            s.keys.inspector = ins
        case .inspectFailed(let key, let why):
            if s.keys.inspector?.key == key { s.keys.inspector?.loading = false; s.keys.inspector?.error = why }
        default: break
        }
        sync(&s, tail: ChannelTail(capacity: 1))
        return []
    }

    static func inspect(_ key: Bytes, _ s: inout AppState) -> [Effect] {
        s.keys.pane = .inspector
        s.keys.inspector = InspectorState(key: key)
        return [.inspect(key, cursor: nil)]
    }

    static func perform(_ a: Action, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        let L = layout(s)
        if ListNav.isMove(a) {
            // With a pane open, PgUp/PgDn scroll the pane; the arrows still move the selection.
            if s.keys.pane != .none, a == .pageUp || a == .pageDown {
                let step = max(1, L.paneHeight - 2) * (a == .pageDown ? 1 : -1)
                if s.keys.pane == .inspector, var ins = s.keys.inspector {
                    ins.scroll = max(0, ins.scroll + step)
                    s.keys.inspector = ins
                    // Scrolling past what is loaded loads the next page.
                    if a == .pageDown, let v = ins.value, let next = v.next, ins.scroll + L.paneHeight >= inspectorLines(v, s, width: s.width).count, !ins.loading {
                        s.keys.inspector?.loading = true
                        return [.inspect(v.key, cursor: next)]
                    }
                }
                return []
            }
            let n = s.keys.visibleCount
            guard n > 0 else { return [] }
            s.keys.followFirst = false
            s.keys.preferredKey = nil
            s.keys.cursor = ListNav.step(a, from: s.keys.cursor, count: n, page: max(1, L.listHeight - 1))
            sync(&s, tail: tail)
            // The inspector follows the selection.
            if s.keys.pane == .inspector, let k = s.keys.selectedKey, s.keys.inspector?.key != k { return inspect(k, &s) }
            return []
        }
        switch a {
        case .back:
            if s.keys.pane != .none { s.keys.pane = .none; s.keys.inspector = nil }
            else if !s.keys.filter.isEmpty { return filterCommitted("", &s, tail: tail) }
        case .details:
            guard let r = s.keys.selectedRow else { return [] }
            if s.keys.pane == .inspector, s.keys.inspector?.key == r.key { s.keys.pane = .none; s.keys.inspector = nil; return [] }
            return inspect(r.key, &s)
        case .nextPage:
            guard let ins = s.keys.inspector, let v = ins.value, let next = v.next, !ins.loading else { return [] }
            s.keys.inspector?.loading = true
            return [.inspect(v.key, cursor: next)]
        case .sort:
            let all = KeySort.allCases
            s.keys.sort = all[(all.firstIndex(of: s.keys.sort)! + 1) % all.count]
            // The loaded rows are sorted at once; the scan then finds the first rows in the new order among every key.
            if var snap = s.keys.snapshot {
                snap.window = snap.window.resorted(s.keys.sort)
                snap.sort = s.keys.sort
                s.keys.snapshot = snap
            }
            s.keys.preview = nil
            reselect(&s)
            sync(&s, tail: tail)
            Reducer.flash(&s, "sorted by \(s.keys.sort.rawValue)", .info)
            return scan(&s)
        case .namespaces:
            s.keys.pane = s.keys.pane == .namespaces ? .none : .namespaces
            s.keys.inspector = nil
        case .nextMatch, .previousMatch:
            let n = s.keys.visibleCount
            guard n > 0 else { return [] }
            let keys = s.keys, cur = s.keys.cursor, dir = a == .nextMatch ? 1 : -1
            guard let i = (1...n).lazy.map({ ((cur + dir * $0) % n + n) % n }).first(where: { keys.visible($0).issue != nil }) else {
                Reducer.flash(&s, "no key shown breaks the conventions", .info)
                return []
            }
            s.keys.cursor = i
            s.keys.followFirst = false
            s.keys.preferredKey = nil
            sync(&s, tail: tail)
            if s.keys.pane == .inspector, let k = s.keys.selectedKey, s.keys.inspector?.key != k { return inspect(k, &s) }
            return []
        case .cycleState:
            let f = BoardFilter(s.keys.filter)
            return filterCommitted(f.withState(f.state == "flagged" ? nil : "flagged"), &s, tail: tail)
        case .rescan:
            return scan(&s)
        case .delete:
            if s.session.readOnly { Reducer.flash(&s, "read-only mode: deleting is refused (start without --read-only to allow it)", .error); return [] }
            guard let t = target(s) else { Reducer.flash(&s, "no key selected", .info); return [] }
            s.confirm = deleteConfirmation(t, s)
        case .invalidate:
            if s.session.readOnly { Reducer.flash(&s, "read-only mode: invalidation is refused (start without --read-only to allow it)", .error); return [] }
            s.prompt = Prompt(purpose: .writePattern(.invalidate), text: suggestedGlob(s))
        case .expire:
            if s.session.readOnly { Reducer.flash(&s, "read-only mode: setting TTLs is refused (start without --read-only to allow it)", .error); return [] }
            if let t = target(s), t.ttl == .persistent, t.kind == .cache {
                let req = WriteRequest(action: .expire(ttl: s.schema.cacheTTL, onlyWithoutTTL: true), keys: [t.key])
                s.confirm = Confirmation(question: "Give this key the cache TTL (\(s.schema.cacheTTL) s)? It has none. (audited)", subject: Escaper.string(t.key),
                                         detail: describe(t, s), effect: .execute(id: 0, WritePlan(request: req, keys: [t.key])))
            } else {
                s.prompt = Prompt(purpose: .writePattern(.expire), text: suggestedGlob(s, fallback: s.schema.cachePattern))
            }
        default:
            break
        }
        sync(&s, tail: tail)
        return []
    }

    /// The question before deleting one key (the `d` key and `:del KEY` ask the same).
    static func deleteConfirmation(_ t: KeyInfo, _ s: AppState) -> Confirmation {
        Confirmation(question: "Delete this key? (UNLINK, audited)", subject: Escaper.string(t.key), detail: describe(t, s),
                     effect: .execute(id: 0, WritePlan(request: WriteRequest(action: .delete, keys: [t.key]), keys: [t.key])))
    }

    /// The key the operator is looking at: the one in the inspector when it is open (it may
    /// have been opened with `:`, and differ from the row selected), else the selected row.
    static func target(_ s: AppState) -> KeyInfo? {
        if s.keys.pane == .inspector, let ins = s.keys.inspector {
            if let v = ins.value {
                return KeyInfo(key: ins.key, type: v.type, ttl: v.ttl, bytes: v.bytes, kind: s.schema.kind(of: ins.key), readAt: v.readAt)
            }
            if let row = s.keys.rows.first(where: { $0.key == ins.key }) { return row }
            return KeyInfo(key: ins.key, type: nil, ttl: nil, bytes: nil, kind: s.schema.kind(of: ins.key), readAt: s.now)
        }
        return s.keys.selectedRow
    }

    /// "string · 93 B · TTL 4m56s": what to know before deleting.
    static func describe(_ r: KeyInfo, _ s: AppState) -> String {
        "\(r.type ?? "type ?") · \(r.bytes.map(formatBytes) ?? "size ?") · TTL \(formatTTL(r.ttl, elapsedMs: elapsedMs(since: r.readAt, now: s.now)))"
    }

    /// The glob a pattern write starts from: the current filter when it is one.
    static func suggestedGlob(_ s: AppState, fallback: String = "") -> String {
        let f = KeyFilter(s.keys.filter, schema: s.schema)
        switch f.kind {
        case .glob, .startsWith:
            let rel = s.schema.relative(Bytes(utf8: s.keys.filter)) ?? Bytes(utf8: s.keys.filter)
            return rel.lossyString + (f.kind == .startsWith ? "*" : "")
        default:
            return fallback
        }
    }

    static func filterText(_ s: AppState) -> String { s.keys.filter }

    /// The rows shown out of the window: those matching what is being typed (`typing`, the
    /// prompt's text; the server is asked on Enter), and only the flagged ones under
    /// `state:flagged` (the server cannot judge conventions: the window is read).
    static func narrow(_ typing: String?, _ s: inout AppState) {
        let f = KeyFilter(typing ?? s.keys.filter, schema: s.schema)
        let flaggedOnly = f.states.contains("flagged")
        // While typing, and after Enter until the server's rows for the new filter arrive,
        // the rows loaded are narrowed to those that match.
        let stale = s.keys.snapshot.map { KeyFilter($0.filter, schema: s.schema).match != f.match } ?? false
        let byName = (typing != nil || stale) && !f.isEmpty
        guard byName || flaggedOnly else { s.keys.preview = nil; return }
        let rows = s.keys.rows
        s.keys.preview = rows.indices.filter { (!byName || f.matches(rows[$0].key)) && (!flaggedOnly || rows[$0].issue != nil) }
    }

    /// Typing narrows the rows loaded at once; Enter asks the server for every match.
    static func filterTyped(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        narrow(text, &s)
        s.keys.cursor = 0
        sync(&s, tail: tail)
        return []
    }

    static func filterCommitted(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        let before = KeyFilter(s.keys.filter, schema: s.schema)
        let f = KeyFilter(text, schema: s.schema)
        for st in f.states where st != "flagged" {
            Reducer.flash(&s, "Keys knows one state: state:flagged (the keys that break the conventions); “\(st)” is ignored", .warning)
        }
        // Only what the server matches needs a new scan; a state word filters the rows read.
        let changed = f.match != before.match || f.exactCandidate != before.exactCandidate
        s.keys.filter = text
        narrow(nil, &s)
        s.keys.cursor = 0
        // The first match is selected (or the key selected before, if it matches too) — never
        // a row that happened to be at the old cursor's position.
        s.keys.preferredKey = s.keys.keyBeforeFilter.flatMap { f.matches($0) ? $0 : nil }
        s.keys.keyBeforeFilter = nil
        s.keys.followFirst = true
        s.keys.selectedKey = nil
        reselect(&s)
        sync(&s, tail: tail)
        return changed || s.keys.snapshot == nil ? scan(&s) : []
    }

    // MARK: rendering

    /// `keyWidth`: the widest key name on screen, so on a narrow terminal the lesser columns
    /// (KIND, TYPE, SIZE; what breaks the conventions stays) give way before the names are cut.
    static func columns(keyWidth: Int = 16) -> [Column] {
        [Column("key", "KEY", width: min(44, max(16, keyWidth)), grow: 10_000, priority: 10),
         Column("type", "TYPE", width: 6, priority: 6),
         Column("ttl", "TTL", width: 8, priority: 9, alignRight: true),
         Column("size", "SIZE", width: 8, priority: 7, alignRight: true),
         Column("kind", "KIND", width: 11, priority: 3),
         Column("note", "CONVENTIONS", width: 18, priority: 8)]
    }

    static func statusParts(_ s: AppState) -> [(String, Role)] {
        let k = s.keys
        guard let snap = k.snapshot else {
            return [(k.error.map { "scan failed: \(Escaper.string($0))" } ?? "scanning \(Escaper.string(s.session.prefix))* (SCAN, never KEYS)…", k.error == nil ? .dim : .error)]
        }
        var parts: [(String, Role)] = []
        let w = snap.window
        if let e = k.error { parts.append(("scan failed: \(Escaper.string(e))", .error)) }
        if k.scanning || !snap.done {
            let total = snap.dbsize.map { " · \(grouped(snap.stats.returned)) of ~\(grouped($0)) in the database" } ?? ""
            parts.append(("scanning… \(grouped(w.matched)) keys match\(total)", .info))
        } else {
            parts.append(("\(grouped(w.matched)) key\(w.matched == 1 ? " matches" : "s match")", .title))
        }
        if w.hidden > 0 {
            parts.append(("showing the first \(grouped(w.rows.count))\(snap.sort == .flagged ? ", flagged first" : " by \(snap.sort.rawValue)"): narrow with / (the server is searched)", .warning))
        }
        if let p = k.preview, s.prompt?.purpose == .filter {
            parts.append(("\(p.count) of the loaded rows match · Enter searches the server", .info))
        } else if !k.filter.isEmpty {
            let f = KeyFilter(k.filter, schema: s.schema)
            var t = f.explanation(prefix: s.schema.prefix) { Escaper.string($0) }
            if f.states.contains("flagged") {
                let shown = k.preview?.count ?? 0
                t += (t.isEmpty ? "" : ", ") + "only keys that break the conventions: \(grouped(shown))"
                if w.breakers > shown { t += " of \(grouped(w.breakers)) (the rest are beyond the window)" }
            }
            parts.insert((FilterText.status(t, width: s.width), .info), at: min(1, parts.count))
        }
        if w.breakers > 0 { parts.append(("\(grouped(w.breakers)) break the conventions", .warning)) }
        if let fin = snap.finishedAt { parts.append(("scanned \(ago(s.now - fin)) in \(Self.took(fin - snap.startedAt))", .dim)) }
        if let e = k.refreshError {
            parts.append(("rows read \(ago(s.now - k.lastRefresh)): \(Escaper.string(e))", .error))
        }
        for wline in snap.warnings { parts.append((Escaper.string(wline), .warning)) }
        return parts
    }

    static func render(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext) {
        let k = s.keys
        StatusLine.draw(&g, y: s.bodyTop - 1, statusParts(s))
        let L = layout(s)
        var widest = 0
        for idx in k.scrollTop..<min(k.visibleCount, k.scrollTop + L.listHeight) {
            widest = max(widest, Escaper.runs(k.visible(idx).key, maxScalars: 64).reduce(0) { $0 + displayWidth($1.text) })
        }
        let T = TableLayout.fit(columns(keyWidth: widest), width: g.width)
        let sortColumn: String = { switch k.sort { case .flagged: return "note"; case .name: return "key"; case .type: return "type"; case .ttl: return "ttl"; case .size: return "size"; case .kind: return "kind" } }()
        T.header(&g, y: s.bodyTop, sortedBy: sortColumn)
        let n = k.visibleCount
        if n == 0, k.snapshot != nil {
            let text: String
            if k.scanning { text = k.filter.isEmpty ? "scanning…" : "searching the server for \(KeyFilter(k.filter, schema: s.schema).explanation(prefix: s.schema.prefix) { Escaper.string($0) })…" }
            else { text = k.filter.isEmpty && k.preview == nil ? "no keys under \(Escaper.string(s.session.prefix))" : "no key matches the filter" }
            g.put(2, L.listTop + 1, text, .dim)
        }
        for i in 0..<L.listHeight {
            let idx = k.scrollTop + i
            let y = L.listTop + i
            guard idx < n else {
                if idx == n, let snap = k.snapshot, snap.window.hidden > 0, k.preview == nil {
                    g.put(2, y, "… \(grouped(snap.window.hidden)) more keys match beyond this window — narrow with / (the server is searched)", .warning)
                }
                break
            }
            let r = k.visible(idx)
            if let c = T.slot("key") { g.put(c.x, y, runs: Escaper.runs(r.key, maxScalars: c.w * 2), r.isGone ? .dim : .normal, maxX: c.x + c.w) }
            T.put(&g, y: y, "type", r.isGone ? "gone" : (r.type ?? "?"), .dim)
            T.put(&g, y: y, "ttl", r.isGone ? "gone" : formatTTL(r.ttl, elapsedMs: elapsedMs(since: r.readAt, now: s.now)), r.isGone ? .dim : .normal)
            T.put(&g, y: y, "size", r.bytes.map(formatBytes) ?? "?", .normal)
            T.put(&g, y: y, "kind", r.kind.rawValue, .dim)
            if let issue = r.issue { T.put(&g, y: y, "note", issue.text, issue.isError ? .error : .warning) }
            if idx == k.cursor { g.select(y: y) }
        }
        switch k.pane {
        case .namespaces: namespaces(&g, s, L)
        case .inspector: inspector(&g, s, L)
        case .none: break
        }
    }

    static func namespaces(_ g: inout CellGrid, _ s: AppState, _ L: SplitLayout) {
        guard L.paneHeight > 0, let snap = s.keys.snapshot else { return }
        var y = L.paneTop
        let T = TableLayout.fit([Column("ns", " NAMESPACE (every key scanned)", width: 20, grow: 10_000, priority: 10),
                                 Column("keys", "KEYS", width: 10, priority: 9, alignRight: true),
                                 Column("mem", "MEMORY", width: 9, priority: 8, alignRight: true),
                                 Column("p50", "≈P50", width: 8, priority: 5, alignRight: true),
                                 Column("p99", "≈P99", width: 8, priority: 5, alignRight: true),
                                 Column("max", "MAX", width: 8, priority: 6, alignRight: true),
                                 Column("nottl", "NO TTL", width: 8, priority: 7, alignRight: true),
                                 Column("lt1m", "<1M", width: 7, priority: 4, alignRight: true),
                                 Column("lt5m", "<5M", width: 7, priority: 4, alignRight: true),
                                 Column("lt1h", "<1H", width: 7, priority: 4, alignRight: true),
                                 Column("ge1h", "≥1H", width: 7, priority: 4, alignRight: true),
                                 Column("note", "NOTE", width: 12, priority: 7)], width: g.width)
        T.header(&g, y: y)
        y += 1
        let sorted = snap.window.namespaces.sorted(by: { $0.bytes != $1.bytes ? $0.bytes > $1.bytes : $0.keys > $1.keys })
        for ns in sorted {
            if y >= L.paneTop + L.paneHeight - 1 { break }
            if let c = T.slot("ns") { g.put(c.x + 1, y, runs: Escaper.runs(ns.name, maxScalars: 80), .normal, maxX: c.x + c.w) }
            T.put(&g, y: y, "keys", grouped(ns.keys), .normal)
            T.put(&g, y: y, "mem", formatBytes(ns.bytes), .normal)
            T.put(&g, y: y, "p50", ns.approxPercentile(50).map(formatBytes) ?? "?", .dim)
            T.put(&g, y: y, "p99", ns.approxPercentile(99).map(formatBytes) ?? "?", .dim)
            T.put(&g, y: y, "max", ns.sized > 0 ? formatBytes(ns.maxBytes) : "?", .normal)
            T.put(&g, y: y, "nottl", grouped(ns.noTTL), ns.noTTL > 0 ? .warning : .normal)
            for (i, id) in ["lt1m", "lt5m", "lt1h", "ge1h"].enumerated() { T.put(&g, y: y, id, grouped(ns.ttl[i + 1]), .dim) }
            // Keys that should expire (cache entries, locks, counters) but do not: a leak.
            let seg = ns.name.last == UInt8(ascii: ":") ? ns.name : ns.name + Bytes(utf8: ":")
            let kind = s.schema.kind(of: ns.biggest.first?.key ?? (s.schema.prefix + seg + Bytes(utf8: "x")))
            if ns.noTTL > 0, kind != .other { T.put(&g, y: y, "note", "leak?", .error) }
            y += 1
        }
        if y < L.paneTop + L.paneHeight, let top = sorted.first, !top.biggest.isEmpty {
            let list = top.biggest.prefix(3).map { Escaper.string($0.key, maxScalars: 50) + " " + formatBytes($0.bytes) }.joined(separator: " · ")
            g.put(1, y, "biggest in \(Escaper.string(top.name.last == UInt8(ascii: ":") ? Array(top.name.dropLast()) : top.name)): \(list) — exact figures and the 20 biggest: redis-ops memory", .dim, maxX: g.width)
        }
    }

    /// How old a cached value is, next to its TTL: the value's own age from the field the
    /// application writes (`updatedAt` by default), how long ago it was cached (the
    /// convention's TTL minus the TTL left), and the TTL ("value 7h old · cached ~4s ago ·
    /// TTL 4m56s"). A value much older than the cache TTL (more than twice) is flagged: an
    /// entry re-read on every miss is never older than the TTL unless a write-through or an
    /// invalidation was missed, or the row really has not changed since.
    static func ageText(ttl: TTLState?, readAt: Double, kind: KeyKind, updatedAt: Double?, _ s: AppState) -> String {
        let (text, flag) = age(ttl: ttl, readAt: readAt, kind: kind, updatedAt: updatedAt, s)
        return text + (flag.map { " · ! " + $0 } ?? "")
    }

    /// The age line, and apart from it the flag (the inspector shows it as a line of its own,
    /// so a narrow title never cuts it).
    static func age(ttl: TTLState?, readAt: Double, kind: KeyKind, updatedAt: Double?, _ s: AppState) -> (String, String?) {
        var parts: [String] = []
        var flag: String?
        let elapsed = elapsedMs(since: readAt, now: s.now)
        if let u = updatedAt {
            let ageMs = Int64(((s.now - u) * 1000).rounded())
            if ageMs >= 0 {
                parts.append("value \(formatDuration(ageMs)) old")
                if kind == .cache, ageMs > 2 * s.schema.cacheTTL * 1000 {
                    flag = "older than the \(formatDuration(s.schema.cacheTTL * 1000)) TTL: missed invalidation?"
                }
            } else {
                parts.append("\(s.schema.updatedAtField) \(formatDuration(-ageMs)) in the future (clock skew?)")
            }
        }
        if kind == .cache, case .expiresIn(let ms)? = ttl {
            let left = ms - elapsed
            let age = s.schema.cacheTTL * 1000 - left
            if age >= 0 { parts.append("cached ~\(formatDuration(age)) ago") }
        }
        parts.append("TTL " + formatTTL(ttl, elapsedMs: elapsed))
        return (parts.joined(separator: " · "), flag)
    }

    static func inspectorLines(_ v: InspectedValue, _ s: AppState, width: Int) -> [[TextRun]] {
        var lines: [[TextRun]] = []
        if let n = v.note { lines.append([TextRun(n, role: .warning)]) }
        if let str = v.string {
            lines += EventsModule.detailLines(str, width: width)
            if v.stringTruncated { lines.append([TextRun("… showing the first \(formatBytes(Int64(str.count))) of \(formatBytes(v.length ?? 0)) (never fetched whole)", role: .dim)]) }
        }
        for (a, b) in v.items {
            var line = [TextRun(padRight(Escaper.string(a, maxScalars: 60), 24), role: .jsonKey)]
            if let b { line += [TextRun(" ")] + Escaper.runs(b, maxScalars: 400) }
            lines.append(line)
        }
        if v.next != nil { lines.append([TextRun("… more: n (or PgDn at the end) loads the next page", role: .dim)]) }
        return lines
    }

    static func inspector(_ g: inout CellGrid, _ s: AppState, _ L: SplitLayout) {
        guard L.paneHeight > 0, let ins = s.keys.inspector else { return }
        guard let v = ins.value else {
            g.fill(y: L.paneTop, role: .columnHeader)
            let text = ins.error.map { " cannot inspect \(Escaper.string(ins.key)): \(Escaper.string($0))" } ?? " loading \(Escaper.string(ins.key))…"
            g.put(0, L.paneTop, text, .columnHeader)
            return
        }
        var head = " " + Escaper.string(v.key, maxScalars: 200) + " · " + v.type
        if let e = v.encoding { head += " (\(e))" }
        if let n = v.length { head += " · " + (v.type == "string" ? formatBytes(n) : "\(n) \(v.type == "stream" ? "entries" : "elements")") }
        if let b = v.bytes { head += " · \(formatBytes(b)) in memory" }
        let (ageLine, flag) = age(ttl: v.ttl, readAt: v.readAt, kind: s.schema.kind(of: v.key),
                                  updatedAt: CacheAge.updatedAt(v.string, field: s.schema.updatedAtField), s)
        head += " · " + ageLine
        if ins.loading { head += " · loading…" }
        var lines = inspectorLines(v, s, width: g.width)
        if let f = flag { lines.insert([TextRun("! " + f, role: .warning)], at: 0) }
        TextPane.draw(&g, top: L.paneTop, height: L.paneHeight, title: head, lines: lines, scroll: ins.scroll)
    }
}
