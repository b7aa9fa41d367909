#!/usr/bin/env python3
"""Writes SETs at a fixed rate (keyspace events for the Activity benchmark), pipelined.
Usage: keyevents_load.py PORT RATE SECONDS  — prints the number of SETs sent and answered."""
import socket, sys, time

port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
batch = max(1, rate // 100)          # 100 batches a second
sent = 0
start = time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = int(now * rate) + batch
    if sent >= due:
        time.sleep(0.002)
        continue
    out = []
    for i in range(sent, sent + batch):
        key = f"app:workspace:{i % 100000}" if i % 10 else f"app:lock:workspace:{i % 1000}"
        out.append(f"*5\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n$1\r\n1\r\n$2\r\nEX\r\n$3\r\n300\r\n")
    s.sendall("".join(out).encode())
    need = 5 * batch                 # "+OK\r\n" each
    got = 0
    while got < need:
        got += len(s.recv(need - got))
    sent += batch
print(sent)
