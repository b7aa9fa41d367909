import ArgumentParser
import Foundation
import RedisClient
import OpsCore
import OpsConfig
import ConsoleUI
import RedisProtocol

/// The connection options every subcommand accepts (README, "Connecting"), with
/// redis-cli's spellings (`-u`, `-p`, `-n`, `--askpass`) and what every subcommand shares
/// (`--audit-log`, `--replica-reads`, `--no-color`).
struct ConnectionOptionGroup: ParsableArguments {
    @Option(name: [.long, .customShort("u")], help: "redis://[user[:password]@]host[:port][/db]; rediss:// means TLS.")
    var url: String?
    @Option(name: .long, help: "Server host (default 127.0.0.1).")
    var host: String?
    @Option(name: [.long, .customShort("p")], parsing: .unconditional, help: "Server port (default 6379).")
    var port: Int?
    @Option(name: .customShort("n"), parsing: .unconditional, help: "Database number (default 0).")
    var db: Int?
    @Option(name: .long, help: "ACL user (default: the default user).")
    var user: String?
    @Option(name: .customLong("password-file"), help: "Read the password from this file (read again if the server refuses it: a rotated token).")
    var passwordFile: String?
    @Option(name: .customLong("password-command"), help: "Run this (/bin/sh -c, no terminal, 30 s at most): its output is the password; run again if the server refuses it (IAM tokens, vaults, rotation).")
    var passwordCommand: String?
    @Flag(name: .long, help: "Ask for the password on the terminal (not echoed).")
    var askpass = false
    @Flag(name: .long, help: "Use TLS.")
    var tls = false
    @Flag(name: .customLong("no-tls"), help: "No TLS, even with NODE_ENV=production.")
    var noTLS = false
    @Option(name: .long, help: "Reach every node through this bastion: [user@]host[:port] (ssh -W over one multiplexed ssh connection; your ~/.ssh/config, agent and known_hosts; $REDIS_OPS_SSH_COMMAND).")
    var via: String?
    @Option(name: .long, help: "CA certificate bundle (PEM) to verify the server with.")
    var cacert: String?
    @Option(name: .long, help: "Client certificate (PEM).")
    var cert: String?
    @Option(name: .long, help: "Client private key (PEM).")
    var key: String?
    @Option(name: .long, help: "Server name for SNI and the certificate host-name check.")
    var sni: String?
    @Flag(name: .long, help: "Skip certificate verification (shows a warning).")
    var insecure = false
    @Option(name: .long, help: "The application's key prefix (default REDIS_PREFIX + ':' or 'app:'; '' for none).")
    var prefix: String?
    @Flag(name: .customLong("read-only"), help: "Refuse every write (delete, reset, expire, publish).")
    var readOnly = false
    @Flag(name: .customLong("replica-reads"), help: "Cluster mode: listings read from replicas (READONLY); writes still go to primaries.")
    var replicaReads = false
    @Option(name: .customLong("audit-log"), help: "Audit log file (default $REDIS_OPS_AUDIT_LOG or ~/.local/state/redis-ops/audit.log).")
    var auditLog: String?
    @Flag(name: .customLong("no-color"), help: "No colour (bold, reverse and underline only); also NO_COLOR.")
    var noColor = false
    @Option(name: .customLong("io-timeout"), parsing: .unconditional, help: "Seconds to wait for a reply before the outcome is unknown (default 10).")
    var ioTimeout: Double?
    @Option(name: .long, help: "A connection profile from the config file.")
    var profile: String?
    @Option(name: .long, help: "The config file (default $REDIS_OPS_CONFIG or ~/.config/redis-ops/config.toml).")
    var config: String?

    var flags: ConnectionFlags {
        var f = ConnectionFlags()
        f.url = url; f.host = host; f.port = port; f.user = user; f.passwordFile = passwordFile
        f.passwordCommand = passwordCommand; f.askpass = askpass; f.noTLS = noTLS; f.via = via
        f.tls = tls; f.cacert = cacert; f.cert = cert; f.key = key; f.sni = sni; f.insecure = insecure
        f.prefix = prefix; f.readOnly = readOnly; f.db = db; f.replicaReads = replicaReads
        return f
    }

    func resolve() throws -> ConnectionOptions { try resolveWithSchema().0 }

    /// The connection options' numbers and names, checked before anything is done.
    func checkValues() throws {
        try Numbers.check(port, "--port", 1...65535)
        try Numbers.check(db, "-n", 0...1_000_000)
        try Numbers.check(ioTimeout, "--io-timeout", 0.1...3600, "seconds")
    }

