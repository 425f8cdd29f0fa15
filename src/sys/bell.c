/* src/sys/bell.c - the bell's slow paths: the futex sleep and wake (see bell.h). */
#include "internal.h"

#include "sys/bell.h"

int mproc__bell_sleep(struct mproc__bell *b, uint32_t seq, int64_t deadline, bool shared)
{
    int rc = mproc__sys_futex_wait((const uint32_t *)(const void *)&b->seq, seq, deadline, shared);
    return rc == -ETIMEDOUT ? rc : 0;
}

void mproc__bell_ring_all(struct mproc__bell *b, bool shared)
{
    atomic_fetch_add(&b->seq, 1);
    (void)mproc__sys_futex_wake((const uint32_t *)(const void *)&b->seq, INT32_MAX, shared);
}
