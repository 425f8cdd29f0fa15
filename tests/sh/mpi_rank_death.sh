#!/usr/bin/env bash
# A host rank of an MPI pool killed (SIGKILL) mid-map, through tests/test_mpi --rank-death,
# whose task kills its own host at item 300. The promise (mproc/mpi.h): no hang; under
# mpirun --enable-recovery, rank 0 lives on, the map ends with the lost rank named
# (-MPROC_EBROKEN, or -MPROC_EDIED for the item it ran), every outcome that came
# before stays, the pool says it is broken, and at exit the job is aborted with a message;
# under plain mpirun, mpirun ends the whole job itself, with its message. The same
# program on its own (--spawn: its workers started by MPI_Comm_spawn) keeps the promise as
# under --enable-recovery. Skipped (77) without an MPI build.
set -u
bin="$MPROC_BINARY_DIR/tests/test_mpi"
if ! command -v mpirun >/dev/null || [ ! -x "$bin" ]; then
    echo "mpi_rank_death: no MPI build here, skipped"
    exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

for btl in "" "--mca btl self,tcp" spawn; do
    if [ "$btl" = spawn ]; then # on its own: its workers started by MPI_Comm_spawn
        out=$(timeout 120 "$bin" --spawn --rank-death 2>&1)
    else
        # shellcheck disable=SC2086
        out=$(timeout 120 mpirun --oversubscribe --enable-recovery $btl -np 3 "$bin" --rank-death 2>&1)
    fi
    rc=$?
    echo "--- mpirun --enable-recovery $btl: exit $rc"
    grep -E "^(wait|map|outcomes|broken|rank-death):" <<<"$out"
    [ $rc -ne 124 ] || fail "hung ($btl)"
    grep -q "^wait: OK" <<<"$out" || fail "the map's wait did not end ($btl)"
        # the item that killed it: -MPROC_EDIED if its host had told that it began, else
    # -MPROC_EBROKEN like the rest (the host died before it could say)
    grep -Eq "^map: MPROC_E(DIED|BROKEN): .*lost: MPI (spawned )?rank [0-2] \(pid [0-9]+ on " <<<"$out" ||
        fail "the lost rank is not named ($btl)"
    ok=$(sed -n 's/^outcomes: \([0-9]*\) ok, 0 wrong.*/\1/p' <<<"$out")
    [ -n "$ok" ] && [ "$ok" -ge 150 ] || fail "outcomes before the death lost or wrong ($btl)"
        grep -Eq "^broken: MPROC_EBROKEN: pool broken: .*MPI (spawned )?rank" <<<"$out" ||
        fail "pool not broken ($btl)"
    grep -q "^rank-death: done" <<<"$out" || fail "rank 0 did not finish ($btl)"
        # rank 0 aborts the job at its exit (mpirun says so, though its message is lost now
    # and then under --enable-recovery): every rank is gone when mpirun returns
    pgrep -f "test_mpi --rank-death" >/dev/null && fail "ranks left behind ($btl)"

done

out=$(timeout 120 mpirun --oversubscribe -np 3 "$bin" --rank-death 2>&1)
rc=$?
echo "--- mpirun: exit $rc"
[ $rc -ne 124 ] || fail "hung (plain mpirun)"
[ $rc -ne 0 ] || fail "plain mpirun: the job ended as if nothing happened"
grep -Eq "mpirun noticed that process rank|MPI_ABORT was invoked" <<<"$out" ||
    fail "plain mpirun: no message: $out"
exit $failed
