#!/usr/bin/env python3
"""PING a Redis server in a loop until SIGTERM; print p50/p99/max latency (ms) as JSON.
What the application would feel while something else works the server."""
import json, signal, socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
running = True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
while running:
    t = time.perf_counter()
    s.sendall(b"PING\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            running = False
            break
        buf += chunk
    lat.append((time.perf_counter() - t) * 1000)
    time.sleep(0.0005)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] if lat else None
print(json.dumps({"n": len(lat), "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": lat[-1] if lat else None}))
