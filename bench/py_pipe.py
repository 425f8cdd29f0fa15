"""bench/py_pipe.py - the Python anchor of bench/pipe.c: multiprocessing.Pipe.

One repetition, printing `id python value unit` lines (microseconds per round trip):
  pipe.rtt          Pipe() (duplex, a socketpair): send(8 bytes) / recv() round trip
  pipe.rtt.simplex  two Pipe(duplex=False), one per direction
The parent sends i as 8 bytes, a forked Process answers i + 1, the parent checks every
answer, as in bench/pipe.c. Python is slower per round trip, so it does fewer round trips;
the time per round trip is compared. Run with Debian's /usr/bin/python3 (bench/run does).
"""
import multiprocessing as mp
import os
import sys
import time

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)


def scaled(n):
    return max(16, int(n * SCALE))


def emit(ident, value, unit):
    print(f"{ident} python {value:.6g} {unit}", flush=True)


def echo(rx, tx, n):
    for _ in range(n):
        v = int.from_bytes(rx.recv(), "little")
        tx.send((v + 1).to_bytes(8, "little"))


def ping(tx, rx, n):
    t0 = time.monotonic()
    for i in range(n):
        tx.send(i.to_bytes(8, "little"))
        v = int.from_bytes(rx.recv(), "little")
        if v != i + 1:
            sys.exit(f"pipe: answer {v} to {i}")
    return (time.monotonic() - t0) / n * 1e6


def run(ctx, n, duplex):
    if duplex:
        a, b = ctx.Pipe()
        p = ctx.Process(target=echo, args=(b, b, n))
        p.start()
        b.close()
        us = ping(a, a, n)
        a.close()
    else:
        down_rx, down_tx = ctx.Pipe(duplex=False)
        up_rx, up_tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=echo, args=(down_rx, up_tx, n))
        p.start()
        down_rx.close()
        up_tx.close()
        us = ping(down_tx, up_rx, n)
        down_tx.close()
        up_rx.close()
    p.join()
    if p.exitcode != 0:
        sys.exit(f"pipe echo: exit code {p.exitcode}")
    return us


def main():
    ctx = mp.get_context("fork")
    n = scaled(2000)
    emit("pipe.rtt", run(ctx, n, True), "us")
    emit("pipe.rtt.simplex", run(ctx, n, False), "us")


if __name__ == "__main__":
    main()
