/* src/owner_lock.c - a robust lock for shared memory, cheap enough to take per message.
 *
 * DESIGN: one 64-bit word holds the owner: its pid, a generation and a stamp of the
 * owner's start time (owner_lock.h). Acquire is one compare-and-swap from "no pid" to
 * ours; release is a plain store of "no pid" followed by a store-load barrier and a look
 * at a separate waiters flag. The glibc robust mutex this replaces costs a robust-list
 * update on each side (about 25 ns per lock+unlock here); this costs one CAS and one
 * fence, or one CAS alone where membarrier is available (below).
 *
 * Who wakes whom: a waiter spins briefly (only when it may run on another CPU than the
 * owner), then sets waiters = 1, passes the sleeper barrier, re-reads the word, and if
 * it is still held futex-waits on its low 32 bits (pid and generation). An unlocker
 * stores the free word, passes the store-load barrier, reads waiters, and if it is set
 * swaps it to 0 and wakes one sleeper: the store/flag pairs form a Dekker pair, so
 * either the unlocker sees the flag or the waiter sees the lock free. The woken waiter
 * sets the flag again before it retries, so the next unlock wakes the next sleeper (a
 * chain; the last link costs one needless wake). The generation makes a re-lock by the
 * same process look different to a sleeper that read the word before the unlock, so it
 * does not sleep on a value that already had its wake.
 *
 * Death: the kernel knows nothing of this lock, so nothing happens when the owner dies.
 * Sleeps are cut into slices (1 ms, doubling to 64 ms while the same owner holds the
 * lock); at the end of each slice the waiter asks whether the owner is gone: no such pid
 * (kill(pid, 0) is ESRCH), a zombie (state Z or X in /proc/<pid>/stat), or a pid that
 * now names a process with another start time (the pid was reused). Then it takes the
 * lock over with a CAS from exactly the dead owner's word (so only one waiter wins) and
 * reports MPROC_OWNER_DIED. A waiter killed while asleep leaves waiters = 1 behind (one
 * needless wake later); a woken waiter killed before it retried leaves the others
 * asleep until their slice ends. Nothing can hang; the worst is a slice of delay.
 *
 * Limits: pids are compared within one pid namespace, and start times within one time
 * namespace (processes sharing a lock normally share both). Without /proc (or where
 * hidepid hides the owner) the check is kill() alone: a zombie owner then looks alive
 * until it is reaped, and a reused pid looks alive until that process exits. The stamp is the start
 * time in clock ticks (10 ms) modulo 2^32 - 1, so a reused pid is recognised unless the new process
 * started in the same tick as the dead one (the pid space would have had to wrap in 10 ms).
 *
 * Who am I: the owner id (pid and stamp) is computed once per process and kept in a
 * page marked MADV_WIPEONFORK, which the kernel zero-fills in a child however it was
 * forked (fork(), clone(), _Fork(): no atfork handler needed), so a child never takes
 * the lock under its parent's name. Where that page cannot be had (kernels before 4.14)
 * every acquisition asks getpid() and the stamp is left out (pid-only checks).
 *
 * The store-load barrier: an unlock, and a queue publishing a message, must order a
 * store before a later load of a sleeper count. A full fence per message costs about as
 * much as the CAS. When the kernel offers MEMBARRIER_CMD_GLOBAL_EXPEDITED, each process
 * registers once, its fast paths use a compiler barrier only, and a sleeper calls
 * membarrier() after announcing itself: that runs a full barrier on every CPU currently
 * running a registered process, which is the fence the fast path left out (it pairs
 * either way: a fast path that had not yet read the count when the barrier ran sees the
 * sleeper's announcement; one that had read it had its store made visible by the
 * barrier). Sleeping costs tens of microseconds anyway; the barrier adds about ten.
 * Should membarrier fail for a sleeper although others skip the fence, it sleeps in
 * short slices instead (a wake may be missed; it costs a slice, never a hang).
 */
#include "internal.h"

#include "owner_lock.h"
#include "sys/relax.h"

#include "sys/liveness.h"

#include <fcntl.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOCK_SPIN 200
#define FIRST_SLICE_NS INT64_C(1000000)
#define MAX_SLICE_NS INT64_C(64000000)
#define UNPAIRED_SLICE_NS INT64_C(1000000)

mproc__owner_self *_Atomic mproc__owner_self_page;

/* -1 not known yet; 0 no page can be had (no MADV_WIPEONFORK); 1 the page exists */
static _Atomic int page_state = -1;
/* -1 not known yet; 0 the kernel has no global expedited membarrier; 1 it has */
static _Atomic int membarrier_state = -1;

static uint32_t *futex_word(mproc__owner_lock *l)
{
    return (uint32_t *)(void *)&l->word + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 1 : 0);
}

/* ---- who am I ------------------------------------------------------------------------ */

static uint32_t stamp_of(unsigned long long start)
{
    return (uint32_t)(start % UINT64_C(0xffffffff)) + 1; /* never 0: 0 means "unknown" */
}

