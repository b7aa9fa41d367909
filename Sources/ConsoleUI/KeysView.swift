import Foundation
import RedisProtocol
import OpsCore

enum KeysView {
    static func ttlCell(_ ttl: TTLState?, now: Double, readAt: Double) -> String {
        formatTTL(ttl, elapsedMs: elapsedMs(since: readAt, now: now))
    }

    static func render(_ g: inout CellGrid, _ s: AppState) {
        let k = s.keys
        let schema = s.schema
        let y0 = s.bodyTop - 1
        let rows = visibleKeys(s)
        var x = 0
        if !k.started { g.put(2, y0 + 2, "starting…", .dim); return }
        let progress: String
        if k.done { progress = "\(k.rows.count) keys" + (k.rows.count >= k.cap ? " (first \(k.cap); narrow with / or use `redis-ops keys`)" : "") }
        else {
            let est = k.estimate.map { "/ ~\($0) in db" } ?? ""
            progress = "scanning… \(k.rows.count) keys under the prefix (\(k.scanned) scanned \(est))"
        }
        x = g.put(x, y0, progress, k.done ? .title : .info)
        x = g.put(x, y0, " · sort \(k.sort.rawValue)", .dim)
        if !k.filter.isEmpty { x = g.put(x, y0, " · filter “\(k.filter)”: \(rows.count)", .info) }
        let breakers = k.rows.filter { conventionNote($0, schema: schema) != nil }.count
        if breakers > 0 { g.put(x, y0, " · \(breakers) break the conventions", .warning) }
        if let e = k.error { g.put(0, y0, "scan failed: \(Escaper.string(e))", .error) }

        let hy = s.bodyTop
        g.fill(y: hy, role: .columnHeader)
        let noteW = 22, kindW = 11, sizeW = 9, ttlW = 9, typeW = 7
        let keyW = max(10, g.width - (typeW + ttlW + sizeW + kindW + noteW + 5))
        let cx = (key: 0, type: keyW + 1, ttl: keyW + 2 + typeW, size: keyW + 3 + typeW + ttlW, kind: keyW + 4 + typeW + ttlW + sizeW, note: keyW + 5 + typeW + ttlW + sizeW + kindW)
        g.put(cx.key, hy, "KEY", .columnHeader)
        g.put(cx.type, hy, "TYPE", .columnHeader)
        g.put(cx.ttl, hy, padLeft("TTL", ttlW), .columnHeader)
        g.put(cx.size, hy, padLeft("SIZE", sizeW), .columnHeader)
        g.put(cx.kind, hy, "KIND", .columnHeader)
        g.put(cx.note, hy, "CONVENTIONS", .columnHeader)
        let L = keysLayout(s)
        if rows.isEmpty && k.done { g.put(2, L.listTop + 1, k.filter.isEmpty ? "no keys under \(Escaper.string(s.session.prefix))" : "no key matches the filter", .dim) }
        for i in 0..<L.listHeight {
            let idx = k.scrollTop + i
            guard idx < rows.count else { break }
            let r = rows[idx]
            let y = L.listTop + i
            let sel = r.meta.key == k.selectedKey
            if sel { g.fill(y: y, role: .selected) }
            let base: Role = sel ? .selected : .normal
            g.put(cx.key, y, runs: Escaper.runs(r.meta.key, maxScalars: keyW * 2), base, maxX: cx.type - 1)
            g.put(cx.type, y, r.meta.type ?? "?", sel ? .selected : .dim)
            g.put(cx.ttl, y, padLeft(ttlCell(r.meta.ttl, now: s.now, readAt: r.readAt), ttlW), base)
            g.put(cx.size, y, padLeft(r.meta.bytes.map(formatBytes) ?? "?", sizeW), base)
            g.put(cx.kind, y, r.kind.rawValue, sel ? .selected : .dim)
            if let (t, role) = conventionNote(r, schema: schema) { g.put(cx.note, y, t, sel ? .selected : role) }
        }
        if k.showSummary { summary(&g, s, L) }
        else if k.inspector != nil || k.inspectorLoading != nil { inspector(&g, s, L) }
        if let inv = s.invalidation { invalidation(&g, s, inv) }
    }

