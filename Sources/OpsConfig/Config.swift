import Foundation
import TOMLKit
import RedisClient
import OpsCore

/// The configuration file (TOML): the application's conventions and named connection
/// profiles. Passwords are never stored in it: a profile names a `password_file` or a
/// `password_env` variable instead.
public struct OpsConfigFile: Sendable, Equatable {
    public struct Conventions: Sendable, Equatable {
        public var prefix: String?
        public var cachePattern: String?
        public var cacheTTL: Int64?
        public var lockPattern: String?
        public var lockTTL: Int64?
        public var rateLimitPattern: String?
        public var rateLimit: Int64?
        public var rateWindow: Int64?
        public var eventsPattern: String?
        public var protected: [String]?
        public var updatedAtField: String?
        public init() {}

        /// Applies what is set on top of a schema.
        public func apply(to s: inout KeySchema) {
            if let v = cachePattern { s.cachePattern = v }
            if let v = cacheTTL { s.cacheTTL = v }
            if let v = lockPattern { s.lockPattern = v }
            if let v = lockTTL { s.lockTTL = v }
            if let v = rateLimitPattern { s.rateLimitPattern = v }
            if let v = rateLimit { s.rateLimit = v }
            if let v = rateWindow { s.rateWindow = v }
            if let v = eventsPattern { s.eventsPattern = v }
            if let v = protected { s.protectedPatterns = v }
            if let v = updatedAtField { s.updatedAtField = v }
        }
    }

    public struct Profile: Sendable, Equatable {
        public var url: String?
        public var host: String?
        public var port: Int?
        public var user: String?
        public var passwordFile: String?
        public var passwordEnv: String?
        public var passwordCommand: String?
        /// A bastion every connection goes through (`[user@]host[:port]`, ssh -W).
        public var via: String?
        public var tls: Bool?
        public var cacert: String?
        public var cert: String?
        public var key: String?
        public var sni: String?
        public var insecure: Bool?
        public var readOnly: Bool?
        public var replicaReads: Bool?
        public var prefix: String?
        public var conventions = Conventions()
        public init() {}
    }

    public var conventions = Conventions()
    public var profiles: [String: Profile] = [:]
    /// `[audit]`: where invalidations are recorded, and a channel to publish them on.
    public var auditLog: String?
    public var auditChannel: String?
    public var path: String?
    public init() {}

    /// Where the file is looked for: `--config`, `$REDIS_OPS_CONFIG`, `$XDG_CONFIG_HOME/redis-ops/config.toml`, `~/.config/redis-ops/config.toml`.
    public static func defaultPath(environment env: [String: String]) -> String {
        if let p = env["REDIS_OPS_CONFIG"], !p.isEmpty { return p }
        let base = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.config")
        return base + "/redis-ops/config.toml"
    }

    /// Loads the file; a missing default file is an empty configuration, a missing explicit one an error.
    public static func load(path explicit: String?, environment env: [String: String]) throws -> OpsConfigFile {
        let path = explicit ?? defaultPath(environment: env)
        guard FileManager.default.fileExists(atPath: path) else {
            if explicit != nil { throw RedisError.usage("config file '\(path)' does not exist") }
            return OpsConfigFile()
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw RedisError.usage("cannot read config file '\(path)': \((error as NSError).localizedDescription)")
        }
        var c = try parse(text, source: path)
        c.path = path
        return c
    }

