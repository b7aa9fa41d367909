import Foundation
import RedisProtocol
import OpsCore

/// The Activity view (`6`): what is happening to the keys, per namespace, from keyspace
/// notifications counted as they arrive (OpsCore `KeyspaceActivity`). Its cost per tick
/// follows the namespaces on screen: one copy of the counts a second.
enum ActivityModule: ViewModule {
    static let id = ViewID.activity

    static func entered(_ s: inout AppState) -> [Effect] {
        s.activity.running ? [] : [.startActivity]
    }

    /// Reads go on while other views are shown, so the rates over 1 and 5 minutes are there
    /// on coming back (a copy of the counts a second; nothing else).
    static func tick(_ s: inout AppState) -> [Effect] { [] }
    static func globalTick(_ s: AppState) -> [Effect] { s.activity.running ? [.readActivity] : [] }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        switch ev {
        case .activityNotify(let value, let error):
            if let v = value {
                s.activity.notify = KeyspaceNotifications.missing(v).isEmpty ? .on(v) : .off(v)
            } else {
                s.activity.notify = .unreadable(error ?? "CONFIG GET not permitted")
            }
            if case .off = s.activity.notify { return [] }
            // Counting starts from zero now: the first reading is measured from here, not from
            // whatever the first tick found (a burst before it would read as no rate at all).
            if !s.activity.running, s.activity.history.latest == nil {
                s.activity.history.add(ActivitySnapshot(at: s.now, totals: [:], events: 0))
            }
            s.activity.running = true
        case .activity(let snap):
            s.activity.history.add(snap)
            for n in snap.notices { Reducer.flash(&s, n, .warning, .view(.activity)) }
            // An invalidation is watched for a refill for a minute.
            s.activity.invalidated = s.activity.invalidated.filter { snap.at - $0.value < 60 }
        default: break
        }
        return []
    }

    static func perform(_ a: Action, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        let n = rows(s).count
        switch a {
        case .up: s.activity.cursor = max(0, s.activity.cursor - 1)
        case .down: s.activity.cursor = min(max(0, n - 1), s.activity.cursor + 1)
        case .top: s.activity.cursor = 0
        case .bottom: s.activity.cursor = max(0, n - 1)
        case .rescan: return [.startActivity]
        default: break
        }
        return []
    }
    static func filterText(_ s: AppState) -> String { "" }
    static func filterTyped(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] { [] }
    static func filterCommitted(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] { [] }
    static func sync(_ s: inout AppState, tail: ChannelTail) {}

    /// `:notify on|off`: CONFIG SET after a confirmation, audited; on is put back on exit.
    static func notify(_ on: Bool, _ s: inout AppState) -> [Effect] {
        if s.session.readOnly {
            Reducer.flash(&s, "read-only mode: changing notify-keyspace-events is refused", .error)
            return []
        }
        let p = KeyspaceNotifications.parameter
        switch s.activity.notify {
        case .unknown:
            Reducer.flash(&s, "reading \(p) first: open the Activity view (6), then :notify again", .info)
            return s.activity.running ? [] : [.startActivity]
        case .unreadable(let why):
            Reducer.flash(&s, "CONFIG is not permitted here (\(Escaper.string(Bytes(utf8: why)))): set \(p) to '\(KeyspaceNotifications.needed)' in the parameter group", .error)
            return []
        case .on(let current):
            guard !on else { Reducer.flash(&s, "keyspace notifications are already on ('\(Escaper.string(Bytes(utf8: current)))')", .info); return [] }
            let back = s.activity.restore ?? ""
            let req = WriteRequest(action: .config(parameter: p, value: back, previous: current))
            s.confirm = Confirmation(question: "Set \(p) back to '\(back)'? (CONFIG SET, audited; the Activity view stops counting)",
                                     subject: "\(p) '\(Escaper.string(Bytes(utf8: current)))' → '\(back)'",
                                     detail: s.activity.restore == nil ? "this console did not turn them on: other tools may rely on them" : "the value before :notify on",
                                     effect: .execute(id: 0, WritePlan(request: req, keys: [])))
        case .off(let current):
            guard on else { Reducer.flash(&s, "keyspace notifications are already off", .info); return [] }
            let want = KeyspaceNotifications.merged(current)
            let req = WriteRequest(action: .config(parameter: p, value: want, previous: current))
            s.confirm = Confirmation(question: "Turn keyspace notifications on? (CONFIG SET, audited; put back when the console exits)",
                                     subject: "\(p) '\(Escaper.string(Bytes(utf8: current)))' → '\(want)'",
                                     detail: "every node publishes an event per write, expiry and eviction: a small cost on the server",
                                     effect: .execute(id: 0, WritePlan(request: req, keys: [])))
        }
        return []
    }

    /// After `:notify on|off` was written: remember what to put back, and read again.
    static func configWritten(_ r: WriteReport, _ s: inout AppState) -> [Effect] {
        guard case .config(let p, let v, let previous) = r.action, p == KeyspaceNotifications.parameter, r.error == nil, r.unknown == 0 else { return [] }
        if KeyspaceNotifications.missing(v).isEmpty {
            if s.activity.restore == nil { s.activity.restore = previous ?? "" }
        } else {
            s.activity.restore = nil
        }
        return [.startActivity]
    }

    /// A pattern invalidation just ran: a burst of sets in its namespace within the next
    /// minute is a refill (the application reading through the emptied cache).
    static func invalidated(_ glob: String, _ s: inout AppState) {
        let first = glob.split(separator: ":", maxSplits: 1).first.map(String.init) ?? glob
        guard !first.contains(where: { "*?[".contains($0) }) else { return }
        s.activity.invalidated[Bytes(utf8: first)] = s.now
    }

    // MARK: rendering

    struct Row {
        var namespace: Bytes
        var rates: [Double]   // per KeyEvent, over 10 s
        var set1m: Double?
        var set5m: Double?
        var note: (String, Role)?
    }

    static func rows(_ s: AppState) -> [Row] {
        let h = s.activity.history
        guard let last = h.latest else { return [] }
        let lockNS = lockNamespace(s.schema)
        var out: [Row] = []
        for ns in last.totals.keys {
            let r = KeyEvent.allCases.map { h.rate(ns, $0, over: 10) ?? 0 }
            var row = Row(namespace: ns, rates: r, set1m: h.rate(ns, .set, over: 60), set5m: h.rate(ns, .set, over: 300))
            let kind = s.schema.kind(of: s.schema.prefix + ns + Bytes(utf8: ":x"))
            if r[KeyEvent.evicted.rawValue] > 0, kind == .cache || kind == .lock {
                row.note = ("evicted before TTL: maxmemory too small", .error)
            } else if r[KeyEvent.evicted.rawValue] > 0 {
                row.note = ("evictions", .warning)
            } else if let at = s.activity.invalidated[ns], r[KeyEvent.set.rawValue] > 0 {
                row.note = ("refill: invalidated \(formatDuration(Int64((last.at - at) * 1000))) ago", .warning)
            } else if ns == lockNS, let five = h.rate(ns, .set, over: 300), r[KeyEvent.set.rawValue] > 5, r[KeyEvent.set.rawValue] > 5 * max(five, 0.2) {
                row.note = ("stampede? locks \(String(format: "%.0f", r[KeyEvent.set.rawValue] / max(five, 0.2)))x the 5-min rate", .error)
            }
            out.append(row)
        }
        return out.sorted {
            let a = $0.rates.reduce(0, +), b = $1.rates.reduce(0, +)
            return a != b ? a > b : $0.namespace.lexicographicallyPrecedes($1.namespace)
        }
    }

    /// The namespace of the stampede locks (`lock` for `lock:workspace:*`).
    static func lockNamespace(_ schema: KeySchema) -> Bytes {
        Bytes(utf8: String(schema.lockPattern.split(separator: ":").first ?? "lock"))
    }

    static func rate(_ v: Double?) -> String {
        guard let v else { return "…" }
        if v == 0 { return "0" }
        return v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v)
    }

    static func render(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext) {
        var y = s.bodyTop - 1
        let p = KeyspaceNotifications.parameter
        switch s.activity.notify {
        case .unknown:
            g.put(0, y, "reading \(p)…", .dim)
            return
        case .off(let current):
            g.put(0, y, "Keyspace notifications are \(current.isEmpty ? "off" : "short of what this view needs") on this server: nothing to count.", .warning)
            y += 2
            let lines = [
                "\(p) is '\(Escaper.string(Bytes(utf8: current)))'; the view needs at least '\(KeyspaceNotifications.needed)' "
                    + "(E keyevent channels, g DEL/EXPIRE, $ SET, x expired, e evicted): set it to '\(KeyspaceNotifications.merged(current))'.",
                "ElastiCache: CONFIG is disabled there. Create a custom parameter group (or edit the one in use), set "
                    + "notify-keyspace-events = \(KeyspaceNotifications.merged(current)), and modify the cluster to use it; no restart is needed.",
                "Elsewhere: :notify on sets it after asking (CONFIG SET, audited) and puts '\(Escaper.string(Bytes(utf8: current)))' back when the console exits.",
                "This view never changes the setting on its own.",
            ]
            for l in lines {
                for w in wrapWords(l, width: max(20, g.width - 2)) where y < g.height - 2 { g.put(1, y, w, .normal); y += 1 }
                y += 1
            }
            return
        case .unreadable(let why):
            g.put(0, y, "\(p) cannot be read (\(Escaper.string(Bytes(utf8: why)))): counting what arrives; if nothing does, set it to '\(KeyspaceNotifications.needed)' in the parameter group", .warning, maxX: g.width)
        case .on(let v):
            let h = s.activity.history
            let events = h.latest?.events ?? 0
            var parts = ["keyspace events (\(p) '\(Escaper.string(Bytes(utf8: v)))')", "\(grouped(events)) counted"]
            if let locks = h.rate(lockNamespace(s.schema), .set, over: 10) { parts.append("locks acquired \(rate(locks))/s") }
            if s.activity.restore != nil { parts.append("on by :notify: put back on exit") }
            g.put(0, y, parts.joined(separator: " · "), .normal, maxX: g.width)
        }
        y += 1
        let list = rows(s)
        let T = TableLayout.fit([Column("ns", "NAMESPACE", width: 14, grow: 4, priority: 10),
                       Column("set", "SET/s", width: 7, priority: 10, alignRight: true),
                       Column("set1m", "1 MIN", width: 6, priority: 5, alignRight: true),
                       Column("set5m", "5 MIN", width: 6, priority: 4, alignRight: true),
                       Column("expired", "EXPIRED/s", width: 9, priority: 9, alignRight: true),
                       Column("evicted", "EVICTED/s", width: 9, priority: 9, alignRight: true),
                       Column("del", "DEL/s", width: 7, priority: 8, alignRight: true),
                       Column("expire", "EXPIRE/s", width: 8, priority: 7, alignRight: true),
                       Column("trend", "SETS, 60 s", width: 12, priority: 3),
                       Column("note", "NOTE", width: 20, grow: 10_000, priority: 6)], width: g.width)
        T.header(&g, y: y)
        y += 1
        if list.isEmpty {
            g.put(1, y, s.activity.history.snapshots.count < 2 ? "counting… (rates after the first seconds)" : "no keyspace events yet", .dim)
            return
        }
        let bottom = g.height - 2
        let top = max(0, min(s.activity.cursor - (bottom - y) + 1, list.count - 1))
        for (i, r) in list.enumerated().dropFirst(top) where y < bottom {
            let sel = i == s.activity.cursor
            if let c = T.slot("ns") { g.put(c.x, y, runs: Escaper.runs(r.namespace, maxScalars: 60), .normal, maxX: c.x + c.w) }
            T.put(&g, y: y, "set", rate(r.rates[KeyEvent.set.rawValue]), .normal)
            T.put(&g, y: y, "set1m", rate(r.set1m), .dim)
            T.put(&g, y: y, "set5m", rate(r.set5m), .dim)
            T.put(&g, y: y, "expired", rate(r.rates[KeyEvent.expired.rawValue]), .normal)
            T.put(&g, y: y, "evicted", rate(r.rates[KeyEvent.evicted.rawValue]), r.rates[KeyEvent.evicted.rawValue] > 0 ? .error : .normal)
            T.put(&g, y: y, "del", rate(r.rates[KeyEvent.del.rawValue]), .normal)
            T.put(&g, y: y, "expire", rate(r.rates[KeyEvent.expire.rawValue]), .normal)
            if let c = T.slot("trend") {
                let t = s.activity.history.trend(r.namespace, .set, seconds: 60)
                if t.count >= 2 { g.put(c.x, y, sparkline(t, width: min(c.w, t.count), min: 0, max: nil), .info, maxX: c.x + c.w) }
            }
            if let n = r.note { T.put(&g, y: y, "note", n.0, n.1) }
            if sel { g.select(y: y) }
            y += 1
        }
    }
}
