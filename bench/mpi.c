/* bench/mpi.c - the pool on the ranks of an MPI job (.start = MPROC_START_MPI) against raw
 * MPI written here and mpi4py.futures (bench/py_mpi.py).
 *
 * Run as `mpi [--rep]` (by bench/run), this program measures nothing itself: it runs the
 * jobs below with mpirun, in turn, and prints one repetition of each figure. Every figure
 * is measured twice, under two mpirun command lines: Open MPI's defaults (ids as below)
 * and TCP only (the path between nodes; ids with .tcp appended):
 *
 *     mpirun --oversubscribe -np 3 ./mpi MODE
 *     mpirun --oversubscribe --mca btl self,tcp -np 3 ./mpi MODE
 *
 * (this machine has 2 CPUs: 3 ranks oversubscribe it). For each id it prints a
 * `cmd <id> <mpirun ...>` line, which bench/run shows under the row; bench/py_mpi.py runs
 * its anchors under the same command lines. The mproc job runs first, then its raw one.
 * In the jobs rank 0 runs the figures; the other two ranks are the pool's two workers
 * (mproc) or the raw program's two workers:
 *
 *   mpi.map.cs1      tasks/s, x*x on 8-byte ints, chunksize 1, 20 k tasks | raw: a
 *                    master/worker loop in MPI (MPI_Send of one 8-byte task to a worker,
 *                    MPI_Recv of its 8-byte answer from any worker, the next task sent
 *                    to the one that answered: one task outstanding per worker), 100 k
 *                    tasks
 *   mpi.map.default  items/s, x*x over 10 M 8-byte ints in malloc'd arrays, default
 *                    chunksize (no raw anchor: python only)
 *   mpi.apply.rtt    us per blocking mproc_pool_apply of a task returning x + 1, 2,000
 *                    calls | raw: an 8-byte MPI_Send/MPI_Recv ping-pong between ranks 0
 *                    and 1, 5 k round trips (rank 2 waits for the end without spinning:
 *                    MPI_Irecv, then MPI_Test every 200 us, as the pool's idle host sleeps)
 *   mpi.start        s, the wall time of the whole mpirun (from fork to the end of
 *                    mpirun) of a job whose rank 0 creates the pool, gets one apply's
 *                    result, closes, joins and frees the pool and exits | raw: the same
 *                    mpirun of a job that only does MPI_Init, one 8-byte ping-pong between
 *                    rank 0 and each other rank, MPI_Finalize
 *
 * The mproc side runs fewer tasks and calls than the raw one (about a repetition's worth of
 * each, bench/README.md); rates and per-call times are compared, never totals. The mproc
 * job measures the cs1 map, the applies, then the default map, and prints each figure as
 * it has it.
 *
 * Warm-up, outside the timed region: the cs1 map runs once untimed over 1,000 tasks
 * before the timed one, the default map over the first 1 M items, the applies 50 times,
 * the raw loops 1,000 tasks and 200 round trips. mpi.start is not warmed up: one mpirun
 * of each kind per repetition, alternating.
 *
 * Every result is checked (each x*x, each x + 1); a wrong answer, or a job that fails or
 * does not end within 60 s, exits 1. Exits 77 (bench/run skips the group with a note)
 * where mpirun is not installed. Usage: mpi [--rep] (BENCH_SCALE=0.1 in the environment
 * shrinks the counts); under mpirun: mpi mproc|raw|start|start-raw.
 */
#include "bench.h"

#include "mproc/error.h"
#include "mproc/init.h"
#include "mproc/pool.h"

#include <mpi.h>
#include <poll.h>

#define JOB_TIMEOUT_S 60
#define TAG_TASK 1
#define TAG_DONE 2

/* Counts: rates and per-call times are compared, never totals. The mproc side runs fewer
 * than the raw one: about 0.5 s of each here. */
#define N_CS1_MPROC 20000
#define N_CS1_RAW 100000
#define N_RTT_MPROC 2000
#define N_RTT_RAW 5000

/* ---- task functions ------------------------------------------------------------------ */

