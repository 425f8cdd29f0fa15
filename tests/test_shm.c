/* tests/test_shm.c - shared memory blocks (named and anonymous) and typed Value/Array. */
#include "harness.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A name no other test run uses: "/mproc-test-<pid>-<n>". */
static const char *fresh_name(void)
{
    static char name[64];
    static int n;
    snprintf(name, sizeof name, "/mproc-test-%d-%d", (int)getpid(), ++n);
    return name;
}

static bool name_exists(const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", name[0] == '/' ? name + 1 : name);
    struct stat st;
    return stat(path, &st) == 0;
}

/* Entries of /dev/shm named as random names are ("mproc-" and 24 hex digits; other
 * tests' names, which may come and go meanwhile, have another form). */
static int count_random_names(void)
{
    int n = 0;
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "mproc-", 6) == 0 && strlen(e->d_name) == 6 + 24 &&
             strspn(e->d_name + 6, "0123456789abcdef") == 24;
    closedir(d);
    return n;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* ---- named blocks ------------------------------------------------------------ */

struct child_write {
    const char *name;
    const char *text;
};

static int child_attach_write(void *arg)
{
    struct child_write *cw = arg;
    mproc_shm *s;
    if (mproc_shm_new(&s, cw->name, 0, 0) < 0)
        return 1;
    memcpy(mproc_shm_buf(s), cw->text, strlen(cw->text) + 1);
    mproc_shm_free(s);
    return 0;
}

static void test_create_attach_unlink(void **state)
{
    (void)state;
    const char *name = fresh_name();
    mproc_shm *a, *b;
    assert_ok(mproc_shm_new(&a, name, 10000, MPROC_SHM_CREATE));
    assert_true(name_exists(name));
    assert_string_equal(mproc_shm_name(a), name);
    assert_int_equal(mproc_shm_size(a), 10000);
    assert_true(mproc_shm_fd(a) >= 0);
    unsigned char *p = mproc_shm_buf(a);
    for (size_t i = 0; i < 10000; i++)
        assert_int_equal(p[i], 0); /* zero-filled */
    strcpy((char *)p, "from creator");

    /* Attach by the name without its leading '/': same block, whole size. */
    assert_ok(mproc_shm_new(&b, name + 1, 0, 0));
    assert_string_equal(mproc_shm_name(b), name);
    assert_int_equal(mproc_shm_size(b), 10000);
    assert_string_equal(mproc_shm_buf(b), "from creator");
    mproc_shm_free(b);

    /* Attach a prefix only. */
    assert_ok(mproc_shm_new(&b, name, 100, 0));
    assert_int_equal(mproc_shm_size(b), 100);
    mproc_shm_free(b);

    /* A forked child attaches by name and writes; the creator sees it. */
    struct child_write cw = {name, "from child"};
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_attach_write, &cw), 10), 0);
    assert_string_equal((char *)p, "from child");

    assert_ok(mproc_shm_unlink(a));
    assert_false(name_exists(name));
    assert_code(mproc_shm_unlink(a), -ENOENT); /* already gone */
    assert_code(mproc_shm_new(&b, name, 0, 0), -ENOENT);
    strcpy((char *)p, "still mapped"); /* the mapping outlives the name */
    assert_string_equal((char *)p, "still mapped");
    mproc_shm_free(a);
}

