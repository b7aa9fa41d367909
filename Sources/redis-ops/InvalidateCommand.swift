import ArgumentParser
import Foundation
import Synchronization
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

/// The signal that asked a running write to stop (0: none).
private let interruptedBy = Atomic<Int32>(0)
private func onInterrupt(_ sig: Int32) { _ = interruptedBy.compareExchange(expected: 0, desired: sig, ordering: .relaxed) }

func signalName(_ sig: Int32) -> String {
    switch sig { case SIGINT: return "SIGINT"; case SIGTERM: return "SIGTERM"; case SIGHUP: return "SIGHUP"; default: return "signal \(sig)" }
}

/// How keys are named on the command line: literally, as `\xHH` escapes, or in base64.
struct KeyNaming: ParsableArguments {
    @Option(name: .customLong("key-base64"), help: "A key (relative to the prefix) given in base64, for names that are not UTF-8 (repeatable).")
    var keysBase64: [String] = []
    @Flag(name: .long, help: "KEY arguments and --match use \\xHH escapes for bytes (and \\\\ for a backslash).")
    var escaped = false
    @Flag(name: .long, help: "Also read key names from standard input: one per line, or NDJSON with \"key\" (or \"key_base64\") as `keys --json` prints them.")
    var stdin = false

    /// Decodes `\xHH` and `\\`; anything else stays as it is.
    static func unescape(_ s: String) throws -> Bytes {
        let b = Bytes(utf8: s)
        var out = Bytes()
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 1 < b.count {
                if b[i + 1] == UInt8(ascii: "\\") { out.append(b[i]); i += 2; continue }
                if b[i + 1] == UInt8(ascii: "x"), i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 2)...(i + 3)], as: UTF8.self), radix: 16) {
                    out.append(v); i += 4; continue
                }
                throw CLIError.usage("--escaped: '\(s)' has a backslash that is neither \\xHH nor \\\\")
            }
            out.append(b[i]); i += 1
        }
        return out
    }

    /// The keys named, as exact bytes, as given (relative to the prefix, or full names).
    func given(_ args: [String]) throws -> [Bytes] {
        var out = try args.map { escaped ? try Self.unescape($0) : Bytes(utf8: $0) }
        for b in keysBase64 {
            guard let d = Data(base64Encoded: b) else { throw CLIError.usage("--key-base64 '\(b)' is not valid base64") }
            out.append(Bytes(d))
        }
        if stdin {
            var data = Bytes()
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(0, &buf, buf.count)
                if n > 0 { data += buf[0..<n]; continue }
                if n < 0 && errno == EINTR { continue }
                break
            }
            do { out += try KeyLines.names(data) } catch let e as KeyLines.Bad { throw CLIError.usage(e.description) }
        }
        return out
    }

    /// The full names of the keys named, with a note on stderr when some already carried
    /// the prefix; and the glob relative to the prefix.
    func resolve(_ args: [String], match: String?, schema: KeySchema) throws -> (keys: [Bytes], glob: String?) {
        let names = try given(args)
        let g = try match.map { escaped ? try Self.unescape($0) : Bytes(utf8: $0) }
        PrefixHint.check(glob: g.map { String(decoding: $0, as: UTF8.self) }, keys: names, schema: schema)
        if stdin && names.isEmpty && match == nil { Output.warn("redis-ops: note: --stdin: no key names on standard input; nothing to do") }
        return (names.map { schema.named($0) }, g.map { String(decoding: schema.relativeGlob($0), as: UTF8.self) })
    }
}

