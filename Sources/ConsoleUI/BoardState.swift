import RedisProtocol
import OpsCore

/// How a board view orders and judges its rows (Rate limits, Locks).
public struct BoardRules<Row: BoardRow> {
    /// The view's order (flagged rows first by default).
    public var precedes: (Row, Row) -> Bool
    /// The row's state word: `state:WORD` in the filter keeps the rows in that state.
    public var state: (Row) -> String
    /// Worth a look (n/N go from one to the next; `state:flagged` keeps them).
    public var flagged: (Row) -> Bool
    /// Whether the row is exactly what the operator typed (`=user:1234` keeps only those;
    /// with a plain substring they are ranked first).
    public var isExact: (Row, Bytes) -> Bool
    public init(precedes: @escaping (Row, Row) -> Bool, state: @escaping (Row) -> String, flagged: @escaping (Row) -> Bool,
                isExact: @escaping (Row, Bytes) -> Bool) {
        self.precedes = precedes; self.state = state; self.flagged = flagged; self.isExact = isExact
    }
}

/// A board's filter as typed: words that must all hold — `state:WORD` (a state, or
/// `flagged`), `=NAME` (exactly that row), anything else a substring of the key (any case).
public struct BoardFilter: Sendable, Equatable {
    public let text: String
    public private(set) var state: String?
    public private(set) var exact: Bytes?
    public private(set) var needles: [Bytes] = []
    /// The substring as typed (one word), for ranking an exact match first.
    public private(set) var word: Bytes?

    public init(_ text: String) {
        self.text = text
        for w in text.split(separator: " ") {
            if w.lowercased().hasPrefix("state:"), w.count > 6 { state = String(w.dropFirst(6)).lowercased() }
            else if w.hasPrefix("="), w.count > 1 { exact = Bytes(utf8: String(w.dropFirst())) }
            else { needles.append(Bytes(utf8: w.lowercased())) }
        }
        let words = text.split(separator: " ")
        if needles.count == 1, words.count == 1 { word = Bytes(utf8: String(words[0])) }
    }

    public var isEmpty: Bool { state == nil && exact == nil && needles.isEmpty }

    public func matches<Row>(_ r: Row, _ rules: BoardRules<Row>) -> Bool {
        if let st = state {
            if st == "flagged" { if !rules.flagged(r) { return false } }
            else if rules.state(r) != st { return false }
        }
        if let e = exact, !rules.isExact(r, e) { return false }
        for n in needles where !TailFilter.contains(r.key, n) { return false }
        return true
    }

    /// The filter text with its state word replaced (nil: removed), the other words kept.
    public func withState(_ st: String?) -> String {
        var words = text.split(separator: " ").map(String.init).filter { !$0.lowercased().hasPrefix("state:") }
        if let st { words.insert("state:" + st, at: 0) }
        return words.joined(separator: " ")
    }
}

/// The state of a view over a whole board (Rate limits, Locks): every row read, the rows
/// shown (filtered, in the view's order), the cursor, and when things were last read.
/// Work is done when the rows or the filter change, never per key press or per event.
public struct BoardState<Row: BoardRow>: Sendable, Equatable {
    public var rows: [Row] = []
    public var index: [Bytes: Int] = [:]
    /// Rows shown (indices into `rows`), filtered and in order.
    public var visible: [Int] = []
    public var filter = ""
    public var loaded = false
    public var scanning = false
    public var truncated = false
    public var error: String?
    public var lastFull: Double = 0
    public var fullCost = 0
    public var lastRefresh: Double = 0
    public var selectedKey: Bytes?
    public var cursor = 0
    public var scrollTop = 0
    public init() {}

    public func shown(_ i: Int) -> Row { rows[visible[i]] }
    public var selected: Row? { selectedKey.flatMap { index[$0] }.map { rows[$0] } }

    mutating func reindex() {
        var ix: [Bytes: Int] = [:]
        ix.reserveCapacity(rows.count)
        for (i, r) in rows.enumerated() { ix[r.key] = i }
        index = ix
    }

    /// Row `i` comes before row `j`: an exact match of the typed word first, then the
    /// view's order, then as read.
    func before(_ i: Int, _ j: Int, _ rules: BoardRules<Row>, exactWord: Bytes?) -> Bool {
        if let w = exactWord {
            let ei = rules.isExact(rows[i], w), ej = rules.isExact(rows[j], w)
            if ei != ej { return ei }
        }
        if rules.precedes(rows[i], rows[j]) { return true }
        if rules.precedes(rows[j], rows[i]) { return false }
        return i < j
    }

    /// The rows shown: those the filter keeps, in the view's order.
    mutating func recompute(_ rules: BoardRules<Row>) {
        let q = BoardFilter(filter)
        var idx = q.isEmpty ? Array(rows.indices) : rows.indices.filter { q.matches(rows[$0], rules) }
        idx.sort { before($0, $1, rules, exactWord: q.word) }
        visible = idx
    }

