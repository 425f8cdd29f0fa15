#!/usr/bin/env bash
# The examples run to completion and print what the tutorials print.
set -euo pipefail
: "${MPROC_SOURCE_DIR:?}" "${MPROC_BINARY_DIR:?}"
dir="$MPROC_BINARY_DIR/examples"
if [ ! -d "$dir" ]; then
    echo "examples: not built in this configuration"
    exit 77
fi
out=$("$MPROC_SOURCE_DIR/examples/run-all" "$dir")
echo "$out"
main_pid=$(sed -n 's/^main: pid \([0-9]*\),.*/\1/p' <<<"$out")
child_ppid=$(sed -n 's/^child: pid [0-9]*, parent pid \([0-9]*\)$/\1/p' <<<"$out")
[ -n "$main_pid" ] && [ "$main_pid" = "$child_ppid" ]
grep -q "^0 1 4 9 16 25 36 49 64 81$" <<<"$out"
grep -q "9801$" <<<"$out"
grep -q 'sent "ping 10", got "pong 10"' <<<"$out"
grep -q "with the lock:    40000 (expected 40000)" <<<"$out"
grep -q "^primes below 2000000: serial 148933, pool 148933 (expected 148933)$" <<<"$out"
grep -q "^pool price equals serial price; within 4 standard errors of Black-Scholes: ok$" <<<"$out"
grep -q "^  Black-Scholes  8.0214$" <<<"$out"
grep -q "^all 64 products equal the serial ones and match their row/column sums: ok$" <<<"$out"
grep -q "^every task ran in one of the pool's workers (. of 4 workers busy): ok$" <<<"$out"
# 12 tasks under each start method (run-all runs pool_pids with fork, forkserver, spawn)
[ "$(grep -c '^  task .. ran in worker [0-3], pid [0-9]*$' <<<"$out")" -eq 36 ]
grep -q '^== pool_squares --mproc-start=spawn$' <<<"$out"
# pool_pids once per start method; pool_primes and pool_option again on MPI ranks
mpi=$(grep -c '^== pool_primes under mpirun' <<<"$out" || true)
[ "$(grep -c '^  speedup ' <<<"$out")" -eq $((6 + 2 * mpi)) ]
if command -v mpirun >/dev/null && ldd "$dir/pool_primes" | grep -q libmproc-mpi; then
    [ "$mpi" -eq 1 ] # built with Open MPI: the MPI runs happened, and got the same results
    [ "$(grep -c "^primes below 2000000: serial 148933, pool 148933 (expected 148933)$" <<<"$out")" -eq 2 ]
    [ "$(grep -c "^pool price equals serial price; within 4 standard errors of Black-Scholes: ok$" <<<"$out")" -eq 2 ]
    grep -q "^  pool .*(2 workers)$" <<<"$out"
    grep -q "^24 x sleep(0.1) on 8 workers" <<<"$out"
fi
grep -q '^dict: .*(3 entries)$' <<<"$out"
grep -q '^list: 9 8 7 6 5 4 3 2 1 0$' <<<"$out"
grep -q '^dict:.* 0.25: None' <<<"$out"
if [ -x "$dir/listener_echo" ]; then
    grep -q '^client with key "wrong password": authentication failed' <<<"$out"
    grep -q '^client got "echo: world"$' <<<"$out"
    grep -q '^refused: 1 stranger(s); the client exited with 0$' <<<"$out"
fi
