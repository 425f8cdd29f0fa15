/* mproc/error.h - error codes and their messages.
 *
 * Every fallible mproc call returns an int: >= 0 on success, a negative code on
 * failure. A code is either minus an errno value (-EINVAL, -ETIMEDOUT, ...) or
 * minus one of the MPROC_E* values below, which lie outside errno's range.
 * mproc_strerror() explains any code. The library never reports through errno,
 * never prints and never exits.
 */
#ifndef MPROC_ERROR_H
#define MPROC_ERROR_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Library-specific error codes. Functions return them negated: -MPROC_ECLOSED. */
enum mproc_error {
    MPROC_EBASE = 20000,
    MPROC_ECLOSED,   /* the object was closed: no more puts, or a get on a closed empty queue */
    MPROC_EEOF,      /* the peer closed its end (or died): no more messages will come */
    MPROC_EBROKEN,   /* a barrier (or pool) is broken: a party died, timed out or aborted */
    MPROC_ETOOSMALL, /* the caller's buffer is too small; the message is kept for the next call */
    MPROC_ECORRUPT,  /* shared state was found half-written by a process that died */
    MPROC_ESTATE,  /* the operation does not fit the object's state (start twice, join before start)
                    */
    MPROC_ENOTSUP, /* not supported by this build or this kernel */
    MPROC_EEXEC,   /* a child could not be started: the program could not be executed */
    MPROC_EFAULT,  /* a fault injected by a test at a named fault point */
    MPROC_EDIED,   /* a pool worker died while running the task (signal or exit status) */
    MPROC_ETIMELIMIT, /* a pool task ran past its time limit (its worker was killed) */
    MPROC_ECANCELLED, /* the task was cancelled (or the pool terminated) before it ran */
    MPROC_EAUTH,      /* the peer did not prove it knows the key (or asked us to prove ours) */
    MPROC_ENOINIT,    /* a worker started by spawn or the fork server never reached
                         mproc_init(&argc, &argv): the program must call it in main() */

    MPROC_ELAST /* one past the last code */
};

/* What a code means, as a short English sentence. Accepts any int: negative or positive
 * codes of either kind, and 0 ("success"). Never returns NULL. The string is static (an unknown
 * code's text lives in thread-local storage until the thread's next call).
 * Safe in threads and in a forked child; not async-signal-safe. */
MPROC_API const char *mproc_strerror(int code);

/* The symbolic name of a code ("ETIMEDOUT", "MPROC_ECLOSED"), or "UNKNOWN". Static string. */
MPROC_API const char *mproc_errname(int code);

#ifdef __cplusplus
}
#endif

#endif
