import Foundation
import RedisProtocol
import OpsCore

/// What a view is given to draw itself.
public struct RenderContext {
    public var tail: ChannelTail
    public var timeZone: TimeZone
    /// The moment of drawing: rates are computed for it (the state's `now` moves on ticks).
    public var now: Double
}

/// One view's behaviour: its keys, its refreshes, its filter and its screen. The reducer
/// routes to the visible view's module; nothing a view does touches another view's state.
protocol ViewModule {
    static var id: ViewID { get }
    /// The view became visible: load what it needs, or what went stale meanwhile.
    static func entered(_ s: inout AppState) -> [Effect]
    /// About once a second while visible: re-read the rows on screen, rescan when due.
    static func tick(_ s: inout AppState) -> [Effect]
    /// An action bound to a key while this view is visible.
    static func perform(_ a: Action, _ s: inout AppState, tail: ChannelTail) -> [Effect]
    /// The text the filter prompt starts from.
    static func filterText(_ s: AppState) -> String
    /// Each key typed in the filter prompt: the list narrows at once.
    static func filterTyped(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect]
    /// Enter keeps the filter (`committed`), Esc clears it (text "").
    static func filterCommitted(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect]
    /// Keeps the cursor and the scrolling valid after the size or the rows changed.
    static func sync(_ s: inout AppState, tail: ChannelTail)
    static func render(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext)
}

func module(_ v: ViewID) -> any ViewModule.Type {
    switch v {
    case .events: return EventsModule.self
    case .keys: return KeysModule.self
    case .rateLimits: return RateLimitsModule.self
    case .locks: return LocksModule.self
    case .server: return ServerModule.self
    case .activity: return ActivityModule.self
    }
}

/// The console's reducer: state + event -> new state + effects. Pure: the tail is read,
/// never written; I/O happens in the effects the backend carries out. Each event costs
/// what it changes: a pub/sub message touches the Events view's rows, nothing else.
public enum Reducer {
    public static func reduce(_ s: inout AppState, _ event: AppEvent, tail: ChannelTail) -> [Effect] {
        switch event {
        case .key(let k):
            return key(&s, k, tail: tail)
        case .tick(let now):
            s.now = now
            if let f = s.flash, f.until <= now { s.flash = nil }
            return module(s.view).tick(&s) + ActivityModule.globalTick(s)
        case .resize(let w, let h):
            s.width = max(0, w); s.height = max(0, h)
            module(s.view).sync(&s, tail: tail)
            return []
        case .tailChanged:
            EventsModule.tailChanged(&s, tail: tail)
            return []
        case .tail(let n):
            notice(&s, n)
            return []
        case .commandLink(let l):
            if case .reconnecting(let why) = l, why.hasPrefix("authentication refused") {
                flash(&s, why, .warning, .everywhere)
            } else if l == .connected, case .reconnecting(let why)? = Optional(s.session.command), why.hasPrefix("authentication refused") {
                flash(&s, "authenticated again: connected", .info, .everywhere)
            }
            s.session.command = l
            return []
        case .serverRole(let r):
            let role = r?.role
            if let old = s.session.role, let role, old != role {
                flash(&s, "the server's role changed: \(old) → \(role)\(role == "slave" ? " (demoted by a failover? writes will be refused)" : "")", .warning, .everywhere)
            } else if let a = s.session.commandNode?.runID, let b = r?.node?.runID, a != b {
                flash(&s, "the endpoint now leads to another server (a failover?)\(role.map { ": \($0)" } ?? "")", .warning, .everywhere)
            }
            s.session.role = role
            s.session.commandNode = r?.node
            s.session.replicaPorts = r?.replicaPorts ?? []
            if let c = r?.cluster, c.replicaReadsUnavailable, s.session.cluster?.replicaReadsUnavailable != true {
                flash(&s, "replica reads: no shard has a replica; listings read the primaries", .warning, .everywhere)
            }
            s.session.cluster = r?.cluster
            s.session.command = .connected
            return []
        case .keysSnapshot, .keysFailed, .keysRefreshed, .keysRefreshFailed, .inspected, .inspectFailed:
            return KeysModule.apply(event, &s)
        case .rateLimits, .rateLimitsRefreshed, .rateLimitsFailed:
            return RateLimitsModule.apply(event, &s)
        case .locks, .locksRefreshed, .locksFailed:
            return LocksModule.apply(event, &s)
        case .server, .serverFailed, .latency:
            return ServerModule.apply(event, &s)
        case .activityNotify, .activity:
            return ActivityModule.apply(event, &s)
        case .listeners(let reading):
            s.events.listeners = reading
            s.events.listenersReadAt = s.now
            return []
        case .planProgress, .planned, .writeProgress, .written, .writeFailed, .writeRefused, .writeCancelled:
            return WriteFlowModule.apply(event, &s)
        case .doctorStep(let step):
            s.doctor?.steps.append(step)
            return []
        case .doctorDone:
            s.doctor?.running = false
            return []
        case .audit(let entries, let path):
            if s.audit == nil { s.audit = AuditUI() }
            s.audit?.entries = entries
            s.audit?.loaded = true
            s.audit?.path = path
            return []
        case .completions, .lookedUp, .counterLookedUp, .lockLookedUp:
            return CommandLineModule.apply(event, &s)
        case .notice(let text, let level):
            flash(&s, text, level)
            return []
        }
    }

