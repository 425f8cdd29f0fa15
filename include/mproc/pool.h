/* mproc/pool.h - a pool of worker processes: apply, map, imap, async results.
 *
 * Python's multiprocessing.Pool in C. Tasks are a function and bytes: a task function
 * gets its input (pointer + length) and writes its output into a buffer the pool gives
 * it; map and imap work on arrays of fixed-size items (several arguments: one struct).
 * A task fails by returning a negative code, with a message set by mproc_task_fail().
 *
 * Reliability (each point is tested by provoking it for real):
 *  - Every submitted task reaches exactly one outcome: its output, its own error (code
 *    and message), -MPROC_EDIED (its worker died while running it: signal or exit
 *    status in the message), -MPROC_ETIMELIMIT (it ran past its time limit; its worker
 *    was killed), -MPROC_ECANCELLED (cancelled or terminated before it ran), or
 *    -MPROC_EBROKEN (the pool broke before it ran).
 *  - A dead worker fails only the task it was running; tasks it had been sent but not
 *    begun go to other workers; a replacement starts. A worker publishes the outputs of
 *    tiny map/imap tasks in batches (up to 1024 tasks or about 2 ms of work): tasks it had
 *    finished but not yet published when it died run again elsewhere, so a task function
 *    with side effects may run twice for one outcome (never the task that killed its
 *    worker). More than max_restarts unplanned worker deaths within restart_period
 *    seconds break the pool (no fork loop).
 *  - A host program that reaps every child (a SIGCHLD handler calling waitpid(-1)) may
 *    take a worker's exit status: the message then says the status is unknown, never a
 *    made-up signal; planned exits (maxtasksperchild) and an initializer's code are told
 *    by the worker itself, so they are never mistaken for crashes.
 *  - Workers die with the caller (PR_SET_PDEATHSIG, tied to the pool's own thread).
 *    Nothing is left in /dev/shm: all shared memory is anonymous.
 *
 * Lifetime rules:
 *  1. mproc_pool_new() starts the workers (fork) and returns once every initializer has
 *     succeeded; if one fails, every worker is stopped and the initializer's code is
 *     returned. Workers are forked from the pool's supervisor thread.
 *  2. Submissions return at once with a result handle (or block, for apply and map).
 *     The caller keeps input arrays and output arrays valid until the result is ready.
 *  3. mproc_pool_close() refuses new work (-MPROC_ECLOSED); mproc_pool_join() waits for
 *     the accepted work to finish and the workers to exit; mproc_pool_terminate() stops
 *     now: workers are killed, work not finished completes as -MPROC_ECANCELLED.
 *  4. mproc_pool_free() terminates a pool that was not joined, then releases it. Result
 *     handles stay valid (and ready) after the pool is freed; free them separately.
 *  5. Callbacks run in the pool's supervisor thread, one at a time, never concurrently
 *     with each other. A callback may submit work (apply_async, map_async) and read
 *     its own result, but must not block on the pool (apply, map, waiting for another
 *     result, join, terminate, free): the thread that would finish them is the one
 *     running the callback. Keep callbacks and imap generators short: while one runs,
 *     no results are collected.
 *
 * Function references: a task function must live in the program or in a shared library
 * loaded the same way in the workers; it is sent to the workers as (module, offset),
 * never as a raw pointer, so workers started by other methods (exec, MPI) find it too.
 *
 * Threads: all functions on a pool or result may be called from any thread of the
 * process that created the pool, concurrently. None is async-signal-safe. In a forked
 * child (other than a worker) the pool must not be used.
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include "mproc/common.h"
#include "mproc/init.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_pool mproc_pool;
typedef struct mproc_result mproc_result;
typedef struct mproc_imap mproc_imap;
typedef struct mproc_task mproc_task; /* a worker's view of the task it runs */

