import CoreMetrics

/// Opt-in swift-metrics instrumentation for one AsyncTools object: a cache, a persistent group, a
/// supervisor, a timer, a server (`ServerConfiguration.metrics` in AsyncToolsServer) or a service.
///
/// Metrics are off unless you pass one of these (`metrics: nil`, the default, costs one `nil` check
/// on the paths that would record). Every metric carries one dimension naming the object, so one
/// dashboard tells your caches, groups and timers apart:
///
/// ```swift
/// let users = try AsyncLRUCache<UserID, User>(maxSize: 1_000, metrics: .init(name: "users"))
/// // asynctools_cache_hits_total{cache="users"}, asynctools_cache_size{cache="users"}, …
/// ```
///
/// The metrics go to `MetricsSystem.factory` (whatever `MetricsSystem.bootstrap` installed, e.g.
/// swift-prometheus), or to `factory` when given (tests pass a `TestMetrics` from MetricsTestKit).
/// The labels are listed in the Observability article.
public struct MetricsConfiguration: Sendable {
  /// The value of the dimension that names the object (`cache`, `group`, `supervisor`, `timer` or `server`).
  public var name: String

  /// Where the metrics go; `nil` uses `MetricsSystem.factory`.
  public var factory: (any MetricsFactory)?

  /// Instruments an object under `name`.
  ///
  /// - Parameters:
  ///   - name: The value of the dimension naming the object, e.g. `"users"` for a users cache.
  ///   - factory: Where the metrics go; `nil` (the default) uses `MetricsSystem.factory`.
  public init(name: String, factory: (any MetricsFactory)? = nil) {
    self.name = name
    self.factory = factory
  }

  /// The factory the instruments are made with, read once when the object is created.
  package var resolvedFactory: any MetricsFactory { factory ?? MetricsSystem.factory }

  /// A counter named `label` with the object's dimension (and `extra` ones). The handler itself, not a
  /// `Counter`: its `increment(by:)` is one non-generic call (a `Counter`'s is generic over the
  /// integer type and not specialised across modules, which costs a cache hit about 30 ns).
  package func counter(_ label: String, kind: String, _ extra: [(String, String)] = []) -> any CounterHandler {
    resolvedFactory.makeCounter(label: label, dimensions: [(kind, name)] + extra)
  }

  /// A gauge named `label` with the object's dimension (a non-aggregating recorder, as `Gauge` is).
  package func gauge(_ label: String, kind: String) -> any RecorderHandler {
    resolvedFactory.makeRecorder(label: label, dimensions: [(kind, name)], aggregate: false)
  }

  /// A timer (durations) named `label` with the object's dimension.
  package func timer(_ label: String, kind: String) -> any TimerHandler {
    resolvedFactory.makeTimer(label: label, dimensions: [(kind, name)])
  }
}