static long membarrier_call(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

static bool membarrier_supported(void)
{
    int st = atomic_load_explicit(&membarrier_state, memory_order_relaxed);
    if (st < 0) {
        long mask = membarrier_call(MEMBARRIER_CMD_QUERY);
        st = mask > 0 && (mask & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
             (mask & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
        atomic_store_explicit(&membarrier_state, st, memory_order_relaxed);
    }
    return st == 1;
}

static mproc__owner_self *self_page(void)
{
    mproc__owner_self *s = atomic_load_explicit(&mproc__owner_self_page, memory_order_acquire);
    if (s != NULL || atomic_load_explicit(&page_state, memory_order_relaxed) == 0)
        return s;
    size_t size = (size_t)sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL; /* try again next time */
    if (madvise(p, size, MADV_WIPEONFORK) != 0) {
        munmap(p, size);
        atomic_store_explicit(&page_state, 0, memory_order_relaxed);
        return NULL;
    }
    mproc__owner_self *expected = NULL;
    if (!atomic_compare_exchange_strong(&mproc__owner_self_page, &expected, p)) {
        munmap(p, size); /* another thread was first */
        return expected;
    }
    atomic_store_explicit(&page_state, 1, memory_order_relaxed);
    return p;
}

uint64_t mproc__owner_self_slow(void)
{
    pid_t pid = getpid();
    mproc__owner_self *s = self_page();
    if (s == NULL)
        return (uint64_t)pid; /* no cache: ask every time, pid-only checks */
    char state;
    unsigned long long start;
    uint64_t stamp = mproc__sys_proc_stat(0, &state, &start) == 0 ? stamp_of(start) : 0;
    uint64_t id = (uint64_t)pid | stamp << 32;
    /* Registration is per process (an exec or a fork may not keep it): once here, where
     * the page says this process has not been seen. */
    uint32_t light =
        membarrier_supported() && membarrier_call(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
    atomic_store_explicit(&s->light, light, memory_order_relaxed);
    atomic_store_explicit(&s->id, id, memory_order_relaxed);
    return id;
}

bool mproc__owner_sleeper_barrier(void)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!membarrier_supported())
        return true; /* nobody could register: every fast path fences */
    return membarrier_call(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
}

/* ---- is the owner gone? -------------------------------------------------------------- */

int mproc__owner_gone(uint64_t id)
{
    pid_t pid = (pid_t)(id & MPROC__OWNER_PID_MASK);
    uint32_t stamp = (uint32_t)(id >> 32);
    if (pid == 0)
        return 1;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    char state;
    unsigned long long start;
    int rc = mproc__sys_proc_stat(pid, &state, &start);
    if (rc < 0) {
        /* Gone in the meantime, or /proc hides it (hidepid) or is missing: ask kill()
         * again rather than take a live owner's lock. */
        return kill(pid, 0) < 0 && errno == ESRCH;
    }
    if (state == 'Z' || state == 'X' || state == 'x')
        return 1;
    return stamp != 0 && stamp_of(start) != stamp; /* the pid was reused */
}

/* ---- the slow paths ------------------------------------------------------------------ */

int mproc__owner_lock_wait(mproc__owner_lock *l, uint64_t self, int64_t deadline, bool spin)
{
    if (spin) {
        for (int i = 0; i < LOCK_SPIN; i++) {
            mproc__sys_cpu_relax();
            if (mproc__owner_trylock(l, self))
                return 0;
        }
    }
    uint64_t watched = 0;
    int64_t slice = FIRST_SLICE_NS;
    for (;;) {
        atomic_store(&l->waiters, 1);
        bool paired = mproc__owner_sleeper_barrier();
        uint64_t v = atomic_load(&l->word);
        if ((v & MPROC__OWNER_PID_MASK) == 0) {
            /* free: take it (waiters stays 1, for whoever sleeps behind us) */
            uint64_t next = self | ((v + MPROC__OWNER_GEN_ONE) & MPROC__OWNER_GEN_MASK);
            if (atomic_compare_exchange_strong(&l->word, &v, next))
                return 0;
            continue;
        }
        if (v != watched) {
            watched = v;
            slice = FIRST_SLICE_NS;
        }
        int64_t now = mproc__sys_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        int64_t s = paired ? slice : UNPAIRED_SLICE_NS;
        bool slice_ends_first = deadline - now > s;
        int rc = mproc__sys_futex_wait(futex_word(l), (uint32_t)v,
                                       slice_ends_first ? now + s : deadline, true);
        if (rc == -ETIMEDOUT && slice_ends_first) {
            /* A whole slice without a wake while one owner held it: is it still there? */
            if (atomic_load(&l->word) == v && mproc__owner_gone(v) == 1) {
                uint64_t next = self | ((v + MPROC__OWNER_GEN_ONE) & MPROC__OWNER_GEN_MASK);
                if (atomic_compare_exchange_strong(&l->word, &v, next))
                    return MPROC_OWNER_DIED;
            }
            if (slice < MAX_SLICE_NS)
                slice *= 2;
        }
    }
}

void mproc__owner_lock_wake(mproc__owner_lock *l)
{
    if (atomic_exchange(&l->waiters, 0) != 0)
        (void)mproc__sys_futex_wake(futex_word(l), 1, true);
}
