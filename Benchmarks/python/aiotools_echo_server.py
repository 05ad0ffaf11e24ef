#!/usr/bin/env python3
"""The echo server of aiotools' README, the aiotools side of the echo-server benchmark.

usage: aiotools_echo_server.py PORT NUM_WORKERS

`aiotools.start_server` with NUM_WORKERS worker processes, each running `asyncio.start_server` on
127.0.0.1:PORT with `reuse_port=True` (as in the README). Unlike the README's handler, which
answers one read and closes, each connection echoes until the client closes it, so that it serves
the same request/response load as Examples/EchoServer. Each worker prints "[INDEX] started" once
it listens; SIGTERM or SIGINT stops the server.
"""
import asyncio
import socket
import sys

import aiotools


async def echo(reader, writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # The Swift servers set TCP_NODELAY too.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@aiotools.server
async def worker(loop, pidx, args):
    port = args[0]
    server = await asyncio.start_server(echo, "127.0.0.1", port, reuse_port=True)
    # One write, so that the workers' lines never interleave in the pipe.
    sys.stdout.write(f"[{pidx}] started\n")
    sys.stdout.flush()
    yield  # until a stop signal
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    aiotools.start_server(worker, num_workers=int(sys.argv[2]), args=(int(sys.argv[1]),))