static void test_exec_helper_attaches(void **state)
{
    (void)state;
    const char *name = fresh_name();
    mproc_shm *s;
    assert_ok(mproc_shm_new(&s, name, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(MPROC_TEST_HELPERS_DIR "/shm_attach_write", "shm_attach_write", name,
              "written by an exec'd helper", (char *)NULL);
        _exit(127);
    }
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_string_equal(mproc_shm_buf(s), "written by an exec'd helper");
    assert_true(name_exists(name)); /* the helper's free did not unlink */
    mproc_shm_free(s);
    assert_false(name_exists(name));
}

static void test_errors_and_bad_names(void **state)
{
    (void)state;
    mproc_shm *s = NULL;
    const char *name = fresh_name();
    char long_name[301];
    memset(long_name, 'x', 300);
    long_name[300] = '\0';

    const char *bad[] = {"", "/", "a/b", "/a/b", "//a", ".", "/..", long_name};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(bad); i++) {
        assert_code(mproc_shm_new(&s, bad[i], 64, MPROC_SHM_CREATE), -EINVAL);
        assert_code(mproc_shm_new(&s, bad[i], 0, 0), -EINVAL);
    }
    long_name[250] = '\0'; /* 250 characters: the longest allowed */
    assert_ok(mproc_shm_new(&s, long_name, 64, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK));
    mproc_shm_free(s);
    long_name[250] = 'x';
    long_name[251] = '\0';
    assert_code(mproc_shm_new(&s, long_name, 64, MPROC_SHM_CREATE), -EINVAL);

    assert_code(mproc_shm_new(NULL, name, 64, MPROC_SHM_CREATE), -EINVAL);
    assert_code(mproc_shm_new(&s, name, 0, MPROC_SHM_CREATE), -EINVAL);
    assert_code(mproc_shm_new(&s, NULL, 0, 0), -EINVAL);
    assert_code(mproc_shm_new(&s, name, 64, 1u << 7), -EINVAL);
    assert_code(mproc_shm_new(&s, name, SIZE_MAX, MPROC_SHM_CREATE), -EINVAL);
    assert_code(mproc_shm_new(&s, name, 64, MPROC_SHM_AUTO_UNLINK), -EINVAL); /* not the creator */
    assert_code(mproc_shm_new(&s, name, 0, 0), -ENOENT);
    assert_false(name_exists(name));

    mproc_shm *a;
    assert_ok(mproc_shm_new(&a, name, 4096, MPROC_SHM_CREATE));
    assert_code(mproc_shm_new(&s, name, 4096, MPROC_SHM_CREATE), -EEXIST);
    assert_code(mproc_shm_new(&s, name, 4097, 0), -EINVAL); /* bigger than the block */
    assert_ok(mproc_shm_new(&s, name, 4096, 0));
    mproc_shm_free(s);
    assert_ok(mproc_shm_unlink(a));
    mproc_shm_free(a);

    /* NULL everywhere: error codes or no-ops, never a crash. */
    assert_null(mproc_shm_buf(NULL));
    assert_int_equal(mproc_shm_size(NULL), 0);
    assert_null(mproc_shm_name(NULL));
    assert_code(mproc_shm_fd(NULL), -EINVAL);
    assert_code(mproc_shm_unlink(NULL), -EINVAL);
    mproc_shm_free(NULL);
}

static int child_free_inherited(void *arg)
{
    mproc_shm_free(arg); /* a child of the creator: must only unmap */
    return 0;
}

static int child_create_auto(void *arg)
{
    mproc_shm *s;
    if (mproc_shm_new(&s, arg, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK) < 0)
        return 1;
    mproc_shm_free(s);
    return name_exists(arg) ? 2 : 0;
}

static void test_auto_unlink(void **state)
{
    (void)state;
    const char *name = fresh_name();
    mproc_shm *s;
    assert_ok(mproc_shm_new(&s, name, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK));
    assert_true(name_exists(name));
    /* Children that inherit the handle do not unlink when they free it. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_free_inherited, s), 10), 0);
    assert_true(name_exists(name));
    mproc_shm_free(s);
    assert_false(name_exists(name));

    /* A creator that is itself a child unlinks its own block. */
    name = fresh_name();
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_create_auto, (void *)name), 10), 0);
    assert_false(name_exists(name));

    /* An explicit unlink first: free must not unlink again (the name might be reused). */
    name = fresh_name();
    assert_ok(mproc_shm_new(&s, name, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK));
    assert_ok(mproc_shm_unlink(s));
    mproc_shm *other;
    assert_ok(mproc_shm_new(&other, name, 4096, MPROC_SHM_CREATE));
    mproc_shm_free(s);
    assert_true(name_exists(name)); /* the newer block with the same name survives */
    assert_ok(mproc_shm_unlink(other));
    mproc_shm_free(other);
}

/* An unlink through a handle whose block is already gone (unlinked through another
 * handle, by another process, or by hand) never removes a newer block that took the
 * name: neither an explicit unlink nor the creator's AUTO_UNLINK. */
static void test_unlink_never_removes_a_newer_block(void **state)
{
    (void)state;
    const char *name = fresh_name();
    mproc_shm *a, *b, *c;
    assert_ok(mproc_shm_new(&a, name, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK));
    assert_ok(mproc_shm_new(&b, name, 0, 0)); /* a second handle on the same block */
    assert_ok(mproc_shm_unlink(b));
    assert_ok(mproc_shm_new(&c, name, 8192, MPROC_SHM_CREATE)); /* the name, reused */
    strcpy(mproc_shm_buf(c), "newer");
    assert_code(mproc_shm_unlink(a), -ENOENT); /* its own block is gone: nothing removed */
    assert_true(name_exists(name));
    mproc_shm_free(a); /* AUTO_UNLINK: not the newer block either */
    assert_true(name_exists(name));
    mproc_shm_free(b);

    /* Removed by hand (another program), then reused: the same. */
    assert_ok(mproc_shm_new(&a, name + 1, 0, 0));
    assert_string_equal(mproc_shm_buf(a), "newer");
    assert_ok(mproc_shm_unlink(c));
    mproc_shm_free(c);
    assert_ok(mproc_shm_new(&c, name, 4096, MPROC_SHM_CREATE));
    assert_code(mproc_shm_unlink(a), -ENOENT);
    assert_true(name_exists(name));
    mproc_shm_free(a);
    assert_ok(mproc_shm_unlink(c)); /* its own: removed */
    assert_false(name_exists(name));
    mproc_shm_free(c);
}

