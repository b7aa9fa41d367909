#if canImport(Glibc)
import Glibc
#endif
import Foundation
import COpenSSL
import RedisProtocol

/// TLS settings. Verification of the chain and the host name is on unless `insecure`.
public struct TLSSettings: Sendable, Equatable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    /// Server name for SNI and the host-name check (default: the host connected to).
    public var serverName: String?
    public var insecure: Bool
    /// Why TLS is on, when the operator did not ask for it on the command line
    /// (`NODE_ENV=production`): named in any TLS error, with the way to turn it off.
    public var because: String?
    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil, insecure: Bool = false) {
        self.caFile = caFile; self.certFile = certFile; self.keyFile = keyFile
        self.serverName = serverName; self.insecure = insecure
    }
}

public struct Timeouts: Sendable, Equatable {
    public var connect: Double
    public var io: Double
    public init(connect: Double = 5, io: Double = 10) { self.connect = connect; self.io = io }
}

private let ignoreSigpipeOnce: Void = { signal(SIGPIPE, SIG_IGN); return () }()

public func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

/// A connected byte stream: TCP, optionally wrapped in TLS. Blocking semantics with
/// deadlines, built on a non-blocking socket and poll(2).
///
/// `@unchecked Sendable`: the TLS session and the closed flag change without a lock; safe
/// because its connection's single owner is the only caller.
public final class Transport: @unchecked Sendable {
    public let fd: Int32
    public let endpoint: String
    /// Through a bastion: the `ssh -W` child whose stream this is.
    private let stream: SSHStream?
    private var ssl: OpaquePointer?
    private var ctx: OpaquePointer?
    private var isClosed = false

    public var isTLS: Bool { ssl != nil }
    /// Through a bastion.
    public var isViaSSH: Bool { stream != nil }

    /// What the TLS handshake agreed and showed (for doctor): the protocol, the name checked,
    /// the certificate's subject and issuer, and days until it expires. Nil without TLS.
    public struct TLSFacts: Sendable, Equatable {
        public var protocolVersion: String
        public var checkedName: String?
        public var subject: String
        public var issuer: String
        public var daysLeft: Int?
    }
    public private(set) var tlsFacts: TLSFacts?

    /// Why a stream through the bastion ended (ssh's words), nil for a direct connection.
    public func viaExplanation() -> String? { stream?.explainEnd() }

    /// Connects to host:port (trying each resolved address) — or, through a bastion, to what
    /// `ssh -W host:port` reaches from there (the name resolved on the far side) — then
    /// performs the TLS handshake if asked, checked against the node's own name either way.
    public init(host: String, port: Int, tls: TLSSettings?, timeouts: Timeouts, via: SSHHop? = nil) throws {
        _ = ignoreSigpipeOnce
        let endpoint = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.endpoint = endpoint
        if let via {
            let st = try via.open(host: host, port: port)
            stream = st
            fd = st.fd
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        } else {
            stream = nil
            fd = try Transport.connectTCP(host: host, port: port, endpoint: endpoint, timeout: timeouts.connect)
        }
        if let tls {
            do {
                try startTLS(host: host, settings: tls, timeout: timeouts.connect)
            } catch {
                closeNow()
                throw error
            }
        }
    }

    deinit { closeNow() }

