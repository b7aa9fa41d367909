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
        switch disposition { case .retry, .failover: return true; case .fatal, .redirect: return false }
    }

    /// The one classification of failures, used by listings, writes and the workers alike.
    public var disposition: Disposition {
        switch self {
        case .connect, .closed, .timeout, .protocolViolation: return .failover
        case .server(let e): return e.disposition
        case .tls, .auth, .usage: return .fatal
        }
    }
}

/// What to do about a failure.
public enum Disposition: Sendable, Equatable {
    /// Not carried out; the server asks for a moment (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN,
    /// MASTERDOWN): the same command may be sent again after a pause, within a deadline.
    case retry
    /// The connection is gone or no longer leads to a primary (a reply lost, a node down,
    /// READONLY after a failover): connect again (the slot map read again). A write sent on it
    /// has an unknown outcome until it is checked; it is never simply sent again.
    case failover
    /// Not carried out; the cluster names the node to ask (MOVED, ASK).
    case redirect
    /// Retrying cannot help: credentials, TLS trust, NOPERM, an unknown command, bad input.
    case fatal
}

extension ServerError {
    public var disposition: Disposition {
        switch kind {
        case .loading, .busy, .tryAgain, .clusterDown, .masterDown: return .retry
        case .readOnly: return .failover
        case .moved, .ask: return .redirect
        case .wrongPass, .noAuth, .noPerm, .unknownCommand, .wrongType, .other: return .fatal
        }
    }
}
