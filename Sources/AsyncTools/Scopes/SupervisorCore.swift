import DequeModule
import Synchronization

/// The restart machinery shared by the children of one supervisor: the intensity window, the random source for
/// jitter, the clock, and the first reason to give up. Only restarting children touch it, and only when they end,
/// so ``RestartPolicy/never`` children cost nothing extra.
final class SupervisorCore: Sendable {
  struct State {
    /// When recent restarts happened, as offsets from the supervisor's start.
    var window: RestartWindow
    var gaveUp: SupervisorError?
  }

  let intensity: RestartIntensity
  let backoff: Backoff
  let errorHandler: Supervisor.ErrorHandler
  let onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)?
  /// Called once, from the child that crossed the limit, the moment the supervisor gives up.
  let onGiveUp: (@Sendable (SupervisorError) -> Void)?
  private let elapsed: @Sendable () -> Duration
  private let sleep: @Sendable (Duration) async throws -> Void
  private let random: Locked<any RandomNumberGenerator & Sendable>
  private let state: Locked<State>
  private let unnamedChildren = Atomic<Int>(0)

  init<C: Clock<Duration>>(
    intensity: RestartIntensity, backoff: Backoff, clock: C, random: some RandomNumberGenerator & Sendable,
    errorHandler: @escaping Supervisor.ErrorHandler, onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)?,
    onGiveUp: (@Sendable (SupervisorError) -> Void)?
  ) {
    self.intensity = intensity
    self.backoff = backoff
    self.errorHandler = errorHandler
    self.onRestart = onRestart
    self.onGiveUp = onGiveUp
    let start = clock.now
    self.elapsed = { start.duration(to: clock.now) }
    self.sleep = { delay in try await clock.sleep(until: clock.now.advanced(by: delay), tolerance: nil) }
    self.random = Locked(random)
    self.state = Locked(State(window: RestartWindow(maxRestarts: intensity.maxRestarts, period: intensity.period)))
  }

  /// The first reason the supervisor gave up, if it did.
  var gaveUp: SupervisorError? { state.withLock { $0.gaveUp } }

  /// A child's name as the error handler and restart events get it: the name given to `addChild`, or `"child #N"`
  /// for a child added without one, numbered from 1 in the order such children are added. Only the number is taken
  /// when the child is added; the text is made when a failure or a restart needs it, so a child that ends quietly
  /// costs no string.
  enum ChildName: Sendable, CustomStringConvertible {
    case given(String)
    case unnamed(Int)

    var description: String {
      switch self {
      case .given(let name): name
      case .unnamed(let number): "child #\(number)"
      }
    }
  }

  /// The name of a child added with `name` (`nil`: the next `"child #N"`).
  func childName(_ name: String?) -> ChildName {
    if let name { return .given(name) }
    return .unnamed(unnamedChildren.wrappingAdd(1, ordering: .relaxed).newValue)
  }

  /// Hands the failure of a ``RestartPolicy/never`` child to the error handler with the child's name; a
  /// `CancellationError` is not a failure.
  func reportOnce(_ error: any Error, of child: ChildName) {
    if !(error is CancellationError) { errorHandler(error, child.description) }
  }

  /// Runs a ``RestartPolicy/never`` child once; its failure goes to the error handler with the child's name, and
  /// is rethrown for its handle.
  nonisolated(nonsending) func runOnce(child: ChildName, _ operation: () async throws -> Void) async throws {
    do {
      try await operation()
    } catch {
      reportOnce(error, of: child)
      throw error
    }
  }

  /// Runs a restartable child until its policy says stop, the supervisor is cancelled, or the intensity limit
  /// is crossed (then throws ``SupervisorError``).
  /// `scope` is the supervisor's task scope: a ``TaskScope/Handle/cancelAll()`` reaches the group through a helper
  /// task, so the loop also checks the request itself to never restart a child of a cancelled supervisor.
  nonisolated(nonsending) func supervise(
    child name: ChildName, restart: RestartPolicy, scope: TaskScopeCore, operation: () async throws -> Void
  ) async throws(SupervisorError) {
    let child = name.description
    var consecutive = 0
    var attempt = 0
    while !Task.isCancelled && !scope.isCancelRequested {
      let runStarted = elapsed()
      var failure: (any Error)?
      do {
        try await operation()
      } catch is CancellationError {
        // Not a failure: treated like a normal return.
      } catch {
        errorHandler(error, child)
        failure = error
      }
      if Task.isCancelled || scope.isCancelRequested { return }
      switch restart {
      case .never: return
      case .onFailure: if failure == nil { return }
      case .always: break
      }
      let now = elapsed()
      if now - runStarted >= intensity.period { consecutive = 0 }
      try recordRestart(of: child, at: now, lastFailure: failure)
      let delay = backoff.delay(beforeRestart: consecutive, unit: backoff.jitter > 0 ? randomUnit() : 0)
      consecutive += 1
      attempt += 1
      onRestart?(Supervisor.RestartEvent(child: child, attempt: attempt, lastFailure: failure, delay: delay))
      if delay > .zero {
        do { try await sleep(delay) } catch { return }  // cancelled while backing off: the supervisor is stopping
      }
    }
  }

  private func recordRestart(of child: String, at now: Duration, lastFailure: (any Error)?) throws(SupervisorError) {
    let intensity = self.intensity
    let (error, first) = state.withLock { state -> (SupervisorError?, Bool) in
      if let gaveUp = state.gaveUp { return (gaveUp, false) }
      if state.window.admit(at: now) { return (nil, false) }
      let error = SupervisorError(
        code: .restartIntensityExceeded, child: child, restarts: state.window.restarts.count + 1,
        period: intensity.period, lastFailure: lastFailure)
      state.gaveUp = error
      return (error, true)
    }
    if let error {
      if first { onGiveUp?(error) }
      throw error
    }
  }

  private func randomUnit() -> Double {
    random.withLock { generator in Double(generator.next() >> 11) * 0x1p-53 }
  }
}
