/* src/sys/mutex.c - what glibc keeps inside a pthread_mutex_t: its owner and its depth.
 *
 * A robust mutex holds its owner's thread id in the futex word (the kernel needs it to
 * mark the word OWNER_DIED), and glibc keeps a recursive mutex's depth in the mutex.
 * Reading them spares the Lock a second copy that a dying process could leave out of
 * step. The fields are glibc's ABI (stable since the robust mutexes came, 2.4), not its
 * API: this file is the only place that names them.
 */
#include "internal.h"

#include <linux/futex.h>

pid_t mproc__sys_mutex_owner(const pthread_mutex_t *m)
{
    int word = __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED);
    return (pid_t)((unsigned)word & FUTEX_TID_MASK);
}

unsigned mproc__sys_mutex_depth(const pthread_mutex_t *m)
{
    return __atomic_load_n(&m->__data.__count, __ATOMIC_RELAXED);
}
