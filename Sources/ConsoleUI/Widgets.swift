import RedisProtocol
import OpsCore

/// A column of a table: its title, its width, whether it may grow into the room left, and
/// how much it matters when the terminal is narrow (the lowest priority goes first).
public struct Column: Sendable {
    public var id: String
    public var title: String
    /// The width it needs (its minimum).
    public var width: Int
    /// How many more columns it may take from what is left (0: fixed).
    public var grow: Int
    public var priority: Int
    public var alignRight: Bool
    public init(_ id: String, _ title: String, width: Int, grow: Int = 0, priority: Int, alignRight: Bool = false) {
        self.id = id; self.title = title; self.width = width; self.grow = grow; self.priority = priority; self.alignRight = alignRight
    }
}

/// Columns placed on a row of a given width.
public struct TableLayout: Sendable {
    public struct Placed: Sendable { public var column: Column; public var x: Int; public var w: Int }
    public var placed: [Placed]

    /// Drops the least important columns until the rest fit, then gives the room left to
    /// the growing ones (most important first).
    public static func fit(_ columns: [Column], width: Int) -> TableLayout {
        var kept = columns
        func need(_ cs: [Column]) -> Int { cs.reduce(0) { $0 + $1.width } + max(0, cs.count - 1) }
        while need(kept) > width, kept.count > 1, let drop = kept.indices.min(by: { kept[$0].priority < kept[$1].priority }) {
            kept.remove(at: drop)
        }
        var widths = kept.map(\.width)
        var left = max(0, width - need(kept))
        // Columns that grow a little get their room first (in order), the open-ended ones last.
        for i in kept.indices.sorted(by: { (kept[$0].grow >= 1000 ? 1 : 0, $0) < (kept[$1].grow >= 1000 ? 1 : 0, $1) }) where left > 0 && kept[i].grow > 0 {
            let extra = min(left, kept[i].grow)
            widths[i] += extra
            left -= extra
        }
        if kept.count == 1 { widths[0] = max(0, min(widths[0] + left, width)) }
        var x = 0
        var placed: [Placed] = []
        for (i, c) in kept.enumerated() {
            placed.append(Placed(column: c, x: x, w: min(widths[i], max(0, width - x))))
            x += widths[i] + 1
        }
        return TableLayout(placed: placed)
    }

    public func has(_ id: String) -> Bool { placed.contains { $0.column.id == id } }
    public func slot(_ id: String) -> Placed? { placed.first { $0.column.id == id } }

    public func header(_ g: inout CellGrid, y: Int, sortedBy: String? = nil) {
        g.fill(y: y, role: .columnHeader)
        for p in placed {
            var t = p.column.title
            // The sort marker always shows, even if the title must give up a letter for it.
            if p.column.id == sortedBy { t = (displayWidth(t) + 1 > p.w && p.w > 1 ? String(t.prefix(p.w - 1)) : t) + "▾" }
            g.put(p.x, y, p.column.alignRight ? padLeft(t, p.w) : t, .columnHeader, maxX: p.x + p.w)
        }
    }

    /// Writes plain text in a column (clipped with an ellipsis, aligned as the column says).
    public func put(_ g: inout CellGrid, y: Int, _ id: String, _ text: String, _ role: Role) {
        guard let p = slot(id), p.w > 0 else { return }
        let t = displayWidth(text) > p.w ? clip(text, p.w) : text
        g.put(p.x, y, p.column.alignRight ? padLeft(t, p.w) : t, role, maxX: p.x + p.w)
    }

    /// Writes escaped runs (server text) in a column.
    public func put(_ g: inout CellGrid, y: Int, _ id: String, runs: [TextRun], _ role: Role) {
        guard let p = slot(id), p.w > 0 else { return }
        g.put(p.x, y, runs: runs, role, maxX: p.x + p.w)
    }
}

/// Cursor movement and scrolling, the same for every list.
public enum ListNav {
    /// The row a movement lands on (clamped to the rows there are).
    public static func step(_ a: Action, from cur: Int, count: Int, page: Int) -> Int {
        var idx = cur
        switch a {
        case .up: idx -= 1
        case .down: idx += 1
        case .pageUp: idx -= max(1, page)
        case .pageDown: idx += max(1, page)
        case .top: idx = 0
        case .bottom: idx = count - 1
        default: break
        }
        return max(0, min(count - 1, idx))
    }

    /// The first row of a window of `height` rows that keeps row `idx` in sight.
    public static func window(_ top: Int, keeping idx: Int, height: Int, count: Int) -> Int {
        guard height > 0 else { return 0 }
        var top = top
        if idx < top { top = idx }
        if idx >= top + height { top = idx - height + 1 }
        return max(0, min(top, max(0, count - height)))
    }

    public static func isMove(_ a: Action) -> Bool {
        switch a { case .up, .down, .pageUp, .pageDown, .top, .bottom: return true; default: return false }
    }
}

/// A list area with an optional pane under it (details, inspector): where each begins.
public struct SplitLayout: Equatable, Sendable {
    public var listTop: Int
    public var listHeight: Int
    public var paneTop: Int
    public var paneHeight: Int

    /// `top` is the column-header row; the list starts under it.
    public static func make(top: Int, height: Int, pane: Bool, paneShare: Double = 0.5, minPane: Int = 3) -> SplitLayout {
        let total = max(0, height - 1)
        if pane {
            let p = min(max(Int(Double(total) * paneShare), minPane), total)
            return SplitLayout(listTop: top + 1, listHeight: total - p, paneTop: top + 1 + total - p, paneHeight: p)
        }
        return SplitLayout(listTop: top + 1, listHeight: total, paneTop: top + 1 + total, paneHeight: 0)
    }
}

