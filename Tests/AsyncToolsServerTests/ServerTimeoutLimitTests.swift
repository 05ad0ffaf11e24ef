import AsyncTools
import AsyncToolsServer
import Testing

/// A duration too long to sleep for (the clock's deadline would overflow and trap) is an
/// `.invalidArgument` naming the field, never a crash once the server runs.
@Suite("Server timeout limits")
struct ServerTimeoutLimitTests {
  static let tooLong: [Duration] = [.seconds(Int64.max), .seconds(1_000_000_001)]

  private func expectInvalid(_ configuration: ServerConfiguration, mentioning word: String) {
    let error = #expect(throws: AsyncToolsError.self) { try configuration.validate() }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.hasPrefix("\(word) must be at most") == true, "\(String(describing: error))")
  }

  @Test(arguments: tooLong)
  func aWaitTimeoutTooLongToSleepForIsInvalid(timeout: Duration) {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 1)
    configuration.waitTimeout = timeout
    expectInvalid(configuration, mentioning: "waitTimeout")
  }

  @Test(arguments: tooLong)
  func aGracefulShutdownTimeoutTooLongToSleepForIsInvalid(timeout: Duration) {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 1)
    configuration.gracefulShutdownTimeout = timeout
    expectInvalid(configuration, mentioning: "gracefulShutdownTimeout")
  }

  @Test(arguments: tooLong)
  func aRestartWindowTooLongIsInvalid(window: Duration) {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 1)
    configuration.onWorkerFailure = .restart(maxRestarts: 1, within: window)
    expectInvalid(configuration, mentioning: "restart window")
  }

  @Test func theLongestTimeoutIsAccepted() throws {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 1)
    configuration.waitTimeout = .seconds(1_000_000_000)
    configuration.gracefulShutdownTimeout = .seconds(1_000_000_000)
    configuration.onWorkerFailure = .restart(maxRestarts: 1, within: .seconds(1_000_000_000))
    try configuration.validate()
  }

  @Test func aTinyTimeoutIsReportedExactlyNotRoundedToZero() {
    // The message shows the duration as given (100 µs), not "0.0 seconds".
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 1)
    configuration.waitTimeout = .nanoseconds(-100_000)
    let error = #expect(throws: AsyncToolsError.self) { try configuration.validate() }
    #expect(error?.message.contains("-0.0001 seconds") == true, "\(String(describing: error))")
  }
}
