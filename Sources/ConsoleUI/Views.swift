import Foundation
import RedisProtocol
import RedisClient
import OpsCore

/// Renders the whole console into a grid. Pure: same state and tail, same grid.
public enum Screen {
    public static let minWidth = 20
    public static let minHeight = 6

    public static func render(_ s: AppState, tail: ChannelTail, timeZone: TimeZone = .current) -> CellGrid {
        var g = CellGrid(width: s.width, height: s.height)
        if s.width < minWidth || s.height < minHeight {
            g.put(0, 0, "too small", .warning)
            g.put(0, 1, "\(s.width)x\(s.height)<\(minWidth)x\(minHeight)", .dim)
            g.put(0, 2, "q quits", .dim)
            return g
        }
        header(&g, s)
        tabs(&g, s)
        switch s.view {
        case .events: EventsView.render(&g, s, tail: tail, timeZone: timeZone)
        case .keys: KeysView.render(&g, s)
        case .rateLimits: RateLimitsView.render(&g, s)
        case .locks: LocksView.render(&g, s)
        case .server: ServerView.render(&g, s)
        }
        footer(&g, s)
        if s.helpOpen { help(&g, s) }
        return g
    }

    static func linkText(_ l: LinkState) -> (String, Role) {
        switch l {
        case .connecting: return ("connecting…", .warning)
        case .connected: return ("● live", .ok)
        case .reconnecting: return ("◌ reconnecting", .warning)
        case .failed: return ("✖ failed", .error)
        }
    }

    static func header(_ g: inout CellGrid, _ s: AppState) {
        g.fill(y: 0, role: .header)
        var x = g.put(0, 0, " redis-ops ", .headerBadge)
        var parts: [String] = [s.session.endpoint]
        if let r = s.session.role { parts.append(Escaper.string(r)) }
        if s.session.tls { parts.append(s.session.insecure ? "TLS (UNVERIFIED)" : "TLS") }
        parts.append("user " + (s.session.user.map { Escaper.string($0) } ?? "default"))
        parts.append("prefix " + (s.session.prefix.isEmpty ? "(none)" : Escaper.string(s.session.prefix)))
        let (link, linkRole) = linkText(worst(s.session.command, s.session.subscriber))
        var right = link
        if s.session.readOnly { right = "READ-ONLY  " + right }
        let rightW = displayWidth(right) + 1
        x = g.put(x + 1, 0, parts.joined(separator: " · "), .header, maxX: g.width - rightW - 1)
        let rx = g.width - rightW
        if s.session.readOnly {
            let after = g.put(rx, 0, "READ-ONLY", .readOnly)
            g.put(after + 2, 0, link, linkRole)
        } else {
            g.put(rx, 0, link, linkRole)
        }
    }

    static func worst(_ a: LinkState, _ b: LinkState) -> LinkState {
        func rank(_ l: LinkState) -> Int {
            switch l { case .connected: return 0; case .connecting: return 1; case .reconnecting: return 2; case .failed: return 3 }
        }
        return rank(a) >= rank(b) ? a : b
    }

    static func tabs(_ g: inout CellGrid, _ s: AppState) {
        var x = 0
        for v in ViewID.allCases {
            let label = " \(v.rawValue) \(v.title) "
            x = g.put(x, 1, label, v == s.view ? .tabActive : .tabInactive)
            x += 1
        }
    }

    static func footer(_ g: inout CellGrid, _ s: AppState) {
        let y = g.height - 2
        g.fill(y: y, role: .footerText)
        var x = 0
        for (k, label) in Bindings.footer(for: s.view) {
            let need = displayWidth(k) + displayWidth(label) + 3
            if x + need > g.width { break }
            x = g.put(x, y, " " + k, .footerKey)
            x = g.put(x, y, " " + label + " ", .footerText)
        }
        let y2 = g.height - 1
        if let c = s.confirm {
            g.fill(y: y2, role: .danger)
            g.put(0, y2, c.question, .readOnly)
        } else if let p = s.prompt {
            let x1 = g.put(0, y2, p.label, .prompt)
            // Show the end of long input.
            let avail = g.width - x1 - 1
            var t = p.text
            while displayWidth(t) > avail && !t.isEmpty { t.removeFirst() }
            let x2 = g.put(x1, y2, t, .normal)
            g.put(x2, y2, "▏", .prompt)
        } else if let f = s.flash {
            g.put(0, y2, f.text, f.level == .error ? .error : (f.level == .warning ? .warning : .info))
        }
    }

