import Foundation
import RedisProtocol
import RedisClient
import OpsCore

/// Rows of the key browser after the filter (glob relative to the prefix, or substring) and the sort.
public func visibleKeys(_ s: AppState) -> [KeyRow] {
    var rows = s.keys.rows
    let f = s.keys.filter
    if !f.isEmpty {
        let prefix = Bytes(utf8: s.session.prefix)
        if f.contains("*") || f.contains("?") || f.contains("[") {
            let g = Bytes(utf8: f)
            rows = rows.filter { r in
                let rel = r.meta.key.hasPrefix(prefix) ? Array(r.meta.key[prefix.count...]) : r.meta.key
                return globMatch(g, rel)
            }
        } else {
            let needle = Bytes(utf8: f.lowercased())
            rows = rows.filter { TailFilter.contains($0.meta.key, needle) }
        }
    }
    switch s.keys.sort {
    case .name: rows.sort { $0.meta.key.lexicographicallyPrecedes($1.meta.key) }
    case .ttl:
        func rank(_ r: KeyRow) -> Int64 {
            switch r.meta.ttl { case .persistent?: return Int64.max; case .expiresIn(let ms)?: return ms - Int64((r.readAt) * 0); default: return Int64.max - 1 }
        }
        rows.sort { rank($0) != rank($1) ? rank($0) < rank($1) : $0.meta.key.lexicographicallyPrecedes($1.meta.key) }
    case .size: rows.sort { ($0.meta.bytes ?? -1) != ($1.meta.bytes ?? -1) ? ($0.meta.bytes ?? -1) > ($1.meta.bytes ?? -1) : $0.meta.key.lexicographicallyPrecedes($1.meta.key) }
    }
    return rows
}

/// What breaks the application's conventions for a key, if anything.
public func conventionNote(_ r: KeyRow, schema: KeySchema) -> (String, Role)? {
    switch (r.kind, r.meta.ttl) {
    case (.cache, .persistent?): return ("no TTL: leak?", .warning)
    case (.lock, .persistent?): return ("no TTL: stuck lock", .error)
    case (.rateLimit, .persistent?): return ("no TTL: blocks forever", .error)
    case (_, .expiresIn(let ms)?):
        if let exp = schema.expectedTTLms(r.kind), ms > exp + 1000 { return ("TTL > \(exp / 1000)s", .warning) }
        return nil
    default: return nil
    }
}

public func keysLayout(_ s: AppState) -> EventsLayout {
    let top = s.bodyTop + 1
    let total = max(0, s.bodyHeight - 1)
    if s.keys.inspector != nil || s.keys.showSummary || s.keys.inspectorLoading != nil {
        let pane = min(max(total * 3 / 5, 4), total)
        return EventsLayout(listTop: top, listHeight: total - pane, paneTop: top + total - pane, paneHeight: pane)
    }
    return EventsLayout(listTop: top, listHeight: total, paneTop: top + total, paneHeight: 0)
}

extension Reducer {
    static func enteredView(_ s: inout AppState) -> [Effect] {
        if s.view == .keys && !s.keys.started {
            s.keys.session += 1
            return [.scanKeys(session: s.keys.session)]
        }
        return []
    }

