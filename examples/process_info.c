/* examples/process_info.c - run a function in a child process.
 *
 * The tutorials' first exercise: a function prints the pid of the process running
 * it and of its parent; run it in the parent, then in a child with mproc_process.
 *
 *   Python:  p = Process(target=info, args=("child",)); p.start(); p.join()
 */
#include <mproc.h>

#include <stdio.h>
#include <unistd.h>

static int info(void *title)
{
    printf("%s: pid %d, parent pid %d\n", (const char *)title, (int)getpid(), (int)getppid());
    return 0;
}

int main(void)
{
    info("main");

    mproc_process *p;
    int rc = mproc_process_new(&p, info, "child", &(mproc_process_opts){.name = "info"});
    if (rc == 0)
        rc = mproc_process_start(p);
    if (rc == 0)
        rc = mproc_process_join(p, MPROC_FOREVER);
    int code = -1;
    if (rc == 0 && mproc_process_exitcode(p, &code) == 1)
        printf("%s (pid %d) exited with code %d\n", mproc_process_name(p),
               (int)mproc_process_pid(p), code);
    mproc_process_free(p);
    if (rc < 0) {
        fprintf(stderr, "process_info: %s\n", mproc_strerror(rc));
        return 1;
    }
    return code == 0 ? 0 : 1;
}
