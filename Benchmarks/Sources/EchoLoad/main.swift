// echo-load: the loopback load generator of the server benchmarks.
//
//     echo-load --port PORT [--connections 32] [--duration 5] [--message-size 64] [--threads 1]
//
// Opens N TCP connections to 127.0.0.1:PORT (loopback only, by design) and keeps exactly one
// request of `message-size` bytes in flight on each: send, wait for the whole echo, send again,
// until the duration has passed. It then prints one JSON line: round trips, round trips per second,
// its own CPU time and the round-trip latency percentiles.
//
// It is deliberately small so that it does not starve the server on a 2-core machine: a plain
// epoll loop per thread (one thread by default) over blocking sockets that are only read when
// readable, so each round trip costs this side one write, one read and a share of an epoll_wait
// — the least a TCP client can do without io_uring. No NIO, no Foundation, no allocation per round
// trip (latencies go into a fixed histogram).
#if os(Linux)
import CEpoll
import Glibc

/// A fatal usage or setup error: message on stderr, exit status 2.
func fail(_ message: String) -> Never {
  let line = "echo-load: \(message)\n"
  _ = line.withCString { write(2, $0, strlen($0)) }
  exit(2)
}

struct Options {
  var port = 0
  var connections = 32
  var duration = 5.0
  var messageSize = 64
  var threads = 1

  init(_ arguments: [String]) {
    var rest = arguments[...]
    func value(_ name: String) -> String {
      guard let next = rest.popFirst() else { fail("\(name) needs a value") }
      return next
    }
    while let argument = rest.popFirst() {
      switch argument {
      case "--port": port = Int(value(argument)) ?? -1
      case "--connections": connections = Int(value(argument)) ?? -1
      case "--duration": duration = Double(value(argument)) ?? -1
      case "--message-size": messageSize = Int(value(argument)) ?? -1
      case "--threads": threads = Int(value(argument)) ?? -1
      default: fail("unknown argument \(argument)")
      }
    }
    // Bounded by design: a benchmark tool, not a stress weapon.
    guard (1...65535).contains(port) else { fail("--port must be in 1...65535") }
    guard (1...1024).contains(connections) else { fail("--connections must be in 1...1024") }
    guard duration > 0, duration <= 600 else { fail("--duration must be in (0, 600] seconds") }
    guard (1...4096).contains(messageSize) else { fail("--message-size must be in 1...4096") }
    guard (1...16).contains(threads), threads <= connections else {
      fail("--threads must be in 1...16 and at most --connections")
    }
  }
}

