import RedisProtocol
import RedisClient
import OpsCore

public enum ViewID: Int, CaseIterable, Sendable {
    case events = 1, keys, rateLimits, locks, server
    public var title: String {
        switch self {
        case .events: return "Events"
        case .keys: return "Keys"
        case .rateLimits: return "Rate limits"
        case .locks: return "Locks"
        case .server: return "Server"
        }
    }
}

/// A key press, decoded by the terminal backend.
public enum Key: Equatable, Hashable, Sendable {
    case char(Character)
    case enter, escape, tab, backTab, up, down, left, right, pageUp, pageDown, home, end, backspace, delete
    case ctrl(Character)
}

public enum FlashLevel: Sendable, Equatable { case info, warning, error }

public struct Flash: Sendable, Equatable {
    public var text: String
    public var level: FlashLevel
    public var until: Double
    public init(text: String, level: FlashLevel, until: Double) { self.text = text; self.level = level; self.until = until }
}

public enum LinkState: Sendable, Equatable {
    case connecting
    case connected
    case reconnecting(String)
    case failed(String)
}

/// What the header shows about the server and the session (never the password).
public struct SessionInfo: Sendable, Equatable {
    public var endpoint: String
    public var tls: Bool
    public var insecure: Bool
    public var user: String?
    public var prefix: String
    public var readOnly: Bool
    public var role: String?
    public var command: LinkState = .connecting
    public var subscriber: LinkState = .connecting
    public init(endpoint: String, tls: Bool, insecure: Bool = false, user: String?, prefix: String, readOnly: Bool) {
        self.endpoint = endpoint; self.tls = tls; self.insecure = insecure; self.user = user; self.prefix = prefix; self.readOnly = readOnly
    }
}

/// A line prompt at the bottom of the screen.
public struct Prompt: Sendable, Equatable {
    public enum Purpose: Sendable, Equatable { case filter, subscribe, unsubscribe, write, invalidatePattern }
    public var purpose: Purpose
    public var text: String
    public var label: String {
        switch purpose {
        case .filter: return "/"
        case .subscribe: return "subscribe (channel, or pattern with * ? [): "
        case .unsubscribe: return "unsubscribe from: "
        case .write: return "write NDJSON to: "
        case .invalidatePattern: return "invalidate keys matching (glob, relative to the prefix): "
        }
    }
}

public struct Subscription: Sendable, Equatable, Hashable {
    public var name: Bytes
    public var isPattern: Bool
    public var active: Bool
    public init(name: Bytes, isPattern: Bool, active: Bool = false) { self.name = name; self.isPattern = isPattern; self.active = active }
}

/// State of the Events view.
public struct EventsState: Sendable, Equatable {
    public var filter = TailFilter("")
    /// Sequence numbers of the entries shown (matching the filter), oldest first.
    public var rows: [Int] = []
    /// Entries up to this sequence number have been considered for `rows`.
    public var scannedUpTo = 0
    public var filterKey = ""
    /// While paused the list is frozen at this sequence number.
    public var pausedAt: Int?
    /// Following the newest message (like `tail -f`); moving up stops following.
    public var follow = true
    public var selectedSeq: Int?
    public var detailOpen = false
    public var showChannels = false
    public var scrollTop = 0
    public init() {}
}

/// State of the Rate limits view.
public struct RateLimitsState: Sendable, Equatable {
    public var counters: [RateLimitCounter] = []
    /// Wall-clock time of the reading the TTLs come from (for live countdowns).
    public var readAt: Double = 0
    public var lastFullScan: Double = 0
    public var loaded = false
    public var error: String?
    public var filter = ""
    public var selectedKey: Bytes?
    public var detailOpen = false
    public var scrollTop = 0
    /// Counts sampled while the view is open, per key (newest last).
    public var history: [Bytes: [Int64]] = [:]
    public init() {}

    public var visible: [RateLimitCounter] {
        if filter.isEmpty { return counters }
        let f = filter.lowercased()
        return counters.filter { $0.identifier.lossyString.lowercased().contains(f) || $0.key.lossyString.lowercased().contains(f) }
    }
}

/// State of the Server view.
public struct ServerState: Sendable, Equatable {
    public var series = ServerSeries()
    public var slowlog: [SlowlogEntry] = []
    public var slowlogError: String?
    public var error: String?
    public init() {}
}

/// A yes/no question; `y` carries out the effect.
public struct Confirmation: Sendable, Equatable {
    public var question: String
    public var effect: Effect
}

