/* bench/lock.c - mproc_lock, uncontended and contended.
 *
 * One repetition of each figure, mproc first, then its C anchor:
 *   lock.uncontended  ns per acquire+release pair, one process
 *                     | pthread: a process-shared pthread mutex in shared memory
 *   lock.contended    total acquisitions/s, 2 processes hammering one lock, each
 *                     incrementing a shared counter under it | pthread, the same
 *
 * The Python anchor (multiprocessing.Lock, same patterns) is bench/py_lock.py. The
 * contended counter must end at exactly 2 x n on both sides.
 * Usage: lock [--rep]   (BENCH_SCALE=0.1 in the environment shrinks the counts)
 */
#include "bench.h"

#include <pthread.h>

#include "mproc/error.h"
#include "mproc/sync.h"

static uint64_t scaled(uint64_t n)
{
    return bench_scaled(n, 16);
}

/* Both variants behind one tiny interface, so the loops are the same code. */
struct shared {
    mproc_lock lock;
    pthread_mutex_t mutex;
    int use_pthread;
    int ready;
    int go;
    uint64_t counter;
    double t_end[2];
};

static inline void acquire(struct shared *sh)
{
    if (sh->use_pthread) {
        if (pthread_mutex_lock(&sh->mutex) != 0)
            bench_die("pthread_mutex_lock");
    } else {
        int rc = mproc_lock_acquire(&sh->lock, MPROC_FOREVER);
        if (rc != 0)
            bench_die("mproc_lock_acquire: %d (%s)", rc, mproc_strerror(rc));
    }
}

static inline void release(struct shared *sh)
{
    if (sh->use_pthread) {
        if (pthread_mutex_unlock(&sh->mutex) != 0)
            bench_die("pthread_mutex_unlock");
    } else {
        int rc = mproc_lock_release(&sh->lock);
        if (rc != 0)
            bench_die("mproc_lock_release: %d (%s)", rc, mproc_strerror(rc));
    }
}

static struct shared *setup(int use_pthread)
{
    struct shared *sh = bench_shared(sizeof *sh);
    sh->use_pthread = use_pthread;
    BENCH_OK(mproc_lock_init(&sh->lock, 0));
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (pthread_mutex_init(&sh->mutex, &attr) != 0)
        bench_die("pthread_mutex_init");
    pthread_mutexattr_destroy(&attr);
    return sh;
}

static double run_uncontended(int use_pthread, uint64_t n)
{
    struct shared *sh = setup(use_pthread);
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        acquire(sh);
        sh->counter++;
        release(sh);
    }
    double ns = (bench_now() - t0) / (double)n * 1e9;
    if (sh->counter != n)
        bench_die("uncontended: counter %llu", (unsigned long long)sh->counter);
    munmap(sh, sizeof *sh);
    return ns;
}

static double run_contended(int use_pthread, uint64_t n)
{
    struct shared *sh = setup(use_pthread);
    pid_t pid[2];
    for (int k = 0; k < 2; k++) {
        pid[k] = bench_fork();
        if (pid[k] == 0) {
            __atomic_fetch_add(&sh->ready, 1, __ATOMIC_ACQ_REL);
            bench_wait_flag(&sh->go, 1);
            for (uint64_t i = 0; i < n; i++) {
                acquire(sh);
                sh->counter++;
                release(sh);
            }
            sh->t_end[k] = bench_now();
            _exit(0);
        }
    }
    bench_wait_flag(&sh->ready, 2);
    double t0 = bench_now();
    bench_set_flag(&sh->go, 1);
    bench_reap(pid[0], "lock hammer");
    bench_reap(pid[1], "lock hammer");
    if (sh->counter != 2 * n)
        bench_die("contended: counter %llu, want %llu", (unsigned long long)sh->counter,
                  (unsigned long long)(2 * n));
    double t1 = sh->t_end[0] > sh->t_end[1] ? sh->t_end[0] : sh->t_end[1];
    munmap(sh, sizeof *sh);
    return (double)(2 * n) / (t1 - t0);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uint64_t nu = scaled(5000000), nc = scaled(2000000);
    bench_emit("lock.uncontended", "mproc", run_uncontended(0, nu), "ns");
    bench_emit("lock.uncontended", "pthread", run_uncontended(1, nu), "ns");
    bench_emit("lock.contended", "mproc", run_contended(0, nc), "acq/s");
    bench_emit("lock.contended", "pthread", run_contended(1, nc), "acq/s");
    return 0;
}
