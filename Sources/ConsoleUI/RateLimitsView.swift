import Foundation
import RedisProtocol
import OpsCore

enum RateLimitsView {
    static func render(_ g: inout CellGrid, _ s: AppState) {
        let r = s.rateLimits
        let y0 = s.bodyTop - 1
        if !r.loaded {
            g.put(2, y0 + 1, "reading rate-limit counters (SCAN \(Escaper.string(s.session.prefix))ratelimit:*)…", .dim)
            return
        }
        let all = r.counters
        let blocked = all.filter(\.isBlocked).count
        let broken = all.filter(\.isBroken).count
        var x = g.put(0, y0, "\(all.count) counters", .title)
        x = g.put(x, y0, " · ", .dim)
        x = g.put(x, y0, "\(blocked) blocked", blocked > 0 ? .error : .normal)
        x = g.put(x, y0, " · ", .dim)
        x = g.put(x, y0, "\(broken) broken", broken > 0 ? .warning : .normal)
        let limit = all.first?.limit, window = all.first?.window
        if let limit, let window { x = g.put(x, y0, " · limit \(limit) per \(window)s", .dim) }
        let age = max(0, s.now - r.lastFullScan)
        x = g.put(x, y0, " · rescanned \(age < 1 ? "now" : formatDuration(Int64(age * 1000)) + " ago")", .dim)
        if !r.filter.isEmpty { g.put(x, y0, " · filter “\(r.filter)”: \(r.visible.count)", .info) }
        if let e = r.error { g.put(0, y0, "cannot read counters: \(Escaper.string(e))", .error) }

        let hy = y0 + 1
        g.fill(y: hy, role: .columnHeader)
        let idW = min(30, max(16, g.width / 4))
        let cols = (state: 0, id: 9, kind: 10 + idW, count: 16 + idW, bar: 28 + idW)
        let barW = max(0, min(20, g.width - cols.bar - 32))
        g.put(cols.state, hy, "STATE", .columnHeader)
        g.put(cols.id, hy, "IDENTIFIER", .columnHeader)
        g.put(cols.kind, hy, "KIND", .columnHeader)
        g.put(cols.count, hy, "COUNT", .columnHeader)
        g.put(cols.bar, hy, "USAGE", .columnHeader)
        g.put(cols.bar + barW + 7, hy, "RETRY-AFTER / RESET", .columnHeader)

        let L = rateLimitsLayout(s)
        let rows = r.visible
        if rows.isEmpty {
            g.put(2, L.listTop + 1, r.filter.isEmpty ? "no rate-limit counters under \(Escaper.string(s.session.prefix))ratelimit:" : "no counter matches the filter", .dim)
        }
        for i in 0..<L.listHeight {
            let idx = r.scrollTop + i
            guard idx < rows.count else { break }
            let c = rows[idx]
            let y = L.listTop + i
            let sel = c.key == r.selectedKey
            if sel { g.fill(y: y, role: .selected) }
            let base: Role = sel ? .selected : .normal
            let (label, role): (String, Role) = {
                if c.isBroken { return ("BROKEN", .warning) }
                switch c.state {
                case .blocked: return ("BLOCKED", .error)
                case .near: return ("near", .warning)
                case .ok: return ("ok", .ok)
                case .unknown: return ("?", .dim)
                }
            }()
            g.put(cols.state, y, label, sel ? .selected : role)
            g.put(cols.id, y, runs: Escaper.runs(c.identifier, maxScalars: idW * 2), base, maxX: cols.kind - 1)
            g.put(cols.kind, y, c.kind.rawValue, sel ? .selected : .dim)
            g.put(cols.count, y, c.count.map { "\($0)/\(c.limit)" } ?? "not a number", base)
            if barW > 0, let n = c.count {
                let frac = min(1.0, Double(n) / Double(c.limit))
                let full = Int((frac * Double(barW)).rounded())
                // Bars keep their colour on the selected row (reverse video would hide them).
                g.put(cols.bar, y, String(repeating: "█", count: full), c.isBlocked ? .barFull : (c.state == .near ? .warning : .ok))
                g.put(cols.bar + full, y, String(repeating: "░", count: barW - full), .barEmpty)
                g.put(cols.bar + barW + 1, y, padLeft("\(Int((Double(n) / Double(c.limit) * 100).rounded()))%", 5), base)
            }
            var reset = ttlText(c, now: s.now, readAt: r.readAt)
            if c.isBroken { reset += c.ttl == .persistent ? " — blocks forever" : " — longer than the window" }
            else if c.isBlocked { reset = "Retry-After " + reset.replacingOccurrences(of: "resets in ", with: "") }
            g.put(cols.bar + barW + 7, y, reset, sel ? .selected : (c.isBroken ? .warning : .normal))
        }
        if r.detailOpen { detail(&g, s, L) }
    }

