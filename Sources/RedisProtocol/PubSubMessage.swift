/// A pub/sub message as received, stamped with the wall-clock time it arrived.
/// A pure value: the subscriber produces it, the tail stores it, views draw it.
public struct ReceivedMessage: Sendable, Equatable {
    public var channel: Bytes
    /// The pattern that matched (pmessage); nil for a plain channel subscription.
    public var pattern: Bytes?
    public var payload: Bytes
    /// Seconds since 1970 (UTC).
    public var receivedAt: Double
    /// True for a sharded channel message (smessage, Redis 7 SSUBSCRIBE).
    public var sharded: Bool
    public init(channel: Bytes, pattern: Bytes?, payload: Bytes, receivedAt: Double, sharded: Bool = false) {
        self.channel = channel; self.pattern = pattern; self.payload = payload; self.receivedAt = receivedAt; self.sharded = sharded
    }
}