    static func summary(_ g: inout CellGrid, _ s: AppState, _ L: EventsLayout) {
        var y = L.paneTop
        g.fill(y: y, role: .columnHeader)
        g.put(0, y, " NAMESPACE", .columnHeader)
        g.put(g.width - 40, y, padLeft("KEYS", 10) + padLeft("MEMORY", 12) + padLeft("NO TTL", 10), .columnHeader)
        y += 1
        let prefix = Bytes(utf8: s.session.prefix)
        var groups: [Bytes: (Int, Int64, Int)] = [:]
        for r in s.keys.rows {
            let rel = r.meta.key.hasPrefix(prefix) ? Array(r.meta.key[prefix.count...]) : r.meta.key
            let seg = rel.firstIndex(of: UInt8(ascii: ":")).map { Array(rel[...$0]) } ?? rel
            var e = groups[seg] ?? (0, 0, 0)
            e.0 += 1; e.1 += r.meta.bytes ?? 0; if r.meta.ttl == .persistent { e.2 += 1 }
            groups[seg] = e
        }
        for (seg, e) in groups.sorted(by: { $0.value.1 > $1.value.1 }) {
            if y >= L.paneTop + L.paneHeight { break }
            g.put(1, y, runs: Escaper.runs(seg, maxScalars: 80), .normal, maxX: g.width - 41)
            g.put(g.width - 40, y, padLeft("\(e.0)", 10) + padLeft(formatBytes(e.1), 12) + padLeft("\(e.2)", 10), .normal)
            y += 1
        }
    }

    static func inspector(_ g: inout CellGrid, _ s: AppState, _ L: EventsLayout) {
        guard L.paneHeight > 0 else { return }
        var y = L.paneTop
        g.fill(y: y, role: .columnHeader)
        guard let v = s.keys.inspector else {
            g.put(0, y, " loading \(Escaper.string(s.keys.inspectorLoading ?? []))…", .columnHeader)
            return
        }
        var head = " " + Escaper.string(v.key, maxScalars: 200) + " · " + v.type
        if let e = v.encoding { head += " (\(e))" }
        if let n = v.length { head += " · " + (v.type == "string" ? formatBytes(n) : "\(n) \(v.type == "stream" ? "entries" : "elements")") }
        if let b = v.bytes { head += " · \(formatBytes(b)) in memory" }
        head += " · TTL " + ttlCell(v.ttl, now: s.now, readAt: v.readAt)
        g.put(0, y, head, .columnHeader)
        y += 1
        var lines: [[TextRun]] = []
        if let n = v.note { lines.append([TextRun(n, role: .warning)]) }
        if let str = v.string {
            lines += EventsView.detailLines(str, width: g.width)
            if v.stringTruncated { lines.append([TextRun("… showing the first \(formatBytes(Int64(str.count))) of \(formatBytes(v.length ?? 0)) (not fetched whole)", role: .dim)]) }
        }
        for (a, b) in v.items {
            var line = [TextRun(padRight(Escaper.string(a, maxScalars: 60), 24), role: .jsonKey)]
            if let b { line += [TextRun(" ")] + Escaper.runs(b, maxScalars: 400) }
            lines.append(line)
        }
        if v.next != nil { lines.append([TextRun("… more: n for the next page", role: .dim)]) }
        let room = L.paneTop + L.paneHeight - y
        for (i, line) in lines.prefix(max(0, room)).enumerated() {
            if i == room - 1 && lines.count > room { g.put(1, y, "… \(lines.count - i) more lines", .dim); break }
            g.put(1, y, runs: line, .normal)
            y += 1
        }
    }

