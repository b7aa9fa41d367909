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
        // One contiguous copy of every argument, pinned while hiredis reads it.
        var total = 0
        for a in argv { total += a.count }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1) + n * (MemoryLayout<Int>.stride + MemoryLayout<UnsafePointer<CChar>?>.stride), alignment: 16)
        defer { storage.deallocate() }
        let lens = storage.bindMemory(to: Int.self, capacity: n)
        let ptrs = (storage + n * MemoryLayout<Int>.stride).bindMemory(to: UnsafePointer<CChar>?.self, capacity: n)
        let data = storage + n * (MemoryLayout<Int>.stride + MemoryLayout<UnsafePointer<CChar>?>.stride)
        var off = 0
        for i in 0..<n {
            let a = argv[i]
            a.withUnsafeBytes { src in
                if let base = src.baseAddress { (data + off).copyMemory(from: base, byteCount: src.count) }
            }
            lens[i] = a.count
            ptrs[i] = UnsafePointer((data + off).assumingMemoryBound(to: CChar.self))
            off += a.count
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
