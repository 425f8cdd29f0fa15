/* mproc/queue.h - a bounded multi-producer multi-consumer queue of byte messages.
 *
 * Python's multiprocessing.Queue and JoinableQueue, in shared memory: messages are
 * copied into a ring in a shared mapping, processes forked after mproc_queue_new()
 * put and get directly, and no helper thread or pipe carries the data. Waits sleep on
 * futexes, so an idle queue costs no CPU.
 *
 * Reliability: a producer or consumer killed in the middle of put or get loses nothing
 * that was already complete and never blocks the others for long: the next put (or get)
 * notices that the process holding its side of the queue is gone (exited, a zombie, or
 * its pid now names another process) and takes over within milliseconds (at most 64 ms
 * after the death). A message is published only after it was written whole; one
 * half-written by a process that died is discarded; one half-read by a consumer that
 * died stays in the queue for the next get. Processes sharing a queue must share one
 * pid namespace (as fork() children do): holders are identified by pid and start time.
 *
 * Lifetime rules:
 *  1. mproc_queue_new() maps the queue; children forked afterwards share it.
 *  2. mproc_queue_free() unmaps it in the calling process only; the memory goes away
 *     when the last process unmaps or exits. Nothing is ever left in /dev/shm.
 *  3. mproc_queue_close() is shared: once closed, puts fail with -MPROC_ECLOSED in every
 *     process, and gets drain what is left, then return -MPROC_ECLOSED.
 *
 * Order: messages are delivered whole and in the order their puts completed; each to
 * exactly one get. Try-once calls (timeout 0, *_nowait) may still wait a few
 * milliseconds for another process that is copying a message in or out, so that
 * "full" and "empty" describe the queue, not a moment of contention.
 *
 * All functions are safe in threads and in forked children (fork after new()); none
 * is async-signal-safe.
 */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_queue mproc_queue;

enum mproc_queue_flags {
    MPROC_QUEUE_JOINABLE = 1u << 0 /* JoinableQueue: task_done() and join() */
};

typedef struct mproc_queue_opts {
    size_t capacity; /* bytes of message storage, rounded up to a power of two (at least
                        64, at most 1 GiB); 0: 1 MiB. Each message uses an 8-byte header
                        plus its length rounded up to 8, so the largest message is
                        capacity - 8 bytes. */
    size_t maxsize;  /* most messages queued at once (Python maxsize), at most
                        2^27 - 1; 0: no count limit */
    unsigned flags;  /* enum mproc_queue_flags */
} mproc_queue_opts;

/* Create a queue (opts may be NULL). Errors: -EINVAL (NULL out, capacity above 1 GiB,
 * maxsize above 2^27 - 1, unknown flags), -ENOMEM, -ENOSPC. */
MPROC_API int mproc_queue_new(mproc_queue **out, const mproc_queue_opts *opts);

/* Put one message (len may be 0; buf may then be NULL), copying it into the queue,
 * waiting at most timeout seconds for room (bytes and maxsize).
 * Errors: -ETIMEDOUT (still full), -EMSGSIZE (larger than the whole capacity: could never
 * fit; returned at once), -MPROC_ECLOSED, -EOVERFLOW (JoinableQueue with 2^27 - 1
 * unfinished tasks), -EINVAL (NULL q, NULL buf with len > 0, negative or NaN timeout). */
MPROC_API int mproc_queue_put(mproc_queue *q, const void *buf, size_t len, double timeout);

/* Put without waiting: -EAGAIN when full (Python's Full). */
MPROC_API int mproc_queue_put_nowait(mproc_queue *q, const void *buf, size_t len);

/* Get the oldest message into a new malloc'd buffer (the caller frees it with free();
 * never NULL, even for len 0), waiting at most timeout seconds. On failure *buf and *len
 * are left as they were. Errors: -ETIMEDOUT (still empty), -MPROC_ECLOSED (closed and
 * empty), -ENOMEM (the message stays queued), -EINVAL. */
