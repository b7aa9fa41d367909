import CHiredis

/// Limits the decoder enforces before hiredis allocates anything large.
public struct DecoderLimits: Sendable, Equatable {
    /// Largest element count accepted for one multibulk (array) header.
    public var maxElements: Int
    /// Largest bulk string accepted, in bytes; also bounds any pending, unterminated line.
    public var maxBulkBytes: Int
    public init(maxElements: Int = 1 << 20, maxBulkBytes: Int = 64 << 20) {
        self.maxElements = maxElements
        self.maxBulkBytes = maxBulkBytes
    }
    public static let `default` = DecoderLimits()
}

/// A reply the decoder refuses: the stream is no longer trustworthy, so the connection must be closed.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "protocol error: \(message)" }
}

/// Per-reader state reachable from hiredis's callbacks through `privdata`.
private final class CapState {
    let limits: DecoderLimits
    var violation: String?
    init(limits: DecoderLimits) { self.limits = limits }
}

/// hiredis's own object functions (static in hiredis.c), found through a throwaway reader.
private let hiredisDefaults: redisReplyObjectFunctions = {
    let r = redisReaderCreate()!
    defer { redisReaderFree(r) }
    return r.pointee.fn.pointee
}()

private func capState(_ task: UnsafePointer<redisReadTask>?) -> CapState? {
    guard let p = task?.pointee.privdata else { return nil }
    return Unmanaged<CapState>.fromOpaque(p).takeUnretainedValue()
}

/// Our object functions: hiredis's, with the element cap checked before the array is allocated.
nonisolated(unsafe) private let cappedFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
    let p = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    var f = hiredisDefaults
    f.createArray = { task, elements in
        if let st = capState(task) {
            if elements < 0 || Int(elements) > st.limits.maxElements {
                st.violation = "array of \(elements) elements exceeds the limit of \(st.limits.maxElements)"
                return nil
            }
        }
        return hiredisDefaults.createArray(task, elements)
    }
    f.createString = { task, str, len in
        if let st = capState(task), len > st.limits.maxBulkBytes {
            st.violation = "bulk string of \(len) bytes exceeds the limit of \(st.limits.maxBulkBytes)"
            return nil
        }
        return hiredisDefaults.createString(task, str, len)
    }
    p.initialize(to: f)
    return p
}()

/// Incremental RESP2 decoder over the hiredis reader, with caps.
///
/// Feed it bytes as they arrive; pull complete replies with `next()`. After a
/// `ProtocolError` the decoder is permanently broken (as is hiredis's reader):
/// close the connection and start a new one.
public final class RESPDecoder {
    private let reader: UnsafeMutablePointer<redisReader>
    private let state: CapState
    private var broken: ProtocolError?

    public init(limits: DecoderLimits = .default) {
        state = CapState(limits: limits)
        reader = redisReaderCreateWithFunctions(cappedFunctions)!
        reader.pointee.privdata = Unmanaged.passUnretained(state).toOpaque()
        reader.pointee.maxbuf = 256 * 1024
    }

    deinit { redisReaderFree(reader) }

    public var limits: DecoderLimits { state.limits }

    /// Bytes received but not yet turned into a reply.
    public var pendingBytes: Int { Int(reader.pointee.len) - Int(reader.pointee.pos) + staging.count - stagingPos }