static int child_attach_random(void *arg)
{
    mproc_shm *s;
    if (mproc_shm_new(&s, arg, 0, 0) < 0)
        return 1;
    int ok = strcmp(mproc_shm_buf(s), "random") == 0;
    mproc_shm_free(s);
    return ok ? 0 : 2;
}

/* Python's SharedMemory(create=True) without a name: a random unique name. */
static void test_random_name(void **state)
{
    (void)state;
    mproc_shm *a, *b;
    unsigned f = MPROC_SHM_CREATE | MPROC_SHM_NAMED | MPROC_SHM_AUTO_UNLINK;
    assert_ok(mproc_shm_new(&a, NULL, 4096, f));
    assert_ok(mproc_shm_new(&b, NULL, 4096, f));
    const char *na = mproc_shm_name(a), *nb = mproc_shm_name(b);
    assert_non_null(na);
    assert_non_null(nb);
    assert_true(strncmp(na, "/mproc-", 7) == 0);
    assert_true(strlen(na) > 7 + 8); /* enough randomness not to collide by chance */
    assert_string_not_equal(na, nb);
    assert_true(name_exists(na));
    strcpy(mproc_shm_buf(a), "random");
    char name[64];
    assert_true(strlen(na) < sizeof name);
    memcpy(name, na, strlen(na) + 1);
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_attach_random, name), 10), 0);
    mproc_shm_free(a);
    mproc_shm_free(b);
    assert_false(name_exists(name)); /* AUTO_UNLINK works on a random name too */

    /* 100 of them: all distinct, none left after. */
    enum { N = 100 };
    mproc_shm *s[N];
    for (int i = 0; i < N; i++) {
        assert_ok(mproc_shm_new(&s[i], NULL, 64, f));
        for (int k = 0; k < i; k++)
            assert_string_not_equal(mproc_shm_name(s[i]), mproc_shm_name(s[k]));
    }
    for (int i = 0; i < N; i++)
        mproc_shm_free(s[i]);

    /* NAMED needs CREATE and no name of the caller's. */
    assert_code(mproc_shm_new(&a, NULL, 4096, MPROC_SHM_NAMED), -EINVAL);
    assert_code(mproc_shm_new(&a, fresh_name(), 4096, MPROC_SHM_CREATE | MPROC_SHM_NAMED), -EINVAL);
}

static int child_create_and_die(void *arg)
{
    mproc_shm *s;
    /* AUTO_UNLINK does not help against SIGKILL: no code runs. */
    if (mproc_shm_new(&s, arg, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK) < 0)
        return 1;
    strcpy(mproc_shm_buf(s), "last words");
    raise(SIGKILL);
    return 2;
}

static void test_killed_creator_leaves_name(void **state)
{
    (void)state;
    const char *name = fresh_name();
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_create_and_die, (void *)name), 10),
                     -SIGKILL);
    /* Documented: a name outlives its SIGKILLed creator. Attach, read, clean up. */
    assert_true(name_exists(name));
    mproc_shm *s;
    assert_ok(mproc_shm_new(&s, name, 0, 0));
    assert_string_equal(mproc_shm_buf(s), "last words");
    assert_ok(mproc_shm_unlink(s));
    mproc_shm_free(s);
    assert_false(name_exists(name));
}

static int child_anon_write(void *arg)
{
    mproc_shm *s = arg;
    strcpy(mproc_shm_buf(s), "anonymous, from child");
    mproc_shm_free(s);
    return 0;
}

static void test_anonymous_shared_with_child(void **state)
{
    (void)state;
    int fds = count_fds();
    mproc_shm *s;
    assert_ok(mproc_shm_new(&s, NULL, 1 << 20, 0));
    assert_null(mproc_shm_name(s));
    assert_int_equal(mproc_shm_size(s), 1 << 20);
    assert_true(mproc_shm_fd(s) >= 0);
    assert_int_equal(count_fds(), fds + 1);
    assert_code(mproc_shm_unlink(s), -EINVAL); /* nothing to unlink */
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_anon_write, s), 10), 0);
    assert_string_equal(mproc_shm_buf(s), "anonymous, from child");
    ((char *)mproc_shm_buf(s))[(1 << 20) - 1] = 1; /* reserved: the last page is touchable */
    mproc_shm_free(s);
    assert_int_equal(count_fds(), fds);
    /* MPROC_SHM_CREATE and AUTO_UNLINK are accepted and meaningless without a name. */
    assert_ok(mproc_shm_new(&s, NULL, 64, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK));
    mproc_shm_free(s);
}

