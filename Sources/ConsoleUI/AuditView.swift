import Foundation
import RedisProtocol
import OpsCore

/// The Audit overlay (`A`, `:audit`): the newest records of the audit log, with the keys
/// of the selected one.
enum AuditModule {
    static func key(_ s: inout AppState, _ k: Key) -> [Effect] {
        guard var a = s.audit else { return [] }
        let n = a.entries.count
        switch k {
        case .escape, .char("q"), .char("A"), .enter: s.audit = nil; return []
        case .down, .char("j"): a.cursor = min(max(0, n - 1), a.cursor + 1); a.detailScroll = 0
        case .up, .char("k"): a.cursor = max(0, a.cursor - 1); a.detailScroll = 0
        case .home, .char("g"): a.cursor = 0; a.detailScroll = 0
        case .end, .char("G"): a.cursor = max(0, n - 1); a.detailScroll = 0
        case .pageDown: a.detailScroll += max(1, s.height / 3)
        case .pageUp: a.detailScroll = max(0, a.detailScroll - max(1, s.height / 3))
        case .char("R"): return [.readAudit]
        default: break
        }
        s.audit = a
        return []
    }

    static func summary(_ e: AuditEntry) -> String {
        var what = e.pattern.map { "pattern " + $0 } ?? (e.keys.first.map { Escaper.string($0, maxScalars: 60) } ?? "")
        if e.pattern == nil && e.keys.count > 1 { what += " +\(e.keys.count - 1)" }
        var counts = "matched \(e.matched)"
        if !e.dryRun { counts += " deleted \(e.deleted) gone \(e.alreadyGone) failed \(e.failed) unknown \(e.unknown)" }
        return "\(e.action)\(e.dryRun ? " (dry run)" : "") · \(Escaper.string(what)) · \(counts)\(e.cancelled ? " · cancelled" : "")"
    }

    static func render(_ g: inout CellGrid, _ s: AppState, _ a: AuditUI) {
        let inner = Modal.frame(&g, title: "Audit log · newest first · ↑↓ select · PgUp/PgDn keys · Esc closes", width: g.width, height: g.height - 2)
        guard inner.h > 3 else { return }
        var y = inner.y
        let maxX = inner.x + inner.w
        g.put(inner.x, y, a.loaded ? Escaper.string(a.path) : "reading the audit log…", .dim, maxX: maxX)
        y += 1
        if a.loaded && a.entries.isEmpty { g.put(inner.x, y + 1, "no records yet: every write and every dry run will be recorded here", .dim, maxX: maxX); return }
        let listH = max(1, min(a.entries.count, inner.h / 2 - 1))
        let top = ListNav.window(a.scrollTop, keeping: a.cursor, height: listH, count: a.entries.count)
        for i in 0..<listH {
            let idx = top + i
            guard idx < a.entries.count else { break }
            let e = a.entries[idx]
            let role: Role = e.error != nil || e.unknown > 0 ? .warning : (e.dryRun ? .dim : .normal)
            let x = g.put(inner.x, y, String(e.ts.prefix(19)).replacingOccurrences(of: "T", with: " ") + "  ", .dim, maxX: maxX)
            g.put(x, y, summary(e), role, maxX: maxX)
            if idx == a.cursor { g.select(y: y, from: inner.x, to: maxX) }
            y += 1
        }
        guard a.cursor < a.entries.count else { return }
        let e = a.entries[a.cursor]
        var lines: [[TextRun]] = []
        lines.append([TextRun("by \(Escaper.string(e.localUser)) as ACL user \(Escaper.string(e.aclUser)) on \(Escaper.string(e.server))")])
        if let err = e.error { lines.append([TextRun("error: " + Escaper.string(err), role: .error)]) }
        if let f = e.keysFile { lines.append([TextRun("every key (\(e.matched)) is in " + Escaper.string(f), role: .info)]) }
        for k in e.keys { lines.append(Escaper.runs(k, maxScalars: 300)) }
        let paneTop = y + 1
        let paneH = inner.y + inner.h - paneTop
        guard paneH > 1 else { return }
        TextPane.draw(&g, top: paneTop, height: paneH, title: " \(e.keys.count) key\(e.keys.count == 1 ? "" : "s") in the record", lines: lines,
                      scroll: a.detailScroll, x: inner.x, width: inner.w)
    }
}
