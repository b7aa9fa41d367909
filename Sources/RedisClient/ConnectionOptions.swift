import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Connection flags as given on the command line (nil = not given).
public struct ConnectionFlags: Sendable, Equatable {
    public var url: String?
    public var host: String?
    public var port: Int?
    public var user: String?
    public var passwordFile: String?
    /// A command whose output is the password (run again after a refusal).
    public var passwordCommand: String?
    /// --askpass was given (the password is asked before resolving; counted for the one-source rule).
    public var askpass = false
    /// `--no-tls`: NODE_ENV=production does not turn TLS on.
    public var noTLS = false
    /// A bastion every connection goes through: `[user@]host[:port]`.
    public var via: String?
    public var tls: Bool = false
    public var cacert: String?
    public var cert: String?
    public var key: String?
    public var sni: String?
    public var insecure: Bool = false
    public var prefix: String?
    public var readOnly: Bool = false
    /// Cluster mode: listings read from replicas.
    public var replicaReads: Bool = false
    public var db: Int?
    /// A password from elsewhere (a profile's `password_env`); never from the command line.
    public var password: Secret?
    public init() {}
}

/// Everything redis-ops needs to reach the server and speak the application's conventions.
public struct ConnectionOptions: Sendable, Equatable {
    public var config: ConnectionConfig
    /// The application's key prefix (applies to keys, never to channel names).
    public var prefix: String
    public var readOnly: Bool
    /// Cluster mode: listings (SCAN and per-key reads) go to replicas; writes never do.
    public var replicaReads = false
    /// Things worth a warning on stderr (a password where others can read it).
    public var warnings: [String] = []
    /// Why TLS is on (`--tls`, a rediss:// URL, NODE_ENV=production): shown with the
    /// connection and in a TLS error.
    public var tlsBecause: String?
    /// The bastion, when connections go through one.
    public var via: String?

    public var isTLS: Bool { config.tls != nil }
    public var insecure: Bool { config.tls?.insecure ?? false }

    /// A one-line summary safe to show (never the password).
    public var summary: String {
        var s = (isTLS ? "rediss://" : "redis://")
        if let u = config.user { s += "\(u)@" }
        s += config.endpoint
        if config.db != 0 { s += "/\(config.db)" }
        return s
    }
}

/// A parsed `redis://` / `rediss://` URL. Its description never includes the password.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        (tls ? "rediss://" : "redis://") + (user ?? "") + (password == nil ? "" : ":***") + (user != nil || password != nil ? "@" : "")
            + (host ?? "") + (port.map { ":\($0)" } ?? "") + (db.map { "/\($0)" } ?? "")
    }
    public var debugDescription: String { description }

    public var tls: Bool
    public var host: String?
    public var port: Int?
    public var user: String?
    public var password: String?
    public var db: Int?

    /// Parses a URL. Its errors never show any part of it after the scheme: a password
    /// may be anywhere in a malformed URL (`redis://:pw/x@host` puts it where a port goes).
    public init(parsing s: String) throws {
        let lower = s.lowercased()
        var rest: Substring
        if lower.hasPrefix("rediss://") { tls = true; rest = s.dropFirst(9) }
        else if lower.hasPrefix("redis://") { tls = false; rest = s.dropFirst(8) }
        else { throw RedisError.usage("invalid URL: it must start with redis:// or rediss:// (the URL is not shown: it may hold a password)") }
        func bad(_ what: String) -> RedisError { RedisError.usage("invalid URL: \(what) (credentials hidden)") }
        // Strip any query or fragment (ioredis accepts ?family=... etc.).
        if let q = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<q] }
        var authority = rest
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") { authority = rest[..<slash]; path = rest[rest.index(after: slash)...] }
        if path.contains("@") {
            throw bad("'@' after a '/': a password with '/' (or '?', '#', '@') in it must be percent-encoded, e.g. %2F for '/'")
        }
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let u = String(userinfo[..<colon])
                user = u.isEmpty ? nil : try RedisURL.decode(u)
                let pw = String(userinfo[userinfo.index(after: colon)...])
                if pw.isEmpty {
                    throw bad("the password after ':' is empty (leave out ':' and '@', or give the password with --password-file)")
                }
                password = try RedisURL.decode(pw)
            } else if !userinfo.isEmpty {
                user = try RedisURL.decode(String(userinfo))
            }
        }
        var hostPart = authority
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
            host = String(hostPart[hostPart.index(after: hostPart.startIndex)..<close])
            hostPart = hostPart[hostPart.index(after: close)...]
            if hostPart.hasPrefix(":") {
                guard let p = Int(hostPart.dropFirst()), (1...65535).contains(p) else { throw bad("the port is not a number from 1 to 65535") }
                port = p
            }
        } else {
            if let colon = hostPart.lastIndex(of: ":") {
                let ps = hostPart[hostPart.index(after: colon)...]
                guard let p = Int(ps), (1...65535).contains(p) else {
                    throw bad("the port is not a number from 1 to 65535\(authority.contains(":") && !s.contains("@") ? "; for a password use redis://:PASSWORD@host" : "")")
                }
                port = p
                hostPart = hostPart[..<colon]
            }
            host = hostPart.isEmpty ? nil : String(hostPart)
        }
        let dbs = path.split(separator: "/").first.map(String.init) ?? ""
        if !dbs.isEmpty {
            guard let d = Int(dbs), d >= 0 else { throw bad("the database after '/' is not a number") }
            db = d
        }
    }

    static func decode(_ s: String) throws -> String {
        guard let d = s.removingPercentEncoding else { throw RedisError.usage("invalid URL: a bad percent-encoding (credentials hidden)") }
        return d
    }

    /// The URL with any password replaced, for messages.
    public static func redact(_ s: String) -> String {
        guard let schemeEnd = s.range(of: "://"), let at = s.range(of: "@", options: .backwards),
              at.lowerBound > schemeEnd.upperBound else { return s }
        let userinfo = s[schemeEnd.upperBound..<at.lowerBound]
        if let colon = userinfo.firstIndex(of: ":") {
            return String(s[..<colon]) + ":***" + String(s[at.lowerBound...])
        }
        return s
    }
}

