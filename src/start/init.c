/* src/start/init.c - mproc_init and the process-wide start method (mproc/init.h).
 *
 * DESIGN. A process started from /proc/self/exe to be a pool worker (spawn) or the fork
 * server carries that in its environment (MPROC_BOOT / MPROC_FORKSERVER = a descriptor
 * number). It runs the program's main() from the start, and mproc_init, its first call,
 * turns it into what it was started to be and never returns there. Both variables are
 * removed from the environment first: nothing that process starts inherits them.
 *
 * A program that never calls mproc_init must not run on as a second copy of itself (it
 * would print, write its files, start pools of its own, each starting workers: a fork
 * bomb). So a constructor notes such a start before main(): the pool refuses to start
 * (-MPROC_ENOINIT) in a process started as a worker that did not reach mproc_init, and an
 * atexit handler turns main()'s return into exit status WORKER_NO_INIT, which the
 * supervisor reports as -MPROC_ENOINIT naming the call. One that hangs instead is killed
 * after 10 s (src/pool/life.c, the fork server's hello likewise).
 *
 * Where the start method is forkserver when mproc_init runs (set before it, or by
 * --mproc-start), the fork server is started there; else at the first pool or process
 * that asks for it.
 */
#include "internal.h"

#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "launch.h"
#include "pool/boot.h"
#include "pool/link.h"

#include "pool/wire.h"
#include "sys/forkserver.h"

static _Atomic int start_default = MPROC_START_FORK;
static _Atomic bool boot_pending; /* started as a worker or server, mproc_init not reached */

static int boot_fd = -1;   /* started as a worker: its boot message */
static int server_fd = -1; /* started as the fork server: its socket */

static void never_reached_init(void)
{
    if (atomic_load(&boot_pending))
        _exit(WORKER_NO_INIT); /* not exit(): the program's own handlers already ran */
}

/* The descriptor number in an environment variable; -1 if it is not one. */
static int env_fd(const char *name)
{
    const char *v = getenv(name);
    char *end;
    errno = 0;
    long fd = v != NULL ? strtol(v, &end, 10) : -1;
    if (v == NULL || errno != 0 || end == v || *end != '\0' || fd < 0 || fd > INT32_MAX)
        return -1;
    return (int)fd;
}

/* Is fd a boot message our starter wrote (a memfd of ours opening with a known magic)? */
static bool is_boot(int fd)
{
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    uint32_t magic;
    if (n <= 0)
        return false;
    target[n] = '\0';
    return strncmp(target, "/memfd:mproc-boot", 17) == 0 &&
           pread(fd, &magic, sizeof magic, 0) == (ssize_t)sizeof magic &&
           (magic == MPROC__POOL_BOOT_MAGIC || magic == MPROC__PROCESS_BOOT_MAGIC);
}

/* Is fd the fork server's socket (a Unix SOCK_SEQPACKET socket)? */
static bool is_server_socket(int fd)
{
    int type = 0, domain = 0;
    socklen_t len = sizeof type, dlen = sizeof domain;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET &&
           getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 && domain == AF_UNIX;
}

/* Before main(): was this process started as a worker or as the fork server? Only a
 * variable naming a descriptor of the right kind counts: one inherited from elsewhere (a
 * parent that set it by mistake, or on purpose) is dropped, and the program runs as it
 * is. Either way neither variable stays in the environment, so nothing this process
 * starts inherits it. */
__attribute__((constructor)) static void note_boot(void)
{
    if (getenv(MPROC__BOOT_ENV) != NULL) {
        int fd = env_fd(MPROC__BOOT_ENV);
        boot_fd = fd >= 0 && is_boot(fd) ? fd : -1;
        (void)unsetenv(MPROC__BOOT_ENV);
    }
    if (getenv(MPROC__FORKSERVER_ENV) != NULL) {
        int fd = env_fd(MPROC__FORKSERVER_ENV);
        server_fd = fd >= 0 && is_server_socket(fd) ? fd : -1;
        (void)unsetenv(MPROC__FORKSERVER_ENV);
    }
    if (boot_fd >= 0 || server_fd >= 0) {
        atomic_store(&boot_pending, true);
        (void)atexit(never_reached_init);
    }
}

