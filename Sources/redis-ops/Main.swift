import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore

struct RedisOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis-ops",
        abstract: "An operator's console for a production Redis: live event tails, cache keys and TTLs, rate limits, safe invalidation.",
        discussion: """
        With no subcommand, the console opens. Options may come before or after the subcommand.

        CONSOLE KEYS: 1 Events, 2 Keys, 3 Rate limits, 4 Locks, 5 Server, Tab next view; / filter (Enter keeps, \
        Esc clears); Enter details; : command line (:KEY opens a key, :ttl KEY, :audit, :doctor; Tab completes); space \
        pause, F follow, s subscribe, p publish (Events); d delete, D invalidate by pattern, e expire (Keys); \
        r reset (Rate limits); d release (Locks); R rescan; o sort; A audit log; ? help; q quit.

        ENVIRONMENT: REDIS_URL (redis:// or rediss://), REDIS_HOST, REDIS_PORT, REDIS_USER, REDIS_AUTH_TOKEN \
        (the password), REDIS_PREFIX (the application's key prefix, without ':'), NODE_ENV=production (TLS on, \
        as the application does), REDIS_OPS_CONFIG (the configuration file), REDIS_OPS_AUDIT_LOG, \
        REDIS_OPS_AUDIT_CHANNEL (also publish each audit record there), NO_COLOR (no colour). Flags win, then the \
        --profile named, then the environment, then the configuration file's defaults.

        FILES: $XDG_CONFIG_HOME/redis-ops/config.toml (else ~/.config/redis-ops/config.toml): profiles and the \
        application's conventions. $XDG_STATE_HOME/redis-ops/audit.log (else ~/.local/state/redis-ops/audit.log): \
        one JSON line for every write and every dry run.

        EXIT STATUS: 0 success; 1 a connection, authentication, TLS or server error; 2 a usage error or a refused write.
        """,
        version: "redis-ops \(RedisOpsVersion.current)",
        subcommands: [ConsoleCommand.self, KeysCommand.self, InfoCommand.self, TailCommand.self, RateLimitsCommand.self, InvalidateCommand.self, ActivityCommand.self, MemoryCommand.self,
                      ExpireCommand.self, PublishCommand.self, DoctorCommand.self, VersionCommand.self, DemoCommand.self, BenchTailCommand.self, BenchConsoleCommand.self,
                      BenchChannelsCommand.self],
        defaultSubcommand: ConsoleCommand.self
    )
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version (as --version does).")
    func run() throws { Output.line("redis-ops \(RedisOpsVersion.current)") }
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

/// The console's options that take a value (for telling a value from a stray word).
let consoleValued: Set<String> = ["--channel", "--shard-channel", "--psubscribe", "--buffer"]

/// `--pattern GLOB`, the console's older spelling, is `--psubscribe GLOB`: `--pattern` is
/// now a flag, as in `tail` (the channels named are patterns). Only for the console.
func consolePatternAlias(_ args: [String], subcommands: Set<String>) -> [String] {
    if let first = args.first, subcommands.contains(first), first != "console" { return args }
    var out: [String] = []
    var i = 0
    while i < args.count {
        let a = args[i]
        if a == "--" { out += args[i...]; break }
        if a == "--pattern", i + 1 < args.count, !args[i + 1].hasPrefix("-") {
            out += ["--psubscribe", args[i + 1]]; i += 2; continue
        }
        if a.hasPrefix("--pattern=") { out.append("--psubscribe=" + a.dropFirst("--pattern=".count)); i += 1; continue }
        out.append(a)
        if ConnectionOptionGroup.valued.contains(a) || consoleValued.contains(a), i + 1 < args.count { out.append(args[i + 1]); i += 2; continue }
        i += 1
    }
    return out
}

/// A word where a subcommand would go that names none: said plainly, rather than the
/// console's usage (the console takes no arguments).
func unknownCommand(_ args: [String], subcommands: Set<String>) -> String? {
    if let first = args.first, subcommands.contains(first) { return nil }
    var i = 0
    while i < args.count {
        let a = args[i]
        if a == "--" { return nil }
        if !a.hasPrefix("-") || a == "-" {
            return subcommands.contains(a) ? nil : a
        }
        if (ConnectionOptionGroup.valued.contains(a) || consoleValued.contains(a)) && i + 1 < args.count { i += 2; continue }
        i += 1
    }
    return nil
}

@main
enum Entry {
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        // A parent may have left these blocked (libdispatch blocks them on its threads, and a
        // child inherits the mask): Ctrl-C, kill and a closed session must always reach us.
        var mask = sigset_t()
        sigemptyset(&mask)
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&mask, sig) }
        pthread_sigmask(SIG_UNBLOCK, &mask, nil)
        let names = Set(RedisOps.configuration.subcommands.map { $0.configuration.commandName ?? "" })
        let raw = Array(CommandLine.arguments.dropFirst())
        // The parser's own entry points (completion scripts and the completions they ask for
        // at run time, `help SUBCOMMAND`) go to it untouched.
        let parserOwned = raw.first == "help" || raw.contains { $0 == "---completion" || $0.hasPrefix("--generate-completion-script") || $0 == "--experimental-dump-help" }
        let args = parserOwned ? raw : consolePatternAlias(reorderGlobalOptions(raw, subcommands: names), subcommands: names)
        do {
            var command: ParsableCommand
            do { command = try RedisOps.parseAsRoot(args) } catch {
                // A bare word where a subcommand goes, which the parser refused as such: said
                // plainly. Anything else (an option placed before the subcommand, say) keeps
                // the parser's own message, which names what is wrong.
                if !parserOwned, let word = unknownCommand(args, subcommands: names),
                   RedisOps.message(for: error).contains("'\(word)'") {
                    let visible = RedisOps.configuration.subcommands.filter { $0.configuration.shouldDisplay }.compactMap { $0.configuration.commandName }
                    Output.warn("redis-ops: unknown command '\(word)'; the commands are \(visible.joined(separator: ", ")) (redis-ops --help)")
                    exit(2)
                }
                throw error
            }
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