/* A task. in/in_len: the input (read-only; in_len is the item size for map/imap).
 * out: where to write the output; *out_len is its capacity on entry (the item size
 * for map/imap, where it must not be changed) and the bytes written on return.
 * Return 0, or a negative code for failure (mproc_task_fail adds a message). */
typedef int (*mproc_task_fn)(mproc_task *t, const void *in, size_t in_len, void *out,
                             size_t *out_len);

/* A worker's initializer: runs once in each worker before its first task. *state
 * (NULL on entry) is the per-worker state that tasks reach with mproc_task_state().
 * Return 0, or a negative code: then pool creation fails with that code. */
typedef int (*mproc_pool_init_fn)(void *arg, void **state);

/* Produce the next input item for imap into item (item_size bytes).
 * Return 1 (an item), 0 (no more items) or a negative code (the imap ends with it). */
typedef int (*mproc_imap_gen_fn)(void *arg, void *item, size_t item_size);

/* A completion callback (see lifetime rule 5). r is owned by the pool during the call. */
typedef void (*mproc_result_cb)(mproc_result *r, void *arg);

typedef struct mproc_pool_opts {
    int workers;                    /* 0: mproc_cpu_usable(); at most 1024 */
    mproc_pool_init_fn initializer; /* NULL: none */
    void *initarg;                  /* passed to initializer (the worker's copy after fork) */
    size_t initarg_size;            /* forkserver, spawn: initarg points to this many bytes
                                       (at most 1 GiB), copied to each worker (its copy is
                                       what the initializer gets); a non-NULL initarg with 0
                                       here is -EINVAL there, as a pointer means nothing in
                                       another program image. fork: ignored */
    unsigned maxtasksperchild;      /* 0: unlimited; else a worker exits after that many tasks
                                       and a fresh one replaces it */
    double timeout;                 /* default per-task time limit in seconds; 0: none */
    int max_restarts;               /* unplanned deaths tolerated within restart_period; 0: the
                                       default max(10, 2 * workers); negative: -EINVAL */
    double restart_period;          /* seconds; 0: 1.0 */
    size_t channel_size;            /* bytes of each worker's task and result channels; 0: 1 MiB.
                                       The largest input or output of one task is about half. */
    int pin;                        /* nonzero: worker i runs only on the i-th CPU (round robin)
                                       of the caller's affinity mask; a failure to pin fails the
                                       worker's start like its initializer */
    double init_timeout;            /* seconds each worker's start (initializer, pinning) may
                                       take; past it the worker is killed and its start fails
                                       with -MPROC_ETIMELIMIT (creation fails; a replacement
                                       counts as a death). 0: no limit, as in Python */
    const int *inherit_fds;         /* descriptors above 2 the tasks need (the caller's copy is
                                       read at creation): workers keep these and close every
                                       other descriptor they inherited, so a worker never holds
                                       what the host opens (a pipe's write end would otherwise
                                       never show EOF while a pool lives); each must be open */
    size_t n_inherit_fds;
    int phase_times;          /* nonzero: measure where the time goes (the `ns` of
                             mproc_pool_stats); costs a few clock reads per chunk */
    mproc_start_method start; /* how workers start (mproc/init.h); 0: the process-wide
                                 default, fork unless mproc_set_start_method said otherwise */
} mproc_pool_opts;

/* Options of one submission. The zero value: default chunksize, the pool's timeout,
 * no callbacks. */
typedef struct mproc_call_opts {
    size_t chunksize;               /* tasks per dispatch; 0: map: paced, about 1 ms of work by
                                       the measured time per task (one task until measured),
                                       at most what is left / (2 * workers), limited by the
                                       channel size; imap: paced the same way, at most what is
                                       waiting and window / (2 * workers) */
    double timeout;                 /* per-task time limit for this call; 0: the pool's */
    mproc_result_cb callback;       /* on success (apply_async, map_async) */
    mproc_result_cb error_callback; /* on failure (any task failed) */
    void *cb_arg;
    size_t window;  /* imap: most items generated but not yet read (memory
                       bound); 0: about 1 MiB of items, within [256, 16384],
                       and at least 8 * workers * chunksize */
    unsigned flags; /* enum mproc_call_flags */
} mproc_call_opts;

