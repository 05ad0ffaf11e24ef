#if os(Linux)
@testable import AsyncToolsServer
import Testing

/// What the main process tells a worker process through the re-execution handshake, and the names a
/// worker process shows in `ps`.
@Suite("Worker launch")
struct WorkerLaunchTests {
  typealias Launch = WorkerProcessRuntime.Launch

  @Test(arguments: [[], [""], ["", ""], ["a,b", "x\ny", "ünï", "%41"], ["--db", "/tmp/a b"]])
  func aLaunchSurvivesItsEncoding(arguments: [String]) {
    for launch in [
      Launch(index: 0, program: "echo-server", listenFD: 3, listenPort: 8888, arguments: arguments),
      Launch(index: 12, program: "a b", listenFD: nil, listenPort: nil, arguments: arguments),
      Launch(
        index: 1, program: "p", listenFD: 3, listenPort: 80, balance: .init(fd: 4, entry: 17), arguments: arguments),
    ] {
      #expect(Launch(decoding: launch.encoded) == launch)
    }
  }

  @Test(arguments: [
    [], ["0", "p", "3"], ["x", "p", "", ""], ["-1", "p", "", ""], ["0", "p", "3", ""], ["0", "p", "", "80"],
    ["0", "p", "fd", "80"], ["0", "p", "-3", "80"], ["0", "p", "3", "80"], ["0", "p", "3", "80", "4"],
    ["0", "p", "3", "80", "4:"], ["0", "p", "3", "80", "x:1"], ["0", "p", "3", "80", "4:-1"],
  ])
  func aMalformedLaunchIsRejected(fields: [String]) {
    #expect(Launch(decoding: fields) == nil)
  }

  @Test func theTitleNamesTheProgramAndTheWorker() {
    #expect(WorkerProcessRuntime.title(program: "echo-server", index: 1) == "echo-server: worker 1")
  }

  @Test(arguments: [
    ("echo-server", 1, "echo-server: w1"), ("echo-server", 12, "echo-serve: w12"), ("srv", 3, "srv: worker 3"),
    ("a-very-long-program-name", 0, "a-very-long: w0"),
  ])
  func theProcessNameFitsFifteenBytes(program: String, index: Int, expected: String) {
    let name = WorkerProcessRuntime.processName(program: program, index: index)
    #expect(name == expected)
    #expect(name.utf8.count <= 15)
  }
}
#endif
