/* src/pool/boot.h - workers that do not fork from the caller (spawn, forkserver):
 * how they are started and how they become workers (src/pool/boot.c). */
#ifndef MPROC_POOL_BOOT_H
#define MPROC_POOL_BOOT_H

#include <sys/types.h>

struct sup;
struct worker;

/* Supervisor: start the process of w (its arg, queue and the pool's memory prepared, all
 * on memfds) by the pool's start method. 0 with *pid and *pidfd, or -errno. */
int mproc__pool_boot_start(struct sup *s, struct worker *w, pid_t *pid, int *pidfd);

/* Supervisor: the exit status of a worker of the fork server (not our child) that has
 * ended, or of our own child: 0 and *code, or < 0 when it cannot be known. */
int mproc__pool_boot_reap(struct sup *s, struct worker *w, int *code);

/* Supervisor: a worker's exit status that says why it could not begin: its start error
 * and message (n bytes of room); false for any other status. */
bool mproc__pool_boot_failed(int status, int *code, char *msg, size_t n);

/* The magic word that opens a pool worker's boot message (src/start/init.c tells kinds by it). */
#define MPROC__POOL_BOOT_MAGIC 0x3142504du /* "MPB1" */

/* The new process: become the worker the message in descriptor boot describes. Returns
 * its exit status (never returns to the program's main()). */
int mproc__pool_boot_run(int boot);

#endif
