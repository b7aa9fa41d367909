import Foundation

/// One fixture shared by the tests of a class, made on first use. If it cannot be made,
/// every test that asks for it fails with the reason, instead of the whole test process
/// crashing on a forced `try`.
public final class Shared<T>: @unchecked Sendable {
    private let lock = NSLock()
    private let make: () throws -> T
    private var made: Result<T, Error>?

    public init(_ make: @escaping () throws -> T) { self.make = make }

    public func get() throws -> T {
        lock.lock(); defer { lock.unlock() }
        if made == nil { made = Result { try make() } }
        return try made!.get()
    }

    /// Runs `body` on the fixture if it was made (for tearDown).
    public func ifMade(_ body: (T) -> Void) {
        lock.lock(); defer { lock.unlock() }
        if case .success(let v)? = made { body(v) }
    }
}

/// Parses NDJSON lines into dictionaries; a line that is not a JSON object is an error.
public func ndjson(_ s: String) throws -> [[String: Any]] {
    try s.split(separator: "\n").map { line in
        guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { throw TestSupportError("not an object: \(line)") }
        return o
    }
}

/// The `done` records of an audit log (what readers take: a write's `intent` comes first,
/// with the same id), as dictionaries.
public func doneRecords(_ path: String) throws -> [[String: Any]] {
    try ndjson(try String(contentsOfFile: path, encoding: .utf8)).filter { ($0["phase"] as? String) == "done" }
}

/// Waits until `cond` holds (polling every 20 ms); throws with `what` after `timeout` seconds.
public func waitUntil(_ what: String, timeout: Double = 10, _ cond: () throws -> Bool) throws {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if try cond() { return }
        usleep(20_000)
    }
    throw TestSupportError("timed out after \(timeout) s waiting for \(what)")
}

extension RedisServer {
    /// Waits until `channel` has `count` plain subscribers (PUBSUB NUMSUB): a subscriber
    /// started in the background is really listening, not merely started.
    public func waitForSubscribers(_ channel: String, count: Int = 1, timeout: Double = 10) throws {
        try waitUntil("\(count) subscriber(s) on \(channel)", timeout: timeout) {
            try cli(["PUBSUB", "NUMSUB", channel]).split(separator: "\n").last.flatMap { Int($0) } ?? 0 >= count
        }
    }
}

/// A file of this repository (README.md, …), read as text: documentation the tests hold to its word.
public func repositoryText(_ path: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
}

/// The text of the first fenced block after `marker` (without the fence line).
public func fencedBlock(in text: String, after marker: String) throws -> String {
    guard let m = text.range(of: marker) else { throw TestSupportError("no '\(marker)'") }
    let from = text[m.lowerBound...]
    let start = from.hasPrefix("```") ? from.firstIndex(of: "\n").map { text.index(after: $0) } : m.upperBound
    guard let s = start, let e = text.range(of: "```", range: s..<text.endIndex) else { throw TestSupportError("no block after '\(marker)'") }
    return String(text[s..<e.lowerBound])
}