    enum FlashScope { case here, everywhere, view(ViewID) }

    /// Flash texts often carry server text (error replies): made visible here, once for all.
    /// A flash belongs to the view it was raised in (or every view, for the connection).
    static func flash(_ s: inout AppState, _ text: String, _ level: FlashLevel, _ scope: FlashScope = .here) {
        let v: ViewID?
        switch scope { case .here: v = s.view; case .everywhere: v = nil; case .view(let x): v = x }
        s.flash = Flash(text: Escaper.string(Bytes(utf8: text), escapeBackslash: false), level: level,
                        until: s.now + (level == .error ? 10 : 5), view: v)
    }

    static func notice(_ s: inout AppState, _ n: TailNotice) {
        switch n {
        case .connected(_, let node):
            s.session.subscriber = .connected
            s.session.subscriberNode = node
        case .subscribed(let name, let p):
            if let i = s.subscriptions.firstIndex(where: { $0.name == name && $0.isPattern == p && !$0.active }) ?? s.subscriptions.firstIndex(where: { $0.name == name && $0.isPattern == p }) {
                s.subscriptions[i].active = true
            } else { s.subscriptions.append(Subscription(name: name, isPattern: p, active: true)) }
        case .unsubscribed(let name, let p):
            s.subscriptions.removeAll { $0.name == name && $0.isPattern == p }
        case .shardTrouble(let reason):
            flash(&s, reason, .warning, .everywhere)
        case .disconnected(let reason, let retry):
            s.session.subscriber = .reconnecting(reason)
            for i in s.subscriptions.indices where !s.subscriptions[i].isShard { s.subscriptions[i].active = false }
            flash(&s, "subscriber disconnected: \(reason) — retrying in \(String(format: "%.1f", retry)) s", .warning, .everywhere)
        case .gap(let g):
            flash(&s, "subscribed again after \(String(format: "%.1f", g.to - g.from)) s: messages published meanwhile may be lost (marked in the list)", .warning, .view(.events))
        case .refused(let name, let p, let reason):
            if let name { s.subscriptions.removeAll { $0.name == name && $0.isPattern == p } }
            flash(&s, "\(p ? "PSUBSCRIBE" : "SUBSCRIBE") \(name.map { Escaper.string($0) } ?? "") refused: \(reason)", .error, .everywhere)
        case .fatal(let reason):
            s.session.subscriber = .failed(reason)
            flash(&s, "subscriber stopped: \(reason)", .error, .everywhere)
        }
    }

    // MARK: keys

    static func key(_ s: inout AppState, _ k: Key, tail: ChannelTail) -> [Effect] {
        if s.helpOpen { return helpKey(&s, k) }
        if s.audit != nil { return AuditModule.key(&s, k) }
        if s.doctor != nil { return DoctorModule.key(&s, k) }
        if s.write != nil { return WriteFlowModule.key(&s, k) }
        if let c = s.confirm {
            s.confirm = nil
            if k == .char("y") || k == .char("Y") { return [WriteFlowModule.confirmed(c.effect, &s)] }
            flash(&s, "cancelled — nothing was changed", .info)
            return []
        }
        if s.prompt != nil { return promptKey(&s, k, tail: tail) }
        if k == .ctrl("c") { s.quitting = true; return [.quit] }
        guard let action = Bindings.action(for: k, in: s.view) else { return [] }
        return perform(&s, action, tail: tail)
    }

