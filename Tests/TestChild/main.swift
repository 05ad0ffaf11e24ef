// The executable the process and server tests re-execute. Its first statement will be the
// AsyncToolsProcess bootstrap call that turns a re-executed copy into the requested child.
await runServerScenarioIfRequested()
print("asynctools-test-child")
