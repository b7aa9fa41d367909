import Foundation
import RedisProtocol

/// A JSON value with ordered object fields (output is meant for people and scripts alike).
public indirect enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    /// Bytes from the server: valid UTF-8 is written as text, invalid bytes as `\u00XX`.
    case bytes(Bytes)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.serialized() == b.serialized() }

    public func serialized() -> String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isFinite { out += d == d.rounded() && abs(d) < 1e15 ? String(format: "%.1f", d) : String(d) } else { out += "null" }
        case .string(let s): JSON.writeString(Array(s.utf8), to: &out)
        case .bytes(let b): JSON.writeString(b, to: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() { if i > 0 { out += "," }; v.write(to: &out) }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out += "," }
                JSON.writeString(Array(k.utf8), to: &out)
                out += ":"
                v.write(to: &out)
            }
            out += "}"
        }
    }

    private static let hex: [Character] = Array("0123456789abcdef")

    /// Writes a JSON string. Valid UTF-8 sequences pass through (escaped as JSON
    /// requires); each byte of an invalid sequence becomes `\u00XX`.
    public static func writeString(_ b: Bytes, to out: inout String) {
        out += "\""
        var i = 0
        let n = b.count
        var scalars = String.UnicodeScalarView()
        func flushScalars() { if !scalars.isEmpty { out += String(scalars); scalars = String.UnicodeScalarView() } }
        func u00(_ x: UInt8) {
            flushScalars()
            out += "\\u00"; out.append(hex[Int(x >> 4)]); out.append(hex[Int(x & 15)])
        }
        while i < n {
            let c = b[i]
            if c < 0x80 {
                switch c {
                case 0x22: flushScalars(); out += "\\\""
                case 0x5C: flushScalars(); out += "\\\\"
                case 0x0A: flushScalars(); out += "\\n"
                case 0x0D: flushScalars(); out += "\\r"
                case 0x09: flushScalars(); out += "\\t"
                case 0x08: flushScalars(); out += "\\b"
                case 0x0C: flushScalars(); out += "\\f"
                case 0..<0x20, 0x7F: u00(c)
                default: scalars.append(Unicode.Scalar(c))
                }
                i += 1
                continue
            }
            let len = utf8SequenceLength(b, i)
            if len == 0 { u00(c); i += 1; continue }
            var v: UInt32 = 0
            switch len {
            case 2: v = UInt32(c & 0x1F) << 6 | UInt32(b[i+1] & 0x3F)
            case 3: v = UInt32(c & 0x0F) << 12 | UInt32(b[i+1] & 0x3F) << 6 | UInt32(b[i+2] & 0x3F)
            default: v = UInt32(c & 0x07) << 18 | UInt32(b[i+1] & 0x3F) << 12 | UInt32(b[i+2] & 0x3F) << 6 | UInt32(b[i+3] & 0x3F)
            }
            if v == 0x2028 || v == 0x2029 || (v >= 0x80 && v < 0xA0) {
                flushScalars(); out += String(format: "\\u%04x", v)
            } else {
                scalars.append(Unicode.Scalar(v)!)
            }
            i += len
        }
        flushScalars()
        out += "\""
    }

    public static func stringLiteral(_ b: Bytes) -> String { var s = ""; writeString(b, to: &s); return s }
}

/// Length of the valid UTF-8 sequence starting at `i`, or 0 if the bytes there are invalid
/// (overlongs, surrogates and values above U+10FFFF are invalid).
@inline(__always)
public func utf8SequenceLength(_ b: Bytes, _ i: Int) -> Int {
    let n = b.count
    let c = b[i]
    func cont(_ j: Int) -> Bool { j < n && b[j] & 0xC0 == 0x80 }
    switch c {
    case 0x00...0x7F: return 1
    case 0xC2...0xDF: return cont(i+1) ? 2 : 0
    case 0xE0: return i+1 < n && (0xA0...0xBF).contains(b[i+1]) && cont(i+2) ? 3 : 0
    case 0xE1...0xEC, 0xEE...0xEF: return cont(i+1) && cont(i+2) ? 3 : 0
    case 0xED: return i+1 < n && (0x80...0x9F).contains(b[i+1]) && cont(i+2) ? 3 : 0
    case 0xF0: return i+1 < n && (0x90...0xBF).contains(b[i+1]) && cont(i+2) && cont(i+3) ? 4 : 0
    case 0xF1...0xF3: return cont(i+1) && cont(i+2) && cont(i+3) ? 4 : 0
    case 0xF4: return i+1 < n && (0x80...0x8F).contains(b[i+1]) && cont(i+2) && cont(i+3) ? 4 : 0
    default: return 0
    }
}

extension Array where Element == UInt8 {
    public var isValidUTF8: Bool {
        var i = 0
        while i < count {
            if self[i] < 0x80 { i += 1; continue }
            let l = utf8SequenceLength(self, i)
            if l == 0 { return false }
            i += l
        }
        return true
    }
    public var base64: String { Data(self).base64EncodedString() }
}

/// ISO 8601 UTC with milliseconds: 2026-11-26T16:00:00.123Z
public func isoTimestamp(_ unixSeconds: Double) -> String {
    var t = time_t(unixSeconds.rounded(.down))
    var ms = Int(((unixSeconds - Double(t)) * 1000).rounded(.down))
    if ms >= 1000 { ms = 999 }
    var tmv = tm()
    gmtime_r(&t, &tmv)
    return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
                  tmv.tm_hour, tmv.tm_min, tmv.tm_sec, ms)
}
