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
    public var version: String?
    public var command: LinkState = .connecting
    public var subscriber: LinkState = .connecting
    public init(endpoint: String, tls: Bool, insecure: Bool = false, user: String?, prefix: String, readOnly: Bool) {
        self.endpoint = endpoint; self.tls = tls; self.insecure = insecure; self.user = user; self.prefix = prefix; self.readOnly = readOnly
    }
}

/// A line prompt at the bottom of the screen.
public struct Prompt: Sendable, Equatable {
    public enum Purpose: Sendable, Equatable { case filter, subscribe, unsubscribe, write }
    public var purpose: Purpose
    public var text: String
    public var label: String {
        switch purpose {
        case .filter: return "/"
        case .subscribe: return "subscribe (channel, or pattern with * ? [): "
        case .unsubscribe: return "unsubscribe from: "
        case .write: return "write NDJSON to: "
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
    public var detailScroll = 0
    public var showChannels = false
    public var lastGapSeen = 0
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
    public var quitting = false

    public init(width: Int, height: Int, now: Double, session: SessionInfo) {
        self.width = width; self.height = height; self.now = now; self.session = session
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
    case serverInfo(role: String?, version: String?)
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
}
