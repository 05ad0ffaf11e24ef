import CoreMetrics

extension TimerHandler {
  /// Records `duration` in nanoseconds: a negative one as zero, one too long for an `Int64` of
  /// nanoseconds (about 292 years) as `Int64.max`. The one conversion every AsyncTools timer metric uses.
  package func record(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow {
      recordNanoseconds(seconds < 0 ? 0 : .max)
      return
    }
    let (total, carry) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
    recordNanoseconds(carry ? .max : max(0, total))
  }
}