/* ---- a full /dev/shm, in a private mount namespace ----------------------------- */

enum { SKIP_NO_NS = 77 };

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int child_full_devshm(void *arg)
{
    (void)arg;
    if (unshare(CLONE_NEWNS) < 0)
        return errno == EPERM ? SKIP_NO_NS : 10;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return 11;
    if (mount("mproc-test", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256k") < 0)
        return errno == EPERM ? SKIP_NO_NS : 12;
    if (dir_entries("/dev/shm") != 0)
        return 13;
    mproc_shm *s;
    int rc = mproc_shm_new(&s, "/mproc-test-full", 1 << 20, MPROC_SHM_CREATE);
    if (rc != -ENOSPC)
        return 14;
    if (dir_entries("/dev/shm") != 0)
        return 15; /* the half-made name was removed */
    /* What fits, fits, and every page can be written without SIGBUS. */
    if (mproc_shm_new(&s, "/mproc-test-fits", 128 << 10, MPROC_SHM_CREATE) < 0)
        return 16;
    memset(mproc_shm_buf(s), 0xab, 128 << 10);
    rc = mproc_shm_new(&(mproc_shm *){NULL}, "/mproc-test-more", 192 << 10, MPROC_SHM_CREATE);
    if (rc != -ENOSPC || dir_entries("/dev/shm") != 1)
        return 17;
    if (mproc_shm_unlink(s) < 0)
        return 18;
    mproc_shm_free(s);
    return dir_entries("/dev/shm") == 0 ? 0 : 19;
}

static void test_full_devshm_is_enospc(void **state)
{
    (void)state;
    int code = mproc_test_exitcode(mproc_test_fork(child_full_devshm, NULL), 20);
    if (code == SKIP_NO_NS) {
        print_message("no private mount namespace (needs root or CAP_SYS_ADMIN): skipped\n");
        skip();
    }
    assert_int_equal(code, 0); /* a SIGBUS would show as -7 */
}

/* Sizes above what the caller's memory cgroup allows: refused with -ENOMEM before any
 * of it is reserved. Reserving it all (posix_fallocate of a memfd or a /dev/shm file
 * charges the pages at once) got the caller SIGKILLed by the OOM killer, and outside a
 * cgroup a 2^45-byte request called the global OOM killer onto unrelated processes:
 * so this runs only in a memory cgroup of its own, in a child. */
static char big_procs[800];

static int child_above_limit(void *arg)
{
    (void)arg;
    FILE *f = fopen(big_procs, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
        return 90;
    mproc_shm *s;
    const size_t gib = (size_t)1 << 30;
    if (mproc_shm_new(&s, NULL, gib, 0) != -ENOMEM)
        return 1;
    if (mproc_shm_new(&s, "mproc-test-above", gib, MPROC_SHM_CREATE) != -ENOMEM)
        return 2;
    if (dir_entries("/dev/shm") != 0)
        return 3; /* the name of a refused block is not left behind */
    if (mproc_shm_new(&s, NULL, (size_t)1 << 45, 0) != -ENOMEM)
        return 4;
    mproc_array *a;
    if (mproc_array_new(&a, MPROC_TYPE_U8, gib, 0) != -ENOMEM)
        return 5;
    /* what fits is still given */
    if (mproc_shm_new(&s, NULL, (size_t)32 << 20, 0) != 0)
        return 6;
    memset(mproc_shm_buf(s), 1, (size_t)32 << 20);
    mproc_shm_free(s);
    return 0;
}

static void test_size_above_memory_limit(void **state)
{
    (void)state;
    char dir[700];
    if (mproc_test_memory_cgroup(dir, sizeof dir, 256 << 20, big_procs, sizeof big_procs) < 0) {
        print_message("no memory cgroup of our own (needs root and a cgroup mount): skipped\n");
        skip();
    }
    int code = mproc_test_exitcode(mproc_test_fork(child_above_limit, NULL), 60);
    int tries = 0;
    while (rmdir(dir) != 0 && tries++ < 200)
        mproc_test_sleep(0.01);
    assert_int_equal(code, 0); /* -9: the OOM killer took the caller */
}

/* ---- typed Value / Array --------------------------------------------------------- */

static int child_count(void *arg)
{
    for (int i = 0; i < 10000; i++)
        if (mproc_array_add_i64(arg, 0, 1, NULL) < 0)
            return 1;
    return 0;
}

static void test_shared_counter(void **state)
{
    (void)state;
    mproc_array *v;
    assert_ok(mproc_array_new(&v, MPROC_TYPE_I64, 1, 0));
    assert_non_null(mproc_array_lock(v));
    pid_t pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = mproc_test_fork(child_count, v);
    for (int i = 0; i < 4; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 60), 0);
    int64_t n = 0;
    assert_ok(mproc_array_get_i64(v, 0, &n));
    assert_int_equal(n, 40000);
    assert_ok(mproc_array_add_i64(v, 0, -40001, &n));
    assert_int_equal(n, -1);
    mproc_array_free(v);
}

static void test_value_of_each_type(void **state)
{
    (void)state;
    for (int t = MPROC_TYPE_I8; t <= MPROC_TYPE_F64; t++) {
        mproc_array *a;
        assert_ok(mproc_array_new(&a, (mproc_type)t, 5, 0));
        assert_int_equal(mproc_array_type(a), t);
        assert_int_equal(mproc_array_len(a), 5);
        assert_true(((uintptr_t)mproc_array_data(a) & 15) == 0);
        int64_t i;
        double d;
        for (size_t k = 0; k < 5; k++) { /* zero-filled */
            assert_ok(mproc_array_get_i64(a, k, &i));
            assert_int_equal(i, 0);
        }
        assert_ok(mproc_array_set_i64(a, 4, 100));
        assert_ok(mproc_array_get_i64(a, 4, &i));
        assert_int_equal(i, 100);
        assert_ok(mproc_array_add_i64(a, 4, 27, &i));
        assert_int_equal(i, 127);
        assert_ok(mproc_array_set_f64(a, 1, 3.0));
        assert_ok(mproc_array_get_f64(a, 1, &d));
        assert_true(d == 3.0);
        assert_ok(mproc_array_get_i64(a, 0, &i)); /* neighbours untouched */
        assert_int_equal(i, 0);
        assert_ok(mproc_array_get_i64(a, 2, &i));
        assert_int_equal(i, 0);
        /* The raw data has the element layout the type says. */
        void *p = mproc_array_data(a);
        switch ((mproc_type)t) {
        case MPROC_TYPE_I8:
            assert_int_equal(((int8_t *)p)[4], 127);
            assert_ok(mproc_array_add_i64(a, 4, 1, &i)); /* wraps like int8_t */
            assert_int_equal(i, -128);
            break;
        case MPROC_TYPE_U8:
            assert_int_equal(((uint8_t *)p)[4], 127);
            assert_ok(mproc_array_set_i64(a, 4, 300)); /* truncated like ctypes */
            assert_ok(mproc_array_get_i64(a, 4, &i));
            assert_int_equal(i, 44);
            break;
        case MPROC_TYPE_I16:
            assert_int_equal(((int16_t *)p)[4], 127);
            assert_ok(mproc_array_set_i64(a, 4, -30000));
            assert_int_equal(((int16_t *)p)[4], -30000);
            break;
        case MPROC_TYPE_U16:
            assert_int_equal(((uint16_t *)p)[4], 127);
            assert_ok(mproc_array_set_i64(a, 4, -1));
            assert_ok(mproc_array_get_i64(a, 4, &i));
            assert_int_equal(i, 65535);
            break;
        case MPROC_TYPE_I32:
            assert_int_equal(((int32_t *)p)[4], 127);
            break;
        case MPROC_TYPE_U32:
            assert_int_equal(((uint32_t *)p)[4], 127);
            assert_ok(mproc_array_set_i64(a, 4, 4000000000));
            assert_ok(mproc_array_get_i64(a, 4, &i));
            assert_int_equal(i, 4000000000);
            break;
        case MPROC_TYPE_I64:
            assert_int_equal(((int64_t *)p)[4], 127);
            assert_ok(mproc_array_set_i64(a, 4, INT64_MIN));
            assert_ok(mproc_array_add_i64(a, 4, -1, &i)); /* wraps, no UB */
            assert_true(i == INT64_MAX);
            break;
        case MPROC_TYPE_U64:
            assert_int_equal(((uint64_t *)p)[4], 127);
            assert_ok(mproc_array_set_i64(a, 4, -1));
            assert_ok(mproc_array_get_f64(a, 4, &d));
            assert_true(d == 18446744073709551615.0);
            break;
        case MPROC_TYPE_F32:
            assert_true(((float *)p)[4] == 127.0f);
            assert_ok(mproc_array_set_f64(a, 4, 1.5));
            assert_ok(mproc_array_get_f64(a, 4, &d));
            assert_true(d == 1.5);
            break;
        case MPROC_TYPE_F64:
            assert_true(((double *)p)[4] == 127.0);
            assert_ok(mproc_array_set_f64(a, 4, 0.25));
            assert_ok(mproc_array_get_f64(a, 4, &d));
            assert_true(d == 0.25);
            assert_ok(mproc_array_set_f64(a, 4, 1e300));
            assert_code(mproc_array_get_i64(a, 4, &i), -ERANGE);
            break;
        }
        /* Floats written into integer elements are truncated toward zero. */
        if (t < MPROC_TYPE_F32) {
            assert_ok(mproc_array_set_f64(a, 3, 7.9));
            assert_ok(mproc_array_get_i64(a, 3, &i));
            assert_int_equal(i, 7);
            assert_code(mproc_array_set_f64(a, 3, __builtin_nan("")), -ERANGE);
            assert_code(mproc_array_set_f64(a, 3, 1e30), -ERANGE);
        }
        mproc_array_free(a);
    }
    assert_int_equal(mproc_type_size(MPROC_TYPE_I8), 1);
    assert_int_equal(mproc_type_size(MPROC_TYPE_U16), 2);
    assert_int_equal(mproc_type_size(MPROC_TYPE_F32), 4);
    assert_int_equal(mproc_type_size(MPROC_TYPE_U64), 8);
    assert_int_equal(mproc_type_size((mproc_type)0), 0);
    assert_int_equal(mproc_type_size((mproc_type)99), 0);
}

static int child_set_raw(void *arg)
{
    mproc_array *a = arg;
    ((int32_t *)mproc_array_data(a))[99] = 42;
    return mproc_array_set_i64(a, 0, -7) == 0 ? 0 : 1;
}

static void test_array_nolock(void **state)
{
    (void)state;
    mproc_array *a;
    assert_ok(mproc_array_new(&a, MPROC_TYPE_I32, 100, MPROC_ARRAY_NOLOCK));
    assert_null(mproc_array_lock(a));
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_set_raw, a), 10), 0);
    int64_t v;
    assert_ok(mproc_array_get_i64(a, 99, &v));
    assert_int_equal(v, 42);
    assert_ok(mproc_array_get_i64(a, 0, &v));
    assert_int_equal(v, -7);
    assert_ok(mproc_array_add_i64(a, 0, 10, &v));
    assert_int_equal(v, 3);
    mproc_array_free(a);
}