    static func detail(_ g: inout CellGrid, _ s: AppState, _ L: EventsLayout) {
        guard L.paneHeight > 0, let key = s.rateLimits.selectedKey, let c = s.rateLimits.counters.first(where: { $0.key == key }) else { return }
        var y = L.paneTop
        g.fill(y: y, role: .columnHeader)
        g.put(0, y, " " + Escaper.string(c.key), .columnHeader)
        y += 1
        let lines: [(String, Role)] = [
            ("count \(c.count.map(String.init) ?? "?") of \(c.limit) per \(c.window) s · \(ttlText(c, now: s.now, readAt: s.rateLimits.readAt))", .normal),
            (explain(c), c.isBroken ? .warning : (c.isBlocked ? .error : .normal)),
        ]
        for (t, role) in lines where y < L.paneTop + L.paneHeight { g.put(1, y, t, role); y += 1 }
        let h = s.rateLimits.history[key] ?? []
        if y < L.paneTop + L.paneHeight {
            let spark = sparkline(h.map(Double.init), width: max(0, g.width - 30), min: 0)
            let x = g.put(1, y, "count while open: ", .dim)
            g.put(x, y, h.count < 2 ? "sampling…" : spark + "  (\(h.first!) → \(h.last!))", .info)
        }
    }

    static func explain(_ c: RateLimitCounter) -> String {
        if c.ttl == .persistent { return "No TTL: the window never ends, so once over the limit this client is blocked forever. Reset it (r)." }
        if c.isBroken { return "The TTL is longer than the \(c.window) s window: the client waits longer than the application intends." }
        if c.isBlocked { return "Blocked: every request gets 429 until the window ends (the TTL is the Retry-After)." }
        if c.state == .near { return "Near the limit (≥ 80 %)." }
        return "Under the limit."
    }
}

