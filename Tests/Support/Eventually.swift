import Testing

/// Yields until `condition` holds: for a state that has no event to await (a flag flipped inside the library).
/// Records an issue naming `what` and returns instead of hanging if it does not hold within `limit` of real time;
/// passing tests never come near the limit.
package func waitUntil(
  _ what: String, limit: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation,
  _ condition: () -> Bool
) async {
  let deadline = ContinuousClock.now.advanced(by: limit)
  while !condition() {
    if ContinuousClock.now > deadline {
      Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
      return
    }
    await Task.yield()
  }
}
