import Synchronization

/// An ``AsyncContextManager`` built from one closure that acquires a resource, hands it to the
/// scope's body, and releases it: aiotools' `actxmgr` (Python's `@asynccontextmanager`) in Swift.
///
/// ```swift
/// func connection(to host: String) -> AsyncContext<Connection> {
///   AsyncContext { body in
///     let connection = try await Connection.open(host)   // acquire
///     let outcome = await body(connection)                // the scope's body runs here
///     if outcome.isFailure { await connection.rollback() }
///     await connection.close()                            // release
///   }
/// }
///
/// try await withContext(connection(to: "db")) { connection in
///   try await connection.execute("insert …")
/// }
/// ```
///
/// `body(value)` suspends the closure until the scope's body is over and then returns its
/// ``ExitOutcome``. Unlike Python's `yield`, it never throws the body's error into the closure, so
/// the release written after it always runs — no `finally` needed, and no cleanup skipped because
/// an error came out of the `yield` (aiotools' `actxgroup` quirk). The body's error still reaches the
/// caller of the scope, unchanged.
///
/// Semantics:
/// - The closure runs in a task of its own, from ``enter()`` until it returns. While it is
///   acquiring, a cancellation of the entering task is forwarded to it (a hung acquire can be
///   cancelled). Once it has handed out a value it is no longer cancelled by anyone, so the release
///   runs to the end. (If the entering task is cancelled during the acquire and the acquire
///   finishes anyway, the closure's task stays flagged as cancelled for its release.)
/// - Throwing before calling `body` is an enter failure: the scope's body does not run and the
///   error propagates. Throwing after `body` returned is a cleanup failure, reported by ``exit(_:)``.
/// - Returning without calling `body` makes ``enter()`` throw ``AsyncToolsError/Code/invalidState``
///   (Python: "generator didn't yield"). Calling `body` a second time returns
///   `.failure(AsyncToolsError)` at once and makes ``exit(_:)`` throw that
///   ``AsyncToolsError/Code/invalidState`` error (Python: "generator didn't stop").
/// - One instance can be entered again after it was exited, but not twice at the same time:
///   a second concurrent ``enter()`` throws ``AsyncToolsError/Code/alreadyEntered``. To hand out
///   independent resources, make a function that returns a fresh `AsyncContext` per call.
public final class AsyncContext<Value: Sendable>: AsyncContextManager {
  /// What the closure calls to hand the acquired value to the scope's body.
  public struct Body: Sendable {
    fileprivate let activation: Activation

    /// Hands `value` to the scope's body, waits until the body is over, and returns how it ended.
    ///
    /// Never throws: a body error arrives as `.failure`, so the code after this call (the release)
    /// always runs.
    @discardableResult
    public func callAsFunction(_ value: Value) async -> ExitOutcome {
      await activation.handOut(value)
    }
  }

  private let run: @Sendable (Body) async throws -> Void
  private let current = Locked<Activation?>(nil)

  /// Creates a manager from a closure that acquires a value, passes it to `body`, then releases it.
  ///
  /// - Parameter run: Acquires, calls `body(value)` exactly once, and releases after it returns.
  public init(_ run: @escaping @Sendable (_ body: Body) async throws -> Void) {
    self.run = run
  }

  /// Starts the closure and returns the value it hands to its `body`.
  ///
  /// Throws what the closure threw before handing out a value, ``AsyncToolsError/Code/invalidState``
  /// if it returned without doing so, or ``AsyncToolsError/Code/alreadyEntered`` if this instance
  /// is entered and not yet exited.
  public func enter() async throws -> Value {
    let activation = Activation()
    try current.withLock { current throws(AsyncToolsError) in
      if current != nil {
        throw AsyncToolsError(
          code: .alreadyEntered, message: "this AsyncContext is already entered; exit it before entering it again")
      }
      current = activation
    }
    do {
      let run = self.run
      return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
          activation.start(continuation) { try await run(Body(activation: activation)) }
        }
      } onCancel: {
        activation.cancelAcquire()
      }
    } catch {
      current.withLock { $0 = nil }
      throw error
    }
  }

  /// Resumes the closure after its `body` call with `outcome`, and waits until it has returned.
  ///
  /// Throws what the closure threw after its `body` call (a release failure), or
  /// ``AsyncToolsError/Code/invalidState`` if the instance is not entered, is already exiting, or
  /// the closure called `body` twice.
  public func exit(_ outcome: ExitOutcome) async throws {
    let activation = current.withLock { $0 }
    guard let activation, activation.beginExit() else {
      throw AsyncToolsError(
        code: .invalidState, message: "exit() called on an AsyncContext that is not entered or is already exiting")
    }
    defer { current.withLock { $0 = nil } }
    try await activation.finish(outcome)
  }
}