    /// A full reading replaces the rows; a search of the server adds what it found.
    mutating func absorb(_ r: BoardReading<Row>, _ rules: BoardRules<Row>) {
        if r.match != nil {
            for row in r.rows {
                if let i = index[row.key] { rows[i] = row } else { index[row.key] = rows.count; rows.append(row) }
            }
        } else {
            rows = r.rows
            lastFull = r.at
            fullCost = r.commands
            truncated = r.truncated
            scanning = false
            reindex()
        }
        loaded = true
        error = nil
        recompute(rules)
    }

    /// Rows read again replace theirs and move to where they now belong (a counter that
    /// became blocked rises to the blocked rows): the work follows the rows read, not the
    /// board. Rows gone since are removed. Returns the fresh rows.
    mutating func absorbRefresh(_ fresh: [Row], _ rules: BoardRules<Row>) -> [Row] {
        var gone = Set<Bytes>()
        var updated: [Row] = []
        var changed: [Int] = []
        for r in fresh {
            if r.isGone { gone.insert(r.key); continue }
            if let i = index[r.key] {
                if rows[i] != r { changed.append(i) }
                rows[i] = r
                updated.append(r)
            }
        }
        if !changed.isEmpty { reposition(changed, rules) }
        if !gone.isEmpty { remove(gone, rules) }
        return updated
    }

    /// Takes rows out of the shown list and puts back, in order, those the filter keeps.
    mutating func reposition(_ changed: [Int], _ rules: BoardRules<Row>) {
        let q = BoardFilter(filter)
        let set = Set(changed)
        visible.removeAll { set.contains($0) }
        for i in set.sorted() where q.isEmpty || q.matches(rows[i], rules) {
            var lo = 0, hi = visible.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if before(visible[mid], i, rules, exactWord: q.word) { lo = mid + 1 } else { hi = mid }
            }
            visible.insert(i, at: lo)
        }
    }

    mutating func remove(_ keys: Set<Bytes>, _ rules: BoardRules<Row>) {
        guard rows.contains(where: { keys.contains($0.key) }) else { return }
        rows.removeAll { keys.contains($0.key) }
        reindex()
        recompute(rules)
    }

    mutating func failed(_ why: String) {
        error = why
        loaded = true
        scanning = false
    }

    mutating func move(_ a: Action, page: Int) {
        guard !visible.isEmpty else { return }
        cursor = ListNav.step(a, from: cursor, count: visible.count, page: page)
        selectedKey = shown(cursor).key
    }

    /// Keeps the cursor on the selected key (rows re-sorted or filtered) and inside the window.
    mutating func sync(height: Int) {
        let n = visible.count
        if n == 0 { cursor = 0; scrollTop = 0; selectedKey = nil; return }
        if let k = selectedKey, let ri = index[k] {
            if cursor >= n || visible[cursor] != ri, let pos = visible.firstIndex(of: ri) { cursor = pos }
        }
        cursor = max(0, min(cursor, n - 1))
        selectedKey = shown(cursor).key
        scrollTop = ListNav.window(scrollTop, keeping: cursor, height: max(1, height), count: n)
    }

    /// The keys of the rows on screen.
    func onScreen(height: Int) -> [Bytes] {
        var keys: [Bytes] = []
        var i = scrollTop
        while i < visible.count && i < scrollTop + height { keys.append(shown(i).key); i += 1 }
        return keys
    }

    /// Typing in the filter: the rows shown narrow at once; the cursor goes to the first.
    mutating func setFilter(_ text: String, _ rules: BoardRules<Row>) {
        filter = text
        recompute(rules)
        cursor = 0
        selectedKey = nil
    }

    /// n / N: the next (previous) flagged row after (before) the cursor, round the end.
    /// Returns false when no row shown is flagged.
    /// nil when no row shown is flagged; else whether it went round the end (as vim's `n`
    /// does, and says so).
    mutating func jumpFlagged(forward: Bool, _ rules: BoardRules<Row>) -> Bool? {
        let n = visible.count
        guard n > 0 else { return nil }
        for step in 1...n {
            let raw = cursor + (forward ? step : -step)
            let i = (raw % n + n) % n
            if rules.flagged(rows[visible[i]]) {
                cursor = i
                selectedKey = rows[visible[i]].key
                return raw != i
            }
        }
        return nil
    }

    /// Reads due: the full set when its cost allows, the rows on screen every `every` seconds.
    mutating func due(now: Double, every: Double, interval: Double, height: Int) -> (full: Bool, refresh: [Bytes]) {
        var full = false
        var keys: [Bytes] = []
        if loaded, !scanning, now - lastFull >= interval { scanning = true; full = true }
        if loaded, now - lastRefresh >= every {
            keys = onScreen(height: height)
            if let k = selectedKey, !keys.contains(k) { keys.append(k) }
            if !keys.isEmpty { lastRefresh = now }
        }
        return (full, keys)
    }
}

/// Whether `typed` names `key` exactly: the full key, the key without the prefix, or its
/// last `:` segment (`=4242` names `app:workspace:4242`; `=user:1234` a counter's identifier).
func exactName(_ key: Bytes, _ typed: Bytes, _ schema: KeySchema) -> Bool {
    if key == typed { return true }
    guard let rel = schema.relative(key) else { return false }
    if rel == typed { return true }
    if let i = rel.lastIndex(of: UInt8(ascii: ":")) { return rel[(i + 1)...].elementsEqual(typed) }
    return false
}
