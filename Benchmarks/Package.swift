// swift-tools-version: 6.2
import PackageDescription

// The AsyncTools benchmarks on ordo-one/package-benchmark: a separate package, so `swift test` of
// the library stays lean.
//
// - `Benchmarks/CorePaths`: the core paths at small sizes; CI checks their instruction and malloc
//   counts against `Thresholds/`.
// - `Benchmarks/Comparisons`: every AsyncTools workload paired with its Swift baseline (what a user
//   would write or pick instead), from `Sources/AsyncToolsBenchmarks`; `Benchmarks/run` adds Python
//   aiotools and the echo-server load test and prints the ratio table.
//
// package-benchmark's `.package` line needs `traits: ["MallocInterposer"]` on this toolchain: its
// default traits also enable a Swift runtime interposer whose package is not on the mirror. The
// malloc interposer counts allocations without jemalloc.
let package = Package(
  name: "AsyncToolsBenchmarks",
  platforms: [.macOS(.v15)],
  products: [
    // The echo-server benchmark (python/bench_echo.py): the loopback load generator and the plain
    // SwiftNIO echo server it compares Examples/EchoServer with.
    .executable(name: "echo-load", targets: ["EchoLoad"]),
    .executable(name: "plain-nio-echo", targets: ["PlainNIOEcho"]),
    .executable(name: "run-workload", targets: ["RunWorkload"]),
    // The CPU time per operation of the metrics-overhead paths (`overhead` script).
    .executable(name: "core-path-costs", targets: ["CorePathCosts"]),
  ],
  dependencies: [
    .package(name: "AsyncTools", path: ".."),
    .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/pointfreeco/swift-clocks", from: "1.1.1"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
  ],
  targets: [
    .executableTarget(
      name: "CorePaths",
      dependencies: [
        .product(name: "AsyncTools", package: "AsyncTools"),
        .product(name: "Benchmark", package: "benchmark"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
      ],
      path: "Benchmarks/CorePaths",
      swiftSettings: [.treatAllWarnings(as: .error)],
      plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    ),
    .executableTarget(
      name: "Comparisons",
      dependencies: [
        "AsyncToolsBenchmarks",
        .product(name: "AsyncToolsProcess", package: "AsyncTools"),
        .product(name: "Benchmark", package: "benchmark"),
      ],
      path: "Benchmarks/Comparisons",
      swiftSettings: [.treatAllWarnings(as: .error)]
    ),
    // The workloads of the comparison (each with its Swift baselines), as a library.
    .target(
      name: "AsyncToolsBenchmarks",
      dependencies: [
        .product(name: "AsyncTools", package: "AsyncTools"),
        .product(name: "AsyncToolsTesting", package: "AsyncTools"),
        .product(name: "AsyncToolsProcess", package: "AsyncTools"),
        .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
        .product(name: "Clocks", package: "swift-clocks"),
        .product(name: "Subprocess", package: "swift-subprocess"),
      ],
      swiftSettings: [.treatAllWarnings(as: .error)]
    ),
    // One workload in this process, without package-benchmark around it: for profilers.
    .executableTarget(
      name: "RunWorkload", dependencies: ["AsyncToolsBenchmarks"], swiftSettings: [.treatAllWarnings(as: .error)]),
    .executableTarget(
      name: "CorePathCosts",
      dependencies: [
        .product(name: "AsyncTools", package: "AsyncTools"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
      ],
      swiftSettings: [.treatAllWarnings(as: .error)]
    ),
    .target(name: "CEpoll"),
    .executableTarget(name: "EchoLoad", dependencies: ["CEpoll"], swiftSettings: [.treatAllWarnings(as: .error)]),
    .executableTarget(
      name: "PlainNIOEcho",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: [.treatAllWarnings(as: .error)]
    ),
  ]
)
