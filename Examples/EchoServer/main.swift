// The echo server demo (aiotools' README example), coming with the server launcher.
print("echo-server: not built yet")
