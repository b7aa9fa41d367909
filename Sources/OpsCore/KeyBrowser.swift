import RedisProtocol
import RedisClient

/// What we know about one key. Unknown fields (not permitted, or gone meanwhile) are nil.
public struct KeyInfo: Sendable, Equatable {
    public var key: Bytes
    public var type: String?
    public var ttl: TTLState?
    public var bytes: Int64?
    public var kind: KeyKind
    /// Wall-clock time of the reading (TTLs count down locally from it).
    public var readAt: Double
    /// What breaks the application's conventions (set by the reader, which knows them).
    public var issue: ConventionIssue?
    public init(key: Bytes, type: String?, ttl: TTLState?, bytes: Int64?, kind: KeyKind, readAt: Double, issue: ConventionIssue? = nil) {
        self.key = key; self.type = type; self.ttl = ttl; self.bytes = bytes; self.kind = kind; self.readAt = readAt; self.issue = issue
    }
    /// The key no longer exists (TYPE none, or PTTL -2).
    public var isGone: Bool { type == "none" || ttl == .gone }
}

/// Columns a key list can be sorted by.
public enum KeySort: String, Sendable, CaseIterable {
    case flagged, name, type, ttl, size, kind

    /// Strict order with the key as the tie-break: what breaks the conventions first (then
    /// by name), names ascending, types and kinds grouped, the soonest expiry first (no
    /// expiry, then unknown, last), the biggest first.
    public func precedes(_ a: KeyInfo, _ b: KeyInfo) -> Bool {
        switch self {
        case .flagged:
            let ra = ConventionIssue.rank(a.issue), rb = ConventionIssue.rank(b.issue)
            if ra != rb { return ra < rb }
        case .name: break
        case .type:
            let ta = a.type ?? "~", tb = b.type ?? "~"
            if ta != tb { return ta < tb }
        case .kind:
            if a.kind != b.kind { return a.kind.order < b.kind.order }
        case .ttl:
            let ra = Self.ttlRank(a), rb = Self.ttlRank(b)
            if ra != rb { return ra < rb }
        case .size:
            let sa = a.bytes ?? -1, sb = b.bytes ?? -1
            if sa != sb { return sa > sb }
        }
        return a.key.lexicographicallyPrecedes(b.key)
    }

    /// Absolute expiry time in ms, so rows read at different moments compare fairly.
    static func ttlRank(_ r: KeyInfo) -> Int64 {
        switch r.ttl {
        case .expiresIn(let ms)?: return Int64(r.readAt * 1000) + ms
        case .persistent?: return Int64.max - 1
        default: return Int64.max
        }
    }
}

extension KeyKind {
    var order: Int {
        switch self { case .cache: return 0; case .lock: return 1; case .rateLimit: return 2; case .other: return 3 }
    }
}