static int square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    return 0;
}

static int plus_one(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    if (in_len != sizeof(int64_t) || *out_len < sizeof(int64_t))
        return -EINVAL;
    int64_t x;
    memcpy(&x, in, sizeof x);
    x++;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

static void check_squares(const int64_t *out, uint64_t n, const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (out[i] != (int64_t)(i * i))
            bench_die("%s: out[%llu] = %lld", what, (unsigned long long)i, (long long)out[i]);
}

/* ---- the mproc job (rank 0; mproc_init made ranks 1.. the pool's hosts) --------------- */

static double run_map(mproc_pool *p, const int64_t *in, int64_t *out, uint64_t n, size_t cs,
                      const char *what)
{
    memset(out, 0, n * sizeof *out);
    double t0 = bench_now();
    BENCH_OK(mproc_pool_map(p, square, in, n, sizeof *in, out, sizeof *out,
                            &(mproc_call_opts){.chunksize = cs}));
    double t = bench_now() - t0;
    check_squares(out, n, what);
    return (double)n / t;
}

static double run_apply(mproc_pool *p, uint64_t n)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        int64_t x = (int64_t)i, y = 0;
        size_t len = 0;
        BENCH_OK(
            mproc_pool_apply(p, plus_one, &x, sizeof x, &y, sizeof y, &len, NULL, MPROC_FOREVER));
        if (len != sizeof y || y != x + 1)
            bench_die("apply %llu: got %lld (len %zu)", (unsigned long long)i, (long long)y, len);
    }
    return (bench_now() - t0) / (double)n * 1e6;
}

static void free_pool(mproc_pool *p)
{
    BENCH_OK(mproc_pool_close(p));
    BENCH_OK(mproc_pool_join(p, MPROC_FOREVER));
    mproc_pool_free(p);
}

static int job_mproc(void)
{
    uint64_t n_cs1 = bench_scaled(N_CS1_MPROC, 1000), n_big = bench_scaled(10000000, 100000);
    uint64_t n_rtt = bench_scaled(N_RTT_MPROC, 50);
    int64_t *in = malloc(n_big * sizeof *in), *out = malloc(n_big * sizeof *out);
    if (in == NULL || out == NULL)
        bench_die("malloc");
    for (uint64_t i = 0; i < n_big; i++)
        in[i] = (int64_t)i;
    mproc_pool *p;
    BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI}));
    if (mproc_pool_workers(p) != 2)
        bench_die("the MPI pool has %d workers, want 2 (mpirun -np 3)", mproc_pool_workers(p));

    (void)run_map(p, in, out, 1000, 1, "map cs1 warm-up");
    bench_emit("mpi.map.cs1", "mproc", run_map(p, in, out, n_cs1, 1, "map cs1"), "tasks/s");
    (void)run_apply(p, 50);
    bench_emit("mpi.apply.rtt", "mproc", run_apply(p, n_rtt), "us");
    (void)run_map(p, in, out, n_big / 10, 0, "map default warm-up");
    bench_emit("mpi.map.default", "mproc", run_map(p, in, out, n_big, 0, "map default"), "items/s");
    free_pool(p);
    free(in);
    free(out);
    return 0;
}

/* mpi.start: the pool, one result, the end. */
static int job_start(void)
{
    mproc_pool *p;
    BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI}));
    int64_t x = 41, y = 0;
    size_t len = 0;
    BENCH_OK(mproc_pool_apply(p, plus_one, &x, sizeof x, &y, sizeof y, &len, NULL, MPROC_FOREVER));
    if (len != sizeof y || y != 42)
        bench_die("start: apply gave %lld (len %zu)", (long long)y, len);
    free_pool(p);
    return 0;
}

/* ---- the raw MPI jobs (mproc_init is never called in them) ---------------------------- */

