"""bench/py_graph.py - the Ruffus anchor of bench/graph.c (Debian's python3-ruffus).

One repetition, printing `id ruffus value unit` lines:
  graph.full  jobs/s, Ruffus's shell jobs: an @originate task of 300 independent jobs,
              each `os.system("echo jN > jN.out")`, pipeline_run(multiprocess=2)
  graph.fn    jobs/s, Ruffus's function jobs: an @originate task of 1,000 independent
              jobs, each writing its output file from Python, pipeline_run(multiprocess=2)
Ruffus runs fewer jobs than bench/graph.c (it is much slower): rates are compared. Every
output is checked. Left out (no line) when ruffus cannot be imported.
Run with Debian's /usr/bin/python3 (bench/run does).
"""
import os
import shutil
import sys
import tempfile
import time

SCALE = float(os.environ.get("BENCH_SCALE", "1") or 1)


def scaled(n):
    return max(16, int(n * SCALE))


try:
    import ruffus
except ImportError:
    print("py_graph: ruffus not installed: no anchor", file=sys.stderr)
    sys.exit(0)


def emit(ident, value, unit):
    print(f"{ident} ruffus {value:.6g} {unit}", flush=True)


def run(outputs, job, tag):
    pipeline = ruffus.Pipeline(tag)
    pipeline.originate(task_func=job, output=outputs)
    t0 = time.monotonic()
    pipeline.run(multiprocess=2, verbose=0)
    dt = time.monotonic() - t0
    for i, path in enumerate(outputs):
        with open(path) as f:
            if f.read() != f"j{i}\n":
                raise SystemExit(f"py_graph: {path} is wrong")
    return len(outputs) / dt


def shell_job(output):
    name = os.path.basename(output)[:-4]
    if os.system(f"echo {name} > {output}") != 0:
        raise RuntimeError("echo failed")


def fn_job(output):
    with open(output, "w") as f:
        f.write(os.path.basename(output)[:-4] + "\n")


def main():
    d = tempfile.mkdtemp(prefix="mproc-bench-ruffus-")
    try:
        full = [os.path.join(d, f"j{i}.out") for i in range(scaled(300))]
        emit("graph.full", run(full, shell_job, "full"), "jobs/s")
        os.makedirs(os.path.join(d, "fn"))
        fn = [os.path.join(d, "fn", f"j{i}.out") for i in range(scaled(1000))]
        emit("graph.fn", run(fn, fn_job, "fn"), "jobs/s")
    finally:
        shutil.rmtree(d)
        ruffus_db = os.path.join(os.getcwd(), ".ruffus_history.sqlite")
        if os.path.exists(ruffus_db):
            os.remove(ruffus_db)


if __name__ == "__main__":
    main()
