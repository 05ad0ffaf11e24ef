// swift-tools-version: 6.2
import PackageDescription

// A real HTTP service on Hummingbird 2 run by AsyncToolsServer's `startServer`: N worker processes
// sharing one listening socket, keep-alive connections drained on stop, a health endpoint.
//
// Its own package, so that users of the AsyncTools library never resolve Hummingbird:
//
//     swift run --package-path Examples/HTTPServer http-server --workers 2 --port 8080
let package = Package(
  name: "AsyncToolsHTTPServerExample",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "http-server", targets: ["HTTPServer"])
  ],
  dependencies: [
    .package(name: "AsyncTools", path: "../.."),
    // Without its default traits (swift-configuration support, full Foundation): not needed here.
    .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1", traits: []),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    // `/metrics` in the Prometheus text format: the swift-metrics backend the workers bootstrap.
    .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
  ],
  targets: [
    .executableTarget(
      name: "HTTPServer",
      dependencies: [
        .product(name: "AsyncTools", package: "AsyncTools"),
        .product(name: "AsyncToolsServer", package: "AsyncTools"),
        .product(name: "AsyncToolsServerCommandLine", package: "AsyncTools"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdCore", package: "hummingbird"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "Metrics", package: "swift-metrics"),
      ],
      swiftSettings: [.treatAllWarnings(as: .error)]
    )
  ]
)