static int child_hold_lock_and_die(void *arg)
{
    if (mproc_lock_acquire(mproc_array_lock(arg), MPROC_FOREVER) < 0)
        return 1;
    raise(SIGKILL);
    return 2;
}

static void test_lock_holder_killed(void **state)
{
    (void)state;
    mproc_array *a;
    assert_ok(mproc_array_new(&a, MPROC_TYPE_I64, 2, 0));
    assert_ok(mproc_array_set_i64(a, 1, 5));
    for (int round = 0; round < 2; round++) {
        assert_int_equal(mproc_test_exitcode(mproc_test_fork(child_hold_lock_and_die, a), 10),
                         -SIGKILL);
        int64_t v;
        assert_ok(mproc_array_add_i64(a, 1, 1, &v)); /* OWNER_DIED handled inside */
        assert_int_equal(v, 6 + round);
    }
    /* The lock is healthy afterwards: a plain acquire gets it with no news of a death. */
    assert_ok(mproc_lock_acquire(mproc_array_lock(a), 1.0));
    /* It is an RLock (as in Python): helpers work while the caller holds it. */
    int64_t v;
    assert_ok(mproc_array_add_i64(a, 1, 10, &v));
    assert_int_equal(v, 17);
    assert_ok(mproc_lock_release(mproc_array_lock(a)));
    mproc_array_free(a);
}