#define MPI_OK(expr)                                                                               \
    do {                                                                                           \
        if ((expr) != MPI_SUCCESS)                                                                 \
            bench_die("%s:%d: %s failed", __FILE__, __LINE__, #expr);                              \
    } while (0)

/* Master: n tasks x*x over the workers, one outstanding on each; *out checked after. */
static double raw_master(int64_t *out, uint64_t n, int workers)
{
    int64_t *sent = malloc((size_t)(workers + 1) * sizeof *sent);
    if (sent == NULL)
        bench_die("malloc");
    memset(out, 0, n * sizeof *out);
    double t0 = bench_now();
    uint64_t next = 0, got = 0;
    for (int w = 1; w <= workers && next < n; w++, next++) {
        sent[w] = (int64_t)next;
        MPI_OK(MPI_Send(&sent[w], 1, MPI_INT64_T, w, TAG_TASK, MPI_COMM_WORLD));
    }
    while (got < n) {
        int64_t y;
        MPI_Status st;
        MPI_OK(MPI_Recv(&y, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_TASK, MPI_COMM_WORLD, &st));
        int w = st.MPI_SOURCE;
        out[sent[w]] = y;
        got++;
        if (next < n) {
            sent[w] = (int64_t)next++;
            MPI_OK(MPI_Send(&sent[w], 1, MPI_INT64_T, w, TAG_TASK, MPI_COMM_WORLD));
        }
    }
    double t = bench_now() - t0;
    free(sent);
    check_squares(out, n, "raw master/worker");
    return (double)n / t;
}

/* Worker: answer tasks until TAG_DONE. */
static void raw_worker(void)
{
    for (;;) {
        int64_t x;
        MPI_Status st;
        MPI_OK(MPI_Recv(&x, 1, MPI_INT64_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
        if (st.MPI_TAG == TAG_DONE)
            return;
        int64_t y;
        size_t ol = sizeof y;
        square(NULL, &x, sizeof x, &y, &ol);
        MPI_OK(MPI_Send(&y, 1, MPI_INT64_T, 0, TAG_TASK, MPI_COMM_WORLD));
    }
}

/* A rank with nothing to do waits for TAG_DONE without spinning. */
static void raw_idle(void)
{
    int64_t x;
    MPI_Request req;
    MPI_OK(MPI_Irecv(&x, 1, MPI_INT64_T, 0, TAG_DONE, MPI_COMM_WORLD, &req));
    for (int done = 0;;) {
        MPI_OK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done)
            return;
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
}

static void raw_done(int to)
{
    int64_t x = 0;
    MPI_OK(MPI_Send(&x, 1, MPI_INT64_T, to, TAG_DONE, MPI_COMM_WORLD));
}

/* 8-byte round trips with rank 1, which answers x + 1: us each. */
static double raw_pingpong(uint64_t n)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        int64_t x = (int64_t)i, y;
        MPI_OK(MPI_Send(&x, 1, MPI_INT64_T, 1, TAG_TASK, MPI_COMM_WORLD));
        MPI_OK(MPI_Recv(&y, 1, MPI_INT64_T, 1, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        if (y != x + 1)
            bench_die("raw ping-pong %llu: got %lld", (unsigned long long)i, (long long)y);
    }
    return (bench_now() - t0) / (double)n * 1e6;
}

static int job_raw(int *argc, char ***argv)
{
    MPI_OK(MPI_Init(argc, argv));
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 3)
        bench_die("raw job: %d ranks, want 3 (mpirun -np 3)", size);
    if (rank == 0) {
        uint64_t n_cs1 = bench_scaled(N_CS1_RAW, 1000), n_rtt = bench_scaled(N_RTT_RAW, 100);
        int64_t *out = malloc(n_cs1 * sizeof *out);
        if (out == NULL)
            bench_die("malloc");
        (void)raw_master(out, 1000, size - 1); /* warm-up */
        bench_emit("mpi.map.cs1", "raw", raw_master(out, n_cs1, size - 1), "tasks/s");
        free(out);
        for (int r = 1; r < size; r++)
            raw_done(r);
        (void)raw_pingpong(200); /* warm-up */
        bench_emit("mpi.apply.rtt", "raw", raw_pingpong(n_rtt), "us");
        for (int r = 1; r < size; r++)
            raw_done(r);
    } else {
        raw_worker(); /* the master/worker loop */
        if (rank == 1)
            for (;;) { /* the ping-pong: x + 1 until TAG_DONE */
                int64_t x;
                MPI_Status st;
                MPI_OK(MPI_Recv(&x, 1, MPI_INT64_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
                if (st.MPI_TAG == TAG_DONE)
                    break;
                x++;
                MPI_OK(MPI_Send(&x, 1, MPI_INT64_T, 0, TAG_TASK, MPI_COMM_WORLD));
            }
        else
            raw_idle();
    }
    MPI_OK(MPI_Finalize());
    return 0;
}

/* mpi.start's anchor: MPI_Init, one ping-pong between rank 0 and each other rank, done. */
static int job_start_raw(int *argc, char ***argv)
{
    MPI_OK(MPI_Init(argc, argv));
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int64_t x = 41, y = 0;
    if (rank == 0) {
        for (int r = 1; r < size; r++) {
            MPI_OK(MPI_Send(&x, 1, MPI_INT64_T, r, TAG_TASK, MPI_COMM_WORLD));
            MPI_OK(MPI_Recv(&y, 1, MPI_INT64_T, r, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            if (y != 42)
                bench_die("start-raw: rank %d answered %lld", r, (long long)y);
        }
    } else {
        MPI_OK(MPI_Recv(&x, 1, MPI_INT64_T, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        y = x + 1;
        MPI_OK(MPI_Send(&y, 1, MPI_INT64_T, 0, TAG_TASK, MPI_COMM_WORLD));
    }
    MPI_OK(MPI_Finalize());
    return 0;
}

/* ---- the driver: the jobs under mpirun ------------------------------------------------ */

static const struct config {
    const char *suffix; /* appended to the ids */
    const char *mca[3]; /* mpirun's options besides --oversubscribe and -np 3 */
} configs[] = {{"", {NULL}}, {".tcp", {"--mca", "btl", "self,tcp"}}};

static const char *const ids[] = {"mpi.map.cs1", "mpi.map.default", "mpi.apply.rtt", "mpi.start"};

/* mpirun's path on $PATH, or NULL. */
static const char *find_mpirun(void)
{
    static char buf[4096];
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    while (*path != '\0') {
        size_t k = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/mpirun", (int)k, path);
        if (k > 0 && access(buf, X_OK) == 0)
            return buf;
        path += k + (path[k] == ':');
    }
    return NULL;
}

/* mpirun [the config's options] -np 3 self mode, into argv (NULL-terminated). */
static void job_argv(const char **argv, const char *mpirun, const struct config *c,
                     const char *self, const char *mode)
{
    size_t k = 0;
    argv[k++] = mpirun;
    argv[k++] = "--oversubscribe";
    for (size_t i = 0; i < 3 && c->mca[i] != NULL; i++)
        argv[k++] = c->mca[i];
    argv[k++] = "-np";
    argv[k++] = "3";
    argv[k++] = self;
    argv[k++] = mode;
    argv[k] = NULL;
}

/* Run one job (mode: for messages); its stdout into out (NUL-terminated). The wall time
 * from fork to its end. */
static double run_job(const char *const *argv, const char *mode, char *out, size_t cap)
{
    int fd[2];
    BENCH_SYS(pipe2(fd, O_CLOEXEC));
    double t0 = bench_now();
    pid_t pid = bench_fork();
    if (pid == 0) {
        setpgid(0, 0); /* killed as a group if it hangs */
        dup2(fd[1], 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    double deadline = t0 + JOB_TIMEOUT_S;
    for (;;) {
        struct pollfd p = {.fd = fd[0], .events = POLLIN};
        double left = deadline - bench_now();
        if (left <= 0 || poll(&p, 1, (int)(left * 1e3) + 1) == 0) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            out[len] = '\0';
            bench_die("mpirun ... %s: no end after %d s (a hang?); its output so far: %s", mode,
                      JOB_TIMEOUT_S, len ? out : "(none)");
        }
        if (len + 1 >= cap)
            bench_die("mpirun ... %s: too much output", mode);
        ssize_t r = read(fd[0], out + len, cap - 1 - len);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            bench_die("waitpid: %s", strerror(errno));
    double t = bench_now() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("mpirun ... %s: status 0x%x; its output: %s", mode, (unsigned)st, out);
    return t;
}

/* The job's `<id> <variant> <value> <unit>` lines again, the config's suffix on the ids,
 * in the order of ids[] (the jobs measure in another). */
static void relay(const char *out, const char *suffix, const char *mode, int want)
{
    struct {
        char id[64], variant[32], unit[32];
        double v;
    } f[8];
    int got = 0;
    for (const char *l = out; *l != '\0'; got++) {
        size_t k = strcspn(l, "\n");
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)k, l);
        if (got == 8 ||
            sscanf(line, "%63s %31s %lf %31s", f[got].id, f[got].variant, &f[got].v, f[got].unit) !=
                4 ||
            !(f[got].v > 0))
            bench_die("mpirun ... %s printed: %s", mode, line);
        l += k + (l[k] == '\n');
    }
    if (got != want)
        bench_die("mpirun ... %s: %d figures, want %d", mode, got, want);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        for (int j = 0; j < got; j++)
            if (strcmp(f[j].id, ids[i]) == 0) {
                char full[96];
                snprintf(full, sizeof full, "%.63s%.16s", f[j].id, suffix);
                bench_emit(full, f[j].variant, f[j].v, f[j].unit);
            }
}

static int drive(void)
{
    const char *mpirun = find_mpirun();
    if (mpirun == NULL) {
        fprintf(stderr, "no mpirun on PATH (Debian: openmpi-bin)\n");
        return 77;
    }
    if (geteuid() == 0) { /* Open MPI refuses root unless told */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    }
    char self[4000];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    if (l < 0)
        bench_die("readlink /proc/self/exe: %s", strerror(errno));
    self[l] = '\0';
    static char out[1 << 16];
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        const struct config *cf = &configs[c];
        const char *argv[12];
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            printf("cmd %s%s mpirun --oversubscribe", ids[i], cf->suffix);
            for (size_t k = 0; k < 3 && cf->mca[k] != NULL; k++)
                printf(" %s", cf->mca[k]);
            printf(" -np 3\n");
        }
        fflush(stdout);
        job_argv(argv, mpirun, cf, self, "mproc");
        (void)run_job(argv, "mproc", out, sizeof out);
        relay(out, cf->suffix, "mproc", 3);
        job_argv(argv, mpirun, cf, self, "raw");
        (void)run_job(argv, "raw", out, sizeof out);
        relay(out, cf->suffix, "raw", 2);

        char id[64];
        snprintf(id, sizeof id, "mpi.start%s", cf->suffix);
        job_argv(argv, mpirun, cf, self, "start");
        bench_emit(id, "mproc", run_job(argv, "start", out, sizeof out), "s");
        job_argv(argv, mpirun, cf, self, "start-raw");
        bench_emit(id, "raw", run_job(argv, "start-raw", out, sizeof out), "s");
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* The raw jobs are MPI programs of their own: mproc_init must not join them to a pool. */
    if (argc == 2 && strcmp(argv[1], "raw") == 0)
        return job_raw(&argc, &argv);
    if (argc == 2 && strcmp(argv[1], "start-raw") == 0)
        return job_start_raw(&argc, &argv);
    if (mproc_init(&argc, &argv) < 0) /* under mpirun, ranks 1.. stay in it: the hosts */
        return 2;
    if (argc == 2 && strcmp(argv[1], "mproc") == 0)
        return job_mproc();
    if (argc == 2 && strcmp(argv[1], "start") == 0)
        return job_start();
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--rep") != 0))
        bench_die("usage: mpi [--rep]; under mpirun: mpi mproc|raw|start|start-raw");
    if (getenv("OMPI_COMM_WORLD_SIZE") != NULL)
        bench_die("run mpi without mpirun: it starts its jobs itself");
    return drive();
}