/// A key filter as the operator types it: a glob relative to the prefix (`workspace:42*`),
/// a substring (`42`, any case), or `=NAME` for exactly that key; any may start with the
/// prefix itself. The server does the matching (SCAN MATCH), so a filter finds every key,
/// not only the rows loaded. A `state:WORD` word is the view's (it filters the rows read)
/// and is left out here.
public struct KeyFilter: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case all, glob, substring, startsWith, exact }
    public let text: String
    public let kind: Kind
    /// The full glob sent as SCAN MATCH (prefix included, escaped).
    public let match: Bytes
    /// The name typed, without the prefix (for an explanation the view escapes).
    public let typed: Bytes
    public let hadPrefix: Bool
    /// `state:WORD` words in the text (the view filters its rows by them).
    public let states: [String]

    public init(_ text: String, schema: KeySchema) {
        self.text = text
        let prefix = schema.prefix
        let words = text.split(separator: " ", omittingEmptySubsequences: true)
        states = words.filter { $0.lowercased().hasPrefix("state:") && $0.count > 6 }.map { String($0.dropFirst(6)).lowercased() }
        let rest = words.filter { !($0.lowercased().hasPrefix("state:") && $0.count > 6) }.joined(separator: " ")
        var t = Bytes(utf8: rest)
        let exact = t.first == UInt8(ascii: "=") && t.count > 1
        if exact { t.removeFirst() }
        hadPrefix = !prefix.isEmpty && t.hasPrefix(prefix)
        if hadPrefix { t = Array(t[prefix.count...]) }
        typed = t
        if exact {
            kind = .exact
            match = schema.fullGlob(globEscape(t))
        } else if t.isEmpty {
            kind = .all
            match = schema.fullGlob("*")
        } else if t.contains(where: { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }) {
            kind = .glob
            match = schema.fullGlob(t)
        } else if hadPrefix {
            // A full key name (or its beginning) with the prefix: the keys that start with it.
            kind = .startsWith
            match = schema.fullGlob(globEscape(t) + Bytes(utf8: "*"))
        } else {
            kind = .substring
            match = schema.fullGlob(Bytes(utf8: "*") + Self.caseInsensitiveGlob(t) + Bytes(utf8: "*"))
        }
    }

    /// How the filter was read, in words; `show` escapes the names (the view's job).
    public func explanation(prefix: Bytes, _ show: (Bytes) -> String) -> String {
        let p = show(prefix)
        switch kind {
        case .all: return hadPrefix ? "every key under \(p)" : ""
        case .exact: return "exactly \(p)\(show(typed))"
        case .glob: return "glob \(p)\(show(typed))"
        case .startsWith: return "keys starting with \(p)\(show(typed))"
        case .substring: return "substring “\(show(typed))” (any case; an exact name first)"
        }
    }

    /// The server is asked (a `state:` word alone filters the rows read, and asks nothing).
    public var isEmpty: Bool { kind == .all }

    /// `*[wW][sS]:42*`: a substring, any case, as a glob (glob characters escaped).
    public static func caseInsensitiveGlob(_ s: Bytes) -> Bytes {
        var out = Bytes()
        for c in s {
            let lower = c >= 65 && c <= 90 ? c + 32 : c
            if lower >= 97 && lower <= 122 {
                out += [UInt8(ascii: "["), lower - 32, lower, UInt8(ascii: "]")]
            } else {
                out += globEscape([c])
            }
        }
        return out
    }

    /// The same test the server makes, on a key already loaded (narrowing while typing).
    public func matches(_ key: Bytes) -> Bool { kind == .all || globMatch(match, key) }

    /// The name a substring filter would rank first: a key whose last segment (or whole
    /// name under the prefix) is exactly what was typed.
    public var exactCandidate: Bytes? { kind == .substring ? typed : nil }
}

/// Reads TYPE, PTTL and MEMORY USAGE for each page of keys. A command the user may not run
/// (NOPERM, or disabled) makes that field unknown rather than failing the listing; it is
/// not asked again, and `refused` says which command it was.
public final class KeyMetadataReader: PageReader {
    public let schema: KeySchema
    public private(set) var memoryUsage: Bool
    public private(set) var typeAllowed = true
    public private(set) var ttlAllowed = true
    /// Refused commands, each with the server's reason (once).
    public private(set) var refused: [(command: String, reason: String)] = []
    public var now: () -> Double = wallClockNow

    public init(schema: KeySchema, memoryUsage: Bool = true) {
        self.schema = schema
        self.memoryUsage = memoryUsage
    }

    private static let TYPE = Bytes(utf8: "TYPE"), PTTL = Bytes(utf8: "PTTL"), MEMORY = Bytes(utf8: "MEMORY"), USAGE = Bytes(utf8: "USAGE")

    public struct Token { let type: Bool, ttl: Bool, mem: Bool }

    public func request(_ keys: [Bytes]) -> (commands: [[Bytes]], token: Token) {
        let t = Token(type: typeAllowed, ttl: ttlAllowed, mem: memoryUsage)
        var cmds: [[Bytes]] = []
        cmds.reserveCapacity(keys.count * 3)
        for k in keys {
            if t.type { cmds.append([Self.TYPE, k]) }
            if t.ttl { cmds.append([Self.PTTL, k]) }
            if t.mem { cmds.append([Self.MEMORY, Self.USAGE, k]) }
        }
        return (cmds, t)
    }

