import CAsyncToolsShims
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The table through which the workers of one server balance their accepts from the shared
/// listening socket (``ServerConfiguration/AcceptBalancing/leastConnections``): one entry per live
/// worker with whether it is accepting and how many connections it has open.
///
/// The main process creates it (an anonymous `memfd`, mapped shared), *claims* an entry for each
/// worker it launches and *releases* it when the worker has ended, whatever the way (so a crashed
/// worker never stays a peer). A worker process receives the descriptor and maps the same memory;
/// a thread worker uses the main process's mapping. The worker's accept loop marks its entry
/// accepting while it runs, counts the connections it opens and its consumer closes, and before
/// each `accept` asks ``shouldDefer(_:)``: whether an accepting peer carries fewer connections.
///
/// `@unchecked Sendable`: the mapped memory is only read and written through the C atomics of
/// CAsyncToolsShims (it is shared with other processes, where no Swift lock could reach); the
/// other stored properties are immutable.
final class AcceptBoard: @unchecked Sendable {
  /// Entry layout, in 64-bit words: `[state, open connections]`, padded to one cache line so the
  /// workers' counters do not share one.
  private static let stride = 8
  private enum EntryState: Int64 {
    case free = 0
    /// Claimed by the main process for a worker that is not accepting (starting, or stopped
    /// accepting and draining).
    case claimed = 1
    case accepting = 2
  }

  /// The memfd (close-on-exec); passed to worker processes.
  let fd: CInt
  /// How many entries there are.
  let capacity: Int
  private let words: UnsafeMutablePointer<Int64>

  private init(fd: CInt, capacity: Int, words: UnsafeMutablePointer<Int64>) {
    self.fd = fd
    self.capacity = capacity
    self.words = words
  }

  deinit {
    munmap(words, capacity * Self.stride * MemoryLayout<Int64>.size)
    close(fd)
  }

  /// A fresh board of `capacity` entries, all free.
  static func create(capacity: Int) throws(CreationError) -> AcceptBoard {
    let fd = asynctools_memfd_create("asynctools-accept-board")
    guard fd >= 0 else { throw error("memfd_create", errno) }
    let bytes = capacity * stride * MemoryLayout<Int64>.size
    guard ftruncate(fd, off_t(bytes)) == 0 else {
      let code = errno
      close(fd)
      throw error("ftruncate", code)
    }
    guard let words = map(fd, bytes: bytes) else {
      let code = errno
      close(fd)
      throw error("mmap", code)
    }
    return AcceptBoard(fd: fd, capacity: capacity, words: words)
  }

  /// The board passed to this worker process as `fd` (which it owns from then on), or `nil` if
  /// `fd` is not one (the worker then accepts without balancing).
  static func adopt(_ fd: CInt) -> AcceptBoard? {
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    var status = stat()
    let entryBytes = stride * MemoryLayout<Int64>.size
    guard fstat(fd, &status) == 0, status.st_size > 0, Int(status.st_size) % entryBytes == 0,
      let words = map(fd, bytes: Int(status.st_size))
    else {
      close(fd)
      return nil
    }
    return AcceptBoard(fd: fd, capacity: Int(status.st_size) / entryBytes, words: words)
  }

  /// The board a server with `configuration` balances through, or `nil` when it does not balance
  /// (no listening socket, ``ServerConfiguration/AcceptBalancing/kernel``) or the board cannot be
  /// created (logged: the workers then accept as the kernel wakes them). Room for every worker
  /// twice over (a rolling restart runs one fresh worker beside the old ones) plus the extra
  /// processes; a worker launched when every entry is taken accepts without balancing.
  static func forServer(_ configuration: ServerConfiguration, listening: Bool) -> AcceptBoard? {
    guard listening, configuration.acceptBalancing == .leastConnections else { return nil }
    do {
      return try create(capacity: 2 * configuration.numWorkers + 16)
    } catch {
      configuration.logger.warning("accepting without balancing: \(error.message)")
      return nil
    }
  }

  private static func map(_ fd: CInt, bytes: Int) -> UnsafeMutablePointer<Int64>? {
    let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    guard let address, address != MAP_FAILED else { return nil }
    return address.bindMemory(to: Int64.self, capacity: bytes / MemoryLayout<Int64>.size)
  }

  /// Why a board could not be created (logged: the server then runs without balancing).
  struct CreationError: Error {
    let message: String
  }

  private static func error(_ call: String, _ code: CInt) -> CreationError {
    CreationError(message: "cannot create the accept board: \(call): \(String(cString: strerror(code)))")
  }

  private func state(_ entry: Int) -> UnsafeMutablePointer<Int64> { words + entry * Self.stride }
  private func open(_ entry: Int) -> UnsafeMutablePointer<Int64> { words + entry * Self.stride + 1 }

  // MARK: - Main process

  /// Claims a free entry for a worker about to launch; `nil` when every entry is taken.
  func claim() -> Int? {
    for entry in 0..<capacity
    where asynctools_shared_compare_exchange(state(entry), EntryState.free.rawValue, EntryState.claimed.rawValue) {
      asynctools_shared_store(open(entry), 0)
      return entry
    }
    return nil
  }

  /// Frees the entry of a worker that has ended: it is no longer a peer.
  func release(_ entry: Int) {
    guard (0..<capacity).contains(entry) else { return }
    asynctools_shared_store(state(entry), EntryState.free.rawValue)
  }

  // MARK: - Worker

  /// Whether `entry` is taking part in the balancing; a worker stops accepting before it drains.
  /// Only moves between claimed and accepting (a released entry stays free).
  func setAccepting(_ entry: Int, _ accepting: Bool) {
    let (from, to) = accepting ? (EntryState.claimed, EntryState.accepting) : (.accepting, .claimed)
    _ = asynctools_shared_compare_exchange(state(entry), from.rawValue, to.rawValue)
  }

  /// A connection was accepted (`delta` 1) or has closed (`delta` -1).
  func count(_ entry: Int, _ delta: Int64) {
    _ = asynctools_shared_add(open(entry), delta)
  }

  /// The open connections of `entry`.
  func openConnections(_ entry: Int) -> Int64 { asynctools_shared_load(open(entry)) }

  /// Whether another accepting worker has fewer open connections than `entry`: then `entry` leaves
  /// the next queued connection to it.
  func shouldDefer(_ entry: Int) -> Bool {
    let mine = asynctools_shared_load(open(entry))
    guard mine > 0 else { return false }
    for peer in 0..<capacity where peer != entry {
      if asynctools_shared_load(state(peer)) == EntryState.accepting.rawValue,
        asynctools_shared_load(open(peer)) < mine
      {
        return true
      }
    }
    return false
  }
}

/// A worker's entry on the ``AcceptBoard``: what its accept loop balances with.
struct AcceptBalance: Sendable {
  let board: AcceptBoard
  let entry: Int

  /// `entry` on `board`, or `nil` if the board has no such entry.
  init?(board: AcceptBoard, entry: Int) {
    guard (0..<board.capacity).contains(entry) else { return nil }
    self.board = board
    self.entry = entry
  }

  func setAccepting(_ accepting: Bool) { board.setAccepting(entry, accepting) }
  func opened() { board.count(entry, 1) }
  func closed() { board.count(entry, -1) }
  var shouldDefer: Bool { board.shouldDefer(entry) }
}
