// swift-tools-version: 6.2
import PackageDescription

// The AsyncTools benchmarks: a separate package, so `swift test` of the library stays lean.
// Every AsyncTools workload is paired with its baseline (what a Swift user would write or pick
// instead) in the same run; `Benchmarks/run` adds Python aiotools on the same machine.
//
// ordo-one/package-benchmark 1.38.1 is on the local mirror, but on Linux with Swift 6.3 its
// manifest depends on ordo-one/swift-runtime-interposer, which is not, so it cannot resolve
// here. The harness in `Harness.swift` does what we need from it: warm-up, repeated runs,
// medians, CPU time and peak memory, one process per benchmark.
let package = Package(
  name: "AsyncToolsBenchmarks",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "AsyncToolsBenchmarks", targets: ["AsyncToolsBenchmarks"]),
    // The echo-server benchmark (python/bench_echo.py): the loopback load generator and the plain
    // SwiftNIO echo server it compares Examples/EchoServer with.
    .executable(name: "echo-load", targets: ["EchoLoad"]),
    .executable(name: "plain-nio-echo", targets: ["PlainNIOEcho"]),
  ],
  dependencies: [
    .package(name: "AsyncTools", path: ".."),
    .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    .package(url: "https://github.com/pointfreeco/swift-clocks", from: "1.1.1"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
  ],
  targets: [
    .executableTarget(
      name: "AsyncToolsBenchmarks",
      dependencies: [
        .product(name: "AsyncTools", package: "AsyncTools"),
        .product(name: "AsyncToolsTesting", package: "AsyncTools"),
        .product(name: "AsyncToolsProcess", package: "AsyncTools"),
        .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
        .product(name: "Clocks", package: "swift-clocks"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Subprocess", package: "swift-subprocess"),
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
