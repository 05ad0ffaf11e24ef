import AsyncTools
import AsyncToolsServer
import Testing
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// Bad input is a thrown `AsyncToolsError` naming the field, before anything starts.
@Suite("ServerConfiguration")
struct ServerConfigurationTests {
  private func expectInvalid(_ configuration: ServerConfiguration, mentioning word: String) async {
    let workerRan = Probe()
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await startServer(configuration: configuration) { _ in workerRan.record("ran") }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains(word) == true, "\(String(describing: error)) should name \(word)")
    #expect(workerRan.events.isEmpty)
  }

  @Test func defaultsAreDocumented() {
    let configuration = ServerConfiguration()
    #expect(configuration.mode == .processes)
    #expect(configuration.numWorkers == 1)
    #expect(configuration.stopSignals == [.sigint, .sigterm])
    #expect(configuration.defaultStopSignal == .sigterm)
    #expect(configuration.waitTimeout == nil)
    #expect(configuration.gracefulShutdownTimeout == nil)
    #expect(configuration.onWorkerFailure == .stopServer)
    #expect(configuration.runToCompletion == false)
    #expect(configuration.trapsSignals == true)
    #expect(configuration.listen == nil)
  }

  @Test func zeroWorkersIsInvalid() async {
    await expectInvalid(threadsConfiguration(workers: 0), mentioning: "numWorkers")
  }

  @Test func negativeWorkersIsInvalid() async {
    await expectInvalid(threadsConfiguration(workers: -2), mentioning: "numWorkers")
  }

  @Test func emptyStopSignalsIsInvalid() async {
    var configuration = threadsConfiguration(workers: 1)
    configuration.stopSignals = []
    await expectInvalid(configuration, mentioning: "stopSignals")
  }

  @Test func negativeWaitTimeoutIsInvalid() async {
    var configuration = threadsConfiguration(workers: 1)
    configuration.waitTimeout = .seconds(-1)
    await expectInvalid(configuration, mentioning: "waitTimeout")
  }

  @Test func zeroGracefulShutdownTimeoutIsInvalid() async {
    var configuration = threadsConfiguration(workers: 1)
    configuration.gracefulShutdownTimeout = .zero
    await expectInvalid(configuration, mentioning: "gracefulShutdownTimeout")
  }

  @Test func aRestartPolicyWithoutRestartsIsInvalid() async {
    var configuration = threadsConfiguration(workers: 1)
    configuration.onWorkerFailure = .restart(maxRestarts: 0, within: .seconds(1))
    await expectInvalid(configuration, mentioning: "maxRestarts")
  }

  @Test func aPortOutOfRangeIsInvalid() async {
    var configuration = threadsConfiguration(workers: 1)
    configuration.listen = .init(port: 70000)
    await expectInvalid(configuration, mentioning: "port")
  }

  @Test func aPortInUseIsAClearErrorBeforeAnyWorkerStarts() async throws {
    // Occupy an ephemeral port with a listening socket of our own.
    let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
    #expect(fd >= 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    try #require(bound)
    let port = Int(UInt16(bigEndian: address.sin_port))

    var configuration = threadsConfiguration(workers: 2)
    configuration.listen = .init(port: port)
    let workerRan = Probe()
    let error = await #expect(throws: ServerError.self) {
      _ = try await startServer(configuration: configuration) { _ in workerRan.record("ran") }
    }
    #expect(error?.code == .addressInUse)
    #expect(error?.message == "cannot listen on 127.0.0.1:\(port): Address already in use")
    #expect(workerRan.events.isEmpty)
  }

  @Test func anUnresolvableHostIsAClearError() async {
    var configuration = threadsConfiguration(workers: 1)
    configuration.listen = .init(host: "not an address", port: 0)
    let error = await #expect(throws: ServerError.self) {
      _ = try await startServer(configuration: configuration) { _ in }
    }
    #expect(error?.code == .bindFailed)
    #expect(error?.message.hasPrefix("cannot listen on not an address:0") == true)
  }
}
