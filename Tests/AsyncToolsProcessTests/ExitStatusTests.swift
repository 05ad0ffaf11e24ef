import Testing

@testable import AsyncToolsProcess

@Suite struct ExitStatusTests {
  @Test func returnCodeIsTheExitCodeForANormalExit() {
    #expect(ChildProcess.ExitStatus.exited(0).returnCode == 0)
    #expect(ChildProcess.ExitStatus.exited(44).returnCode == 44)
    #expect(ChildProcess.ExitStatus.exited(255).returnCode == 255)
  }

  @Test func returnCodeIsTheNegatedSignalForADeathBySignal() {
    #expect(ChildProcess.ExitStatus.signaled(9, coreDumped: false).returnCode == -9)
    #expect(ChildProcess.ExitStatus.signaled(11, coreDumped: true).returnCode == -11)
  }

  @Test func onlyExitZeroIsSuccess() {
    #expect(ChildProcess.ExitStatus.exited(0).isSuccess)
    #expect(!ChildProcess.ExitStatus.exited(1).isSuccess)
    #expect(!ChildProcess.ExitStatus.signaled(15, coreDumped: false).isSuccess)
  }

  @Test func siginfoCodesMapToStatuses() {
    #expect(ChildProcess.ExitStatus(siCode: 1, siStatus: 7) == .exited(7))  // CLD_EXITED
    #expect(ChildProcess.ExitStatus(siCode: 2, siStatus: 15) == .signaled(15, coreDumped: false))  // CLD_KILLED
    #expect(ChildProcess.ExitStatus(siCode: 3, siStatus: 11) == .signaled(11, coreDumped: true))  // CLD_DUMPED
    #expect(ChildProcess.ExitStatus(siCode: 5, siStatus: 19) == nil)  // CLD_STOPPED is not an exit
  }

  @Test func descriptionsSayHowTheProcessEnded() {
    #expect(ChildProcess.ExitStatus.exited(3).description == "exited with code 3")
    #expect(ChildProcess.ExitStatus.signaled(11, coreDumped: true).description == "killed by signal 11 (core dumped)")
  }
}