MPROC_API int mproc_queue_get(mproc_queue *q, void **buf, size_t *len, double timeout);

/* Get into the caller's buffer (buf may be NULL when cap is 0). -MPROC_ETOOSMALL when cap
 * is too small: *len is the size needed and the message stays queued. Other errors as
 * mproc_queue_get. */
MPROC_API int mproc_queue_get_into(mproc_queue *q, void *buf, size_t cap, size_t *len,
                                   double timeout);

/* Get without waiting: -EAGAIN when empty (Python's Empty). */
MPROC_API int mproc_queue_get_nowait(mproc_queue *q, void **buf, size_t *len);

/* Number of queued messages (>= 0; approximate while others put and get); 1/0 for
 * empty and full (full: even an empty message would have to wait); -EINVAL. */
MPROC_API int mproc_queue_qsize(const mproc_queue *q);
MPROC_API int mproc_queue_empty(const mproc_queue *q);
MPROC_API int mproc_queue_full(const mproc_queue *q);

/* No more puts, in every process; waiting getters wake to drain the rest, waiting
 * putters wake with -MPROC_ECLOSED. Closing twice is fine. 0 or -EINVAL. */
MPROC_API int mproc_queue_close(mproc_queue *q);

/* JoinableQueue: mark one gotten message done; -EOVERFLOW if called more often than
 * messages were put; -MPROC_ESTATE if not joinable. */
MPROC_API int mproc_queue_task_done(mproc_queue *q);

/* JoinableQueue: wait until every message put has been marked done. 0, -ETIMEDOUT,
 * -MPROC_ESTATE if not joinable, -EINVAL. */
MPROC_API int mproc_queue_join(mproc_queue *q, double timeout);

/* A descriptor (an eventfd) for poll/epoll: once any process has asked for it, every
 * put and close makes it readable, in each process holding it (those forked after
 * mproc_queue_new; one that closed it, such as a pool worker not told to keep it, puts
 * without ringing it). Readable means "look": mproc_queue_ready (and mproc_wait) looks,
 * and resets it when the queue turns out empty. Owned by the queue (closed by free);
 * close-on-exec. -EINVAL, -EBADF (this process closed it), or the error met making it
 * when the queue was made (-EMFILE at the fd limit: the queue itself needs no fd, so it
 * was made all the same, without one). */
MPROC_API int mproc_queue_fd(mproc_queue *q);

/* For a loop that polls mproc_queue_fd: 1 when a get would not wait (a message, or
 * closed), else 0, and then the fd is reset (and the queue looked at again, so that a put
 * in between is not lost). Call it when the fd was readable. -EINVAL. */
MPROC_API int mproc_queue_ready(mproc_queue *q);

/* Unmap in this process (the queue must not be used here afterwards). NULL, or a
 * pointer that is not a queue, is a no-op. */
MPROC_API void mproc_queue_free(mproc_queue *q);

/* Python's SimpleQueue: a queue (the same object: empty, close and free as above) used
 * with a put and a get that wait as long as they must, and nothing else. Python's
 * SimpleQueue is a pipe with a lock; this one keeps the queue's promises (a process
 * killed in a put or a get loses nothing complete and blocks no one).
 * new: 1 MiB of messages (largest message 1 MiB - 8 bytes); -EINVAL, -ENOMEM, -ENOSPC.
 * put: waits for room; -EMSGSIZE, -MPROC_ECLOSED, -EINVAL.
 * get: waits for a message, into a malloc'd buffer (free() it); -MPROC_ECLOSED (closed
 * and empty), -ENOMEM (it stays queued), -EINVAL. */
MPROC_API int mproc_simplequeue_new(mproc_queue **out);
MPROC_API int mproc_simplequeue_put(mproc_queue *q, const void *buf, size_t len);
MPROC_API int mproc_simplequeue_get(mproc_queue *q, void **buf, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
