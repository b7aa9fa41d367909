import RedisProtocol

/// Everything that can go wrong talking to Redis, each with one clear line for people.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Could not reach the server: refused, timed out, name not resolved, network down.
    case connect(endpoint: String, reason: String)
    /// TLS failed: certificate not trusted, host name mismatch, handshake failed.
    case tls(endpoint: String, reason: String)
    /// The server refused the credentials.
    case auth(String)
    /// A reply of type error, classified.
    case server(ServerError)
    /// The server sent something we refuse to parse; the connection is closed.
    case protocolViolation(String)
    /// The connection was closed (by the server, the network or us).
    case closed(String)
    /// A read or write took too long.
    case timeout(String)
    /// Bad options (exit status 2).
    case usage(String)

    public var description: String {
        switch self {
        case .connect(let ep, let r): return "cannot connect to \(ep): \(r)"
        case .tls(let ep, let r): return "TLS with \(ep) failed: \(r)"
        case .auth(let m): return "authentication failed: \(m)"
        case .server(let e): return "server error: \(e.message)"
        case .protocolViolation(let m): return "protocol error: \(m) (connection closed)"
        case .closed(let m): return "connection closed: \(m)"
        case .timeout(let m): return "timed out: \(m)"
        case .usage(let m): return m
        }
    }

    /// Worth retrying after a backoff (the server may come back); auth, TLS trust and usage errors are not.
    public var isTransient: Bool {
        switch self {
        case .connect, .closed, .timeout, .protocolViolation: return true
        case .server(let e): return e.kind == .loading || e.kind == .tryAgain || e.kind == .clusterDown || e.kind == .busy
        case .tls, .auth, .usage: return false
        }
    }
}