enum mproc_call_flags {
    MPROC_IMAP_UNORDERED = 1u << 0 /* imap: results as they finish, not in input order */
};

/* Start a pool (opts may be NULL). Errors: -EINVAL (NULL out, workers < 0 or > 1024,
 * negative or NaN timeout/period, negative max_restarts), -ENOMEM, -EAGAIN (process
 * limit), the initializer's code, -MPROC_EDIED (a worker died in its initializer).
 * A failed call leaves no worker, thread or fd behind. */
MPROC_API int mproc_pool_new(mproc_pool **out, const mproc_pool_opts *opts);

/* apply: run fn(in) in a worker and wait for it (at most timeout seconds, then
 * -ETIMEDOUT; the task goes on and its outcome is dropped). When a worker is idle (and
 * neither the pool nor opts set a per-task time limit, and the pool has no
 * maxtasksperchild) the calling thread hands the task to it directly and the worker
 * answers directly: a round trip of about a microsecond, with every outcome rule above
 * kept. The output is copied into out (cap bytes; *out_len, if not NULL, gets its length;
 * out may be NULL with cap 0). opts (may be NULL): .timeout, this task's time limit
 * (0: the pool's); callbacks are refused (-EINVAL), the rest is ignored.
 * Returns 0 or the task's code; its message is mproc_pool_message()'s. Errors also:
 * -EINVAL, -MPROC_ECLOSED, -MPROC_EBROKEN, -EMSGSIZE (input larger than the channel
 * allows), -MPROC_ETOOSMALL (output larger than cap; *out_len says how large). */
MPROC_API int mproc_pool_apply(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len,
                               void *out, size_t cap, size_t *out_len, const mproc_call_opts *opts,
                               double timeout);

/* The failure message of this thread's last blocking mproc_pool_apply or mproc_pool_map:
 * the task's own (mproc_task_fail; for a map, the lowest-numbered failed item's), else
 * mproc_strerror's text for the code; "" after a success. Also after an mproc_pool_new
 * that failed starting its workers: why (an initializer's message, a worker's death, a
 * worker that could not start by the pool's start method). Never NULL; valid until this
 * thread's next such call. */
MPROC_API const char *mproc_pool_message(void);

/* apply_async: queue one task; *r (may be NULL: then the pool frees the result after
 * the callbacks ran) gets the result handle. The input is copied. opts may be NULL.
 * Errors: -EINVAL, -MPROC_ECLOSED, -MPROC_EBROKEN, -EMSGSIZE, -ENOMEM. */
MPROC_API int mproc_pool_apply_async(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len,
                                     const mproc_call_opts *opts, mproc_result **r);

/* map: out[i] = fn(in[i]) for n items of in_size bytes, outputs of out_size bytes
 * written to out (the caller's memory; item i of a failed task is left untouched).
 * Zero-copy: when in (or out) lies in shared memory mapped before mproc_pool_new (an
 * mproc_shm block, an mproc_array, any MAP_SHARED mapping), the workers read (write) it
 * in place instead of copying through their channels; a failed task's output item then
 * holds whatever the task wrote. Elsewhere, one copy each way.
 * Blocks until every task has an outcome. Returns 0 when all succeeded, else the code
 * of the lowest-numbered failed item (its message: mproc_pool_message(); use map_async
 * for per-item outcomes).
 * n == 0 returns 0 at once. Errors also: -EINVAL (NULL p/fn/in/out with n > 0, in_size
 * or out_size 0, n * size overflowing), -EMSGSIZE (an input or output item larger than
 * the channel allows, as for apply), -MPROC_ECLOSED, -MPROC_EBROKEN. */
MPROC_API int mproc_pool_map(mproc_pool *p, mproc_task_fn fn, const void *in, size_t n,
                             size_t in_size, void *out, size_t out_size,
                             const mproc_call_opts *opts);

