import Foundation
import RedisProtocol
import OpsCore

enum ServerModule: ViewModule {
    static let id = ViewID.server
    static let readEvery = 2.0
    /// A sparkline needs this many samples before it means anything.
    static let minSamples = 5

    static func entered(_ s: inout AppState) -> [Effect] {
        var out = tick(&s)
        if !s.server.latencyStarted { s.server.latencyStarted = true; out.append(.startLatency) }
        return out
    }

    static func tick(_ s: inout AppState) -> [Effect] {
        guard s.now - s.server.lastRead >= readEvery else { return [] }
        s.server.lastRead = s.now
        return [.readServer]
    }

    static func apply(_ ev: AppEvent, _ s: inout AppState) -> [Effect] {
        switch ev {
        case .server(let r):
            // CLIENT LIST is read less often than INFO: keep the last summary in between.
            var r = r
            if r.clients == nil, r.clientsError == nil, let old = s.server.reading {
                r.clients = old.clients
                r.clientsError = old.clientsError
            }
            if r.clusterAt == nil, let old = s.server.reading {
                r.cluster = old.cluster
                r.clusterError = old.clusterError
                r.clusterAt = old.clusterAt
            }
            s.server.reading = r
            reselectClient(&s)
            s.server.series.add(r.sample)
            s.server.error = r.sample.overview.infoError
        case .serverFailed(let why):
            s.server.error = why
        case .latency(let samples, let at):
            for x in samples { s.server.latency[x.node, default: LatencyHistory()].add(x.rtt, error: x.error, at: at) }
        default: break
        }
        return []
    }

    static func perform(_ a: Action, _ s: inout AppState, tail: ChannelTail) -> [Effect] {
        if a == .rescan { s.server.lastRead = 0; return tick(&s) }
        let list = s.server.reading?.clients?.clients ?? []
        if ListNav.isMove(a) {
            guard !list.isEmpty else { return [] }
            s.server.clientCursor = ListNav.step(a, from: min(s.server.clientCursor, list.count - 1), count: list.count, page: 8)
            s.server.selectedClient = list[s.server.clientCursor].id
            return []
        }
        if a == .killClient {
            guard !list.isEmpty else { Reducer.flash(&s, "no client list (CLIENT LIST not read yet, or not permitted)", .info); return [] }
            if s.session.readOnly {
                Reducer.flash(&s, "read-only mode: disconnecting a client is refused (start without --read-only to allow it)", .error)
                return []
            }
            let c = list[min(s.server.clientCursor, list.count - 1)]
            s.confirm = killConfirmation(c)
        }
        return []
    }

    /// The question before CLIENT KILL: the client named so it cannot be mistaken.
    static func killConfirmation(_ c: ClientSummary.Client) -> Confirmation {
        let name = c.name.isEmpty ? "(no name)" : Escaper.string(Bytes(utf8: c.name))
        return Confirmation(question: "Disconnect this client? (CLIENT KILL ID \(c.id), audited; its application may reconnect)",
                            subject: "id \(c.id) · \(Escaper.string(Bytes(utf8: c.addr))) · \(name)",
                            detail: "connected \(formatDuration(c.age * 1000)) · idle \(formatDuration(c.idle * 1000)) · last command \(Escaper.string(Bytes(utf8: c.cmd))) · output buffer \(formatBytes(c.omem))"
                                + (c.subscriber ? " · a subscriber" : ""),
                            effect: .execute(id: 0, WritePlan(request: WriteRequest(action: .kill(c.ref)), keys: [])))
    }

    /// A new reading keeps the selection on the same client (by id).
    static func reselectClient(_ s: inout AppState) {
        let list = s.server.reading?.clients?.clients ?? []
        if let id = s.server.selectedClient, let i = list.firstIndex(where: { $0.id == id }) { s.server.clientCursor = i }
        s.server.clientCursor = max(0, min(s.server.clientCursor, list.count - 1))
    }
    static func filterText(_ s: AppState) -> String { "" }
    static func filterTyped(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] { [] }
    static func filterCommitted(_ text: String, _ s: inout AppState, tail: ChannelTail) -> [Effect] { [] }
    static func sync(_ s: inout AppState, tail: ChannelTail) {}