    /// Options and the application's conventions: flags, then the profile, then the environment, then the file's [conventions].
    /// `bringUpVia: false` leaves the bastion for the caller to bring up (doctor reports it as a step).
    func resolveWithSchema(bringUpVia: Bool = true) throws -> (ConnectionOptions, KeySchema) {
        try checkValues()
        let env = ProcessInfo.processInfo.environment
        let file = try OpsConfigFile.load(path: config, environment: env)
        // [audit] settings apply unless the environment already says otherwise.
        if let l = file.auditLog, (env["REDIS_OPS_AUDIT_LOG"] ?? "").isEmpty { setenv("REDIS_OPS_AUDIT_LOG", l, 1) }
        if let c = file.auditChannel, (env["REDIS_OPS_AUDIT_CHANNEL"] ?? "").isEmpty { setenv("REDIS_OPS_AUDIT_CHANNEL", c, 1) }
        var (f, pw) = try file.flags(flags, profile: profile, environment: env)
        if let pw { f.password = Secret(pw) }
        if askpass {
            if f.passwordFile != nil || f.passwordCommand != nil {
                throw CLIError.usage("give at most one of --password-file, --password-command and --askpass")
            }
            f.password = Secret(try Self.askPassword())
        }
        if f.prefix == nil, (env["REDIS_PREFIX"] ?? "").isEmpty, let p = file.conventions.prefix { f.prefix = p }
        var o = try ConnectionOptions.resolve(flags: f, environment: env)
        if let t = ioTimeout { o.config.timeouts = Timeouts(connect: min(5, t), io: t) }
        if let v = o.via {
            // The bastion comes up now: a prompt (a passphrase, a second factor) or a failure
            // happens here, before the console takes the terminal.
            let hop = try SSHHop(v)
            if bringUpVia { _ = try hop.ensureUp() }
            o.config.via = hop
        }
        for w in o.warnings { Output.warn("redis-ops: warning: " + w) }
        if o.insecure {
            Output.warn("warning: --insecure: the server's certificate is NOT verified; anyone on the path can impersonate it")
        }
        return (o, file.schema(prefix: o.prefix, profile: profile))
    }

    /// The servers: one, or every node of a cluster (with replica reads when asked).
    func nodes(_ o: ConnectionOptions) throws -> NodeSet {
        let n = try NodeSet(config: o.config, replicaReads: o.replicaReads)
        if o.replicaReads {
            if !n.isCluster { Output.warn("redis-ops: note: replica reads apply to cluster mode; this server is not a cluster, so it is read directly") }
            else if !n.hasReplicas { Output.warn("redis-ops: note: replica reads: no replicas found; listings read from the primaries") }
        }
        return n
    }

    /// Where writes and dry runs are recorded.
    var audit: AuditLog { AuditLog.resolve(explicit: auditLog, environment: ProcessInfo.processInfo.environment) }

    /// Colour unless --no-color or NO_COLOR (any non-empty value).
    var colour: Bool { !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty }

    /// Reads a password from the terminal without echo (redis-cli's --askpass). Ctrl-C (or
    /// any signal that ends us) while asking gives the terminal its echo back first.
    static func askPassword() throws -> String {
        guard isatty(0) == 1 else { throw CLIError.usage("--askpass needs a terminal to ask on") }
        var old = termios()
        tcgetattr(0, &old)
        askpassSaved = old
        var quiet = old
        quiet.c_lflag &= ~tcflag_t(ECHO)
        Output.warnTrusted("Password: ")
        let signals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
        for sig in signals { signal(sig, askpassInterrupted) }
        tcsetattr(0, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(0, TCSAFLUSH, &old)
            for sig in signals { signal(sig, SIG_DFL) }
            Output.warnTrusted("")
        }
        return readLine(strippingNewline: true) ?? ""
    }

    /// Options that take a value (used to move global options after the subcommand name).
    static let valued: Set<String> = ["--url", "-u", "--host", "--port", "-p", "-n", "--user", "--password-file", "--password-command", "--via", "--cacert", "--cert",
                                      "--key", "--sni", "--prefix", "--profile", "--config", "--audit-log", "--io-timeout"]
}

/// Numeric options: finite, within a sane range, or a usage error that names the option
/// (NaN, infinities, 1e300 and negative counts are refused, never silently used).
enum Numbers {
    static func text(_ v: Double) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v < 0 ? "-inf" : "inf" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    static func check(_ v: Double?, _ option: String, _ range: ClosedRange<Double>, _ unit: String) throws {
        guard let v else { return }
        guard v.isFinite, range.contains(v) else {
            throw CLIError.usage("\(option) must be a number of \(unit) from \(text(range.lowerBound)) to \(text(range.upperBound)) (got \(text(v)))")
        }
    }

