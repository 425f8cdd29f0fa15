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
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t mproc__sys_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

int mproc__sys_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return -EINVAL;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 0;
    char path[40];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno == ENOENT ? 0 : 1; /* no /proc: trust kill() */
    char buf[512];
    ssize_t n = mproc__sys_read(fd, buf, sizeof buf - 1);
    mproc__sys_close(fd);
    if (n <= 0)
        return n == 0 ? 0 : 1; /* an empty stat: the process is going away */
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold ')' itself, so find the last one. */
    char *close_paren = strrchr(buf, ')');
    if (close_paren == NULL || close_paren[1] != ' ' || close_paren[2] == '\0')
        return 1;
    char state = close_paren[2];
    return state == 'Z' || state == 'X' || state == 'x' ? 0 : 1;
}