func monotonicNanoseconds() -> Int64 {
  var now = timespec()
  clock_gettime(CLOCK_MONOTONIC, &now)
  return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// Round-trip latencies in whole microseconds; the last bucket collects everything slower.
struct Histogram {
  static let buckets = 100_000
  var counts = [Int](repeating: 0, count: Histogram.buckets + 1)
  var total = 0

  mutating func record(nanoseconds: Int64) {
    counts[min(Int(nanoseconds / 1000), Histogram.buckets)] += 1
    total += 1
  }

  mutating func merge(_ other: Histogram) {
    for index in counts.indices { counts[index] += other.counts[index] }
    total += other.total
  }

  /// The smallest latency (µs) that `fraction` of the round trips did not exceed.
  func percentile(_ fraction: Double) -> Int {
    guard total > 0 else { return 0 }
    let rank = max(1, Int((Double(total) * fraction).rounded(.up)))
    var seen = 0
    for (bucket, count) in counts.enumerated() {
      seen += count
      if seen >= rank { return bucket }
    }
    return Histogram.buckets
  }
}

/// Connects to 127.0.0.1:port with TCP_NODELAY (the servers set it too; without it Nagle and
/// delayed ACKs would measure the kernel's timers, not the server).
func connectLoopback(port: Int) -> Int32 {
  let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
  guard socketFD >= 0 else { fail("socket: \(String(cString: strerror(errno)))") }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port)).bigEndian
  address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
  let result = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
  }
  guard result == 0 else { fail("connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
  var one: Int32 = 1
  setsockopt(socketFD, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
  return socketFD
}

/// What one thread measured.
struct ThreadResult {
  var roundTrips = 0
  var errors = 0
  var histogram = Histogram()
}

/// One thread's loop over its connections until `deadline` (monotonic ns).
func drive(sockets: [Int32], messageSize: Int, deadline: Int64) -> ThreadResult {
  var result = ThreadResult()
  let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
  guard epollFD >= 0 else { fail("epoll_create1: \(String(cString: strerror(errno)))") }
  defer { close(epollFD) }
  let message = [UInt8](repeating: 0x61, count: messageSize)
  var buffer = [UInt8](repeating: 0, count: 65536)
  var received = [Int](repeating: 0, count: sockets.count)
  var sentAt = [Int64](repeating: 0, count: sockets.count)
  var open = [Bool](repeating: true, count: sockets.count)

  func send(_ slot: Int) -> Bool {
    sentAt[slot] = monotonicNanoseconds()
    received[slot] = 0
    return message.withUnsafeBytes { write(sockets[slot], $0.baseAddress, messageSize) } == messageSize
  }

  for slot in sockets.indices {
    var event = epoll_event()
    event.events = EPOLLIN.rawValue
    event.data.u64 = UInt64(slot)
    guard epoll_ctl(epollFD, EPOLL_CTL_ADD, sockets[slot], &event) == 0 else {
      fail("epoll_ctl: \(String(cString: strerror(errno)))")
    }
    if !send(slot) { fail("write: \(String(cString: strerror(errno)))") }
  }
  var events = [epoll_event](repeating: epoll_event(), count: 256)
  var live = sockets.count
  var now = monotonicNanoseconds()
  while now < deadline, live > 0 {
    let timeoutMs = Int32(min(100, max(1, (deadline - now) / 1_000_000)))
    let ready = events.withUnsafeMutableBufferPointer { epoll_wait(epollFD, $0.baseAddress, 256, timeoutMs) }
    if ready < 0 {
      if errno == EINTR { continue }
      fail("epoll_wait: \(String(cString: strerror(errno)))")
    }
    now = monotonicNanoseconds()
    for index in 0..<Int(ready) {
      let slot = Int(events[index].data.u64)
      guard open[slot] else { continue }
      let count = buffer.withUnsafeMutableBytes { read(sockets[slot], $0.baseAddress, $0.count) }
      if count <= 0 {
        // The server closed the connection (or failed it): count it and stop using it.
        result.errors += 1
        open[slot] = false
        live -= 1
        epoll_ctl(epollFD, EPOLL_CTL_DEL, sockets[slot], nil)
        continue
      }
      received[slot] += count
      if received[slot] >= messageSize {
        result.histogram.record(nanoseconds: now - sentAt[slot])
        result.roundTrips += 1
        if now < deadline, !send(slot) {
          result.errors += 1
          open[slot] = false
          live -= 1
          epoll_ctl(epollFD, EPOLL_CTL_DEL, sockets[slot], nil)
        }
      }
    }
  }
  return result
}

func cpuNanoseconds() -> Int64 {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  func nanoseconds(_ time: timeval) -> Int64 { Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_usec) * 1000 }
  return nanoseconds(usage.ru_utime) + nanoseconds(usage.ru_stime)
}

/// Thread plumbing without Foundation: each thread gets a box with its inputs and its result.
final class Job {
  let sockets: [Int32]
  let messageSize: Int
  let deadline: Int64
  var result = ThreadResult()

  init(sockets: [Int32], messageSize: Int, deadline: Int64) {
    self.sockets = sockets
    self.messageSize = messageSize
    self.deadline = deadline
  }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let sockets = (0..<options.connections).map { _ in connectLoopback(port: options.port) }
let cpuBefore = cpuNanoseconds()
let start = monotonicNanoseconds()
let deadline = start + Int64(options.duration * 1e9)
let jobs = (0..<options.threads).map { thread in
  Job(
    sockets: sockets.indices.filter { $0 % options.threads == thread }.map { sockets[$0] },
    messageSize: options.messageSize, deadline: deadline)
}
// Thread 0 is this one; the others are pthreads joined below. Each job is touched by one thread
// only until the join, which orders its result before the reads here.
var threads: [pthread_t] = []
for job in jobs.dropFirst() {
  var thread = pthread_t()
  let box = Unmanaged.passRetained(job).toOpaque()
  let status = pthread_create(&thread, nil, { raw in
    let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
    job.result = drive(sockets: job.sockets, messageSize: job.messageSize, deadline: job.deadline)
    return nil
  }, box)
  guard status == 0 else { fail("pthread_create: \(status)") }
  threads.append(thread)
}
jobs[0].result = drive(sockets: jobs[0].sockets, messageSize: jobs[0].messageSize, deadline: deadline)
for thread in threads { pthread_join(thread, nil) }
let elapsed = monotonicNanoseconds() - start
let cpu = cpuNanoseconds() - cpuBefore
for socketFD in sockets { close(socketFD) }

var total = ThreadResult()
for job in jobs {
  total.roundTrips += job.result.roundTrips
  total.errors += job.result.errors
  total.histogram.merge(job.result.histogram)
}
let seconds = Double(elapsed) / 1e9
print(
  "{\"round_trips\": \(total.roundTrips), \"duration_ns\": \(elapsed), "
    + "\"round_trips_per_s\": \(Double(total.roundTrips) / seconds), \"cpu_ns\": \(cpu), "
    + "\"p50_latency_us\": \(total.histogram.percentile(0.5)), \"p99_latency_us\": \(total.histogram.percentile(0.99)), "
    + "\"connections\": \(options.connections), \"threads\": \(options.threads), "
    + "\"message_size\": \(options.messageSize), \"errors\": \(total.errors)}")
exit(total.errors == 0 ? 0 : 1)
#else
// The benchmarks run on Linux; elsewhere the package still builds, and this says why it cannot run.
print("echo-load needs Linux (epoll)")
#endif