/// The CLI side of a write: plan (dry run) → confirm → execute → report → audit, all in
/// OpsCore's WriteSession, the console's flow too.
enum WriteCLI {
    static func run(_ req: WriteRequest, connection: ConnectionOptionGroup, schema: KeySchema, opts: ConnectionOptions,
                    dryRun: Bool, yes: Bool, json: Bool, maxLatencyMs: Double?) throws {
        if opts.readOnly && !dryRun {
            throw CLIError.usage("read-only mode: \(req.action.kind.rawValue) is refused (nothing was changed); --dry-run is allowed")
        }
        let audit = connection.audit
        // Nothing is read or written before we know the record can be kept.
        do { try audit.check() } catch let e as AuditUnavailable { throw CLIError.usage(e.description) }
        let nodes = try connection.nodes(opts)
        let session = WriteSession(nodes: nodes, schema: schema,
                                   context: WriteContext(server: opts.summary, aclUser: opts.config.user, readOnly: opts.readOnly, audit: audit))
        if let m = maxLatencyMs { session.pacing = Pacing(latencyBudgetMs: m) }
        session.onNotice = { Output.flush(); Output.warn("redis-ops: " + $0) }
        let plan: WritePlan
        do { plan = try session.plan(req) } catch let e as WriteRefused { throw CLIError.usage(e.description) }
        if plan.protectedSkipped > 0 && !json {
            Output.warn("note: \(plan.protectedSkipped) protected key(s) (\(schema.protectedPatterns.joined(separator: ", "))) left out; name the namespace in --match to include them")
        }
        if dryRun {
            let r = session.recordDryRun(plan)
            output(r, json: json)
            if let e = r.auditError { Output.flush(); throw CLIError.runtime("the dry run could not be recorded: \(e)") }
            return
        }
        let changes: String
        switch req.action {
        case .expire(let ttl, _): changes = "given a TTL of \(ttl) s (EXPIRE)"
        case .persist: changes = "made persistent (PERSIST)"
        case .invalidate, .delete, .reset, .release, .publish, .kill, .config: changes = "deleted (UNLINK)"
        }
        if !plan.keys.isEmpty && !yes {
            guard isatty(0) == 1 else {
                throw CLIError.usage("\(plan.keys.count) keys match; refusing to \(req.action.updatesTTL ? "change them" : "delete") without --yes (no terminal to ask on)")
            }
            Output.warn("\(plan.keys.count) key(s) will be \(changes), for example:")
            for k in plan.sample { Output.warn("  " + Escaper.string(k)) }
            Output.warn("Type \(plan.keys.count) to go ahead, anything else to cancel: ")
            let answer = readLine()?.trimmingCharacters(in: .whitespaces)
            guard answer == String(plan.keys.count) else { throw CLIError.usage("not confirmed; nothing was changed") }
        }
        // From here a signal (Ctrl-C, a closed ssh session, `kill`) stops the run after the
        // current batch: the report and the outcome record are still written.
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, onInterrupt) }
        let tty = isatty(2) == 1
        var last = 0.0
        let r: WriteReport
        do {
            r = try session.execute(plan, cancelled: { interruptedBy.load(ordering: .relaxed) != 0 }, progress: { p in
                let t = monotonicNow()
                guard tty, t - last > 0.2 else { return }
                last = t
                Output.warnTrusted("\u{1B}[2K\r\(p.done)/\(p.total) · \(Int(p.rate)) keys/s\u{1B}[1A")
            }, signal: { let s = interruptedBy.load(ordering: .relaxed); return s == 0 ? nil : signalName(s) })
        } catch let e as AuditUnavailable {
            throw CLIError.usage(e.description)
        }
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, SIG_DFL) }
        output(r, json: json)
        Output.flush()
        if let e = r.auditError { Output.warn("redis-ops: the outcome could not be recorded in the audit log: \(e)") }
        let sig = interruptedBy.load(ordering: .relaxed)
        if r.cancelled && sig != 0 {
            Output.warn("redis-ops: \(signalName(sig)): stopped after \(r.deleted + r.updated) of \(r.matched); \(r.notAttempted) not attempted\(r.unknown > 0 ? ", \(r.unknown) unknown" : "")")
            Glibc.exit(128 + sig)
        }
        if let e = r.error {
            throw CLIError.runtime("stopped after \(r.deleted + r.updated) of \(r.matched) (\(r.notAttempted) not attempted, \(r.unknown) unknown): \(Escaper.string(e))")
        }
        if r.auditError != nil { Glibc.exit(1) }
    }

    static func output(_ r: WriteReport, json: Bool) {
        if json { Output.line(r.json.serialized()); return }
        Output.line(r.text)
        for k in r.sample { Output.line("  " + Escaper.string(k)) }
        if r.matched > r.sample.count { Output.line("  … and \(r.matched - r.sample.count) more") }
    }
}

