/* src/pool/boot.c - workers that do not fork from the caller: spawn and forkserver.
 *
 * DESIGN. A forked worker finds everything where the caller left it: the pool's shared
 * mapping, its task channel, the initializer, at the same addresses. A worker started by
 * spawn (this program executed afresh) or by the fork server (a fork of this program
 * executed afresh before the pool existed) finds none of it, so this file's launcher
 * (struct launcher_ops, started by life.c) writes a boot message into a memfd and has
 * src/launch.c start the new process with that memfd and the others it needs (the
 * doorbell and the caller's inherit_fds at their numbers, the memfds behind the pool's
 * mapping and behind the worker's channel). In the new process mproc_init finds the
 * message (src/start/init.c) and calls mproc__pool_boot_run, which
 *   1. refuses another build of the program (its GNU build-id, and the reference of this
 *      very function, must be the caller's): its struct layouts and code addresses
 *      would not be the pool's;
 *   2. maps the two memfds at the caller's addresses (MAP_FIXED_NOREPLACE: never over
 *      anything of its own), so every address in the pool's shared memory and in the
 *      worker's arguments means in the worker what it means in the caller;
 *   3. closes every descriptor but the ones it keeps, decodes the initializer's
 *      reference, marks its slot booted, and runs the same worker main as a fork does,
 *      told to announce itself (REC_READY), so the pool starts only once it runs.
 * What a worker that did not fork cannot have, the pool does not offer it: in-place
 * arrays (the caller's shared mappings are not in it: src/pool/api.c keeps no ranges),
 * and a raw initarg pointer (its bytes travel in the message, initarg_size). What it does
 * get as a fork would: the fault points armed in the caller (fault-injection builds).
 * A new process whose addresses happen to be taken (ASLR placed something there) exits
 * with WORKER_BOOT_MAP after trying again in a fresh exec of itself (a new layout), up to
 * BOOT_TRIES times.
 * Exit statuses WORKER_* (wire.h) tell the supervisor why a start failed (boot_failed).
 */
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include "fnref.h"
#include "launch.h"
#include "pool/boot.h"
#include "pool/pool.h"
#include "sys/forkserver.h"
#include "sys/spawn.h"

#define BOOT_MAGIC MPROC__POOL_BOOT_MAGIC

#define BOOT_KEEP (MPROC__FORKSERVER_FDS - 3) /* the maps' and the message's own go too */
#define BOOT_TRIES 4                          /* execs of a spawned worker (see above) */
#define FAULTS_MAX 4096                       /* bytes of armed fault points carried */

struct boot_map {
    uint64_t addr, size;
    int32_t fd;
    int32_t pad;
};

struct boot_msg {
    uint32_t magic;
    uint32_t size; /* of the whole message */
    uint32_t build_len;
    uint32_t self_len;
    unsigned char build[MPROC__BUILD_MAX];
    unsigned char self[MPROC__FNREF_MAX]; /* reference of mproc__pool_worker_main */
    struct worker_arg arg;                /* init and initarg set in the worker */
    struct boot_map map[2];               /* the pool's mapping, the worker's channel */
    uint32_t nkeep;
    int32_t keep[BOOT_KEEP]; /* ascending */
    uint32_t init_len;
    uint32_t tries; /* spawn: execs so far */
    unsigned char init[MPROC__FNREF_MAX];
    uint64_t initarg_len; /* its bytes follow ... */
    uint64_t faults_len;  /* ... then the fault points armed in the caller (tests: a
                             worker starts with them as a forked one would) */
};

/* ---- the supervisor's end ------------------------------------------------------------ */

static int boot_start(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    const struct worker_arg *a = &p->wargs[w->slot];
    if (p->nkeep > BOOT_KEEP)
        return -EMFILE;
    size_t size = sizeof(struct boot_msg) + p->o.initarg_size + FAULTS_MAX;
    struct boot_msg *m = mproc__calloc(1, size);
    if (m == NULL)
        return -ENOMEM;
    m->magic = BOOT_MAGIC;
    m->build_len = (uint32_t)mproc__fnref_main_build(m->build, sizeof m->build);
    if (MPROC__FAULT("pool.boot.build") < 0) /* tests: a worker of another build */
        m->build[0] ^= 0xff, m->build_len = m->build_len == 0 ? 1 : m->build_len;
    size_t len;
    int rc =
        mproc__fnref_encode((void (*)(void))mproc__pool_worker_main, m->self, sizeof m->self, &len);
    m->self_len = rc == 0 ? (uint32_t)len : 0;
    m->arg = *a;
    m->arg.init = NULL;
    m->arg.initarg = NULL;

    m->map[0] = (struct boot_map){(uintptr_t)p->shm, p->shm_size, p->shm_fd, 0};
    m->map[1] = (struct boot_map){(uintptr_t)a->in, mproc__queue_map_size(a->in), w->in_fd, 0};
    m->nkeep = (uint32_t)p->nkeep;
    for (size_t i = 0; i < p->nkeep; i++)
        m->keep[i] = p->keep_fds[i];
    m->init_len = p->init_ref_len;
    memcpy(m->init, p->init_ref, p->init_ref_len);
    m->initarg_len = p->o.initarg_size;
    if (p->o.initarg_size > 0)
        memcpy(m + 1, p->initarg_copy, p->o.initarg_size);
    m->faults_len = mproc__fault_export((unsigned char *)(m + 1) + p->o.initarg_size, FAULTS_MAX);
    size -= FAULTS_MAX - m->faults_len;
    m->size = (uint32_t)size;

    int boot = mproc__launch_message(m, size);
    mproc__free(m);
    if (boot < 0)
        return boot;
    int keep[MPROC__FORKSERVER_FDS];
    size_t n = 0;
    for (size_t i = 0; i < p->nkeep; i++)
        keep[n++] = p->keep_fds[i];
    keep[n++] = p->shm_fd;
    keep[n++] = w->in_fd;
    rc = mproc__launch(p->start, boot, keep, n, true, &w->pid, &w->pidfd); /* dies with us, as a
                                                                       forked worker */
    mproc__sys_close(boot);
    return rc;
}

