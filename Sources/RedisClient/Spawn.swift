#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Starting a helper program (ssh, a password command) the one way the project does it:
/// posix_spawn (never Foundation's Process, which deadlocks with ssh here), its standard
/// descriptors set explicitly, every signal unblocked (a parent may have blocked some) and the
/// usual ones at their default disposition, and
/// optionally its own session (no terminal to ask on; Ctrl-C is ours to handle).
enum Spawn {
    enum Descriptor { case devNull(Int32), fd(Int32) }
    struct Failed: Error {
        let code: Int32
        var message: String { String(cString: strerror(code)) }
    }

    /// The pid, or the error `posix_spawn` returned.
    static func start(_ argv: [String], searchPath: Bool, stdin: Descriptor, stdout: Descriptor, stderr: Descriptor?,
                      newSession: Bool) -> Result<pid_t, Failed> {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        for (target, d) in [(Int32(0), Optional(stdin)), (1, Optional(stdout)), (2, stderr)] {
            switch d {
            case .devNull(let flags)?: posix_spawn_file_actions_addopen(&fa, target, "/dev/null", flags, 0)
            case .fd(let fd)?: posix_spawn_file_actions_adddup2(&fa, fd, target)
            case nil: break
            }
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        // Default dispositions, as a shell starts a program: an ignored signal stays ignored
        // across exec, and we ignore SIGPIPE (a password command's `… | head -1` would then
        // see EPIPE errors instead of ending quietly).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        let setsid: Int32 = 0x80   // glibc's POSIX_SPAWN_SETSID
        posix_spawnattr_setflags(&attr, Int16(Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | (newSession ? setsid : 0)))
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        let rc = searchPath ? posix_spawnp(&pid, argv[0], &fa, &attr, cargs, environ) : posix_spawn(&pid, argv[0], &fa, &attr, cargs, environ)
        return rc == 0 ? .success(pid) : .failure(Failed(code: rc))
    }
}
