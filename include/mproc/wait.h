/* mproc/wait.h - wait on many things at once.
 *
 * Python's multiprocessing.connection.wait and concurrent.futures.wait(FIRST_COMPLETED):
 * one call that returns as soon as any of a set of connections, queues, processes, pool
 * results and plain descriptors is ready, with a timeout. Each of these objects also has
 * a descriptor (mproc_conn_fd, mproc_queue_fd, mproc_process_fd, mproc_result_fd), so
 * that a poll, epoll or libuv loop can wait on them beside its own.
 *
 * A queue's own waits are futexes; its descriptor (mproc_queue_fd) is rung by puts only
 * once someone asked for it, so a queue costs nothing extra until it is waited on so.
 */
#ifndef MPROC_WAIT_H
#define MPROC_WAIT_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum mproc_wait_kind {
    MPROC_WAIT_FD = 0,  /* fd: readable (or hung up, or in error) */
    MPROC_WAIT_CONN,    /* obj, an mproc_conn: a message or end-of-file can be received */
    MPROC_WAIT_PROCESS, /* obj, a started mproc_process: it ended (not reaped here) */
    MPROC_WAIT_RESULT,  /* obj, an mproc_result: it is ready */
    MPROC_WAIT_QUEUE    /* obj, an mproc_queue: a get would not wait (a message, or closed) */
};

typedef struct mproc_waitable {
    int kind;  /* enum mproc_wait_kind */
    void *obj; /* the object (not for MPROC_WAIT_FD) */
    int fd;    /* MPROC_WAIT_FD: the descriptor */
    int ready; /* set by mproc_wait: 1 ready, 0 not */
} mproc_waitable;

/* Wait until at least one of w[0..n) is ready, at most timeout seconds (0: look once;
 * MPROC_FOREVER). Sets every w[i].ready and returns how many are ready (> 0), or
 * -ETIMEDOUT (none), -EINVAL (NULL w, n 0, an unknown kind, a NULL object, a bad
 * timeout), or an object's own error (-MPROC_ESTATE: a process not started; -EBADF: a
 * send-only connection end). Thread-safe as the objects' own calls are. */
MPROC_API int mproc_wait(mproc_waitable *w, size_t n, double timeout);

#ifdef __cplusplus
}
#endif

#endif
