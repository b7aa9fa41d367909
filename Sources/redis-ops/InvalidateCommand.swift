import ArgumentParser
import Foundation
import Synchronization
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

private let interrupted = Atomic<Bool>(false)
private func onInterrupt(_ sig: Int32) { interrupted.store(true, ordering: .relaxed) }

struct InvalidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invalidate",
        abstract: "Delete keys (UNLINK) by name or glob, after a dry run; asks on a terminal unless --yes.")

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long, help: "Glob relative to the prefix (e.g. 'workspace:*'). Locks and rate-limit counters are left out unless the glob names them.")
    var match: String?
    @Flag(name: .customLong("dry-run"), help: "Count and show what would go; delete nothing.")
    var dryRun = false
    @Flag(name: .long, help: "Do not ask for confirmation.")
    var yes = false
    @Flag(name: .long, help: "One JSON object.")
    var json = false
    @Option(name: .customLong("audit-log"), help: "Audit log file (default $REDIS_OPS_AUDIT_LOG or ~/.local/state/redis-ops/audit.log).")
    var auditLog: String?
    @Argument(help: "Keys relative to the prefix, taken literally (no glob).")
    var keys: [String] = []

    func validate() throws {
        if match == nil && keys.isEmpty { throw ValidationError("name keys or give --match GLOB") }
        if let m = match, m.isEmpty { throw ValidationError("--match must not be empty") }
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        if opts.readOnly && !dryRun {
            throw CLIError.usage("read-only mode: invalidate is refused (nothing was deleted); --dry-run is allowed")
        }
        let conn = try RedisConnection(opts.config)
        let nodes = try NodeSet(seed: conn)
        let req = InvalidationRequest(keys: keys.map { Bytes(utf8: $0) }, glob: match)
        let inv = Invalidator(schema: schema)
        let plan = try inv.plan(req, nodes: nodes)
        let env = ProcessInfo.processInfo.environment
        let audit = AuditLog(path: auditLog ?? AuditLog.defaultPath(environment: env), channel: env["REDIS_OPS_AUDIT_CHANNEL"].flatMap { $0.isEmpty ? nil : $0 })
        func record(_ r: InvalidationReport) {
            // Read-only refuses every write, the audit PUBLISH included: the record goes to the file only.
            do { try audit.append(audit.record(server: opts.summary, aclUser: opts.config.user, what: req, report: r), publishOn: opts.readOnly ? nil : conn) }
            catch { Output.warn("redis-ops: warning: \(error)") }
        }
        if plan.protectedSkipped > 0 && !json {
            Output.warn("note: \(plan.protectedSkipped) protected key(s) (\(schema.protectedPatterns.joined(separator: ", "))) left out; name the namespace in --match to include them")
        }
        if dryRun || plan.keys.isEmpty {
            var r = InvalidationReport(matched: plan.keys.count)
            r.dryRun = dryRun
            r.sample = plan.sample
            record(r)
            output(r, plan: plan)
            return
        }
        if !yes {
            guard isatty(0) == 1 else {
                throw CLIError.usage("\(plan.keys.count) keys match; refusing to delete without --yes (no terminal to ask on)")
            }
            Output.warn("\(plan.keys.count) key(s) will be deleted (UNLINK), for example:")
            for k in plan.sample { Output.warn("  " + Escaper.string(k)) }
            Output.warn("Type \(plan.keys.count) to delete them, anything else to cancel: ")
            let answer = readLine()?.trimmingCharacters(in: .whitespaces)
            guard answer == String(plan.keys.count) else {
                throw CLIError.usage("not confirmed; nothing was deleted")
            }
        }
        signal(SIGINT, onInterrupt)
        var r = inv.execute(plan, nodes: nodes, cancelled: { interrupted.load(ordering: .relaxed) })
        signal(SIGINT, SIG_DFL)
        r.sample = plan.sample
        record(r)
        output(r, plan: plan)
        if let f = r.failure { throw CLIError.runtime("stopped after \(r.deleted) of \(r.matched): \(Escaper.string(f))") }
        if r.cancelled { Output.flush(); Output.warn("redis-ops: interrupted after deleting \(r.deleted) of \(r.matched)"); Glibc.exit(130) }
    }

    func output(_ r: InvalidationReport, plan: InvalidationPlan) {
        if json { Output.line(r.json.serialized()); return }
        if r.dryRun {
            Output.line("dry run: \(r.matched) key(s) would be deleted; nothing was deleted")
        } else {
            Output.line("matched \(r.matched) · deleted \(r.deleted) · already gone \(r.alreadyGone) · failed \(r.failed)")
        }
        for k in r.sample { Output.line("  " + Escaper.string(k)) }
        if r.matched > r.sample.count { Output.line("  … and \(r.matched - r.sample.count) more") }
    }
}
