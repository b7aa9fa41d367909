import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleTerminal

struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Open the interactive console (the default when no subcommand is given).")

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .customLong("channel"), help: "Subscribe to this channel (repeatable). Channel names never get the key prefix.")
    var channels: [String] = []
    @Option(name: .customLong("shard-channel"), help: "Subscribe to this sharded channel (SSUBSCRIBE, for SPUBLISH; repeatable).")
    var shardChannels: [String] = []
    @Flag(name: .customLong("pattern"), help: "Every --channel is a glob pattern (PSUBSCRIBE), as with tail --pattern. `--pattern GLOB` (the older spelling) subscribes that pattern, as --psubscribe does.")
    var pattern = false
    @Option(name: .customLong("psubscribe"), help: "Subscribe to this pattern (repeatable; default: the configured events pattern, workspace:*:events).")
    var patterns: [String] = []
    @Option(name: .long, help: "Messages kept in the live tail's ring buffer.")
    var buffer: Int = 10_000

    func validate() throws {
        try Numbers.check(buffer, "--buffer", 10...5_000_000)
    }

    func run() throws {
        guard isatty(0) == 1 && isatty(1) == 1 else {
            throw CLIError.usage("the console needs a terminal; for scripts use the subcommands (keys, tail, info, …)")
        }
        let (opts, schema) = try connection.resolveWithSchema()
        // Fail before taking over the screen if the server cannot be reached at all.
        try RedisConnection(opts.config).close()
        var pats = (patterns + (pattern ? channels : [])).map { Bytes(utf8: $0) }
        let chans = pattern ? [] : channels.map { Bytes(utf8: $0) }
        let shards = shardChannels.map { Bytes(utf8: $0) }
        if pats.isEmpty && chans.isEmpty && shards.isEmpty { pats = [Bytes(utf8: schema.eventsPattern)] }
        var settings = ConsoleSettings(options: opts, channels: chans, patterns: pats, bufferSize: buffer, schema: schema,
                                       audit: connection.audit, colour: connection.colour, replicaReads: opts.replicaReads)
        settings.shardChannels = shards
        try Console(settings).run()
    }
}