    static func check<T: BinaryInteger>(_ v: T?, _ option: String, _ range: ClosedRange<T>) throws {
        guard let v else { return }
        guard range.contains(v) else { throw CLIError.usage("\(option) must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \(v))") }
    }
}

/// The terminal's settings while --askpass has echo off (restored by a signal handler).
nonisolated(unsafe) private var askpassSaved = termios()

/// Async-signal-safe: restore the terminal, end the line, exit as the signal would.
private func askpassInterrupted(_ sig: Int32) {
    tcsetattr(0, TCSAFLUSH, &askpassSaved)
    var nl: UInt8 = 10
    _ = write(2, &nl, 1)
    _exit(128 + sig)
}

/// A failure with its exit status: 1 for connection/server problems, 2 for usage and refused writes.
struct CLIError: Error {
    let message: String
    let status: Int32
    static func usage(_ m: String) -> CLIError { CLIError(message: m, status: 2) }
    static func runtime(_ m: String) -> CLIError { CLIError(message: m, status: 1) }
}

/// The listing behind `keys` and `memory` (the console's key browser runs the same scan):
/// the glob taken relative to the prefix, with the usual hint when it repeats it; every
/// shard; TYPE, PTTL and MEMORY USAGE per key, pipelined; notices on stderr.
struct MetadataListing {
    let schema: KeySchema
    let nodes: NodeSet
    /// The full glob (prefix included) the listing scans.
    let glob: Bytes
    let reader: KeyMetadataReader
    let scan: KeyspaceScan<KeyMetadataReader>

    init(_ connection: ConnectionOptionGroup, match: String) throws {
        let (opts, schema) = try connection.resolveWithSchema()
        PrefixHint.check(glob: match, keys: [], schema: schema)
        self.schema = schema
        nodes = try connection.nodes(opts)
        glob = schema.fullGlob(String(decoding: schema.relativeGlob(Bytes(utf8: match)), as: UTF8.self))
        reader = KeyMetadataReader(schema: schema)
        scan = KeyspaceScan(nodes: nodes, match: glob, reader: reader)
        scan.onNotice = { Output.flush(); Output.warn("redis-ops: " + $0) }
    }
}

/// Buffered standard output that copes with a closed pipe (`| head`).
enum Output {
    nonisolated(unsafe) static var buffer: [UInt8] = { var b = [UInt8](); b.reserveCapacity(1 << 17); return b }()

    static func line(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        buffer.append(10)
        flushIfFull()
    }

    static func line(bytes: Bytes) {
        buffer.append(contentsOf: bytes)
        buffer.append(10)
        flushIfFull()
    }

    static func flush() { write(&buffer) }

    /// After appending to `buffer` directly: writes it out once it is big enough.
    static func flushIfFull() { if buffer.count >= 1 << 16 { flush() } }

    /// Writes and empties `bytes` to stdout; a closed pipe (`| head`) ends the program quietly.
    static func write(_ bytes: inout [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { exit(0) }
                break
            }
            off += n
        }
        bytes.removeAll(keepingCapacity: true)
    }

    /// One line on stderr. Messages carry server text (error replies, reasons), so control,
    /// bidi and zero-width characters are made visible; backslashes already in the text stay.
    static func warn(_ s: String) {
        warnTrusted(Escaper.string(Bytes(utf8: s), escapeBackslash: false))
    }

    /// Text that is ours alone (the usage text), which may span lines.
    static func warnTrusted(_ s: String) {
        let line = s + "\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }
}

/// Globs and key names on the command line are relative to the prefix. One that starts with
/// the prefix itself is most likely a full name given by habit: say how it was read.
enum PrefixHint {
    /// A name that already starts with the prefix is the full name (as `keys` prints it and
    /// the console accepts it): said once on stderr, so nobody wonders about `app:app:…`.
    static func check(glob: String?, keys: [Bytes], schema: KeySchema) {
        let p = String(decoding: schema.prefix, as: UTF8.self)
        guard !p.isEmpty else { return }
        let names = (glob.map { [Bytes(utf8: $0)] } ?? []) + keys
        guard let first = names.first(where: { schema.carriesPrefix($0) }) else { return }
        let more = names.filter { schema.carriesPrefix($0) }.count - 1
        Output.warn("redis-ops: note: '\(Escaper.string(first))'\(more > 0 ? " (and \(more) more)" : "") already starts with the prefix \(Escaper.string(p)): taken as the full name (names without it are relative to it)")
    }
}
