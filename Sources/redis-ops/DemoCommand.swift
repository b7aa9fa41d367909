import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleTerminal

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a private redis-server with the application's keyspace and live traffic, and open the console on it.")

    @Option(name: .long, help: "Port for the private server (default: a free one).")
    var port: Int?
    @Option(name: .long, help: "Random seed, for a reproducible keyspace and traffic.")
    var seed: UInt64 = 42
    @Option(name: .long, help: "Workspace cache entries to create.")
    var workspaces: Int = 3000
    @Flag(name: .customLong("no-console"), help: "Leave the server running for other tools until Ctrl-C.")
    var noConsole = false
    @Option(name: .long, help: "The application's key prefix.")
    var prefix: String = "app:"
    @Option(name: .customLong("audit-log"), help: "Audit log file (default $REDIS_OPS_AUDIT_LOG or ~/.local/state/redis-ops/audit.log).")
    var auditLog: String?
    @Flag(name: .customLong("no-color"), help: "No colour (also NO_COLOR).")
    var noColor = false

    func validate() throws {
        try Numbers.check(port, "--port", 1...65535)
        try Numbers.check(workspaces, "--workspaces", 1...1_000_000)
    }

    func run() throws {
        if !noConsole && !(isatty(0) == 1 && isatty(1) == 1) {
            throw CLIError.usage("the console needs a terminal; use --no-console to only run the demo server")
        }
        let server = try DemoServer(port: port)
        defer { server.stop() }
        // Until the console takes over the signals, an interrupt still stops the server.
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, demoInterrupted) }
        let config = server.config()
        let schema = KeySchema(prefix: prefix)
        let traffic = DemoTraffic(config: config, schema: schema, workspaces: workspaces, seed: seed)
        try traffic.fill()
        traffic.start()
        defer { traffic.stop() }
        if noConsole {
            Output.line("demo redis-server on 127.0.0.1:\(server.port) (prefix \(prefix), seed \(seed)); keyspace notifications on (Egx$e)")
            Output.line("password file: \(server.passwordFile)")
            Output.line("try: redis-ops --port \(server.port) --password-file \(server.passwordFile)")
            Output.line("     REDISCLI_AUTH=$(cat \(server.passwordFile)) redis-cli -p \(server.port)")
            Output.line("Ctrl-C stops the server and the traffic")
            Output.flush()
            var set = sigset_t()
            sigemptyset(&set)
            for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s) }
            pthread_sigmask(SIG_BLOCK, &set, nil)
            var sig: Int32 = 0
            sigwait(&set, &sig)
            return
        }
        var flags = ConnectionFlags()
        flags.port = server.port
        flags.prefix = prefix
        flags.password = server.password
        let opts = try ConnectionOptions.resolve(flags: flags, environment: [:])
        let colour = !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        try Console(ConsoleSettings(options: opts, channels: [], patterns: [Bytes(utf8: schema.eventsPattern)], schema: schema,
                                    audit: AuditLog.resolve(explicit: auditLog, environment: ProcessInfo.processInfo.environment), colour: colour)).run()
    }
}

private func demoInterrupted(_ sig: Int32) {
    let pid = demoServerPID.load(ordering: .relaxed)
    if pid > 0 { kill(pid, SIGTERM) }
    _exit(128 + sig)
}
