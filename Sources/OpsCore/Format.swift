import Foundation
import RedisProtocol

/// 4m59s, 1h02m, 3d4h, 850ms
public func formatDuration(_ ms: Int64) -> String {
    if ms < 1000 { return "\(max(0, ms))ms" }
    let s = ms / 1000
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    if s < 86400 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    return "\(s / 86400)d\((s % 86400) / 3600)h"
}

/// A TTL for people: "none" (no expiry), "4m59s", "expired", "gone", "?" (unknown);
/// `elapsedMs` counts down locally from the PTTL that was read.
public func formatTTL(_ t: TTLState?, elapsedMs: Int64 = 0) -> String {
    switch t {
    case .persistent?: return "none"
    case .expiresIn(let ms)?: return ms - elapsedMs <= 0 ? "expired" : formatDuration(ms - elapsedMs)
    case .gone?: return "gone"
    case nil: return "?"
    }
}

/// Milliseconds since a reading taken at `readAt` (wall-clock seconds).
public func elapsedMs(since readAt: Double, now: Double) -> Int64 { Int64(max(0, now - readAt) * 1000) }

/// 93 B, 1.2 KB, 4.5 MB
public func formatBytes(_ n: Int64) -> String {
    if n < 1024 { return "\(n) B" }
    let units = ["KB", "MB", "GB", "TB"]
    var v = Double(n) / 1024
    var u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return v < 10 ? String(format: "%.1f %@", v, units[u]) : String(format: "%.0f %@", v, units[u])
}

extension StringProtocol {
    /// The lines of a server's text reply (INFO ends its lines in CR LF, which Swift counts
    /// as one character, so splitting on "\n" alone would not split them).
    public var replyLines: [Substring] {
        String(self).split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" })
    }
}
