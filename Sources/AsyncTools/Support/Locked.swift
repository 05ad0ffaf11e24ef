import CAsyncToolsShims
import Synchronization

/// A value protected by a `Mutex` whose critical sections ThreadSanitizer can see.
///
/// Use it wherever AsyncTools would use `Synchronization.Mutex`: same `withLock`, same cost, plus
/// two ThreadSanitizer annotations (a predictable branch each when TSan is not linked).
///
/// Why: on Linux, `Mutex` locks through the futex in the prebuilt Synchronization library, which
/// TSan does not instrument, so two threads that take the same `Mutex` look unsynchronised to it
/// and every such pair is reported as a data race. The suite runs under TSan in CI and must report
/// nothing real, so the lock announces each critical section with `__tsan_acquire` /
/// `__tsan_release` on a token of its own (not on the value: taking the value's address is itself
/// an access TSan would see before the acquire).
package struct Locked<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
  // @unchecked Sendable: `mutex` is Sendable; `token` is an immutable address used only as an
  // identity for the TSan annotations, never dereferenced.
  @usableFromInline let mutex: Mutex<Value>
  @usableFromInline let token: UnsafeMutableRawPointer

  /// Creates a lock protecting `initialValue`.
  @inlinable
  package init(_ initialValue: consuming sending Value) {
    mutex = Mutex(initialValue)
    token = .allocate(byteCount: 1, alignment: 1)
  }

  deinit {
    token.deallocate()
  }

  /// Runs `body` with exclusive access to the value.
  @inlinable
  package borrowing func withLock<Result: ~Copyable, E: Error>(
    _ body: (inout sending Value) throws(E) -> sending Result
  ) throws(E) -> sending Result {
    try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
      asynctools_tsan_acquire(token)
      defer { asynctools_tsan_release(token) }
      return try body(&value)
    }
  }
}