public struct AppState: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var now: Double
    public var view: ViewID = .events
    public var session: SessionInfo
    public var flash: Flash?
    public var prompt: Prompt?
    public var helpOpen = false
    public var subscriptions: [Subscription] = []
    public var events = EventsState()
    public var rateLimits = RateLimitsState()
    public var server = ServerState()
    public var confirm: Confirmation?
    public var keys = KeysState()
    public var locks = LocksState()
    public var invalidation: InvalidationUI?
    /// The application's conventions (defaults for the prefix, or the config file's).
    public var schema: KeySchema
    public var quitting = false

    public init(width: Int, height: Int, now: Double, session: SessionInfo) {
        self.width = width; self.height = height; self.now = now; self.session = session
        self.schema = KeySchema(prefix: session.prefix)
    }

    /// Height of the list area of a view (between the header block and the footer).
    public var bodyTop: Int { 3 }
    public var bodyHeight: Int { max(0, height - bodyTop - 2) }
}

/// Things that happen to the console.
public enum AppEvent: Sendable {
    case key(Key)
    case tick(Double)
    case resize(width: Int, height: Int)
    /// The tail has new entries (the reducer reads them from the tail it is given).
    case tailChanged
    case subscriber(SubscriberNotice)
    case serverInfo(role: String?)
    case commandLink(LinkState)
    case wrote(path: String, count: Int)
    case failed(String)
    /// A reading of the rate-limit counters (`full`: a complete rescan).
    case rateLimits([RateLimitCounter], full: Bool, at: Double)
    case rateLimitsFailed(String)
    case serverSample(ServerSample)
    case slowlog([SlowlogEntry]?, error: String?)
    /// A key was deleted on the operator's request (`existed`: it was there).
    case deleted(key: Bytes, existed: Bool)
    /// A page of the key browser's scan (`session` guards against stale pages).
    case keysPage([KeyMetadata], scanned: Int, done: Bool, estimate: Int?, session: Int, at: Double)
    case keysFailed(String)
    case inspected(InspectedValue)
    case locks([LockRow], at: Double)
    case locksFailed(String)
    case invalidationPlanning(found: Int)
    case invalidationPlanned(InvalidationPlan)
    case invalidationProgress(InvalidationProgress)
    case invalidationDone(InvalidationReport)
    case invalidationFailed(String)
}

/// Things the console asks the outside world to do.
public enum Effect: Sendable, Equatable {
    case quit
    case subscribe(Bytes, pattern: Bool)
    case unsubscribe(Bytes, pattern: Bool)
    /// Write the rows currently shown (the filtered buffer) as NDJSON.
    case writeTail(path: String, filter: TailFilter, upTo: Int)
    /// DEL a rate-limit counter (the next request of that client starts a new window).
    case resetCounter(Bytes)
    /// Start (or restart) the key browser's scan.
    case scanKeys(session: Int)
    case inspect(Bytes, cursor: Bytes?)
    /// UNLINK one key (after a confirmation), with an audit record.
    case deleteKey(Bytes)
    case planInvalidation(String)
    case executeInvalidation(InvalidationPlan)
    case cancelInvalidation
}

public enum KeySort: String, Sendable, CaseIterable { case name, ttl, size }

public struct KeyRow: Sendable, Equatable {
    public var meta: KeyMetadata
    public var kind: KeyKind
    public var readAt: Double
}

/// State of the Keys view (the key browser and its inspector).
public struct KeysState: Sendable, Equatable {
    public var rows: [KeyRow] = []
    public var scanned = 0
    public var estimate: Int?
    public var done = false
    /// Each scan gets a number; pages of an older one are ignored.
    public var session = 0
    public var started: Bool { session > 0 }
    public var error: String?
    public var filter = ""
    public var sort: KeySort = .name
    public var selectedKey: Bytes?
    public var scrollTop = 0
    public var showSummary = false
    public var inspector: InspectedValue?
    public var inspectorLoading: Bytes?
    /// At most this many keys are kept in the browser (the rest: narrow the filter or use `redis-ops keys`).
    public var cap = 200_000
    public init() {}
}

public struct LocksState: Sendable, Equatable {
    public var rows: [LockRow] = []
    public var readAt: Double = 0
    public var loaded = false
    public var error: String?
    public var selectedKey: Bytes?
    public var scrollTop = 0
    public init() {}
}

/// The pattern invalidation in progress: dry run → typed confirmation → deletion → report.
public struct InvalidationUI: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case planning(found: Int)
        case confirming(InvalidationPlan, typed: String)
        case running(InvalidationPlan, InvalidationProgress)
        case cancelling(InvalidationPlan, InvalidationProgress)
        case done(InvalidationReport)
        case failed(String)
    }
    public var glob: String
    public var phase: Phase
}
