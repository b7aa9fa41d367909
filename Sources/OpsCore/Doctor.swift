import Foundation
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// One step of `redis-ops doctor`: where the path to the server holds, or breaks.
public struct DoctorStep: Sendable, Equatable {
    public enum Status: String, Sendable { case ok, fail, skip }
    public var step: String
    public var status: Status
    public var detail: String
    /// What to do about a failure.
    public var hint: String?
    /// Whether the console needs this step to work (the exit status counts only these).
    public var needed: Bool

    public init(_ step: String, _ status: Status, _ detail: String, hint: String? = nil, needed: Bool = true) {
        self.step = step; self.status = status; self.detail = detail; self.hint = hint; self.needed = needed
    }

    public var json: JSON {
        .object([("step", .string(step)), ("status", .string(status.rawValue)), ("detail", .string(detail)),
                 ("hint", hint.map { .string($0) } ?? .null)])
    }

    /// `ok   tls      TLSv1.3 · …` then `     → hint` for a failure.
    public var text: String {
        let label = status == .fail ? "FAIL" : status.rawValue
        var s = label.padding(toLength: 5, withPad: " ", startingAt: 0) + step.padding(toLength: 9, withPad: " ", startingAt: 0) + detail
        if let h = hint, status == .fail { s += "\n" + String(repeating: " ", count: 14) + "→ " + h }
        return s
    }
}

/// Walks the path to the server step by step — dns, tcp, ssh (with --via), tls, auth, acl,
/// latency, cluster, pubsub — and says where it breaks, with a hint per step. The CLI's
/// `redis-ops doctor` and the console's `:doctor` run this same flow.
public enum Doctor {
    static func b(_ s: String) -> Bytes { Bytes(utf8: s) }

    /// Whether every step the console needs passed.
    public static func healthy(_ steps: [DoctorStep]) -> Bool { !steps.contains { $0.needed && $0.status == .fail } }

