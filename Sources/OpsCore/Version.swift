/// The release, as `redis-ops --version` prints it (and the audit log records it).
public enum RedisOpsVersion {
    public static let current = "0.3.0"
}
