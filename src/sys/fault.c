/* src/sys/fault.c - named fault points (see mproc/fault.h).
 *
 * DESIGN: a small fixed table of armed points, copied into every forked child
 * with the rest of the address space. MPROC__FAULT(name) is a string compare
 * against the armed entries only, so an unarmed build of the tests pays a few
 * nanoseconds per point; a release build compiles the points away entirely.
 * Counters are atomic so points hit from several threads count exactly.
 */
#include "internal.h"

#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#ifdef MPROC_FAULT_INJECTION

enum { MAX_POINTS = 32, MAX_NAME = 64 };

struct point {
    char name[MAX_NAME];
    mproc_fault_action action;
    int code;
    unsigned nth;
    bool sticky;
    atomic_uint passes;
};

static struct point table[MAX_POINTS];
static atomic_int armed; /* number of used entries: 0 makes every point free */

static struct point *find(const char *name)
{
    int n = atomic_load_explicit(&armed, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

int mproc__fault_hit(const char *point)
{
    if (atomic_load_explicit(&armed, memory_order_relaxed) == 0)
        return 0;
    struct point *p = find(point);
    if (p == NULL)
        return 0;
    unsigned pass = atomic_fetch_add(&p->passes, 1) + 1;
    if (pass < p->nth || (pass > p->nth && !p->sticky))
        return 0;
    switch (p->action) {
    case MPROC_FAULT_FAIL:
        return p->code;
    case MPROC_FAULT_KILL:
        kill(getpid(), SIGKILL);
        break;
    case MPROC_FAULT_STOP:
        kill(getpid(), SIGSTOP);
        break;
    case MPROC_FAULT_SEGV:
        raise(SIGSEGV);
        break;
    }
    return 0;
}

int mproc_fault_set(const char *point, mproc_fault_action action, const mproc_fault_opts *opts)
{
    if (point == NULL || strlen(point) == 0 || strlen(point) >= MAX_NAME)
        return -EINVAL;
    if (action < MPROC_FAULT_FAIL || action > MPROC_FAULT_SEGV)
        return -EINVAL;
    mproc_fault_opts o = opts != NULL ? *opts : (mproc_fault_opts){0};
    if (o.code > 0)
        return -EINVAL;
    struct point *p = find(point);
    if (p == NULL) {
        int n = atomic_load(&armed);
        if (n == MAX_POINTS)
            return -ENOSPC;
        p = &table[n];
        memset(p->name, 0, sizeof p->name);
        memcpy(p->name, point, strlen(point));
        atomic_store(&armed, n + 1);
    }
    p->action = action;
    p->code = o.code != 0 ? o.code : -MPROC_EFAULT;
    p->nth = o.nth != 0 ? o.nth : 1;
    p->sticky = o.sticky != 0;
    atomic_store(&p->passes, 0);
    return 0;
}

/* A program started afresh (a spawned worker, the fork server) has none of its starter's
 * settings: MPROC_FAULT=POINT in its environment arms POINT to fail once (-MPROC_EFAULT)
 * from the start, in builds with fault injection only. */
__attribute__((constructor)) static void arm_from_environment(void)
{
    const char *point = getenv("MPROC_FAULT");
    if (point != NULL && point[0] != '\0')
        (void)mproc_fault_set(point, MPROC_FAULT_FAIL, NULL);
}

int mproc_fault_clear(void)
{
    atomic_store(&armed, 0);
    return 0;
}

struct exported {
    char name[MAX_NAME];
    int32_t action, code;
    uint32_t nth, sticky, passes;
};

size_t mproc__fault_export(void *buf, size_t cap)
{
    int n = atomic_load(&armed);
    size_t len = (size_t)n * sizeof(struct exported);
    if (len > cap)
        return 0;
    for (int i = 0; i < n; i++) {
        struct exported e = {.action = (int32_t)table[i].action,
                             .code = table[i].code,
                             .nth = table[i].nth,
                             .sticky = table[i].sticky,
                             .passes = atomic_load(&table[i].passes)};
        memcpy(e.name, table[i].name, sizeof e.name);
        memcpy((char *)buf + (size_t)i * sizeof e, &e, sizeof e);
    }
    return len;
}

void mproc__fault_import(const void *buf, size_t len)
{
    for (size_t off = 0; off + sizeof(struct exported) <= len; off += sizeof(struct exported)) {
        struct exported e;
        memcpy(&e, (const char *)buf + off, sizeof e);
        e.name[MAX_NAME - 1] = '\0';
        if (mproc_fault_set(
                e.name, (mproc_fault_action)e.action,
                &(mproc_fault_opts){.code = e.code, .nth = e.nth, .sticky = (int)e.sticky}) == 0)
            atomic_store(&find(e.name)->passes, e.passes);
    }
}

int mproc_fault_count(const char *point)
{
    if (point == NULL)
        return -EINVAL;
    struct point *p = find(point);
    if (p == NULL)
        return -ENOENT;
    unsigned n = atomic_load(&p->passes);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

#else

int mproc_fault_set(const char *point, mproc_fault_action action, const mproc_fault_opts *opts)
{
    MPROC__UNUSED(point);
    MPROC__UNUSED(action);
    MPROC__UNUSED(opts);
    return -MPROC_ENOTSUP;
}

int mproc_fault_clear(void)
{
    return -MPROC_ENOTSUP;
}

size_t mproc__fault_export(void *buf, size_t cap)
{
    MPROC__UNUSED(buf);
    MPROC__UNUSED(cap);
    return 0;
}

void mproc__fault_import(const void *buf, size_t len)
{
    MPROC__UNUSED(buf);
    MPROC__UNUSED(len);
}

int mproc_fault_count(const char *point)
{
    MPROC__UNUSED(point);
    return -MPROC_ENOTSUP;
}

#endif
