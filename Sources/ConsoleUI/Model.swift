import DequeModule
import RedisProtocol
import OpsCore

public enum ViewID: Int, CaseIterable, Sendable {
    case events = 1, keys, rateLimits, locks, server, activity
    public var title: String {
        switch self {
        case .events: return "Events"
        case .keys: return "Keys"
        case .rateLimits: return "Rate limits"
        case .locks: return "Locks"
        case .server: return "Server"
        case .activity: return "Activity"
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

/// A one-line message at the bottom; it belongs to the view it was raised in.
public struct Flash: Sendable, Equatable {
    public var text: String
    public var level: FlashLevel
    public var until: Double
    /// The view it concerns (nil: every view, e.g. the connection).
    public var view: ViewID?
    public init(text: String, level: FlashLevel, until: Double, view: ViewID? = nil) {
        self.text = text; self.level = level; self.until = until; self.view = view
    }
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
    /// The role of the server the command connection is on (master, slave).
    public var role: String?
    /// The node the command connection is on, and the ports of its replicas.
    public var commandNode: ServerNode?
    public var replicaPorts: [Int] = []
    /// Cluster mode: its shape and where listings read.
    public var cluster: ClusterShape?
    /// The node the subscriber reached (it may stay on a demoted primary after a failover).
    public var subscriberNode: ServerNode?
    public var command: LinkState = .connecting
    public var subscriber: LinkState = .connecting
    public var colour = true
    /// Why TLS is on when nobody asked for it on the command line (`NODE_ENV=production`).
    public var tlsBecause: String?
    public init(endpoint: String, tls: Bool, insecure: Bool = false, user: String?, prefix: String, readOnly: Bool) {
        self.endpoint = endpoint; self.tls = tls; self.insecure = insecure; self.user = user; self.prefix = prefix; self.readOnly = readOnly
    }
}

/// A line prompt at the bottom of the screen.
public struct Prompt: Sendable, Equatable {
    public enum Purpose: Sendable, Equatable {
        case filter, subscribe, unsubscribe, writeBuffer, writeMessage(seq: Int)
        case writePattern(WriteKind), command, publishChannel, publishPayload(channel: Bytes)
    }
    public var purpose: Purpose
    public var text: String
    /// A suggestion shown selected: the first key typed replaces it (Backspace clears it).
    public var suggested = false
    /// Completions offered for the command line (Tab).
    public var completions: [String] = []
    /// What the completions are ("12 keys:", "100+ keys (part of the keyspace searched):").
    public var completionsNote = ""
    /// Where typing goes, in characters from the start (0...text.count).
    public var cursor: Int
    /// Up/Down: the history entry shown (nil: the line being typed, kept in `draft`).
    public var historyIndex: Int?
    public var draft = ""
    /// Every prompt follows one rule: text offered (a suggestion, the filter in force, a
    /// file name) is shown selected, and typing replaces it; Left/Right/Home/End keep it.
    public init(purpose: Purpose, text: String, suggested: Bool? = nil) {
        self.purpose = purpose; self.text = text; self.suggested = suggested ?? !text.isEmpty
        cursor = text.count
    }

    /// The history this prompt shares (the filter's is per view).
    public func historyKind(_ view: ViewID) -> String {
        switch purpose {
        case .filter: return "filter.\(view.rawValue)"
        case .subscribe, .unsubscribe: return "subscribe"
        case .writeBuffer, .writeMessage: return "file"
        case .writePattern: return "pattern"
        case .command: return "command"
        case .publishChannel: return "channel"
        case .publishPayload: return "payload"
        }
    }
    public var label: String {
        switch purpose {
        case .filter: return "/"
        case .subscribe: return "subscribe (channel; * ? [ make a pattern; “shard NAME” a sharded channel): "
        case .unsubscribe: return "unsubscribe from: "
        case .writeBuffer: return "write the list (NDJSON) to: "
        case .writeMessage: return "write this message to: "
        case .writePattern(.expire): return "give the cache TTL to keys without one, matching (glob under the prefix): "
        case .writePattern: return "invalidate keys matching (glob under the prefix): "
        case .command: return ":"
        case .publishChannel: return "publish to channel: "
        case .publishPayload: return "payload: "
        }
    }
}

public struct Subscription: Sendable, Equatable, Hashable {
    public var name: Bytes
    public var isPattern: Bool
    /// A sharded channel (SSUBSCRIBE on the node that owns its slot).
    public var isShard: Bool
    public var active: Bool
    public init(name: Bytes, isPattern: Bool, isShard: Bool = false, active: Bool = false) {
        self.name = name; self.isPattern = isPattern; self.isShard = isShard; self.active = active
    }
    /// The classic subscriber's channels (NUMSUB counts their subscribers).
    public var isClassicChannel: Bool { !isPattern && !isShard }
}

/// A yes/no question; `y` carries out the effect. The subject (a key, a client) is shown
/// whole on lines of its own, wrapped rather than cut, with the y/n hint always visible.
public struct Confirmation: Sendable, Equatable {
    /// What is asked: "Delete this key?".
    public var question: String
    /// What it is about, escaped for the screen (the full key name).
    public var subject: String
    /// What the operator should know before answering (type, size, TTL).
    public var detail: String
    public var effect: Effect
    public init(question: String, subject: String = "", detail: String = "", effect: Effect) {
        self.question = question; self.subject = subject; self.detail = detail; self.effect = effect
    }
    public static let hint = "y = yes · any other key = no"
}

/// A pattern write in the console: dry run → typed confirmation → progress → report.
public struct WriteFlow: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case planning(found: Int)
        case confirming(WritePlan)
        case running(WritePlan, WriteProgress)
        case cancelling(WritePlan, WriteProgress)
        case done(WriteReport)
        case failed(String)
    }
    /// The write's id: results of other jobs are not this dialog's.
    public var id: Int
    public var request: WriteRequest
    public var phase: Phase
    public var typed = ""
    /// First line of the key list shown (the dry run can be scrolled).
    public var scroll = 0
    public init(id: Int, request: WriteRequest, phase: Phase) { self.id = id; self.request = request; self.phase = phase }
}

/// The Audit overlay: recent records of the audit log, newest first.
public struct AuditUI: Sendable, Equatable {
    public var entries: [AuditEntry] = []
    public var loaded = false
    public var path: String = ""
    public var cursor = 0
    public var scrollTop = 0
    public var detailScroll = 0
    public init() {}
}

/// The Doctor overlay (`:doctor`): the steps of `redis-ops doctor` as they are found.
public struct DoctorUI: Sendable, Equatable {
    public var steps: [DoctorStep] = []
    public var running = true
    public var scroll = 0
    public init() {}
}

/// State of the Events view.
public struct EventsState: Sendable, Equatable {
    public var filter = TailFilter("")
    /// Sequence numbers matching the filter (only kept while one is set), oldest first.
    public var matches = Deque<Int>()
    /// Entries up to this sequence number have been considered for `matches`.
    public var scannedUpTo = 0
    /// While paused the list is frozen at this sequence number.
    public var pausedAt: Int?
    /// While paused: how many arrived since that the filter would show (counted as they
    /// arrive, up to `pausedScannedUpTo`).
    public var pausedNew = 0
    public var pausedScannedUpTo = 0
    /// Following the newest message (like `tail -f`); moving up stops following.
    public var follow = true
    public var selectedSeq: Int?
    public enum Pane: Sendable, Equatable { case none, detail, channels }
    public var pane: Pane = .none
    public var paneScroll = 0
    public var scrollTop = 0
    /// Who listens (PUBSUB NUMSUB, CHANNELS, NUMPAT), read while the channels pane is open.
    public var listeners = ListenerReading()
    public var listenersReadAt: Double?
    public init() {}
}

/// A pane under the key list.
public enum KeysPane: Sendable, Equatable { case none, inspector, namespaces }

public struct InspectorState: Sendable, Equatable {
    public var key: Bytes
    public var value: InspectedValue?
    public var loading = true
    public var error: String?
    /// First line shown.
    public var scroll = 0
}

/// State of the Keys view: a window of the keyspace scanned on the server.
public struct KeysState: Sendable, Equatable {
    public var snapshot: KeySnapshot?
    /// Each scan gets a number; results of an older one are ignored.
    public var generation = 0
    public var scanning = false
    /// The committed filter (the server matches it).
    public var filter = ""
    /// While the filter prompt is open: the rows of the window that match what is typed.
    public var preview: [Int]?
    public var sort: KeySort = .flagged
    public var selectedKey: Bytes?
    /// After a new filter: the selection is the first match until the operator moves — or
    /// `preferredKey` (the key selected before the filter) once it is among the matches.
    public var followFirst = false
    public var preferredKey: Bytes?
    /// The key selected when the filter prompt opened.
    public var keyBeforeFilter: Bytes?
    public var cursor = 0
    public var scrollTop = 0
    public var pane: KeysPane = .none
    public var inspector: InspectorState?
    /// When the rows on screen were last read again, and since when that fails.
    public var lastRefresh: Double = 0
    public var refreshError: String?
    public var error: String?
    public init() {}
}

public enum CounterSort: String, Sendable, CaseIterable { case state, count, ttl, identifier, kind }

/// State of the Rate limits view: every counter.
public struct RateLimitsState: Sendable, Equatable {
    public var board = BoardState<RateLimitCounter>()
    public var sort: CounterSort = .state
    public var detailOpen = false
    /// Counts sampled while a counter is on screen, per key (newest last, bounded).
    public var history: [Bytes: [Int64]] = [:]
    public init() {}
}

public enum LockSort: String, Sendable, CaseIterable { case state, protects, held, remaining, value }

/// State of the Locks view.
public struct LocksState: Sendable, Equatable {
    public var board = BoardState<LockRow>()
    /// `state`: stuck first, then the longest held (as read).
    public var sort: LockSort = .state
    /// When the console first saw each lock (a lower bound of its age when it has no TTL).
    public var firstSeen: [Bytes: Double] = [:]
    public init() {}
}

/// Whether keyspace notifications feed the Activity view.
public enum NotifyState: Sendable, Equatable {
    case unknown
    /// On, with every class the view needs.
    case on(String)
    /// Off, or short of a class the view needs: the current value.
    case off(String)
    /// CONFIG GET is not permitted (ElastiCache): counted anyway, said plainly.
    case unreadable(String)
}

/// State of the Activity view: cumulative counts each second (bounded history), never events.
public struct ActivityState: Sendable, Equatable {
    public var notify: NotifyState = .unknown
    public var history = ActivityHistory()
    /// Counting has started (the subscriber connections run until the console exits).
    public var running = false
    /// The value `:notify on` replaced, put back when the console exits.
    public var restore: String?
    /// Namespaces invalidated by a pattern from this console, and when: a burst of sets
    /// right after is a refill.
    public var invalidated: [Bytes: Double] = [:]
    public var cursor = 0
    public init() {}
}

/// State of the Server view.
public struct ServerState: Sendable, Equatable {
    public var series = ServerSeries()
    /// Round trips per node from the tool's own PINGs (one a second per node).
    public var latency: [String: LatencyHistory] = [:]
    public var latencyStarted = false
    /// The selected client of the client list (by id, so a new reading keeps it).
    public var clientCursor = 0
    public var selectedClient: Int64?
    public var reading: ServerReading?
    public var lastRead: Double = 0
    public var error: String?
    public init() {}
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
    public var helpScroll = 0
    /// What was entered at each kind of prompt, oldest first (Up/Down recall it).
    public var history: [String: [String]] = [:]
    public var confirm: Confirmation?
    public var write: WriteFlow?
    /// Ids of the writes started with a y/n question (their results are reported in a line).
    public var singleWrites: Set<Int> = []
    public var nextWriteID = 1
    public var audit: AuditUI?
    public var doctor: DoctorUI?
    public var subscriptions: [Subscription] = []
    public var events = EventsState()
    public var keys = KeysState()
    public var rateLimits = RateLimitsState()
    public var locks = LocksState()
    public var server = ServerState()
    public var activity = ActivityState()
    /// The application's conventions (defaults for the prefix, or the config file's).
    public var schema: KeySchema
    public var auditPath = ""
    public var quitting = false

