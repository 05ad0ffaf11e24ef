@testable import AsyncTools
import Testing

/// The restart-intensity window shared by `Supervisor` and the prefork server.
@Suite("RestartWindow")
struct RestartWindowTests {
  /// Which of the restarts at `times` (seconds) the window admits.
  private func admitted(_ times: [Int], maxRestarts: Int = 2, period: Duration = .seconds(10)) -> [Bool] {
    var window = RestartWindow(maxRestarts: maxRestarts, period: period)
    return times.map { window.admit(at: .seconds($0)) }
  }

  @Test func admitsUpToTheLimitWithinThePeriod() {
    #expect(admitted([1, 2, 3]) == [true, true, false])
    // A refused restart is not recorded: once the first leaves the window, one more fits.
    #expect(admitted([1, 2, 3, 11]) == [true, true, false, true])
  }

  @Test func forgetsRestartsOnceThePeriodHasPassed() {
    // Exactly `period` after the first one, it no longer counts.
    #expect(admitted([0, 5, 10, 14, 15]) == [true, true, true, false, true])
  }
}
