/* src/pool/boot.h - workers that do not fork from the caller (spawn, forkserver):
 * how they are started and how they become workers (src/pool/boot.c). */
#ifndef MPROC_POOL_BOOT_H
#define MPROC_POOL_BOOT_H

#include <sys/types.h>

struct sup;
struct worker;

/* Supervisor: a worker's exit status that says why it could not begin: its start error
 * and message (n bytes of room); false for any other status. */
bool mproc__pool_boot_failed(int status, int *code, char *msg, size_t n);

/* The magic word that opens a pool worker's boot message (src/start/init.c tells kinds by it). */
#define MPROC__POOL_BOOT_MAGIC 0x3142504du /* "MPB1" */

/* The new process: become the worker the message in descriptor boot describes. Returns
 * its exit status (never returns to the program's main()). */
int mproc__pool_boot_run(int boot);

#endif
