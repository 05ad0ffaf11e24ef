import UnixSignals

/// Process mode: each worker is this executable re-executed (see `WorkerProcessRuntime`).
final class ProcessWorkerLauncher: WorkerLauncher {
  init(configuration: ServerConfiguration, arguments: [String], socket: ListeningSocket?) throws {
    throw ServerError(code: .workerLaunchFailed, message: "process mode is not available yet")
  }

  func launch(slot: Int, index: Int, events: AsyncStream<SupervisorEvent>.Continuation) async throws -> any WorkerHandle {
    throw ServerError(code: .workerLaunchFailed, message: "process mode is not available yet")
  }

  func finish() async {}
}