    static func perform(_ s: inout AppState, _ a: Action, tail: ChannelTail) -> [Effect] {
        switch a {
        case .quit: s.quitting = true; return [.quit]
        case .help: s.helpOpen = true; s.helpScroll = 0; return []
        case .show(let v): return show(&s, v, tail: tail)
        case .nextView: return show(&s, ViewID(rawValue: s.view.rawValue % ViewID.allCases.count + 1)!, tail: tail)
        case .previousView: return show(&s, ViewID(rawValue: (s.view.rawValue + ViewID.allCases.count - 2) % ViewID.allCases.count + 1)!, tail: tail)
        case .filter:
            if s.view == .server { flash(&s, "the Server view has no list to filter", .info); return [] }
            if s.view == .keys { s.keys.keyBeforeFilter = s.keys.selectedKey }
            s.prompt = Prompt(purpose: .filter, text: module(s.view).filterText(s))
            return []
        case .command:
            s.prompt = Prompt(purpose: .command, text: "")
            return []
        case .audit:
            s.audit = AuditUI()
            return [.readAudit]
        default:
            return module(s.view).perform(a, &s, tail: tail)
        }
    }

    static func show(_ s: inout AppState, _ v: ViewID, tail: ChannelTail) -> [Effect] {
        if v == s.view { return [] }
        s.view = v
        // A flash raised in another view does not follow the operator here.
        if let f = s.flash, let fv = f.view, fv != v { s.flash = nil }
        module(v).sync(&s, tail: tail)
        return module(v).entered(&s)
    }

    static func helpKey(_ s: inout AppState, _ k: Key) -> [Effect] {
        switch k {
        case .down, .char("j"): s.helpScroll += 1
        case .up, .char("k"): s.helpScroll = max(0, s.helpScroll - 1)
        case .pageDown, .char(" "): s.helpScroll += max(1, s.height - 6)
        case .pageUp: s.helpScroll = max(0, s.helpScroll - max(1, s.height - 6))
        case .char("q"): s.helpOpen = false; s.quitting = true; return [.quit]
        default: s.helpOpen = false
        }
        return []
    }

    static func promptKey(_ s: inout AppState, _ k: Key, tail: ChannelTail) -> [Effect] {
        guard var p = s.prompt else { return [] }
        switch k {
        case .escape:
            s.prompt = nil
            if p.purpose == .filter { return module(s.view).filterCommitted("", &s, tail: tail) }
            return []
        case .enter:
            s.prompt = nil
            remember(&s, p)
            return commit(&s, p, tail: tail)
        case .tab where p.purpose == .command:
            return [.complete(p.text)]
        case .up, .down:
            let h = s.history[p.historyKind(s.view)] ?? []
            guard !h.isEmpty else { return [] }
            if k == .up {
                if p.historyIndex == nil { p.draft = p.text; p.historyIndex = h.count - 1 }
                else if let i = p.historyIndex, i > 0 { p.historyIndex = i - 1 }
                else { return [] }
            } else {
                guard let i = p.historyIndex else { return [] }
                p.historyIndex = i + 1 < h.count ? i + 1 : nil
            }
            p.text = p.historyIndex.map { h[$0] } ?? p.draft
            p.cursor = p.text.count
            p.suggested = false
        default:
            guard LineEditor.edit(&p, k) else { return [] }
        }
        p.completions = []
        s.prompt = p
        if p.purpose == .filter { return module(s.view).filterTyped(p.text, &s, tail: tail) }
        return []
    }

    /// An entered line joins its prompt kind's history (no repeats in a row; the last 50).
    static func remember(_ s: inout AppState, _ p: Prompt) {
        let t = p.text.trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { return }
        var h = s.history[p.historyKind(s.view)] ?? []
        if h.last != p.text { h.append(p.text) }
        if h.count > 50 { h.removeFirst(h.count - 50) }
        s.history[p.historyKind(s.view)] = h
    }

    static func commit(_ s: inout AppState, _ p: Prompt, tail: ChannelTail) -> [Effect] {
        let text = p.text
        switch p.purpose {
        case .filter:
            return module(s.view).filterCommitted(text, &s, tail: tail)
        case .subscribe, .unsubscribe, .writeBuffer, .writeMessage, .publishChannel, .publishPayload:
            return EventsModule.commit(p, &s, tail: tail)
        case .writePattern(let action):
            return WriteFlowModule.start(action, glob: text, &s)
        case .command:
            return CommandLineModule.run(text, &s, tail: tail)
        }
    }
}
