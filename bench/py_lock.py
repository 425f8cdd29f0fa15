"""bench/py_lock.py - the Python anchor of bench/lock.c: multiprocessing.Lock.

One repetition, printing `id python value unit` lines:
  lock.uncontended  ns per acquire()+release() pair (with a counter increment), one process
  lock.contended    total acquisitions/s, 2 forked processes hammering one Lock, each
                    incrementing a shared counter (RawValue) under it; the counter must end
                    at exactly 2 x n.
The counts are the same as in bench/lock.c (5 M pairs; 2 x 2 M acquisitions); rates and
per-operation times are compared. Run with Debian's /usr/bin/python3 (bench/run does).
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


def uncontended(ctx, n):
    lock = ctx.Lock()
    counter = 0
    acquire, release = lock.acquire, lock.release
    t0 = time.monotonic()
    for _ in range(n):
        acquire()
        counter += 1
        release()
    dt = time.monotonic() - t0
    if counter != n:
        sys.exit(f"uncontended: counter {counter}")
    return dt / n * 1e9


def hammer(lock, counter, ready, go, ends, k, n):
    ready.release()
    go.wait()
    acquire, release = lock.acquire, lock.release
    for _ in range(n):
        acquire()
        counter.value += 1
        release()
    ends[k] = time.monotonic()


def contended(ctx, n):
    lock = ctx.Lock()
    counter = ctx.RawValue("q", 0)
    ends = ctx.RawArray("d", 2)
    ready = ctx.Semaphore(0)
    go = ctx.Event()
    procs = [ctx.Process(target=hammer, args=(lock, counter, ready, go, ends, k, n))
             for k in range(2)]
    for p in procs:
        p.start()
    ready.acquire()
    ready.acquire()
    t0 = time.monotonic()
    go.set()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"contended: child exit code {p.exitcode}")
    if counter.value != 2 * n:
        sys.exit(f"contended: counter {counter.value}, want {2 * n}")
    return 2 * n / (max(ends) - t0)


def main():
    ctx = mp.get_context("fork")
    emit("lock.uncontended", uncontended(ctx, scaled(5000000)), "ns")
    emit("lock.contended", contended(ctx, scaled(2000000)), "acq/s")


if __name__ == "__main__":
    main()