extension ConnectionOptions {
    /// Resolves flags and the application's environment. Precedence per field:
    /// individual flags, then `--url`, then `REDIS_URL`, then `REDIS_HOST` & co.
    /// `NODE_ENV=production` turns TLS on, as the application does.
    public static func resolve(flags: ConnectionFlags, environment env: [String: String],
                               readFile: (String) throws -> String = { try String(contentsOfFile: $0, encoding: .utf8) },
                               fileMode: (String) -> UInt32? = ConnectionOptions.fileMode) throws -> ConnectionOptions {
        var warnings: [String] = []
        let flagURL = try flags.url.map { u -> RedisURL in
            do { return try RedisURL(parsing: u) } catch { throw RedisError.usage("--url: \(error)") }
        }
        // REDIS_URL is used only when no server was named on the command line: its password
        // must never go to a host given by --host (and a malformed one that is not used is
        // not an error).
        let envURL = flags.url == nil && flags.host == nil
            ? try env["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }.map { u -> RedisURL in
                do { return try RedisURL(parsing: u) } catch { throw RedisError.usage("REDIS_URL: \(error)") }
            } : nil

        let host = flags.host ?? flagURL?.host ?? envURL?.host ?? env["REDIS_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        var port = flags.port ?? flagURL?.port ?? envURL?.port
        if port == nil, let p = env["REDIS_PORT"], !p.isEmpty {
            guard let n = Int(p), (1...65535).contains(n) else { throw RedisError.usage("REDIS_PORT '\(p)' is not a valid port") }
            port = n
        }
        if let p = port, !(1...65535).contains(p) { throw RedisError.usage("port \(p) is out of range (1-65535)") }
        let user = flags.user ?? flagURL?.user ?? envURL?.user ?? env["REDIS_USER"].flatMap { $0.isEmpty ? nil : $0 }

        var password: String?
        var credentials: CredentialSource?
        let sources = [flags.passwordFile != nil, flags.passwordCommand != nil, flags.askpass].filter { $0 }.count
        if sources > 1 {
            throw RedisError.usage("give at most one of --password-file, --password-command and --askpass (a profile's password_file or password_command counts as one)")
        }
        if let f = flags.passwordFile {
            let text: String
            do { text = try readFile(f) } catch {
                throw RedisError.usage("cannot read --password-file '\(f)': \((error as NSError).localizedDescription)")
            }
            // Trailing CR and LF go (a file saved on Windows ends in CR LF, which Swift counts as one character).
            var scalars = Substring(text).unicodeScalars
            while let l = scalars.last, l == "\n" || l == "\r" { scalars.removeLast() }
            password = String(scalars)
            if let mode = fileMode(f), mode & 0o077 != 0 {
                warnings.append("the password file '\(f)' can be read by other users (mode \(String(mode & 0o777, radix: 8))); chmod 600 it")
            }
            // Read again when the server refuses it (the token was rotated and the file updated).
            credentials = CredentialSource(kind: .file(f), initial: password.map(Secret.init))
        } else if let c = flags.passwordCommand {
            do { password = try CredentialSource.read(.command(c))?.value } catch let e as RedisError {
                if case .usage(let m) = e { throw RedisError.auth(m) }
                throw e
            }
            credentials = CredentialSource(kind: .command(c), initial: password.map(Secret.init))
        } else if let p = flags.password {
            password = p.value
        } else {
            password = flagURL?.password ?? envURL?.password ?? env["REDIS_AUTH_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        }
        let db = flags.db ?? flagURL?.db ?? envURL?.db ?? 0
        if let d = flags.db, d < 0 { throw RedisError.usage("-n \(d): the database number must be 0 or more") }
        if flagURL?.password != nil {
            warnings.append("a password inside --url can be seen by other users (ps, shell history); use --password-file, --askpass or REDIS_AUTH_TOKEN")
        }

        var tls: Bool
        var tlsBecause: String? = nil
        if flags.tls { tls = true; tlsBecause = "--tls" }
        else if let u = flagURL { tls = u.tls; if tls { tlsBecause = "a rediss:// URL" } }
        else if envURL?.tls == true { tls = true; tlsBecause = "REDIS_URL (rediss://)" }
        else if env["NODE_ENV"] == "production" && !flags.noTLS { tls = true; tlsBecause = "NODE_ENV=production" }
        else { tls = false }
        if flags.noTLS {
            if flags.tls || flagURL?.tls == true || (flagURL == nil && envURL?.tls == true) {
                throw RedisError.usage("--no-tls contradicts \(flags.tls ? "--tls" : "a rediss:// URL"): give one or the other")
            }
            tls = false; tlsBecause = nil
        }
        if flags.cacert != nil || flags.cert != nil || flags.insecure || flags.sni != nil {
            if !tls && flagURL != nil && !(flagURL!.tls) && !flags.tls {
                throw RedisError.usage("TLS options (--cacert, --cert, --sni, --insecure) need TLS: use rediss:// or --tls")
            }
            tls = true
        }
        if flags.key != nil && flags.cert == nil { throw RedisError.usage("--key needs --cert") }
        if let n = flags.sni, n.trimmingCharacters(in: .whitespaces).isEmpty {
            throw RedisError.usage("--sni needs a host name: an empty name would turn the certificate's host-name check off (to skip verification, say --insecure)")
        }

        var tlsSettings = tls ? TLSSettings(caFile: flags.cacert, certFile: flags.cert, keyFile: flags.key,
                                             serverName: flags.sni, insecure: flags.insecure) : nil
        if tlsBecause == "NODE_ENV=production" { tlsSettings?.because = tlsBecause }
        let prefix: String
        if let p = flags.prefix { prefix = p }
        else if let p = env["REDIS_PREFIX"], !p.isEmpty { prefix = p + ":" }
        else { prefix = "app:" }

        var config = ConnectionConfig(host: host, port: port ?? 6379, user: user,
                                      password: password.map(Secret.init), db: db, tls: tlsSettings)
        // A password from anywhere has a source, so a refusal is retried by one rule (slowly).
        config.credentials = credentials ?? password.map { CredentialSource(kind: .fixed, initial: Secret($0)) }
        var o = ConnectionOptions(config: config, prefix: prefix, readOnly: flags.readOnly, warnings: warnings)
        o.replicaReads = flags.replicaReads
        o.tlsBecause = tlsBecause
        o.via = flags.via
        return o
    }

    /// The permission bits of a file (nil if it cannot be read).
    public static func fileMode(_ path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode)
    }
}
