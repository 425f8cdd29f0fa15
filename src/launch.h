/* src/launch.h - start this program afresh as a process that boots from a message
 * (src/launch.c): what the spawn and forkserver start methods share, for pool workers
 * (src/pool/boot.c) and process objects (src/process.c). */
#ifndef MPROC_LAUNCH_H
#define MPROC_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mproc/init.h"

/* The environment variable that names the boot message's descriptor in the new process;
 * mproc_init reads it (src/start/init.c) and hands the descriptor to the boot of its kind. */
#define MPROC__BOOT_ENV "MPROC_BOOT"

/* The most bytes of an argument a boot message carries (initarg_size, arg_size). */
#define MPROC__BOOT_ARG_MAX ((size_t)1 << 30)

/* Bytes of a build-id we carry. */
#define MPROC__BUILD_MAX 64

/* Is id[0..len) this program's build-id (as mproc__fnref_main_build gives it)? A boot
 * message from another build cannot be trusted: its layouts and addresses differ. */
bool mproc__launch_same_build(const unsigned char *id, size_t len);

/* A close-on-exec memfd holding len bytes of msg: fd, or -errno. */
int mproc__launch_message(const void *msg, size_t len);

/* Start a process of this program by m (spawn or forkserver) that boots from the memfd
 * boot and has keep[0..nkeep) at their numbers (0-2 as well). daemon: it dies with the
 * calling thread (spawn; the fork server's children always die with the server). 0 with
 * *pid and *pidfd (close-on-exec, ours), or -errno / -MPROC_ENOINIT. */
int mproc__launch(mproc_start_method m, int boot, const int *keep, size_t nkeep, bool daemon,
                  pid_t *pid, int *pidfd);

/* Reap a process started by m: as mproc__sys_reap (1 and *code when it has ended, 0 while
 * it runs unless block, -errno). A fork server's child is the server's: its status comes
 * from the server (-ECHILD when the server cannot say it). */
int mproc__launch_reap(mproc_start_method m, pid_t pid, int pidfd, bool block, int *code);

/* Read a boot message whole from its descriptor: a malloc'd copy and its length, or NULL
 * (unreadable, shorter than min bytes). */
void *mproc__launch_read(int boot, size_t min, size_t *len);

#endif