static void test_array_bad_input(void **state)
{
    (void)state;
    mproc_array *a;
    assert_code(mproc_array_new(NULL, MPROC_TYPE_I8, 1, 0), -EINVAL);
    assert_code(mproc_array_new(&a, MPROC_TYPE_I8, 0, 0), -EINVAL);
    assert_code(mproc_array_new(&a, (mproc_type)0, 1, 0), -EINVAL);
    assert_code(mproc_array_new(&a, (mproc_type)11, 1, 0), -EINVAL);
    assert_code(mproc_array_new(&a, MPROC_TYPE_I8, 1, 1u << 5), -EINVAL);
    assert_code(mproc_array_new(&a, MPROC_TYPE_I64, SIZE_MAX / 4, 0), -EINVAL); /* overflow */
    assert_code(mproc_array_new(&a, MPROC_TYPE_I8, SIZE_MAX, 0), -EINVAL);

    assert_ok(mproc_array_new(&a, MPROC_TYPE_F64, 3, 0));
    int64_t i;
    double d;
    assert_code(mproc_array_get_i64(a, 3, &i), -EINVAL);
    assert_code(mproc_array_get_f64(a, SIZE_MAX, &d), -EINVAL);
    assert_code(mproc_array_set_i64(a, 3, 1), -EINVAL);
    assert_code(mproc_array_set_f64(a, 3, 1), -EINVAL);
    assert_code(mproc_array_add_i64(a, 3, 1, NULL), -EINVAL);
    assert_code(mproc_array_get_i64(a, 0, NULL), -EINVAL);
    assert_code(mproc_array_get_f64(a, 0, NULL), -EINVAL);
    assert_ok(mproc_array_add_i64(a, 2, 1, NULL)); /* out may be NULL */
    mproc_array_free(a);

    assert_code(mproc_array_get_i64(NULL, 0, &i), -EINVAL);
    assert_code(mproc_array_get_f64(NULL, 0, &d), -EINVAL);
    assert_code(mproc_array_set_i64(NULL, 0, 1), -EINVAL);
    assert_code(mproc_array_set_f64(NULL, 0, 1), -EINVAL);
    assert_code(mproc_array_add_i64(NULL, 0, 1, &i), -EINVAL);
    assert_null(mproc_array_data(NULL));
    assert_null(mproc_array_lock(NULL));
    assert_int_equal(mproc_array_len(NULL), 0);
    assert_int_equal(mproc_array_type(NULL), 0);
    mproc_array_free(NULL);
}

