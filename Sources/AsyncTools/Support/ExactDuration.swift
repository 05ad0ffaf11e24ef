extension Duration {
  /// The duration in seconds, written exactly: `"3611.0 seconds"`, `"0.000001 seconds"`,
  /// `"-1.5 seconds"`.
  ///
  /// `Duration`'s own `description` converts to `Double` first, and a `Double` cannot hold most
  /// whole numbers of attoseconds: it prints 3611 s as `"3611.0000000000005 seconds"` and 3601 s
  /// as `"3600.9999999999995 seconds"` (issue #13). This keeps its format otherwise.
  package var exactDescription: String {
    let attoseconds = self.attoseconds
    let perSecond: UInt128 = 1_000_000_000_000_000_000
    let whole = attoseconds.magnitude / perSecond
    let digits = String(attoseconds.magnitude % perSecond)
    var fraction = String(repeating: "0", count: 18 - digits.count) + digits
    while fraction.count > 1 && fraction.hasSuffix("0") { fraction.removeLast() }
    return "\(attoseconds < 0 ? "-" : "")\(whole).\(fraction) seconds"
  }

  /// An instant's offset from its clock's origin, written exactly with its sign: `"+3611.0 seconds"`.
  package var exactOffsetDescription: String {
    self < .zero ? exactDescription : "+" + exactDescription
  }
}
