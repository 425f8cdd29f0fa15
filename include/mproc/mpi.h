/* mproc/mpi.h - the pool on the processes of an MPI job (libmproc-mpi, Open MPI).
 *
 * There is no new API: a pool whose options say .start = MPROC_START_MPI (or a program run
 * with --mproc-start=mpi) puts its workers on other MPI processes, and everything else
 * about it is the pool of mproc/pool.h: apply, map, imap, async results and callbacks,
 * per-task time limits, maxtasksperchild, initializers, close, join, terminate. Link the
 * program with libmproc-mpi (-lmproc-mpi, after -Wl,--no-as-needed: the library works
 * through a constructor alone; the CMake target mproc::mproc_mpi says so itself) and call
 * mproc_init(&argc, &argv) at the top of main(), before MPI_Init if the program calls it.
 *
 *   mpirun -np N ./prog --mproc-start=mpi
 *       every rank runs main(); in mproc_init, rank 0 carries on as the program and ranks
 *       1..N-1 become its hosts: mproc_init never returns there. A pool gets one worker
 *       per host (.workers 0: N-1 of them; more than N-1 is -EINVAL with a message).
 *   ./prog --mproc-start=mpi                      (on its own, or under mpirun -np 1)
 *       the first MPI pool starts its hosts with MPI_Comm_spawn (.workers of them, 0: one
 *       per usable CPU; this program again, which turns into a host in mproc_init), as
 *       mpi4py.futures does; later pools use the same hosts.
 * One MPI pool at a time (another is -EBUSY while one lives). A host never runs a task
 * itself: it forks a real pool worker and relays for it, so a task that crashes or runs
 * past its time limit ends that worker only (-MPROC_EDIED, -MPROC_ETIMELIMIT) and the
 * host starts a replacement, as on one machine. Every chunk carries its inputs in MPI
 * messages (no shared arrays: the workers share no memory with the caller); the task
 * and initializer go by reference, as with spawn, and the program must be the same build
 * on every node (else the pool is refused: -ESTALE, "another build").
 *
 * A host that dies (its rank is killed, its node goes away). Open MPI 4 cannot survive a
 * lost rank. The promise here is no hang and nothing finished lost: the caller learns of
 * the loss at once (each host holds a TCP connection to rank 0 that the kernel closes when
 * the host dies; keepalive probes break it within about 10 s when the node vanishes), the
 * pool breaks (-MPROC_EBROKEN; the tasks the lost worker held fail, naming the rank, its
 * pid and node), every outcome that arrived before stays readable, and at the program's
 * exit the job is aborted (MPI_Abort with the program's status, so mpirun ends with a
 * message and a failure). That needs mpirun --enable-recovery: without it mpirun itself
 * kills every rank about a second after one dies (the job still ends, with mpirun's
 * message, but rank 0 may not get to report). A program on its own (MPI_Comm_spawn) has
 * recovery turned on for it.
 *
 * With ULFM (the fault-tolerant MPI of Open MPI 5), a send to a dead rank would fail with
 * MPI_ERR_PROC_FAILED instead of hanging, MPI_Comm_shrink would leave a communicator of
 * the survivors, and a lost host's worker could be replaced (MPI_Comm_spawn of a new
 * host) like a crashed one, within the restart budget, instead of breaking the pool; the
 * job could then end cleanly too. Debian 12 ships Open MPI 4.1, without it.
 */
#ifndef MPROC_MPI_H
#define MPROC_MPI_H

#include "mproc/init.h"
#include "mproc/pool.h"

#endif