bool mproc__boot_pending(void)
{
    return atomic_load(&boot_pending);
}

const char *mproc_start_method_name(mproc_start_method m)
{
    switch (m) {
    case MPROC_START_FORK:
        return "fork";
    case MPROC_START_FORKSERVER:
        return "forkserver";
    case MPROC_START_SPAWN:
        return "spawn";
    case MPROC_START_MPI:
        return "mpi";
    default:
        return NULL;
    }
}

int mproc_set_start_method(mproc_start_method m)
{
    if (m == MPROC_START_DEFAULT)
        m = MPROC_START_FORK;
    if (mproc_start_method_name(m) == NULL)
        return -EINVAL;
    atomic_store(&start_default, (int)m);
    return 0;
}

mproc_start_method mproc_get_start_method(void)
{
    return (mproc_start_method)atomic_load(&start_default);
}

/* The new process's boot, by the message's first word: a pool worker or a process. */
static int boot_any(int boot)
{
    uint32_t magic;
    if (pread(boot, &magic, sizeof magic, 0) != (ssize_t)sizeof magic)
        return WORKER_BOOT_BAD;
    if (magic == MPROC__POOL_BOOT_MAGIC)
        return mproc__pool_boot_run(boot);
    if (magic == MPROC__PROCESS_BOOT_MAGIC)
        return mproc__process_boot_run(boot);
    return WORKER_BOOT_BAD;
}

static _Noreturn void become(int status)
{
    fflush(NULL);
    _exit(status & 255);
}

int mproc_init(int *argc, char ***argv)
{
    if (boot_fd >= 0) {
        atomic_store(&boot_pending, false);
        become(boot_any(boot_fd));
    }
    if (server_fd >= 0) {
        atomic_store(&boot_pending, false);
        become(mproc__forkserver_serve(server_fd, boot_any));
    }
    /* Under mpirun with libmproc-mpi: every rank but the master serves (src/pool/host.c). */
    const struct mproc__link_ops *l = mproc__link();
    int joined = l != NULL ? l->join(argc, argv) : 0;
    if (joined < 0)
        return joined;
    if (joined == LINK_HOST) { /* exit(), not _exit(): MPI's libraries clean up in their
                              destructors (their shared-memory files in /dev/shm) */
        int status = mproc__host_serve(l);
        fflush(NULL);
        exit(status & 255);
    }
    if (joined == LINK_MASTER && mproc__remote_at_exit() < 0)
        return -ENOMEM;
    if (argc == NULL || argv == NULL || *argv == NULL)
        return 0;
    static const char opt[] = "--mproc-start=";
    int method = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = (*argv)[i];
        if (a == NULL || strncmp(a, opt, sizeof opt - 1) != 0)
            continue;
        const char *v = a + sizeof opt - 1;
        method = 0;
        for (int m = MPROC_START_FORK; m <= MPROC_START_MPI; m++)
            if (strcmp(v, mproc_start_method_name((mproc_start_method)m)) == 0)
                method = m;
        if (method == 0)
            return -EINVAL;
    }
    int k = 1;
    for (int i = 1; i < *argc; i++) /* take ours out, keep the order of the rest */
        if ((*argv)[i] == NULL || strncmp((*argv)[i], opt, sizeof opt - 1) != 0)
            (*argv)[k++] = (*argv)[i];
    if (k < *argc)
        (*argv)[k] = NULL;
    *argc = k;
    if (method != 0)
        (void)mproc_set_start_method((mproc_start_method)method);
    /* Python starts its fork server when it is chosen; so do we, while the program is
       young (a failure here is met again, and reported, by the first pool) */
    if (mproc_get_start_method() == MPROC_START_FORKSERVER)
        (void)mproc__forkserver_start();
    return 0;
}
