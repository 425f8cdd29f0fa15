/* src/event.c - Event: a flag that processes wait for.
 *
 * DESIGN: one 32-bit word: bit 0 is the flag, the upper bits a generation that every
 * set() of a clear flag advances; and a bell (src/sys/bell.h) that waiters sleep on.
 * set() advances the word and rings the bell (a system call only when someone sleeps);
 * clear() drops bit 0 only. A waiter remembers the word, sleeps while it is unchanged,
 * and returns success once the flag is set or the generation moved: a waiter woken by
 * set() therefore succeeds even if another process clears the flag before the waiter
 * runs (Python's wait() returns True there too).
 *
 * Death: an Event has no owner; a process dying never leaves it in any state but the
 * one it last set. A waiter that dies stays counted on the bell: the next set() makes a
 * useless wake system call.
 *
 * set() is async-signal-safe (atomics and one futex system call).
 */
#include "internal.h"

#include "sys/bell.h"

#define EVENT_MAGIC 0x4d45564eu /* "MEVN" */

struct event_impl {
    uint32_t magic;
    uint32_t word; /* generation << 1 | flag */
    struct mproc__bell bell;
};

_Static_assert(sizeof(struct event_impl) <= sizeof(mproc_event), "mproc_event too small");
_Static_assert(_Alignof(struct event_impl) <= _Alignof(mproc_event), "mproc_event misaligned");

static struct event_impl *impl(const mproc_event *e)
{
    struct event_impl *ei = (struct event_impl *)(uintptr_t)(const void *)e;
    return ei != NULL && __atomic_load_n(&ei->magic, __ATOMIC_RELAXED) == EVENT_MAGIC ? ei : NULL;
}

int mproc_event_init(mproc_event *e)
{
    if (e == NULL)
        return -EINVAL;
    memset(e, 0, sizeof *e);
    struct event_impl *ei = (struct event_impl *)(void *)e;
    __atomic_store_n(&ei->magic, EVENT_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int mproc_event_new(mproc_event **out)
{
    if (out == NULL)
        return -EINVAL;
    void *mem;
    int rc = mproc__sys_map_shared(-1, sizeof(mproc_event), &mem);
    if (rc < 0)
        return rc;
    (void)mproc_event_init(mem);
    *out = mem;
    return 0;
}

void mproc_event_free(mproc_event *e)
{
    mproc__sys_unmap(e, sizeof(mproc_event));
}

int mproc_event_set(mproc_event *e)
{
    struct event_impl *ei = impl(e);
    if (ei == NULL)
        return -EINVAL;
    uint32_t w = __atomic_load_n(&ei->word, __ATOMIC_RELAXED);
    do {
        if (w & 1u)
            return 0; /* already set: nobody can be sleeping on this word */
    } while (!__atomic_compare_exchange_n(&ei->word, &w, (w + 2u) | 1u, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    mproc__bell_ring(&ei->bell, true);
    return 0;
}

int mproc_event_clear(mproc_event *e)
{
    struct event_impl *ei = impl(e);
    if (ei == NULL)
        return -EINVAL;
    __atomic_fetch_and(&ei->word, ~1u, __ATOMIC_SEQ_CST);
    return 0;
}

int mproc_event_is_set(const mproc_event *e)
{
    struct event_impl *ei = impl(e);
    if (ei == NULL)
        return -EINVAL;
    return (int)(__atomic_load_n(&ei->word, __ATOMIC_ACQUIRE) & 1u);
}

int mproc_event_wait(mproc_event *e, double timeout)
{
    struct event_impl *ei = impl(e);
    if (ei == NULL)
        return -EINVAL;
    if (!(timeout >= 0)) /* negative or NaN */
        return -EINVAL;
    uint32_t w0 = __atomic_load_n(&ei->word, __ATOMIC_ACQUIRE);
    if (w0 & 1u)
        return 0;
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    for (;;) {
        uint32_t seq = mproc__bell_arm(&ei->bell);
        uint32_t w = __atomic_load_n(&ei->word, __ATOMIC_SEQ_CST);
        if ((w & 1u) || (w >> 1) != (w0 >> 1)) {
            rc = 0;
            break;
        }
        if (mproc__bell_sleep(&ei->bell, seq, deadline, true) == -ETIMEDOUT) {
            w = __atomic_load_n(&ei->word, __ATOMIC_SEQ_CST);
            rc = ((w & 1u) || (w >> 1) != (w0 >> 1)) ? 0 : -ETIMEDOUT;
            break;
        }
    }
    mproc__bell_leave(&ei->bell);
    return rc;
}
