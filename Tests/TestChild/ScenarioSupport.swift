// What the scenarios of this test child share: reading their flags and printing the lines the
// tests wait for.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The argument after `name` in `arguments`, or nil when `name` is absent or last.
func optionValue(_ name: String, in arguments: [String]) -> String? {
  guard let position = arguments.firstIndex(of: name), position + 1 < arguments.count else { return nil }
  return arguments[position + 1]
}

/// Prints `line` and flushes at once: the test reads the pipe line by line, in order.
@Sendable func say(_ line: String) {
  print(line)
  fflush(nil)
}
