/// What a key does. One table drives dispatch, the footer and the help screen, so
/// they cannot disagree.
public enum Action: Sendable, Equatable {
    case quit, help, show(ViewID), nextView, previousView
    case up, down, pageUp, pageDown, top, bottom
    case filter, back, details, command, audit
    case pause, follow, subscribe, unsubscribe, write, channels, publish
    case reset, delete, invalidate, expire, sort, namespaces, nextPage, rescan
    case nextMatch, previousMatch, cycleState, killClient
}

public struct Binding: Sendable {
    public enum Scope: Sendable, Equatable { case global, view(ViewID) }
    public var keys: [Key]
    public var label: String
    public var help: String
    public var scope: Scope
    /// Shown in the footer (short form); nil: only in the help.
    public var footer: String?
    public var action: Action
}

public enum Bindings {
    static func b(_ keys: [Key], _ label: String, _ help: String, _ scope: Binding.Scope, _ footer: String?, _ a: Action) -> Binding {
        Binding(keys: keys, label: label, help: help, scope: scope, footer: footer, action: a)
    }

    public static let all: [Binding] = [
        // The view's own keys come first in the footer; the global ones follow.
        b([.char(" ")], "space", "pause / resume the list (the buffer keeps filling; the status line counts what arrived)", .view(.events), "pause", .pause),
        b([.char("F")], "F", "follow the newest message again", .view(.events), "follow", .follow),
        b([.enter], "Enter", "the selected message in full (JSON pretty-printed); PgUp/PgDn scroll it", .view(.events), "details", .details),
        b([.char("s")], "s", "subscribe to another channel or pattern", .view(.events), "subscribe", .subscribe),
        b([.char("u")], "u", "unsubscribe (the selected message's channel or pattern is offered)", .view(.events), "unsub", .unsubscribe),
        b([.char("c")], "c", "channels: totals, msg/s, subscribers (PUBSUB NUMSUB), channels under the patterns", .view(.events), "channels", .channels),
        b([.char("w")], "w", "write the list (or, in the detail pane, the message) to an NDJSON file", .view(.events), "write", .write),
        b([.char("p")], "p", "publish a test message (asks first; audited; refused in read-only mode)", .view(.events), "publish", .publish),
        b([.char("/")], "/", "filter: words that must all hold — field=value, field~text (JSON fields), free text; Enter keeps it, Esc clears it", .view(.events), "filter", .filter),

        b([.char("/")], "/", "filter on the server: glob, substring (exact name first), =KEY exactly; state:flagged", .view(.keys), "filter", .filter),
        b([.enter], "Enter", "inspect the selected key's value (paged, never fetched whole); PgUp/PgDn scroll it", .view(.keys), "inspect", .details),
        b([.char("]")], "]", "next page of the inspected value (PgDn at its end does the same)", .view(.keys), nil, .nextPage),
        b([.char("d")], "d", "delete the selected key (UNLINK; asks first)", .view(.keys), "delete", .delete),
        b([.char("D")], "D", "invalidate by pattern: dry run, typed confirmation, paced UNLINK, report", .view(.keys), "invalidate", .invalidate),
        b([.char("e")], "e", "give the cache TTL to keys without one (the selected key, or all under a pattern; dry run first)", .view(.keys), "expire", .expire),
        b([.char("o")], "o", "sort by the next column (flagged first, name, type, TTL, size, kind)", .view(.keys), "sort", .sort),
        b([.char("!")], "!", "only the keys that break the conventions (again: all keys); /state:flagged does the same", .view(.keys), nil, .cycleState),
        b([.char("M")], "M", "namespaces: keys and memory per first segment, over every key scanned", .view(.keys), "namespaces", .namespaces),
        b([.char("R")], "R", "rescan (the list is also rescanned on its own, at a pace its cost allows)", .view(.keys), "rescan", .rescan),

        b([.char("/")], "/", "filter: a substring (an exact identifier first), =user:1234 exactly, state:broken|blocked|near|ok", .view(.rateLimits), "filter", .filter),
        b([.enter], "Enter", "the selected counter in detail, with its count sampled while it is on screen", .view(.rateLimits), "details", .details),
        b([.char("r")], "r", "reset the selected counter (DEL; asks first; the client's next request starts a new window)", .view(.rateLimits), "reset", .reset),
        b([.char("o")], "o", "sort by the next column (state: flagged first, count, TTL, identifier, kind)", .view(.rateLimits), "sort", .sort),
        b([.char("!")], "!", "only one state, in turn: broken (no TTL), blocked, near, then all (/state:blocked does the same)", .view(.rateLimits), nil, .cycleState),
        b([.char("o")], "o", "sort by the next column (state: stuck first, protects, held, remaining, value)", .view(.locks), "sort", .sort),
        b([.char("!")], "!", "only the stuck locks (again: all); /state:stuck does the same", .view(.locks), nil, .cycleState),
        b([.char("R")], "R", "read every counter again now", .view(.rateLimits), "rescan", .rescan),

        b([.char("/")], "/", "filter: a substring of the lock, =workspace:42 exactly, state:stuck|held", .view(.locks), "filter", .filter),
        b([.char("d")], "d", "release the selected lock (only if it is still the one shown: same value, TTL not higher)", .view(.locks), "release", .delete),
        b([.char("R")], "R", "read every lock again now", .view(.locks), "rescan", .rescan),

        b([.char("R")], "R", "read the server again now", .view(.server), "refresh", .rescan),
        b([.char("k")], "k", "disconnect the selected client (CLIENT KILL ID; asks, naming it; audited). ↑/↓ select a client", .view(.server), "kill client", .killClient),
        b([.char("R")], "R", "read notify-keyspace-events again (after changing it in the parameter group)", .view(.activity), "recheck", .rescan),

        b([.char("n")], "n", "next match of the filter (Events), or next flagged row (Keys, Rate limits, Locks)", .global, nil, .nextMatch),
        b([.char("N")], "N", "previous match, or previous flagged row", .global, nil, .previousMatch),
        b([.char(":")], ":", "command line: :KEY opens a key, :ttl KEY, :audit, :doctor, :help lists all (Tab completes)", .global, nil, .command),
        b([.char("A")], "A", "the audit log: recent writes and dry runs, newest first, with their keys", .global, nil, .audit),
        b([.char("1")], "1", "Events: live pub/sub tail", .global, nil, .show(.events)),
        b([.char("2")], "2", "Keys under the prefix", .global, nil, .show(.keys)),
        b([.char("3")], "3", "Rate limits", .global, nil, .show(.rateLimits)),
        b([.char("4")], "4", "Locks", .global, nil, .show(.locks)),
        b([.char("5")], "5", "Server", .global, nil, .show(.server)),
        b([.char("6")], "6", "Activity: keyspace events per namespace (sets, expirations, evictions)", .global, nil, .show(.activity)),
        b([.tab, .backTab], "Tab", "next view (Shift-Tab: previous)", .global, nil, .nextView),
        b([.up, .char("k")], "↑ k", "move up (in Events this stops following)", .global, nil, .up),
        b([.down, .char("j")], "↓ j", "move down", .global, nil, .down),
        b([.pageUp, .ctrl("b")], "PgUp", "page up (scrolls an open pane)", .global, nil, .pageUp),
        b([.pageDown, .ctrl("f")], "PgDn", "page down (scrolls an open pane)", .global, nil, .pageDown),
        b([.char("g"), .home], "g", "first row", .global, nil, .top),
        b([.char("G"), .end], "G", "last row (in Events: follow again)", .global, nil, .bottom),
        b([.escape], "Esc", "close the pane, clear the filter, or cancel", .global, nil, .back),
        b([.char("?")], "?", "this help", .global, "help", .help),
        b([.char("q")], "q", "quit (the terminal is restored)", .global, "quit", .quit),
    ]

