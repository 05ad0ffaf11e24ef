import AsyncTools
import AsyncToolsServer
import Testing

/// Rows of the bad-input table in RELIABILITY.md for the server that `ServerConfigurationTests` does not pin: each
/// out-of-range field is an `AsyncToolsError` (`.invalidArgument`) naming the field.
@Suite("Server bad input")
struct ServerBadInputTests {
  private func expectInvalid(_ configuration: ServerConfiguration, mentioning word: String) {
    let error = #expect(throws: AsyncToolsError.self) { try configuration.validate() }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains(word) == true, "\(String(describing: error)) should name \(word)")
  }

  private func threads(_ workers: Int = 1) -> ServerConfiguration {
    ServerConfiguration(mode: .threads, numWorkers: workers)
  }

  @Test(arguments: [0, -1])
  func aBacklogBelowOneIsInvalid(backlog: Int) {
    var configuration = threads()
    configuration.listen = .init(port: 0, backlog: backlog)
    expectInvalid(configuration, mentioning: "backlog")
  }

  @Test func aNegativePortIsInvalid() {
    var configuration = threads()
    configuration.listen = .init(port: -1)
    expectInvalid(configuration, mentioning: "port")
  }

  @Test(arguments: [Duration.zero, .seconds(-1)])
  func aNonPositiveRestartWindowIsInvalid(window: Duration) {
    var configuration = threads()
    configuration.onWorkerFailure = .restart(maxRestarts: 3, within: window)
    expectInvalid(configuration, mentioning: "restart window")
  }

  @Test func aNegativeRestartCountIsInvalid() {
    var configuration = threads()
    configuration.onWorkerFailure = .restart(maxRestarts: -1, within: .seconds(1))
    expectInvalid(configuration, mentioning: "maxRestarts")
  }

  @Test func aNegativeGracefulShutdownTimeoutIsInvalid() {
    var configuration = threads()
    configuration.gracefulShutdownTimeout = .seconds(-1)
    expectInvalid(configuration, mentioning: "gracefulShutdownTimeout")
  }

  @Test func aZeroWaitTimeoutIsInvalid() {
    var configuration = threads()
    configuration.waitTimeout = .zero
    expectInvalid(configuration, mentioning: "waitTimeout")
  }

  @Test func theHighestValidValuesAreAccepted() throws {
    var configuration = threads(64)
    configuration.listen = .init(port: 65535, backlog: 1)
    configuration.onWorkerFailure = .restart(maxRestarts: 1, within: .nanoseconds(1))
    try configuration.validate()
  }
}
