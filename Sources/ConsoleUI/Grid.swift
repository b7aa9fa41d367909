/// Named colour roles; the terminal backend maps them to colours (or to bold/reverse
/// without colour), so views never name a colour.
public enum Role: UInt8, CaseIterable, Sendable {
    case normal, dim, header, headerBadge, tabActive, tabInactive, footerKey, footerText
    case selected, escape, gap, note, warning, error, info, ok, title, columnHeader
    case jsonKey, jsonString, jsonNumber, jsonLiteral, prompt, barFull, barEmpty, readOnly, danger
}

public struct Cell: Equatable, Sendable {
    /// One grapheme; "" for the right half of a wide character.
    public var text: String
    public var role: Role
    /// Part of the selected row: drawn highlighted, keeping the role's own colour.
    public var selected = false
    public init(_ text: String = " ", _ role: Role = .normal, selected: Bool = false) { self.text = text; self.role = role; self.selected = selected }
    public static let blank = Cell()
}

/// An in-memory screen: views render into it; the terminal backend draws only the
/// cells that changed; tests compare it with reviewed text snapshots.
public struct CellGrid: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * width + x] }
        set { cells[y * width + x] = newValue }
    }

    /// Fills a row segment with a role (background for bars and selections).
    public mutating func fill(y: Int, from x0: Int = 0, to x1: Int? = nil, role: Role) {
        guard y >= 0 && y < height else { return }
        let end = min(width, x1 ?? width)
        var x = max(0, x0)
        while x < end { self[x, y] = Cell(" ", role, selected: self[x, y].selected); x += 1 }
    }

    /// Blanks a row segment entirely, selection included (what an overlay covers is gone).
    public mutating func blank(y: Int, from x0: Int = 0, to x1: Int? = nil, role: Role = .normal) {
        guard y >= 0 && y < height else { return }
        let end = min(width, x1 ?? width)
        var x = max(0, x0)
        while x < end { self[x, y] = Cell(" ", role); x += 1 }
    }

    /// Marks a row segment as selected (drawn highlighted; roles keep their colours).
    public mutating func select(y: Int, from x0: Int = 0, to x1: Int? = nil) {
        guard y >= 0 && y < height else { return }
        var x = max(0, x0)
        let end = min(width, x1 ?? width)
        while x < end { cells[y * width + x].selected = true; x += 1 }
    }

    /// Writes already-safe text at (x, y), clipped at `maxX`; returns the next column.
    /// Wide characters take two cells; one that does not fit is replaced by a space.
    @discardableResult
    public mutating func put(_ x: Int, _ y: Int, _ text: String, _ role: Role = .normal, maxX: Int? = nil) -> Int {
        guard y >= 0 && y < height else { return x }
        let limit = min(width, maxX ?? width)
        var col = x
        for ch in text {
            if col >= limit { break }
            // Whatever a view hands us, only printable scalars reach the terminal: controls,
            // bidi and zero-width characters are dropped (views show them escaped first).
            var kept = String.UnicodeScalarView()
            var w = 0
            for u in ch.unicodeScalars {
                let sw = scalarWidth(u.value)
                if sw < 0 || mustEscape(u.value) || (sw == 0 && kept.isEmpty) { continue }
                kept.append(u)
                w += sw
            }
            if w == 0 { continue }
            w = min(w, 2)
            if col < 0 { col += w; continue }
            if col + w > limit {
                self[col, y] = Cell(" ", role, selected: self[col, y].selected); col += 1
                break
            }
            let sel = self[col, y].selected
            self[col, y] = Cell(String(kept), role, selected: sel)
            if w == 2 { self[col + 1, y] = Cell("", role, selected: self[col + 1, y].selected) }
            col += w
        }
        return col
    }

    /// Writes escaped runs (escapes in their own role) with an ellipsis when clipped.
    @discardableResult
    public mutating func put(_ x: Int, _ y: Int, runs: [TextRun], _ role: Role, maxX: Int? = nil, ellipsis: Bool = true) -> Int {
        let limit = min(width, maxX ?? width)
        let total = runs.reduce(0) { $0 + displayWidth($1.text) }
        if total <= limit - x || !ellipsis {
            var col = x
            for r in runs { col = put(col, y, r.text, r.isEscape ? .escape : (r.role ?? role), maxX: limit) }
            return col
        }
        var col = x
        for r in runs {
            col = put(col, y, r.text, r.isEscape ? .escape : (r.role ?? role), maxX: limit - 1)
            if col >= limit - 1 { break }
        }
        if limit - 1 >= x { put(limit - 1, y, "…", .dim, maxX: limit) }
        return limit
    }

    /// The screen as text lines (trailing spaces trimmed), for snapshots.
    public func lines() -> [String] {
        (0..<height).map { y in
            var s = ""
            for x in 0..<width { s += self[x, y].text }
            while s.hasSuffix(" ") { s.removeLast() }
            return s
        }
    }

    public var text: String { lines().joined(separator: "\n") }

    /// Which cells of a row are selected ("#") or not ("."), for tests of the highlight.
    public func selectionLine(_ y: Int) -> String {
        String((0..<width).map { self[$0, y].selected ? "#" : "." })
    }

    /// The roles of one row, one letter per cell (for snapshot tests of highlighting).
    public func roleLine(_ y: Int, legend: [Role: Character]) -> String {
        String((0..<width).map { legend[self[$0, y].role] ?? "." })
    }
}

/// Truncates plain text to `w` columns with an ellipsis.
public func clip(_ s: String, _ w: Int) -> String {
    if w <= 0 { return "" }
    if displayWidth(s) <= w { return s }
    var out = ""
    var used = 0
    for ch in s {
        var cw = 0
        for u in ch.unicodeScalars { cw += max(0, scalarWidth(u.value)) }
        if used + cw > w - 1 { break }
        out.append(ch); used += cw
    }
    return out + "…"
}

public func padRight(_ s: String, _ w: Int) -> String {
    let d = displayWidth(s)
    return d >= w ? clip(s, w) : s + String(repeating: " ", count: w - d)
}

public func padLeft(_ s: String, _ w: Int) -> String {
    let d = displayWidth(s)
    return d >= w ? clip(s, w) : String(repeating: " ", count: w - d) + s
}
