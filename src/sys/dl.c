/* src/sys/dl.c - walking the loaded modules without forking a child into a held lock.
 *
 * dl_iterate_phdr takes the dynamic loader's lock, and glibc's fork() does not take or
 * reset that lock: a child forked while another thread of the parent is inside
 * dl_iterate_phdr inherits the lock held by a thread that does not exist in the child,
 * and its first dl_iterate_phdr (a pool worker decoding its first function reference)
 * waits for ever. Seen for real: a pool's supervisor forking a replacement worker while
 * a caller thread encoded a reference.
 *
 * So every walk the library makes goes through mproc__sys_dl_iterate, under dl_guard,
 * and mproc__sys_spawn forks function children while holding dl_guard too
 * (mproc__sys_dl_hold / _release / _child_reset). A fork made by the application itself
 * while one of our threads walks is outside our reach (as it is for every library that
 * walks modules); the pool never does that.
 */
#include "internal.h"

#include "sys/spawn.h"

#include <link.h>
#include <pthread.h>

static pthread_mutex_t dl_guard = PTHREAD_MUTEX_INITIALIZER;

int mproc__sys_dl_iterate(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)
{
    pthread_mutex_lock(&dl_guard);
    int rc = dl_iterate_phdr(cb, data);
    pthread_mutex_unlock(&dl_guard);
    return rc;
}

void mproc__sys_dl_hold(void)
{
    pthread_mutex_lock(&dl_guard);
}

void mproc__sys_dl_release(void)
{
    pthread_mutex_unlock(&dl_guard);
}

void mproc__sys_dl_child_reset(void)
{
    /* the child's only thread holds it as the forking thread's copy: start afresh */
    pthread_mutex_init(&dl_guard, NULL);
}
