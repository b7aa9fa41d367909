import Foundation
import RedisProtocol
import OpsCore

/// Renders the whole console into a grid. Pure: same state and tail, same grid. Each view
/// draws only the rows on screen.
public enum Screen {
    public static let minWidth = 20
    public static let minHeight = 6

    /// `now`: the moment of drawing (default: the state's clock).
    public static func render(_ s: AppState, tail: ChannelTail, timeZone: TimeZone = .current, now: Double? = nil) -> CellGrid {
        var g = CellGrid(width: s.width, height: s.height)
        if s.width < minWidth || s.height < minHeight {
            g.put(0, 0, "too small", .warning)
            g.put(0, 1, "\(s.width)x\(s.height)<\(minWidth)x\(minHeight)", .dim)
            g.put(0, 2, "q quits", .dim)
            return g
        }
        header(&g, s)
        tabs(&g, s)
        module(s.view).render(&g, s, RenderContext(tail: tail, timeZone: timeZone, now: max(s.now, now ?? s.now)))
        footer(&g, s)
        if let w = s.write { WriteFlowModule.render(&g, s, w) }
        if let a = s.audit { AuditModule.render(&g, s, a) }
        if let d = s.doctor { DoctorModule.render(&g, s, d) }
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
        if let where_ = tailPlace(s.session) { parts.append(where_) }
        if let c = s.session.cluster {
            parts.append("cluster \(c.shards) shards/\(c.nodes) nodes" + (c.readsFromReplicas ? ", lists from replicas" : ""))
        }
        if s.session.tls {
            parts.append((s.session.insecure ? "TLS (UNVERIFIED)" : "TLS") + (s.session.tlsBecause.map { " (\($0))" } ?? ""))
        }
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

    /// Where the tail is when it is not on the command connection's node: after a failover the
    /// subscriber can stay on the old primary, now a replica (it still gets every PUBLISH).
    static func tailPlace(_ s: SessionInfo) -> String? {
        guard let sub = s.subscriberNode, let cmd = s.commandNode, sub.runID != cmd.runID else { return nil }
        if s.replicaPorts.contains(sub.port) { return "tail on a replica (:\(sub.port))" }
        return "tail on another node (:\(sub.port)\(sub.role.map { ", \($0) when subscribed" } ?? ""))"
    }

    static func worst(_ a: LinkState, _ b: LinkState) -> LinkState {
        func rank(_ l: LinkState) -> Int {
            switch l { case .connected: return 0; case .connecting: return 1; case .reconnecting: return 2; case .failed: return 3 }
        }
        return rank(a) >= rank(b) ? a : b
    }

    static func tabs(_ g: inout CellGrid, _ s: AppState) {
        var x = 0
        let narrow = g.width < 60
        for v in ViewID.allCases {
            let label = narrow ? " \(v.rawValue) \(v.title.prefix(4)) " : " \(v.rawValue) \(v.title) "
            x = g.put(x, 1, label, v == s.view ? .tabActive : .tabInactive)
            x += 1
        }
    }

    static func footer(_ g: inout CellGrid, _ s: AppState) {
        let y = g.height - 2
        g.fill(y: y, role: .footerText)
        if let p = s.prompt, !p.completions.isEmpty {
            let x = g.put(0, y, " " + p.completionsNote + " ", .dim)
            g.put(x, y, p.completions.joined(separator: "  "), .info)
        } else if s.prompt != nil || s.confirm != nil, let f = s.flash, f.view == nil || f.view == s.view {
            // The last line holds the prompt: a message about it shows above it.
            g.put(0, y, " " + f.text, f.level == .error ? .error : (f.level == .warning ? .warning : .info))
        } else {
            // `? help` stays at the right end whatever the width; the view's keys fill the rest.
            let helpEntry = " ? help "
            let limit = g.width - displayWidth(helpEntry)
            var x = 0
            // When they do not all fit, the last ones go first — but the view's first key,
            // `R rescan` (the contract puts it in the footer of Keys, Locks and Rate limits),
            // `/ filter` and `q quit` stay.
            var entries = Bindings.footer(for: s.view).filter { $0.0 != "?" }
            func need(_ e: (String, String)) -> Int { displayWidth(e.0) + displayWidth(e.1) + 3 }
            let kept: Set<String> = ["R", "/", "q"]
            while entries.reduce(0, { $0 + need($1) }) > limit,
                  let i = entries.indices.dropFirst().last(where: { !kept.contains(entries[$0].0) }) {
                entries.remove(at: i)
            }
            for (k, label) in entries {
                let need = need((k, label))
                if x + need > limit { break }
                x = g.put(x, y, " " + k, .footerKey)
                x = g.put(x, y, " " + label + " ", .footerText)
            }
            let hx = g.put(limit, y, " ?", .footerKey)
            g.put(hx, y, " help ", .footerText)
        }
        let y2 = g.height - 1
        if let c = s.confirm {
            confirmation(&g, c)
        } else if let p = s.prompt {
            // The label gives way to the text: at least 24 columns stay for typing.
            let x1 = g.put(0, y2, endEllipsis(p.label, width: max(2, g.width - 24)), .prompt)
            let (t, cc) = LineEditor.view(p, width: g.width - x1)
            let x2 = g.put(x1, y2, t, .normal)
            if p.suggested { g.select(y: y2, from: x1, to: x2) }
            else if x1 + cc < x2 { g.select(y: y2, from: x1 + cc, to: x1 + cc + 1) }
            else { g.put(x2, y2, "▏", .prompt) }
        } else if let f = s.flash, f.view == nil || f.view == s.view {
            g.put(0, y2, f.text, f.level == .error ? .error : (f.level == .warning ? .warning : .info))
        }
    }

    /// The lines of a y/n question: the question and what to know, the subject whole (wrapped,
    /// never cut, on lines of its own), then the hint.
    public static func confirmationLines(_ c: Confirmation, width: Int) -> [(String, Role)] {
        let w = max(1, width - 2)
        var lines: [(String, Role)] = wrapWords(c.question, width: w).map { ($0, .readOnly) }
        if !c.subject.isEmpty { lines += wrapChars(c.subject, width: w - 2).map { ("  " + $0, .title) } }
        if !c.detail.isEmpty { lines += wrapWords(c.detail, width: w).map { ($0, .readOnly) } }
        lines += wrapWords(Confirmation.hint, width: w).map { ($0, .prompt) }
        return lines
    }

    /// The question sits at the bottom, over the footer and as many rows as it needs. When
    /// the terminal is too short for all of it, the subject keeps its beginning and end and
    /// says how much is hidden; the hint stays.
    static func confirmation(_ g: inout CellGrid, _ c: Confirmation) {
        var lines = confirmationLines(c, width: g.width)
        let room = max(2, g.height - 3)
        if lines.count > room {
            let keep = max(0, room - 2)
            let head = Array(lines.prefix(keep / 2 + 1))
            let tail = Array(lines.suffix(max(1, keep - keep / 2)))
            lines = head + [("  … \(lines.count - head.count - tail.count) more line(s) of it; a bigger terminal shows it all", .warning)] + tail
            lines = Array(lines.suffix(room))
        }
        let top = g.height - lines.count
        for (i, (text, role)) in lines.enumerated() {
            g.fill(y: top + i, role: .danger)
            g.put(1, top + i, text, role == .readOnly ? .readOnly : role, maxX: g.width - 1)
        }
    }

    /// Help for the view on screen, sized to the terminal, its lines wrapped (never cut), scrollable.
    static func help(_ g: inout CellGrid, _ s: AppState) {
        var seen = Set<String>()
        let rows = Bindings.active(in: s.view).filter { seen.insert($0.label + $0.help).inserted }
        let labelW = 8
        let w = min(g.width - 2, 110)
        let textW = max(10, w - 4 - labelW - 1)
        var lines: [(String, String)] = []
        for b in rows {
            var first = true
            for l in wrapWords(b.help, width: textW) { lines.append((first ? b.label : "", l)); first = false }
        }
        // The command line's verbs, so `:help` answers what `:` can do.
        lines.append(("", ""))
        lines.append((":", "commands (Tab completes key names):"))
        for c in CommandLineModule.commands {
            for l in wrapWords(c.usage + " — " + c.help, width: textW) { lines.append(("", l)) }
        }
        let h = min(g.height - 2, lines.count + 2)
        let inner = Modal.frame(&g, title: "Help · \(s.view.title) · any key closes\(lines.count > h - 2 ? " · j/k scroll" : "")", width: w, height: h)
        let room = inner.h
        let top = max(0, min(s.helpScroll, max(0, lines.count - room)))
        for i in 0..<room {
            let idx = top + i
            guard idx < lines.count else { break }
            g.put(inner.x, inner.y + i, lines[idx].0, .footerKey, maxX: inner.x + labelW)
            g.put(inner.x + labelW + 1, inner.y + i, lines[idx].1, .normal, maxX: inner.x + inner.w)
        }
    }
}

/// Splits text into lines of at most `width` columns anywhere (a key name has no spaces to
/// break at, and must be shown whole).
public func wrapChars(_ text: String, width: Int) -> [String] {
    var lines: [String] = []
    var cur = ""
    var curW = 0
    for ch in text {
        let w = displayWidth(String(ch))
        if curW + w > max(1, width) && !cur.isEmpty { lines.append(cur); cur = ""; curW = 0 }
        cur.append(ch); curW += w
    }
    if !cur.isEmpty || lines.isEmpty { lines.append(cur) }
    return lines
}

/// Splits text into lines of at most `width` columns at spaces (a longer word is cut).
public func wrapWords(_ text: String, width: Int) -> [String] {
    var lines: [String] = []
    var cur = ""
    for word in text.split(separator: " ", omittingEmptySubsequences: false) {
        let w = String(word)
        if cur.isEmpty { cur = w }
        else if displayWidth(cur) + 1 + displayWidth(w) <= width { cur += " " + w }
        else { lines.append(cur); cur = w }
        while displayWidth(cur) > width {
            var head = ""
            for ch in cur { if displayWidth(head + String(ch)) > width { break }; head.append(ch) }
            lines.append(head)
            cur = String(cur.dropFirst(head.count))
        }
    }
    if !cur.isEmpty || lines.isEmpty { lines.append(cur) }
    return lines
}