/* map_async: the same, returning at once with a result handle (never NULL out here).
 * in and out must stay valid until the result is ready. */
MPROC_API int mproc_pool_map_async(mproc_pool *p, mproc_task_fn fn, const void *in, size_t n,
                                   size_t in_size, void *out, size_t out_size,
                                   const mproc_call_opts *opts, mproc_result **r);

/* An item of any size: len bytes at data. */
typedef struct mproc_item {
    void *data;
    size_t len;
} mproc_item;

/* map over items of any size (Python's Pool.map over bytes or strings): out[i] gets
 * fn(in[i]): its output in memory the pool allocates (release it with mproc_item_free or
 * mproc_items_free, not free(); a success always has data, even for 0 bytes, aligned
 * for any type) and its length, or {NULL, 0} for a failed item. Each input may be up to about half
 * the pool's channel (.capacity), as may each output (the task gets that room: *out_len on entry).
 * The inputs are read while the map runs: in and the bytes it points to stay valid and unchanged
 * until it completes. Returns as mproc_pool_map (its message: mproc_pool_message()). Errors also:
 * -EINVAL (NULL p/fn/in/out with n > 0, an item with NULL data and len > 0), -EMSGSIZE (an input
 * item larger than a channel message allows), -MPROC_ECLOSED, -MPROC_EBROKEN. */
MPROC_API int mproc_pool_map_var(mproc_pool *p, mproc_task_fn fn, const mproc_item *in, size_t n,
                                 mproc_item *out, const mproc_call_opts *opts);

/* map_var_async: the same, returning at once with a result handle; out[] is filled as
 * the outcomes come in (read it once the result is ready). */
MPROC_API int mproc_pool_map_var_async(mproc_pool *p, mproc_task_fn fn, const mproc_item *in,
                                       size_t n, mproc_item *out, const mproc_call_opts *opts,
                                       mproc_result **r);

/* Release an output of map_var (from any thread, in any order; it becomes {NULL, 0}), or
 * the n of an array. NULL items or data: no-op. */
MPROC_API void mproc_item_free(mproc_item *it);
MPROC_API void mproc_items_free(mproc_item *items, size_t n);

/* The memory of released outputs is kept for the next map_var in this process (up to
 * 1 GiB, as an allocator keeps freed memory: pages touched again cost nothing, fresh ones
 * a fault each); this gives it back to the system. Thread-safe. */
MPROC_API void mproc_items_trim(void);

/* imap over items of any size: gen sets *item (its bytes are copied before gen is called
 * again) and returns 1, or returns 0 at the end, or a negative code (the generator
 * failed: reported once by mproc_imap_next, then -MPROC_EEOF). An item larger than a
 * channel message allows stops the generator as a failure with -EMSGSIZE. Results come
 * from mproc_imap_next, whose capacity check is per item (*out_len: the item's length). */
typedef int (*mproc_imap_var_gen_fn)(void *arg, mproc_item *item);
MPROC_API int mproc_pool_imap_var(mproc_pool *p, mproc_task_fn fn, mproc_imap_var_gen_fn gen,
                                  void *gen_arg, const mproc_call_opts *opts, mproc_imap **it);

/* imap / imap_unordered (flag): items produced by gen (called in the pool's thread,
 * lazily: at most window items are held at once). Read results with mproc_imap_next.
 * Unordered, a slow item holds back only itself and the items after it in its chunk (with
 * chunksize 1, in the message it came in: at most window / (2 * workers)); ordered, the
 * reader waits for it.
 * Errors: -EINVAL, -EMSGSIZE (an item larger than the channel allows), -MPROC_ECLOSED,
 * -MPROC_EBROKEN, -ENOMEM. */
MPROC_API int mproc_pool_imap(mproc_pool *p, mproc_task_fn fn, mproc_imap_gen_fn gen, void *gen_arg,
                              size_t in_size, size_t out_size, const mproc_call_opts *opts,
                              mproc_imap **it);

