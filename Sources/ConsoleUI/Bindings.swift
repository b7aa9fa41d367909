/// What a key does. One table drives dispatch, the footer and the help screen, so
/// they cannot disagree.
public enum Action: Sendable, Equatable {
    case quit, help, show(ViewID), nextView, previousView
    case up, down, pageUp, pageDown, top, bottom
    case filter, clearFilter, details
    case pause, subscribe, unsubscribe, write, channels
    case reset, delete, invalidate, sort, summary, nextPage, refresh
}

public struct Binding: Sendable {
    public enum Scope: Sendable, Equatable { case global, view(ViewID) }
    public var keys: [Key]
    public var label: String
    public var help: String
    public var scope: Scope
    /// Shown in the footer (short form).
    public var footer: String?
    public var action: Action
}

public enum Bindings {
    public static let all: [Binding] = [
        Binding(keys: [.char("q")], label: "q", help: "quit (the terminal is restored)", scope: .global, footer: "quit", action: .quit),
        Binding(keys: [.char("?")], label: "?", help: "this help", scope: .global, footer: "help", action: .help),
        Binding(keys: [.char("1")], label: "1", help: "Events: live pub/sub tail", scope: .global, footer: nil, action: .show(.events)),
        Binding(keys: [.char("2")], label: "2", help: "Keys under the prefix", scope: .global, footer: nil, action: .show(.keys)),
        Binding(keys: [.char("3")], label: "3", help: "Rate limits", scope: .global, footer: nil, action: .show(.rateLimits)),
        Binding(keys: [.char("4")], label: "4", help: "Locks", scope: .global, footer: nil, action: .show(.locks)),
        Binding(keys: [.char("5")], label: "5", help: "Server overview", scope: .global, footer: nil, action: .show(.server)),
        Binding(keys: [.tab], label: "Tab", help: "next view (Shift-Tab: previous)", scope: .global, footer: nil, action: .nextView),
        Binding(keys: [.backTab], label: "S-Tab", help: "previous view", scope: .global, footer: nil, action: .previousView),
        Binding(keys: [.up, .char("k")], label: "↑/k", help: "move up (stops following new messages)", scope: .global, footer: nil, action: .up),
        Binding(keys: [.down, .char("j")], label: "↓/j", help: "move down", scope: .global, footer: nil, action: .down),
        Binding(keys: [.pageUp, .ctrl("b")], label: "PgUp", help: "page up", scope: .global, footer: nil, action: .pageUp),
        Binding(keys: [.pageDown, .ctrl("f")], label: "PgDn", help: "page down", scope: .global, footer: nil, action: .pageDown),
        Binding(keys: [.char("g"), .home], label: "g", help: "first row", scope: .global, footer: nil, action: .top),
        Binding(keys: [.char("G"), .end], label: "G", help: "last row (and follow new messages)", scope: .global, footer: nil, action: .bottom),
        Binding(keys: [.char("/")], label: "/", help: "filter: text, or field=value in JSON (type=member.added); Enter keeps, Esc clears", scope: .view(.events), footer: "filter", action: .filter),
        Binding(keys: [.escape], label: "Esc", help: "clear the filter / close the detail pane", scope: .global, footer: nil, action: .clearFilter),
        Binding(keys: [.enter], label: "Enter", help: "details of the selected row (JSON pretty-printed)", scope: .view(.events), footer: "details", action: .details),
        Binding(keys: [.char(" ")], label: "space", help: "pause / resume the live view (the buffer keeps filling)", scope: .view(.events), footer: "pause", action: .pause),
        Binding(keys: [.char("s")], label: "s", help: "subscribe to another channel or pattern", scope: .view(.events), footer: "subscribe", action: .subscribe),
        Binding(keys: [.char("u")], label: "u", help: "unsubscribe (the selected message's channel or pattern is offered)", scope: .view(.events), footer: "unsub", action: .unsubscribe),
        Binding(keys: [.char("c")], label: "c", help: "per-channel totals and rates", scope: .view(.events), footer: "channels", action: .channels),
        Binding(keys: [.char("w")], label: "w", help: "write the buffer (or its filtered part) to an NDJSON file", scope: .view(.events), footer: "write", action: .write),
        Binding(keys: [.char("/")], label: "/", help: "filter: a glob relative to the prefix (workspace:1*) or a substring", scope: .view(.keys), footer: "filter", action: .filter),
        Binding(keys: [.enter], label: "Enter", help: "inspect the selected key's value (paged, never fetched whole)", scope: .view(.keys), footer: "inspect", action: .details),
        Binding(keys: [.char("n")], label: "n", help: "next page of the inspected value", scope: .view(.keys), footer: nil, action: .nextPage),
        Binding(keys: [.char("o")], label: "o", help: "sort by name, TTL or size", scope: .view(.keys), footer: "sort", action: .sort),
        Binding(keys: [.char("N")], label: "N", help: "namespace summary: keys and memory per segment", scope: .view(.keys), footer: "namespaces", action: .summary),
        Binding(keys: [.char("R")], label: "R", help: "rescan the keys", scope: .view(.keys), footer: nil, action: .refresh),
        Binding(keys: [.char("d")], label: "d", help: "delete the selected key (UNLINK; asks first)", scope: .view(.keys), footer: "delete", action: .delete),
        Binding(keys: [.char("D")], label: "D", help: "invalidate by pattern: dry run, typed confirmation, throttled UNLINK, report", scope: .view(.keys), footer: "invalidate", action: .invalidate),
        Binding(keys: [.char("d")], label: "d", help: "release the selected lock (asks first)", scope: .view(.locks), footer: "release", action: .delete),
        Binding(keys: [.char("/")], label: "/", help: "filter counters by identifier (an IP, a user id)", scope: .view(.rateLimits), footer: "filter", action: .filter),
        Binding(keys: [.enter], label: "Enter", help: "the selected counter in detail, with its count sampled while the view is open", scope: .view(.rateLimits), footer: "details", action: .details),
        Binding(keys: [.char("r")], label: "r", help: "reset the selected counter (DEL; asks first; refused in read-only mode)", scope: .view(.rateLimits), footer: "reset", action: .reset),
    ]

    public static func action(for key: Key, in view: ViewID) -> Action? {
        for b in all where b.keys.contains(key) {
            if b.scope == .global || b.scope == .view(view) { return b.action }
        }
        return nil
    }

    /// Footer entries for a view: its own keys first, then the global ones.
    public static func footer(for view: ViewID) -> [(String, String)] {
        let own = all.filter { $0.scope == .view(view) && $0.footer != nil }.map { ($0.label, $0.footer!) }
        let global = all.filter { $0.scope == .global && $0.footer != nil }.map { ($0.label, $0.footer!) }
        return own + [("1-5", "views")] + global
    }
}
