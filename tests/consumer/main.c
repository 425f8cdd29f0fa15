/* A consumer of the installed library: one header, a child process, a queue. */
#include <mproc.h>

#include <stdio.h>
#include <string.h>

static mproc_queue *q;

static int child(void *arg)
{
    (void)arg;
    return mproc_queue_put(q, "hello", 5, 5.0) == 0 ? 0 : 1;
}

int main(void)
{
    mproc_process *p = NULL;
    char buf[16];
    size_t len = 0;
    int rc = mproc_queue_new(&q, NULL);
    if (rc == 0)
        rc = mproc_process_new(&p, child, NULL, NULL);
    if (rc == 0)
        rc = mproc_process_start(p);
    if (rc == 0)
        rc = mproc_queue_get_into(q, buf, sizeof buf, &len, 5.0);
    if (p != NULL)
        mproc_process_join(p, 5.0);
    mproc_process_free(p);
    mproc_queue_free(q);
    if (rc < 0 || len != 5 || memcmp(buf, "hello", 5) != 0) {
        fprintf(stderr, "consumer: %s\n", mproc_strerror(rc));
        return 1;
    }
    printf("consumer: got hello from a child; %d usable CPUs\n", mproc_cpu_usable());
    return 0;
}