    private func refuse(_ cmd: String, _ e: ServerError) {
        if !refused.contains(where: { $0.command == cmd }) { refused.append((cmd, e.message)) }
    }

    public func rows(_ keys: [Bytes], _ t: Token, _ replies: ArraySlice<RESPValue>) -> [KeyInfo] {
        var out: [KeyInfo] = []
        out.reserveCapacity(keys.count)
        var j = replies.startIndex
        let at = now()
        for k in keys {
            var m = KeyInfo(key: k, type: nil, ttl: nil, bytes: nil, kind: schema.kind(of: k), readAt: at)
            if t.type {
                let r = replies[j]; j += 1
                if let e = r.errorReply { if e.isNotAllowed { typeAllowed = e.isKeyPermission ? typeAllowed : false; refuse("TYPE", e) } }
                else if let s = r.string { m.type = s }
            }
            if t.ttl {
                let r = replies[j]; j += 1
                if let e = r.errorReply { if e.isNotAllowed { ttlAllowed = e.isKeyPermission ? ttlAllowed : false; refuse("PTTL", e) } }
                else if let v = r.int { m.ttl = TTLState(pttl: v) }
            }
            if t.mem {
                let r = replies[j]; j += 1
                if let e = r.errorReply { if e.isNotAllowed { memoryUsage = e.isKeyPermission ? memoryUsage : false; refuse("MEMORY USAGE", e) } }
                else if case .integer(let v) = r { m.bytes = v }
            }
            if m.isGone { continue }  // deleted or expired since SCAN found it
            m.issue = schema.convention(of: m)
            out.append(m)
        }
        return out
    }

    /// One warning line per refused command, for a listing's end.
    public var warnings: [String] {
        refused.map { "\($0.command) was refused (\($0.reason)): that field is unknown" }
    }
}

extension ServerError {
    /// NOPERM about a key (the user may run the command, but not on this key).
    public var isKeyPermission: Bool { kind == .noPerm && message.lowercased().contains("key") }
}

/// Keys and memory per namespace (the first segment after the prefix).
public struct NamespaceStat: Sendable, Equatable {
    public var name: Bytes
    public var keys: Int
    public var bytes: Int64
    public var noTTL: Int
    /// TTLs: none, < 1 min, < 5 min, < 1 h, ≥ 1 h.
    public var ttl = [Int](repeating: 0, count: 5)
    /// Keys whose size was read, and the biggest of them.
    public var sized = 0
    public var maxBytes: Int64 = 0
    public var biggest: [NamespaceMemory.KeySize] = []
    /// Sizes in buckets a quarter of a power of two wide: percentiles within ~19 % in
    /// O(1) per key, whatever the number of keys (exact figures: `redis-ops memory`).
    var sizeBuckets = [Int](repeating: 0, count: 256)
    public init(name: Bytes, keys: Int, bytes: Int64, noTTL: Int) { self.name = name; self.keys = keys; self.bytes = bytes; self.noTTL = noTTL }

    static func bucket(_ b: Int64) -> Int {
        guard b > 0 else { return 0 }
        let e = 63 - b.leadingZeroBitCount            // floor(log2 b)
        let frac = e >= 2 ? Int((b >> (e - 2)) & 3) : 0
        return min(255, e * 4 + frac)
    }
    /// The upper bound of a bucket's sizes.
    static func bucketTop(_ i: Int) -> Int64 {
        let e = i / 4, frac = i % 4
        guard e >= 2 else { return Int64(1) << (e + 1) }
        return (Int64(4 + frac + 1) << (e - 2)) - 1
    }

    mutating func add(_ r: KeyInfo, keepBiggest: Int = 20) {
        if let i = NamespaceMemory.ttlBucket(r.ttl) { ttl[i] += 1 }
        guard let b = r.bytes else { return }
        sized += 1
        maxBytes = max(maxBytes, b)
        sizeBuckets[Self.bucket(b)] += 1
        NamespaceMemory.keep(&biggest, r.key, b, limit: keepBiggest)
    }

