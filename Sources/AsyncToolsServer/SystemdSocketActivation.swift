import AsyncTools

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The listening sockets systemd passes to a socket-activated service (the `sd_listen_fds(3)`
/// protocol), read without libsystemd.
///
/// systemd (or `systemd-socket-activate`, or any supervisor speaking the protocol) binds the
/// sockets of a `.socket` unit itself and starts the service with them open at descriptors 3, 4, …
/// and three environment variables:
/// - `LISTEN_PID`: the process the sockets are meant for. A process whose pid differs (a child
///   that inherited the environment) must ignore them.
/// - `LISTEN_FDS`: how many descriptors, starting at 3.
/// - `LISTEN_FDNAMES` (optional): their names, colon-separated (`FileDescriptorName=` of the
///   socket unit, by default the socket unit's name); `unknown` each when absent.
///
/// ``take()`` reads them once and unsets them (as `sd_listen_fds(1)` does), so that worker
/// processes and any child the service starts do not take the sockets for theirs.
package struct SystemdListenDescriptors: Sendable, Hashable {
  /// The protocol's environment variables.
  package enum Variable {
    package static let pid = "LISTEN_PID"
    package static let count = "LISTEN_FDS"
    package static let names = "LISTEN_FDNAMES"
    package static let all = [pid, count, names]
  }

  /// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
  package static let firstDescriptor: CInt = 3

  /// One passed descriptor and its name.
  package struct Descriptor: Sendable, Hashable {
    package var fd: CInt
    package var name: String
  }

  /// The passed descriptors, in order (`fd` 3, 4, …).
  package var descriptors: [Descriptor]

  /// Reads the protocol from `environment` for process `pid`; pure, so tests can feed it anything.
  ///
  /// - Throws: ``ServerError`` `.socketActivationFailed` naming the variable when `LISTEN_FDS` is
  ///   missing or not a positive number, `LISTEN_PID` is missing or names another process, or
  ///   `LISTEN_FDNAMES` does not hold one name per descriptor.
  package static func parse(_ environment: [String: String], pid: pid_t) throws(ServerError) -> Self {
    guard let countText = environment[Variable.count] else {
      throw failure(
        "LISTEN_FDS is not set: the server was not started by systemd with a socket unit (or by "
          + "systemd-socket-activate), so there is no socket to take")
    }
    guard let count = Int(countText), count > 0, count <= 4096 else {
      throw failure("LISTEN_FDS must be a positive number of descriptors, got '\(countText)'")
    }
    guard let pidText = environment[Variable.pid], let listenPID = pid_t(pidText) else {
      throw failure("LISTEN_PID must name the process the sockets are for, got '\(environment[Variable.pid] ?? "")'")
    }
    guard listenPID == pid else {
      throw failure(
        "LISTEN_PID is \(listenPID) but this process is \(pid): the sockets were passed to another process")
    }
    var names = Array(repeating: "unknown", count: count)
    if let namesText = environment[Variable.names] {
      let given = namesText.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
      guard given.count == count else {
        throw failure("LISTEN_FDNAMES names \(given.count) descriptor(s) but LISTEN_FDS is \(count): '\(namesText)'")
      }
      names = given
    }
    return Self(descriptors: names.enumerated().map { Descriptor(fd: firstDescriptor + CInt($0.offset), name: $0.element) })
  }

  /// The descriptors passed to this process, read from the environment, which is then cleared of
  /// the protocol's variables (also when they are invalid). The descriptors become close-on-exec:
  /// a worker process receives the shared socket explicitly, nothing else.
  package static func take() throws(ServerError) -> Self {
    var environment: [String: String] = [:]
    for name in Variable.all {
      if let value = getenv(name) { environment[name] = String(cString: value) }
      unsetenv(name)
    }
    let passed = try parse(environment, pid: getpid())
    for descriptor in passed.descriptors { _ = fcntl(descriptor.fd, F_SETFD, FD_CLOEXEC) }
    return passed
  }

  /// The descriptor named `name`, or the only one when `name` is `nil`.
  ///
  /// - Throws: ``ServerError`` `.socketActivationFailed` listing the names passed when none (or
  ///   more than one) matches.
  package func select(_ name: String?) throws(ServerError) -> Descriptor {
    let candidates = name.map { name in descriptors.filter { $0.name == name } } ?? descriptors
    let passed = descriptors.map { "\($0.fd) '\($0.name)'" }.joined(separator: ", ")
    switch (candidates.count, name) {
    case (1, _):
      return candidates[0]
    case (0, let name?):
      throw Self.failure("systemd passed no socket named '\(name)' (it passed \(passed))")
    case (_, let name?):
      throw Self.failure("systemd passed \(candidates.count) sockets named '\(name)' (\(passed)); the server shares one")
    case (_, nil):
      throw Self.failure(
        "systemd passed \(descriptors.count) sockets (\(passed)): choose one with .systemdSocket(named:)")
    }
  }

  /// Checks that `fd` is a listening stream socket (`SO_ACCEPTCONN`), the kind workers accept on.
  ///
  /// - Throws: ``ServerError`` `.socketActivationFailed` saying what `fd` is instead.
  package static func requireListeningStream(_ fd: CInt, described description: String) throws(ServerError) {
    var value: CInt = 0
    var length = socklen_t(MemoryLayout<CInt>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) == 0 else {
      let reason = String(cString: strerror(errno))
      throw failure("\(description) is not a socket: \(reason)")
    }
    #if canImport(Glibc)
    let stream = CInt(SOCK_STREAM.rawValue)
    #else
    let stream = SOCK_STREAM
    #endif
    guard value == stream else {
      throw failure("\(description) is not a stream socket (a datagram or other socket type cannot accept connections)")
    }
    length = socklen_t(MemoryLayout<CInt>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0, value != 0 else {
      throw failure("\(description) is a stream socket that is not listening (listen(2) was not called on it)")
    }
  }

  private static func failure(_ message: String) -> ServerError {
    ServerError(code: .socketActivationFailed, message: "socket activation: \(message)")
  }
}

extension ServerConfiguration.ListenAddress {
  /// Where the listening socket comes from.
  public enum Source: Sendable, Hashable {
    /// The main process binds ``ServerConfiguration/ListenAddress/host`` and
    /// ``ServerConfiguration/ListenAddress/port`` (default).
    case bind
    /// systemd socket activation: the socket systemd passed (`LISTEN_FDS`), the one named `name`
    /// (`FileDescriptorName=` in the socket unit), or the only one when `name` is `nil`.
    case systemd(name: String?)
    /// A listening socket this process inherited at descriptor `fd` from whatever started it.
    case descriptor(CInt)
  }

  /// Takes the listening socket systemd passed to this process (socket activation) instead of
  /// binding one: the socket named `name` (`FileDescriptorName=` in the socket unit; systemd's
  /// default name is the socket unit's name, `systemd-socket-activate --fdname=` sets it too), or
  /// the only one when `name` is `nil`.
  ///
  /// `startServer` then checks `LISTEN_PID` against this process, takes the descriptor, checks
  /// that it is a listening stream socket, and unsets `LISTEN_PID`, `LISTEN_FDS` and
  /// `LISTEN_FDNAMES` so that workers and children do not read them again. Any mismatch is a
  /// ``ServerError`` of code `.socketActivationFailed` before any worker starts. `host`, `port` and
  /// `backlog` are systemd's business (`ListenStream=`, `Backlog=`); ``ServerMain/listeningPort``
  /// reads the port back from the socket (0 for a Unix-domain socket).
  public static func systemdSocket(named name: String? = nil) -> Self {
    var address = Self(host: "", port: 0)
    address.source = .systemd(name: name)
    return address
  }

  /// Uses the listening socket this process inherited at descriptor `fd` (from a supervisor, a
  /// wrapper script, a parent process), instead of binding one. `startServer` checks that it is a
  /// listening stream socket (a ``ServerError`` of code `.socketActivationFailed` otherwise) and
  /// makes it close-on-exec.
  public static func inheritedDescriptor(_ fd: CInt) -> Self {
    var address = Self(host: "", port: 0)
    address.source = .descriptor(fd)
    return address
  }

  /// The description of a socket that is not bound by the server, or `nil` for ``Source/bind``.
  var inheritedDescription: String? {
    switch source {
    case .bind: nil
    case .systemd(let name?): "the systemd socket '\(name)'"
    case .systemd(nil): "the systemd socket"
    case .descriptor(let fd): "inherited descriptor \(fd)"
    }
  }

  /// The checks of ``ServerConfiguration/validate()`` that concern ``source``.
  func validateSource() throws(AsyncToolsError) {
    switch source {
    case .bind: break
    case .systemd(let name?) where name.isEmpty || name.contains(":"):
      throw .invalidArgument("the systemd socket name must be non-empty and contain no ':', got '\(name)'")
    case .systemd: break
    case .descriptor(let fd) where fd < 0:
      throw .invalidArgument("the inherited listen descriptor must not be negative, got \(fd)")
    case .descriptor: break
    }
  }
}

extension ListeningSocket {
  /// The listening socket `address` asks for: bound by this process, or taken from systemd or an
  /// inherited descriptor and checked.
  static func open(_ address: ServerConfiguration.ListenAddress) throws(ServerError) -> ListeningSocket {
    switch address.source {
    case .bind:
      return try ListeningSocket(address)
    case .systemd(let name):
      let descriptor = try SystemdListenDescriptors.take().select(name)
      let description = "the systemd socket at descriptor \(descriptor.fd) ('\(descriptor.name)')"
      try SystemdListenDescriptors.requireListeningStream(descriptor.fd, described: description)
      return ListeningSocket(adopting: descriptor.fd)
    case .descriptor(let fd):
      try SystemdListenDescriptors.requireListeningStream(fd, described: "inherited descriptor \(fd)")
      return ListeningSocket(adopting: fd)
    }
  }
}