enum ServerView {
    static func render(_ g: inout CellGrid, _ s: AppState) {
        let y0 = s.bodyTop - 1
        guard let last = s.server.series.latest else {
            g.put(2, y0 + 1, s.server.error.map { "INFO failed: \(Escaper.string($0))" } ?? "reading INFO…", s.server.error == nil ? .dim : .error)
            return
        }
        let i = last.overview.info
        let series = s.server.series
        func v(_ k: String) -> String { i[k].map { Escaper.string($0) } ?? "unknown" }
        func bytes(_ k: String) -> String { i.int(k).map(formatBytes) ?? "unknown" }
        func rate(_ k: String) -> String { series.rate(k).map { String(format: "%.1f/s", $0) } ?? "…" }
        var y = y0
        func line(_ label: String, _ parts: [(String, Role)], spark: [Double]? = nil, range: (Double, Double)? = nil) {
            guard y < g.height - 2 else { return }
            var x = g.put(0, y, padRight(label, 12), .title)
            for (t, r) in parts { x = g.put(x, y, t, r) ; x = g.put(x, y, "  ", .normal) }
            if let spark, spark.count >= 2, x < g.width - 4 {
                let sx = max(x + 2, 64)
                if sx < g.width - 4 { g.put(sx, y, sparkline(spark, width: min(40, g.width - sx - 1), min: range?.0, max: range?.1), .info) }
            }
            y += 1
        }
        if let e = last.overview.infoError {
            line("INFO", [("not permitted: \(Escaper.string(e)) — nothing else can be shown", .error)])
            return
        }
        line("server", [("role \(v("role"))", .normal), ("redis \(v("redis_version"))", .normal),
                        ("uptime \(i.int("uptime_in_seconds").map { formatDuration($0 * 1000) } ?? "unknown")", .normal)])
        var repl: [(String, Role)] = []
        if i["role"] == "master" {
            repl.append(("\(v("connected_slaves")) replicas", .normal))
            for n in 0..<8 {
                guard let sl = i["slave\(n)"] else { break }
                let f = Dictionary(uniqueKeysWithValues: sl.split(separator: ",").compactMap { p -> (String, String)? in
                    let kv = p.split(separator: "=", maxSplits: 1); return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil })
                repl.append(("\(Escaper.string(f["ip"] ?? "?")):\(f["port"] ?? "?") \(f["state"] ?? "?") lag \(f["lag"] ?? "?")s", (f["lag"].flatMap(Int.init) ?? 0) > 5 ? .warning : .normal))
            }
        } else if i["role"] == "slave" {
            repl.append(("primary \(v("master_host")):\(v("master_port"))", .normal))
            repl.append(("link \(v("master_link_status"))", i["master_link_status"] == "up" ? .ok : .error))
            repl.append(("last I/O \(v("master_last_io_seconds_ago")) s ago", .normal))
        }
        line("replication", repl)
        let policy = last.overview.maxmemoryPolicy ?? "unknown (not in INFO; CONFIG not permitted)"
        line("memory", [("used \(bytes("used_memory"))", .normal), ("peak \(bytes("used_memory_peak"))", .normal),
                        ("max \(i.int("maxmemory").map { $0 == 0 ? "no limit" : formatBytes($0) } ?? "unknown")", .normal),
                        ("policy \(Escaper.string(policy))", last.overview.maxmemoryPolicy == nil ? .warning : .normal),
                        ("frag \(v("mem_fragmentation_ratio"))", .normal)], spark: series.series("used_memory"))
        let hr = series.hitRatio(over: 60)
        let boot = i.hitRatio
        line("hit ratio", [(hr.map { String(format: "%.1f%% last minute", $0 * 100) } ?? "no lookups in the last minute", hr.map { $0 < 0.8 ? .warning : .ok } ?? .dim),
                           (boot.map { String(format: "%.1f%% since start", $0 * 100) } ?? "", .dim)], spark: series.hitRatioSeries(), range: (0, 1))
        line("keys/s", [("evicted \(rate("evicted_keys"))", (series.rate("evicted_keys") ?? 0) > 0 ? .warning : .normal),
                        ("expired \(rate("expired_keys"))", .normal)], spark: zip(series.series("evicted_keys").dropFirst(), series.series("evicted_keys")).map { $0 - $1 })
        line("load", [("ops/s \(v("instantaneous_ops_per_sec"))", .normal)], spark: series.series("instantaneous_ops_per_sec"))
        line("clients", [("\(v("connected_clients")) connected", .normal), ("\(v("blocked_clients")) blocked", (i.int("blocked_clients") ?? 0) > 0 ? .warning : .normal)],
             spark: series.series("connected_clients"))
        line("pub/sub", [("\(v("pubsub_channels")) channels", .normal), ("\(v("pubsub_patterns")) patterns", .normal)])
        let ks = i.keyspace
        line("keys", ks.isEmpty ? [("no keys", .dim)] : ks.map { ("\($0.db): \($0.keys) keys, \($0.expires) with TTL", .normal) })
        y += 1
        guard y < g.height - 3 else { return }
        g.fill(y: y, role: .columnHeader)
        g.put(0, y, "SLOW LOG (SLOWLOG GET)", .columnHeader)
        y += 1
        if let e = s.server.slowlogError {
            g.put(2, y, "not available: \(Escaper.string(e))", .warning)
            return
        }
        if s.server.slowlog.isEmpty { g.put(2, y, "empty", .dim); return }
        for e in s.server.slowlog {
            guard y < g.height - 2 else { break }
            let when = Date(timeIntervalSince1970: Double(e.at))
            let ago = max(0, s.now - when.timeIntervalSince1970)
            var x = g.put(1, y, padLeft("#\(e.id)", 6), .dim)
            x = g.put(x + 1, y, padLeft(formatDuration(Int64(ago * 1000)) + " ago", 10), .dim)
            x = g.put(x + 1, y, padLeft(String(format: "%.1f ms", Double(e.micros) / 1000), 10), e.micros > 10_000 ? .warning : .normal)
            let cmd = e.args.prefix(6).map { Escaper.string($0, maxScalars: 60) }.joined(separator: " ")
            g.put(x + 2, y, cmd, .normal)
            y += 1
        }
    }
}
