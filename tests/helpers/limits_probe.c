/* tests/helpers/limits_probe.c - exercise the library under real resource limits.
 *
 * Run by tests/sh/limits.sh under prlimit (and as an unprivileged user for
 * RLIMIT_NPROC, which root ignores). Each mode creates objects until the limit bites,
 * checks the failure is an error code (never a crash), frees everything, and checks
 * the library still works afterwards. Exit 0 = behaved; anything else = a finding,
 * printed on stderr.
 */
#include <mproc.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { MAX = 4096 };

static int fail(const char *what, int rc)
{
    fprintf(stderr, "limits_probe: %s: %s (%s)\n", what, mproc_errname(rc), mproc_strerror(rc));
    return 1;
}

static int child(void *arg)
{
    (void)arg;
    pause(); /* held until the parent kills it */
    return 0;
}

/* Pipes until the fd limit: the first failure must be -EMFILE, and afterwards a pipe
 * can be made again once some are freed. */
static int mode_fds(void)
{
    static mproc_conn *a[MAX], *b[MAX];
    int n = 0, rc = 0;
    while (n < MAX && (rc = mproc_pipe_new(&a[n], &b[n], 0)) == 0)
        n++;
    if (rc != -EMFILE)
        return fail("pipe_new at the fd limit", rc);
    /* a few fds may be left (a connection takes more than one): take them too */
    int spare[16], nspare = 0;
    while (nspare < 16 && (spare[nspare] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        nspare++;
    mproc_queue *q;
    int qrc = mproc_queue_new(&q, NULL); /* needs no fd: must still work */
    int fdrc = qrc == 0 ? mproc_queue_fd(q) : 0;
    int putrc = qrc == 0 ? mproc_queue_put(q, "x", 1, 0) : 0;
    for (int i = 0; i < nspare; i++)
        close(spare[i]);
    for (int i = 0; i < n; i++) {
        mproc_conn_free(a[i]);
        mproc_conn_free(b[i]);
    }
    if (qrc != 0)
        return fail("queue_new at the fd limit", qrc);
    if (fdrc != -EMFILE)
        return fail("queue_fd of a queue made at the fd limit", fdrc);
    if (putrc != 0)
        return fail("queue_put of a queue made at the fd limit", putrc);
    mproc_queue_free(q);
    if ((rc = mproc_pipe_new(&a[0], &b[0], 0)) != 0)
        return fail("pipe_new after freeing", rc);
    mproc_conn_free(a[0]);
    mproc_conn_free(b[0]);
    printf("fds: %d pipes, then -EMFILE, then recovered\n", n);
    return 0;
}

/* Processes until the process limit: -EAGAIN, and every started child is reaped. */
static int mode_nproc(void)
{
    static mproc_process *p[MAX];
    int n = 0, rc = 0;
    while (n < MAX) {
        if ((rc = mproc_process_new(&p[n], child, NULL, NULL)) != 0)
            break;
        if ((rc = mproc_process_start(p[n])) != 0) {
            mproc_process_free(p[n]);
            break;
        }
        n++;
    }
    for (int i = 0; i < n; i++)
        mproc_process_free(p[i]); /* kills and reaps */
    if (rc != -EAGAIN)
        return fail("process_start at the process limit", rc);
    if (n == 0)
        return fail("no process could start at all", rc);
    char *argv[] = {"true", NULL};
    mproc_process *t;
    rc = mproc_process_spawn(&t, argv, &(mproc_spawn_opts){.search_path = 1});
    if (rc != 0)
        return fail("spawn after freeing", rc);
    mproc_process_join(t, 10.0);
    mproc_process_free(t);
    printf("nproc: %d children, then -EAGAIN, then recovered\n", n);
    return 0;
}

/* Shared memory beyond the address-space limit: -ENOMEM from queue and shm. */
static int mode_as(void)
{
    mproc_queue *q;
    int rc = mproc_queue_new(&q, &(mproc_queue_opts){.capacity = (size_t)1 << 30});
    if (rc == 0) {
        mproc_queue_free(q);
        return fail("1 GiB queue under a small RLIMIT_AS succeeded", rc);
    }
    if (rc != -ENOMEM)
        return fail("queue_new under RLIMIT_AS", rc);
    mproc_shm *s;
    rc = mproc_shm_new(&s, NULL, (size_t)1 << 30, MPROC_SHM_CREATE);
    if (rc == 0) {
        mproc_shm_free(s);
        return fail("1 GiB anonymous shm under a small RLIMIT_AS succeeded", rc);
    }
    if (rc != -ENOMEM)
        return fail("shm_new under RLIMIT_AS", rc);
    printf("as: -ENOMEM for queue and shm\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: limits_probe fds|nproc|as\n");
        return 2;
    }
    if (strcmp(argv[1], "fds") == 0)
        return mode_fds();
    if (strcmp(argv[1], "nproc") == 0)
        return mode_nproc();
    if (strcmp(argv[1], "as") == 0)
        return mode_as();
    fprintf(stderr, "limits_probe: unknown mode %s\n", argv[1]);
    return 2;
}