    static func help(_ g: inout CellGrid, _ s: AppState) {
        let rows = Bindings.all.filter { $0.scope == .global || $0.scope == .view(s.view) }
        let w = min(g.width, 84)
        let h = min(g.height, rows.count + 4)
        let x0 = (g.width - w) / 2, y0 = max(0, (g.height - h) / 2)
        for y in y0..<(y0 + h) { g.fill(y: y, from: x0, to: x0 + w, role: .normal) }
        // A frame, so the help stands apart from the view under it.
        g.put(x0, y0, "┌" + String(repeating: "─", count: max(0, w - 2)) + "┐", .dim)
        g.put(x0, y0 + h - 1, "└" + String(repeating: "─", count: max(0, w - 2)) + "┘", .dim)
        for y in (y0 + 1)..<max(y0 + 1, y0 + h - 1) { g.put(x0, y, "│", .dim); g.put(x0 + w - 1, y, "│", .dim) }
        g.put(x0 + 2, y0, " Keys — \(s.view.title) · any key closes ", .title, maxX: x0 + w - 1)
        var y = y0 + 1
        for b in rows {
            if y >= y0 + h - 1 { break }
            if y == y0 + h - 2 && b.label != rows.last?.label {
                g.put(x0 + 2, y, "… enlarge the terminal for the rest", .dim, maxX: x0 + w - 1)
                break
            }
            g.put(x0 + 2, y, padRight(b.label, 7), .footerKey, maxX: x0 + w - 1)
            g.put(x0 + 10, y, b.help, .normal, maxX: x0 + w - 1)
            y += 1
        }
    }
}

enum EventsView {
    static func timeText(_ t: Double, _ tz: TimeZone) -> String {
        let totalMs = Int64((t * 1000).rounded())
        var secs = time_t(totalMs / 1000)
        let ms = Int(totalMs % 1000)
        var tmv = tm()
        secs += time_t(tz.secondsFromGMT(for: Date(timeIntervalSince1970: t)))
        gmtime_r(&secs, &tmv)
        return String(format: "%02d:%02d:%02d.%03d", tmv.tm_hour, tmv.tm_min, tmv.tm_sec, min(999, ms))
    }

    static func statusLine(_ g: inout CellGrid, _ s: AppState, tail: ChannelTail) {
        let y = 2
        var x = 0
        let subs = s.subscriptions.map { sub -> String in
            Escaper.string(sub.name) + (sub.isPattern ? " (p)" : "") + (sub.active ? "" : " …")
        }
        x = g.put(x, y, subs.isEmpty ? "no subscriptions — press s" : subs.joined(separator: ", "), subs.isEmpty ? .warning : .title, maxX: g.width / 2)
        var parts: [(String, Role)] = []
        parts.append(("\(tail.received) msgs", .normal))
        parts.append((String(format: "%.1f/s", tail.overall.rate(at: s.now)), .normal))
        parts.append(("buf \(tail.count)/\(tail.capacity)", .dim))
        if tail.evicted > 0 { parts.append(("evicted \(tail.evicted)", .dim)) }
        if tail.gaps > 0 { parts.append(("gaps \(tail.gaps)", .warning)) }
        if let p = s.events.pausedAt { parts.append(("PAUSED +\(max(0, tail.nextSeq - 1 - p)) new", .warning)) }
        if !s.events.filter.isEmpty { parts.append(("filter “\(s.events.filter.text)”: \(s.events.rows.count) rows", .info)) }
        for (t, r) in parts {
            if x + displayWidth(t) + 3 > g.width { break }
            x = g.put(x, y, " · ", .dim)
            x = g.put(x, y, t, r)
        }
    }