    /// About the `p`th percentile of the sizes read (at most the bucket's top, never above the max).
    public func approxPercentile(_ p: Double) -> Int64? {
        guard sized > 0 else { return nil }
        let rank = max(1, Int((p / 100 * Double(sized)).rounded(.up)))
        var seen = 0
        for (i, n) in sizeBuckets.enumerated() where n > 0 {
            seen += n
            if seen >= rank { return min(maxBytes, Self.bucketTop(i)) }
        }
        return maxBytes
    }
}

/// A bounded window over a keyspace listing: the first `capacity` keys in the current
/// sort order among every key the scan found, with totals over all of them, so the
/// screen can say honestly how many exist beyond the window.
public struct KeyWindow: Sendable, Equatable {
    public let capacity: Int
    public let sort: KeySort
    /// The window, in order. Rows found since the last `settle()` wait in `pending`.
    public private(set) var rows: [KeyInfo] = []
    private var pending: [KeyInfo] = []
    /// Keys found (alive) in total.
    public private(set) var matched = 0
    /// Keys that break the conventions (no TTL where one is expected, a TTL above it).
    public private(set) var breakers = 0
    public private(set) var noTTL = 0
    public private(set) var namespaces: [NamespaceStat] = []
    private var nsIndex: [Bytes: Int] = [:]
    public static let maxNamespaces = 200

    /// A substring filter's text: keys it names exactly come first (`/4242` puts
    /// `app:workspace:4242` before `app:workspace:14242`).
    public let exact: Bytes?

