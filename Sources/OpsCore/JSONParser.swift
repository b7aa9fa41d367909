import RedisProtocol

/// A small, strict JSON parser over bytes (for payloads and cache values: pretty
/// printing, compacting and field filters). Depth and size are bounded.
public struct JSONParser {
    public static func parse(_ b: Bytes, maxDepth: Int = 64) -> JSON? {
        b.withUnsafeBufferPointer { buf in
            var p = JSONParser(buf: buf, maxDepth: maxDepth)
            p.skipWS()
            guard let v = p.value(depth: 0) else { return nil }
            p.skipWS()
            return p.i == buf.count ? v : nil
        }
    }

    let buf: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var i = 0
    init(buf: UnsafeBufferPointer<UInt8>, maxDepth: Int) { self.buf = buf; self.maxDepth = maxDepth }

    mutating func skipWS() {
        while i < buf.count, buf[i] == 0x20 || buf[i] == 0x0A || buf[i] == 0x0D || buf[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) -> JSON? {
        guard i < buf.count, depth <= maxDepth else { return nil }
        switch buf[i] {
        case UInt8(ascii: "{"):
            i += 1
            var fields: [(String, JSON)] = []
            skipWS()
            if i < buf.count, buf[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
            while true {
                skipWS()
                guard i < buf.count, buf[i] == UInt8(ascii: "\""), let k = string() else { return nil }
                skipWS()
                guard i < buf.count, buf[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                skipWS()
                guard let v = value(depth: depth + 1) else { return nil }
                fields.append((k.lossyString, v))
                skipWS()
                guard i < buf.count else { return nil }
                if buf[i] == UInt8(ascii: ",") { i += 1; continue }
                if buf[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                return nil
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSON] = []
            skipWS()
            if i < buf.count, buf[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipWS()
                guard let v = value(depth: depth + 1) else { return nil }
                items.append(v)
                skipWS()
                guard i < buf.count else { return nil }
                if buf[i] == UInt8(ascii: ",") { i += 1; continue }
                if buf[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                return nil
            }
        case UInt8(ascii: "\""):
            return string().map { .bytes($0) }
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    mutating func literal(_ s: StaticString, _ v: JSON) -> JSON? {
        let n = s.utf8CodeUnitCount
        guard i + n <= buf.count else { return nil }
        for j in 0..<n where buf[i + j] != s.utf8Start[j] { return nil }
        i += n
        return v
    }

    mutating func number() -> JSON? {
        let start = i
        if i < buf.count, buf[i] == UInt8(ascii: "-") { i += 1 }
        var isInt = true
        while i < buf.count {
            let c = buf[i]
            if c >= 48 && c <= 57 { i += 1; continue }
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                isInt = false; i += 1; continue
            }
            break
        }
        guard i > start else { return nil }
        let text = String(decoding: UnsafeBufferPointer(rebasing: buf[start..<i]), as: UTF8.self)
        if isInt, let v = Int64(text) { return .int(v) }
        if let d = Double(text) { return .double(d) }
        return nil
    }

    /// A string's bytes with JSON escapes decoded (invalid escapes fail the parse).
    mutating func string() -> Bytes? {
        i += 1
        var out = Bytes()
        while i < buf.count {
            let c = buf[i]
            if c == UInt8(ascii: "\"") { i += 1; return out }
            if c < 0x20 { return nil }
            if c == UInt8(ascii: "\\") {
                guard i + 1 < buf.count else { return nil }
                let e = buf[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var cp = hex4() else { return nil }
                    if (0xD800...0xDBFF).contains(cp), i + 1 < buf.count, buf[i] == UInt8(ascii: "\\"), buf[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        guard let lo = hex4(), (0xDC00...0xDFFF).contains(lo) else { return nil }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    if cp < 0x80 && cp != 0 { out.append(UInt8(cp)) }
                    else if let s = Unicode.Scalar(cp) { out.append(contentsOf: Array(String(Character(s)).utf8)) }
                    else if cp == 0 { out.append(0) }
                    else { out.append(contentsOf: [0xEF, 0xBF, 0xBD]) }  // lone surrogate
                default: return nil
                }
                continue
            }
            out.append(c)
            i += 1
        }
        return nil
    }

    mutating func hex4() -> UInt32? {
        guard i + 4 <= buf.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[i]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: return nil
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}

extension JSON {
    /// A top-level field of an object, by name; dotted paths descend (`data.user.id`).
    public func field(_ path: String) -> JSON? {
        var cur: JSON = self
        for part in path.split(separator: ".") {
            guard case .object(let fields) = cur, let v = fields.first(where: { $0.0 == part })?.1 else { return nil }
            cur = v
        }
        return cur
    }

    /// The value as a comparison string: strings unquoted, numbers and literals as written.
    public var scalarText: String? {
        switch self {
        case .string(let s): return s
        case .bytes(let b): return b.lossyString
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        default: return nil
        }
    }

    /// Pretty-printed lines, indented by two spaces, each line paired with its depth.
    public func prettyLines(indent: Int = 0, key: String? = nil, trailingComma: Bool = false) -> [String] {
        let pad = String(repeating: "  ", count: indent)
        let head = pad + (key.map { JSON.stringLiteral(Bytes(utf8: $0)) + ": " } ?? "")
        let comma = trailingComma ? "," : ""
        switch self {
        case .object(let fields):
            if fields.isEmpty { return [head + "{}" + comma] }
            var out = [head + "{"]
            for (i, (k, v)) in fields.enumerated() {
                out += v.prettyLines(indent: indent + 1, key: k, trailingComma: i < fields.count - 1)
            }
            out.append(pad + "}" + comma)
            return out
        case .array(let items):
            if items.isEmpty { return [head + "[]" + comma] }
            var out = [head + "["]
            for (i, v) in items.enumerated() {
                out += v.prettyLines(indent: indent + 1, trailingComma: i < items.count - 1)
            }
            out.append(pad + "]" + comma)
            return out
        default:
            return [head + serialized() + comma]
        }
    }
}