    public static func run(_ o: ConnectionOptions, prefix: Bytes, readOnly: Bool, progress: (DoctorStep) -> Void = { _ in }) -> [DoctorStep] {
        var out: [DoctorStep] = []
        func add(_ s: DoctorStep) { out.append(s); progress(s) }
        let cfg = o.config
        let ep = cfg.endpoint
        func skipRest(_ from: [String]) { for s in from { add(DoctorStep(s, .skip, "not tried: an earlier step failed", needed: false)) } }

        // dns and tcp: to the server itself, or (through a bastion) left to the bastion.
        if let via = cfg.via {
            add(DoctorStep("dns", .skip, "\(cfg.host) is resolved by the bastion \(via), as inside the VPC", needed: false))
            add(DoctorStep("tcp", .skip, "connections go through ssh -W on \(via) (see ssh)", needed: false))
            do {
                _ = try via.ensureUp()
                let t0 = monotonicNow()
                let t = try Transport(host: cfg.host, port: cfg.port, tls: nil, timeouts: cfg.timeouts, via: via)
                // The stream is open once ssh -W says nothing: a PING tells.
                try t.writeAll(b("PING\r\n"), timeout: cfg.timeouts.connect)
                var buf = [UInt8](repeating: 0, count: 64)
                _ = try buf.withUnsafeMutableBytes { try t.read(into: $0, timeout: cfg.timeouts.connect) }
                t.close()
                add(DoctorStep("ssh", .ok, "master up to \(via); \(cfg.host):\(cfg.port) reached through it (\(ms(monotonicNow() - t0)))"))
            } catch {
                add(DoctorStep("ssh", .fail, "\(error)", hint: sshHint("\(error)", via)))
                skipRest(["tls", "auth", "acl", "latency", "cluster", "pubsub"])
                return out
            }
        } else {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var res: UnsafeMutablePointer<addrinfo>? = nil
            let rc = getaddrinfo(cfg.host, String(cfg.port), &hints, &res)
            if rc != 0 {
                add(DoctorStep("dns", .fail, "\(cfg.host) not resolved (\(String(cString: gai_strerror(rc))))",
                               hint: "check the endpoint's name; an ElastiCache endpoint resolves only inside its VPC: from a laptop use --via through a bastion"))
                skipRest(["tcp", "tls", "auth", "acl", "latency", "cluster", "pubsub"])
                return out
            }
            var addrs: [String] = []
            var ai = res
            while let a = ai {
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(a.pointee.ai_addr, a.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                    let s = String(cString: host)
                    if !addrs.contains(s) { addrs.append(s) }
                }
                ai = a.pointee.ai_next
            }
            freeaddrinfo(res)
            add(DoctorStep("dns", .ok, "\(cfg.host) → \(addrs.joined(separator: ", "))"))
            do {
                let t0 = monotonicNow()
                let t = try Transport(host: cfg.host, port: cfg.port, tls: nil, timeouts: cfg.timeouts)
                t.close()
                add(DoctorStep("tcp", .ok, "\(ep) accepts connections (\(ms(monotonicNow() - t0)))"))
            } catch {
                add(DoctorStep("tcp", .fail, "\(error)", hint: "the port, a security group or a firewall; from outside the VPC use --via through a bastion"))
                skipRest(["tls", "auth", "acl", "latency", "cluster", "pubsub"])
                return out
            }
        }

        // tls: the handshake alone, with the facts an operator checks.
        if let tls = cfg.tls {
            do {
                let t = try Transport(host: cfg.host, port: cfg.port, tls: tls, timeouts: cfg.timeouts, via: cfg.via)
                let f = t.tlsFacts
                t.close()
                var d = "\(f?.protocolVersion ?? "TLS")"
                if let n = f?.checkedName { d += " · certificate valid for \(n) (checked)" } else { d += " · certificate NOT checked (--insecure)" }
                d += " · subject \(f?.subject ?? "?") · issuer \(f?.issuer ?? "?")"
                if let days = f?.daysLeft { d += " · expires in \(days) day\(days == 1 ? "" : "s")" }
                if let why = o.tlsBecause { d += " · TLS because of \(why)" }
                let soon = (f?.daysLeft ?? 99) < 14
                add(DoctorStep("tls", soon ? .fail : .ok, d, hint: soon ? "the certificate expires within two weeks: renew it" : nil, needed: !soon))
            } catch {
                let e = "\(error)"
                var hint = "check --cacert (the CA that signed the server's certificate) and --sni (the name in it)"
                if e.contains("timed out") || e.contains("closed the connection") { hint = "is it a TLS port? without in-transit encryption, use --no-tls (NODE_ENV=production turns TLS on)" }
                if e.contains("host name mismatch") { hint = "connect by the name in the certificate, or give it with --sni" }
                add(DoctorStep("tls", .fail, e + (o.tlsBecause.map { " (TLS because of \($0))" } ?? ""), hint: hint))
                skipRest(["auth", "acl", "latency", "cluster", "pubsub"])
                return out
            }
        } else {
            // A plain PING answered in RESP settles it; otherwise, does the port take a TLS handshake?
            var answersPlain = false
            if let t = try? Transport(host: cfg.host, port: cfg.port, tls: nil, timeouts: cfg.timeouts, via: cfg.via) {
                var buf = [UInt8](repeating: 0, count: 16)
                if (try? t.writeAll(b("PING\r\n"), timeout: cfg.timeouts.connect)) != nil,
                   let n = try? buf.withUnsafeMutableBytes({ try t.read(into: $0, timeout: cfg.timeouts.connect) }), n > 0 {
                    answersPlain = buf[0] == UInt8(ascii: "+") || buf[0] == UInt8(ascii: "-")
                }
                t.close()
            }
            let speaks = !answersPlain && ((try? Transport(host: cfg.host, port: cfg.port, tls: TLSSettings(insecure: true), timeouts: Timeouts(connect: 2, io: 2), via: cfg.via)).map { $0.close(); return true } ?? false)
            if speaks {
                add(DoctorStep("tls", .fail, "the port speaks TLS but TLS is off", hint: "connect with --tls (or a rediss:// URL)"))
                skipRest(["auth", "acl", "latency", "cluster", "pubsub"])
                return out
            }
            add(DoctorStep("tls", .skip, "TLS is off (plain TCP)", needed: false))
        }

        // auth
        let conn: RedisConnection
        do {
            conn = try RedisConnection(cfg)
            let who = cfg.user.map { "as user \($0)" } ?? "as the default user"
            let from = cfg.credentials.map { " (password from \($0))" } ?? (cfg.password == nil ? " (no password)" : "")
            add(DoctorStep("auth", .ok, "authenticated \(who)\(from)"))
        } catch {
            let e = "\(error)"
            var hint = "check the user and the token: --password-file, --password-command, REDIS_AUTH_TOKEN or the URL"
            if e.contains("NOAUTH") { hint = "the server requires a password: give it with --password-file, --password-command or REDIS_AUTH_TOKEN" }
            add(DoctorStep("auth", .fail, e, hint: hint))
            skipRest(["acl", "latency", "cluster", "pubsub"])
            return out
        }
        defer { conn.close() }

        // acl: each command a view needs, tried harmlessly (a key that cannot exist).
        let probe = prefix + b("__redis_ops_doctor__:\(UInt32.random(in: 0...UInt32.max))")
        let reads: [(name: String, cmd: [Bytes], needed: Bool, without: String)] = [
            ("SCAN", [b("SCAN"), b("0"), b("MATCH"), probe, b("COUNT"), b("1")], true, "no listing at all"),
            ("TYPE", [b("TYPE"), probe], true, "types unknown"),
            ("PTTL", [b("PTTL"), probe], true, "TTLs unknown"),
            ("GET", [b("GET"), probe], true, "counters and lock values unknown"),
            ("MEMORY USAGE", [b("MEMORY"), b("USAGE"), probe], false, "sizes unknown"),
            ("INFO", [b("INFO"), b("server")], false, "the Server view is empty"),
            ("SLOWLOG", [b("SLOWLOG"), b("GET"), b("1")], false, "no slow log"),
            ("CLIENT LIST", [b("CLIENT"), b("LIST"), b("ID"), b(String(conn.clientID ?? 0))], false, "who is connected unknown"),
            ("PUBSUB", [b("PUBSUB"), b("NUMPAT")], false, "who listens unknown"),
        ]
        let writes: [(name: String, cmd: [Bytes], without: String)] = [
            ("UNLINK", [b("UNLINK"), probe], "cannot delete or invalidate"),
            ("EXPIRE", [b("EXPIRE"), probe, b("1")], "cannot set TTLs"),
            ("EVAL", [b("EVAL"), b("return 1"), b("0")], "locks released by WATCH/MULTI instead"),
            ("PUBLISH", [b("PUBLISH"), b("__redis_ops_doctor__"), b("ping")], "cannot publish"),
        ]
        var allowed: [String] = [], refused: [String] = [], neededRefused: [String] = []
        let replies = (try? conn.pipeline(reads.map(\.cmd))) ?? []
        func verdict(_ r: RESPValue?) -> String? {
            guard let e = r?.errorReply else { return r == nil ? "no reply" : nil }
            if e.kind == .noPerm { return "NOPERM" }
            if e.kind == .unknownCommand { return "disabled" }
            return nil   // another error (WRONGTYPE, MOVED, READONLY): the ACL let the command through
        }
        for (i, c) in reads.enumerated() {
            if let v = verdict(replies.count > i ? replies[i] : nil) {
                refused.append("\(c.name) (\(v): \(c.without))")
                if c.needed { neededRefused.append(c.name) }
            } else { allowed.append(c.name) }
        }
        // Write commands are only queued in a MULTI that is then discarded: the ACL judges each
        // as it is queued, and none of them runs. Without MULTI they are not tried at all.
        var writesTried = false
        if let m = try? conn.call([b("MULTI")]), m.errorReply == nil {
            writesTried = true
            let queued = (try? conn.pipeline(writes.map(\.cmd) + [[b("DISCARD")]])) ?? []
            for (i, c) in writes.enumerated() {
                let r = queued.count > i ? queued[i] : nil
                if let v = verdict(r) { refused.append("\(c.name) (\(v): \(c.without))") } else { allowed.append(c.name) }
            }
        }
        var detail = "allowed: " + allowed.joined(separator: " ")
        if !refused.isEmpty { detail += "; refused: " + refused.joined(separator: ", ") }
        detail += writesTried ? " (write commands queued in a MULTI and discarded: none ran)" : "; write commands not tried (MULTI refused)"
        add(DoctorStep("acl", neededRefused.isEmpty ? .ok : .fail, detail,
                       hint: neededRefused.isEmpty ? nil : "grant \(neededRefused.map { "+" + $0.lowercased() }.joined(separator: " ")) on ~\(String(decoding: prefix, as: UTF8.self))* (README: A least-privilege ACL)"))

        // latency: the round trip (PINGs), and what a SCAN costs the server (its own accounting).
        var rtts: [Double] = []
        for _ in 0..<10 {
            let t0 = monotonicNow()
            if (try? conn.call([b("PING")])) == nil { break }
            rtts.append(monotonicNow() - t0)
        }
        if rtts.isEmpty {
            add(DoctorStep("latency", .fail, "PING was not answered", hint: "the connection dropped: run doctor again", needed: false))
        } else {
            var d = "round trip min \(ms(rtts.min()!)) · avg \(ms(rtts.reduce(0, +) / Double(rtts.count))) · max \(ms(rtts.max()!)) (10 PINGs)"
            let before = try? conn.call([b("INFO"), b("commandstats")]).string
            _ = try? conn.call([b("SCAN"), b("0"), b("MATCH"), prefix + b("*"), b("COUNT"), b("1000")])
            if let a = before, let after = try? conn.call([b("INFO"), b("commandstats")]).string,
               let u0 = scanUsec(a), let u1 = scanUsec(after) {
                d += " · a SCAN of COUNT 1000 took \(String(format: "%.2f", Double(u1 - u0) / 1000)) ms on the server"
            }
            let far = (rtts.min() ?? 0) > 0.02
            add(DoctorStep("latency", .ok, d + (far ? " · far away: listings and writes keep many requests in flight" : ""), needed: false))
        }

        // cluster: every node reachable by the address it announces, every slot served.
        let clusterInfo = (try? conn.call([b("INFO"), b("cluster")]))?.string ?? ""
        if clusterInfo.contains("cluster_enabled:1") {
            do {
                let nodes = try NodeSet(config: cfg)
                defer { nodes.close() }
                guard let t = nodes.topology else { throw RedisError.protocolViolation("no cluster topology") }
                var served = 0
                for sh in t.shards { served += sh.ranges.reduce(0) { $0 + $1.count } }
                var unreachable: [String] = []
                let all = t.shards.flatMap { [$0.primary] + $0.replicas }
                for node in all {
                    do { _ = try nodes.connection(to: node).call([b("PING")]) } catch { unreachable.append("\(node) (\(error))") }
                }
                let state = (try? conn.call([b("CLUSTER"), b("INFO")]))?.string.flatMap { info in
                    info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cluster_state:") }.map { String($0.dropFirst(14)) }
                } ?? "unknown"
                let d = "\(t.shards.count) shard(s), \(all.count) node(s), state \(state); \(served) of 16384 slots served" +
                    (unreachable.isEmpty ? "; every node reachable by the address it announces" : "; unreachable: " + unreachable.joined(separator: "; "))
                let ok = unreachable.isEmpty && served == 16384 && state == "ok"
                add(DoctorStep("cluster", ok ? .ok : .fail, d,
                               hint: ok ? nil : (unreachable.isEmpty ? "some slots have no node: the cluster is down or being resharded"
                                                                    : (cfg.via == nil ? "nodes announce addresses reachable only inside the VPC: use --via through a bastion there"
                                                                                      : "the bastion cannot reach those nodes: their security group"))))
            } catch {
                add(DoctorStep("cluster", .fail, "cluster mode, but the nodes cannot be read: \(error)",
                               hint: "CLUSTER SLOTS must be allowed (+cluster|slots), and every node reachable by the address it announces"))
            }
        } else {
            add(DoctorStep("cluster", .skip, "not a cluster", needed: false))
        }

        // pubsub: a message round trip on a private channel; read-only mode stops at the
        // subscription's confirmation (PUBLISH is a write).
        let ch = b("__redis_ops_doctor__:\(getpid()):\(UInt32.random(in: 0...UInt32.max))")
        do {
            let sub = try Subscriber(cfg)
            defer { sub.close() }
            try sub.subscribe([ch])
            let t0 = monotonicNow()
            var got = false, confirmed = false, published = false
            var refusal: String? = nil
            var msgs: [ReceivedMessage] = [], events: [PubSubEvent] = []
            while monotonicNow() - t0 < 3 && !got && refusal == nil && !(readOnly && confirmed) {
                msgs.removeAll(keepingCapacity: true); events.removeAll(keepingCapacity: true)
                try sub.read(timeout: 0.2, messages: &msgs, events: &events, now: { Date().timeIntervalSince1970 })
                for e in events {
                    if case .subscribed = e { confirmed = true }
                    if case .refused(_, _, let err) = e { refusal = "SUBSCRIBE refused: \(err.message)" }
                }
                if msgs.contains(where: { $0.channel == ch }) { got = true }
                if confirmed && !published && !readOnly {
                    published = true
                    do {
                        let r = try conn.call([b("PUBLISH"), ch, b("ping")])
                        if let e = r.errorReply { refusal = "PUBLISH refused: \(e.message)" }
                    } catch { refusal = "PUBLISH failed: \(error)" }
                }
            }
            let took = ms(monotonicNow() - t0)
            if let r = refusal {
                // The ACL may allow only the application's channels: the tail may still work.
                add(DoctorStep("pubsub", .fail, r + " on a private channel",
                               hint: "the tail needs PSUBSCRIBE on the events pattern: &workspace:* (or &*) in the user's ACL", needed: false))
            } else if readOnly && confirmed {
                add(DoctorStep("pubsub", .ok, "SUBSCRIBE confirmed in \(took); PUBLISH not tried (read-only mode)"))
            } else if got {
                add(DoctorStep("pubsub", .ok, "a message went round a private channel in \(took)"))
            } else {
                add(DoctorStep("pubsub", .fail, confirmed ? "subscribed, but a message published did not come back within 3 s"
                                                          : "no SUBSCRIBE confirmation within 3 s",
                               hint: "a proxy in the path may not pass pub/sub; try the tail with --verbose"))
            }
        } catch {
            add(DoctorStep("pubsub", .fail, "\(error)", hint: "a second connection (the subscriber) failed: the server's maxclients, or the path"))
        }
        return out
    }

    static func scanUsec(_ info: String) -> Int64? {
        for line in info.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) where line.hasPrefix("cmdstat_scan:") {
            for f in line.split(separator: ",") where f.contains("usec=") && !f.contains("per_call") {
                return Int64(f.split(separator: "=").last ?? "")
            }
        }
        return nil
    }

    static func ms(_ s: Double) -> String { s < 0.01 ? String(format: "%.2f ms", s * 1000) : String(format: "%.0f ms", s * 1000) }

    static func sshHint(_ e: String, _ via: SSHHop) -> String {
        if e.contains("host key") { return "ssh-keyscan the bastion, compare the key with the one you expect, add it to ~/.ssh/known_hosts" }
        if e.contains("Permission denied") { return "ssh \(via) by hand: the key, the user, the agent (ssh-add -l)" }
        if e.contains("cannot reach node") { return "the bastion cannot connect to the node: its security group, or the node's address" }
        return "ssh \(via) by hand to see why; REDIS_OPS_SSH_COMMAND='ssh -v' shows more"
    }
}