    public init(capacity: Int, sort: KeySort, exact: Bytes? = nil) {
        self.capacity = max(1, capacity)
        self.sort = sort
        self.exact = exact.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether `key` is exactly what was typed: its last segment, or its whole name after
    /// a `:` (`workspace:4242` names `app:workspace:4242`).
    public static func names(_ key: Bytes, exactly t: Bytes) -> Bool {
        guard key.count >= t.count, key.suffix(t.count).elementsEqual(t) else { return false }
        return key.count == t.count || key[key.count - t.count - 1] == UInt8(ascii: ":")
    }

    /// The window's order: an exact match first, then the sort.
    public func before(_ a: KeyInfo, _ b: KeyInfo) -> Bool {
        if let t = exact {
            let ea = Self.names(a.key, exactly: t), eb = Self.names(b.key, exactly: t)
            if ea != eb { return ea }
        }
        return sort.precedes(a, b)
    }

    /// Counts a page and keeps the rows that may belong in the window: O(page). The window
    /// itself is put in order by `settle()` (once per snapshot), not once per page.
    public mutating func add(_ page: [KeyInfo], schema: KeySchema) {
        let last = rows.count >= capacity ? rows.last : nil
        for r in page {
            matched += 1
            if r.ttl == .persistent { noTTL += 1 }
            if r.issue != nil { breakers += 1 }
            count(r, schema)
            if let l = last, !before(r, l) { continue }
            pending.append(r)
        }
        if pending.count > capacity { settle() }
    }

    /// The same window in another order (the counts stay; the rows loaded are re-sorted).
    public func resorted(_ order: KeySort) -> KeyWindow {
        var w = KeyWindow(capacity: capacity, sort: order, exact: exact)
        w.pending = rows + pending
        w.matched = matched; w.breakers = breakers; w.noTTL = noTTL
        w.namespaces = namespaces; w.nsIndex = nsIndex
        w.settle()
        return w
    }

    /// Merges the rows found since the last call into the window, keeping the first `capacity`.
    public mutating func settle() {
        guard !pending.isEmpty else { return }
        pending.sort(by: before)
        var merged: [KeyInfo] = []
        merged.reserveCapacity(min(capacity, rows.count + pending.count))
        var i = 0, j = 0
        while merged.count < capacity && (i < rows.count || j < pending.count) {
            if j >= pending.count || (i < rows.count && !before(pending[j], rows[i])) { merged.append(rows[i]); i += 1 }
            else { merged.append(pending[j]); j += 1 }
        }
        rows = merged
        pending = []
    }

    private mutating func count(_ r: KeyInfo, _ schema: KeySchema) {
        // The first segment after the prefix, found without copying the key: a listing has
        // a few namespaces and a million keys.
        var rel = r.key[...]
        if rel.count >= schema.prefix.count, rel[..<(rel.startIndex + schema.prefix.count)].elementsEqual(schema.prefix) {
            rel = rel[(rel.startIndex + schema.prefix.count)...]
        }
        let seg = rel.firstIndex(of: UInt8(ascii: ":")).map { rel[...$0] } ?? rel
        var i = namespaces.count <= 16 ? namespaces.firstIndex { $0.name.elementsEqual(seg) } : nsIndex[Bytes(seg)]
        if i == nil {
            var name = Bytes(seg)
            if namespaces.count >= Self.maxNamespaces {
                name = Bytes(utf8: "(other namespaces)")
                i = nsIndex[name]
            }
            if i == nil {
                i = namespaces.count
                nsIndex[name] = i
                namespaces.append(NamespaceStat(name: name, keys: 0, bytes: 0, noTTL: 0))
            }
        }
        namespaces[i!].keys += 1
        namespaces[i!].bytes += r.bytes ?? 0
        if r.ttl == .persistent { namespaces[i!].noTTL += 1 }
        namespaces[i!].add(r)
    }

    /// The window, read again: re-read rows replace theirs; gone ones stay, marked gone.
    /// A row whose reading changes its place (a key that lost its TTL rises to the flagged
    /// ones) moves there: the window stays in order as values change.
    public mutating func update(_ fresh: [KeyInfo]) {
        var byKey: [Bytes: KeyInfo] = [:]
        for f in fresh { byKey[f.key] = f }
        var moved: [KeyInfo] = []
        for i in rows.indices {
            guard let f = byKey[rows[i].key] else { continue }
            let old = rows[i]
            if (old.issue != nil) != (f.issue != nil) { breakers += f.issue != nil ? 1 : -1 }
            rows[i] = f
            let placeChanged: Bool
            switch sort {
            case .flagged: placeChanged = ConventionIssue.rank(f.issue) != ConventionIssue.rank(old.issue)
            case .name: placeChanged = false
            case .type: placeChanged = f.type != old.type
            case .ttl: placeChanged = f.ttl != old.ttl
            case .size: placeChanged = f.bytes != old.bytes
            case .kind: placeChanged = false
            }
            if placeChanged && !f.isGone { moved.append(f) }
        }
        guard !moved.isEmpty else { return }
        let keys = Set(moved.map(\.key))
        rows.removeAll { keys.contains($0.key) }
        for r in moved {
            var lo = 0, hi = rows.count
            while lo < hi { let mid = (lo + hi) / 2; if before(rows[mid], r) { lo = mid + 1 } else { hi = mid } }
            rows.insert(r, at: lo)
        }
    }

    /// Keys beyond the window.
    public var hidden: Int { max(0, matched - rows.count) }
}

/// What the key browser shows: a window of rows in order, and the truth about the rest.
public struct KeySnapshot: Sendable, Equatable {
    public var filter: String
    public var sort: KeySort
    public var window: KeyWindow
    /// Keys in the database(s) scanned (DBSIZE), for progress.
    public var dbsize: Int?
    public var done = false
    public var startedAt: Double
    public var finishedAt: Double?
    public var stats = ScanStats()
    public var warnings: [String] = []
    public var notices: [String] = []
    public init(filter: String, sort: KeySort, capacity: Int, startedAt: Double, exact: Bytes? = nil) {
        self.filter = filter; self.sort = sort
        window = KeyWindow(capacity: capacity, sort: sort, exact: exact)
        self.startedAt = startedAt
    }
}

/// The key browser's service: one scan of the keys matching a filter (on the server),
/// into a bounded window, plus re-reads of the rows on screen. The console runs it on a
/// worker; `redis-ops keys` uses the same scan without the window.
public final class KeyBrowser {
    public let nodes: NodeSet
    public let schema: KeySchema
    public let capacity: Int