    private static func connectTCP(host: String, port: Int, endpoint: String, timeout: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &res)
        if rc != 0 {
            let why: String
            switch rc {
            case EAI_NONAME: why = "host name '\(host)' not resolved (unknown host)"
            case EAI_AGAIN: why = "host name '\(host)' not resolved (temporary DNS failure)"
            default: why = "host name '\(host)' not resolved (\(String(cString: gai_strerror(rc))))"
            }
            throw RedisError.connect(endpoint: endpoint, reason: why)
        }
        defer { freeaddrinfo(res) }
        var lastError = RedisError.connect(endpoint: endpoint, reason: "no usable address")
        var ai = res
        let deadline = monotonicNow() + timeout
        while let a = ai {
            ai = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            if s < 0 { lastError = .connect(endpoint: endpoint, reason: errnoText(errno)); continue }
            _ = fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK)
            var rc = Glibc.connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if rc != 0 && errno == EINPROGRESS {
                var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
                var waited: Int32 = 0
                repeat {
                    let ms = Int32(max(0, (deadline - monotonicNow()) * 1000))
                    waited = poll(&p, 1, ms)
                } while waited < 0 && errno == EINTR
                if waited == 0 {
                    Glibc.close(s)
                    lastError = .connect(endpoint: endpoint, reason: "connection timed out after \(formatSeconds(timeout))")
                    continue
                }
                var soerr: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len)
                rc = soerr == 0 ? 0 : -1
                errno = soerr
            }
            if rc != 0 {
                let e = errno
                Glibc.close(s)
                let why: String
                switch e {
                case ECONNREFUSED: why = "connection refused (is redis-server listening on that port?)"
                case ETIMEDOUT: why = "connection timed out"
                case EHOSTUNREACH: why = "host unreachable"
                case ENETUNREACH: why = "network unreachable"
                default: why = errnoText(e)
                }
                lastError = .connect(endpoint: endpoint, reason: why)
                continue
            }
            var one: Int32 = 1
            setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
            // Backstops under the application's own checks (PING, reply timeouts): a silent peer is
            // probed after 10 s idle, and data left unacknowledged for 15 s fails the socket.
            var idle: Int32 = 10, intvl: Int32 = 5, cnt: Int32 = 3, userTimeout: Int32 = 15_000
            setsockopt(s, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(s, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &intvl, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(s, Int32(IPPROTO_TCP), TCP_KEEPCNT, &cnt, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(s, Int32(IPPROTO_TCP), Int32(TCP_USER_TIMEOUT), &userTimeout, socklen_t(MemoryLayout<Int32>.size))
            var rcvbuf: Int32 = 1 << 20
            setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, socklen_t(MemoryLayout<Int32>.size))
            return s
        }
        throw lastError
    }

    // MARK: TLS

    private static func isIPAddress(_ h: String) -> Bool {
        var a4 = in_addr(), a6 = in6_addr()
        return inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1
    }

    private static func opensslErrors() -> String {
        var parts: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            if let r = ERR_reason_error_string(e) { parts.append(String(cString: r)) }
            else { parts.append("error \(e)") }
        }
        return parts.joined(separator: "; ")
    }

    private func startTLS(host: String, settings: TLSSettings, timeout: Double) throws {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw RedisError.tls(endpoint: endpoint, reason: "cannot create TLS context: \(Transport.opensslErrors())")
        }
        self.ctx = ctx
        _ = ro_SSL_CTX_set_min_proto_version(ctx, ro_TLS1_2_VERSION())
        _ = ro_SSL_CTX_set_mode(ctx, ro_SSL_MODE_ENABLE_PARTIAL_WRITE() | ro_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER())
        if settings.insecure {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if let ca = settings.caFile {
                guard FileManager.default.isReadableFile(atPath: ca) else {
                    throw RedisError.tls(endpoint: endpoint, reason: "CA file '\(ca)' cannot be read")
                }
                ERR_clear_error()
                if SSL_CTX_load_verify_locations(ctx, ca, nil) != 1 {
                    throw RedisError.tls(endpoint: endpoint, reason: "CA file '\(ca)' is not a valid PEM certificate bundle (\(Transport.opensslErrors()))")
                }
            } else {
                SSL_CTX_set_default_verify_paths(ctx)
            }
        }
        if let cert = settings.certFile {
            ERR_clear_error()
            if SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 {
                throw RedisError.tls(endpoint: endpoint, reason: "client certificate '\(cert)' cannot be loaded (\(Transport.opensslErrors()))")
            }
            let key = settings.keyFile ?? cert
            ERR_clear_error()
            if SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 {
                throw RedisError.tls(endpoint: endpoint, reason: "client key '\(key)' cannot be loaded (\(Transport.opensslErrors()))")
            }
            if SSL_CTX_check_private_key(ctx) != 1 {
                throw RedisError.tls(endpoint: endpoint, reason: "client key '\(key)' does not match certificate '\(cert)'")
            }
        } else if settings.keyFile != nil {
            throw RedisError.usage("--key needs --cert")
        }
        guard let ssl = SSL_new(ctx) else {
            throw RedisError.tls(endpoint: endpoint, reason: "cannot create TLS session: \(Transport.opensslErrors())")
        }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        let name = settings.serverName ?? host
        // An empty name would make OpenSSL check nothing: never.
        guard !name.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw RedisError.tls(endpoint: endpoint, reason: "no host name to check the certificate against")
        }
        let nameIsIP = Transport.isIPAddress(name)
        if !nameIsIP { _ = ro_SSL_set_tlsext_host_name(ssl, name) }
        if !settings.insecure {
            if nameIsIP {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
            } else {
                SSL_set1_host(ssl, name)
            }
        }
        let deadline = monotonicNow() + timeout
        while true {
            ERR_clear_error()
            let r = SSL_connect(ssl)
            if r == 1 {
                tlsFacts = Transport.facts(ssl, checked: settings.insecure ? nil : name)
                break
            }
            let err = SSL_get_error(ssl, r)
            if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE {
                let remaining = deadline - monotonicNow()
                if remaining <= 0 || !waitFor(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, seconds: remaining) {
                    sslFree()
                    throw RedisError.tls(endpoint: endpoint, reason: "TLS handshake timed out (is the port a TLS port?)")
                }
                continue
            }
            let verify = SSL_get_verify_result(ssl)
            let queue = Transport.opensslErrors()
            sslFree()  // no SSL_shutdown after a failed handshake
            if verify != X509_V_OK {
                let why = String(cString: X509_verify_cert_error_string(verify))
                switch Int32(verify) {
                case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
                    throw RedisError.tls(endpoint: endpoint, reason: "host name mismatch: the server's certificate is not valid for '\(name)' (use --sni NAME for the name in the certificate)")
                case X509_V_ERR_CERT_HAS_EXPIRED:
                    throw RedisError.tls(endpoint: endpoint, reason: "certificate has expired (\(why))")
                default:
                    throw RedisError.tls(endpoint: endpoint, reason: "certificate not trusted: \(why) (check --cacert)")
                }
            }
            if err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN {
                throw RedisError.tls(endpoint: endpoint, reason: "handshake failed: the server closed the connection (is it a TLS port? does it require a client certificate?)\(queue.isEmpty ? "" : " (\(queue))")")
            }
            throw RedisError.tls(endpoint: endpoint, reason: "handshake failed: \(queue.isEmpty ? "unknown error" : queue)")
        }
    }

    static func facts(_ ssl: OpaquePointer, checked: String?) -> TLSFacts {
        let version = SSL_get_version(ssl).map { String(cString: $0) } ?? "?"
        var subject = "?", issuer = "?"
        var days: Int? = nil
        if let cert = SSL_get1_peer_certificate(ssl) {
            defer { X509_free(cert) }
            func text(_ n: OpaquePointer?) -> String {
                guard let n, let c = X509_NAME_oneline(n, nil, 0) else { return "?" }
                defer { CRYPTO_free(c, #file, #line) }
                return String(cString: c)
            }
            subject = text(X509_get_subject_name(cert))
            issuer = text(X509_get_issuer_name(cert))
            var d: Int32 = 0, sec: Int32 = 0
            if let na = X509_get0_notAfter(cert), ASN1_TIME_diff(&d, &sec, nil, na) == 1 { days = Int(d) }
        }
        return TLSFacts(protocolVersion: version, checkedName: checked, subject: subject, issuer: issuer, daysLeft: days)
    }

    private func sslFree() {
        if let ssl { SSL_free(ssl) }
        ssl = nil
    }

    // MARK: I/O

    /// Waits until the socket is ready for `events`; false on timeout.
    @discardableResult
    public func waitFor(_ events: Int32, seconds: Double) -> Bool {
        var p = pollfd(fd: fd, events: Int16(events), revents: 0)
        let end = monotonicNow() + seconds
        while true {
            let ms = Int32(max(0, min(Double(Int32.max), (end - monotonicNow()) * 1000)))
            let r = poll(&p, 1, ms)
            if r > 0 { return true }
            if r == 0 { return false }
            if errno != EINTR { return true }
        }
    }

    /// Data already decrypted inside OpenSSL, which poll() cannot see.
    public var hasBufferedInput: Bool {
        if let ssl { return SSL_pending(ssl) > 0 }
        return false
    }

    /// Writes everything before the deadline.
    public func writeAll(_ bytes: Bytes, timeout: Double) throws {
        try bytes.withUnsafeBytes { raw in
            var off = 0
            let end = monotonicNow() + timeout
            while off < raw.count {
                let n = try writeSome(UnsafeRawBufferPointer(rebasing: raw[off...]))
                if n > 0 { off += n; continue }
                let remaining = end - monotonicNow()
                if remaining <= 0 || !waitFor(POLLOUT, seconds: remaining) {
                    throw RedisError.timeout("writing to \(endpoint) took longer than \(formatSeconds(timeout))")
                }
            }
        }
    }

    /// A TLS failure after the handshake, named: a TLS 1.3 server that wants a client
    /// certificate accepts the handshake and then sends an alert, which can reach us on a
    /// read or (when our first write races it) only after a failed write.
    private func tlsFailure(_ op: String, _ queue: String) -> RedisError {
        var q = queue
        if q.isEmpty, let ssl {
            // The alert may still be waiting in the socket: read it to learn why.
            var scratch = [UInt8](repeating: 0, count: 256)
            _ = waitFor(POLLIN, seconds: 0.2)
            ERR_clear_error()
            _ = SSL_read(ssl, &scratch, 256)
            q = Transport.opensslErrors()
        }
        if q.contains("certificate required") {
            return .tls(endpoint: endpoint, reason: "the server requires a client certificate (give it with --cert and --key)")
        }
        if q.contains("unknown ca") || q.contains("bad certificate") || q.contains("certificate unknown") {
            return .tls(endpoint: endpoint, reason: "the server refused our client certificate (\(q))")
        }
        return .closed("\(endpoint): TLS \(op) failed (\(q.isEmpty ? "the connection was reset" : q))")
    }

    /// Writes what the socket accepts now; 0 means "would block".
    public func writeSome(_ buf: UnsafeRawBufferPointer) throws -> Int {
        guard !isClosed else { throw RedisError.closed("\(endpoint): already closed") }
        if let ssl {
            ERR_clear_error()
            let r = SSL_write(ssl, buf.baseAddress, Int32(min(buf.count, Int(Int32.max))))
            if r > 0 { return Int(r) }
            let err = SSL_get_error(ssl, r)
            if err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ { return 0 }
            throw tlsFailure("write", Transport.opensslErrors())
        }
        let r = send(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL))
        if r >= 0 { return r }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
        if let st = stream { throw RedisError.closed("\(endpoint): \(st.explainEnd())") }
        throw RedisError.closed("\(endpoint): \(errnoText(errno))")
    }

    /// Reads what is available now: >0 bytes, 0 for "would block"; throws on EOF or error.
    public func readSome(into buf: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !isClosed else { throw RedisError.closed("\(endpoint): already closed") }
        if let ssl {
            ERR_clear_error()
            let r = SSL_read(ssl, buf.baseAddress, Int32(min(buf.count, Int(Int32.max))))
            if r > 0 { return Int(r) }
            let err = SSL_get_error(ssl, r)
            if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE { return 0 }
            let queue = Transport.opensslErrors()
            if queue.contains("certificate required") || queue.contains("unknown ca") || queue.contains("bad certificate") { throw tlsFailure("read", queue) }
            if err == SSL_ERROR_ZERO_RETURN { throw RedisError.closed("\(endpoint): the server closed the connection") }
            if err == SSL_ERROR_SYSCALL { throw RedisError.closed("\(endpoint): the server closed the connection") }
            throw tlsFailure("read", queue)
        }
        let r = recv(fd, buf.baseAddress, buf.count, 0)
        if r > 0 { return r }
        if r == 0 {
            if let st = stream { throw RedisError.closed("\(endpoint): \(st.explainEnd())") }
            throw RedisError.closed("\(endpoint): the server closed the connection")
        }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
        if let st = stream { throw RedisError.closed("\(endpoint): \(st.explainEnd())") }
        throw RedisError.closed("\(endpoint): \(errnoText(errno))")
    }

    /// Reads at least one byte, waiting up to `timeout`.
    public func read(into buf: UnsafeMutableRawBufferPointer, timeout: Double) throws -> Int {
        let end = monotonicNow() + timeout
        while true {
            let n = try readSome(into: buf)
            if n > 0 { return n }
            let remaining = end - monotonicNow()
            if remaining <= 0 || !waitFor(POLLIN, seconds: remaining) {
                throw RedisError.timeout("no reply from \(endpoint) within \(formatSeconds(timeout))")
            }
        }
    }

    public func close() { closeNow() }

    private func closeNow() {
        if isClosed { return }
        isClosed = true
        if let ssl {
            ERR_clear_error()
            _ = SSL_shutdown(ssl)
            SSL_free(ssl)
            self.ssl = nil
        }
        if let ctx { SSL_CTX_free(ctx); self.ctx = nil }
        if let st = stream { st.close() } else { Glibc.close(fd) }
    }
}

func formatSeconds(_ s: Double) -> String {
    if s < 1 { return s * 1000 == (s * 1000).rounded() ? "\(Int(s * 1000)) ms" : String(format: "%.1f ms", s * 1000) }
    return s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s)
}
