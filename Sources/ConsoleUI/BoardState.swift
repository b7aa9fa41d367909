import RedisProtocol
import OpsCore

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

    /// The rows shown: those whose key contains the filter (any case), in `order` (nil: as read).
    mutating func recompute(order: ((Row, Row) -> Bool)?) {
        let needle = Bytes(utf8: filter.lowercased())
        var idx = needle.isEmpty ? Array(rows.indices) : rows.indices.filter { TailFilter.contains(rows[$0].key, needle) }
        if let order { idx.sort { order(rows[$0], rows[$1]) || (!order(rows[$1], rows[$0]) && $0 < $1) } }
        visible = idx
    }

    /// A full reading replaces the rows; a search of the server adds what it found.
    mutating func absorb(_ r: BoardReading<Row>, order: ((Row, Row) -> Bool)?) {
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
        recompute(order: order)
    }

    /// Rows read again replace theirs in place (the order stays until the next full reading,
    /// so nothing jumps under the cursor); rows gone since are removed. Returns the fresh rows.
    mutating func absorbRefresh(_ fresh: [Row], order: ((Row, Row) -> Bool)?) -> [Row] {
        var gone = Set<Bytes>()
        var updated: [Row] = []
        for r in fresh {
            if r.isGone { gone.insert(r.key); continue }
            if let i = index[r.key] { rows[i] = r; updated.append(r) }
        }
        if !gone.isEmpty { remove(gone, order: order) }
        return updated
    }

    mutating func remove(_ keys: Set<Bytes>, order: ((Row, Row) -> Bool)?) {
        guard rows.contains(where: { keys.contains($0.key) }) else { return }
        rows.removeAll { keys.contains($0.key) }
        reindex()
        recompute(order: order)
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
    mutating func setFilter(_ text: String, order: ((Row, Row) -> Bool)?) {
        filter = text
        recompute(order: order)
        cursor = 0
        selectedKey = nil
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