/* The next result: 0 and the output in out (out_size bytes of cap, or the item's length
 * for imap_var; *out_len, if not NULL, gets that size) and *index (the item's number in generation
 * order; may be NULL), or the task's negative code (with *index set; msg, if not NULL, gets its
 * message, valid until the next call). -MPROC_EEOF when every item has been returned; -ETIMEDOUT;
 * the generator's code once, when it failed (then -MPROC_EEOF); -MPROC_ETOOSMALL when cap is below
 * that size (*out_len says it; nothing is taken: the next call gets the same item); -EINVAL (NULL
 * it, NULL out with cap > 0). */
MPROC_API int mproc_imap_next(mproc_imap *it, void *out, size_t cap, size_t *out_len, size_t *index,
                              const char **msg, double timeout);

/* Release an iterator: the generator is not called again, items not yet sent to a worker
 * are cancelled, items running complete and are dropped. Free every iterator before its
 * pool. NULL: no-op. */
MPROC_API void mproc_imap_free(mproc_imap *it);

/* No more submissions. 0, -EINVAL. Closing twice is fine. */
MPROC_API int mproc_pool_close(mproc_pool *p);

/* After close: wait until all accepted work has an outcome and the workers have exited.
 * 0, -ETIMEDOUT, -MPROC_ESTATE (not closed), -EINVAL. */
MPROC_API int mproc_pool_join(mproc_pool *p, double timeout);

/* Stop now: kill the workers; unfinished tasks complete as -MPROC_ECANCELLED (their
 * callbacks run before this returns). Implies close. 0 or -EINVAL. */
MPROC_API int mproc_pool_terminate(mproc_pool *p);

/* Terminate if needed, join the pool's thread, release everything. NULL: no-op. */
MPROC_API void mproc_pool_free(mproc_pool *p);

/* The number of worker processes (> 0), or -EINVAL. */
MPROC_API int mproc_pool_workers(const mproc_pool *p);

/* Where the time went, in nanoseconds summed over the workers (the supervisor's own for
 * dispatch and settle), measured only in a pool created with .phase_times (else 0). The
 * phases of a task's journey: the supervisor builds and sends its chunk (dispatch: copies
 * into a staging area included); the worker maps in the shared pages the chunk reads and
 * writes in place (fault), copies inputs in from, and outputs out to, the caller's
 * private memory (copy), runs the task functions (run), publishes the outcomes (publish:
 * waiting for room in its result ring included); the supervisor reads them and copies
 * staged outputs into the caller's array (settle). */
typedef struct mproc_pool_phases {
    uint64_t dispatch, fault, copy, run, publish, settle;
} mproc_pool_phases;

/* Progress counters. */
typedef struct mproc_pool_stats {
    uint64_t submitted;   /* tasks accepted */
    uint64_t done;        /* tasks with an outcome (failed included) */
    uint64_t failed;      /* tasks whose outcome is a failure (any code) */
    uint64_t pending;     /* submitted - done */
    uint64_t restarts;    /* workers replaced (deaths, timeouts, maxtasksperchild) */
    int broken;           /* 1 when the pool is broken */
    mproc_pool_phases ns; /* .phase_times: where the time went (see above) */
} mproc_pool_stats;

typedef struct mproc_worker_stats {
    pid_t pid;     /* the current worker process in this slot (0 if none) */
    uint64_t done; /* tasks finished in this slot, all incarnations */
    uint64_t failed;
    uint64_t restarts; /* times this slot's worker was replaced */
} mproc_worker_stats;

/* Fill *s (and, if w is not NULL, w[0..nw) for the first nw workers). 0 or -EINVAL. */
MPROC_API int mproc_pool_stats_get(mproc_pool *p, mproc_pool_stats *s, mproc_worker_stats *w,
                                   size_t nw);

