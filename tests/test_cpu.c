/* tests/test_cpu.c - CPU counts: sanity, affinity (sched_setaffinity, taskset), and the
 * cgroup and sysfs parsers on fake trees. */
#include "harness.h"
#include "internal.h"

#include "cpu_internal.h"
#include "sys/cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_counts_are_sane(void **state)
{
    (void)state;
    mproc_cpu_counts c;
    assert_ok(mproc_cpu_counts_get(&c));
    assert_true(c.logical >= 1);
    assert_true(c.physical >= 1 && c.physical <= c.logical);
    assert_true(c.usable >= 1 && c.usable <= c.logical);
    assert_int_equal(c.logical, mproc_cpu_count());
    assert_int_equal(c.logical, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(c.physical, mproc_cpu_physical());
    assert_int_equal(c.usable, mproc_cpu_usable());
    assert_code(mproc_cpu_counts_get(NULL), -EINVAL);

    cpu_set_t set;
    CPU_ZERO(&set);
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    assert_int_equal(mproc__sys_affinity_count(0), CPU_COUNT(&set));
    assert_true(c.usable <= CPU_COUNT(&set));
    print_message("logical %d physical %d usable %d\n", c.logical, c.physical, c.usable);
}

static int child_one_cpu(void *arg)
{
    int logical = *(int *)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    size_t first = CPU_SETSIZE;
    for (size_t i = 0; i < CPU_SETSIZE && first == CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            first = i;
    if (first == CPU_SETSIZE)
        return 6;
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0)
        return 2;
    if (mproc_cpu_usable() != 1)
        return 3;
    if (mproc_cpu_count() != logical)
        return 4;
    mproc_cpu_counts c;
    if (mproc_cpu_counts_get(&c) < 0 || c.usable != 1 || c.logical != logical)
        return 5;
    return 0;
}

static void test_affinity_one_cpu(void **state)
{
    (void)state;
    int logical = mproc_cpu_count();
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_one_cpu, &logical), 10), 0);
}

static void test_taskset_helper(void **state)
{
    (void)state;
    const char *taskset = "/usr/bin/taskset";
    if (access(taskset, X_OK) != 0) {
        print_message("%s not found: skipped\n", taskset);
        skip();
    }
    int fds[2];
    assert_ok(mproc__sys_pipe(fds, 0));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        execl(taskset, "taskset", "-c", "0", MPROC_TEST_HELPERS_DIR "/cpu_print", (char *)NULL);
        _exit(127);
    }
    mproc__sys_close(fds[1]);
    char out[128] = "";
    size_t used = 0;
    for (;;) {
        ssize_t n = mproc__sys_read(fds[0], out + used, sizeof out - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    out[used] = '\0';
    mproc__sys_close(fds[0]);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    int logical, physical, usable;
    assert_int_equal(sscanf(out, "%d %d %d", &logical, &physical, &usable), 3);
    assert_int_equal(usable, 1);
    assert_int_equal(logical, mproc_cpu_count());
    assert_int_equal(physical, mproc_cpu_physical());
}

static void test_quota_parsers(void **state)
{
    (void)state;
    assert_int_equal(mproc__cpu_quota_v2("max 100000\n"), 0);
    assert_int_equal(mproc__cpu_quota_v2("max\n"), 0);
    assert_int_equal(mproc__cpu_quota_v2("150000 100000\n"), 2);
    assert_int_equal(mproc__cpu_quota_v2("50000 100000\n"), 1);
    assert_int_equal(mproc__cpu_quota_v2("200000 100000"), 2);
    assert_int_equal(mproc__cpu_quota_v2("200001 100000"), 3);
    assert_int_equal(mproc__cpu_quota_v2("1000 100000"), 1);
    assert_int_equal(mproc__cpu_quota_v2("400000000000000 1000"), INT32_MAX); /* clamped */
    /* Garbage means "no limit known". */
    const char *bad[] = {"",
                         "\n",
                         "abc",
                         "150000",
                         "150000 x",
                         "-5 100000",
                         "100000 0",
                         "1 2 3",
                         "99999999999999999999999 1",
                         "150000 100000 junk"};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(bad); i++)
        assert_int_equal(mproc__cpu_quota_v2(bad[i]), 0);
    assert_int_equal(mproc__cpu_quota_v2(NULL), 0);

    assert_int_equal(mproc__cpu_quota_v1("-1\n", "100000\n"), 0);
    assert_int_equal(mproc__cpu_quota_v1("250000\n", "100000\n"), 3);
    assert_int_equal(mproc__cpu_quota_v1("100000\n", "100000\n"), 1);
    assert_int_equal(mproc__cpu_quota_v1("10000\n", "100000\n"), 1);
    assert_int_equal(mproc__cpu_quota_v1("x", "100000"), 0);
    assert_int_equal(mproc__cpu_quota_v1("100000", ""), 0);
    assert_int_equal(mproc__cpu_quota_v1(NULL, "100000"), 0);
}

