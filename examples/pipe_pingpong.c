/* examples/pipe_pingpong.c - two processes talking over a pipe.
 *
 * The parent sends "ping N", the child answers "pong N", ten times; then the
 * parent closes its end and the child sees end-of-file.
 *
 *   Python:  parent_conn, child_conn = Pipe()
 */
#include <mproc.h>

#include <stdio.h>
#include <string.h>

static mproc_conn *ends[2];

static int child(void *arg)
{
    (void)arg;
    mproc_conn_free(ends[0]); /* the parent's end */
    char msg[64];
    size_t len;
    int rc;
    while ((rc = mproc_conn_recv_into(ends[1], msg, sizeof msg - 1, &len, 10.0)) == 0) {
        msg[len] = 0;
        char reply[64];
        int n = snprintf(reply, sizeof reply, "pong%s", msg + 4);
        if (mproc_conn_send(ends[1], reply, (size_t)n, 10.0) < 0)
            return 1;
    }
    mproc_conn_free(ends[1]);
    return rc == -MPROC_EEOF ? 0 : 1; /* the parent closed: done */
}

int main(void)
{
    int rc = mproc_pipe_new(&ends[0], &ends[1], 0);
    if (rc < 0) {
        fprintf(stderr, "pipe_pingpong: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_process *p;
    rc = mproc_process_new(&p, child, NULL, NULL);
    if (rc == 0)
        rc = mproc_process_start(p);
    mproc_conn_free(ends[1]); /* the child's end */
    for (int i = 1; rc == 0 && i <= 10; i++) {
        char msg[64], reply[64];
        int n = snprintf(msg, sizeof msg, "ping %d", i);
        size_t len;
        rc = mproc_conn_send(ends[0], msg, (size_t)n, 10.0);
        if (rc == 0)
            rc = mproc_conn_recv_into(ends[0], reply, sizeof reply - 1, &len, 10.0);
        if (rc == 0) {
            reply[len] = 0;
            printf("sent \"%s\", got \"%s\"\n", msg, reply);
        }
    }
    mproc_conn_free(ends[0]); /* the child sees end-of-file and exits */
    int code = -1;
    if (p != NULL && mproc_process_join(p, 10.0) == 0)
        mproc_process_exitcode(p, &code);
    mproc_process_free(p);
    if (rc < 0 || code != 0) {
        fprintf(stderr, "pipe_pingpong: %s\n", rc < 0 ? mproc_strerror(rc) : "child failed");
        return 1;
    }
    return 0;
}
