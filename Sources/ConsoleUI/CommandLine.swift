import Foundation
import RedisProtocol
import OpsCore

/// The command line (`:`), as in vim and k9s: `:workspace:42` or `:key workspace:42` opens a
/// key (or says it is not cached), `:get K` the same, `:ttl K` its TTL and cache age,
/// `:audit`, a view's name, `:q`. Keys may be given with or without the prefix; Tab completes.
enum CommandLineModule {
    static let views: [String: ViewID] = ["events": .events, "keys": .keys, "ratelimits": .rateLimits, "rate": .rateLimits,
                                          "locks": .locks, "server": .server, "1": .events, "2": .keys, "3": .rateLimits, "4": .locks, "5": .server]

    /// The full key for what the operator typed (the prefix is added unless it is there).
    static func fullKey(_ text: String, _ s: AppState) -> Bytes {
        let b = Bytes(utf8: text)
        return s.schema.relative(b) != nil ? b : s.schema.prefix + b
    }

    static func split(_ text: String) -> (verb: String?, arg: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let sp = t.firstIndex(of: " ") {
            let verb = String(t[..<sp]).lowercased()
            if ["key", "get", "ttl", "open"].contains(verb) { return (verb, t[t.index(after: sp)...].trimmingCharacters(in: .whitespaces)) }
        }
        return (nil, t)
    }

    static func run(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        let (verb, arg) = split(text)
        guard !arg.isEmpty else { return [] }
        if verb == nil {
            switch arg.lowercased() {
            case "q", "quit", "q!": s.quitting = true; return [.quit]
            case "audit": s.audit = AuditUI(); return [.readAudit]
            case "doctor": return DoctorModule.open(&s)
            case "help", "h": s.helpOpen = true; return []
            default:
                if let v = views[arg.lowercased()] { return Reducer.show(&s, v, tail: tail) }
            }
        }
        let key = fullKey(arg, s)
        return [.lookup(key, verb == "ttl" ? .ttl : .open)]
    }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        switch ev {
        case .lookedUp(let key, let found, let purpose):
            guard let info = found, !info.isGone else {
                Reducer.flash(&s, "\(Escaper.string(key)) is not cached (no such key)", .warning)
                return []
            }
            switch purpose {
            case .ttl:
                var t = "\(Escaper.string(key)): TTL \(formatTTL(info.ttl))"
                if info.kind == .cache, case .expiresIn(let ms)? = info.ttl, s.schema.cacheTTL * 1000 >= ms {
                    t += " · cached ~\(formatDuration(s.schema.cacheTTL * 1000 - ms)) ago (TTL \(s.schema.cacheTTL)s)"
                } else if let issue = s.schema.convention(of: info) {
                    t += " · " + issue.text
                }
                Reducer.flash(&s, t, .info)
                return []
            case .open:
                let out = Reducer.show(&s, .keys, tail: noTail)
                return out + KeysModule.inspect(key, &s)
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
                if common.count > arg.count || rels.count == 1 { p.text = head + common }
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
