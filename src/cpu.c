/* src/cpu.c - CPU counts: logical, physical, and usable by this process.
 *
 * DESIGN: nothing is shared and nobody waits; every call reads the kernel's current
 * view (sysconf, sched_getaffinity, /proc/self/cgroup, cgroup and sysfs files) and
 * keeps no cache, because affinity and quotas can change while a program runs. A
 * process dying cannot affect anything here. Every failure to read or parse degrades
 * to a looser answer (no quota, physical = logical), never to an error or a count
 * below 1: a worker count must always be usable.
 *
 * usable = min(affinity mask count, ceil(tightest cgroup CPU quota), logical).
 * The quota is looked up at the process's cgroup and at every ancestor, because a
 * parent's limit binds its children (a container's limit usually sits above the
 * process's own group, which is often missing from the container's view entirely).
 */
#include "internal.h"

#include "cpu_internal.h"
#include "sys/cpu.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

enum { SMALL_FILE = 256, CGROUP_FILE = 16384 };

/* Read a small text file into buf (NUL-terminated). 0 or -errno. */
static int read_text(const char *path, char *buf, size_t cap)
{
    int rc = mproc__sys_read_text(path, buf, cap);
    return rc < 0 ? rc : 0;
}

/* Parse one decimal integer (leading blanks allowed); advance *s past it. */
static bool parse_i64(const char **s, int64_t *out)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (*p < '0' || *p > '9')
        return false;
    int64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? -v : v;
    *s = p;
    return true;
}

/* Only trailing blanks and newlines may follow a number. */
static bool at_end(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    return *p == '\0';
}

/* ceil(quota / period) as an int >= 1, or 0 for "no limit" / nonsense. */
static int quota_cpus(int64_t quota, int64_t period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    int64_t n = quota / period + (quota % period != 0);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int mproc__cpu_quota_v2(const char *cpu_max)
{
    if (cpu_max == NULL)
        return 0;
    const char *p = cpu_max;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "max", 3) == 0)
        return 0;
    int64_t quota, period;
    if (!parse_i64(&p, &quota) || !parse_i64(&p, &period) || !at_end(p))
        return 0;
    return quota_cpus(quota, period);
}

int mproc__cpu_quota_v1(const char *quota_text, const char *period_text)
{
    if (quota_text == NULL || period_text == NULL)
        return 0;
    int64_t quota, period;
    const char *q = quota_text, *p = period_text;
    if (!parse_i64(&q, &quota) || !at_end(q) || !parse_i64(&p, &period) || !at_end(p))
        return 0;
    return quota_cpus(quota, period);
}

