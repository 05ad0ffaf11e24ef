/// Enters every manager concurrently, runs `body` with all their values, then exits every entered
/// manager concurrently: aiotools' `actxgroup` / `AsyncContextGroup`.
///
/// ```swift
/// let result = try await withContextGroup([replica("a"), replica("b"), replica("c")]) { connections in
///   let live = connections.compactMap { try? $0.get() }   // members that failed to enter are .failure
///   return try await live.first?.query("select 1")
/// }
/// for case .failed(let error) in result.exits { print("close failed:", error) }
/// ```
///
/// - **Enter:** all members are entered at once, each in a child task. A member whose
///   ``AsyncContextManager/enter()`` throws (a `CancellationError` included) shows up as
///   `.failure(error)` at its index in `values`; the others still enter, and the body still runs.
///   `values` is in the order of `managers` and stays the caller's own array.
/// - **Exit:** after the body, every member that entered is exited concurrently, each with the
///   body's ``ExitOutcome``, inside one cancellation shield, so no exit is cut short. A member
///   whose enter failed acquired nothing and is **not** exited (aiotools calls `__aexit__` on it
///   anyway); its slot in ``ContextGroupResult/exits`` is ``ContextGroupExit/notEntered``.
///
/// Errors: when the body returns, exit failures do not throw — a group is about partial failure,
/// so they are reported per member in ``ContextGroupResult/exits`` next to the body's value (use
/// ``ContextGroupResult/get()`` to turn them into a thrown error). When the body throws there is
/// no value to carry them, so the rule of ``withContext(_:isolation:_:)`` applies: the body's error
/// alone is rethrown unchanged; with exit failures too, one ``ErrorGroup`` holds the body's error
/// first and then the exit errors in member order. No member can suppress the body's error.
///
/// - Parameters:
///   - managers: The members, entered concurrently. May be empty.
///   - isolation: The actor the body runs on; inferred from the caller.
///   - body: Receives one `Result` per member, in the order of `managers`.
/// - Returns: The body's value and how each member's exit went.
@discardableResult
public func withContextGroup<Value: Sendable, T>(
  _ managers: [any AsyncContextManager<Value>],
  isolation: isolated (any Actor)? = #isolation,
  _ body: ([Result<Value, any Error>]) async throws -> T
) async throws -> ContextGroupResult<T> {
  let values = await enterAll(managers)
  let result: Result<T, any Error>
  do {
    result = .success(try await body(values))
  } catch {
    result = .failure(error)
  }
  let outcome: ExitOutcome
  switch result {
  case .success: outcome = .success
  case .failure(let error): outcome = .failure(error)
  }
  let exits = await exitAll(managers, values: values, outcome: outcome)
  switch result {
  case .success(let value):
    return ContextGroupResult(value: value, exits: exits)
  case .failure(let error):
    throw scopeError(body: error, cleanups: exits.compactMap(\.error))!
  }
}

private func enterAll<Value: Sendable>(
  _ managers: [any AsyncContextManager<Value>]
) async -> [Result<Value, any Error>] {
  if managers.isEmpty { return [] }
  return await withTaskGroup(of: (Int, Result<Value, any Error>).self) { group in
    for (index, manager) in managers.enumerated() {
      group.addTask {
        do {
          return (index, .success(try await manager.enter()))
        } catch {
          return (index, .failure(error))
        }
      }
    }
    var values = [Result<Value, any Error>?](repeating: nil, count: managers.count)
    for await (index, value) in group { values[index] = value }
    return values.map { $0! }
  }
}

private func exitAll<Value: Sendable>(
  _ managers: [any AsyncContextManager<Value>],
  values: [Result<Value, any Error>],
  outcome: ExitOutcome
) async -> [ContextGroupExit] {
  let entered = values.indices.filter { if case .success = values[$0] { true } else { false } }
  var exits = [ContextGroupExit](repeating: .notEntered, count: managers.count)
  if entered.isEmpty { return exits }
  let finished = await _runShielded {
    await withTaskGroup(of: (Int, ContextGroupExit).self) { group in
      for index in entered {
        group.addTask {
          do {
            try await managers[index].exit(outcome)
            return (index, .exited)
          } catch {
            return (index, .failed(error))
          }
        }
      }
      var finished: [(Int, ContextGroupExit)] = []
      for await exit in group { finished.append(exit) }
      return finished
    }
  }
  for (index, exit) in finished { exits[index] = exit }
  return exits
}

/// How one member of a context group was exited.
public enum ContextGroupExit: Sendable {
  /// ``AsyncContextManager/exit(_:)`` returned normally.
  case exited
  /// ``AsyncContextManager/exit(_:)`` threw this error.
  case failed(any Error)
  /// The member's ``AsyncContextManager/enter()`` failed, so it had nothing to release and its
  /// ``AsyncContextManager/exit(_:)`` was not called.
  case notEntered

  /// The error the exit threw, or `nil`.
  public var error: (any Error)? {
    if case .failed(let error) = self { error } else { nil }
  }
}

extension ContextGroupExit: CustomStringConvertible {
  /// `exited`, `failed(<error>)` or `notEntered`.
  public var description: String {
    switch self {
    case .exited: "exited"
    case .failed(let error): "failed(\(error))"
    case .notEntered: "notEntered"
    }
  }
}

/// What ``withContextGroup(_:isolation:_:)`` returns: the body's value and each member's exit.
public struct ContextGroupResult<Value> {
  /// What the body returned.
  public var value: Value
  /// How each member was exited, in the order of the managers passed to the group.
  public var exits: [ContextGroupExit]

  /// Creates a result (the group builds these; public for tests and adapters).
  public init(value: Value, exits: [ContextGroupExit]) {
    self.value = value
    self.exits = exits
  }

  /// The errors thrown by members' exits, in member order.
  public var exitErrors: [any Error] { exits.compactMap(\.error) }

  /// The body's value if every entered member exited cleanly; otherwise throws the exit error
  /// (one ``ErrorGroup`` of them, in member order, when several failed).
  public func get() throws -> Value {
    if let error = scopeError(body: nil, cleanups: exitErrors) { throw error }
    return value
  }
}

extension ContextGroupResult: Sendable where Value: Sendable {}
