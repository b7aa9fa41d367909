import Foundation
import RedisProtocol
import OpsCore

/// The command line (`:`), as in vim and k9s: `:workspace:42` or `:key workspace:42` opens a
/// key (or says it is not cached), `:get K` the same, `:ttl K` its TTL and cache age,
/// `:audit`, a view's name, `:q`. Keys may be given with or without the prefix; Tab completes.
enum CommandLineModule {
    static let views: [String: ViewID] = ["events": .events, "keys": .keys, "ratelimits": .rateLimits, "rate": .rateLimits,
                                          "locks": .locks, "server": .server, "activity": .activity, "1": .events, "2": .keys, "3": .rateLimits, "4": .locks, "5": .server, "6": .activity]

    /// Every command, for `:help` (and the README): usage, then what it does.
    static let commands: [(usage: String, help: String)] = [
        (":KEY  :key KEY", "open a key in the inspector (with or without the prefix; Tab completes)"),
        (":ttl KEY", "its TTL, and for a cache entry how old the value is and when it was cached"),
        (":del KEY", "delete that key (UNLINK; asks first; audited)"),
        (":expire KEY SECONDS", "give that key a TTL (asks first; audited)"),
        (":persist KEY", "remove that key's TTL (asks first; audited)"),
        (":reset IDENTIFIER", "reset a rate-limit counter, e.g. :reset user:1234 (DEL; asks first; audited)"),
        (":release LOCK", "release a stampede lock, e.g. :release workspace:42 (only if unchanged; asks first; audited)"),
        (":publish CHANNEL PAYLOAD", "publish one message (asks first; audited)"),
        (":doctor", "walk the path to the server step by step and say where it breaks"),
        (":notify on|off", "turn keyspace notifications on for the Activity view (CONFIG SET; asks; audited; put back on exit), or back off"),
        (":audit", "the audit log"),
        (":events :keys :ratelimits :locks :server :activity", "go to a view"),
        (":help", "this list"),
        (":q", "quit"),
    ]

    /// Verbs that take an argument; a word before a space that is none of them is an error,
    /// never a key lookup.
    static let verbs: Set<String> = ["key", "get", "open", "ttl", "del", "delete", "unlink", "expire", "persist", "reset", "release", "publish", "notify"]

    /// The full key for what the operator typed (the prefix is added unless it is there).
    static func fullKey(_ text: String, _ s: AppState) -> Bytes {
        let b = Bytes(utf8: text)
        return s.schema.relative(b) != nil ? b : s.schema.prefix + b
    }

    /// The key of a namespace's entry named by what was typed: `user:1234` for a counter
    /// (`ratelimit:user:1234` and the full key work too).
    static func namespacedKey(_ text: String, pattern: String, _ s: AppState) -> Bytes {
        let b = Bytes(utf8: text)
        if s.schema.relative(b) != nil { return b }
        let ns = Bytes(utf8: pattern.split(separator: "*", maxSplits: 1).first.map(String.init) ?? "")
        return s.schema.prefix + (b.hasPrefix(ns) ? b : ns + b)
    }

    static func split(_ text: String) -> (verb: String?, arg: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let sp = t.firstIndex(of: " ") {
            return (String(t[..<sp]).lowercased(), t[t.index(after: sp)...].trimmingCharacters(in: .whitespaces))
        }
        return (nil, t)
    }

    static func refuseWrite(_ what: String, _ s: inout AppState) -> Bool {
        guard s.session.readOnly else { return false }
        Reducer.flash(&s, "read-only mode: \(what) is refused (start without --read-only to allow it)", .error)
        return true
    }

    static func run(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        let (verb, arg) = split(text)
        guard let verb else {
            switch arg.lowercased() {
            case "": return []
            case "q", "quit", "q!": s.quitting = true; return [.quit]
            case "audit": s.audit = AuditUI(); return [.readAudit]
            case "doctor": return DoctorModule.open(&s)
            case "help", "h", "?": s.helpOpen = true; s.helpScroll = 0; return []
            default:
                if let v = views[arg.lowercased()] { return Reducer.show(&s, v, tail: tail) }
                if verbs.contains(arg.lowercased()) {
                    let usage = commands.first { $0.usage.hasPrefix(":" + arg.lowercased() + " ") }?.usage ?? ":\(arg.lowercased()) …"
                    Reducer.flash(&s, "usage: \(usage)", .warning)
                    return []
                }
            }
            return [.lookup(fullKey(arg, s), .open)]
        }
        guard verbs.contains(verb) else {
            Reducer.flash(&s, "unknown command \(Escaper.string(Bytes(utf8: verb), escapeBackslash: false)); try :help", .warning)
            return []
        }
        switch verb {
        case "key", "get", "open":
            return [.lookup(fullKey(arg, s), .open)]
        case "ttl":
            return [.lookup(fullKey(arg, s), .ttl)]
        case "del", "delete", "unlink":
            if refuseWrite("deleting", &s) { return [] }
            return [.lookup(fullKey(arg, s), .delete)]
        case "persist":
            if refuseWrite("removing a TTL", &s) { return [] }
            return [.lookup(fullKey(arg, s), .persist)]
        case "expire":
            if refuseWrite("setting a TTL", &s) { return [] }
            let (keyText, secondsText) = lastWord(arg)
            guard let secs = Int64(secondsText), secs > 0, secs <= 10 * 365 * 86_400, !keyText.isEmpty else {
                Reducer.flash(&s, "usage: :expire KEY SECONDS (a whole number of seconds, at least 1)", .warning)
                return []
            }
            return [.lookup(fullKey(keyText, s), .expire(seconds: secs))]
        case "reset":
            if refuseWrite("resetting a counter", &s) { return [] }
            return [.lookupCounter(namespacedKey(arg, pattern: s.schema.rateLimitPattern, s))]
        case "release":
            if refuseWrite("releasing a lock", &s) { return [] }
            return [.lookupLock(namespacedKey(arg, pattern: s.schema.lockPattern, s))]
        case "notify":
            switch arg.lowercased() {
            case "on": return ActivityModule.notify(true, &s)
            case "off": return ActivityModule.notify(false, &s)
            default: Reducer.flash(&s, "usage: :notify on|off", .warning); return []
            }
        case "publish":
            if refuseWrite("publishing", &s) { return [] }
            guard let sp = arg.firstIndex(of: " ") else {
                Reducer.flash(&s, "usage: :publish CHANNEL PAYLOAD", .warning)
                return []
            }
            let channel = Bytes(utf8: String(arg[..<sp]))
            let payload = Bytes(utf8: arg[arg.index(after: sp)...].trimmingCharacters(in: .whitespaces))
            return EventsModule.publishConfirmation(channel: channel, payload: payload, &s)
        default:
            return []
        }
    }

