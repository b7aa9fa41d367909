import ArgumentParser
import Foundation
import Synchronization
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct TailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print live pub/sub messages until interrupted, N messages or S seconds.")

    @OptionGroup var connection: ConnectionOptionGroup
    @Flag(name: .long, help: "Every CHANNEL argument is a glob pattern (PSUBSCRIBE).")
    var pattern = false
    @Flag(name: .long, help: "Every CHANNEL argument is a sharded channel (SSUBSCRIBE, Redis 7; for SPUBLISH): in a cluster, each is subscribed on the node that owns its slot, and again on the new owner when the slot moves.")
    var shard = false
    @Option(name: .long, parsing: .unconditional, help: "Exit after N messages.")
    var count: Int?
    @Option(name: .long, parsing: .unconditional, help: "Exit after S seconds.")
    var timeout: Double?
    @Flag(name: .long, help: "One JSON object per line.")
    var json = false
    @Flag(name: .customLong("exit-on-auth-failure"), help: "Exit (status 1) when the server refuses the password, instead of trying again slowly with the password read again.")
    var exitOnAuthFailure = false
    @Argument(help: "Channels (or patterns with --pattern); none: the configured events pattern (workspace:*:events). Channel names never get the key prefix.")
    var channels: [String] = []

    func validate() throws {
        if channels.isEmpty && shard { throw ValidationError("--shard needs at least one CHANNEL") }
        if shard && pattern { throw ValidationError("--shard and --pattern cannot be combined: sharded pub/sub has no patterns") }
        try Numbers.check(count, "--count", 1...Int(Int32.max))
        try Numbers.check(timeout, "--timeout", 0.001...31_536_000, "seconds")
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        // Fail fast with one clear line if the server cannot be reached or refuses us.
        try RedisConnection(opts.config).close()
        let printer = TailPrinter(json: json, limit: count)
        // No CHANNEL: the configured default pattern, as the console subscribes.
        let pattern = self.pattern || channels.isEmpty
        let names = channels.isEmpty ? [Bytes(utf8: schema.eventsPattern)] : channels.map { Bytes(utf8: $0) }
        if channels.isEmpty { Output.warn("redis-ops: no CHANNEL given: subscribing to the events pattern \(Escaper.string(schema.eventsPattern)) (PSUBSCRIBE), as the console does") }
        printer.expected = names.count
        printer.kind = shard ? "SSUBSCRIBE" : (pattern ? "PSUBSCRIBE" : "SUBSCRIBE")
        let stop: () -> Void
        if shard {
            let worker = ShardSubscriptionWorker(config: opts.config, channels: names, sink: printer, exitOnAuthFailure: exitOnAuthFailure)
            worker.start()
            stop = worker.stop
        } else {
            let worker = SubscriptionWorker(config: opts.config, channels: pattern ? [] : names, patterns: pattern ? names : [], sink: printer,
                                            exitOnAuthFailure: exitOnAuthFailure)
            worker.start()
            stop = worker.stop
        }
        let deadline: DispatchTime = timeout.map { .now() + $0 } ?? .distantFuture
        let r = printer.done.wait(timeout: deadline)
        stop()
        printer.flush()
        if r == .success, let failure = printer.failure {
            throw CLIError.runtime(failure)
        }
    }
}

/// Prints messages as the worker delivers them (on its thread), flushing each batch.
///
/// `@unchecked Sendable`: its buffer and `failure` are written by the subscriber's thread
/// while it runs, and read by the main thread only after `done` is signalled or the worker
/// has stopped (the semaphore and the thread join order the two).
final class TailPrinter: SubscriberSink, @unchecked Sendable {
    let json: Bool
    let limit: Int?
    let done = DispatchSemaphore(value: 0)
    private let state = Mutex<(printed: Int, finished: Bool, refused: Int)>((0, false, 0))
    nonisolated(unsafe) var failure: String?
    nonisolated(unsafe) var expected = 0
    nonisolated(unsafe) var kind = "SUBSCRIBE"
    private var buffer: [UInt8] = []

    init(json: Bool, limit: Int?) { self.json = json; self.limit = limit; buffer.reserveCapacity(1 << 16) }

    func deliver(_ messages: [ReceivedMessage]) {
        var take = messages.count
        let finish = state.withLock { s -> Bool in
            if s.finished { take = 0; return false }
            if let l = limit { take = min(take, l - s.printed) }
            s.printed += take
            if let l = limit, s.printed >= l { s.finished = true; return true }
            return false
        }
        for m in messages.prefix(take) { format(m) }
        flush()
        if finish { done.signal() }
    }

    private func format(_ m: ReceivedMessage) {
        if json {
            TailJSON.line(m, into: &buffer)
        } else {
            var line = isoTimestamp(m.receivedAt) + " " + Escaper.string(m.channel)
            if let p = m.pattern { line += " (" + Escaper.string(p) + ")" }
            line += " " + Escaper.string(m.payload)
            buffer.append(contentsOf: line.utf8)
            buffer.append(10)
        }
        if buffer.count > 1 << 16 { flush() }
    }

    func flush() { Output.write(&buffer) }

    func notice(_ n: SubscriberNotice) {
        switch n {
        case .connected, .subscribed, .unsubscribed: break
        case .disconnected(let reason, let retry):
            Output.warn("redis-ops: subscriber disconnected (\(reason)); reconnecting in \(String(format: "%.1f", retry)) s")
        case .gap(let from, let to, let reason):
            // In the stream where it happened (a script reading stdout must know), and on stderr.
            if json {
                TailJSON.gap(TailGap(from: from, to: to, reason: reason), into: &buffer)
                flush()
            }
            Output.warn("redis-ops: subscribed again; messages published between \(isoTimestamp(from)) and \(isoTimestamp(to)) may be lost (pub/sub is at-most-once): \(reason)")
        case .refused(let name, let isPattern, let reason):
            Output.warn("redis-ops: \(isPattern ? "PSUBSCRIBE" : kind) \(name.map { Escaper.string($0) } ?? "") refused: \(Escaper.string(reason))")
            let all = state.withLock { s -> Bool in s.refused += 1; return s.refused >= expected }
            if all { failure = "every subscription was refused by the server"; done.signal() }
        case .fatal(let reason):
            failure = reason
            done.signal()
        }
    }
}