/* Why the pool broke: the broken code (-MPROC_EBROKEN) and a message (owned by the pool),
 * or 0 and "" while it is not broken. -EINVAL for NULL p. */
MPROC_API int mproc_pool_broken(mproc_pool *p, const char **msg);

/* ---- results ------------------------------------------------------------------ */

/* Wait until ready: 0, -ETIMEDOUT, -EINVAL. */
MPROC_API int mproc_result_wait(mproc_result *r, double timeout);

/* 1 ready, 0 not yet, -EINVAL. */
MPROC_API int mproc_result_ready(mproc_result *r);

/* A descriptor that becomes readable when r is ready and stays so (for poll/epoll beside
 * other descriptors; mproc_wait uses it): made at the first call (the same one after),
 * owned by r, close-on-exec. -EINVAL, -EMFILE, -ENFILE, -ENOMEM. */
MPROC_API int mproc_result_fd(mproc_result *r);

/* 1 every task succeeded, 0 some failed, -MPROC_ESTATE not ready yet, -EINVAL. */
MPROC_API int mproc_result_successful(mproc_result *r);

/* Wait (as wait; the timeout comes last, as in every call that takes one), then: 0 when
 * successful, else the failure code (for a map, of the
 * lowest-numbered failed item). For apply_async the output is copied into out (cap
 * bytes; *out_len, if not NULL, gets its length; -MPROC_ETOOSMALL when cap is too small);
 * out NULL (cap 0): no copy, only the outcome. For a map out is ignored (may be NULL):
 * the outputs are in the map's out array. */
MPROC_API int mproc_result_get(mproc_result *r, void *out, size_t cap, size_t *out_len,
                               double timeout);

/* A ready apply_async result's output without copying: *data (owned by r, valid until
 * mproc_result_free; NULL when empty) and *len. 0, the task's failure code,
 * -MPROC_ESTATE (not ready), -EINVAL. Handy in callbacks. */
MPROC_API int mproc_result_output(mproc_result *r, const void **data, size_t *len);

/* The failure message of get's code ("" if none; owned by r). NULL for NULL r. */
MPROC_API const char *mproc_result_message(mproc_result *r);

/* Failures of a ready map, in item order: number of failed items (>= 0), and with
 * k < that number, item k's index, code and message. -MPROC_ESTATE not ready, -EINVAL. */
MPROC_API int mproc_result_failures(mproc_result *r, size_t k, size_t *index, int *code,
                                    const char **msg);

/* Cancel the tasks not yet sent to a worker: they complete as -MPROC_ECANCELLED.
 * Returns how many were cancelled (>= 0), or -EINVAL. */
MPROC_API int mproc_result_cancel(mproc_result *r);

/* Release the caller's handle (the pool keeps what it needs until the work is done).
 * NULL: no-op. */
MPROC_API void mproc_result_free(mproc_result *r);

/* A task function's identity, as the pool sends it to its workers: the module it lives in,
 * its offset there and the module's build id, the same in every process running the same
 * build of the program (fork, exec, MPI) and different in another build. The task graph
 * keeps it in a job's fingerprint. Written to buf (cap bytes); 0 and *len, or -EINVAL,
 * -ENOENT (fn is in no loaded module), -MPROC_ETOOSMALL (*len: the size needed). */
MPROC_API int mproc_task_id(mproc_task_fn fn, void *buf, size_t cap, size_t *len);

/* ---- inside a task (worker side) ------------------------------------------------ */

/* Set the failure message (printf format; a longer one is cut to 255 bytes, its last
 * three "..." to mark the cut) and return code, so
 * a task can `return mproc_task_fail(t, -EDOM, "x = %d", x);`. */
MPROC_API int mproc_task_fail(mproc_task *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The worker's state set by the initializer (NULL without one). */
MPROC_API void *mproc_task_state(mproc_task *t);

/* The worker's slot number, 0 .. workers-1. */
MPROC_API int mproc_task_worker(mproc_task *t);

#ifdef __cplusplus
}
#endif

#endif