extension AsyncContext {
  /// One run of the closure, from `enter()` to the end of `exit(_:)`.
  ///
  /// Two handshakes race here, so all of it lives behind one lock: the closure handing out its value
  /// versus `enter()` waiting for it (or the closure ending first), and `exit(_:)` delivering the
  /// outcome versus the closure reaching its `body` wait (either may come first), then the closure
  /// ending versus `exit(_:)` waiting for that.
  fileprivate final class Activation: Sendable {
    struct State {
      /// `enter()` waiting for the value; `nil` once the value was handed out or the closure ended.
      var valueWaiter: CheckedContinuation<Value, any Error>?
      var handedOut = false
      var exitBegun = false
      /// The closure's task, kept so a cancellation during the acquire can be forwarded.
      var task: Task<Void, Never>?
      var cancelRequested = false
      /// The outcome from `exit(_:)`, if it came before the closure waited for it.
      var outcome: ExitOutcome?
      var outcomeWaiter: CheckedContinuation<ExitOutcome, Never>?
      /// How the closure ended, if it ended before `exit(_:)` waited for it.
      var completion: Result<Void, any Error>?
      var exitWaiter: CheckedContinuation<Void, any Error>?
      var misuse: AsyncToolsError?
    }

    let state = Locked(State())

    /// Claims the one exit of this run: false before the value was handed out or on a second exit.
    func beginExit() -> Bool {
      state.withLock { state in
        guard state.handedOut, !state.exitBegun else { return false }
        state.exitBegun = true
        return true
      }
    }

    func start(_ waiter: CheckedContinuation<Value, any Error>, _ run: @escaping @Sendable () async throws -> Void) {
      state.withLock { $0.valueWaiter = waiter }
      let task = Task {
        let result: Result<Void, any Error>
        do {
          try await run()
          result = .success(())
        } catch {
          result = .failure(error)
        }
        self.closureEnded(result)
      }
      let cancelNow = state.withLock { state in
        state.task = task
        return state.cancelRequested
      }
      if cancelNow { task.cancel() }
    }

    /// Forwards the entering task's cancellation to the closure, but only while it is acquiring.
    func cancelAcquire() {
      let task: Task<Void, Never>? = state.withLock { state in
        // Not yet started counts as acquiring: a task cancelled before `enter()` runs its
        // cancellation handler before the closure's task exists.
        guard !state.handedOut else { return nil }
        state.cancelRequested = true
        return state.task
      }
      task?.cancel()
    }

    func handOut(_ value: Value) async -> ExitOutcome {
      let waiter: CheckedContinuation<Value, any Error>? = state.withLock { state in
        guard !state.handedOut, let waiter = state.valueWaiter else {
          state.misuse = AsyncToolsError(
            code: .invalidState, message: "an AsyncContext closure called its body more than once")
          return nil
        }
        state.handedOut = true
        state.valueWaiter = nil
        return waiter
      }
      guard let waiter else { return .failure(state.withLock { $0.misuse! }) }
      waiter.resume(returning: value)
      return await withCheckedContinuation { continuation in
        let ready: ExitOutcome? = state.withLock { state in
          if let outcome = state.outcome { return outcome }
          state.outcomeWaiter = continuation
          return nil
        }
        if let ready { continuation.resume(returning: ready) }
      }
    }

    private enum EndAction {
      case failEnter(CheckedContinuation<Value, any Error>, any Error)
      case resumeExit(CheckedContinuation<Void, any Error>, Result<Void, any Error>)
      case none
    }

    private func closureEnded(_ result: Result<Void, any Error>) {
      let action: EndAction = state.withLock { state in
        if let waiter = state.valueWaiter {
          state.valueWaiter = nil
          let error: any Error
          switch result {
          case .failure(let thrown): error = thrown
          case .success:
            error = AsyncToolsError(
              code: .invalidState, message: "an AsyncContext closure returned without handing a value to its body")
          }
          return .failEnter(waiter, error)
        }
        var completion = result
        if case .success = result, let misuse = state.misuse { completion = .failure(misuse) }
        if let waiter = state.exitWaiter {
          state.exitWaiter = nil
          return .resumeExit(waiter, completion)
        }
        state.completion = completion
        return .none
      }
      switch action {
      case .failEnter(let waiter, let error): waiter.resume(throwing: error)
      case .resumeExit(let waiter, let completion): waiter.resume(with: completion)
      case .none: break
      }
    }

    func finish(_ outcome: ExitOutcome) async throws {
      let outcomeWaiter: CheckedContinuation<ExitOutcome, Never>? = state.withLock { state in
        if let waiter = state.outcomeWaiter {
          state.outcomeWaiter = nil
          return waiter
        }
        state.outcome = outcome
        return nil
      }
      outcomeWaiter?.resume(returning: outcome)
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let ready: Result<Void, any Error>? = state.withLock { state in
          if let completion = state.completion { return completion }
          state.exitWaiter = continuation
          return nil
        }
        if let ready { continuation.resume(with: ready) }
      }
    }
  }
}