    public init(width: Int, height: Int, now: Double, session: SessionInfo) {
        self.width = width; self.height = height; self.now = now; self.session = session
        self.schema = KeySchema(prefix: session.prefix)
    }

    /// Rows of the body: between the header block (3 lines) and the footer (2 lines).
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
    case tail(TailNotice)
    case commandLink(LinkState)
    case serverRole(ServerRole?)
    case keysSnapshot(generation: Int, KeySnapshot)
    case keysFailed(generation: Int, String)
    case keysRefreshed([KeyInfo])
    case keysRefreshFailed(String)
    case inspected(InspectedValue, appended: Bool)
    case inspectFailed(Bytes, String)
    case rateLimits(BoardReading<RateLimitCounter>)
    case rateLimitsRefreshed([RateLimitCounter], at: Double)
    case rateLimitsFailed(String)
    case locks(BoardReading<LockRow>)
    case locksRefreshed([LockRow])
    case locksFailed(String)
    case server(ServerReading)
    /// `notify-keyspace-events` as read (nil value: not readable, with why).
    case activityNotify(value: String?, error: String?)
    case activity(ActivitySnapshot)
    case latency([LatencyProbe.Sample], at: Double)
    case serverFailed(String)
    case listeners(ListenerReading)
    case planProgress(id: Int, Int)
    case planned(id: Int, WritePlan)
    case writeProgress(id: Int, WriteProgress)
    case written(id: Int, WriteReport)
    case writeFailed(id: Int, String)
    /// The audit log could not take the intent record: nothing was written (the dialog stays).
    case writeRefused(id: Int, String)
    /// Cancelled while still queued: nothing was written.
    case writeCancelled(id: Int)
    case audit([AuditEntry], path: String)
    /// A step of `:doctor`, as found; then the end of the walk.
    case doctorStep(DoctorStep)
    case doctorDone
    case completions(prefix: String, KeyCompletions)
    /// `updatedAt`: for `:ttl`, when the application wrote the value (its configured field).
    case lookedUp(key: Bytes, found: KeyInfo?, purpose: LookupPurpose, updatedAt: Double? = nil)
    /// A counter (`:reset`) or a lock (`:release`) read for the command line.
    case counterLookedUp(key: Bytes, RateLimitCounter?)
    case lockLookedUp(key: Bytes, LockRow?)
    /// A line for the operator (a file written, a failure).
    case notice(String, FlashLevel)
}

/// Why a key named on the command line is read first: to open it, to say its TTL, or to
/// ask the same question the views ask before a write on it.
public enum LookupPurpose: Sendable, Equatable { case open, ttl, delete, expire(seconds: Int64), persist }

/// What to write to a file from the Events view.
public enum TailExport: Sendable, Equatable {
    /// The rows shown (the filtered buffer), up to a sequence number.
    case buffer(filter: TailFilter, upTo: Int)
    /// One message, as stored.
    case message(seq: Int)
}

/// Things the console asks the outside world to do.
public enum Effect: Sendable, Equatable {
    case quit
    case subscribe(Bytes, pattern: Bool)
    case unsubscribe(Bytes, pattern: Bool)
    case subscribeShard(Bytes)
    case unsubscribeShard(Bytes)
    case export(path: String, TailExport)
    case scanKeys(generation: Int, filter: String, sort: KeySort)
    case refreshKeys([Bytes])
    case inspect(Bytes, cursor: Bytes?)
    case scanRateLimits(match: String?)
    case refreshRateLimits([Bytes])
    case scanLocks
    case refreshLocks([Bytes])
    case readServer
    /// Read `notify-keyspace-events` and, if notifications can be on, start counting them.
    case startActivity
    /// The counts now (a copy under a lock: cheap whatever the event rate).
    case readActivity
    /// PING every node once a second on connections of their own (the Server view's latency).
    case startLatency
    case readListeners(channels: [Bytes], patterns: [Bytes], shardChannels: [Bytes])
    /// The dry run of a write (recorded in the audit log).
    case plan(id: Int, WriteRequest)
    /// Carry out a plan (after the operator confirmed), with an audit record.
    case execute(id: Int, WritePlan)
    case cancelWrite(id: Int)
    case readAudit
    /// Walk the path to the server (`:doctor`) on a thread of its own.
    case runDoctor
    case complete(String)
    case lookup(Bytes, LookupPurpose)
    case lookupCounter(Bytes)
    case lookupLock(Bytes)
}
