/* src/barrier.c - Barrier: n parties wait for each other, round after round.
 *
 * DESIGN: the whole state is one 64-bit word changed only by compare-and-swap:
 *   bits 63..32  gen     the round number, advanced each time a round ends
 *   bits 31..16  hist    bit (g % 16): did round g end broken (1) or complete (0)
 *   bit  15      broken  the barrier is broken (until reset)
 *   bits 14..0   count   parties that arrived in the current round
 * An arrival increments count and sleeps on the barrier's bell (src/sys/bell.h), which
 * every end of a round rings (waking all its sleepers). The last arrival ends
 * the round: gen+1, count 0, hist bit clear. A break (abort, a waiter's timeout, a
 * dead party) ends the round too, with its hist bit set and the broken bit set, so
 * later arrivals fail at once; reset ends the round broken and clears the bit. A
 * waiter remembers its round g and, once gen != g, reads the round's outcome from
 * hist; that history covers the last 16 rounds, so only a waiter not scheduled while
 * 16 further rounds end (possible only with more processes than parties, or reset
 * storms) could misread its outcome. Nothing here takes a lock, so no process can die
 * holding one: a death at any instant leaves a consistent word.
 *
 * Dead parties: each waiter records itself in one of BARRIER_SLOTS slots (pid and the
 * low bits of its round) before it is counted, and, while it sleeps, wakes every POLL_NS
 * to check the other recorded waiters of its round: if one is gone (no such pid, or a
 * zombie), it breaks the round, so the others learn of the death within about POLL_NS
 * instead of at their timeouts. Recording before counting means a party killed at any
 * instant after its arrival is watched; one killed between its record and its count
 * breaks the round as well (it was arriving). Limits: only BARRIER_SLOTS waiters per
 * round are watched (more parties wait unwatched); a party that dies before it calls
 * wait() is noticed only at a timeout (it is not known to be a party yet); a pid
 * recycled within the wait reads as alive. Slots left by dead or departed waiters of
 * older rounds are cleared by the next arrivals' scan.
 */
#include "internal.h"

#include "sys/bell.h"
#include "sys/liveness.h"

#include <unistd.h>

#define BARRIER_MAGIC 0x4d424152u /* "MBAR" */
#define BARRIER_SLOTS 8
#define BARRIER_MAX_PARTIES ((unsigned)MPROC_BARRIER_MAX_PARTIES) /* count has 15 bits */
#define POLL_NS 50000000                                          /* 50 ms */

#define COUNT_MASK UINT64_C(0x7fff)
#define BROKEN_BIT UINT64_C(0x8000)
#define HIST_SHIFT 16
#define GEN_SHIFT 32

/* A slot: pid << 10 | (gen & 1023); 0 is free. pids are below 2^22 on Linux. */
#define TAG_BITS 10
#define TAG_MASK ((1u << TAG_BITS) - 1u)

struct barrier_impl {
    uint32_t magic;
    uint32_t parties;
    struct mproc__bell bell; /* waiters sleep on it; rung when a round ends */
    uint64_t state;
    uint32_t slots[BARRIER_SLOTS];
};

_Static_assert(sizeof(struct barrier_impl) <= sizeof(mproc_barrier), "mproc_barrier too small");
_Static_assert(sizeof(mproc_barrier) == 64, "mproc_barrier is public ABI: 64 bytes");
_Static_assert(_Alignof(struct barrier_impl) <= _Alignof(mproc_barrier),
               "mproc_barrier misaligned");

static struct barrier_impl *impl(const mproc_barrier *b)
{
    struct barrier_impl *bi = (struct barrier_impl *)(uintptr_t)(const void *)b;
    return bi != NULL && __atomic_load_n(&bi->magic, __ATOMIC_RELAXED) == BARRIER_MAGIC ? bi : NULL;
}

static uint32_t gen_of(uint64_t s)
{
    return (uint32_t)(s >> GEN_SHIFT);
}
static uint32_t count_of(uint64_t s)
{
    return (uint32_t)(s & COUNT_MASK);
}
static bool broken_of(uint64_t s)
{
    return (s & BROKEN_BIT) != 0;
}
static bool round_broke(uint64_t s, uint32_t gen)
{
    return ((s >> (HIST_SHIFT + (gen & 15u))) & 1u) != 0;
}

