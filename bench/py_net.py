"""bench/py_net.py - the Python anchor of bench/net.c: multiprocessing.connection.

One repetition, printing `id python value unit` lines:
  net.rtt      us per round trip of an 8-byte message (send_bytes / recv_bytes) over a
               Client connected to a Listener at an abstract Unix address with an authkey
               (the handshake outside the timed region); a forked child echoes
  net.connect  us per connection: Client(address, authkey) and the listener's accept
               (both challenges), until the first message is back
The counts are a tenth of bench/net.c's; times per operation are compared. Run with
Debian's /usr/bin/python3 (bench/run does).
"""
import multiprocessing as mp
import os
import struct
import sys
import time
from multiprocessing.connection import Client, Listener

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)
KEY = b"bench key"


def scaled(n, floor):
    return max(floor, int(n * SCALE))


def emit(ident, value, unit):
    print(f"{ident} python {value:.6g} {unit}", flush=True)


def echo(conn):
    while True:
        try:
            b = conn.recv_bytes()
        except EOFError:
            break
        (v,) = struct.unpack("<Q", b)
        conn.send_bytes(struct.pack("<Q", v + 1))
    conn.close()


def client(address, conns):
    for _ in range(conns + 1):
        echo(Client(address, authkey=KEY))


def ask(conn, i):
    conn.send_bytes(struct.pack("<Q", i))
    (v,) = struct.unpack("<Q", conn.recv_bytes())
    if v != i + 1:
        sys.exit(f"answer {v} to {i}")


def main():
    n, conns = scaled(2000, 20), scaled(200, 5)
    with Listener("\0mproc-bench-py-net-%d" % os.getpid(), "AF_UNIX", authkey=KEY) as listener:
        p = mp.get_context("fork").Process(target=client, args=(listener.address, conns))
        p.start()
        conn = listener.accept()
        ask(conn, 0)
        t0 = time.monotonic()
        for i in range(n):
            ask(conn, i)
        rtt = (time.monotonic() - t0) / n * 1e6
        conn.close()
        t0 = time.monotonic()
        for k in range(conns):
            conn = listener.accept()
            ask(conn, k)
            conn.close()
        connect = (time.monotonic() - t0) / conns * 1e6
        p.join()
        if p.exitcode != 0:
            sys.exit(f"client exited {p.exitcode}")
    emit("net.rtt", rtt, "us")
    emit("net.connect", connect, "us")


if __name__ == "__main__":
    main()
