import CWidth
import RedisProtocol
import OpsCore
#if canImport(Glibc)
import Glibc
#endif

/// A run of display text: either the server's own (printable) text, or an escape we
/// made for bytes that must not reach the terminal as they are.
public struct TextRun: Sendable, Equatable {
    public var text: String
    public var isEscape: Bool
    /// A role of its own (syntax colouring); nil means the caller's.
    public var role: Role?
    public init(_ text: String, isEscape: Bool = false, role: Role? = nil) { self.text = text; self.isEscape = isEscape; self.role = role }
}

private let localeReady: Bool = {
    // wcwidth needs a UTF-8 LC_CTYPE; keep the user's if it is one, else use C.UTF-8.
    let cur = setlocale(LC_CTYPE, nil).map { String(cString: $0) } ?? "C"
    if !(cur.uppercased().contains("UTF-8") || cur.uppercased().contains("UTF8")) {
        if setlocale(LC_CTYPE, "C.UTF-8") == nil { _ = setlocale(LC_CTYPE, "en_US.UTF-8") }
    }
    return true
}()

/// Makes sure LC_CTYPE is UTF-8 (call once before ncurses starts).
public func prepareLocale() { _ = localeReady }

/// Terminal columns a scalar occupies: -1 if it is not printable.
@inline(__always)
public func scalarWidth(_ v: UInt32) -> Int {
    if v < 0x20 || v == 0x7F { return -1 }
    if v < 0x7F { return 1 }
    _ = localeReady
    return Int(wcwidth(wchar_t(bitPattern: v)))
}

/// What the terminal must not get as it is (shared with the JSON writer).
@inline(__always)
func mustEscape(_ v: UInt32) -> Bool { isHiddenOrControlScalar(v) }

/// Escaping of untrusted bytes for the terminal. Controls (C0, DEL, C1), invalid
/// UTF-8, bidi overrides and zero-width characters become visible escapes such as
/// `\e`, `\x9b`, `\u202e`; a backslash is doubled so that escapes stay unambiguous.
public enum Escaper {
    public static func runs(_ b: Bytes, maxScalars: Int = .max, escapeBackslash: Bool = true) -> [TextRun] {
        var out: [TextRun] = []
        var plain = String.UnicodeScalarView()
        var esc = ""
        var count = 0
        var combiners = 0
        var prevPrintable = false
        func flushPlain() { if !plain.isEmpty { out.append(TextRun(String(plain))); plain = String.UnicodeScalarView() } }
        func flushEsc() { if !esc.isEmpty { out.append(TextRun(esc, isEscape: true)); esc = "" } }
        func escape(_ s: String) { flushPlain(); esc += s; prevPrintable = false; combiners = 0 }
        func keep(_ u: Unicode.Scalar) { flushEsc(); plain.append(u) }
        var i = 0
        let n = b.count
        while i < n && count < maxScalars {
            count += 1
            let c = b[i]
            if c < 0x80 {
                i += 1
                switch c {
                case 0x0A: escape("\\n")
                case 0x09: escape("\\t")
                case 0x0D: escape("\\r")
                case 0x1B: escape("\\e")
                case 0x5C: flushEsc(); plain.append("\\"); if escapeBackslash { plain.append("\\") }; prevPrintable = true; combiners = 0
                case 0..<0x20, 0x7F: escape("\\x" + hex2(c))
                default: keep(Unicode.Scalar(c)); prevPrintable = true; combiners = 0
                }
                continue
            }
            let len = utf8SequenceLength(b, i)
            if len == 0 { escape("\\x" + hex2(c)); i += 1; continue }
            var v: UInt32
            switch len {
            case 2: v = UInt32(c & 0x1F) << 6 | UInt32(b[i+1] & 0x3F)
            case 3: v = UInt32(c & 0x0F) << 12 | UInt32(b[i+1] & 0x3F) << 6 | UInt32(b[i+2] & 0x3F)
            default: v = UInt32(c & 0x07) << 18 | UInt32(b[i+1] & 0x3F) << 12 | UInt32(b[i+2] & 0x3F) << 6 | UInt32(b[i+3] & 0x3F)
            }
            i += len
            let w = scalarWidth(v)
            if mustEscape(v) || w < 0 {
                escape(v <= 0xFFFF ? "\\u" + hex4(v) : "\\U" + hex8(v))
            } else if w == 0 {
                // Combining marks only on a printable base, and not piled up (no "zalgo" towers).
                if prevPrintable && combiners < 3 { keep(Unicode.Scalar(v)!); combiners += 1 }
                else { escape(v <= 0xFFFF ? "\\u" + hex4(v) : "\\U" + hex8(v)) }
            } else {
                keep(Unicode.Scalar(v)!); prevPrintable = true; combiners = 0
            }
        }
        flushPlain(); flushEsc()
        return out
    }

    /// The escaped text as one string (escapes inline).
    public static func string(_ b: Bytes, maxScalars: Int = .max, escapeBackslash: Bool = true) -> String {
        runs(b, maxScalars: maxScalars, escapeBackslash: escapeBackslash).map(\.text).joined()
    }

    public static func string(_ s: String, maxScalars: Int = .max) -> String { string(Bytes(utf8: s), maxScalars: maxScalars) }

    static let hexDigits: [Character] = Array("0123456789abcdef")
    static func hex2(_ c: UInt8) -> String { String([hexDigits[Int(c >> 4)], hexDigits[Int(c & 15)]]) }
    static func hex4(_ v: UInt32) -> String { String((0..<4).reversed().map { hexDigits[Int((v >> (UInt32($0) * 4)) & 15)] }) }
    static func hex8(_ v: UInt32) -> String { String((0..<8).reversed().map { hexDigits[Int((v >> (UInt32($0) * 4)) & 15)] }) }
}

/// Display width of already-escaped (printable) text.
public func displayWidth(_ s: String) -> Int {
    var w = 0
    for u in s.unicodeScalars { w += max(0, scalarWidth(u.value)) }
    return w
}