    /// Bytes received but not yet handed to hiredis. hiredis 0.14 compacts its buffer
    /// (a memmove of everything unread) after each reply once 1 KB has been read, so
    /// feeding it a large read at once is quadratic; we hand it `feedChunk` at a time.
    private var staging = Bytes()
    private var stagingPos = 0
    private let feedChunk = 1024

    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        if let b = broken { throw b }
        guard bytes.count > 0 else { return }
        if stagingPos == staging.count { staging.removeAll(keepingCapacity: true); stagingPos = 0 }
        staging.append(contentsOf: bytes)
    }

    /// Hands hiredis the next chunk of staged bytes; false when there are none.
    private func feedReader() throws -> Bool {
        let remaining = staging.count - stagingPos
        if remaining == 0 { return false }
        let n = min(remaining, feedChunk)
        let ok = staging.withUnsafeBytes { raw in
            redisReaderFeed(reader, raw.baseAddress!.advanced(by: stagingPos).assumingMemoryBound(to: CChar.self), n)
        }
        if ok != REDIS_OK { throw fail() }
        stagingPos += n
        if stagingPos == staging.count { staging.removeAll(keepingCapacity: true); stagingPos = 0 }
        else if stagingPos > 1 << 20 { staging.removeFirst(stagingPos); stagingPos = 0 }
        return true
    }

    public func feed(_ bytes: Bytes) throws {
        try bytes.withUnsafeBytes { try feed($0) }
    }

    /// The next complete reply, or nil when more bytes are needed.
    public func next() throws -> RESPValue? {
        if let b = broken { throw b }
        var raw: UnsafeMutableRawPointer? = nil
        while true {
            if redisReaderGetReply(reader, &raw) != REDIS_OK {
                throw fail()
            }
            if raw != nil { break }
            try checkPending()
            if try !feedReader() { return nil }
        }
        let r = raw!
        let reply = r.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(r) }
        return convert(reply)
    }

    /// The next complete reply, handed to `body` as hiredis's own object (valid only
    /// inside `body`), for hot paths that want to skip building a `RESPValue`.
    public func nextRaw<T>(_ body: (UnsafeMutablePointer<redisReply>) throws -> T) throws -> T? {
        if let b = broken { throw b }
        var raw: UnsafeMutableRawPointer? = nil
        while true {
            if redisReaderGetReply(reader, &raw) != REDIS_OK { throw fail() }
            if raw != nil { break }
            try checkPending()
            if try !feedReader() { return nil }
        }
        defer { freeReplyObject(raw) }
        return try body(raw!.assumingMemoryBound(to: redisReply.self))
    }

    /// Converts a hiredis reply object (e.g. from `nextRaw`).
    public func value(of r: UnsafeMutablePointer<redisReply>) -> RESPValue { convert(r) }

    /// Every complete reply currently buffered.
    public func drain(into out: inout [RESPValue]) throws {
        while let v = try next() { out.append(v) }
    }

    /// Looks at the header of the incomplete item hiredis is waiting on and refuses
    /// it if it announces more than the caps allow, before its bytes arrive.
    private func checkPending() throws {
        let pending = Int(reader.pointee.len) - Int(reader.pointee.pos)
        guard pending > 0, let buf = reader.pointee.buf else { return }
        var start = UnsafeRawPointer(buf).advanced(by: Int(reader.pointee.pos)).assumingMemoryBound(to: UInt8.self)
        var avail = pending
        // hiredis consumes an item's type byte before its header line is complete;
        // the task on top of its stack then says what the item is.
        var type: UInt8
        let ridx = Int(reader.pointee.ridx)
        let taskType: Int32 = ridx >= 0 ? withUnsafeBytes(of: &reader.pointee.rstack) { raw in
            raw.bindMemory(to: redisReadTask.self)[ridx].type
        } : -1
        switch taskType {
        case REDIS_REPLY_STRING: type = UInt8(ascii: "$")
        case REDIS_REPLY_ARRAY: type = UInt8(ascii: "*")
        case REDIS_REPLY_STATUS, REDIS_REPLY_ERROR, REDIS_REPLY_INTEGER: type = UInt8(ascii: "+")
        default:
            type = start[0]
            start += 1
            avail -= 1
        }
        if type == UInt8(ascii: "$") || type == UInt8(ascii: "*") {
            let scan = min(avail, 22)
            var crlf = -1
            for i in 0..<scan where start[i] == 13 { crlf = i; break }
            if crlf < 0 {
                if avail >= 22 { throw violation("length header is not terminated") }
                return
            }
            var n: Int64 = 0
            for i in 0..<crlf {
                let c = start[i]
                if c == UInt8(ascii: "-") && i == 0 { return }  // null values are tiny
                guard c >= 48 && c <= 57 else { throw violation("malformed length header") }
                n = n &* 10 &+ Int64(c - 48)
            }
            if type == UInt8(ascii: "$"), n > Int64(state.limits.maxBulkBytes) {
                throw violation("bulk string of \(n) bytes exceeds the limit of \(state.limits.maxBulkBytes)")
            }
            if type == UInt8(ascii: "*"), n > Int64(state.limits.maxElements) {
                throw violation("array of \(n) elements exceeds the limit of \(state.limits.maxElements)")
            }
        } else if pending > min(state.limits.maxBulkBytes, 1 << 20) + 64 {
            throw violation("reply line longer than \(min(state.limits.maxBulkBytes, 1 << 20)) bytes")
        }
    }

    private func violation(_ msg: String) -> ProtocolError {
        let e = ProtocolError(msg)
        broken = e
        return e
    }

    private func fail() -> ProtocolError {
        let msg: String
        if let v = state.violation {
            msg = v
        } else {
            msg = String(cString: ro_reader_error(reader))
        }
        let e = ProtocolError(msg.isEmpty ? "invalid reply" : msg)
        broken = e
        return e
    }

    private func convert(_ r: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let rep = r.pointee
        switch rep.type {
        case REDIS_REPLY_STRING:
            return .bulk(bytes(rep.str, rep.len))
        case REDIS_REPLY_STATUS:
            return .simpleString(bytes(rep.str, rep.len))
        case REDIS_REPLY_ERROR:
            return .error(bytes(rep.str, rep.len))
        case REDIS_REPLY_INTEGER:
            return .integer(rep.integer)
        case REDIS_REPLY_NIL:
            // hiredis uses NIL for both the null bulk and the null array.
            return .bulk(nil)
        case REDIS_REPLY_ARRAY:
            var items: [RESPValue] = []
            items.reserveCapacity(rep.elements)
            for i in 0..<rep.elements {
                if let e = rep.element[i] { items.append(convert(e)) }
            }
            return .array(items)
        default:
            return .bulk(nil)
        }
    }

    @inline(__always)
    private func bytes(_ p: UnsafeMutablePointer<CChar>?, _ n: Int) -> Bytes {
        guard let p, n > 0 else { return [] }
        return UnsafeRawPointer(p).withMemoryRebound(to: UInt8.self, capacity: n) {
            Bytes(UnsafeBufferPointer(start: $0, count: n))
        }
    }
}
