import Foundation
import DequeModule
import RedisProtocol
import OpsCore

extension EventsState {
    /// The last sequence number the list shows (frozen while paused).
    func limit(_ t: ChannelTail) -> Int { min(pausedAt ?? Int.max, t.nextSeq - 1) }

    /// Rows in the list: every entry when there is no filter (no copy is kept), else the matches.
    public func rowCount(_ t: ChannelTail) -> Int {
        if filter.isEmpty { return max(0, limit(t) - t.oldestSeq + 1) }
        return matches.count
    }

    public func seq(at i: Int, _ t: ChannelTail) -> Int {
        filter.isEmpty ? t.oldestSeq + i : matches[i]
    }

    /// The row showing `seq`, or the last row before it.
    public func index(of seq: Int, _ t: ChannelTail) -> Int? {
        let n = rowCount(t)
        if n == 0 { return nil }
        if filter.isEmpty { return max(0, min(n - 1, seq - t.oldestSeq)) }
        var lo = 0, hi = n - 1
        if matches[0] > seq { return 0 }
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if matches[mid] <= seq { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
}

enum EventsModule: ViewModule {
    static let id = ViewID.events

    static func layout(_ s: AppState) -> SplitLayout {
        SplitLayout.make(top: s.bodyTop, height: s.bodyHeight, pane: s.events.pane != .none)
    }

    static func entered(_ s: inout AppState) -> [Effect] {
        s.events.pane == .channels ? [listenersEffect(s)] : []
    }

    static func tick(_ s: inout AppState) -> [Effect] {
        // The channels pane reads who listens every few seconds while it is open.
        if s.events.pane == .channels, Int(s.now) % 5 == 0 { return [listenersEffect(s)] }
        return []
    }

    static func listenersEffect(_ s: AppState) -> Effect {
        .readListeners(channels: s.subscriptions.filter(\.isClassicChannel).map(\.name), patterns: s.subscriptions.filter(\.isPattern).map(\.name),
                       shardChannels: s.subscriptions.filter(\.isShard).map(\.name))
    }

    /// New entries in the tail: only the new ones are looked at.
    static func tailChanged(_ s: inout AppState, tail: ChannelTail) {
        let oldest = tail.oldestSeq
        let limit = s.events.limit(tail)
        if !s.events.filter.isEmpty {
            while let f = s.events.matches.first, f < oldest { s.events.matches.removeFirst() }
            var seq = max(s.events.scannedUpTo + 1, oldest)
            while seq <= limit {
                let entry = tail[seq - oldest]
                if entry.message == nil || s.events.filter.matches(entry) { s.events.matches.append(seq) }
                seq += 1
            }
        }
        s.events.scannedUpTo = max(s.events.scannedUpTo, limit)
        countWhilePaused(&s, tail: tail)
        let n = s.events.rowCount(tail)
        if n == 0 { s.events.selectedSeq = nil }
        else if s.events.follow || s.events.selectedSeq == nil { s.events.selectedSeq = s.events.seq(at: n - 1, tail) }
        else if let sel = s.events.selectedSeq, sel < oldest { s.events.selectedSeq = s.events.seq(at: 0, tail) }
        sync(&s, tail: tail)
    }

    /// `PAUSED +N new`: what arrived since the pause that the filter would show — only the
    /// messages new since the last count are looked at.
    static func countWhilePaused(_ s: inout AppState, tail: ChannelTail) {
        guard let p = s.events.pausedAt else { s.events.pausedNew = 0; s.events.pausedScannedUpTo = 0; return }
        let last = tail.nextSeq - 1
        if s.events.filter.isEmpty {
            s.events.pausedNew = max(0, last - p)
        } else {
            var seq = max(s.events.pausedScannedUpTo + 1, p + 1, tail.oldestSeq)
            while seq <= last {
                let e = tail[seq - tail.oldestSeq]
                if e.message != nil && s.events.filter.matches(e) { s.events.pausedNew += 1 }
                seq += 1
            }
        }
        s.events.pausedScannedUpTo = last
    }

    static func sync(_ s: inout AppState, tail: ChannelTail) {
        let h = layout(s).listHeight
        let n = s.events.rowCount(tail)
        if let sel = s.events.selectedSeq, let idx = s.events.index(of: sel, tail) {
            s.events.scrollTop = ListNav.window(s.events.scrollTop, keeping: idx, height: h, count: n)
        } else {
            s.events.scrollTop = max(0, n - h)
        }
    }

    static func refilter(_ s: inout AppState, tail: ChannelTail) {
        s.events.matches.removeAll()
        s.events.scannedUpTo = 0
        if !s.events.filter.isEmpty {
            let oldest = tail.oldestSeq
            let limit = s.events.limit(tail)
            var seq = oldest
            while seq <= limit {
                let e = tail[seq - oldest]
                if e.message == nil || s.events.filter.matches(e) { s.events.matches.append(seq) }
                seq += 1
            }
        }
        s.events.scannedUpTo = s.events.limit(tail)
    }

    static func selectedEntry(_ s: AppState, _ tail: ChannelTail) -> TailEntry? {
        guard let seq = s.events.selectedSeq, seq >= tail.oldestSeq, seq < tail.nextSeq else { return nil }
        return tail[seq - tail.oldestSeq]
    }

    static func perform(_ a: Action, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        if ListNav.isMove(a) {
            // An open pane scrolls with PgUp/PgDn; the arrows still move the selection.
            if s.events.pane == .detail, a == .pageUp || a == .pageDown {
                s.events.paneScroll = max(0, s.events.paneScroll + (a == .pageDown ? 1 : -1) * max(1, layout(s).paneHeight - 2))
                return []
            }
            let n = s.events.rowCount(tail)
            guard n > 0 else { return [] }
            let cur = s.events.selectedSeq.flatMap { s.events.index(of: $0, tail) } ?? (n - 1)
            let idx = ListNav.step(a, from: cur, count: n, page: max(1, layout(s).listHeight - 1))
            s.events.selectedSeq = s.events.seq(at: idx, tail)
            s.events.paneScroll = 0
            // Following again only at the very end, going down.
            s.events.follow = idx == n - 1 && (a == .bottom || a == .down || a == .pageDown)
            sync(&s, tail: tail)
            return []
        }
        switch a {
        case .follow:
            s.events.follow = true
            s.events.pausedAt = nil
            tailChanged(&s, tail: tail)
        case .back:
            if s.events.pane != .none { s.events.pane = .none }
            else if !s.events.filter.isEmpty { return filterCommitted("", &s, tail: tail) }
        case .details:
            if s.events.selectedSeq != nil { s.events.pane = s.events.pane == .detail ? .none : .detail; s.events.paneScroll = 0 }
        case .pause:
            s.events.pausedNew = 0
            if s.events.pausedAt == nil { s.events.pausedAt = tail.nextSeq - 1; s.events.pausedScannedUpTo = tail.nextSeq - 1 }
            else { s.events.pausedAt = nil; tailChanged(&s, tail: tail) }
        case .nextMatch, .previousMatch:
            guard !s.events.filter.isEmpty else {
                Reducer.flash(&s, "n and N go from match to match of a filter: set one with /", .info)
                return []
            }
            // The list shows the matches (and the gap markers, which are skipped): the next
            // match is the next message row. Staying on it means no longer following.
            let n = s.events.rowCount(tail)
            guard n > 0 else { return [] }
            let cur = s.events.selectedSeq.flatMap { s.events.index(of: $0, tail) } ?? (n - 1)
            let dir = a == .nextMatch ? 1 : -1
            var idx = cur + dir
            while idx >= 0 && idx < n {
                let seq = s.events.seq(at: idx, tail)
                if seq >= tail.oldestSeq, seq < tail.nextSeq, tail[seq - tail.oldestSeq].message != nil { break }
                idx += dir
            }
            guard idx >= 0 && idx < n else {
                Reducer.flash(&s, a == .nextMatch ? "no later match" : "no earlier match", .info)
                return []
            }
            s.events.selectedSeq = s.events.seq(at: idx, tail)
            s.events.paneScroll = 0
            s.events.follow = false
            sync(&s, tail: tail)
        case .subscribe:
            s.prompt = Prompt(purpose: .subscribe, text: "")
        case .unsubscribe:
            var offer = ""
            if let m = selectedEntry(s, tail)?.message { offer = Escaper.string(m.pattern ?? m.channel) }
            else if let first = s.subscriptions.first { offer = Escaper.string(first.name) }
            s.prompt = Prompt(purpose: .unsubscribe, text: offer)
        case .write:
            if s.events.pane == .detail, let seq = s.events.selectedSeq {
                s.prompt = Prompt(purpose: .writeMessage(seq: seq), text: defaultDumpName(s.now, one: true))
            } else {
                s.prompt = Prompt(purpose: .writeBuffer, text: defaultDumpName(s.now, one: false))
            }
        case .channels:
            s.events.pane = s.events.pane == .channels ? .none : .channels
            if s.events.pane == .channels { return [listenersEffect(s)] }
        case .publish:
            if s.session.readOnly {
                Reducer.flash(&s, "read-only mode: publishing is refused (start without --read-only to allow it)", .error)
                return []
            }
            let ch = selectedEntry(s, tail)?.message.map { Escaper.string($0.channel) } ?? ""
            s.prompt = Prompt(purpose: .publishChannel, text: ch)
        default:
            break
        }
        sync(&s, tail: tail)
        return []
    }

    static func defaultDumpName(_ now: Double, one: Bool) -> String {
        let ts = isoTimestamp(now).prefix(19).replacingOccurrences(of: ":", with: "").replacingOccurrences(of: "-", with: "")
        return "redis-ops-\(one ? "message" : "tail")-\(ts).ndjson"
    }

    static func filterText(_ s: AppState) -> String { s.events.filter.text }

    static func filterTyped(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        s.events.filter = TailFilter(text)
        refilter(&s, tail: tail)
        tailChanged(&s, tail: tail)
        return []
    }

    /// Enter keeps the filter. A list that was following keeps following (the newest match
    /// selected, new matches scroll in); one that was not selects the newest match at or
    /// before the row it was on. Esc (empty text) clears it and follows again.
    static func filterCommitted(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        let wasFollowing = s.events.follow
        let at = s.events.selectedSeq
        s.events.filter = TailFilter(text)
        refilter(&s, tail: tail)
        recountPaused(&s, tail: tail)
        let n = s.events.rowCount(tail)
        if text.isEmpty || wasFollowing {
            s.events.follow = true
        } else if n > 0 {
            let i = at.flatMap { s.events.index(of: $0, tail) } ?? (n - 1)
            s.events.selectedSeq = s.events.seq(at: i, tail)
        }
        if !text.isEmpty && n == 0 { Reducer.flash(&s, "no message matches “\(Escaper.string(Bytes(utf8: text), escapeBackslash: false))” yet", .info) }
        tailChanged(&s, tail: tail)
        return []
    }

    /// A filter changed while paused: count again what arrived since the pause.
    static func recountPaused(_ s: inout AppState, tail: ChannelTail) {
        guard let p = s.events.pausedAt else { return }
        s.events.pausedNew = 0
        s.events.pausedScannedUpTo = p
        countWhilePaused(&s, tail: tail)
    }

    /// The Events view's own prompts.
    static func commit(_ p: Prompt, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        let text = p.text
        switch p.purpose {
        case .subscribe:
            guard !text.isEmpty else { return [] }
            if text.hasPrefix("shard ") {
                let ch = String(text.dropFirst(6)).trimmingCharacters(in: .whitespaces)
                guard !ch.isEmpty else { return [] }
                let name = Bytes(utf8: ch)
                if !s.subscriptions.contains(where: { $0.name == name && $0.isShard }) {
                    s.subscriptions.append(Subscription(name: name, isPattern: false, isShard: true))
                }
                Reducer.flash(&s, "SSUBSCRIBE \(ch) (on the node that owns its slot)", .info)
                return [.subscribeShard(name)]
            }
            let isPattern = text.contains("*") || text.contains("?") || text.contains("[")
            let name = Bytes(utf8: text)
            if !s.subscriptions.contains(where: { $0.name == name && $0.isPattern == isPattern }) {
                s.subscriptions.append(Subscription(name: name, isPattern: isPattern))
            }
            Reducer.flash(&s, "\(isPattern ? "PSUBSCRIBE" : "SUBSCRIBE") \(text)", .info)
            return [.subscribe(name, pattern: isPattern)]
        case .unsubscribe:
            guard !text.isEmpty else { return [] }
            guard let sub = s.subscriptions.first(where: { Escaper.string($0.name) == text }) ?? s.subscriptions.first(where: { $0.name == Bytes(utf8: text) }) else {
                Reducer.flash(&s, "not subscribed to “\(text)”", .warning)
                return []
            }
            s.subscriptions.removeAll { $0 == sub }
            if sub.isShard {
                Reducer.flash(&s, "SUNSUBSCRIBE \(text)", .info)
                return [.unsubscribeShard(sub.name)]
            }
            Reducer.flash(&s, "\(sub.isPattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE") \(text)", .info)
            return [.unsubscribe(sub.name, pattern: sub.isPattern)]
        case .writeBuffer:
            guard !text.isEmpty else { return [] }
            return [.export(path: text, .buffer(filter: s.events.filter, upTo: s.events.pausedAt ?? Int.max))]
        case .writeMessage(let seq):
            guard !text.isEmpty else { return [] }
            return [.export(path: text, .message(seq: seq))]
        case .publishChannel:
            guard !text.isEmpty else { return [] }
            s.prompt = Prompt(purpose: .publishPayload(channel: Bytes(utf8: text)),
                              text: #"{"type":"redis-ops.test","at":"\#(isoTimestamp(s.now))"}"#, suggested: true)
            return []
        case .publishPayload(let ch):
            return publishConfirmation(channel: ch, payload: Bytes(utf8: text), &s)
        default:
            return []
        }
    }

    /// The question before publishing (`p` and `:publish CHANNEL PAYLOAD` ask the same).
    static func publishConfirmation(channel ch: Bytes, payload: Bytes, _ s: inout AppState) -> [Effect] {
        if let first = payload.first(where: { $0 != 0x20 }), first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
           JSONParser.parse(payload) == nil {
            Reducer.flash(&s, "the payload looks like JSON but does not parse; nothing was published", .error)
            return []
        }
        s.confirm = Confirmation(question: "Publish \(formatBytes(Int64(payload.count))) to this channel? (audited)", subject: Escaper.string(ch),
                                 detail: Escaper.string(payload, maxScalars: 200),
                                 effect: .execute(id: 0, WritePlan(request: .publish(channel: ch, payload: payload), keys: [])))
        return []
    }

    // MARK: rendering

    static func timeText(_ t: Double, _ tz: TimeZone) -> String {
        let totalMs = Int64((t * 1000).rounded())
        var secs = time_t(totalMs / 1000)
        let ms = Int(totalMs % 1000)
        var tmv = tm()
        secs += time_t(tz.secondsFromGMT(for: Date(timeIntervalSince1970: t)))
        gmtime_r(&secs, &tmv)
        return String(format: "%02d:%02d:%02d.%03d", tmv.tm_hour, tmv.tm_min, tmv.tm_sec, min(999, ms))
    }

    static func statusLine(_ g: inout CellGrid, _ s: AppState, tail: ChannelTail, now: Double) {
        let y = s.bodyTop - 1
        var x = 0
        let subs = s.subscriptions.map { sub -> String in
            Escaper.string(sub.name) + (sub.isPattern ? " (p)" : "") + (sub.isShard ? " (shard)" : "") + (sub.active ? "" : " …")
        }
        x = g.put(x, y, subs.isEmpty ? "no subscriptions — press s" : subs.joined(separator: ", "), subs.isEmpty ? .warning : .title, maxX: g.width / 2)
        var parts: [(String, Role)] = []
        let n = s.events.rowCount(tail)
        // Following or not: the operator must know whether new messages scroll into view.
        if s.events.pausedAt != nil {
            parts.append(("PAUSED +\(s.events.pausedNew) new\(s.events.filter.isEmpty ? "" : " matching")", .warning))
        } else if s.events.follow {
            parts.append(("following", .ok))
        } else if let sel = s.events.selectedSeq, let idx = s.events.index(of: sel, tail) {
            parts.append(("scrolled +\(max(0, n - 1 - idx)) below · F follows", .warning))
        }
        if !s.events.filter.isEmpty { parts.insert((FilterText.quoted(s.events.filter.text, width: g.width) + ": \(n) rows", .info), at: 0) }
        if tail.gaps > 0 { parts.append(("gaps \(tail.gaps)", .warning)) }
        parts.append(("\(tail.received) msgs", .normal))
        parts.append((String(format: "%.1f/s", tail.overall.rate(at: now)), .normal))
        parts.append(("buf \(tail.count)/\(tail.capacity)", .dim))
        if tail.evicted > 0 { parts.append(("evicted \(tail.evicted)", .dim)) }
        for (t, r) in parts where x + displayWidth(t) + 3 <= g.width {
            x = g.put(x, y, " · ", .dim)
            x = g.put(x, y, t, r)
        }
    }

    static func render(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext) {
        let tail = ctx.tail
        statusLine(&g, s, tail: tail, now: ctx.now)
        let L = layout(s)
        // One pattern: the status line names it once; with more, each row says which matched.
        let showPattern = s.subscriptions.filter(\.isPattern).count > 1
        let longest = s.subscriptions.filter(\.isPattern).map { displayWidth(Escaper.string($0.name)) }.max() ?? 0
        var cols = [Column("time", "TIME", width: 12, priority: 5),
                    Column("channel", "CHANNEL", width: 14, grow: 14, priority: 8),
                    Column("payload", "PAYLOAD", width: 36, grow: 10_000, priority: 10)]
        if showPattern { cols.insert(Column("pattern", "PATTERN", width: min(24, max(10, longest)), priority: 2), at: 2) }
        let T = TableLayout.fit(cols, width: g.width)
        T.header(&g, y: s.bodyTop)
        let n = s.events.rowCount(tail)
        if n == 0 {
            g.put(2, L.listTop + 1, s.events.filter.isEmpty ? "waiting for messages…" : "no message matches the filter", .dim)
        }
        let oldest = tail.oldestSeq
        for i in 0..<L.listHeight {
            let idx = s.events.scrollTop + i
            guard idx < n else { break }
            let seq = s.events.seq(at: idx, tail)
            guard seq >= oldest, seq < tail.nextSeq else { continue }
            let entry = tail[seq - oldest]
            let y = L.listTop + i
            switch entry.kind {
            case .gap(let gap):
                let text = "── gap \(String(format: "%.1f", gap.to - gap.from)) s: messages published \(timeText(gap.from, ctx.timeZone))–\(timeText(gap.to, ctx.timeZone)) may be lost (\(Escaper.string(gap.reason, maxScalars: 160))) "
                g.fill(y: y, role: .gap)
                g.put(0, y, text + String(repeating: "─", count: max(0, g.width)), .gap)
            case .note(let t):
                g.put(0, y, "── " + t, .note)
            case .message(let m):
                T.put(&g, y: y, "time", timeText(m.receivedAt, ctx.timeZone), .dim)
                if let c = T.slot("channel") { g.put(c.x, y, runs: Escaper.runs(m.channel, maxScalars: c.w * 2), .normal, maxX: c.x + c.w) }
                if let p = m.pattern, let c = T.slot("pattern") { g.put(c.x, y, runs: Escaper.runs(p, maxScalars: c.w * 2), .dim, maxX: c.x + c.w) }
                if let c = T.slot("payload") {
                    let size = entry.originalSize ?? m.payload.count
                    var maxX = c.x + c.w
                    if size > 1024 && c.w >= 24 {
                        let tag = " [\(formatBytes(Int64(size)))]"
                        maxX -= displayWidth(tag)
                        g.put(maxX, y, tag, .dim)
                    }
                    g.put(c.x, y, runs: payloadRuns(m.payload, maxScalars: (maxX - c.x) * 2 + 8), .normal, maxX: maxX)
                }
            }
            if seq == s.events.selectedSeq { g.select(y: y) }
        }
        switch s.events.pane {
        case .detail: detail(&g, s, ctx, L)
        case .channels: channels(&g, s, tail: tail, now: ctx.now, L)
        case .none: break
        }
    }

    /// A payload on one row: JSON compacted (its escapes stand), anything else escaped.
    static func payloadRuns(_ p: Bytes, maxScalars: Int) -> [TextRun] {
        if let first = p.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x09 && $0 != 0x0D }),
           first == UInt8(ascii: "{") || first == UInt8(ascii: "["), p.count <= 1 << 20, let j = JSONParser.parse(p) {
            var out = Bytes()
            j.write(to: &out)
            return Escaper.runs(out, maxScalars: maxScalars, escapeBackslash: false)
        }
        return Escaper.runs(p, maxScalars: maxScalars)
    }

    static func detail(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext, _ L: SplitLayout) {
        guard L.paneHeight > 0, let seq = s.events.selectedSeq, let entry = selectedEntry(s, ctx.tail) else { return }
        guard let m = entry.message else {
            g.fill(y: L.paneTop, role: .columnHeader)
            if case .gap(let gap) = entry.kind {
                g.put(0, L.paneTop, " a gap: \(Escaper.string(gap.reason, maxScalars: 300))", .columnHeader)
            } else {
                g.put(0, L.paneTop, " details: a marker, not a message", .columnHeader)
            }
            return
        }
        var head = " #\(seq) · \(timeText(m.receivedAt, ctx.timeZone)) · \(Escaper.string(m.channel, maxScalars: 200))"
        if let p = m.pattern { head += " · pattern \(Escaper.string(p, maxScalars: 200))" }
        head += " · \(formatBytes(Int64(entry.originalSize ?? m.payload.count)))"
        var lines = detailLines(m.payload, width: g.width)
        if let orig = entry.originalSize {
            // Said first, where it cannot be cut off: what is shown, and written, is not all of it.
            lines.insert([TextRun("stored truncated: the first \(formatBytes(Int64(m.payload.count))) of \(formatBytes(Int64(orig))) are kept (w writes what is stored)", role: .warning)], at: 0)
        }
        TextPane.draw(&g, top: L.paneTop, height: L.paneHeight, title: head, lines: lines, scroll: s.events.paneScroll)
    }

    /// Pretty JSON, coloured; or escaped text wrapped to the width.
    static func detailLines(_ p: Bytes, width: Int) -> [[TextRun]] {
        if p.count <= 1 << 20, let j = JSONParser.parse(p) {
            return j.prettyLines().prefix(20_000).map { line in colourJSON(line) }
        }
        return wrap(Escaper.runs(p, maxScalars: 256 * 1024), width: max(10, width - 2))
    }

    static func wrap(_ runs: [TextRun], width maxW: Int) -> [[TextRun]] {
        var lines: [[TextRun]] = [[]]
        var w = 0
        for r in runs {
            for ch in r.text {
                let cw = displayWidth(String(ch))
                if w + cw > maxW { lines.append([]); w = 0 }
                if let last = lines[lines.count - 1].last, last.isEscape == r.isEscape, last.role == r.role {
                    lines[lines.count - 1][lines[lines.count - 1].count - 1].text.append(ch)
                } else {
                    lines[lines.count - 1].append(TextRun(String(ch), isEscape: r.isEscape, role: r.role))
                }
                w += cw
            }
        }
        return lines
    }

    /// Colours one pretty-printed JSON line by its parts (key, string, number, literal).
    static func colourJSON(_ line: String) -> [TextRun] {
        let safe = Escaper.string(Bytes(utf8: line), escapeBackslash: false)
        var rest = Substring(safe)
        var out: [TextRun] = []
        let indent = rest.prefix { $0 == " " }
        if !indent.isEmpty { out.append(TextRun(String(indent))); rest = rest.dropFirst(indent.count) }
        func stringEnd(_ t: Substring) -> Substring.Index? {
            var i = t.index(after: t.startIndex)
            var esc = false
            while i < t.endIndex {
                let c = t[i]
                if esc { esc = false } else if c == "\\" { esc = true } else if c == "\"" { return t.index(after: i) }
                i = t.index(after: i)
            }
            return nil
        }
        if rest.hasPrefix("\""), let end = stringEnd(rest), rest[end...].hasPrefix(": ") {
            out.append(TextRun(String(rest[..<end]), role: .jsonKey))
            out.append(TextRun(": "))
            rest = rest[rest.index(end, offsetBy: 2)...]
        }
        var value = rest
        var tail: Substring = ""
        if value.hasSuffix(",") { value = value.dropLast(); tail = "," }
        if let c = value.first {
            let role: Role
            if c == "\"" { role = .jsonString }
            else if c == "-" || c.isNumber { role = .jsonNumber }
            else if value == "true" || value == "false" || value == "null" { role = .jsonLiteral }
            else { role = .normal }
            out.append(TextRun(String(value), role: role))
        }
        if !tail.isEmpty { out.append(TextRun(String(tail))) }
        return out
    }

    static func channels(_ g: inout CellGrid, _ s: AppState, tail: ChannelTail, now: Double, _ L: SplitLayout) {
        guard L.paneHeight > 0 else { return }
        var y = L.paneTop
        let T = TableLayout.fit([Column("name", " CHANNEL", width: 16, grow: 10_000, priority: 10),
                                 Column("total", "TOTAL", width: 9, priority: 8, alignRight: true),
                                 Column("rate", "MSG/S", width: 8, priority: 7, alignRight: true),
                                 Column("last", "LAST", width: 10, priority: 5, alignRight: true),
                                 Column("subs", "SUBSCRIBERS", width: 11, priority: 9, alignRight: true)], width: g.width)
        T.header(&g, y: y)
        y += 1
        let l = s.events.listeners
        // This console's own channel subscriptions are not the application's listeners.
        let own = Set(s.subscriptions.filter(\.isClassicChannel).map(\.name))
        let shard = Set(s.subscriptions.filter(\.isShard).map(\.name))
        // The rows on screen only: the busiest channels counted, then the others known
        // (discovered under the patterns, subscribed by name) — never a sort of them all.
        let room = max(0, L.paneHeight - 2)
        let busiest = tail.busiest(room, at: now)
        var names = busiest.map(\.name)
        var listed = Set(names)
        for d in l.discovered + own.sorted(by: { $0.lexicographicallyPrecedes($1) }) where names.count < room && listed.insert(d).inserted { names.append(d) }
        let last = L.paneTop + L.paneHeight - 1   // the pane's last line: what the counts mean
        if names.isEmpty { g.put(2, y, "no channel heard yet", .dim) }
        for name in names {
            if y >= last { break }
            if let c = T.slot("name") { g.put(c.x + 1, y, runs: Escaper.runs(name, maxScalars: 200), .normal, maxX: c.x + c.w) }
            if let st = tail.channels[name] {
                T.put(&g, y: y, "total", "\(st.total)", .normal)
                T.put(&g, y: y, "rate", String(format: "%.1f", st.rate(at: now)), .normal)
                T.put(&g, y: y, "last", ago(max(0, now - st.lastSeen)), .dim)
            } else {
                T.put(&g, y: y, "last", "not heard", .dim)
            }
            if s.events.listenersReadAt == nil {
                T.put(&g, y: y, "subs", "…", .dim)
            } else if shard.contains(name) {
                // SHARDNUMSUB (this console's own SSUBSCRIBE left out); "sharded ?" where the
                // server could not say (before Redis 7, or refused).
                if let n = l.shardCounts[name] {
                    let others = max(0, n - 1)
                    T.put(&g, y: y, "subs", "\(others) shard", others == 0 ? .warning : .normal)
                } else {
                    T.put(&g, y: y, "subs", "sharded ?", .dim)
                }
            } else {
                let n = max(0, (l.counts[name] ?? 0) - (own.contains(name) ? 1 : 0))
                T.put(&g, y: y, "subs", "\(n)", n == 0 ? .warning : .normal)
            }
            y += 1
        }
        guard last > L.paneTop else { return }
        var parts: [String] = []
        let heard = tail.channelsHeard
        if heard.count > busiest.count {
            parts.append("showing the \(grouped(busiest.count)) busiest of \(heard.exact ? "" : "~")\(grouped(heard.count)) channels heard"
                         + (tail.channels.count < heard.count ? " (counts kept for the \(grouped(ChannelTail.maxChannels)) busiest)" : ""))
        }
        if let at = s.events.listenersReadAt {
            if l.discoveredTotal > l.discovered.count { parts.append("+\(l.discoveredTotal - l.discovered.count) active channels not listed") }
            let shownRows = last - (L.paneTop + 1)
            if names.count > shownRows { parts.append("+\(names.count - shownRows) rows below") }
            var who = "subscribers besides this console\(l.nodes > 1 ? ", \(l.nodes) nodes" : "")"
            if let p = l.patternSubscriptions { who += "; +\(max(0, p - s.subscriptions.filter(\.isPattern).count)) by pattern" }
            parts.append(who)
            parts.append("read \(ago(max(0, s.now - at)))")
        } else {
            parts.append("reading who listens (PUBSUB NUMSUB, CHANNELS, NUMPAT)…")
        }
        let note = parts.joined(separator: " · ")
        g.put(1, last, note, .dim, maxX: g.width)
    }
}