/* ---- fault injection: every failure leaves nothing behind -------------------------- */

#ifdef MPROC_FAULT_INJECTION
static void check_create_fails_clean(const char *point, int code, unsigned flags)
{
    int fds = count_fds();
    const char *name = fresh_name();
    mproc_shm *s = NULL;
    assert_ok(mproc_fault_set(point, MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = code}));
    assert_code(mproc_shm_new(&s, name, 1 << 16, MPROC_SHM_CREATE | flags), code);
    assert_null(s);
    assert_false(name_exists(name));
    assert_int_equal(count_fds(), fds);
    assert_ok(mproc_shm_new(&s, NULL, 1 << 16, 0)); /* the fault fired once only */
    mproc_shm_free(s);
    assert_ok(mproc_fault_clear());
}

static void test_fault_syscalls_leave_nothing(void **state)
{
    (void)state;
    check_create_fails_clean("sys.shm_open", -EMFILE, 0);
    check_create_fails_clean("sys.reserve", -ENOSPC, 0);
    check_create_fails_clean("sys.reserve", -ENOSPC, MPROC_SHM_AUTO_UNLINK);
    check_create_fails_clean("sys.mmap", -ENOMEM, 0);
    check_create_fails_clean("shm.create.named", -EIO, 0);
    check_create_fails_clean("shm.create.reserved", -EIO, 0);

    /* Anonymous blocks: memfd, reserve and mmap failures close the memfd. */
    const char *anon_points[] = {"sys.memfd", "sys.reserve", "sys.mmap"};
    for (size_t k = 0; k < MPROC__ARRAY_LEN(anon_points); k++) {
        int fds = count_fds();
        mproc_shm *s = NULL;
        assert_ok(mproc_fault_set(anon_points[k], MPROC_FAULT_FAIL,
                                  &(mproc_fault_opts){.code = -ENOMEM}));
        assert_code(mproc_shm_new(&s, NULL, 1 << 16, 0), -ENOMEM);
        assert_null(s);
        assert_int_equal(count_fds(), fds);
        assert_ok(mproc_fault_clear());
    }

    /* Random names: no random bytes, or a failure after the name was drawn, leave
     * nothing (no name, no fd, no memory: the ASan build checks the last). */
    const char *random_points[] = {"sys.random", "sys.shm_open", "sys.reserve", "sys.mmap"};
    for (size_t k = 0; k < MPROC__ARRAY_LEN(random_points); k++) {
        int fds = count_fds();
        int names = count_random_names();
        mproc_shm *s = NULL;
        assert_ok(
            mproc_fault_set(random_points[k], MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EIO}));
        assert_code(mproc_shm_new(&s, NULL, 4096, MPROC_SHM_CREATE | MPROC_SHM_NAMED), -EIO);
        assert_null(s);
        assert_int_equal(count_fds(), fds);
        assert_int_equal(count_random_names(), names);
        assert_ok(mproc_fault_clear());
    }

    /* Attach: a failed mmap closes the fd it opened. */
    const char *name = fresh_name();
    mproc_shm *a, *b = NULL;
    assert_ok(mproc_shm_new(&a, name, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK));
    int fds = count_fds();
    assert_ok(mproc_fault_set("sys.mmap", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -ENOMEM}));
    assert_code(mproc_shm_new(&b, name, 0, 0), -ENOMEM);
    assert_null(b);
    assert_int_equal(count_fds(), fds);
    mproc_shm_free(a);

    /* Typed arrays: a failed mapping is reported as is. */
    mproc_array *arr = NULL;
    assert_ok(mproc_fault_set("sys.mmap", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -ENOMEM}));
    assert_code(mproc_array_new(&arr, MPROC_TYPE_I32, 4, 0), -ENOMEM);
    assert_null(arr);
}

