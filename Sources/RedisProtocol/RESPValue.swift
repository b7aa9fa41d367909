/// Raw bytes: keys, values and channel names are bytes, never assumed to be text.
public typealias Bytes = [UInt8]

extension Array where Element == UInt8 {
    /// The bytes of a Swift string (UTF-8).
    @inlinable public init(utf8 s: String) { self = Array(s.utf8) }
    /// Lossy text, for messages meant for people; never use it for keys sent back to Redis.
    public var lossyString: String { String(decoding: self, as: UTF8.self) }
    /// The text if these bytes are valid UTF-8.
    public var utf8String: String? { String(validating: self, as: UTF8.self) }
    public func hasPrefix(_ p: Bytes) -> Bool { count >= p.count && self[0..<p.count].elementsEqual(p) }
}

/// One RESP2 reply.
public enum RESPValue: Sendable, Equatable, Hashable {
    case simpleString(Bytes)
    case error(Bytes)
    case integer(Int64)
    /// A bulk string; `nil` is the null bulk string.
    case bulk(Bytes?)
    /// An array; `nil` is the null array.
    case array([RESPValue]?)

    public var bytes: Bytes? {
        switch self {
        case .simpleString(let b), .error(let b): return b
        case .bulk(let b): return b
        case .integer(let i): return Bytes(utf8: String(i))
        case .array: return nil
        }
    }
    public var string: String? { bytes?.lossyString }
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .bulk(let b?), .simpleString(let b): return Int64(b.lossyString)
        default: return nil
        }
    }
    public var array: [RESPValue]? { if case .array(let a?) = self { return a }; return nil }
    public var isNull: Bool {
        switch self { case .bulk(nil), .array(nil): return true; default: return false }
    }
    public var errorReply: ServerError? { if case .error(let b) = self { return ServerError(b.lossyString) }; return nil }
}

/// An error reply from the server, classified by its code (the first word).
public struct ServerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case wrongPass, noAuth, noPerm, loading, readOnly, unknownCommand, moved, ask, tryAgain, clusterDown, masterDown, busy, wrongType, other
    }
    public let code: String
    public let message: String
    public let kind: Kind

    public init(_ line: String) {
        let line = line.trimmingTrailingNewlines
        let code = line.split(separator: " ", maxSplits: 1).first.map(String.init) ?? line
        self.code = code
        self.message = line
        switch code {
        case "WRONGPASS": kind = .wrongPass
        case "NOAUTH": kind = .noAuth
        case "NOPERM": kind = .noPerm
        case "LOADING": kind = .loading
        case "READONLY": kind = .readOnly
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        case "TRYAGAIN": kind = .tryAgain
        case "CLUSTERDOWN": kind = .clusterDown
        case "BUSY": kind = .busy
        case "MASTERDOWN": kind = .masterDown
        case "WRONGTYPE": kind = .wrongType
        case "ERR":
            if line.contains("unknown command") || line.contains("unknown subcommand") { kind = .unknownCommand }
            else if line.contains("invalid password") || line.contains("invalid username-password") { kind = .wrongPass }
            else { kind = .other }
        default: kind = .other
        }
    }
    /// A command that is disabled (renamed away, as on ElastiCache) or not permitted for this user.
    public var isNotAllowed: Bool { kind == .unknownCommand || kind == .noPerm }
    public var description: String { message }
}

extension String {
    var trimmingTrailingNewlines: String {
        var s = Substring(self)
        while let l = s.last, l == "\n" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

/// What a TTL reply means (TTL / PTTL).
public enum TTLState: Sendable, Equatable, Hashable {
    case gone              // -2: the key does not exist (any more)
    case persistent        // -1: no expiry
    case expiresIn(ms: Int64)

    public init(pttl: Int64) {
        switch pttl {
        case -2: self = .gone
        case ..<0: self = .persistent
        default: self = .expiresIn(ms: pttl)
        }
    }
    /// The value used in JSON output: −1 for no expiry.
    public var jsonMilliseconds: Int64 {
        switch self { case .gone: return -2; case .persistent: return -1; case .expiresIn(let ms): return ms }
    }
}
