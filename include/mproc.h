/* mproc.h - multiprocessing for C on Linux. The umbrella header.
 *
 * Include this, or only the concept headers you use (each compiles on its own):
 *   mproc/error.h    error codes and mproc_strerror()
 *   mproc/cpu.h      logical, physical and usable CPU counts
 *   mproc/process.h  run a function or a program in a child process
 *   mproc/pipe.h     connected pairs carrying whole byte messages
 *   mproc/shm.h      shared memory blocks, shared values and arrays
 *   mproc/sync.h     process-shared Lock, RLock, Semaphore, Event, Condition, Barrier
 *   mproc/queue.h    bounded multi-producer multi-consumer message queue
 *   mproc/wait.h     wait on many connections, queues, processes, results and fds
 *   mproc/fault.h    named fault points for tests
 */
#ifndef MPROC_H
#define MPROC_H

#include "mproc/common.h"
#include "mproc/error.h"
#include "mproc/cpu.h"
#include "mproc/process.h"
#include "mproc/pipe.h"
#include "mproc/shm.h"
#include "mproc/sync.h"
#include "mproc/queue.h"
#include "mproc/fault.h"
#include "mproc/init.h"
#include "mproc/pool.h"
#include "mproc/mpi.h"
#include "mproc/wait.h"
#include "mproc/dict.h"
#include "mproc/list.h"

#endif
