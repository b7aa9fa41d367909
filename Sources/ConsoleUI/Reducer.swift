import Foundation
import RedisProtocol
import RedisClient
import OpsCore

/// Layout of the Events view body.
public struct EventsLayout: Equatable {
    public var listTop: Int
    public var listHeight: Int
    public var paneTop: Int
    public var paneHeight: Int
}

public func eventsLayout(_ s: AppState) -> EventsLayout {
    let top = s.bodyTop + 1          // one line of column headings
    let total = max(0, s.bodyHeight - 1)
    if s.events.detailOpen || s.events.showChannels {
        let pane = min(max(total / 2, 3), total)
        let list = max(0, total - pane)
        return EventsLayout(listTop: top, listHeight: list, paneTop: top + list, paneHeight: pane)
    }
    return EventsLayout(listTop: top, listHeight: total, paneTop: top + total, paneHeight: 0)
}

/// The console's reducer: state + event -> new state + effects. Pure: the tail is
/// read, never written; I/O happens in the effects the backend carries out.
public enum Reducer {
    public static func reduce(_ s: inout AppState, _ event: AppEvent, tail: ChannelTail) -> [Effect] {
        var effects: [Effect] = []
        switch event {
        case .key(let k):
            effects = key(&s, k, tail: tail)
        case .tick(let now):
            s.now = now
            if let f = s.flash, f.until <= now { s.flash = nil }
        case .resize(let w, let h):
            s.width = max(0, w); s.height = max(0, h)
        case .tailChanged:
            break
        case .subscriber(let n):
            notice(&s, n)
        case .serverInfo(let role):
            s.session.role = role
            s.session.command = .connected
        case .commandLink(let l):
            s.session.command = l
        case .wrote(let path, let count):
            flash(&s, "wrote \(count) message\(count == 1 ? "" : "s") to \(path)", .info)
        case .failed(let why):
            flash(&s, why, .error)
        case .rateLimits(let list, let full, let at):
            var r = s.rateLimits
            r.counters = list
            r.readAt = at
            if full { r.lastFullScan = at }
            r.loaded = true
            r.error = nil
            for c in list {
                guard let n = c.count else { continue }
                var h = r.history[c.key] ?? []
                h.append(n)
                if h.count > 120 { h.removeFirst(h.count - 120) }
                r.history[c.key] = h
            }
            s.rateLimits = r
        case .rateLimitsFailed(let why):
            s.rateLimits.error = why
            s.rateLimits.loaded = true
        case .serverSample(let sample):
            s.server.series.add(sample)
            s.server.error = sample.overview.infoError
        case .slowlog(let entries, let error):
            s.server.slowlog = entries ?? []
            s.server.slowlogError = error
        case .deleted(let key, let existed):
            let wasCounter = s.rateLimits.counters.contains { $0.key == key }
            s.rateLimits.counters.removeAll { $0.key == key }
            s.keys.rows.removeAll { $0.meta.key == key }
            s.locks.rows.removeAll { $0.key == key }
            if s.keys.inspector?.key == key { s.keys.inspector = nil }
            if wasCounter {
                flash(&s, existed ? "reset \(Escaper.string(key)): the client's next request starts a new window"
                                  : "\(Escaper.string(key)) was already gone (its window had ended)", .info)
            } else {
                flash(&s, existed ? "deleted \(Escaper.string(key)) (UNLINK)" : "\(Escaper.string(key)) was already gone", .info)
            }
        default:
            effects = keysEvent(&s, event)
        }
        sync(&s, tail: tail)
        syncRateLimits(&s)
        syncKeys(&s)
        return effects
    }

    /// Flash texts often carry server text (error replies): made visible here, once for all.
    static func flash(_ s: inout AppState, _ text: String, _ level: FlashLevel) {
        s.flash = Flash(text: Escaper.string(Bytes(utf8: text), escapeBackslash: false), level: level, until: s.now + (level == .error ? 10 : 5))
    }

    static func notice(_ s: inout AppState, _ n: SubscriberNotice) {
        switch n {
        case .connected:
            s.session.subscriber = .connected
        case .subscribed(let name, let p):
            if let i = s.subscriptions.firstIndex(where: { $0.name == name && $0.isPattern == p }) { s.subscriptions[i].active = true }
            else { s.subscriptions.append(Subscription(name: name, isPattern: p, active: true)) }
        case .unsubscribed(let name, let p):
            s.subscriptions.removeAll { $0.name == name && $0.isPattern == p }
        case .disconnected(let reason, let retry):
            s.session.subscriber = .reconnecting(reason)
            for i in s.subscriptions.indices { s.subscriptions[i].active = false }
            flash(&s, "subscriber disconnected: \(Escaper.string(reason)) — retrying in \(String(format: "%.1f", retry)) s", .warning)
        case .gap(let from, let to):
            flash(&s, "reconnected after \(String(format: "%.1f", to - from)) s: messages published meanwhile were lost (marked in the list)", .warning)
        case .refused(let name, let p, let reason):
            if let name { s.subscriptions.removeAll { $0.name == name && $0.isPattern == p } }
            flash(&s, "\(p ? "PSUBSCRIBE" : "SUBSCRIBE") \(name.map { Escaper.string($0) } ?? "") refused: \(Escaper.string(reason))", .error)
        case .fatal(let reason):
            s.session.subscriber = .failed(reason)
            flash(&s, "subscriber stopped: \(Escaper.string(reason))", .error)
        }
    }