/* The word that ends the current round of s, with its outcome and the broken bit. */
static uint64_t end_round(uint64_t s, bool round_broken, bool broken_after)
{
    uint32_t gen = gen_of(s);
    uint64_t bit = UINT64_C(1) << (HIST_SHIFT + (gen & 15u));
    uint64_t hist = s & (UINT64_C(0xffff) << HIST_SHIFT);
    hist = round_broken ? (hist | bit) : (hist & ~bit);
    return ((uint64_t)(gen + 1u) << GEN_SHIFT) | hist | (broken_after ? BROKEN_BIT : 0);
}

static void wake_all(struct barrier_impl *bi)
{
    mproc__bell_ring(&bi->bell, true);
}

/* Break round gen if it is still the current one. True if this call broke it. */
static bool break_round(struct barrier_impl *bi, uint32_t gen)
{
    uint64_t s = __atomic_load_n(&bi->state, __ATOMIC_SEQ_CST);
    do {
        if (gen_of(s) != gen)
            return false;
    } while (!__atomic_compare_exchange_n(&bi->state, &s, end_round(s, true, true), true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    wake_all(bi);
    return true;
}

int mproc_barrier_init(mproc_barrier *b, unsigned parties)
{
    if (b == NULL || parties == 0 || parties > BARRIER_MAX_PARTIES)
        return -EINVAL;
    memset(b, 0, sizeof *b);
    struct barrier_impl *bi = (struct barrier_impl *)(void *)b;
    bi->parties = parties;
    __atomic_store_n(&bi->magic, BARRIER_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int mproc_barrier_new(mproc_barrier **out, unsigned parties)
{
    if (out == NULL)
        return -EINVAL;
    void *mem;
    int rc = mproc__sys_map_shared(-1, sizeof(mproc_barrier), &mem);
    if (rc < 0)
        return rc;
    rc = mproc_barrier_init(mem, parties);
    if (rc < 0) {
        mproc__sys_unmap(mem, sizeof(mproc_barrier));
        return rc;
    }
    *out = mem;
    return 0;
}

void mproc_barrier_free(mproc_barrier *b)
{
    mproc__sys_unmap(b, sizeof(mproc_barrier));
}

/* Record this waiter in a free slot (clearing stale ones on the way). Slot index or -1. */
static int claim_slot(struct barrier_impl *bi, uint32_t me)
{
    int mine = -1;
    for (int i = 0; i < BARRIER_SLOTS; i++) {
        uint32_t v = __atomic_load_n(&bi->slots[i], __ATOMIC_SEQ_CST);
        /* A record of another round is stale (its owner died or left without clearing
           it). The round is read after the slot, so a record is never taken for stale
           while its round is the current one: its owner, if alive, is in this round or
           will fail its arrival (the round moved) and record itself again. */
        uint32_t cur = gen_of(__atomic_load_n(&bi->state, __ATOMIC_SEQ_CST));
        if (v != 0 && (v & TAG_MASK) != (cur & TAG_MASK)) {
            if (__atomic_compare_exchange_n(&bi->slots[i], &v, 0, false, __ATOMIC_SEQ_CST,
                                            __ATOMIC_RELAXED))
                v = 0;
        }
        if (v == 0 && mine < 0 &&
            __atomic_compare_exchange_n(&bi->slots[i], &v, me, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
            mine = i;
    }
    return mine;
}

/* Clear our record, unless someone took it for stale (and maybe reused the slot). */
static void release_slot(struct barrier_impl *bi, int slot, uint32_t me)
{
    if (slot >= 0)
        (void)__atomic_compare_exchange_n(&bi->slots[slot], &me, 0, false, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED);
}

/* Is a watched waiter of round gen (other than slot `mine`) dead? */
static bool party_died(struct barrier_impl *bi, uint32_t gen, int mine)
{
    for (int i = 0; i < BARRIER_SLOTS; i++) {
        if (i == mine)
            continue;
        uint32_t v = __atomic_load_n(&bi->slots[i], __ATOMIC_SEQ_CST);
        if (v == 0 || (v & TAG_MASK) != (gen & TAG_MASK))
            continue;
        if (mproc__sys_pid_alive((pid_t)(v >> TAG_BITS)) == 0 &&
            __atomic_load_n(&bi->slots[i], __ATOMIC_SEQ_CST) == v)
            return true; /* still recorded: it did not leave before dying */
    }
    return false;
}

int mproc_barrier_wait(mproc_barrier *b, double timeout)
{
    struct barrier_impl *bi = impl(b);
    if (bi == NULL)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;

    /* Record, then arrive. A party is recorded (pid, round) before it is counted, so one
       killed the instant after its arrival is already visible to the others' liveness
       checks (it used to be counted first and recorded after: killed in between, it was
       never noticed and the others waited until their timeouts). A recorded party that
       dies before it is counted breaks the round too: it was about to arrive. The record
       is redone when the round moves on before the arrival lands. */
    pid_t pid = getpid();
    uint64_t s = __atomic_load_n(&bi->state, __ATOMIC_SEQ_CST);
    uint32_t idx, gen, me = 0;
    int slot = -1;
    bool recorded = false;
    for (;;) {
        if (broken_of(s)) {
            rc = -MPROC_EBROKEN;
            goto out;
        }
        idx = count_of(s);
        gen = gen_of(s);
        bool last = idx + 1 >= bi->parties;
        if (!last && (!recorded || (me & TAG_MASK) != (gen & TAG_MASK))) {
            release_slot(bi, slot, me);
            me = ((uint32_t)pid << TAG_BITS) | (gen & TAG_MASK);
            slot = claim_slot(bi, me); /* -1: every slot taken, we wait unwatched */
            recorded = true;
            rc = MPROC__FAULT("barrier.wait.registered");
            if (rc < 0)
                goto out; /* not counted: nobody waits for us */
            s = __atomic_load_n(&bi->state, __ATOMIC_SEQ_CST);
            continue;
        }
        uint64_t next = last ? end_round(s, false, false) : s + 1;
        if (__atomic_compare_exchange_n(&bi->state, &s, next, true, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            if (!last)
                break;
            release_slot(bi, slot, me);
            if (idx > 0)
                wake_all(bi);
            return (int)idx;
        }
    }
    rc = MPROC__FAULT("barrier.wait.arrived");
    if (rc < 0) {
        (void)break_round(bi, gen); /* as if our wait had failed: nobody waits for us */
        goto out;
    }

    int64_t next_check = mproc__sys_now_ns() + POLL_NS;
    for (;;) {
        uint32_t v = mproc__bell_arm(&bi->bell);
        s = __atomic_load_n(&bi->state, __ATOMIC_SEQ_CST);
        if (gen_of(s) != gen) {
            rc = round_broke(s, gen) ? -MPROC_EBROKEN : (int)idx;
            break;
        }
        int64_t now = mproc__sys_now_ns();
        if (deadline != MPROC__NO_DEADLINE && now >= deadline) {
            if (break_round(bi, gen)) {
                rc = -ETIMEDOUT;
                break;
            }
            continue; /* the round ended meanwhile: read how */
        }
        if (now >= next_check) {
            if (party_died(bi, gen, slot) && break_round(bi, gen)) {
                rc = -MPROC_EBROKEN;
                break;
            }
            next_check = now + POLL_NS;
        }
        int64_t until = next_check < deadline ? next_check : deadline;
        (void)mproc__bell_sleep(&bi->bell, v, until, true);
    }
    mproc__bell_leave(&bi->bell);
out:
    release_slot(bi, slot, me);
    return rc;
}

int mproc_barrier_abort(mproc_barrier *b)
{
    struct barrier_impl *bi = impl(b);
    if (bi == NULL)
        return -EINVAL;
    uint64_t s = __atomic_load_n(&bi->state, __ATOMIC_SEQ_CST);
    do {
        if (broken_of(s))
            return 0;
    } while (!__atomic_compare_exchange_n(&bi->state, &s, end_round(s, true, true), true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    wake_all(bi);
    return 0;
}

int mproc_barrier_reset(mproc_barrier *b)
{
    struct barrier_impl *bi = impl(b);
    if (bi == NULL)
        return -EINVAL;
    uint64_t s = __atomic_load_n(&bi->state, __ATOMIC_SEQ_CST);
    while (!__atomic_compare_exchange_n(&bi->state, &s, end_round(s, true, false), true,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    wake_all(bi);
    return 0;
}

int mproc_barrier_broken(const mproc_barrier *b)
{
    struct barrier_impl *bi = impl(b);
    if (bi == NULL)
        return -EINVAL;
    return broken_of(__atomic_load_n(&bi->state, __ATOMIC_SEQ_CST)) ? 1 : 0;
}

int mproc_barrier_parties(const mproc_barrier *b)
{
    struct barrier_impl *bi = impl(b);
    return bi == NULL ? -EINVAL : (int)bi->parties;
}

int mproc_barrier_n_waiting(const mproc_barrier *b)
{
    struct barrier_impl *bi = impl(b);
    if (bi == NULL)
        return -EINVAL;
    uint64_t s = __atomic_load_n(&bi->state, __ATOMIC_SEQ_CST);
    return broken_of(s) ? 0 : (int)count_of(s);
}