    static func keysEvent(_ s: inout AppState, _ ev: AppEvent) -> [Effect] {
        switch ev {
        case .keysPage(let metas, let scanned, let done, let estimate, let session, let at):
            guard session == s.keys.session else { return [] }
            let sc = s.schema
            let room = max(0, s.keys.cap - s.keys.rows.count)
            for m in metas.prefix(room) where m.type != "none" && m.ttl != .gone {
                s.keys.rows.append(KeyRow(meta: m, kind: sc.kind(of: m.key), readAt: at))
            }
            s.keys.scanned = scanned
            s.keys.done = done || s.keys.rows.count >= s.keys.cap
            if let e = estimate { s.keys.estimate = e }
            s.keys.error = nil
        case .keysFailed(let why):
            s.keys.error = why
            s.keys.done = true
        case .inspected(let v):
            if s.keys.inspectorLoading == v.key || s.keys.inspector?.key == v.key {
                s.keys.inspector = v
                s.keys.inspectorLoading = nil
            }
        case .locks(let rows, let at):
            s.locks.rows = rows
            s.locks.readAt = at
            s.locks.loaded = true
            s.locks.error = nil
        case .locksFailed(let why):
            s.locks.error = why
            s.locks.loaded = true
        case .invalidationPlanning(let n):
            if var inv = s.invalidation, case .planning = inv.phase { inv.phase = .planning(found: n); s.invalidation = inv }
        case .invalidationPlanned(let plan):
            guard var inv = s.invalidation else { return [] }
            inv.phase = .confirming(plan, typed: "")
            s.invalidation = inv
        case .invalidationProgress(let p):
            guard var inv = s.invalidation else { return [] }
            switch inv.phase {
            case .running(let plan, _): inv.phase = .running(plan, p)
            case .cancelling(let plan, _): inv.phase = .cancelling(plan, p)
            default: break
            }
            s.invalidation = inv
        case .invalidationDone(let r):
            guard var inv = s.invalidation else { return [] }
            inv.phase = .done(r)
            s.invalidation = inv
            // The browser no longer holds what went.
            s.keys.session += 1
            s.keys.rows.removeAll()
            s.keys.scanned = 0
            s.keys.done = false
            s.keys.inspector = nil
            return [.scanKeys(session: s.keys.session)]
        case .invalidationFailed(let why):
            guard var inv = s.invalidation else { return [] }
            inv.phase = .failed(why)
            s.invalidation = inv
        default:
            break
        }
        return []
    }

    static func selectedKeyRow(_ s: AppState) -> KeyRow? {
        guard let k = s.keys.selectedKey else { return nil }
        return s.keys.rows.first { $0.meta.key == k }
    }

    static func keysAction(_ s: inout AppState, _ a: Action) -> [Effect] {
        switch a {
        case .details:
            guard let r = selectedKeyRow(s) else { return [] }
            if s.keys.inspector?.key == r.meta.key { s.keys.inspector = nil; return [] }
            s.keys.showSummary = false
            s.keys.inspectorLoading = r.meta.key
            return [.inspect(r.meta.key, cursor: nil)]
        case .nextPage:
            guard let v = s.keys.inspector, let next = v.next else { return [] }
            s.keys.inspectorLoading = v.key
            return [.inspect(v.key, cursor: next)]
        case .sort:
            let all = KeySort.allCases
            s.keys.sort = all[(all.firstIndex(of: s.keys.sort)! + 1) % all.count]
            flash(&s, "sorted by \(s.keys.sort.rawValue)", .info)
        case .summary:
            s.keys.showSummary.toggle()
            if s.keys.showSummary { s.keys.inspector = nil }
        case .refresh:
            s.keys.session += 1
            s.keys.rows.removeAll(); s.keys.scanned = 0; s.keys.done = false
            return [.scanKeys(session: s.keys.session)]
        case .delete:
            if s.session.readOnly {
                flash(&s, "read-only mode: deleting is refused (start without --read-only to allow it)", .error)
                return []
            }
            if s.view == .locks {
                guard let k = s.locks.selectedKey, let l = s.locks.rows.first(where: { $0.key == k }) else { return [] }
                s.confirm = Confirmation(question: "Release lock \(Escaper.string(k)) (protects \(Escaper.string(l.protects)))? y = yes · any other key = no", effect: .deleteKey(k))
                return []
            }
            guard let r = selectedKeyRow(s) else { flash(&s, "no key selected", .info); return [] }
            let size = r.meta.bytes.map(formatBytes) ?? "size ?"
            s.confirm = Confirmation(question: "Delete \(Escaper.string(r.meta.key)) (\(r.meta.type ?? "?"), \(size))? y = yes · any other key = no", effect: .deleteKey(r.meta.key))
        case .invalidate:
            if s.session.readOnly {
                flash(&s, "read-only mode: invalidation is refused (start without --read-only to allow it)", .error)
                return []
            }
            let f = s.keys.filter
            s.prompt = Prompt(purpose: .invalidatePattern, text: f.contains("*") || f.contains("?") ? f : "")
        default: break
        }
        return []
    }

