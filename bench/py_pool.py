"""bench/py_pool.py - the Python anchor of bench/pool.c: multiprocessing.Pool (fork).

One repetition, printing `id python value unit` lines:
  pool.imap.mem     peak RSS (MiB) of the calling process over Pool(2).imap of x*x on
                    1 M generated ints, chunksize 100 (measured first, in a fresh forked
                    process; Python's imap consumes its whole input at once, so its peak
                    grows with the item count: the C side runs 10 M items)
  pool.imap.rate    items/s, Pool(2).imap(square, generator of 20 k ints) with the default
                    chunksize (1), every result checked in order
  pool.map.cs1      tasks/s, Pool(2).map(square, range(20 k), chunksize=1)
  pool.map.default  items/s, Pool(2).map(square, range(1 M)) with the default chunksize
    pool.map.var      items/s, Pool(2).map(reverse, strings) with the default chunksize over
                    200 k byte strings of 10-1,000 bytes (the same strings as bench/pool.c:
                    var_len, var_byte), each reversed, every result checked
  pool.apply.rtt    us per apply_async(plus_one, (i,)).get(), 2,000 calls, 2 workers
  pool.map.uneven   s for Pool(2).map(time.sleep, secs) with the default chunksize, secs:
                    400 sleeps, the first 40 of 5 ms, the rest of 0
  pool.sleep24      s for Pool(8).map(time.sleep, [0.1] * 24, chunksize=1), pool created
                    beforehand
  pool.create       ms per Pool(2) + close + join, 10 pools
  pool.create.forkserver, pool.create.spawn, pool.apply.rtt.forkserver,
  pool.apply.rtt.spawn   the same with that start method (one pool first, untimed)
Python is much slower than C, so it runs fewer items than bench/pool.c (noted above);
rates and per-call times are compared, never totals. Every result is checked.
Run with Debian's /usr/bin/python3 (bench/run does).
"""
import multiprocessing as mp
import os
import resource
import sys
import time

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)


def scaled(n):
    return max(16, int(n * SCALE))


def emit(ident, value, unit):
    print(f"{ident} python {value:.6g} {unit}", flush=True)


def square(x):
    return x * x


def plus_one(x):
    return x + 1


def imap_mem_child(ctx, n, w):
    with ctx.Pool(2) as p:
        got = 0
        for i, y in enumerate(p.imap(square, (i % 1000003 for i in range(n)), chunksize=100)):
            x = i % 1000003
            if y != x * x:
                os._exit(1)
            got += 1
    if got != n:
        os._exit(1)
    os.write(w, str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).encode())
    os._exit(0)


def imap_mem(ctx, n):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            imap_mem_child(ctx, n, w)
        finally:
            os._exit(1)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        sys.exit(f"pool.imap.mem: child status {status}")
    return int(data) / 1024.0


def run_map(p, n, chunksize):
    t0 = time.monotonic()
    if chunksize:
        out = p.map(square, range(n), chunksize=chunksize)
    else:
        out = p.map(square, range(n))
    t = time.monotonic() - t0
    if len(out) != n or any(y != i * i for i, y in enumerate(out)):
        sys.exit("pool.map: wrong results")
    return n / t


def reverse(s):
    return s[::-1]


def var_strings(n):
    """bench/pool.c's strings: lengths from a 64-bit LCG, bytes 'a' + (i + k) % 26."""
    alphabet = bytes(range(ord("a"), ord("a") + 26)) * 40  # 1,040 bytes: any window fits
    x, out = 1, []
    for i in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        length = 10 + (x >> 33) % 991
        start = i % 26
        out.append(alphabet[start:start + length])
    return out


def run_map_var(p, n):
    items = var_strings(n)
    p.map(reverse, items[:1000])  # warm, as the C side
    t0 = time.monotonic()
    out = p.map(reverse, items)
    t = time.monotonic() - t0
    if len(out) != n or any(y != s[::-1] for s, y in zip(items, out)):
        sys.exit("pool.map.var: wrong results")
    return n / t


def run_imap_rate(p, n):
    t0 = time.monotonic()
    got = 0
    for i, y in enumerate(p.imap(square, (i % 1000003 for i in range(n)))):
        x = i % 1000003
        if y != x * x:
            sys.exit(f"pool.imap.rate: wrong result for {i}")
        got += 1
    t = time.monotonic() - t0
    if got != n:
        sys.exit("pool.imap.rate: missing results")
    return n / t


def run_apply(p, n):
    t0 = time.monotonic()
    for i in range(n):
        if p.apply_async(plus_one, (i,)).get() != i + 1:
            sys.exit(f"pool.apply: wrong result for {i}")
    return (time.monotonic() - t0) / n * 1e6


def run_uneven(p):
    secs = [0.005 if i < 40 else 0.0 for i in range(400)]
    t0 = time.monotonic()
    out = p.map(time.sleep, secs)
    t = time.monotonic() - t0
    if out != [None] * 400:
        sys.exit("pool.map.uneven: wrong results")
    return t


def run_sleep24(ctx):
    with ctx.Pool(8) as p:
        t0 = time.monotonic()
        out = p.map(time.sleep, [0.1] * 24, chunksize=1)
        t = time.monotonic() - t0
    if out != [None] * 24:
        sys.exit("pool.sleep24: wrong results")
    return t


def run_create(ctx, n):
    t0 = time.monotonic()
    for _ in range(n):
        p = ctx.Pool(2)
        p.close()
        p.join()
    return (time.monotonic() - t0) / n * 1e3


def main():
    ctx = mp.get_context("fork")
    emit("pool.imap.mem", imap_mem(ctx, scaled(1000000)), "MiB")
    with ctx.Pool(2) as p:
        emit("pool.imap.rate", run_imap_rate(p, scaled(20000)), "items/s")
        emit("pool.map.cs1", run_map(p, scaled(20000), 1), "tasks/s")
        emit("pool.map.default", run_map(p, scaled(1000000), 0), "items/s")
        emit("pool.map.var", run_map_var(p, scaled(200000)), "items/s")
        emit("pool.apply.rtt", run_apply(p, scaled(2000)), "us")
        emit("pool.map.uneven", run_uneven(p), "s")
    emit("pool.sleep24", run_sleep24(ctx), "s")
    emit("pool.create", run_create(ctx, scaled(10)), "ms")
    for method in ("forkserver", "spawn"):
        mctx = mp.get_context(method)
        run_create(mctx, 1)  # warm-up, untimed: starts the fork server
        emit(f"pool.create.{method}", run_create(mctx, scaled(10)), "ms")
        with mctx.Pool(2) as p:
            emit(f"pool.apply.rtt.{method}", run_apply(p, scaled(2000)), "us")


if __name__ == "__main__":
    main()