    // MARK: keys

    static func key(_ s: inout AppState, _ k: Key, tail: ChannelTail) -> [Effect] {
        if s.helpOpen {
            s.helpOpen = false
            if k == .char("q") { s.quitting = true; return [.quit] }
            return []
        }
        if s.invalidation != nil { return invalidationKey(&s, k) }
        if let c = s.confirm {
            s.confirm = nil
            if k == .char("y") || k == .char("Y") { return [c.effect] }
            flash(&s, "cancelled — nothing was changed", .info)
            return []
        }
        if s.prompt != nil { return promptKey(&s, k, tail: tail) }
        if k == .ctrl("c") { s.quitting = true; return [.quit] }
        guard let action = Bindings.action(for: k, in: s.view) else { return [] }
        return perform(&s, action, tail: tail)
    }

    static func perform(_ s: inout AppState, _ a: Action, tail: ChannelTail) -> [Effect] {
        switch a {
        case .quit: s.quitting = true; return [.quit]
        case .help: s.helpOpen = true
        case .show(let v): s.view = v; return enteredView(&s)
        case .nextView: s.view = ViewID(rawValue: s.view.rawValue % ViewID.allCases.count + 1)!; return enteredView(&s)
        case .previousView: s.view = ViewID(rawValue: (s.view.rawValue + ViewID.allCases.count - 2) % ViewID.allCases.count + 1)!; return enteredView(&s)
        case .up, .down, .pageUp, .pageDown, .top, .bottom:
            if s.view == .events { move(&s, a) }
            if s.view == .rateLimits { moveRateLimits(&s, a) }
            if s.view == .keys { moveKeys(&s, a) }
            if s.view == .locks { moveLocks(&s, a) }
        case .filter:
            s.prompt = Prompt(purpose: .filter, text: s.view == .rateLimits ? s.rateLimits.filter : (s.view == .keys ? s.keys.filter : s.events.filter.text))
        case .delete, .invalidate, .sort, .summary, .nextPage, .refresh:
            return keysAction(&s, a)
        case .clearFilter where s.view == .keys:
            if s.keys.inspector != nil { s.keys.inspector = nil } else if s.keys.showSummary { s.keys.showSummary = false } else { s.keys.filter = "" }
        case .details where s.view == .keys:
            return keysAction(&s, a)
        case .clearFilter:
            if s.view == .rateLimits {
                if s.rateLimits.detailOpen { s.rateLimits.detailOpen = false } else { s.rateLimits.filter = "" }
            } else if s.events.detailOpen || s.events.showChannels { s.events.detailOpen = false; s.events.showChannels = false }
            else if !s.events.filter.isEmpty { s.events.filter = TailFilter("") }
        case .details:
            if s.view == .rateLimits {
                if s.rateLimits.selectedKey != nil { s.rateLimits.detailOpen.toggle() }
            } else if s.events.selectedSeq != nil { s.events.detailOpen.toggle(); s.events.showChannels = false }
        case .reset:
            guard let key = s.rateLimits.selectedKey, let c = s.rateLimits.counters.first(where: { $0.key == key }) else {
                flash(&s, "no counter selected", .info)
                return []
            }
            if s.session.readOnly {
                flash(&s, "read-only mode: resetting a counter is refused (start without --read-only to allow it)", .error)
                return []
            }
            let count = c.count.map { "\($0)/\(c.limit)" } ?? "?"
            s.confirm = Confirmation(question: "Reset \(Escaper.string(key)) (\(count), \(ttlText(c, now: s.now, readAt: s.rateLimits.readAt)))? y = yes · any other key = no",
                                     effect: .resetCounter(key))
        case .pause:
            if s.events.pausedAt == nil { s.events.pausedAt = tail.nextSeq - 1 } else { s.events.pausedAt = nil }
        case .subscribe:
            s.prompt = Prompt(purpose: .subscribe, text: "")
        case .unsubscribe:
            var offer = ""
            if let seq = s.events.selectedSeq, seq >= tail.oldestSeq, seq < tail.nextSeq, let m = tail[seq - tail.oldestSeq].message {
                offer = Escaper.string(m.pattern ?? m.channel)
            } else if let first = s.subscriptions.first {
                offer = Escaper.string(first.name)
            }
            s.prompt = Prompt(purpose: .unsubscribe, text: offer)
        case .write:
            s.prompt = Prompt(purpose: .write, text: defaultDumpName(s.now))
        case .channels:
            s.events.showChannels.toggle(); s.events.detailOpen = false
        }
        return []
    }