static void test_fault_alloc_every_step(void **state)
{
    (void)state;
    /* Fail the 1st, 2nd, ... allocation until creation succeeds (SQLite's loop). */
    int failures = 0;
    for (unsigned nth = 1; nth < 20; nth++) {
        const char *name = fresh_name();
        int fds = count_fds();
        mproc_shm *s = NULL;
        assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = nth}));
        int rc = mproc_shm_new(&s, name, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK);
        assert_ok(mproc_fault_clear());
        if (rc == 0) {
            mproc_shm_free(s);
            assert_false(name_exists(name));
            break;
        }
        failures++;
        assert_code(rc, -ENOMEM);
        assert_null(s);
        assert_false(name_exists(name));
        assert_int_equal(count_fds(), fds);
    }
    assert_true(failures >= 2); /* the handle and its name are both allocated */

    /* Arrays allocate nothing on the heap: an armed alloc failure does not matter. */
    mproc_array *a;
    assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.sticky = 1}));
    assert_ok(mproc_array_new(&a, MPROC_TYPE_U8, 16, 0));
    assert_ok(mproc_array_add_i64(a, 15, 3, NULL));
    mproc_array_free(a);
}

static int child_die_after_reserve(void *arg)
{
    mproc_fault_set("shm.create.reserved", MPROC_FAULT_KILL, NULL);
    mproc_shm *s;
    (void)mproc_shm_new(&s, arg, 4096, MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK);
    return 1;
}

static void test_fault_killed_mid_create(void **state)
{
    (void)state;
    const char *name = fresh_name();
    assert_int_equal(
        mproc_test_exitcode(mproc_test_fork(child_die_after_reserve, (void *)name), 10), -SIGKILL);
    /* Documented: killed between shm_open and mmap, the name stays; it is complete
     * (reserved) and attachable, and whoever knows the name removes it. */
    assert_true(name_exists(name));
    mproc_shm *s;
    assert_ok(mproc_shm_new(&s, name, 0, 0));
    assert_int_equal(mproc_shm_size(s), 4096);
    assert_ok(mproc_shm_unlink(s));
    mproc_shm_free(s);
}
#endif

/* A process that closed the block's fd (a pool worker keeps only the fds it was told)
 * and reused its number: free must not close what has that number now. */
static int free_without_fd(void *arg)
{
    mproc_shm *s = arg;
    int fd = mproc_shm_fd(s);
    int p[2];
    if (fd < 0 || pipe(p) < 0)
        return 1;
    if (dup2(p[0], fd) != fd) /* the number now names a pipe's read end */
        return 2;
    mproc_shm_free(s);
    return fcntl(fd, F_GETFD) >= 0 ? 0 : 3; /* still open */
}

static void test_free_after_fd_reused(void **state)
{
    (void)state;
    mproc_shm *s;
    assert_ok(mproc_shm_new(&s, NULL, 4096, 0));
    pid_t pid = mproc_test_fork(free_without_fd, s);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    mproc_shm_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_create_attach_unlink),
        MPROC_TEST(test_free_after_fd_reused),
        MPROC_TEST(test_exec_helper_attaches),
        MPROC_TEST(test_errors_and_bad_names),
        MPROC_TEST(test_auto_unlink),
        MPROC_TEST(test_unlink_never_removes_a_newer_block),
        MPROC_TEST(test_random_name),

        MPROC_TEST(test_killed_creator_leaves_name),
        MPROC_TEST(test_anonymous_shared_with_child),
        MPROC_TEST(test_full_devshm_is_enospc),
        MPROC_TEST(test_size_above_memory_limit),
        MPROC_TEST(test_shared_counter),
        MPROC_TEST(test_value_of_each_type),
        MPROC_TEST(test_array_nolock),
        MPROC_TEST(test_lock_holder_killed),
        MPROC_TEST(test_array_bad_input),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_fault_syscalls_leave_nothing),
        MPROC_TEST(test_fault_alloc_every_step),
        MPROC_TEST(test_fault_killed_mid_create),
#endif
    };
    return mproc_test_run(tests);
}