    public init(nodes: NodeSet, schema: KeySchema, capacity: Int = 20_000) {
        self.nodes = nodes; self.schema = schema; self.capacity = capacity
    }

    /// Scans to the end, reporting snapshots every `every` seconds (and the last one).
    public func scan(filter: String, sort: KeySort, every: Double = 0.15, cancelled: @escaping () -> Bool = { false },
                     progress: (KeySnapshot) -> Void) throws -> KeySnapshot {
        let f = KeyFilter(filter, schema: schema)
        var snap = KeySnapshot(filter: filter, sort: sort, capacity: capacity, startedAt: wallClockNow(), exact: f.exactCandidate)
        let reader = KeyMetadataReader(schema: schema)
        let scan = KeyspaceScan(nodes: nodes, match: f.match, reader: reader)
        scan.cancelled = cancelled
        scan.onNotice = { snap.notices.append($0) }
        var last = monotonicNow()
        try scan.run { rows in
            snap.window.add(rows, schema: schema)
            let t = monotonicNow()
            if t - last >= every {
                last = t
                snap.window.settle()
                snap.stats = scan.stats
                snap.dbsize = scan.dbsize ?? snap.dbsize
                snap.warnings = reader.warnings
                progress(snap)
            }
            return true
        }
        snap.window.settle()
        snap.dbsize = scan.dbsize ?? snap.dbsize
        snap.stats = scan.stats
        snap.warnings = reader.warnings
        snap.done = true
        snap.finishedAt = wallClockNow()
        progress(snap)
        return snap
    }

    /// TYPE, PTTL and MEMORY USAGE of these keys again (on the nodes that own them). A key
    /// gone since is returned with its type "none".
    public func refresh(_ keys: [Bytes]) throws -> [KeyInfo] {
        let reader = KeyMetadataReader(schema: schema)
        let token = reader.request([]).token
        let replies = try nodes.perKey(keys) { reader.request([$0]).commands }
        let at = wallClockNow()
        return zip(keys, replies).map { k, r in
            reader.rows([k], token, r[...]).first ?? KeyInfo(key: k, type: "none", ttl: .gone, bytes: nil, kind: schema.kind(of: k), readAt: at)
        }
    }

    /// How long to wait before scanning everything again, so the listing costs the server
    /// at most `budget` commands per second on average (and at least every minute).
    public static func rescanInterval(commands: Int, budget: Double = 1000) -> Double {
        max(60, Double(commands) / budget)
    }
}

extension KeySchema {
    /// What breaks the application's conventions for a key, if anything.
    public func convention(of r: KeyInfo) -> ConventionIssue? {
        switch (r.kind, r.ttl) {
        case (.cache, .persistent?): return .cacheWithoutTTL
        case (.lock, .persistent?): return .stuckLock
        case (.rateLimit, .persistent?): return .counterWithoutTTL
        case (_, .expiresIn(let ms)?):
            if let exp = expectedTTLms(r.kind), ms > exp + 1000 { return .ttlAboveExpected(exp / 1000) }
            return nil
        default: return nil
        }
    }
}

public enum ConventionIssue: Sendable, Equatable {
    case cacheWithoutTTL, stuckLock, counterWithoutTTL, ttlAboveExpected(Int64)
    public var text: String {
        switch self {
        case .cacheWithoutTTL: return "no TTL: leak?"
        case .stuckLock: return "no TTL: stuck lock"
        case .counterWithoutTTL: return "no TTL: blocks forever"
        case .ttlAboveExpected(let s): return "TTL > \(s)s"
        }
    }
    public var isError: Bool { self == .stuckLock || self == .counterWithoutTTL }

    /// The order of flagged keys: a stuck lock or a counter that blocks forever, a cache
    /// entry that never expires, a TTL above the convention's; then every other key.
    public static func rank(_ i: ConventionIssue?) -> Int {
        switch i {
        case .stuckLock?, .counterWithoutTTL?: return 0
        case .cacheWithoutTTL?: return 1
        case .ttlAboveExpected?: return 2
        case nil: return 3
        }
    }
}