    static func render(_ g: inout CellGrid, _ s: AppState, tail: ChannelTail, timeZone: TimeZone) {
        statusLine(&g, s, tail: tail)
        let L = eventsLayout(s)
        let showPattern = g.width >= 100 && s.subscriptions.contains { $0.isPattern }
        let timeW = 12
        let chanW = min(28, max(10, g.width / 4))
        let longest = s.subscriptions.filter(\.isPattern).map { displayWidth(Escaper.string($0.name)) }.max() ?? 0
        let patW = showPattern ? min(24, max(10, longest)) : 0
        let payX = timeW + 1 + chanW + 1 + (showPattern ? patW + 1 : 0)
        let hy = s.bodyTop
        g.fill(y: hy, role: .columnHeader)
        g.put(0, hy, "TIME", .columnHeader)
        g.put(timeW + 1, hy, "CHANNEL", .columnHeader)
        if showPattern { g.put(timeW + 1 + chanW + 1, hy, "PATTERN", .columnHeader) }
        g.put(payX, hy, "PAYLOAD", .columnHeader)
        let rows = s.events.rows
        if rows.isEmpty {
            let msg = s.events.filter.isEmpty ? "waiting for messages…" : "no message matches the filter"
            g.put(2, L.listTop + 1, msg, .dim)
        }
        let oldest = tail.oldestSeq
        for i in 0..<L.listHeight {
            let idx = s.events.scrollTop + i
            guard idx < rows.count else { break }
            let seq = rows[idx]
            guard seq >= oldest, seq < tail.nextSeq else { continue }
            let entry = tail[seq - oldest]
            let y = L.listTop + i
            let selected = seq == s.events.selectedSeq
            switch entry.kind {
            case .gap(let from, let to):
                let text = "── gap \(String(format: "%.1f", to - from)) s: messages published \(timeText(from, timeZone))–\(timeText(to, timeZone)) were lost (reconnected) "
                g.fill(y: y, role: .gap)
                g.put(0, y, text + String(repeating: "─", count: max(0, g.width)), .gap)
            case .note(let t):
                g.put(0, y, "── " + t, .note)
            case .message(let m):
                let base: Role = selected ? .selected : .normal
                if selected { g.fill(y: y, role: .selected) }
                g.put(0, y, timeText(m.receivedAt, timeZone), selected ? .selected : .dim)
                g.put(timeW + 1, y, runs: Escaper.runs(m.channel, maxScalars: chanW * 2), base, maxX: timeW + 1 + chanW)
                if showPattern, let p = m.pattern {
                    g.put(timeW + 1 + chanW + 1, y, runs: Escaper.runs(p, maxScalars: patW * 2), selected ? .selected : .dim, maxX: payX - 1)
                }
                let size = entry.originalSize ?? m.payload.count
                var maxX = g.width
                if size > 1024 && g.width - payX >= 24 {
                    let tag = " [\(formatBytes(Int64(size)))]"
                    maxX = g.width - displayWidth(tag)
                    g.put(maxX, y, tag, selected ? .selected : .dim)
                }
                g.put(payX, y, runs: payloadRuns(m.payload, maxScalars: (maxX - payX) * 2 + 8), base, maxX: maxX)
            }
        }
        if s.events.detailOpen { detail(&g, s, tail: tail, L, timeZone) }
        else if s.events.showChannels { channels(&g, s, tail: tail, L) }
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

    static func detail(_ g: inout CellGrid, _ s: AppState, tail: ChannelTail, _ L: EventsLayout, _ tz: TimeZone) {
        guard L.paneHeight > 0, let seq = s.events.selectedSeq, seq >= tail.oldestSeq, seq < tail.nextSeq else { return }
        let entry = tail[seq - tail.oldestSeq]
        var y = L.paneTop
        g.fill(y: y, role: .columnHeader)
        guard let m = entry.message else {
            g.put(0, y, " details: a marker, not a message", .columnHeader)
            return
        }
        var head = " #\(seq) · \(timeText(m.receivedAt, tz)) · \(Escaper.string(m.channel, maxScalars: 200))"
        if let p = m.pattern { head += " · pattern \(Escaper.string(p, maxScalars: 200))" }
        head += " · \(formatBytes(Int64(entry.originalSize ?? m.payload.count)))"
        if entry.originalSize != nil { head += " (stored truncated)" }
        g.put(0, y, head, .columnHeader)
        y += 1
        let lines = detailLines(m.payload, width: g.width)
        let room = L.paneTop + L.paneHeight - y
        for (i, line) in lines.prefix(max(0, room)).enumerated() {
            if i == room - 1 && lines.count > room {
                g.put(1, y, "… \(lines.count - i) more lines (w writes the whole message)", .dim)
                break
            }
            g.put(1, y, runs: line, .normal)
            y += 1
        }
    }

    /// Pretty JSON, coloured; or escaped text wrapped to the width.
    static func detailLines(_ p: Bytes, width: Int) -> [[TextRun]] {
        if p.count <= 1 << 20, let j = JSONParser.parse(p) {
            return j.prettyLines().prefix(2000).map { line in colourJSON(line) }
        }
        let runs = Escaper.runs(p, maxScalars: 64 * 1024)
        var lines: [[TextRun]] = [[]]
        var w = 0
        let maxW = max(10, width - 2)
        for r in runs {
            for ch in r.text {
                let cw = displayWidth(String(ch))
                if w + cw > maxW { lines.append([]); w = 0 }
                if let last = lines[lines.count - 1].last, last.isEscape == r.isEscape {
                    lines[lines.count - 1][lines[lines.count - 1].count - 1].text.append(ch)
                } else {
                    lines[lines.count - 1].append(TextRun(String(ch), isEscape: r.isEscape))
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

    static func channels(_ g: inout CellGrid, _ s: AppState, tail: ChannelTail, _ L: EventsLayout) {
        guard L.paneHeight > 0 else { return }
        var y = L.paneTop
        g.fill(y: y, role: .columnHeader)
        g.put(0, y, " CHANNEL", .columnHeader)
        g.put(g.width - 32, y, padLeft("TOTAL", 10) + padLeft("MSG/S", 10) + padLeft("LAST", 12), .columnHeader)
        y += 1
        let sorted = tail.channels.sorted { a, b in
            let ra = a.value.rate(at: s.now), rb = b.value.rate(at: s.now)
            return ra != rb ? ra > rb : (a.value.total != b.value.total ? a.value.total > b.value.total : a.key.lexicographicallyPrecedes(b.key))
        }
        for (name, st) in sorted {
            if y >= L.paneTop + L.paneHeight { break }
            g.put(1, y, runs: Escaper.runs(name, maxScalars: 200), .normal, maxX: g.width - 33)
            let ago = max(0, s.now - st.lastSeen)
            g.put(g.width - 32, y, padLeft("\(st.total)", 10) + padLeft(String(format: "%.1f", st.rate(at: s.now)), 10) + padLeft(ago < 1 ? "now" : formatDuration(Int64(ago * 1000)) + " ago", 12), .normal)
            y += 1
        }
    }
}
