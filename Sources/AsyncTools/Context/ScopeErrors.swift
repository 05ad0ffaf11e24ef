/// The one rule every scope of the Context folder uses to report a body error together with
/// cleanup errors, so nothing is lost and the common case stays unwrapped:
///
/// - no error: `nil`;
/// - exactly one error (the body's, or a single cleanup's): that error, unchanged;
/// - two or more: one ``ErrorGroup`` with the body's error first, then the cleanup errors in the
///   order the cleanups ran.
func scopeError(body: (any Error)?, cleanups: [any Error]) -> (any Error)? {
  switch (body, cleanups.count) {
  case (nil, 0): return nil
  case (let body?, 0): return body
  case (nil, 1): return cleanups[0]
  case (let body?, _): return ErrorGroup("the body of a scope failed and so did its cleanup", [body] + cleanups)
  case (nil, _): return ErrorGroup("\(cleanups.count) cleanups of a scope failed", cleanups)
  }
}
