#if os(Linux)
import AsyncTools
import Testing

@testable import AsyncToolsProcess

/// The entry-point table and the encoding of arguments in the child's environment.
@Suite struct EntryPointsTests {
  @Test func emptyEntryPointNameIsAnInvalidArgument() {
    var registry = EntryPointRegistry()
    let error = #expect(throws: AsyncToolsError.self) { try registry.register("") { _ in 0 } }
    #expect(error?.code == .invalidArgument)
  }

  @Test func duplicateEntryPointNameIsAnInvalidArgument() throws {
    var registry = EntryPointRegistry()
    try registry.register("worker") { _ in 0 }
    let error = #expect(throws: AsyncToolsError.self) { try registry.register("worker") { _ in 1 } }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("worker") == true)
  }

  @Test func registeringAfterBootstrapIsAnInvalidState() {
    var registry = EntryPointRegistry()
    registry.bootstrapped = true
    let error = #expect(throws: AsyncToolsError.self) { try registry.register("late") { _ in 0 } }
    #expect(error?.code == .invalidState)
  }

  @Test func publicRegisterRejectsADuplicate() throws {
    try ChildProcess.register(entry: "tests.duplicate-check") { _ in 0 }
    let error = #expect(throws: AsyncToolsError.self) {
      try ChildProcess.register(entry: "tests.duplicate-check") { _ in 0 }
    }
    #expect(error?.code == .invalidArgument)
  }

  @Test func forkWithAnEmptyEntryNameIsAnInvalidArgument() async {
    let error = await #expect(throws: AsyncToolsError.self) { _ = try await ChildProcess.fork(entry: "") }
    #expect(error?.code == .invalidArgument)
  }

  @Test func normalProcessIsNotAtAnEntryPoint() {
    #expect(ChildProcess.currentEntryPoint == nil)
  }

  @Test(arguments: [
    [], [""], ["", ""], ["a"], ["a,b", "1:2", "=", "héllo 🚀", "\u{7F}\u{1}"], Array(repeating: "x", count: 100),
  ])
  func argumentsSurviveEncoding(arguments: [String]) {
    let encoded = ReexecutionEnvironment.encode(arguments)
    #expect(encoded.utf8.allSatisfy { $0 > 32 && $0 < 127 }, "the encoding is plain ASCII: \(encoded)")
    #expect(ReexecutionEnvironment.decode(encoded) == arguments)
  }

  @Test(arguments: ["", "x", "1", "2:61", "1:6", "1:zz", "0:61", "-1:"])
  func malformedEncodingIsRejected(encoded: String) {
    #expect(ReexecutionEnvironment.decode(encoded) == nil)
  }

  @Test func oneEmptyArgumentIsWellFormedNotMalformed() {
    #expect(ReexecutionEnvironment.decode("1:") == [""])
    #expect(ReexecutionEnvironment.encode([""]) == "1:")
  }
}
#endif
