"""bench/py_dict.py - the Python anchor of bench/dict.c: multiprocessing.Manager().dict().

One repetition, printing `id python value unit` lines:
  dict.set  total sets/s, 2 forked processes, each setting 8-byte keys (its own 50,000,
            round and round) to 64-byte values through the manager's proxy
    dict.get  total gets/s over the same keys; every value read is checked
  list.append_pop  total operations/s, 2 processes each appending a bytes item to one
            Manager().list() and popping one from its front (pop(0)), n times
The keys are filled before the timed region, as in bench/dict.c. A manager serves one
request per round trip, so the counts are smaller than the C side's (2 x 20,000); rates
are compared. Run with Debian's /usr/bin/python3 (bench/run does).
"""
import multiprocessing as mp
import os
import struct
import sys
import time

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)
KEYS = 50000
VALUE = 64


def scaled(n):
    return max(100, int(n * SCALE))


def emit(ident, value, unit):
    print(f"{ident} python {value:.6g} {unit}", flush=True)


def key_of(k):
    return struct.pack("<Q", k)


def value_of(k, rnd):
    return struct.pack("<Q", k) + bytes([(k + rnd) & 0xFF]) * (VALUE - 8)


def started(loop, ready, go, ends, w, *args):
    ready.release()
    go.wait()
    loop(w, *args)
    ends[w] = time.monotonic()


def two_workers(ctx, loop, *args):
    """Run loop(w, *args) in 2 forked processes started together: the seconds from the
    start to the later one's end."""
    ready = ctx.Semaphore(0)
    go = ctx.Event()
    ends = ctx.RawArray("d", 2)
    procs = [ctx.Process(target=started, args=(loop, ready, go, ends, w) + args)
             for w in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    t0 = time.monotonic()
    go.set()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"worker exited {p.exitcode}")
    return max(ends) - t0


def dict_loop(w, d, n, do_set):
    base = 1 + w * KEYS
    for i in range(n):
        k = base + i % KEYS
        if do_set:
            d[key_of(k)] = value_of(k, i // KEYS + 1)
        else:
            v = d[key_of(k)]
            if len(v) != VALUE or v[:8] != key_of(k):
                sys.exit(f"get: key {k} has another value")


def run(ctx, manager, do_set, n):
    d = manager.dict()
    d.update({key_of(k): value_of(k, 0) for k in range(1, 2 * KEYS + 1)})  # warm-up
    secs = two_workers(ctx, dict_loop, d, n, do_set)
    if len(d) != 2 * KEYS:
        sys.exit(f"dict: {len(d)} entries")
    return 2 * n / secs


def list_loop(w, lst, n):
    for i in range(n):
        lst.append(struct.pack("<Q", i))
        if len(lst.pop(0)) != 8:
            sys.exit("list: an item of another size")


def run_list(ctx, manager, n):
    lst = manager.list([struct.pack("<Q", i) for i in range(1000)])
    secs = two_workers(ctx, list_loop, lst, n)
    if len(lst) != 1000:
        sys.exit(f"list: {len(lst)} items left")
    return 4 * n / secs


def main():
    ctx = mp.get_context("fork")
    n = scaled(20000)
    with ctx.Manager() as manager:
        emit("dict.set", run(ctx, manager, True, n), "ops/s")
        emit("dict.get", run(ctx, manager, False, n), "ops/s")
        emit("list.append_pop", run_list(ctx, manager, n // 2), "ops/s")


if __name__ == "__main__":
    main()
