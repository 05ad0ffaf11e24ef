import Synchronization

/// A `Mutex` whose critical sections ThreadSanitizer can order.
///
/// Why: on Linux, Synchronization's `Mutex` hands a *contended* lock and unlock to the kernel (a
/// priority-inheritance futex) from uninstrumented code in the standard library, so ThreadSanitizer
/// misses the happens-before edge between two critical sections and reports false data races under
/// contention. An acquiring load at the start and a releasing store at the end of every critical
/// section, on an `Atomic` beside the mutex, give ThreadSanitizer that edge. On x86-64 and arm64
/// both compile to plain loads and stores, so the cost outside sanitizer builds is negligible.
///
/// Use it exactly like `Mutex` (`let state = SanitizedMutex(State())`, `state.withLock { … }`).
package struct SanitizedMutex<Value: ~Copyable>: ~Copyable {
  private let mutex: Mutex<Value>
  private let fence = Atomic<UInt8>(0)

  /// Creates a mutex protecting `initialValue`.
  package init(_ initialValue: consuming sending Value) {
    mutex = Mutex(initialValue)
  }

  /// Runs `body` with exclusive access to the protected value.
  package borrowing func withLock<Result: ~Copyable, E: Error>(
    _ body: (inout sending Value) throws(E) -> sending Result
  ) throws(E) -> sending Result {
    try mutex.withLock { (value) throws(E) -> sending Result in
      _ = fence.load(ordering: .acquiring)
      defer { fence.store(0, ordering: .releasing) }
      return try body(&value)
    }
  }
}

// Safe for the same reason `Mutex` is (the standard library declares it `@unchecked Sendable` for
// any value): the value is only reached through `withLock`. The fence is an `Atomic`.
extension SanitizedMutex: @unchecked Sendable where Value: ~Copyable {}
