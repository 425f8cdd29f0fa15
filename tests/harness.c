/* tests/harness.c - see harness.h. */
#include "harness.h"
#include "sys/forkserver.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_FDS = 4096, MAX_SHM = 256, NAME = 256 };

static struct {
    unsigned char fds[MAX_FDS];
    char shm[MAX_SHM][NAME];
    int n_shm;
    int threads;
} before;

double mproc_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mproc_test_sleep(double seconds)
{
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void list_fds(unsigned char *set)
{
    memset(set, 0, MAX_FDS);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != self && fd < MAX_FDS)
            set[fd] = 1;
    }
    closedir(d);
}

/* The /dev/shm names this test process made. The library names nothing itself: every
 * name comes from a test, and the tests name theirs "/mproc-test-<pid>-..." (see
 * test_shm.c). Only those are judged, so that two suites running at once (two build
 * trees, or ctest -j) never take each other's names for leaks, nor delete them. */
static int list_shm(char names[][NAME], int max)
{
    int n = 0;
    char mine[32];
    snprintf(mine, sizeof mine, "mproc-test-%d-", (int)getpid());
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (strncmp(e->d_name, mine, strlen(mine)) != 0)
            continue;
        snprintf(names[n++], NAME, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static int count_threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (f == NULL)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* Children of this process: pids and states from /proc/<pid>/stat. */
static pid_t kept[16]; /* children of the whole program, not of a test */
static int nkept;

static bool is_kept(pid_t pid)
{
    for (int i = 0; i < nkept; i++)
        if (kept[i] == pid)
            return true;
    return false;
}

static int list_children(pid_t *pids, char *states, int max)
{
    int n = 0;
    pid_t self = getpid();
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *rp = strrchr(buf, ')'); /* comm may hold spaces and parens */
        char state;
        int ppid;
        if (rp == NULL || sscanf(rp + 2, "%c %d", &state, &ppid) != 2)
            continue;
        if (ppid == self && n < max && pid != mproc__forkserver_pid() && !is_kept(pid)) {
            pids[n] = pid;
            states[n] = state;
            n++;
        }
    }
    closedir(d);
    return n;
}

int mproc_test_count_children(void)
{
    pid_t pids[256];
    char states[256];
    return list_children(pids, states, 256);
}

int mproc_test_pid_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

int mproc_test_setup(void **state)
{
    (void)state;
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    list_fds(before.fds);
    before.n_shm = list_shm(before.shm, MAX_SHM);
    before.threads = count_threads();
    return 0;
}

void mproc_test_keep_children(void)
{
    pid_t pids[16];
    char states[16];
    int n = list_children(pids, states, 16);
    for (int i = 0; i < n && nkept < 16; i++)
        kept[nkept++] = pids[i];
}

int mproc_test_reap_all(double timeout)
{
    double end = mproc_test_now() + timeout;
    pid_t pids[256];
    char states[256];
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        int n = list_children(pids, states, 256);
        if (n == 0)
            return 0;
        if (mproc_test_now() >= end) {
            for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
            for (int i = 0; i < n; i++)
                waitpid(pids[i], NULL, 0);
            return n;
        }
        mproc_test_sleep(0.01);
    }
}

int mproc_test_teardown(void **state)
{
    (void)state;
    char problems[4096] = "";
    size_t used = 0;
#define PROBLEM(...)                                                                               \
    used += (size_t)snprintf(problems + used, used < sizeof problems ? sizeof problems - used : 0, \
                             __VA_ARGS__)

    /* Children: give exiting ones up to 2 s; never reap here (a zombie is a leak). */
    pid_t pids[256];
    char states[256];
    int n = 0;
    for (double end = mproc_test_now() + 2.0;;) {
        n = list_children(pids, states, 256);
        int alive = 0;
        for (int i = 0; i < n; i++)
            alive += states[i] != 'Z';
        if (n == 0 || (alive == 0 && mproc_test_now() >= end - 1.9) || mproc_test_now() >= end)
            break;
        mproc_test_sleep(0.01);
    }
    for (int i = 0; i < n; i++)
        PROBLEM("leftover child pid %d state %c; ", pids[i], states[i]);
    if (n > 0)
        mproc_test_reap_all(0);

    unsigned char now[MAX_FDS];
    list_fds(now);
    for (int fd = 0; fd < MAX_FDS; fd++) {
        if (now[fd] && !before.fds[fd]) {
            char path[64], target[256] = "";
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            ssize_t len = readlink(path, target, sizeof target - 1);
            if (len > 0)
                target[len] = 0;
            PROBLEM("leaked fd %d (%s); ", fd, target);
            close(fd);
        }
    }

    static char shm[MAX_SHM][NAME];
    int n_shm = list_shm(shm, MAX_SHM);
    for (int i = 0; i < n_shm; i++) {
        int known = 0;
        for (int j = 0; j < before.n_shm && !known; j++)
            known = strcmp(shm[i], before.shm[j]) == 0;
        if (!known) {
            PROBLEM("left /dev/shm/%s; ", shm[i]);
            int dir = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dir >= 0) {
                unlinkat(dir, shm[i], 0);
                close(dir);
            }
        }
    }

    int threads = count_threads();
    for (double end = mproc_test_now() + 1.0; threads > before.threads && mproc_test_now() < end;) {
        mproc_test_sleep(0.01);
        threads = count_threads();
    }
    if (threads > before.threads)
        PROBLEM("%d threads left (had %d); ", threads, before.threads);

