import Synchronization

/// A value protected by a `Mutex` whose critical sections ThreadSanitizer can order.
///
/// Use it wherever AsyncTools would use `Synchronization.Mutex`: the same `withLock`, at the same
/// cost outside sanitizer builds. Every module and test of the package uses it instead of `Mutex`.
///
/// Why: on Linux, `Mutex` hands a contended lock and unlock to the kernel (a futex) from
/// uninstrumented code in the standard library, so ThreadSanitizer misses the happens-before edge
/// between two critical sections and reports a data race for every pair of threads that share a
/// `Mutex` (seen in the virtual-time driver, the process monitor thread and the server tests). An
/// acquiring load at the start and a releasing store at the end of every critical section, on an
/// `Atomic` beside the mutex, give ThreadSanitizer that edge. On x86-64 and arm64 both are plain
/// loads and stores.
@usableFromInline
package struct Locked<Value: ~Copyable>: ~Copyable {
  @usableFromInline let mutex: Mutex<Value>
  @usableFromInline let fence = Atomic<UInt8>(0)

  /// Creates a lock protecting `initialValue`.
  @inlinable
  package init(_ initialValue: consuming sending Value) {
    mutex = Mutex(initialValue)
  }

  /// Runs `body` with exclusive access to the protected value.
  @inlinable
  package borrowing func withLock<Result: ~Copyable, E: Error>(
    _ body: (inout sending Value) throws(E) -> sending Result
  ) throws(E) -> sending Result {
    try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
      _ = fence.load(ordering: .acquiring)
      defer { fence.store(0, ordering: .releasing) }
      return try body(&value)
    }
  }
}

// Safe for the same reason `Mutex` is (the standard library declares it `@unchecked Sendable` for
// any value): the value is only reached through `withLock`; the fence is an `Atomic`.
extension Locked: @unchecked Sendable where Value: ~Copyable {}