    /// Keys while the invalidation panel is open: digits to type the count, Enter, Esc.
    static func invalidationKey(_ s: inout AppState, _ k: Key) -> [Effect] {
        guard var inv = s.invalidation else { return [] }
        switch inv.phase {
        case .planning:
            if k == .escape { s.invalidation = nil; flash(&s, "dry run abandoned — nothing was deleted", .info); return [.cancelInvalidation] }
        case .confirming(let plan, var typed):
            switch k {
            case .escape:
                s.invalidation = nil
                flash(&s, "cancelled — nothing was deleted", .info)
            case .backspace: if !typed.isEmpty { typed.removeLast() }; inv.phase = .confirming(plan, typed: typed); s.invalidation = inv
            case .char(let c) where c.isNumber: typed.append(c); inv.phase = .confirming(plan, typed: typed); s.invalidation = inv
            case .enter:
                if plan.keys.isEmpty { s.invalidation = nil; return [] }
                guard typed == String(plan.keys.count) else {
                    flash(&s, "type exactly \(plan.keys.count) to confirm", .warning)
                    return []
                }
                inv.phase = .running(plan, InvalidationProgress(done: 0, total: plan.keys.count, deleted: 0, elapsed: 0))
                s.invalidation = inv
                return [.executeInvalidation(plan)]
            default: break
            }
        case .running(let plan, let p):
            if k == .escape {
                inv.phase = .cancelling(plan, p)
                s.invalidation = inv
                return [.cancelInvalidation]
            }
        case .cancelling:
            break
        case .done, .failed:
            s.invalidation = nil
        }
        return []
    }

    static func moveKeys(_ s: inout AppState, _ a: Action) {
        if s.keys.inspector != nil, a == .pageDown || a == .pageUp { return }
        let rows = visibleKeys(s)
        guard !rows.isEmpty else { return }
        let page = max(1, keysLayout(s).listHeight - 1)
        let cur = rows.firstIndex { $0.meta.key == s.keys.selectedKey } ?? 0
        s.keys.selectedKey = rows[step(a, from: cur, count: rows.count, page: page)].meta.key
    }

    static func moveLocks(_ s: inout AppState, _ a: Action) {
        let rows = s.locks.rows
        guard !rows.isEmpty else { return }
        let cur = rows.firstIndex { $0.key == s.locks.selectedKey } ?? 0
        s.locks.selectedKey = rows[step(a, from: cur, count: rows.count, page: max(1, s.bodyHeight - 2))].key
    }

    static func syncKeys(_ s: inout AppState) {
        let rows = visibleKeys(s)
        if rows.isEmpty { s.keys.selectedKey = nil; s.keys.scrollTop = 0 }
        else {
            if s.keys.selectedKey == nil || !rows.contains(where: { $0.meta.key == s.keys.selectedKey }) { s.keys.selectedKey = rows[0].meta.key }
            let idx = rows.firstIndex { $0.meta.key == s.keys.selectedKey } ?? 0
            s.keys.scrollTop = window(s.keys.scrollTop, keeping: idx, height: max(1, keysLayout(s).listHeight), count: rows.count)
        }
        if s.locks.rows.isEmpty { s.locks.selectedKey = nil; s.locks.scrollTop = 0 }
        else {
            if s.locks.selectedKey == nil || !s.locks.rows.contains(where: { $0.key == s.locks.selectedKey }) { s.locks.selectedKey = s.locks.rows[0].key }
            let idx = s.locks.rows.firstIndex { $0.key == s.locks.selectedKey } ?? 0
            s.locks.scrollTop = window(s.locks.scrollTop, keeping: idx, height: max(1, s.bodyHeight - 1), count: s.locks.rows.count)
        }
    }
}