    static func defaultDumpName(_ now: Double) -> String {
        let ts = isoTimestamp(now).prefix(19).replacingOccurrences(of: ":", with: "").replacingOccurrences(of: "-", with: "")
        return "redis-ops-tail-\(ts).ndjson"
    }

    static func promptKey(_ s: inout AppState, _ k: Key, tail: ChannelTail) -> [Effect] {
        guard var p = s.prompt else { return [] }
        let rl = s.view == .rateLimits
        let kv = s.view == .keys
        switch k {
        case .escape:
            if p.purpose == .filter { if rl { s.rateLimits.filter = "" } else if kv { s.keys.filter = "" } else { s.events.filter = TailFilter("") } }
            s.prompt = nil
            return []
        case .enter:
            s.prompt = nil
            return commit(&s, p, tail: tail)
        case .backspace:
            if !p.text.isEmpty { p.text.removeLast() }
        case .ctrl("u"):
            p.text = ""
        case .char(let c):
            p.text.append(c)
        default:
            return []
        }
        s.prompt = p
        if p.purpose == .filter { if rl { s.rateLimits.filter = p.text } else if kv { s.keys.filter = p.text } else { s.events.filter = TailFilter(p.text) } }
        return []
    }

    static func commit(_ s: inout AppState, _ p: Prompt, tail: ChannelTail) -> [Effect] {
        let text = p.text
        switch p.purpose {
        case .filter where s.view == .keys:
            s.keys.filter = text
            s.keys.selectedKey = visibleKeys(s).first?.meta.key
            return []
        case .invalidatePattern:
            guard !text.isEmpty else { return [] }
            s.invalidation = InvalidationUI(glob: text, phase: .planning(found: 0))
            return [.planInvalidation(text)]
        case .filter where s.view == .rateLimits:
            s.rateLimits.filter = text
            s.rateLimits.selectedKey = s.rateLimits.visible.first?.key
            if !text.isEmpty && s.rateLimits.visible.isEmpty { flash(&s, "no counter matches “\(text)”", .info) }
            return []
        case .filter:
            s.events.filter = TailFilter(text)
            sync(&s, tail: tail)
            s.events.follow = false
            s.events.selectedSeq = s.events.rows.first
            if !text.isEmpty && s.events.rows.isEmpty { flash(&s, "no message matches “\(text)” yet", .info) }
            return []
        case .subscribe:
            guard !text.isEmpty else { return [] }
            let isPattern = text.contains("*") || text.contains("?") || text.contains("[")
            let name = Bytes(utf8: text)
            if !s.subscriptions.contains(where: { $0.name == name && $0.isPattern == isPattern }) {
                s.subscriptions.append(Subscription(name: name, isPattern: isPattern))
            }
            flash(&s, "\(isPattern ? "PSUBSCRIBE" : "SUBSCRIBE") \(text)", .info)
            return [.subscribe(name, pattern: isPattern)]
        case .unsubscribe:
            guard !text.isEmpty else { return [] }
            let sub = s.subscriptions.first { Escaper.string($0.name) == text } ?? s.subscriptions.first { $0.name == Bytes(utf8: text) }
            guard let sub else {
                flash(&s, "not subscribed to “\(text)”", .warning)
                return []
            }
            s.subscriptions.removeAll { $0 == sub }
            flash(&s, "\(sub.isPattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE") \(text)", .info)
            return [.unsubscribe(sub.name, pattern: sub.isPattern)]
        case .write:
            guard !text.isEmpty else { return [] }
            return [.writeTail(path: text, filter: s.events.filter, upTo: s.events.pausedAt ?? Int.max)]
        }
    }

    static func move(_ s: inout AppState, _ a: Action) {
        let rows = s.events.rows
        guard !rows.isEmpty else { return }
        let page = max(1, eventsLayout(s).listHeight - 1)
        let cur = s.events.selectedSeq.flatMap { seq in rows.lastIndex { $0 <= seq } } ?? (rows.count - 1)
        let idx = step(a, from: cur, count: rows.count, page: page)
        s.events.selectedSeq = rows[idx]
        // Follow again only when the operator goes down to the very end.
        s.events.follow = idx == rows.count - 1 && (a == .bottom || a == .down || a == .pageDown)
    }