static int tighter(int a, int b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* Walk dir (root + group path) up to root, applying the quota files at each level. */
static int walk_groups(const char *root, const char *ctl, const char *group, bool v1)
{
    char dir[PATH_MAX];
    int n = ctl != NULL ? snprintf(dir, sizeof dir, "%s/%s%s", root, ctl, group)
                        : snprintf(dir, sizeof dir, "%s%s", root, group);
    if (n < 0 || (size_t)n >= sizeof dir)
        return 0;
    size_t stop = strlen(root) + (ctl != NULL ? 1 + strlen(ctl) : 0); /* never above this */
    int best = 0;
    for (;;) {
        size_t len = strlen(dir);
        while (len > stop && dir[len - 1] == '/')
            dir[--len] = '\0';
        char path[PATH_MAX + 32], a[SMALL_FILE], b[SMALL_FILE];
        if (v1) {
            snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
            if (read_text(path, a, sizeof a) == 0) {
                snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
                if (read_text(path, b, sizeof b) == 0)
                    best = tighter(best, mproc__cpu_quota_v1(a, b));
            }
        } else {
            snprintf(path, sizeof path, "%s/cpu.max", dir);
            if (read_text(path, a, sizeof a) == 0)
                best = tighter(best, mproc__cpu_quota_v2(a));
        }
        if (len <= stop)
            return best;
        char *slash = strrchr(dir + stop, '/');
        if (slash == NULL)
            return best;
        *slash = '\0';
    }
}

/* Does the comma-separated controller list name "cpu"? */
static bool has_cpu_controller(const char *list, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        if (j - i == 3 && memcmp(list + i, "cpu", 3) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

int mproc__cpu_quota_from_root(const char *cgroup_root, const char *text)
{
    if (cgroup_root == NULL || text == NULL)
        return 0;
    int best = 0;
    for (const char *line = text; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t llen = eol != NULL ? (size_t)(eol - line) : strlen(line);
        /* "hierarchy-id:controllers:path" */
        const char *c1 = memchr(line, ':', llen);
        const char *c2 = c1 != NULL ? memchr(c1 + 1, ':', llen - (size_t)(c1 + 1 - line)) : NULL;
        if (c2 != NULL) {
            char group[PATH_MAX], ctl[128];
            size_t glen = llen - (size_t)(c2 + 1 - line);
            size_t clen = (size_t)(c2 - c1 - 1);
            if (glen > 0 && glen < sizeof group && c2[1] == '/') {
                memcpy(group, c2 + 1, glen);
                group[glen] = '\0';
                if (strstr(group, "/..") == NULL) { /* never climb out of the root */
                    if (clen == 0 && c1 - line == 1 && line[0] == '0') {
                        best = tighter(best, walk_groups(cgroup_root, NULL, group, false));
                    } else if (clen < sizeof ctl && has_cpu_controller(c1 + 1, clen)) {
                        memcpy(ctl, c1 + 1, clen);
                        ctl[clen] = '\0';
                        best = tighter(best, walk_groups(cgroup_root, ctl, group, true));
                        if (strcmp(ctl, "cpu") != 0) /* "cpu,cpuacct" is often also "cpu" */
                            best = tighter(best, walk_groups(cgroup_root, "cpu", group, true));
                    }
                }
            }
        }
        if (eol == NULL)
            break;
        line = eol + 1;
    }
    return best;
}

/* ---- physical cores ---------------------------------------------------------- */

struct core {
    int64_t package, die, core;
};

static int cmp_core(const void *pa, const void *pb)
{
    const struct core *a = pa, *b = pb;
    if (a->package != b->package)
        return a->package < b->package ? -1 : 1;
    if (a->die != b->die)
        return a->die < b->die ? -1 : 1;
    if (a->core != b->core)
        return a->core < b->core ? -1 : 1;
    return 0;
}

static bool read_id(const char *root, const char *cpu, const char *file, int64_t *out)
{
    char path[PATH_MAX], buf[SMALL_FILE];
    int n = snprintf(path, sizeof path, "%s/%s/%s", root, cpu, file);
    if (n < 0 || (size_t)n >= sizeof path || read_text(path, buf, sizeof buf) < 0)
        return false;
    const char *p = buf;
    return parse_i64(&p, out) && at_end(p);
}

static bool is_cpu_dir(const char *name)
{
    if (strncmp(name, "cpu", 3) != 0 || name[3] == '\0')
        return false;
    for (const char *p = name + 3; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

int mproc__cpu_physical_from_root(const char *root)
{
    if (root == NULL)
        return 0;
    DIR *d = opendir(root);
    if (d == NULL)
        return 0;
    struct core *cores = NULL;
    size_t n = 0, cap = 0;
    bool failed = false;
    struct dirent *e;
    while (!failed && (e = readdir(d)) != NULL) {
        if (!is_cpu_dir(e->d_name))
            continue;
        int64_t online;
        if (read_id(root, e->d_name, "online", &online) && online == 0)
            continue; /* cpu0 often has no "online" file: it is always online */
        struct core c = {0, 0, 0};
        if (!read_id(root, e->d_name, "topology/physical_package_id", &c.package) ||
            !read_id(root, e->d_name, "topology/core_id", &c.core))
            continue;
        (void)read_id(root, e->d_name, "topology/die_id", &c.die); /* newer kernels */
        if (n == cap) {
            size_t ncap = cap != 0 ? cap * 2 : 64;
            struct core *nc = mproc__realloc(cores, ncap * sizeof *nc);
            if (nc == NULL) {
                failed = true;
                break;
            }
            cores = nc;
            cap = ncap;
        }
        cores[n++] = c;
    }
    closedir(d);
    int count = 0;
    if (!failed && n > 0) {
        qsort(cores, n, sizeof *cores, cmp_core);
        for (size_t i = 0; i < n; i++)
            count += i == 0 || cmp_core(&cores[i - 1], &cores[i]) != 0;
    }
    mproc__free(cores);
    return count;
}

/* ---- public ------------------------------------------------------------------ */

int mproc_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (n > INT_MAX ? INT_MAX : (int)n) : 1;
}

int mproc_cpu_physical(void)
{
    int logical = mproc_cpu_count();
    int n = mproc__cpu_physical_from_root("/sys/devices/system/cpu");
    return n >= 1 && n <= logical ? n : logical;
}

int mproc_cpu_usable(void)
{
    int logical = mproc_cpu_count();
    int n = mproc__sys_affinity_count(0);
    if (n < 1 || n > logical)
        n = logical;
    char *text = mproc__malloc(CGROUP_FILE);
    if (text != NULL) {
        if (read_text("/proc/self/cgroup", text, CGROUP_FILE) == 0)
            n = tighter(n, mproc__cpu_quota_from_root("/sys/fs/cgroup", text));
        mproc__free(text);
    }
    return n >= 1 ? n : 1;
}

int mproc_cpu_counts_get(mproc_cpu_counts *out)
{
    if (out == NULL)
        return -EINVAL;
    out->logical = mproc_cpu_count();
    out->physical = mproc_cpu_physical();
    out->usable = mproc_cpu_usable();
    if (out->physical > out->logical)
        out->physical = out->logical;
    if (out->usable > out->logical)
        out->usable = out->logical;
    return 0;
}
