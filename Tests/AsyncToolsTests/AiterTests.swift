import AsyncTools
import Testing

@Suite("aiter(sentinel:)")
struct AiterTests {
  /// Hands out the given values one per call, counting calls.
  final class Source: Sendable {
    private let state: Locked<(values: [Int?], calls: Int)>
    init(_ values: [Int?]) { state = Locked((values, 0)) }
    func next() async -> Int? {
      state.withLock { state in
        state.calls += 1
        return state.values.isEmpty ? nil : state.values.removeFirst()
      }
    }
    var calls: Int { state.withLock { $0.calls } }
  }

  @Test func endsAtTheSentinelWithoutProducingIt() async {
    let source = Source([1, 2, 3, 0, 4])
    var seen: [Int] = []
    for await value in aiter(sentinel: 0, { await source.next() ?? 0 }) {
      seen.append(value)
    }
    #expect(seen == [1, 2, 3])
    #expect(source.calls == 4, "the closure is not called after the sentinel")
  }

  @Test func nilIsAValidSentinelForOptionalElements() async {
    let source = Source([5, 6])
    var seen: [Int] = []
    for await value in aiter(sentinel: nil, { await source.next() }) {
      seen.append(value!)
    }
    #expect(seen == [5, 6])
  }

  @Test func comparesByEqualityNotIdentity() async {
    let source = Source([1, 2])
    let strings = aiter(sentinel: "2") { await source.next().map { String($0) } ?? "end" }
    var seen: [String] = []
    for await string in strings { seen.append(string) }
    #expect(seen == ["1"], "a freshly built \"2\" equals the sentinel")
  }

  @Test func isLazyAndCallsTheClosureOncePerElement() async {
    let source = Source([1, 2, 3, 4])
    var iterator = aiter(sentinel: 0, { await source.next() ?? 0 }).makeAsyncIterator()
    #expect(source.calls == 0, "nothing runs before the first next()")
    #expect(await iterator.next() == 1)
    #expect(source.calls == 1, "no prefetching")
  }

  @Test func staysFinishedAfterTheSentinel() async {
    let source = Source([0, 1, 2])
    var iterator = aiter(sentinel: 0, { await source.next() ?? 0 }).makeAsyncIterator()
    #expect(await iterator.next() == nil)
    #expect(await iterator.next() == nil)
    #expect(source.calls == 1)
  }

  @Test func throwingClosureMakesAThrowingSequenceWithItsTypedError() async throws {
    let source = Source([1, 2, 3])
    let sequence = aiter(sentinel: 0) { () throws(FunctoolsTestError) -> Int in
      let value = await source.next() ?? 0
      if value == 2 { throw FunctoolsTestError(id: 2) }
      return value
    }
    var seen: [Int] = []
    var iterator = sequence.makeAsyncIterator()
    do {
      while let value = try await iterator.next() { seen.append(value) }
      Issue.record("expected an error")
    } catch {
      // `error` is statically a FunctoolsTestError: the sequence's Failure is the closure's error type.
      #expect(error == FunctoolsTestError(id: 2))
    }
    #expect(seen == [1])
    #expect(try await iterator.next() == nil, "the sequence is finished after an error")
    #expect(source.calls == 2)
  }

  @Test func nonThrowingClosureMakesANonThrowingSequence() {
    let sequence = aiter(sentinel: 0) { 1 }
    #expect(type(of: sequence) == AsyncSentinelSequence<Int, Never>.self)
  }
}
