// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "redis-ops",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "redis-ops", targets: ["redis-ops"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // Native libraries: module maps plus header-only shims for macros and globals.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CNcurses", pkgConfig: "ncursesw", providers: [.apt(["libncurses-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CWidth"),

        .target(name: "RedisProtocol", dependencies: ["CHiredis"]),
        .target(name: "RedisClient", dependencies: ["RedisProtocol", "COpenSSL", .product(name: "DequeModule", package: "swift-collections")]),
        .target(name: "OpsCore", dependencies: ["RedisClient", "RedisProtocol", .product(name: "DequeModule", package: "swift-collections")]),
        .target(name: "OpsConfig", dependencies: ["OpsCore", "RedisClient", .product(name: "TOMLKit", package: "TOMLKit")]),
        .target(name: "ConsoleUI", dependencies: ["OpsCore", "RedisProtocol", "CWidth", .product(name: "DequeModule", package: "swift-collections")]),
        .target(name: "ConsoleTerminal", dependencies: ["ConsoleUI", "OpsCore", "RedisClient", "CNcurses"]),
        .executableTarget(
            name: "redis-ops",
            dependencies: [
                "ConsoleTerminal", "ConsoleUI", "OpsCore", "OpsConfig", "RedisClient", "RedisProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["RedisClient", "RedisProtocol", "OpsCore"], path: "Tests/TestSupport"),
        .testTarget(name: "RedisProtocolTests", dependencies: ["RedisProtocol"]),
        .testTarget(name: "RedisClientTests", dependencies: ["RedisClient", "TestSupport"]),
        .testTarget(name: "OpsCoreTests", dependencies: ["OpsCore", "OpsConfig", "TestSupport"]),
        .testTarget(name: "ConsoleUITests", dependencies: ["ConsoleUI", "OpsCore"], exclude: ["Snapshots"]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport", "redis-ops", "ConsoleTerminal", "ConsoleUI"]),
    ],
    swiftLanguageModes: [.v6]
)
