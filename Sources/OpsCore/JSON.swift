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
        var out = Bytes()
        out.reserveCapacity(128)
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the UTF-8 bytes of this value's JSON text.
    public func write(to out: inout Bytes) {
        switch self {
        case .null: out.append(contentsOf: JSON.nullBytes)
        case .bool(let b): out.append(contentsOf: b ? JSON.trueBytes : JSON.falseBytes)
        case .int(let i): JSON.appendInt(i, to: &out)
        case .double(let d):
            if d.isFinite {
                let s = d == d.rounded() && abs(d) < 1e15 ? String(format: "%.1f", d) : String(d)
                out.append(contentsOf: s.utf8)
            } else { out.append(contentsOf: JSON.nullBytes) }
        case .string(let s):
            var s = s
            s.withUTF8 { JSON.writeString($0, to: &out) }
        case .bytes(let b): b.withUnsafeBufferPointer { JSON.writeString($0, to: &out) }
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, v) in items.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; v.write(to: &out) }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                var k = k
                k.withUTF8 { JSON.writeString($0, to: &out) }
                out.append(UInt8(ascii: ":"))
                v.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static let nullBytes = Array("null".utf8), trueBytes = Array("true".utf8), falseBytes = Array("false".utf8)
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends an integer's JSON text (no allocation).
    public static func appendInt(_ i: Int64, to out: inout Bytes) {
        if i == 0 { out.append(UInt8(ascii: "0")); return }
        var v = i.magnitude
        if i < 0 { out.append(UInt8(ascii: "-")) }
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { buf in
            while v > 0 { buf[n] = UInt8(48 + v % 10); v /= 10; n += 1 }
            for j in stride(from: n - 1, through: 0, by: -1) { out.append(buf[j]) }
        }
    }

    /// Writes a JSON string. Valid UTF-8 passes through as bytes (escaped as JSON
    /// requires); each byte of an invalid sequence becomes `\u00XX`.
    public static func writeString(_ b: UnsafeBufferPointer<UInt8>, to out: inout Bytes) {
        out.append(UInt8(ascii: "\""))
        var i = 0
        let n = b.count
        var runStart = 0
        @inline(__always) func flush(_ upTo: Int) {
            if upTo > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: b[runStart..<upTo])) }
        }
        @inline(__always) func escaped(_ at: Int, _ len: Int, _ esc: () -> Void) {
            flush(at); esc(); runStart = at + len
        }
        while i < n {
            let c = b[i]
            if c >= 0x20 && c < 0x7F && c != 0x22 && c != 0x5C { i += 1; continue }
            if c < 0x80 {
                escaped(i, 1) {
                    switch c {
                    case 0x22: out.append(0x5C); out.append(0x22)
                    case 0x5C: out.append(0x5C); out.append(0x5C)
                    case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
                    case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
                    case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
                    default: u00(c, &out)
                    }
                }
                i += 1
                continue
            }
            let len = utf8SequenceLength(b, i)
            if len == 0 { escaped(i, 1) { u00(c, &out) }; i += 1; continue }
            // C1 controls, U+2028/2029 (they break JavaScript), and what would reorder or hide
            // text on a terminal (bidi controls, zero-width characters, tags) are escaped, so
            // `jq -r` never puts them on a screen.
            let cp = scalarValue(b, i, len)
            if isHiddenOrControl(cp) {
                escaped(i, len) {
                    if cp > 0xFFFF {
                        let v = cp - 0x10000
                        u4(0xD800 + (v >> 10), &out)
                        u4(0xDC00 + (v & 0x3FF), &out)
                    } else {
                        u4(cp, &out)
                    }
                }
                i += len
                continue
            }
            i += len
        }
        flush(n)
        out.append(UInt8(ascii: "\""))
    }

    @inline(__always) private static func u4(_ cp: UInt32, _ out: inout Bytes) {
        out.append(contentsOf: [0x5C, UInt8(ascii: "u")])
        for shift in [12, 8, 4, 0] { out.append(hex[Int((cp >> UInt32(shift)) & 15)]) }
    }

    @inline(__always) static func scalarValue(_ b: UnsafeBufferPointer<UInt8>, _ i: Int, _ len: Int) -> UInt32 {
        let c = b[i]
        switch len {
        case 2: return UInt32(c & 0x1F) << 6 | UInt32(b[i+1] & 0x3F)
        case 3: return UInt32(c & 0x0F) << 12 | UInt32(b[i+1] & 0x3F) << 6 | UInt32(b[i+2] & 0x3F)
        default: return UInt32(c & 0x07) << 18 | UInt32(b[i+1] & 0x3F) << 12 | UInt32(b[i+2] & 0x3F) << 6 | UInt32(b[i+3] & 0x3F)
        }
    }

    @inline(__always) static func isHiddenOrControl(_ v: UInt32) -> Bool { isHiddenOrControlScalar(v) }

    @inline(__always) private static func u00(_ x: UInt8, _ out: inout Bytes) {
        out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(x >> 4)], hex[Int(x & 15)]])
    }

    public static func writeString(_ b: Bytes, to out: inout Bytes) {
        b.withUnsafeBufferPointer { writeString($0, to: &out) }
    }

    public static func stringLiteral(_ b: Bytes) -> String { var o = Bytes(); writeString(b, to: &o); return String(decoding: o, as: UTF8.self) }
}

/// Scalars that are printable by wcwidth's account but dangerous or invisible on a terminal,
/// and the C1 controls: bidi controls (they reorder what follows), zero-width characters,
/// line and paragraph separators, tags. The console shows them escaped, and `--json` writes
/// them as \uXXXX, so neither puts them on a screen.
@inline(__always)
public func isHiddenOrControlScalar(_ v: UInt32) -> Bool {
    switch v {
    case 0x80...0x9F: return true                                   // C1 controls
    case 0x00AD, 0x061C, 0x180E: return true                        // soft hyphen, Arabic letter mark, Mongolian vowel separator
    case 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2069, 0xFEFF: return true  // zero-width, separators, bidi
    case 0xFFF9...0xFFFB: return true                               // interlinear annotation
    case 0xE0000...0xE007F: return true                             // tags
    default: return false
    }
}

/// Length of the valid UTF-8 sequence starting at `i`, or 0 if the bytes there are invalid
/// (overlongs, surrogates and values above U+10FFFF are invalid).
@inline(__always)
public func utf8SequenceLength(_ b: Bytes, _ i: Int) -> Int {
    b.withUnsafeBufferPointer { utf8SequenceLength($0, i) }
}

@inline(__always)
public func utf8SequenceLength(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
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
    let totalMs = Int64((unixSeconds * 1000).rounded())
    var t = time_t(totalMs / 1000)
    let ms = Int(totalMs % 1000)
    var tmv = tm()
    gmtime_r(&t, &tmv)
    return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
                  tmv.tm_hour, tmv.tm_min, tmv.tm_sec, ms)
}