/// Scrollable lines in a pane: a title bar, the lines from `scroll`, and where we are.
public enum TextPane {
    /// Draws `lines` under a title at `top` for `height` rows, across the screen or within
    /// `x..<x+width` (inside a frame); returns the scroll actually used.
    @discardableResult
    public static func draw(_ g: inout CellGrid, top: Int, height: Int, title: String, lines: [[TextRun]], scroll: Int, more: String? = nil,
                            x: Int = 0, width: Int? = nil) -> Int {
        guard height > 0 else { return 0 }
        let maxX = x + (width ?? (g.width - x))
        g.fill(y: top, from: x, to: maxX, role: .columnHeader)
        let room = height - 1
        let maxScroll = max(0, lines.count - room)
        let sc = max(0, min(scroll, maxScroll))
        var head = title
        if lines.count > room && room > 0 {
            head += " · lines \(sc + 1)–\(min(lines.count, sc + room)) of \(lines.count) (PgUp/PgDn)"
        }
        if let more { head += " · " + more }
        g.put(x, top, head, .columnHeader, maxX: maxX)
        for i in 0..<room {
            let idx = sc + i
            guard idx < lines.count else { break }
            g.put(x + 1, top + 1 + i, runs: lines[idx], .normal, maxX: maxX)
        }
        return sc
    }
}

/// A framed box over the view, centred, sized to the terminal.
public enum Modal {
    /// Draws the frame and title; returns the inner area (x, y, width, height).
    public static func frame(_ g: inout CellGrid, title: String, width: Int, height: Int) -> (x: Int, y: Int, w: Int, h: Int) {
        let w = max(4, min(g.width, width)), h = max(3, min(g.height, height))
        let x0 = max(0, (g.width - w) / 2), y0 = max(0, (g.height - h) / 2)
        for y in y0..<min(g.height, y0 + h) { g.blank(y: y, from: x0, to: x0 + w) }
        g.put(x0, y0, "┌" + String(repeating: "─", count: max(0, w - 2)) + "┐", .dim)
        if y0 + h - 1 < g.height { g.put(x0, y0 + h - 1, "└" + String(repeating: "─", count: max(0, w - 2)) + "┘", .dim) }
        for y in (y0 + 1)..<max(y0 + 1, y0 + h - 1) { g.put(x0, y, "│", .dim); g.put(x0 + w - 1, y, "│", .dim) }
        g.put(x0 + 2, y0, " \(title) ", .title, maxX: x0 + w - 1)
        return (x0 + 2, y0 + 1, max(0, w - 4), max(0, h - 2))
    }
}

/// A status line of parts separated by " · ": the first is always drawn (clipped if it must
/// be); each later part only if it fits whole, so nothing is cut mid-word.
public enum StatusLine {
    public static func draw(_ g: inout CellGrid, y: Int, _ parts: [(String, Role)]) {
        var x = 0
        for (i, (t, role)) in parts.enumerated() {
            if i == 0 { x = g.put(0, y, t, role); continue }
            if x + 3 + displayWidth(t) > g.width { continue }
            x = g.put(x, y, " · ", .dim)
            x = g.put(x, y, t, role)
        }
    }
}

/// "now", "4s ago", "3m12s ago".
public func ago(_ seconds: Double) -> String {
    seconds < 1 ? "now" : formatDuration(Int64(seconds * 1000)) + " ago"
}

/// 1234567 → "1,234,567"
public func grouped(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}

/// Text cut to `width` columns in the middle: `workspace:42 t…=plan.changed`.
public func middleEllipsis(_ text: String, width: Int) -> String {
    guard displayWidth(text) > width else { return text }
    guard width > 1 else { return width == 1 ? "…" : "" }
    let chars = Array(text)
    var head = "", tail = ""
    var used = 0
    let room = width - 1
    var i = 0, j = chars.count - 1, fromHead = true
    while i <= j {
        let c = fromHead ? chars[i] : chars[j]
        let cw = displayWidth(String(c))
        if used + cw > room { break }
        used += cw
        if fromHead { head.append(c); i += 1 } else { tail = String(c) + tail; j -= 1 }
        fromHead.toggle()
    }
    return head + "…" + tail
}

/// Text cut to `width` columns at its end: `give the cache TTL to keys…`.
public func endEllipsis(_ text: String, width: Int) -> String {
    guard displayWidth(text) > width else { return text }
    guard width > 1 else { return width == 1 ? "…" : "" }
    var out = ""
    var w = 0
    for c in text {
        let cw = displayWidth(String(c))
        if w + cw > width - 2 { break }
        out.append(c); w += cw
    }
    return out + "… "
}

/// The active filter in a status line: always shown, escaped, cut in the middle to at most
/// half the width (the part before the filter must stay readable too).
public enum FilterText {
    public static func status(_ explained: String, width: Int) -> String {
        "filter: " + middleEllipsis(Escaper.string(Bytes(utf8: explained), escapeBackslash: false), width: max(12, width / 2 - 8))
    }
    /// A typed filter, quoted: `filter “workspaceId=42 type=plan.changed”`.
    public static func quoted(_ typed: String, width: Int) -> String {
        "filter “" + middleEllipsis(Escaper.string(Bytes(utf8: typed), escapeBackslash: false), width: max(12, width / 2 - 10)) + "”"
    }
}