static int boot_reap(struct sup *s, struct worker *w, int *code)
{
    return mproc__launch_reap(s->p->start, w->pid, w->pidfd, true, code) == 1 ? 0 : -ECHILD;
}

const struct launcher_ops mproc__launcher_boot = {
    .forks_caller = false, .start = boot_start, .reap = boot_reap};

bool mproc__pool_boot_failed(int status, int *code, char *msg, size_t n)
{
    switch (status) {
    case WORKER_NO_INIT:
        *code = -MPROC_ENOINIT;
        mproc__pool_say(msg, n,
                        "worker ran the program's main() to its end: a program using the "
                        "spawn or forkserver start method must call mproc_init(&argc, &argv) "
                        "at the top of main()");
        return true;
    case WORKER_BOOT_STALE:
        *code = -ESTALE;
        mproc__pool_say(msg, n,
                        "worker refused to start: it runs another build of the program "
                        "than the pool (its build-id differs)");
        return true;
    case WORKER_BOOT_MAP:
        *code = -EEXIST;
        mproc__pool_say(msg, n,
                        "worker could not map the pool's shared memory at the pool's "
                        "address (taken in the new process)");
        return true;
    case WORKER_BOOT_BAD:
        *code = -EPROTO;
        mproc__pool_say(msg, n, "worker could not read its boot message");
        return true;
    default:
        return false;
    }
}

/* ---- the new process's end -------------------------------------------------------------- */

/* A spawned worker whose addresses were taken: the same program again, a new layout. */
static void exec_again(int boot, struct boot_msg *m)
{
    if (++m->tries >= BOOT_TRIES ||
        pwrite(boot, &m->tries, sizeof m->tries, offsetof(struct boot_msg, tries)) !=
            (ssize_t)sizeof m->tries)
        return;
    int keep[BOOT_KEEP + 3];
    size_t n = 0;
    for (uint32_t i = 0; i < m->nkeep; i++)
        keep[n++] = m->keep[i];
    keep[n++] = m->map[0].fd;
    keep[n++] = m->map[1].fd;
    keep[n++] = boot;
    (void)mproc__sys_exec_self(MPROC__BOOT_ENV, boot, keep, n); /* returns if it failed */
}

int mproc__pool_boot_run(int boot)
{
    size_t size;
    struct boot_msg *m = mproc__launch_read(boot, sizeof *m, &size);
    if (m == NULL || m->magic != BOOT_MAGIC || m->size != size || m->build_len > MPROC__BUILD_MAX ||
        m->self_len > MPROC__FNREF_MAX) /* the fields before `arg`: the same in any build */
        return WORKER_BOOT_BAD;
    /* 1. the same build, or nothing here can be trusted */
    void (*self)(void) = NULL;
    if (!mproc__launch_same_build(m->build, m->build_len) ||
        (m->self_len > 0 && (mproc__fnref_decode(m->self, m->self_len, &self) < 0 ||
                             self != (void (*)(void))mproc__pool_worker_main)))
        return WORKER_BOOT_STALE;
    if (m->nkeep > BOOT_KEEP || m->init_len > MPROC__FNREF_MAX || m->faults_len > size ||
        m->initarg_len != size - sizeof *m - m->faults_len)
        return WORKER_BOOT_BAD;
    mproc__fault_import((unsigned char *)(m + 1) + m->initarg_len, m->faults_len);
    /* 2. the pool's memory at the caller's addresses */
    for (int i = 0; i < 2; i++) {
        void *want = (void *)(uintptr_t)m->map[i].addr;
        bool taken = MPROC__FAULT("pool.boot.map") < 0 || /* tests: in every exec, or */
                     (m->tries == 0 && MPROC__FAULT("pool.boot.map.first") < 0); /* once */
        void *got = taken ? MAP_FAILED
                          : mmap(want, m->map[i].size, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_FIXED_NOREPLACE, m->map[i].fd, 0);
        if (got != want) {
            if (got != MAP_FAILED) /* a kernel without MAP_FIXED_NOREPLACE: a hint */
                munmap(got, m->map[i].size);
            exec_again(boot, m); /* a fork server's child too: a fresh exec is a fresh
                        layout, and it boots as a spawned worker would */
            return WORKER_BOOT_MAP;
        }
    }
    /* 3. nothing else of the caller's, then the worker it was started to be */
    mproc__sys_close_all_but(m->keep, m->nkeep);
    struct worker_arg a = m->arg;
    if (m->init_len > 0) {
        void (*fn)(void);
        if (mproc__fnref_decode(m->init, m->init_len, &fn) < 0)
            return WORKER_BOOT_STALE;
        a.init = (mproc_pool_init_fn)fn;
    }
    atomic_store(&a.shm->slots[a.slot].booted, 1);
    a.initarg = m->initarg_len > 0 ? (void *)(m + 1) : NULL; /* lives as long as we do */
    return mproc__pool_worker_main(&a);
}
