import RedisClient
import RedisProtocol

/// Fills a test server fast: commands are sent in pipelines of `batch`, and `flush()` sends
/// what is left (call it last).
public final class BulkLoader {
    private let conn: RedisConnection
    private let batch: Int
    private var cmds: [[Bytes]] = []

    public init(_ conn: RedisConnection, batch: Int = 10_000) {
        self.conn = conn
        self.batch = batch
    }

    public func add(_ args: String...) throws {
        cmds.append(args.map { Bytes(utf8: $0) })
        if cmds.count >= batch { try flush() }
    }

    public func flush() throws {
        guard !cmds.isEmpty else { return }
        _ = try conn.pipeline(cmds)
        cmds.removeAll(keepingCapacity: true)
    }
}
