/* src/sys/liveness.c - thread ids and process liveness probes.
 *
 * kill(pid, 0) tells whether a pid exists, but a process that died and has not been
 * reaped yet (a zombie) still exists. Its parent may be busy (or be us, waiting on a
 * barrier), so we also read the state letter in /proc/<pid>/stat: 'Z' (zombie) and
 * 'X' (dead) count as dead. Without /proc we fall back to kill() alone.
 */
#include "internal.h"

#include "sys/liveness.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t mproc__sys_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

int mproc__sys_proc_stat(pid_t pid, char *state, unsigned long long *start)
{
    char path[40], buf[1024];
    if (pid == 0) /* this process: no formatting (a new child would fault in printf's pages) */
        strcpy(path, "/proc/self/stat");
    else
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int n = mproc__sys_read_text(path, buf, sizeof buf);
    if (n < 0)
        return n == -ESRCH ? -ENOENT : n;
    if (n == 0)
        return -ENOENT; /* the process is going away */
    /* "pid (comm) S ppid ...": comm may hold ')' itself, so find the last one. The state
     * is field 3, the start time field 22. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ' || p[2] == '\0')
        return -EPROTO;
    *state = p[2];
    p += 2;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -EPROTO;
        p++;
    }
    unsigned long long v = 0;
    const char *d = p;
    for (; *d >= '0' && *d <= '9'; d++) {
        if (v > (ULLONG_MAX - 9) / 10)
            return -EPROTO;
        v = v * 10 + (unsigned long long)(*d - '0');
    }
    if (d == p)
        return -EPROTO;
    *start = v;
    return 0;
}

int mproc__sys_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return -EINVAL;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 0;
    char state;
    unsigned long long start;
    int rc = mproc__sys_proc_stat(pid, &state, &start);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return 1; /* no /proc, or unreadable: trust kill() */
    return state == 'Z' || state == 'X' || state == 'x' ? 0 : 1;
}
