import NIOCore
import Synchronization

/// The HTTP connections a worker serves: to ask them to finish on stop (NIO's
/// `ChannelShouldQuiesceEvent`, on which Hummingbird closes an idle keep-alive connection at once
/// and a busy one after its response), to wait until they have, and to close the rest.
final class OpenChannels: Sendable {
  private struct State {
    var channels: [ObjectIdentifier: any Channel] = [:]
    var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    var nextWaiter = 0
  }
  private let state = Mutex(State())

  func insert(_ channel: any Channel) {
    state.withLock { $0.channels[ObjectIdentifier(channel)] = channel }
  }

  func remove(_ channel: any Channel) {
    let waiters = state.withLock { state in
      state.channels[ObjectIdentifier(channel)] = nil
      guard state.channels.isEmpty else { return [CheckedContinuation<Void, any Error>]() }
      defer { state.waiters = [:] }
      return Array(state.waiters.values)
    }
    for waiter in waiters { waiter.resume() }
  }

  var count: Int { state.withLock { $0.channels.count } }

  /// Asks every connection to finish: idle ones close now, busy ones after their response.
  func quiesce() {
    for channel in state.withLock({ Array($0.channels.values) }) {
      channel.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
    }
  }

  /// Closes the connections still open (after the drain timeout).
  func closeAll() {
    for channel in state.withLock({ Array($0.channels.values) }) { channel.close(promise: nil) }
  }

  /// Returns once no connection is open; throws `CancellationError` when the task is cancelled
  /// (so a drain timeout can cut it short).
  func drained() async throws {
    let id = state.withLock { state in
      defer { state.nextWaiter += 1 }
      return state.nextWaiter
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let now = state.withLock { state -> Bool in
          if state.channels.isEmpty || Task.isCancelled { return true }
          state.waiters[id] = continuation
          return false
        }
        if now { continuation.resume() }
      }
      try Task.checkCancellation()
    } onCancel: {
      state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
    }
  }
}
