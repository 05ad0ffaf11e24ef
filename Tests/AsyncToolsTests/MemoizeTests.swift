import AsyncTools
import Testing

@Suite("memoize")
struct MemoizeTests {
  @Test func callsTheFunctionOncePerArgumentValue() async throws {
    let calls = FunctoolsCounter()
    let square = try memoize(maxSize: 10) { (n: Int) in
      calls.increment()
      return n * n
    }
    #expect(try await square(3) == 9)
    #expect(try await square(3) == 9)
    #expect(try await square(4) == 16)
    #expect(calls.current == 2)
    #expect(square.info() == CacheInfo(hits: 1, misses: 2, maxSize: 10, currentSize: 2, inFlight: 0))
  }

  @Test func followsLRUOrderLikeAiotoolsTest() async throws {
    let calls = FunctoolsCounter()
    let calc = try memoize(maxSize: 2) { (n: Int) in
      calls.increment()
      return n
    }
    // 1 miss, 2 miss, 1 hit (2 is now least recent), 3 miss (evicts 2), 2 miss (evicts 1), 2 hit.
    for n in [1, 2, 1, 3, 2, 2] { _ = try await calc(n) }
    #expect(calc.info().hits == 2)
    #expect(calc.info().misses == 4)
    #expect(calls.current == 4)
    #expect(calc.info().currentSize == 2)
    #expect(!calc.contains(1) && calc.contains(2) && calc.contains(3))
  }

  @Test func cacheControlsClearInvalidateAndContains() async throws {
    let calls = FunctoolsCounter()
    let double = try memoize(maxSize: nil) { (n: Int) in
      calls.increment()
      return n * 2
    }
    _ = try await double(1)
    _ = try await double(2)
    #expect(double.contains(1))
    #expect(double.invalidate(1))
    #expect(!double.contains(1) && double.contains(2))
    _ = try await double(1)
    #expect(calls.current == 3)
    double.clear()
    #expect(double.info() == CacheInfo(hits: 0, misses: 0, maxSize: nil, currentSize: 0, inFlight: 0))
  }

  @Test func concurrentCallsWithEqualArgumentsShareOneCall() async throws {
    let calls = FunctoolsCounter()
    let gate = FunctoolsGate()
    let slow = try memoize { (n: Int) in
      calls.increment()
      await gate.wait()
      return n + 1
    }
    async let first = slow(1)
    async let second = slow(1)
    await functoolsEventually { slow.info().hits + slow.info().misses == 2 }
    gate.open()
    #expect(try await [first, second] == [2, 2])
    #expect(calls.current == 1)
  }

  @Test func errorsAreNotMemoized() async throws {
    let calls = FunctoolsCounter()
    let flaky = try memoize { (n: Int) -> Int in
      if calls.increment() == 1 { throw FunctoolsTestError(id: n) }
      return n
    }
    await #expect(throws: FunctoolsTestError(id: 5)) { try await flaky(5) }
    #expect(try await flaky(5) == 5)
  }

  /// aiotools' `typed=True` keeps `f(3)` and `f(3.0)` apart. Here the argument type is one concrete `Hashable` type,
  /// so a function that accepts both must say how (an enum), and then they can never collide. (`AnyHashable`, which
  /// would equate `3` and `3.0`, is not `Sendable`, so it cannot be a key at all.)
  @Test func keysOfDifferentTypesNeverCollide() async throws {
    enum Number: Hashable, Sendable {
      case int(Int)
      case double(Double)
    }
    let describe = try memoize { (n: Number) in "\(n)" }
    #expect(try await describe(.int(3)) == "int(3)")
    #expect(try await describe(.double(3.0)) == "double(3.0)")
    #expect(describe.info().misses == 2)
  }

  @Test func multipleArgumentsGoInOneHashableStruct() async throws {
    struct Query: Hashable, Sendable {
      var table: String
      var id: Int
    }
    let fetch = try memoize(maxSize: 8) { (query: Query) in "\(query.table)#\(query.id)" }
    #expect(try await fetch(Query(table: "users", id: 1)) == "users#1")
    #expect(try await fetch(Query(table: "users", id: 1)) == "users#1")
    #expect(fetch.info().hits == 1)
  }

  @Test(arguments: [0, -3])
  func nonPositiveMaxSizeIsRejected(maxSize: Int) {
    let error = #expect(throws: AsyncToolsError.self) { try memoize(maxSize: maxSize) { (n: Int) in n } }
    #expect(error?.code == .invalidArgument)
  }

  @Test func nonPositiveExpireAfterIsRejected() {
    let error = #expect(throws: AsyncToolsError.self) {
      try memoize(expireAfter: .zero) { (n: Int) in n }
    }
    #expect(error?.code == .invalidArgument)
  }
}