#ifdef MPROC_FAULT_INJECTION
    mproc_fault_clear();
#endif
    if (used > 0) {
        print_error("leak gate: %s\n", problems);
        return -1;
    }
    return 0;
#undef PROBLEM
}

int mproc_test_run_(const char *name, const struct CMUnitTest *tests, size_t n)
{
    /* A test killed by the CTest timeout should not leave children running. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    /* Under the forkserver start method (--mproc-start=forkserver) the server is started
       before the tests, so that its process and socket are not counted as a test's. */
    if (mproc_get_start_method() == MPROC_START_FORKSERVER) {
        mproc_pool *p;
        if (mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1}) == 0)
            mproc_pool_free(p);
        (void)mproc_test_reap_all(5);
    }
    return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}

pid_t mproc_test_fork(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0)
        _exit(fn(arg) & 255);
    return pid;
}

int mproc_test_wait(pid_t pid, double timeout)
{
    double end = mproc_test_now() + timeout;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (mproc_test_now() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        mproc_test_sleep(0.001);
    }
}

int mproc_test_exitcode(pid_t pid, double timeout)
{
    int status = mproc_test_wait(pid, timeout);
    if (status == -1)
        return -1000;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return -1001;
}

int mproc_test_memory_cgroup(char *dir, size_t dir_size, long long limit, char *procs,
                             size_t procs_size)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f == NULL)
        return -1;
    char line[512], base[600] = "", limit_file[32] = "";
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *v1 = strstr(line, ":memory:");
        if (v1 != NULL) {
            snprintf(base, sizeof base, "/sys/fs/cgroup/memory%s", v1 + 8);
            snprintf(limit_file, sizeof limit_file, "memory.limit_in_bytes");
            break;
        }
        if (strncmp(line, "0::", 3) == 0 &&
            access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
            snprintf(base, sizeof base, "/sys/fs/cgroup%s", line + 3);
            snprintf(limit_file, sizeof limit_file, "memory.max");
        }
    }
    fclose(f);
    if (base[0] == '\0')
        return -1;
    static int serial;
    snprintf(dir, dir_size, "%s/mproc-test-%d-%d", base, (int)getpid(), serial++);
    if (mkdir(dir, 0755) != 0)
        return -1;
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, limit_file);
    f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%lld\n", limit) < 0 || fclose(f) != 0) {
        rmdir(dir);
        return -1;
    }
    snprintf(procs, procs_size, "%s/cgroup.procs", dir);
    return 0;
}

/* ---- the shared region ------------------------------------------------------------------- */

/* In the high half of the user address space, clear of what the loader, the heap, mmap's
 * usual area and AddressSanitizer's shadow and allocator use. */
#define SHARED_AT ((void *)0x5a0000000000ul)
#define SHARED_ENV "MPROC_TEST_SHARED_FD"

static void *shared_region;

__attribute__((constructor)) static void map_shared_region(void)
{
    const char *v = getenv(SHARED_ENV);
    int fd = v != NULL ? atoi(v) : -1;
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {        /* the first process of the program */
        fd = memfd_create("mproc-test-shared", 0); /* inherited across exec, on purpose */
        if (fd < 0 || ftruncate(fd, (off_t)MPROC_TEST_SHARED_BYTES) < 0)
            return;
        char num[16];
        snprintf(num, sizeof num, "%d", fd);
        setenv(SHARED_ENV, num, 1);
    }
    void *p = mmap(SHARED_AT, MPROC_TEST_SHARED_BYTES, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    shared_region = p == SHARED_AT ? p : NULL;
}

void *mproc_test_shared(void)
{
    return shared_region;
}
