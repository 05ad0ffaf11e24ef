#!/usr/bin/env python3
"""The accept-balancing candidates of the server guide ("Balanced workers"), side by side in one
prototype harness (Python workers, so only the SPLIT is meaningful, not the speed): 2 forked
worker processes each run an epoll echo loop; the benchmarks' echo-load opens 32 connections in a
burst and drives them for 1 s; each worker then reports how many connections it accepted.

    python3 Benchmarks/python/accept_candidates.py ECHO_LOAD [STRATEGIES] [RUNS]
    STRATEGIES: comma-separated from shared-drain, shared-one, exclusive, reuseport,
                reuseport-cbpf, leastconn (default: all); RUNS default 10

shared-drain: one shared socket, accept until EAGAIN (the library before balancing);
shared-one: one accept per wake-up; exclusive: EPOLLEXCLUSIVE; reuseport: one SO_REUSEPORT socket
per worker; reuseport-cbpf: plus a classic BPF program steering at random; leastconn: a worker
defers while another has accepted fewer (counts in shared memory), the library's scheme.
`migrate` as the strategy instead runs the queued-connection check: 40 connections queued on 2
SO_REUSEPORT sockets, one socket closed, how many the other accepts (flip
net.ipv4.tcp_migrate_req yourself to compare; it is a setting of the whole network namespace).
Loopback only.
"""
import mmap, os, select, signal, socket, struct, subprocess, sys, time, statistics
def worker(idx, lsock, strategy, board, nworkers, out):
    ep = select.epoll()
    lfd = lsock.fileno()
    lsock.setblocking(False)
    flags = select.EPOLLIN | (select.EPOLLEXCLUSIVE if strategy == "exclusive" else 0)
    ep.register(lfd, flags)
    conns = {}
    accepted = 0
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
    def mine(): return struct.unpack_from("q", board, idx * 8)[0]
    def setmine(v): struct.pack_into("q", board, idx * 8, v)
    def others(): return [struct.unpack_from("q", board, i * 8)[0] for i in range(nworkers) if i != idx]
    deferred = False
    while not stop[0]:
        try:
            events = ep.poll(0.002 if deferred else 0.05)
        except InterruptedError:
            continue
        deferred = False
        for fd, ev in events:
            if fd == lfd:
                while True:
                    if strategy == "leastconn" and mine() > min(others()) + 1:
                        deferred = True; break
                    try:
                        c, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[c.fileno()] = c; ep.register(c.fileno(), select.EPOLLIN)
                    accepted += 1; setmine(accepted)
                    if strategy in ("shared-one", "leastconn"): break
            else:
                c = conns[fd]
                try:
                    data = c.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    ep.unregister(fd); c.close(); del conns[fd]
                else:
                    c.send(data)
    with open(out, "a") as f: f.write(f"{idx} {accepted}\n")
    os._exit(0)

import ctypes

def migrate_trial():
    socks = []
    for i in range(2):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", socks[0].getsockname()[1] if socks else 0)); s.listen(64); socks.append(s)
    port = socks[0].getsockname()[1]
    clients = []
    for _ in range(40):
        c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"x"); clients.append(c)
    time.sleep(0.05)
    socks[0].close()                      # the exiting worker's socket
    socks[1].setblocking(False); got = 0
    while True:
        try: a, _ = socks[1].accept(); got += 1; a.close()
        except BlockingIOError: break
    reset = 0
    for c in clients:
        try:
            c.settimeout(1); 
            if c.recv(1) == b"": pass
        except ConnectionResetError: reset += 1
        except socket.timeout: pass
    socks[1].close()
    return got, reset

KEEP = []
def attach_random(sock, n):
    prog = struct.pack("HBBI", 0x20, 0, 0, 0xfffff000 + 56) + struct.pack("HBBI", 0x94, 0, 0, n) + struct.pack("HBBI", 0x16, 0, 0, 0)
    buf = ctypes.create_string_buffer(prog); KEEP.append(buf)
    fprog = struct.pack("HxxxxxxQ", 3, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, 51, fprog)
def run(strategy, nworkers=2, conns=32, dur=1.0):
    board = mmap.mmap(-1, 8 * nworkers)
    out = f"/tmp/accept-candidates-{os.getpid()}"
    open(out, "w").close()
    def mk(reuse):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return s
    if strategy.startswith("reuseport"):
        first = mk(True); first.bind(("127.0.0.1", 0)); port = first.getsockname()[1]
        socks = [first] + [mk(True) for _ in range(nworkers - 1)]
        for s in socks[1:]: s.bind(("127.0.0.1", port))
        for s in socks: s.listen(511)
        if strategy == "reuseport-cbpf": attach_random(first, nworkers)
    else:
        s = mk(False); s.bind(("127.0.0.1", 0)); s.listen(511); port = s.getsockname()[1]; socks = [s] * nworkers
    pids = []
    for i in range(nworkers):
        pid = os.fork()
        if pid == 0: worker(i, socks[i], strategy, board, nworkers, out)
        pids.append(pid)
    time.sleep(0.2)
    r = subprocess.run([sys.argv[1], "--port", str(port), "--connections", str(conns), "--duration", str(dur)], capture_output=True)
    for p in pids: os.kill(p, signal.SIGTERM)
    for p in pids: os.waitpid(p, 0)
    counts = sorted(int(l.split()[1]) for l in open(out))
    os.remove(out)
    return counts

ALL = "shared-drain,shared-one,exclusive,reuseport,reuseport-cbpf,leastconn"
if len(sys.argv) > 2 and sys.argv[2] == "migrate":
    print("accepted by the surviving socket, of 40 queued:", [migrate_trial()[0] for _ in range(3)])
    sys.exit(0)
for strategy in (sys.argv[2] if len(sys.argv) > 2 else ALL).split(","):
    ratios = []; dists = []
    for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 10):
        c = run(strategy)
        dists.append(c); ratios.append(c[-1] / max(c[0], 0.5))
    print(f"{strategy:12} max/min median {statistics.median(ratios):5.2f} worst {max(ratios):5.2f}  {dists}")
