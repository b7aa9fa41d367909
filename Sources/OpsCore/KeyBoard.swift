import RedisProtocol
import RedisClient

/// A row of a board: one key and what was read about it.
public protocol BoardRow: Sendable, Equatable {
    var key: Bytes { get }
    /// The key was gone when read again.
    var isGone: Bool { get }
}

/// Reads the rows of a board, page by page (pipelined behind SCAN) and again later.
public protocol BoardReader: PageReader where Row: BoardRow, Token == Void {
    /// A read the user may not make (NOPERM): the listing stops with it.
    var refusal: ServerError? { get }
    /// The row for a key found gone when read again.
    func gone(_ key: Bytes, at: Double) -> Row
}

/// One reading of a board: every row (or those matching a search), in order.
public struct BoardReading<Row: BoardRow>: Sendable, Equatable {
    public var rows: [Row]
    /// More rows exist than the board holds.
    public var truncated: Bool
    /// Commands the reading cost the server (for pacing the next one).
    public var commands: Int
    public var at: Double
    /// The glob this reading covered (relative), nil for the whole board.
    public var match: String?
    public init(rows: [Row], truncated: Bool, commands: Int, at: Double, match: String?) {
        self.rows = rows; self.truncated = truncated; self.commands = commands; self.at = at; self.match = match
    }
}

/// Every key of one namespace (rate-limit counters, stampede locks), held whole so a filter
/// finds any of them: the full set read rarely, at a pace its cost allows, the rows on screen
/// read often. The console's Rate limits and Locks views and `redis-ops ratelimits` use it.
public final class KeyBoard<Reader: BoardReader> {
    public let nodes: NodeSet
    public let schema: KeySchema
    /// The namespace, a glob relative to the prefix.
    public let pattern: String
    /// Far above production sizes; past it the board says it holds only part.
    public var maxRows: Int
    let makeReader: () -> Reader
    let order: (Reader.Row, Reader.Row) -> Bool

    public init(nodes: NodeSet, schema: KeySchema, pattern: String, maxRows: Int,
                reader: @escaping () -> Reader, order: @escaping (Reader.Row, Reader.Row) -> Bool) {
        self.nodes = nodes; self.schema = schema; self.pattern = pattern; self.maxRows = maxRows
        self.makeReader = reader; self.order = order
    }

    /// Every row (or those matching `match`, a glob relative to the prefix), in order.
    public func scan(match: String? = nil, cancelled: @escaping () -> Bool = { false }) throws -> BoardReading<Reader.Row> {
        let reader = makeReader()
        let scan = KeyspaceScan(nodes: nodes, match: schema.fullGlob(match ?? pattern), reader: reader)
        scan.cancelled = cancelled
        var out: [Reader.Row] = []
        var truncated = false
        try scan.run { rows in
            out += rows
            if out.count >= maxRows { truncated = true; return false }
            return true
        }
        if let e = reader.refusal { throw RedisError.server(e) }
        out.sort(by: order)
        return BoardReading(rows: out, truncated: truncated, commands: scan.stats.commands, at: wallClockNow(), match: match)
    }

    /// Reads these rows again (on the nodes that own them); a key gone since comes back as such.
    public func refresh(_ keys: [Bytes]) throws -> [Reader.Row] {
        let reader = makeReader()
        let replies = try nodes.perKey(keys) { reader.request([$0]).commands }
        let at = wallClockNow()
        let out = zip(keys, replies).map { k, r in reader.rows([k], (), r[...]).first ?? reader.gone(k, at: at) }
        if let e = reader.refusal { throw RedisError.server(e) }
        return out
    }

    /// Seconds between full readings, so they cost at most `budget` commands/s on average.
    public static func rescanInterval(commands: Int, budget: Double = 1000, least: Double = 10, most: Double = 600) -> Double {
        min(most, max(least, Double(commands) / budget))
    }
}

public typealias RateLimitBoard = KeyBoard<CounterReader>
public typealias LockBoard = KeyBoard<LockReader>

extension KeyBoard where Reader == CounterReader {
    /// Every rate-limit counter, blocked first.
    public convenience init(nodes: NodeSet, schema: KeySchema) {
        self.init(nodes: nodes, schema: schema, pattern: schema.rateLimitPattern, maxRows: 1_000_000,
                  reader: { CounterReader(schema: schema) }, order: RateLimitCounter.ordered)
    }
}

extension KeyBoard where Reader == LockReader {
    /// Every stampede lock, stuck first, then the longest held.
    public convenience init(nodes: NodeSet, schema: KeySchema) {
        let exp = schema.lockTTL * 1000
        self.init(nodes: nodes, schema: schema, pattern: schema.lockPattern, maxRows: 200_000,
                  reader: { LockReader(schema: schema) }, order: { LockRow.ordered($0, $1, expectedMs: exp) })
    }
}
