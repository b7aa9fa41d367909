import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore

struct RedisOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis-ops",
        abstract: "An operator's console for a production Redis: live event tails, cache keys and TTLs, rate limits, safe invalidation.",
        subcommands: [ConsoleCommand.self, KeysCommand.self, InfoCommand.self, TailCommand.self, RateLimitsCommand.self, InvalidateCommand.self,
                      ExpireCommand.self, PublishCommand.self, DemoCommand.self, BenchTailCommand.self, BenchConsoleCommand.self],
        defaultSubcommand: ConsoleCommand.self
    )
}

/// Moves connection options given before the subcommand name to after it, so that
/// `redis-ops --port 7000 keys` means `redis-ops keys --port 7000`.
func reorderGlobalOptions(_ args: [String], subcommands: Set<String>) -> [String] {
    var before: [String] = []
    var i = 0
    while i < args.count {
        let a = args[i]
        if subcommands.contains(a) {
            return [a] + before + Array(args[(i + 1)...])
        }
        if a == "--" { break }
        if a.hasPrefix("-") {
            before.append(a)
            if ConnectionOptionGroup.valued.contains(a), i + 1 < args.count {
                before.append(args[i + 1]); i += 2; continue
            }
            i += 1
            continue
        }
        break  // a positional before any subcommand: leave the order alone
    }
    return args
}

@main
enum Entry {
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        let names = Set(RedisOps.configuration.subcommands.map { $0.configuration.commandName ?? "" })
        let args = reorderGlobalOptions(Array(CommandLine.arguments.dropFirst()), subcommands: names)
        do {
            var command = try RedisOps.parseAsRoot(args)
            try command.run()
            Output.flush()
            exit(0)
        } catch let e as CLIError {
            Output.flush()
            Output.warn("redis-ops: \(e.message)")
            exit(e.status)
        } catch let e as RedisError {
            Output.flush()
            Output.warn("redis-ops: \(e.description)")
            if case .usage = e { exit(2) }
            exit(1)
        } catch {
            Output.flush()
            let code = RedisOps.exitCode(for: error)
            if code == .success {
                print(RedisOps.fullMessage(for: error))
                exit(0)
            }
            Output.warnTrusted(RedisOps.fullMessage(for: error))
            exit(2)
        }
    }
}