    static func invalidation(_ g: inout CellGrid, _ s: AppState, _ inv: InvalidationUI) {
        let w = min(g.width - 2, 90), h = min(g.height - 2, 16)
        guard w > 10, h > 4 else { return }
        let x0 = (g.width - w) / 2, y0 = max(0, (g.height - h) / 2)
        for y in y0..<(y0 + h) { g.fill(y: y, from: x0, to: x0 + w, role: .normal) }
        g.put(x0, y0, "┌" + String(repeating: "─", count: w - 2) + "┐", .dim)
        g.put(x0, y0 + h - 1, "└" + String(repeating: "─", count: w - 2) + "┘", .dim)
        for y in (y0 + 1)..<(y0 + h - 1) { g.put(x0, y, "│", .dim); g.put(x0 + w - 1, y, "│", .dim) }
        g.put(x0 + 2, y0, " Invalidate \(Escaper.string(s.session.prefix))\(Escaper.string(inv.glob)) ", .title, maxX: x0 + w - 1)
        var y = y0 + 2
        let mx = x0 + w - 2
        func line(_ t: String, _ r: Role = .normal) { if y < y0 + h - 1 { g.put(x0 + 2, y, t, r, maxX: mx); y += 1 } }
        func bar(_ p: InvalidationProgress) {
            let bw = w - 16
            let full = p.total == 0 ? bw : Int(Double(bw) * Double(p.done) / Double(p.total))
            if y < y0 + h - 1 {
                g.put(x0 + 2, y, String(repeating: "█", count: full), .ok)
                g.put(x0 + 2 + full, y, String(repeating: "░", count: bw - full), .barEmpty)
                g.put(x0 + 3 + bw, y, padLeft("\(p.total == 0 ? 100 : p.done * 100 / p.total)%", 5), .normal)
                y += 1
            }
            line("\(p.deleted) deleted of \(p.total) · \(String(format: "%.1f", p.elapsed)) s" + (p.eta.map { " · ETA \(String(format: "%.1f", $0)) s" } ?? ""))
        }
        switch inv.phase {
        case .planning(let n):
            line("Dry run: scanning (SCAN, never KEYS)… \(n) matching so far", .info)
            line("Nothing is deleted yet. Esc abandons.", .dim)
        case .confirming(let plan, let typed):
            line("Dry run: \(plan.keys.count) key\(plan.keys.count == 1 ? "" : "s") would be deleted (UNLINK).", plan.keys.isEmpty ? .info : .warning)
            if plan.protectedSkipped > 0 { line("\(plan.protectedSkipped) protected key(s) (locks, rate-limit counters) are left out.", .dim) }
            for k in plan.sample.prefix(max(0, h - 9)) { line("  " + Escaper.string(k, maxScalars: 200)) }
            if plan.keys.count > plan.sample.count { line("  … and \(plan.keys.count - plan.sample.count) more", .dim) }
            y = max(y, y0 + h - 3)
            if plan.keys.isEmpty { line("Nothing to do. Any key closes.", .dim) }
            else { line("Type \(plan.keys.count) and Enter to delete them; Esc cancels: " + typed + "▏", .prompt) }
        case .running(_, let p):
            line("Deleting with UNLINK in throttled batches… Esc cancels.", .info)
            bar(p)
        case .cancelling(_, let p):
            line("Cancelling after the current batch…", .warning)
            bar(p)
        case .done(let r):
            line(r.cancelled ? "Cancelled." : (r.failure == nil ? "Done." : "Stopped."), r.failure == nil ? .ok : .error)
            line("matched \(r.matched) · deleted \(r.deleted) · already gone \(r.alreadyGone) · failed \(r.failed)")
            if let f = r.failure { line("reason: " + Escaper.string(f), .error) }
            line("Recorded in the audit log. Any key closes.", .dim)
        case .failed(let why):
            line("Failed: " + Escaper.string(why), .error)
            line("Nothing more was deleted. Any key closes.", .dim)
        }
    }
}

enum LocksView {
    static func render(_ g: inout CellGrid, _ s: AppState) {
        let schema = s.schema
        let l = s.locks
        let y0 = s.bodyTop - 1
        if !l.loaded { g.put(2, y0 + 2, "reading locks (SCAN \(Escaper.string(s.session.prefix))\(schema.lockPattern))…", .dim); return }
        let exp = schema.lockTTL * 1000
        let stuck = l.rows.filter { $0.isStuck(expectedMs: exp) }.count
        var x = g.put(0, y0, "\(l.rows.count) locks held", .title)
        x = g.put(x, y0, " · ", .dim)
        x = g.put(x, y0, "\(stuck) stuck", stuck > 0 ? .error : .normal)
        g.put(x, y0, " · expected TTL \(schema.lockTTL)s (SET NX EX)", .dim)
        if let e = l.error { g.put(0, y0, "cannot read locks: \(Escaper.string(e))", .error) }
        let hy = s.bodyTop
        g.fill(y: hy, role: .columnHeader)
        let protW = max(20, g.width - 60)
        g.put(0, hy, "STATE", .columnHeader)
        g.put(8, hy, "PROTECTS (CACHE KEY)", .columnHeader)
        g.put(9 + protW, hy, padLeft("HELD", 8) + padLeft("REMAINING", 11) + "  OWNER", .columnHeader)
        if l.rows.isEmpty { g.put(2, hy + 2, "no locks held", .dim) }
        let elapsed = elapsedMs(since: l.readAt, now: s.now)
        for i in 0..<max(0, s.bodyHeight - 1) {
            let idx = l.scrollTop + i
            guard idx < l.rows.count else { break }
            let r = l.rows[idx]
            let y = hy + 1 + i
            let sel = r.key == l.selectedKey
            if sel { g.fill(y: y, role: .selected) }
            let isStuck = r.isStuck(expectedMs: exp)
            g.put(0, y, isStuck ? "STUCK" : "held", sel ? .selected : (isStuck ? .error : .ok))
            g.put(8, y, runs: Escaper.runs(r.protects, maxScalars: protW * 2), sel ? .selected : .normal, maxX: 8 + protW)
            let held = r.heldMs(expectedMs: exp, elapsedMs: elapsed).map(formatDuration) ?? "?"
            let remaining: String = {
                switch r.ttl {
                case .persistent?: return "no TTL"
                case .expiresIn(let ms)?: let left = ms - elapsed; return left <= 0 ? "released" : formatDuration(left)
                default: return "?"
                }
            }()
            let x2 = g.put(9 + protW, y, padLeft(held, 8) + padLeft(remaining, 11), sel ? .selected : (isStuck ? .warning : .normal))
            if let o = r.owner { g.put(x2 + 2, y, runs: Escaper.runs(o, maxScalars: 60), sel ? .selected : .dim) }
        }
    }
}