    public static func parse(_ text: String, source: String = "config") throws -> OpsConfigFile {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw RedisError.usage("\(source):\(e.source.begin.line): \(e.description)")
        } catch {
            throw RedisError.usage("\(source): \(error)")
        }
        var c = OpsConfigFile()
        for k in table.keys where !["conventions", "profiles", "audit"].contains(k) {
            throw RedisError.usage("\(source): unknown section or key '\(k)' (expected [conventions], [audit] and [profiles.NAME])")
        }
        if let a = table["audit"]?.table {
            for k in a.keys {
                guard let v = a[k]?.string else { throw RedisError.usage("\(source) [audit]: \(k) must be a string") }
                switch k {
                case "log": c.auditLog = expandHome(v)
                case "channel": c.auditChannel = v
                default: throw RedisError.usage("\(source) [audit]: unknown key '\(k)' (log, channel)")
                }
            }
        }
        if let conv = table["conventions"]?.table { c.conventions = try conventions(conv, "\(source) [conventions]") }
        if let profs = table["profiles"]?.table {
            for name in profs.keys {
                guard let p = profs[name]?.table else { throw RedisError.usage("\(source): profiles.\(name) must be a table") }
                c.profiles[name] = try profile(p, "\(source) [profiles.\(name)]")
            }
        }
        return c
    }

    static func conventions(_ t: TOMLTable, _ where_: String) throws -> Conventions {
        var c = Conventions()
        for k in t.keys {
            let v = t[k]!
            let f = Field(v, k, where_)
            let str = f.string, int = f.positive
            switch k {
            case "prefix": c.prefix = try str()
            case "cache_pattern": c.cachePattern = try str()
            case "cache_ttl": c.cacheTTL = try int()
            case "lock_pattern": c.lockPattern = try str()
            case "lock_ttl": c.lockTTL = try int()
            case "ratelimit_pattern": c.rateLimitPattern = try str()
            case "ratelimit_limit": c.rateLimit = try int()
            case "ratelimit_window": c.rateWindow = try int()
            case "events_pattern": c.eventsPattern = try str()
            case "updated_at_field": c.updatedAtField = try str()
            case "protected":
                guard let a = v.array else { throw RedisError.usage("\(where_): protected must be an array of globs") }
                c.protected = try a.map { guard let s = $0.string else { throw RedisError.usage("\(where_): protected must hold strings") }; return s }
            default: throw RedisError.usage("\(where_): unknown key '\(k)'")
            }
        }
        return c
    }

    static func profile(_ t: TOMLTable, _ where_: String) throws -> Profile {
        var p = Profile()
        for k in t.keys {
            let v = t[k]!
            let f = Field(v, k, where_)
            let str = f.string, bool = f.bool
            switch k {
            case "url": p.url = try str()
            case "host": p.host = try str()
            case "port":
                guard let i = v.int, (1...65535).contains(i) else { throw RedisError.usage("\(where_): port must be 1-65535") }
                p.port = i
            case "user": p.user = try str()
            case "password_file": p.passwordFile = expandHome(try str())
            case "password_env": p.passwordEnv = try str()
            case "password_command": p.passwordCommand = try str()
            case "via": p.via = try str()
            case "password", "auth_token", "token":
                throw RedisError.usage("\(where_): passwords are never stored in the config file; use password_file or password_env")
            case "tls": p.tls = try bool()
            case "cacert": p.cacert = expandHome(try str())
            case "cert": p.cert = expandHome(try str())
            case "key": p.key = expandHome(try str())
            case "sni": p.sni = try str()
            case "insecure": p.insecure = try bool()
            case "read_only": p.readOnly = try bool()
            case "replica_reads": p.replicaReads = try bool()
            case "prefix": p.prefix = try str()
            case "conventions":
                guard let ct = v.table else { throw RedisError.usage("\(where_): conventions must be a table") }
                p.conventions = try conventions(ct, where_ + ".conventions")
            default: throw RedisError.usage("\(where_): unknown key '\(k)'")
            }
        }
        if p.url != nil, let u = p.url, u.contains("@"), (try? RedisURL(parsing: u))?.password != nil {
            throw RedisError.usage("\(where_): the url holds a password; passwords are never stored in the config file (use password_file or password_env)")
        }
        return p
    }

    /// One value of the file, read as the type its key needs (or a clear error naming it).
    struct Field {
        let value: TOMLValueConvertible
        let key: String
        let place: String
        init(_ value: TOMLValueConvertible, _ key: String, _ place: String) { self.value = value; self.key = key; self.place = place }
        func string() throws -> String {
            guard let s = value.string else { throw RedisError.usage("\(place): \(key) must be a string") }
            return s
        }
        func positive() throws -> Int64 {
            guard let i = value.int, i > 0 else { throw RedisError.usage("\(place): \(key) must be a positive integer") }
            return Int64(i)
        }
        func bool() throws -> Bool {
            guard let b = value.bool else { throw RedisError.usage("\(place): \(key) must be true or false") }
            return b
        }
    }

    static func expandHome(_ p: String) -> String {
        p.hasPrefix("~/") ? NSHomeDirectory() + String(p.dropFirst(1)) : p
    }

    /// Connection flags with the profile filling what the command line left unset (flags win).
    public func flags(_ given: ConnectionFlags, profile name: String?, environment env: [String: String]) throws -> (ConnectionFlags, passwordFromEnv: String?) {
        guard let name else { return (given, nil) }
        guard let p = profiles[name] else {
            let known = profiles.keys.sorted().joined(separator: ", ")
            throw RedisError.usage("no profile '\(name)' in \(path ?? "the config file")\(known.isEmpty ? "" : " (profiles: \(known))")")
        }
        var f = given
        if f.url == nil && f.host == nil && f.port == nil { f.url = p.url }
        if f.host == nil { f.host = p.host }
        if f.port == nil { f.port = p.port }
        if f.user == nil { f.user = p.user }
        // The command line's password source, if it names one, replaces the profile's.
        let givenSource = given.passwordFile != nil || given.passwordCommand != nil || given.askpass
        if !givenSource { f.passwordFile = p.passwordFile; f.passwordCommand = p.passwordCommand }
        if f.via == nil { f.via = p.via }
        if !f.tls { f.tls = p.tls ?? false }
        if f.cacert == nil { f.cacert = p.cacert }
        if f.cert == nil { f.cert = p.cert }
        if f.key == nil { f.key = p.key }
        if f.sni == nil { f.sni = p.sni }
        if !f.insecure { f.insecure = p.insecure ?? false }
        if !f.readOnly { f.readOnly = p.readOnly ?? false }
        if !f.replicaReads { f.replicaReads = p.replicaReads ?? false }
        if f.prefix == nil { f.prefix = p.prefix }
        var pw: String? = nil
        if !givenSource, let e = p.passwordEnv {
            guard let v = env[e], !v.isEmpty else { throw RedisError.usage("profile '\(name)': the environment variable \(e) (password_env) is not set") }
            pw = v
        }
        return (f, pw)
    }

    /// The conventions: defaults, then [conventions], then the profile's, with the resolved prefix.
    public func schema(prefix: String, profile name: String?) -> KeySchema {
        var s = KeySchema(prefix: prefix)
        conventions.apply(to: &s)
        if let name, let p = profiles[name] { p.conventions.apply(to: &s) }
        return s
    }
}
