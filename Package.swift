// swift-tools-version: 6.2
import PackageDescription

/// Settings every AsyncTools target shares: Swift 6 language mode (the tools default) with strict
/// concurrency, and no warning allowed to land.
let strict: [SwiftSetting] = [
  .treatAllWarnings(as: .error)
]

let package = Package(
  name: "AsyncTools",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "AsyncTools", targets: ["AsyncTools"]),
    .library(name: "AsyncToolsServiceLifecycle", targets: ["AsyncToolsServiceLifecycle"]),
    .library(name: "AsyncToolsTesting", targets: ["AsyncToolsTesting"]),
    .library(name: "AsyncToolsProcess", targets: ["AsyncToolsProcess"]),
    .library(name: "AsyncToolsServer", targets: ["AsyncToolsServer"]),
    .library(name: "AsyncToolsServerCommandLine", targets: ["AsyncToolsServerCommandLine"]),
    .executable(name: "echo-server", targets: ["EchoServer"]),
    .executable(name: "context-group", targets: ["ContextGroupExample"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    // Observability: opt-in swift-metrics instrumentation; ServiceContext for the propagation tests.
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-service-context", from: "1.5.1"),
  ],
  targets: [
    // The few syscalls and runtime symbols Glibc does not expose to Swift.
    .target(name: "CAsyncToolsShims"),

    .target(
      name: "AsyncTools",
      dependencies: [
        "CAsyncToolsShims",
        .product(name: "DequeModule", package: "swift-collections"),
        .product(name: "HeapModule", package: "swift-collections"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
      ],
      swiftSettings: strict
    ),
    // `Service` conformances, so AsyncTools pieces slot into a swift-service-lifecycle `ServiceGroup`.
    .target(
      name: "AsyncToolsServiceLifecycle",
      dependencies: ["AsyncTools", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
      swiftSettings: strict
    ),
    .target(
      name: "AsyncToolsTesting",
      dependencies: [
        "AsyncTools", "CAsyncToolsShims",
        .product(name: "DequeModule", package: "swift-collections"),
        .product(name: "HeapModule", package: "swift-collections"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "AsyncToolsProcess",
      dependencies: ["AsyncTools", "CAsyncToolsShims", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strict
    ),
    .target(
      name: "AsyncToolsServer",
      dependencies: [
        "AsyncTools", "AsyncToolsProcess", "CAsyncToolsShims",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    // The standard server flags as a swift-argument-parser option group (`ServerOptions`): a product of its own,
    // so that users of AsyncToolsServer who parse their command line otherwise never link ArgumentParser.
    .target(
      name: "AsyncToolsServerCommandLine",
      dependencies: ["AsyncToolsServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
      swiftSettings: strict
    ),

    // Examples: runnable programs, built in CI so they cannot rot.
    .executableTarget(
      name: "EchoServer",
      dependencies: [
        "AsyncTools", "AsyncToolsServer", "AsyncToolsServerCommandLine",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Examples/EchoServer",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "ContextGroupExample",
      dependencies: ["AsyncTools"],
      path: "Examples/ContextGroup",
      swiftSettings: strict
    ),

    // A tiny program the process and server tests re-execute: its `main` makes the one bootstrap
    // call, so fork-by-re-exec can be tested with real processes (a test runner's `main` is not ours).
    .executableTarget(
      name: "AsyncToolsTestChild",
      dependencies: [
        "AsyncTools", "AsyncToolsProcess", "AsyncToolsServer",
        .product(name: "MetricsTestKit", package: "swift-metrics"),
      ],
      path: "Tests/TestChild",
      swiftSettings: strict
    ),

    // What every test target shares: gates, counters, logs, test errors, the stress knobs (iterations, seed,
    // replay), a pthread lock for raw threads. One place, as swift-async-algorithms keeps one `Support/` folder.
    .target(
      name: "AsyncToolsTestSupport",
      dependencies: ["AsyncTools"],
      path: "Tests/Support",
      swiftSettings: strict
    ),

    .testTarget(
      name: "AsyncToolsTests",
      dependencies: [
        "AsyncTools", "AsyncToolsTesting", "AsyncToolsTestSupport", "AsyncToolsServiceLifecycle",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "MetricsTestKit", package: "swift-metrics"),
        .product(name: "InMemoryLogging", package: "swift-log"),
        .product(name: "ServiceContextModule", package: "swift-service-context"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "AsyncToolsTestingTests",
      dependencies: [
        "AsyncTools", "AsyncToolsTesting", "AsyncToolsTestSupport",
        .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "AsyncToolsProcessTests",
      dependencies: ["AsyncToolsProcess", "AsyncToolsTestChild", "AsyncToolsTesting", "AsyncToolsTestSupport"],
      swiftSettings: strict
    ),
    .testTarget(
      name: "AsyncToolsServerTests",
      dependencies: [
        "AsyncToolsServer", "AsyncToolsTestChild", "AsyncToolsTesting", "AsyncToolsTestSupport", "CAsyncToolsShims",
        "EchoServer", "AsyncToolsServerCommandLine",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "MetricsTestKit", package: "swift-metrics"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
  ]
)
