"""bench/py_queue.py - the Python anchor of bench/queue.c: multiprocessing.Queue.

One repetition, printing `id python value unit` lines:
  queue.8B     8-byte bytes messages/s
  queue.1KiB   1 KiB bytes messages/s
  queue.64KiB  64 KiB bytes messages, in bytes/s
The main process produces, one forked Process consumes, as in bench/queue.c: every
message carries its sequence number in its first 8 bytes (and its low byte again in the
last byte); the consumer checks the length, the order and the sum. The clock runs from
the first put (the consumer already waits) to the consumer's last get (time.monotonic is
CLOCK_MONOTONIC, shared by both processes). The Queue is the default, unbounded one.
Python's Queue is slow, so it gets fewer messages than the C side; rates are compared.
Run with Debian's /usr/bin/python3 (bench/run does).
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


def consume(q, res, ready, size, n):
    ready.set()
    total = 0
    get = q.get
    for i in range(n):
        m = get()
        seq = int.from_bytes(m[:8], "little")
        if len(m) != size or seq != i or (size > 8 and m[-1] != i & 255):
            res.put(("bad", i, len(m), seq))
            return
        total += seq
    res.put(("ok", total, time.monotonic()))


def run(ctx, size, n):
    q = ctx.Queue()
    res = ctx.Queue()
    ready = ctx.Event()
    p = ctx.Process(target=consume, args=(q, res, ready, size, n))
    p.start()
    ready.wait()
    put = q.put
    t0 = time.monotonic()
    if size == 8:
        for i in range(n):
            put(i.to_bytes(8, "little"))
    else:
        tmpl = bytearray(b"\xa5" * size)
        for i in range(n):
            tmpl[:8] = i.to_bytes(8, "little")
            tmpl[-1] = i & 255
            put(bytes(tmpl))
    r = res.get()
    p.join()
    if r[0] != "ok" or r[1] != n * (n - 1) // 2 or p.exitcode != 0:
        sys.exit(f"queue {size}: consumer said {r}, exit code {p.exitcode}")
    return n / (r[2] - t0)


def main():
    ctx = mp.get_context("fork")
    emit("queue.8B", run(ctx, 8, scaled(100000)), "msg/s")
    emit("queue.1KiB", run(ctx, 1024, scaled(50000)), "msg/s")
    emit("queue.64KiB", run(ctx, 65536, scaled(2000)) * 65536, "B/s")


if __name__ == "__main__":
    main()
