// context-group: scoped async resources in a few lines.
//
// 1. A context group enters three replica connections concurrently; one fails to enter. The body
//    works with the two that are up; afterwards every connection that opened is closed, concurrently.
// 2. An exit stack collects cleanups as it goes and unwinds them last-in first-out, running all of
//    them even when one fails, and reports every failure.
//
// Run it with `swift run context-group`.
import AsyncTools

struct ReplicaDown: Error, CustomStringConvertible {
  var host: String
  var description: String { "replica \(host) is down" }
}

let clock = ContinuousClock()
let start = clock.now
func stamp() -> String {
  let ms = String(Int(((clock.now - start) / .milliseconds(1)).rounded()))
  return "[" + String(repeating: " ", count: max(0, 4 - ms.count)) + ms + " ms]"
}

/// A connection to one replica, built the `actxmgr` way: acquire, hand to the body, release.
func replica(_ host: String, up: Bool = true) -> AsyncContext<String> {
  AsyncContext { body in
    try await Task.sleep(for: .milliseconds(100))  // the handshake
    guard up else { throw ReplicaDown(host: host) }
    print("\(stamp()) connected to \(host)")
    let outcome = await body(host)
    try await Task.sleep(for: .milliseconds(20))  // a polite goodbye, not cut short by cancellation
    print("\(stamp()) closed \(host) after \(outcome)")
  }
}

print("== context group: three replicas entered concurrently, one of them down")
let result = try await withContextGroup([replica("a"), replica("b", up: false), replica("c")]) { connections in
  for connection in connections {
    switch connection {
    case .success(let host): print("\(stamp()) body: using \(host)")
    case .failure(let error): print("\(stamp()) body: \(error)")
    }
  }
  return connections.count { (try? $0.get()) != nil }
}
print("\(stamp()) \(result.value) of 3 replicas were usable; exits: \(result.exits)")
print("          (three 100 ms handshakes finished in about 100 ms: they ran concurrently)")

print("\n== exit stack: cleanups unwind last-in first-out, all of them, failures reported")
struct CleanupFailed: Error, CustomStringConvertible {
  var what: String
  var description: String { "\(what) failed" }
}
do {
  try await withExitStack { stack in
    let primary = try await stack.enter(replica("primary"))
    try stack.callback {
      print("\(stamp()) cleanup: release the lock (fails)")
      throw CleanupFailed(what: "releasing the lock")
    }
    try stack.callback { print("\(stamp()) cleanup: delete the temporary files") }
    try stack.callback {
      print("\(stamp()) cleanup: flush the journal (fails)")
      throw CleanupFailed(what: "flushing the journal")
    }
    try stack.push { outcome in print("\(stamp()) cleanup: audit log, scope ended with \(outcome)") }
    print("\(stamp()) body: working with \(primary)")
  }
} catch {
  print("\(stamp()) the scope threw: \(error)")
}