    static func render(_ g: inout CellGrid, _ s: AppState, _ ctx: RenderContext) {
        let y0 = s.bodyTop - 1
        guard let reading = s.server.reading, let last = s.server.series.latest else {
            g.put(2, y0 + 1, s.server.error.map { "INFO failed: \(Escaper.string($0))" } ?? "reading INFO…", s.server.error == nil ? .dim : .error)
            return
        }
        let i = last.overview.info
        let series = s.server.series
        func v(_ k: String) -> String { i[k].map { Escaper.string($0) } ?? "unknown" }
        func bytes(_ k: String) -> String { i.int(k).map(formatBytes) ?? "unknown" }
        func rate(_ k: String) -> String { series.rate(k).map { String(format: "%.1f/s", $0) } ?? "…" }
        var y = y0
        // What is shown is as old as the last reading: say so when it is not fresh.
        let age = s.now - last.at
        if age > readEvery * 3 || s.server.error != nil {
            let why = s.server.error.map { ": " + Escaper.string($0) } ?? ""
            g.put(0, y, "STALE: last read \(ago(age))\(why)", .error)
            y += 1
        }
        // Metric lines are gathered first, then drawn with every sparkline in one column, of
        // one width, right-aligned so the newest sample of each is in the same column.
        var rows: [(label: String, parts: [(String, Role)], spark: [Double]?, range: (Double, Double)?)] = []
        func line(_ label: String, _ parts: [(String, Role)], spark: [Double]? = nil, range: (Double, Double)? = nil) {
            rows.append((label, parts.filter { !$0.0.isEmpty }, spark, range))
        }
        func drawLines() {
            func textWidth(_ r: (label: String, parts: [(String, Role)], spark: [Double]?, range: (Double, Double)?)) -> Int {
                12 + r.parts.reduce(0) { $0 + displayWidth($1.0) + 2 }
            }
            // Right of the widest text, but leaving at least 12 columns: a row whose text
            // reaches into the column keeps its text and goes without its trend.
            let sparkX = min(rows.filter { $0.spark != nil }.map(textWidth).max().map { $0 + 1 } ?? g.width, g.width - 13)
            let sparkW = min(40, g.width - sparkX - 1)
            let span = series.samples.count > 1 ? (series.samples.last!.at - series.samples.first!.at) : 0
            for (i, r) in rows.enumerated() {
                guard y < g.height - 2 else { return }
                var x = g.put(0, y, padRight(r.label, 12), .title)
                for (t, role) in r.parts { x = g.put(x, y, t, role); x = g.put(x, y, "  ", .normal) }
                if sparkW >= 8 {
                    if i == 0 {
                        // What the trends cover, over their column.
                        let caption = span >= 1 ? "trend, last \(formatDuration(Int64(span * 1000)))" : "trend"
                        g.put(max(x, sparkX + sparkW - displayWidth(caption)), y, caption, .dim, maxX: sparkX + sparkW)
                    } else if let spark = r.spark, x <= sparkX + 1 {
                        if spark.count >= minSamples {
                            let line = sparkline(spark, width: sparkW, min: r.range?.0, max: r.range?.1)
                            g.put(sparkX + sparkW - line.count, y, line, .info)
                        } else {
                            g.put(sparkX + sparkW - 11, y, "collecting…", .dim)
                        }
                    }
                }
                y += 1
            }
        }
        if let e = last.overview.infoError {
            line("INFO", [("not permitted: \(Escaper.string(e)) — nothing else can be shown", .error)])
            drawLines()
            return
        }
        line("server", [("role \(v("role"))", .normal), ("redis \(v("redis_version"))", .normal),
                        ("uptime \(i.int("uptime_in_seconds").map { formatDuration($0 * 1000) } ?? "unknown")", .normal)])
        var repl: [(String, Role)] = []
        if i["role"] == "master" {
            repl.append(("\(v("connected_slaves")) replicas", .normal))
            for n in 0..<8 {
                guard let sl = i["slave\(n)"] else { break }
                let f = Dictionary(sl.split(separator: ",").compactMap { p -> (String, String)? in
                    let kv = p.split(separator: "=", maxSplits: 1); return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil }, uniquingKeysWith: { a, _ in a })
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
        let span = series.span(over: 60)
        let window = span >= 59 ? "last minute" : "last \(Int(span))s"
        let hr = series.hitRatio(over: 60)
        let boot = i.hitRatio
        line("hit ratio", [(hr.map { String(format: "%.1f%% over the %@", $0 * 100, window) } ?? "no lookups in the \(window)", hr.map { $0 < 0.8 ? .warning : .ok } ?? .dim),
                           (boot.map { String(format: "%.1f%% since start", $0 * 100) } ?? "", .dim)], spark: series.hitRatioSeries(), range: (0, 1))
        line("keys/s", [("evicted \(rate("evicted_keys"))", (series.rate("evicted_keys") ?? 0) > 0 ? .warning : .normal),
                        ("expired \(rate("expired_keys"))", .normal)], spark: zip(series.series("expired_keys").dropFirst(), series.series("expired_keys")).map { $0 - $1 })
        line("load", [("ops/s \(v("instantaneous_ops_per_sec"))", .normal)], spark: series.series("instantaneous_ops_per_sec"))
        line("clients", [("\(v("connected_clients")) connected", .normal), ("\(v("blocked_clients")) blocked", (i.int("blocked_clients") ?? 0) > 0 ? .warning : .normal)],
             spark: series.series("connected_clients"))
        line("pub/sub", [("\(v("pubsub_channels")) channels", .normal), ("\(v("pubsub_patterns")) patterns", .normal)])
        let ks = i.keyspace
        line("keys", ks.isEmpty ? [("no keys", .dim)] : ks.map { ("\($0.db): \(grouped(Int($0.keys))) keys, \(grouped(Int($0.expires))) with TTL", .normal) })
        if let lat = reading.latency, !lat.isEmpty {
            // LATENCY HISTORY of the first event that has one, as the trend.
            let hist = lat.prefix(4).compactMap { reading.latencyHistory[$0.event] }.first
            line("latency", lat.prefix(4).map { ("\(Escaper.string($0.event)) \($0.latestMs) ms (max \($0.maxMs))", $0.latestMs > 100 ? .warning : .normal) },
                 spark: hist.map { $0.map(Double.init) }, range: hist.map { _ in (0, Double(lat.map(\.maxMs).max() ?? 1)) })
        }
        // In cluster mode the node table comes first (a hot or full shard, a lagging replica
        // stand out at a glance), the detail of the node connected to below it.
        if reading.cluster != nil || reading.clusterError != nil {
            cluster(&g, s, reading, &y)
            guard section(&g, "THIS NODE · \(Escaper.string(s.session.endpoint))", &y) else { return }
        }
        drawLines()
        y += 1
        latency(&g, s, &y)
        clients(&g, s, reading, &y)
        slowlog(&g, s, reading, &y)
    }

    /// Every node of a cluster: a hot or full shard, a lagging or cut-off replica stand out.
    static func cluster(_ g: inout CellGrid, _ s: AppState, _ r: ServerReading, _ y: inout Int) {
        guard r.cluster != nil || r.clusterError != nil else { return }
        let age = r.clusterAt.map { " · read \(ago(max(0, s.now - $0)))" } ?? ""
        guard section(&g, "NODES (CLUSTER NODES, INFO of each)\(age)", &y) else { return }
        if let e = r.clusterError { g.put(2, y, "not available: \(Escaper.string(e))", .warning); y += 2; return }
        guard let all = r.cluster else { return }
        let T = TableLayout.fit([Column("node", " NODE", width: 22, grow: 10, priority: 10),
                                 Column("role", "ROLE", width: 7, priority: 9),
                                 Column("slots", "SLOTS", width: 6, priority: 6, alignRight: true),
                                 Column("mem", "MEMORY", width: 9, priority: 8, alignRight: true),
                                 Column("keys", "KEYS", width: 10, priority: 7, alignRight: true),
                                 Column("ops", "OPS/S", width: 7, priority: 8, alignRight: true),
                                 Column("hit", "HIT", width: 5, priority: 4, alignRight: true),
                                 Column("clients", "CLIENTS", width: 7, priority: 3, alignRight: true),
                                 Column("lag", "REPLICATION", width: 14, grow: 10_000, priority: 5)], width: g.width)
        T.header(&g, y: y)
        y += 1
        // A shard stands out when it carries far more than the median primary (hot or full).
        let prims = all.filter(\.isPrimary)
        func median(_ xs: [Int64]) -> Int64 { let v = xs.sorted(); return v.isEmpty ? 0 : v[v.count / 2] }
        let medMem = median(prims.compactMap(\.usedMemory)), medOps = median(prims.compactMap(\.opsPerSec))
        for n in all {
            guard y < g.height - 3 else { break }
            let name = (n.isPrimary ? " " : "   ") + (n.hostname.map { "\($0):\(n.endpoint?.port ?? 0)" } ?? n.address)
            if let c = T.slot("node") { g.put(c.x, y, runs: Escaper.runs(Bytes(utf8: name), maxScalars: 60), .normal, maxX: c.x + c.w) }
            T.put(&g, y: y, "role", n.isPrimary ? "primary" : "replica", n.isPrimary ? .normal : .dim)
            if n.isPrimary { T.put(&g, y: y, "slots", "\(n.slots)", n.slots == 0 ? .warning : .normal) }
            if let e = n.error {
                T.put(&g, y: y, "lag", Escaper.string(e), .error)
                y += 1
                continue
            }
            let full = n.maxmemory.map { $0 > 0 && (n.usedMemory ?? 0) * 10 >= $0 * 9 } ?? false
            let hotMem = n.isPrimary && medMem > 0 && (n.usedMemory ?? 0) * 2 > medMem * 3
            T.put(&g, y: y, "mem", n.usedMemory.map(formatBytes) ?? "?", full ? .error : (hotMem ? .warning : .normal))
            T.put(&g, y: y, "keys", n.keys.map { grouped(Int($0)) } ?? "?", .normal)
            let hotOps = n.isPrimary && medOps > 0 && (n.opsPerSec ?? 0) * 2 > medOps * 3
            T.put(&g, y: y, "ops", n.opsPerSec.map(String.init) ?? "?", hotOps ? .warning : .normal)
            T.put(&g, y: y, "hit", n.hitRatio.map { String(format: "%.0f%%", $0 * 100) } ?? "-", .dim)
            T.put(&g, y: y, "clients", n.clients.map(String.init) ?? "?", .normal)
            var repl = ""
            var role: Role = .dim
            if n.isPrimary {
                repl = "offset \(n.replOffset.map(String.init) ?? "?")"
            } else if n.replicaLinkUp == false {
                repl = "LINK DOWN to \(n.primaryAddress ?? "?")"; role = .error
            } else {
                let lag = ClusterNodes.lag(of: n, in: all)
                repl = "lag \(lag.map(formatBytes) ?? "?")"
                if (lag ?? 0) > 1 << 20 { role = .warning }
            }
            if !n.flags.isEmpty { repl += " [" + n.flags.joined(separator: ",") + "]"; role = .warning }
            T.put(&g, y: y, "lag", Escaper.string(repl), role)   // addresses and flags are the server's text
            y += 1
        }
        y += 1
    }

    /// A section's title row, when there is room for it and a line under it.
    static func section(_ g: inout CellGrid, _ title: String, _ y: inout Int) -> Bool {
        guard y < g.height - 3 else { return false }
        g.fill(y: y, role: .columnHeader)
        g.put(0, y, title, .columnHeader)
        y += 1
        return true
    }

    /// Round trips per node (the tool's own PINGs), per 15 s window as `redis-cli
    /// --latency-history` reports them; the p99 of the last windows as a trend.
    static func latency(_ g: inout CellGrid, _ s: AppState, _ y: inout Int) {
        guard !s.server.latency.isEmpty, section(&g, "ROUND TRIP PER NODE (PING, one a second; this 15 s window)", &y) else { return }
        func ms(_ v: Double) -> String { v < 0.01 ? String(format: "%.2f ms", v * 1000) : String(format: "%.1f ms", v * 1000) }
        let T = TableLayout.fit([Column("node", "NODE", width: 22, priority: 10), Column("now", "NOW", width: 9, priority: 9, alignRight: true),
                                 Column("min", "MIN", width: 9, priority: 6, alignRight: true), Column("avg", "AVG", width: 9, priority: 8, alignRight: true),
                                 Column("p99", "P99", width: 9, priority: 9, alignRight: true), Column("max", "MAX", width: 9, priority: 5, alignRight: true),
                                 Column("trend", "P99 PER 15 s", width: 20, priority: 4)], width: g.width - 2)
        for sl in T.placed {
            g.put(2 + sl.x, y, sl.column.alignRight ? padLeft(sl.column.title, sl.w) : sl.column.title, .columnHeader, maxX: 2 + sl.x + sl.w)
        }
        y += 1
        for node in s.server.latency.keys.sorted() where y < g.height - 3 {
            let h = s.server.latency[node]!
            func put(_ id: String, _ text: String, _ role: Role) {
                guard let sl = T.slot(id) else { return }
                g.put(2 + sl.x, y, sl.column.alignRight ? padLeft(text, sl.w) : text, role, maxX: 2 + sl.x + sl.w)
            }
            put("node", Escaper.string(Bytes(utf8: node), maxScalars: 40), .normal)
            if let e = h.error { put("now", "down", .error); put("min", Escaper.string(Bytes(utf8: e), maxScalars: 60), .error); y += 1; continue }
            put("now", h.last.map(ms) ?? "…", (h.last ?? 0) > 0.1 ? .warning : .normal)
            if let w = h.currentWindow ?? h.windows.last {
                put("min", ms(w.min), .dim); put("avg", ms(w.avg), .normal); put("p99", ms(w.p99), w.p99 > 0.1 ? .warning : .normal); put("max", ms(w.max), .dim)
            }
            if let sl = T.slot("trend"), h.windows.count >= 2 {
                g.put(2 + sl.x, y, sparkline(h.windows.map(\.p99), width: min(sl.w, h.windows.count), min: 0, max: nil), .info, maxX: 2 + sl.x + sl.w)
            }
            y += 1
        }
        y += 1
    }

    static func clients(_ g: inout CellGrid, _ s: AppState, _ r: ServerReading, _ y: inout Int) {
        guard section(&g, "WHO IS CONNECTED (CLIENT LIST)", &y) else { return }
        if let e = r.clientsError { g.put(2, y, "not available: \(Escaper.string(e))", .warning); y += 2; return }
        guard let c = r.clients else { g.put(2, y, "reading…", .dim); y += 2; return }
        let groups = c.groups.prefix(4).map { "\(Escaper.string($0.name, maxScalars: 30)) ×\($0.count)" }.joined(separator: "  ")
        if y < g.height - 2 { g.put(2, y, "\(c.total) connections: " + groups, .normal); y += 1 }
        for sub in c.subscribers.prefix(2) where y < g.height - 2 {
            let role: Role = sub.omem > 8 << 20 ? .error : (sub.omem > 1 << 20 ? .warning : .normal)
            let what = [sub.channels > 0 ? "\(sub.channels) channels" : nil, sub.patterns > 0 ? "\(sub.patterns) patterns" : nil,
                        sub.shardChannels > 0 ? "\(sub.shardChannels) shard channels" : nil].compactMap { $0 }.joined(separator: ", ")
            g.put(2, y, "subscriber \(Escaper.string(sub.name, maxScalars: 30)) \(Escaper.string(sub.addr, maxScalars: 40)): \(what.isEmpty ? "subscribed" : what) · output buffer \(formatBytes(sub.omem))", role)
            y += 1
        }
        // The clients, biggest output buffer first: ↑/↓ select, k disconnects.
        let T = TableLayout.fit([Column("id", "ID", width: 7, priority: 9, alignRight: true),
                                 Column("addr", "ADDRESS", width: 21, priority: 8),
                                 Column("name", "NAME", width: 16, grow: 10, priority: 7),
                                 Column("age", "AGE", width: 8, priority: 5, alignRight: true),
                                 Column("idle", "IDLE", width: 8, priority: 6, alignRight: true),
                                 Column("cmd", "LAST CMD", width: 12, priority: 6),
                                 Column("omem", "OUT BUF", width: 9, priority: 9, alignRight: true)], width: g.width - 2)
        let rows = min(8, max(0, g.height - 3 - y - 1))
        guard rows > 0, !c.clients.isEmpty else { y += 1; return }
        for sl in T.placed {
            g.put(2 + sl.x, y, sl.column.alignRight ? padLeft(sl.column.title, sl.w) : sl.column.title, .columnHeader, maxX: 2 + sl.x + sl.w)
        }
        y += 1
        let cur = min(s.server.clientCursor, c.clients.count - 1)
        let top = max(0, min(cur - rows + 1, c.clients.count - rows))
        for (i, cl) in c.clients.enumerated().dropFirst(top).prefix(rows) {
            func put(_ id: String, _ text: String, _ role: Role) {
                guard let sl = T.slot(id) else { return }
                let t = sl.column.alignRight ? padLeft(text, sl.w) : text
                g.put(2 + sl.x, y, t, role, maxX: 2 + sl.x + sl.w)
            }
            let bufRole: Role = cl.omem > 8 << 20 ? .error : (cl.omem > 1 << 20 ? .warning : .normal)
            put("id", String(cl.id), .dim)
            put("addr", Escaper.string(Bytes(utf8: cl.addr), maxScalars: 40), .normal)
            put("name", cl.name.isEmpty ? "(no name)" : Escaper.string(Bytes(utf8: cl.name), maxScalars: 40), cl.name.isEmpty ? .dim : .normal)
            put("age", formatDuration(cl.age * 1000), .normal)
            put("idle", formatDuration(cl.idle * 1000), cl.idle > 3600 ? .warning : .normal)
            put("cmd", Escaper.string(Bytes(utf8: cl.cmd), maxScalars: 30), .normal)
            put("omem", formatBytes(cl.omem), bufRole)
            if i == cur { g.select(y: y) }
            y += 1
        }
        if c.total > c.clients.count, y < g.height - 2 { g.put(2, y, "showing \(c.clients.count) of \(grouped(c.total)) clients (biggest output buffer first)", .dim); y += 1 }
        y += 1
    }

    static func slowlog(_ g: inout CellGrid, _ s: AppState, _ r: ServerReading, _ y: inout Int) {
        let merged = (r.slowlog ?? []).contains { $0.node != nil }
        guard section(&g, merged ? "SLOW LOG (SLOWLOG GET on every node, merged, newest first)" : "SLOW LOG (SLOWLOG GET)", &y) else { return }
        if let e = r.slowlogError { g.put(2, y, "not available: \(Escaper.string(e))", .warning); return }
        guard let entries = r.slowlog, !entries.isEmpty else { g.put(2, y, "empty", .dim); return }
        for e in entries {
            guard y < g.height - 2 else { break }
            var x = g.put(1, y, padLeft("#\(e.id)", 6), .dim)
            x = g.put(x + 1, y, padLeft(ago(max(0, s.now - Double(e.at))), 10), .dim)
            x = g.put(x + 1, y, padLeft(String(format: "%.1f ms", Double(e.micros) / 1000), 10), e.micros > 10_000 ? .warning : .normal)
            if merged { x = g.put(x + 1, y, padRight(Escaper.string(Bytes(utf8: e.node ?? "?"), maxScalars: 21), 21), .dim) }
            let cmd = e.args.prefix(6).map { Escaper.string($0, maxScalars: 60) }.joined(separator: " ")
            g.put(x + 2, y, cmd, .normal)
            y += 1
        }
    }
}
