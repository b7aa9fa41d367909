import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Walk the path to the server step by step (dns, tcp, ssh, tls, auth, acl, latency, cluster, pubsub) and say where it breaks.",
        discussion: """
        One line per step: ok, FAIL or skip, the step, what was found, and for a failure a hint (→). \
        Harmless probes only: commands are tried on a key that cannot exist, PUBLISH on a private channel \
        (not in --read-only mode). Exit 0 when every step the console needs is ok, 1 otherwise.
        """)

    @OptionGroup var connection: ConnectionOptionGroup
    @Flag(name: .long, help: "One JSON object per step: {\"step\",\"status\",\"detail\",\"hint\"}.")
    var json = false

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema(bringUpVia: false)
        if !json { Output.line("redis-ops doctor: \(opts.summary)"); Output.flush() }
        let steps = Doctor.run(opts, prefix: schema.prefix, readOnly: opts.readOnly) { step in
            // Each step as it is found: a slow step (a timeout) shows where it is stuck.
            if json { Output.line(step.json.serialized()) }
            else { Output.line(Self.safe(step.text)) }
            Output.flush()
        }
        if !Doctor.healthy(steps) {
            let failed = steps.filter { $0.status == .fail && $0.needed }.map(\.step)
            throw CLIError.runtime("doctor: the console cannot work here: \(failed.joined(separator: ", ")) failed")
        }
    }

    /// Details carry the server's words (errors, names): escaped, line breaks kept.
    static func safe(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { Escaper.string(Bytes(utf8: String($0))) }.joined(separator: "\n")
    }
}
