"""bench/py_process.py - the Python anchor of bench/process.c: multiprocessing.Process.

One repetition, printing `id python value unit` lines (microseconds per child):
  process.start_join  Process(target=f, args=(i % 100,)).start(); join() with the fork
                      start method; child i exits with status i % 100 and every exitcode
                      is checked, as in bench/process.c.
Python is slower per child, so it starts fewer; the time per child is compared.
Run with Debian's /usr/bin/python3 (bench/run does).
"""
import multiprocessing as mp
import os
import sys
import time

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)


def scaled(n):
    return max(16, int(n * SCALE))


def child(code):
    sys.exit(code)


def main():
    ctx = mp.get_context("fork")
    n = scaled(300)
    t0 = time.monotonic()
    for i in range(n):
        p = ctx.Process(target=child, args=(i % 100,))
        p.start()
        p.join()
        if p.exitcode != i % 100:
            sys.exit(f"process {i}: exitcode {p.exitcode}")
    us = (time.monotonic() - t0) / n * 1e6
    print(f"process.start_join python {us:.6g} us", flush=True)


if __name__ == "__main__":
    main()