    /// Brings the rows up to date with the tail (incrementally) and keeps the selection visible.
    public static func sync(_ s: inout AppState, tail: ChannelTail) {
        var e = s.events
        if e.filterKey != e.filter.text {
            e.rows.removeAll(keepingCapacity: true)
            e.scannedUpTo = 0
            e.filterKey = e.filter.text
        }
        let oldest = tail.oldestSeq
        if let firstKept = e.rows.firstIndex(where: { $0 >= oldest }) {
            if firstKept > 0 { e.rows.removeFirst(firstKept) }
        } else {
            e.rows.removeAll(keepingCapacity: true)
        }
        let limit = min(e.pausedAt ?? Int.max, tail.nextSeq - 1)
        var seq = max(e.scannedUpTo + 1, oldest)
        if e.filter.isEmpty {
            // Every entry is shown: no need to look at them (this runs under the tail's lock).
            if seq <= limit { e.rows.append(contentsOf: seq...limit) }
        } else {
            while seq <= limit {
                let entry = tail[seq - oldest]
                if entry.message == nil || e.filter.matches(entry) { e.rows.append(seq) }
                seq += 1
            }
        }
        e.scannedUpTo = max(e.scannedUpTo, limit)
        if e.follow || e.selectedSeq == nil {
            e.selectedSeq = e.rows.last
        } else if let sel = e.selectedSeq, sel < oldest {
            e.selectedSeq = e.rows.first
        }
        // Keep the selected row inside the list window.
        s.events = e
        let h = eventsLayout(s).listHeight
        if h > 0, let sel = s.events.selectedSeq, let idx = s.events.rows.lastIndex(where: { $0 <= sel }) {
            s.events.scrollTop = window(s.events.scrollTop, keeping: idx, height: h, count: s.events.rows.count)
        } else {
            s.events.scrollTop = max(0, s.events.rows.count - h)
        }
    }
}

extension Reducer {
    /// The row a movement lands on (clamped to the rows there are).
    static func step(_ a: Action, from cur: Int, count: Int, page: Int) -> Int {
        var idx = cur
        switch a {
        case .up: idx -= 1
        case .down: idx += 1
        case .pageUp: idx -= page
        case .pageDown: idx += page
        case .top: idx = 0
        case .bottom: idx = count - 1
        default: break
        }
        return max(0, min(count - 1, idx))
    }

    /// The first row of a window of `height` rows that keeps row `idx` in sight.
    static func window(_ top: Int, keeping idx: Int, height: Int, count: Int) -> Int {
        var top = top
        if idx < top { top = idx }
        if idx >= top + height { top = idx - height + 1 }
        return max(0, min(top, max(0, count - height)))
    }

    static func moveRateLimits(_ s: inout AppState, _ a: Action) {
        let rows = s.rateLimits.visible
        guard !rows.isEmpty else { return }
        let page = max(1, rateLimitsLayout(s).listHeight - 1)
        let cur = rows.firstIndex { $0.key == s.rateLimits.selectedKey } ?? 0
        let idx = step(a, from: cur, count: rows.count, page: page)
        s.rateLimits.selectedKey = rows[idx].key
    }

    /// Keeps a valid selection (by key, so it survives re-sorting) inside the window.
    static func syncRateLimits(_ s: inout AppState) {
        let rows = s.rateLimits.visible
        if rows.isEmpty { s.rateLimits.selectedKey = nil; s.rateLimits.scrollTop = 0; s.rateLimits.detailOpen = false; return }
        if s.rateLimits.selectedKey == nil || !rows.contains(where: { $0.key == s.rateLimits.selectedKey }) {
            s.rateLimits.selectedKey = rows[0].key
        }
        let idx = rows.firstIndex { $0.key == s.rateLimits.selectedKey } ?? 0
        s.rateLimits.scrollTop = window(s.rateLimits.scrollTop, keeping: idx, height: max(1, rateLimitsLayout(s).listHeight), count: rows.count)
    }
}

/// "resets in 41s", counted down locally from the PTTL read at `readAt`.
public func ttlText(_ c: RateLimitCounter, now: Double, readAt: Double) -> String {
    switch c.ttl {
    case .persistent?: return "no TTL"
    case .expiresIn(let ms)?:
        let left = ms - elapsedMs(since: readAt, now: now)
        return left <= 0 ? "window over" : "resets in " + formatDuration(left)
    default: return "TTL ?"
    }
}

public func rateLimitsLayout(_ s: AppState) -> EventsLayout {
    let top = s.bodyTop + 1
    let total = max(0, s.bodyHeight - 1)
    if s.rateLimits.detailOpen {
        let pane = min(max(total / 2, 4), total)
        return EventsLayout(listTop: top, listHeight: total - pane, paneTop: top + total - pane, paneHeight: pane)
    }
    return EventsLayout(listTop: top, listHeight: total, paneTop: top + total, paneHeight: 0)
}