    /// "KEY WITH SPACES 60" → ("KEY WITH SPACES", "60").
    static func lastWord(_ t: String) -> (String, String) {
        guard let sp = t.lastIndex(of: " ") else { return ("", t) }
        return (t[..<sp].trimmingCharacters(in: .whitespaces), String(t[t.index(after: sp)...]))
    }

    static func notThere(_ key: Bytes, _ what: String, _ s: inout AppState) {
        Reducer.flash(&s, "\(Escaper.string(key)) \(what)", .warning)
    }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        switch ev {
        case .counterLookedUp(let key, let found):
            guard let c = found else { notThere(key, "does not exist: no such counter (its window may have ended)", &s); return [] }
            s.confirm = RateLimitsModule.resetConfirmation(c, s)
            return []
        case .lockLookedUp(let key, let found):
            guard let l = found else { notThere(key, "does not exist: no such lock (it may have been released or expired)", &s); return [] }
            s.confirm = LocksModule.releaseConfirmation(l, s)
            return []
        case .lookedUp(let key, let found, let purpose, let updatedAt):
            guard let info = found, !info.isGone else {
                switch purpose {
                case .open, .ttl: notThere(key, "is not cached (no such key)", &s)
                case .delete, .expire, .persist: notThere(key, "does not exist: nothing to change", &s)
                }
                return []
            }
            switch purpose {
            case .ttl:
                Reducer.flash(&s, "\(Escaper.string(key)): " + KeysModule.ageText(ttl: info.ttl, readAt: info.readAt, kind: info.kind, updatedAt: updatedAt, s), .info)
                return []
            case .open:
                let out = Reducer.show(&s, .keys, tail: noTail)
                return out + KeysModule.inspect(key, &s)
            case .delete:
                s.confirm = KeysModule.deleteConfirmation(info, s)
                return []
            case .expire(let secs):
                let req = WriteRequest(action: .expire(ttl: secs, onlyWithoutTTL: false), keys: [key])
                s.confirm = Confirmation(question: "Give this key a TTL of \(formatDuration(secs * 1000))? (EXPIRE, audited)", subject: Escaper.string(key),
                                         detail: KeysModule.describe(info, s), effect: .execute(id: 0, WritePlan(request: req, keys: [key])))
                return []
            case .persist:
                if info.ttl == .persistent { notThere(key, "has no TTL already: nothing to change", &s); return [] }
                let req = WriteRequest(action: .persist, keys: [key])
                s.confirm = Confirmation(question: "Remove this key's TTL? It will never expire (PERSIST, audited)", subject: Escaper.string(key),
                                         detail: KeysModule.describe(info, s), effect: .execute(id: 0, WritePlan(request: req, keys: [key])))
                return []
            }
        case .completions(let prefix, let found):
            guard var p = s.prompt, p.purpose == .command, p.text == prefix else { return [] }
            let (verb, arg) = split(prefix)
            let rels = found.keys.map { s.schema.relative($0) ?? $0 }.sorted { $0.lexicographicallyPrecedes($1) }
            guard !rels.isEmpty else {
                Reducer.flash(&s, found.complete ? "no key starts with “\(Escaper.string(arg))”"
                                  : "no key starting with “\(Escaper.string(arg))” in the part of the keyspace searched (a bounded SCAN): type more and Tab again", .info)
                return []
            }
            // Only names that can be typed back as they are go into the line; the others
            // are shown, escaped.
            let typeable = rels.compactMap { b -> String? in
                let t = String(decoding: b, as: UTF8.self)
                return Escaper.string(b, escapeBackslash: false) == t ? t : nil
            }
            if var common = typeable.first {
                for r in typeable.dropFirst() { while !r.hasPrefix(common) { common.removeLast() } }
                let head = verb.map { $0 + " " } ?? ""
                if common.count > arg.count || rels.count == 1 { p.text = head + common; p.cursor = p.text.count; p.suggested = false }
            }
            if rels.count > 1 {
                let more = found.complete ? "" : "+"
                p.completionsNote = "\(rels.count)\(more) keys\(found.complete ? "" : " (part of the keyspace searched)"):"
                p.completions = rels.prefix(50).map { Escaper.string($0, maxScalars: 60) }
            } else {
                p.completions = []
            }
            s.prompt = p
        default: break
        }
        return []
    }
}
