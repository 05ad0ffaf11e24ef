#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The stress suites' knobs, read in one place: `ASYNCTOOLS_STRESS_ITERATIONS` scales every suite,
/// `ASYNCTOOLS_STRESS_SEED` replays a run, `ASYNCTOOLS_STRESS_VERBOSE` prints each scenario's plan.
///
/// A suite reads its size and seed here, derives scenario *i* from `seed + i` (or draws every scenario from one
/// generator seeded with `seed`), and names `replay` in every failure, so any failure can be run again exactly.
package enum Stress {
  /// `ASYNCTOOLS_STRESS_ITERATIONS` when it is a positive integer; otherwise `defaultValue`, or
  /// `underSanitizer` when ThreadSanitizer or AddressSanitizer is linked in (they slow a run 5–20×).
  package static func iterations(default defaultValue: Int, underSanitizer: Int? = nil) -> Int {
    if let raw = environment("ASYNCTOOLS_STRESS_ITERATIONS"), let value = Int(raw), value > 0 { return value }
    if let underSanitizer, runningUnderASanitizer { return underSanitizer }
    return defaultValue
  }

  /// Whether `ASYNCTOOLS_STRESS_ITERATIONS` was set (a long run).
  package static var isLongRun: Bool {
    environment("ASYNCTOOLS_STRESS_ITERATIONS").flatMap { Int($0) }.map { $0 > 0 } ?? false
  }

  /// `ASYNCTOOLS_STRESS_SEED` when set; otherwise a fresh random seed (every run explores new scenarios and prints
  /// the seed that replays it).
  package static func seed() -> UInt64 {
    if let raw = environment("ASYNCTOOLS_STRESS_SEED"), let value = UInt64(raw) { return value }
    return UInt64.random(in: 0...UInt64.max)
  }

  /// Whether `ASYNCTOOLS_STRESS_VERBOSE` is set.
  package static var isVerbose: Bool { environment("ASYNCTOOLS_STRESS_VERBOSE") != nil }

  /// The words a failure prints so it can be replayed: the environment that reruns exactly this run.
  package static func replay(seed: UInt64, iterations: Int? = nil) -> String {
    var words = "ASYNCTOOLS_STRESS_SEED=\(seed)"
    if let iterations { words += " ASYNCTOOLS_STRESS_ITERATIONS=\(iterations)" }
    return "seed \(seed) (replay: \(words))"
  }

  /// Whether ThreadSanitizer or AddressSanitizer is linked into this process.
  package static let runningUnderASanitizer: Bool = {
    #if canImport(Glibc)
      guard let handle = dlopen(nil, RTLD_NOW) else { return false }
      defer { dlclose(handle) }
      return dlsym(handle, "__asan_init") != nil || dlsym(handle, "__tsan_init") != nil
    #else
      return false
    #endif
  }()

  /// The resident set size from `/proc/self/statm` (Linux); `nil` where it cannot be read.
  package static func residentBytes() -> Int? {
    #if os(Linux)
      guard let file = fopen("/proc/self/statm", "r") else { return nil }
      defer { fclose(file) }
      var buffer = [UInt8](repeating: 0, count: 128)
      let count = fread(&buffer, 1, buffer.count - 1, file)
      // "size resident shared …" in pages: the second field.
      let fields = buffer[..<count].split(separator: UInt8(ascii: " "))
      guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
      return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    #else
      return nil
    #endif
  }

  /// Bytes the C allocator has handed out and not got back: the arenas' current size plus mmapped blocks, minus the
  /// free chunks it keeps (glibc's `malloc_info`, found at run time: `malloc.h` is not part of Swift's Glibc module);
  /// `nil` where it cannot be read. Unlike the resident set, it does not count freed memory the allocator keeps, so
  /// it tells a leak from fragmentation.
  package static func heapInUseBytes() -> Int? {
    #if canImport(Glibc)
      typealias MallocInfo = @convention(c) (Int32, UnsafeMutablePointer<FILE>?) -> Int32
      guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_info") else { return nil }
      let mallocInfo = unsafeBitCast(symbol, to: MallocInfo.self)
      var buffer: UnsafeMutablePointer<CChar>?
      var size = 0
      guard let stream = open_memstream(&buffer, &size) else { return nil }
      let status = mallocInfo(0, stream)
      fclose(stream)
      defer { free(buffer) }
      guard status == 0, let buffer else { return nil }
      let xml = String(cString: buffer)
      // The totals over every arena follow the last `</heap>`.
      guard let totals = xml.ranges(of: "</heap>").last.map({ xml[$0.upperBound...] }) else { return nil }
      func bytes(_ tag: String) -> Int {
        guard let start = totals.firstRange(of: tag) else { return 0 }
        let rest = totals[start.upperBound...]
        guard let sizeStart = rest.firstRange(of: "size=\"") else { return 0 }
        return Int(rest[sizeStart.upperBound...].prefix { $0.isNumber }) ?? 0
      }
      return bytes("<system type=\"current\"") + bytes("<total type=\"mmap\"")
        - bytes("<total type=\"fast\"") - bytes("<total type=\"rest\"")
    #else
      return nil
    #endif
  }

  private static func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
  }
}
