// The executable the process and server tests re-execute. It registers its entry points, then
// makes the one bootstrap call: a copy started by `ChildProcess.fork`/`spawn(executable:entry:)`
// runs the requested entry point and exits; a plain run falls through and prints its name.
import AsyncToolsProcess

#if os(Linux)
simulateStartupFailureIfAsked()
registerProcessTestEntries()
await ChildProcess.bootstrap()
#endif
// `AsyncToolsTestChild server …`: the server tests' scenarios (ServerScenarios.swift); never returns.
await runServerScenarioIfRequested()
// `AsyncToolsTestChild serve …`: the drain scenario (ServeScenario.swift); never returns.
await runServeScenarioIfRequested()
// `AsyncToolsTestChild systemd …`: socket activation and sd_notify (SystemdScenarios.swift).
await runSystemdScenarioIfRequested()
// `AsyncToolsTestChild upgrade …`: binary upgrades on SIGUSR2 (UpgradeScenario.swift).
await runUpgradeScenarioIfRequested()
print("asynctools-test-child")