/* ---- fake trees ---------------------------------------------------------------- */

static char root[64];

static void make_root(void)
{
    snprintf(root, sizeof root, "/tmp/mproc-test-cpu-XXXXXX");
    assert_non_null(mkdtemp(root));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_root(void)
{
    assert_int_equal(nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Write text to root/rel, creating the directories on the way. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_ok(mproc__sys_write_all(fd, text, strlen(text)));
    close(fd);
}

static void test_cgroup_v2_tree(void **state)
{
    (void)state;
    make_root();
    const char *self = "0::/user.slice/job\n";
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 0); /* no files at all */

    put("user.slice/job/cpu.max", "max 100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 0);
    put("user.slice/job/cpu.max", "150000 100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 2);
    put("user.slice/job/cpu.max", "50000 100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 1);

    /* A parent tighter than the child wins; so does a child tighter than its parent. */
    put("user.slice/job/cpu.max", "max 100000\n");
    put("user.slice/cpu.max", "300000 100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 3);
    put("user.slice/job/cpu.max", "400000 100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 3);
    put("user.slice/job/cpu.max", "200000 100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 2);
    put("user.slice/job/cpu.max", "garbage\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 3); /* garbage is skipped */

    /* The process's group missing from our view (a container): the ancestors count. */
    assert_int_equal(mproc__cpu_quota_from_root(root, "0::/user.slice/gone/deeper\n"), 3);
    put("cpu.max", "100000 100000\n"); /* at the root itself */
    assert_int_equal(mproc__cpu_quota_from_root(root, "0::/\n"), 1);
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 1);

    /* Malformed /proc/self/cgroup text: no limit, no crash. */
    const char *bad[] = {
        "",      "\n", "garbage", "0:", "0::", "0::relative/path\n", "0::/user.slice/../../etc\n",
        "::::\n"};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(bad); i++)
        assert_int_equal(mproc__cpu_quota_from_root(root, bad[i]), 0);
    assert_int_equal(mproc__cpu_quota_from_root(NULL, self), 0);
    assert_int_equal(mproc__cpu_quota_from_root(root, NULL), 0);
    assert_int_equal(mproc__cpu_quota_from_root("/nonexistent-mproc-root", self), 0);
    remove_root();
}

static void test_cgroup_v1_tree(void **state)
{
    (void)state;
    make_root();
    const char *self = "12:memory:/docker/abc\n"
                       "4:cpu,cpuacct:/docker/abc\n"
                       "3:cpuset:/docker/abc\n"
                       "0::/\n";
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 0);
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 0);
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 3);
    /* A period file missing: that level is skipped. */
    put("cpu,cpuacct/docker/cpu.cfs_quota_us", "100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 3);
    put("cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 1); /* the parent is tighter */

    /* The controller under its short name (a symlink on real systems). */
    remove_root();
    make_root();
    put("cpu/docker/abc/cpu.cfs_quota_us", "150000\n");
    put("cpu/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, self), 2);
    assert_int_equal(mproc__cpu_quota_from_root(root, "1:cpu:/docker/abc\n"), 2);
    assert_int_equal(mproc__cpu_quota_from_root(root, "1:cpuacct:/docker/abc\n"), 0);
    assert_int_equal(mproc__cpu_quota_from_root(root, "1:cpuset:/docker/abc\n"), 0);
    /* v1 and v2 both present: the tightest wins. */
    put("docker/cpu.max", "100000 100000\n");
    assert_int_equal(mproc__cpu_quota_from_root(root, "1:cpu:/docker/abc\n0::/docker\n"), 1);
    remove_root();
}

static void test_physical_tree(void **state)
{
    (void)state;
    make_root();
    assert_int_equal(mproc__cpu_physical_from_root(root), 0); /* nothing known */
    /* cpu0/cpu1: hyperthreads of core 0; cpu2: core 1; cpu3: package 1 core 0. */
    put("cpu0/topology/physical_package_id", "0\n");
    put("cpu0/topology/core_id", "0\n");
    put("cpu1/topology/physical_package_id", "0\n");
    put("cpu1/topology/core_id", "0\n");
    put("cpu1/online", "1\n");
    put("cpu2/topology/physical_package_id", "0\n");
    put("cpu2/topology/core_id", "1\n");
    put("cpu3/topology/physical_package_id", "1\n");
    put("cpu3/topology/core_id", "0\n");
    assert_int_equal(mproc__cpu_physical_from_root(root), 3);
    /* Offline CPUs, non-CPU entries and garbage are ignored. */
    put("cpu4/topology/physical_package_id", "2\n");
    put("cpu4/topology/core_id", "0\n");
    put("cpu4/online", "0\n");
    put("cpufreq/topology/core_id", "7\n");
    put("cpu5x/topology/core_id", "8\n");
    put("cpu6/topology/physical_package_id", "zero\n");
    put("cpu6/topology/core_id", "9\n");
    assert_int_equal(mproc__cpu_physical_from_root(root), 3);
    /* Same core id on another die of package 0 is another core. */
    put("cpu7/topology/physical_package_id", "0\n");
    put("cpu7/topology/core_id", "1\n");
    put("cpu7/topology/die_id", "1\n");
    assert_int_equal(mproc__cpu_physical_from_root(root), 4);
    remove_root();
    assert_int_equal(mproc__cpu_physical_from_root(root), 0); /* gone */
    assert_int_equal(mproc__cpu_physical_from_root(NULL), 0);
}

static void test_real_cgroup_agrees(void **state)
{
    (void)state;
    /* Whatever this machine's cgroups say, usable is never above the quota found. */
    char text[16384] = "";
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = mproc__sys_read(fd, text, sizeof text - 1);
        text[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    int quota = mproc__cpu_quota_from_root("/sys/fs/cgroup", text);
    print_message("cgroup quota here: %d (0 = none)\n", quota);
    assert_true(quota >= 0);
    if (quota > 0)
        assert_true(mproc_cpu_usable() <= quota);
}

#ifdef MPROC_FAULT_INJECTION
static void test_fault_fallbacks(void **state)
{
    (void)state;
    int logical = mproc_cpu_count();
    /* Affinity unreadable: usable falls back to logical (or the quota), never below 1. */
    assert_ok(mproc_fault_set("sys.affinity", MPROC_FAULT_FAIL,
                              &(mproc_fault_opts){.code = -EPERM, .sticky = 1}));
    int n = mproc_cpu_usable();
    assert_true(n >= 1 && n <= logical);
    assert_true(mproc_fault_count("sys.affinity") >= 1);
    assert_ok(mproc_fault_clear());
    /* Every allocation failing: physical falls back to logical, usable still works. */
    assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.sticky = 1}));
    assert_int_equal(mproc_cpu_physical(), logical);
    n = mproc_cpu_usable();
    assert_true(n >= 1 && n <= logical);
    mproc_cpu_counts c;
    assert_ok(mproc_cpu_counts_get(&c));
    assert_int_equal(c.physical, logical);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_counts_are_sane), MPROC_TEST(test_affinity_one_cpu),
        MPROC_TEST(test_taskset_helper),  MPROC_TEST(test_quota_parsers),
        MPROC_TEST(test_cgroup_v2_tree),  MPROC_TEST(test_cgroup_v1_tree),
        MPROC_TEST(test_physical_tree),   MPROC_TEST(test_real_cgroup_agrees),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_fault_fallbacks),
#endif
    };
    return mproc_test_run(tests);
}
