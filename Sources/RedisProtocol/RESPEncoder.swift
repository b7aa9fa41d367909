import CHiredis
#if canImport(Glibc)
import Glibc
#endif

/// RESP encoding of commands, through hiredis's `redisFormatCommandArgv` (binary safe).
public enum RESPEncoder {
    /// Encodes one command (argv) as a RESP multibulk.
    public static func encode(_ argv: [Bytes]) -> Bytes {
        var out = Bytes()
        append(argv, to: &out)
        return out
    }

    /// Appends one encoded command to `out` (for pipelines: many commands, one write).
    public static func append(_ argv: [Bytes], to out: inout Bytes) {
        precondition(!argv.isEmpty, "empty command")
        let n = argv.count
        let lens = UnsafeMutablePointer<Int>.allocate(capacity: n)
        let ptrs = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: n)
        defer { lens.deallocate(); ptrs.deallocate() }
        // Keep every argument alive and pinned while hiredis reads it.
        var storage: [UnsafeMutablePointer<UInt8>] = []
        storage.reserveCapacity(n)
        defer { for p in storage { p.deallocate() } }
        for (i, a) in argv.enumerated() {
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(a.count, 1))
            a.withUnsafeBufferPointer { src in
                if let base = src.baseAddress { p.initialize(from: base, count: a.count) }
            }
            storage.append(p)
            lens[i] = a.count
            ptrs[i] = UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self)
        }
        var target: UnsafeMutablePointer<CChar>? = nil
        let len = redisFormatCommandArgv(&target, Int32(n), ptrs, lens)
        guard len >= 0, let t = target else { fatalError("redisFormatCommandArgv failed (out of memory)") }
        defer { redisFreeCommand(t) }
        UnsafeRawPointer(t).withMemoryRebound(to: UInt8.self, capacity: Int(len)) { p in
            out.append(contentsOf: UnsafeBufferPointer(start: p, count: Int(len)))
        }
    }

    public static func encode(_ args: String...) -> Bytes { encode(args.map { Bytes(utf8: $0) }) }
}
