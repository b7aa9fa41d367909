import Foundation

/// A CA and certificates made with `openssl` at test time.
public struct TestCerts: Sendable {
    public let dir: String
    public var caCert: String { dir + "/ca.crt" }
    /// A different CA that signed nothing the server uses.
    public var otherCACert: String { dir + "/other-ca.crt" }
    /// Server certificate for DNS:localhost and IP:127.0.0.1.
    public var serverCert: String { dir + (swapServer ? "/otherhost.crt" : "/server.crt") }
    public var serverKey: String { dir + (swapServer ? "/otherhost.key" : "/server.key") }
    /// A certificate (same CA) for another host name only: other.example.
    public var otherHostCert: String { dir + "/otherhost.crt" }
    public var otherHostKey: String { dir + "/otherhost.key" }
    /// A client certificate (same CA).
    public var clientCert: String { dir + "/client.crt" }
    public var clientKey: String { dir + "/client.key" }

    /// Made once per test process (a failure fails the tests that need them).
    public static let shared = Shared { try TestCerts.make() }

    public static func make() throws -> TestCerts {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redis-ops-certs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let openssl = try which("openssl")
        func sh(_ args: [String]) throws {
            let r = try run(openssl, args)
            if r.status != 0 { throw TestSupportError("openssl \(args.first ?? ""): \(r.stderr)") }
        }
        for ca in ["ca", "other-ca"] {
            try sh(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=redis-ops test \(ca)",
                    "-keyout", "\(dir)/\(ca).key", "-out", "\(dir)/\(ca).crt",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        }
        func leaf(_ name: String, cn: String, san: String, usage: String) throws {
            try sh(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=\(cn)", "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr"])
            let ext = "\(dir)/\(name).ext"
            try "subjectAltName=\(san)\nextendedKeyUsage=\(usage)\nbasicConstraints=CA:FALSE\n".write(toFile: ext, atomically: true, encoding: .utf8)
            try sh(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/ca.crt", "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
                    "-days", "2", "-out", "\(dir)/\(name).crt", "-extfile", ext])
        }
        // Cluster nodes present it as a client certificate on the TLS cluster bus, too.
        try leaf("server", cn: "localhost", san: "DNS:localhost,IP:127.0.0.1", usage: "serverAuth,clientAuth")
        try leaf("otherhost", cn: "other.example", san: "DNS:other.example", usage: "serverAuth")
        try leaf("client", cn: "redis-ops-client", san: "DNS:client", usage: "clientAuth")
        return TestCerts(dir: dir)
    }

    /// The same CA, but the server presents the other-host certificate.
    public var withOtherHostServerCert: TestCerts { TestCerts(dir: dir, swapServer: true) }

    private let swapServer: Bool
    init(dir: String, swapServer: Bool = false) { self.dir = dir; self.swapServer = swapServer }
}