    public static func action(for key: Key, in view: ViewID) -> Action? {
        if key == .backTab { return .previousView }
        for b in all where b.keys.contains(key) && b.scope == .view(view) { return b.action }
        for b in all where b.keys.contains(key) && b.scope == .global { return b.action }
        return nil
    }

    /// The bindings that apply in a view: its own first, then the global ones.
    public static func active(in view: ViewID) -> [Binding] {
        all.filter { $0.scope == .view(view) } + all.filter { $0.scope == .global }
    }

    /// Footer entries for a view: its own keys first, then the global ones (no filter where
    /// there is no list).
    public static func footer(for view: ViewID) -> [(String, String)] {
        active(in: view).filter { !((view == .server || view == .activity) && $0.action == .filter) }.compactMap { b in b.footer.map { (b.label, $0) } }
    }

    /// The key tables of the README, from the same table (a test keeps the README equal to it).
    public static func markdown() -> String {
        func table(_ rows: [Binding]) -> String {
            var out = "| key | does |\n|---|---|\n"
            for b in rows {
                let label = b.label.split(separator: " ").map { "`\($0 == "|" ? "\\|" : $0)`" }.joined(separator: " ")
                out += "| \(label) | \(b.help.replacingOccurrences(of: "|", with: "\\|")) |\n"
            }
            return out
        }
        var out = "**Everywhere**\n\n" + table(all.filter { $0.scope == .global })
        for v in ViewID.allCases {
            let own = all.filter { $0.scope == .view(v) }
            guard !own.isEmpty else { continue }
            out += "\n**\(v.title)** (`\(v.rawValue)`)\n\n" + table(own)
        }
        return out
    }
}