struct InvalidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invalidate",
        abstract: "Delete keys (UNLINK) by name or glob, after a dry run; asks on a terminal unless --yes.")

    @OptionGroup var connection: ConnectionOptionGroup
    @OptionGroup var naming: KeyNaming
    @Option(name: .long, help: "Glob relative to the prefix (e.g. 'workspace:*'). Locks and rate-limit counters are left out unless the glob names them.")
    var match: String?
    @Flag(name: .customLong("dry-run"), help: "Count and show what would go; delete nothing (recorded in the audit log).")
    var dryRun = false
    @Flag(name: .long, help: "Do not ask for confirmation.")
    var yes = false
    @Flag(name: .long, help: "One JSON object.")
    var json = false
    @Option(name: .customLong("max-latency-ms"), parsing: .unconditional, help: "The longest any single command may take on the server (ms; default 2): the latency the deletes may add for the application.")
    var maxLatencyMs: Double?
    @Argument(help: "Keys relative to the prefix (or full names that start with it), taken literally (no glob).")
    var keys: [String] = []

    func validate() throws {
        if match == nil && keys.isEmpty && naming.keysBase64.isEmpty && !naming.stdin { throw ValidationError("name keys, give --match GLOB, or --stdin") }
        if let m = match, m.isEmpty { throw ValidationError("--match must not be empty") }
        try Numbers.check(maxLatencyMs, "--max-latency-ms", 0.01...1000, "milliseconds")
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        let (full, glob) = try naming.resolve(keys, match: match, schema: schema)
        let req = WriteRequest(action: .invalidate, keys: full, glob: glob)
        try WriteCLI.run(req, connection: connection, schema: schema, opts: opts, dryRun: dryRun, yes: yes, json: json, maxLatencyMs: maxLatencyMs)
    }
}

struct ExpireCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expire",
        abstract: "Give keys without a TTL (the leak the Keys view flags) a TTL, by name or glob, after a dry run.")

    @OptionGroup var connection: ConnectionOptionGroup
    @OptionGroup var naming: KeyNaming
    @Option(name: .long, help: "Glob relative to the prefix (e.g. 'workspace:*').")
    var match: String?
    @Option(name: .long, parsing: .unconditional, help: "TTL in seconds (default: the cache convention's, 300).")
    var ttl: Int64?
    @Flag(name: .long, help: "Every matching key, not only those without a TTL.")
    var all = false
    @Flag(name: .customLong("dry-run"), help: "Count and show what would change; change nothing (recorded in the audit log).")
    var dryRun = false
    @Flag(name: .long, help: "Do not ask for confirmation.")
    var yes = false
    @Flag(name: .long, help: "One JSON object.")
    var json = false
    @Option(name: .customLong("max-latency-ms"), parsing: .unconditional, help: "The longest any single command may take on the server (ms; default 2): the latency the writes may add for the application.")
    var maxLatencyMs: Double?
    @Argument(help: "Keys relative to the prefix (or full names that start with it), taken literally.")
    var keys: [String] = []

    func validate() throws {
        if match == nil && keys.isEmpty && naming.keysBase64.isEmpty && !naming.stdin { throw ValidationError("name keys, give --match GLOB, or --stdin") }
        try Numbers.check(ttl, "--ttl", 1...315_360_000)
        try Numbers.check(maxLatencyMs, "--max-latency-ms", 0.01...1000, "milliseconds")
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        let (full, glob) = try naming.resolve(keys, match: match, schema: schema)
        let req = WriteRequest(action: .expire(ttl: ttl ?? schema.cacheTTL, onlyWithoutTTL: !all), keys: full, glob: glob)
        try WriteCLI.run(req, connection: connection, schema: schema, opts: opts, dryRun: dryRun, yes: yes, json: json, maxLatencyMs: maxLatencyMs)
    }
}

struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish one message on a channel (refused in read-only mode; audited). Channel names never get the key prefix.")

    @OptionGroup var connection: ConnectionOptionGroup
    @Flag(name: .long, help: "One JSON object.")
    var json = false
    @Argument(help: "The channel.") var channel: String
    @Argument(help: "The payload.") var payload: String

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        if opts.readOnly { throw CLIError.usage("read-only mode: publish is refused (nothing was published)") }
        let audit = connection.audit
        do { try audit.check() } catch let e as AuditUnavailable { throw CLIError.usage(e.description) }
        let session = WriteSession(nodes: try connection.nodes(opts), schema: schema,
                                   context: WriteContext(server: opts.summary, aclUser: opts.config.user, readOnly: false, audit: audit))
        let plan = WritePlan(request: .publish(channel: Bytes(utf8: channel), payload: Bytes(utf8: payload)), keys: [])
        let r: WriteReport
        do { r = try session.execute(plan) } catch let e as AuditUnavailable { throw CLIError.usage(e.description) }
        if let e = r.auditError { Output.warn("redis-ops: the outcome could not be recorded in the audit log: \(e)") }
        if let e = r.error { throw CLIError.runtime(e) }
        if json { Output.line(JSON.object([("channel", .string(channel)), ("receivers", .int(Int64(r.receivers ?? 0)))]).serialized()) }
        else { Output.line("published to \(r.receivers ?? 0) subscriber\(r.receivers == 1 ? "" : "s")") }
        if r.auditError != nil { Output.flush(); Glibc.exit(1) }
    }
}
