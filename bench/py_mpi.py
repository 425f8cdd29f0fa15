"""bench/py_mpi.py - the Python anchor of bench/mpi.c: mpi4py.futures' MPIPoolExecutor.

Run plainly (by bench/run), it runs itself under mpirun, once with Open MPI's defaults and
once with TCP only, the same two command lines as bench/mpi.c (ids with .tcp appended for
the second), and prints one repetition of each figure as `id python value unit` lines
(and a `cmd <id> <mpirun ...>` line for each id, which bench/run shows under the row):

    mpirun --oversubscribe [--mca btl self,tcp] -np 3 python3 -m mpi4py.futures py_mpi.py --job

Rank 0 runs the figures; mpi4py.futures makes ranks 1 and 2 the executor's two workers.
  mpi.map.cs1      tasks/s, list(executor.map(square, range(5 k), chunksize=1))
  mpi.map.default  items/s, executor.map(square, range(1 M), chunksize=c) for c in 1,000,
                   10,000 and 100,000: the best of the three (MPIPoolExecutor's default
                   chunksize is 1)
  mpi.apply.rtt    us per executor.submit(plus_one, i).result(), 1,000 calls
Warm-up, untimed: the executor's workers are up (bootup) and a map of 100 items and 50
submits have run before the first clock. Every result is checked. Exits 77 (bench/run
skips it with a note) where mpirun or mpi4py is missing.
Python is much slower than C, so it runs fewer items than bench/mpi.c's maps (rates and
per-call times are compared, never totals). Run with Debian's /usr/bin/python3.
"""
import os
import shutil
import subprocess
import sys
import time

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)
CONFIGS = (("", []), (".tcp", ["--mca", "btl", "self,tcp"]))  # as bench/mpi.c
IDS = ("mpi.map.cs1", "mpi.map.default", "mpi.apply.rtt")
TIMEOUT_S = 120


def scaled(n, floor=16):
    return max(floor, int(n * SCALE))


def square(x):
    return x * x


def plus_one(x):
    return x + 1


def emit(ident, value, unit):
    print(f"{ident} python {value:.6g} {unit}", flush=True)


# ---- in the job (rank 0) -------------------------------------------------------------


def run_map(ex, n, chunksize):
    t0 = time.monotonic()
    out = list(ex.map(square, range(n), chunksize=chunksize))
    t = time.monotonic() - t0
    if len(out) != n or any(y != i * i for i, y in enumerate(out)):
        sys.exit(f"map of {n}, chunksize {chunksize}: wrong results")
    return n / t


def run_apply(ex, n):
    t0 = time.monotonic()
    for i in range(n):
        if ex.submit(plus_one, i).result() != i + 1:
            sys.exit(f"submit: wrong result for {i}")
    return (time.monotonic() - t0) / n * 1e6


def job():
    from mpi4py.futures import MPIPoolExecutor

    with MPIPoolExecutor() as ex:
        ex.bootup()
        run_map(ex, 100, 1)  # warm-up
        emit("mpi.map.cs1", run_map(ex, scaled(5000), 1), "tasks/s")
        n = scaled(1000000, 1000)
        emit("mpi.map.default", max(run_map(ex, n, c) for c in (1000, 10000, 100000)),
             "items/s")
        run_apply(ex, 50)  # warm-up
        emit("mpi.apply.rtt", run_apply(ex, scaled(1000)), "us")


# ---- the driver ------------------------------------------------------------------------


def skip(why):
    """bench/run shows the last line on stderr of a program that exits 77 as the note."""
    print(why, file=sys.stderr)
    sys.exit(77)


def drive():
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        skip("no mpirun on PATH (Debian: openmpi-bin)")
    try:
        import mpi4py  # noqa: F401 (only whether it is there: MPI starts in the job)
    except ImportError:
        skip("no mpi4py for /usr/bin/python3 (Debian: python3-mpi4py)")
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root unless told
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    for suffix, mca in CONFIGS:
        line = " ".join(["mpirun", "--oversubscribe"] + mca + ["-np", "3"])
        for ident in IDS:
            print(f"cmd {ident}{suffix} {line}", flush=True)
        argv = ([mpirun, "--oversubscribe"] + mca + ["-np", "3", sys.executable, "-m",
                "mpi4py.futures", os.path.abspath(__file__), "--job"])
        try:
            cp = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=env,
                                timeout=TIMEOUT_S, start_new_session=True)
        except subprocess.TimeoutExpired:
            sys.exit(f"{line} ... py_mpi.py --job: no end after {TIMEOUT_S} s")
        if cp.returncode != 0:
            sys.exit(f"{line} ... py_mpi.py --job: exit status {cp.returncode}")
        got = 0
        for out in cp.stdout.splitlines():
            f = out.split()
            if len(f) != 4 or f[0] not in IDS or f[1] != "python":
                sys.exit(f"{line} ... py_mpi.py --job printed: {out}")
            print(f"{f[0]}{suffix} {f[1]} {f[2]} {f[3]}", flush=True)
            got += 1
        if got != len(IDS):
            sys.exit(f"{line} ... py_mpi.py --job: {got} figures, want {len(IDS)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--job"]:
        job()
    else:
        drive()
