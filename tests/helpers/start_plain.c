/* tests/helpers/start_plain.c - a program that does it right: mproc_init first, then a
 * pool by spawn and one by the fork server, each mapping squares. Prints "ok" and exits 0
 * when both gave the right results. test_start runs it with stray MPROC_BOOT and
 * MPROC_FORKSERVER variables in its environment, which must change nothing. With
 * --server-at-init it only says whether a fork server runs right after mproc_init. */
#include "mproc.h"

#include <stdio.h>
#include <string.h>

static int square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    long long x;
    memcpy(&x, in, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

pid_t mproc__forkserver_pid(void); /* internal: does a fork server run? */

int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0)
        return 2;
    if (argc > 1 && strcmp(argv[1], "--server-at-init") == 0) {
        printf("server at init: %s\n", mproc__forkserver_pid() > 0 ? "yes" : "no");
        return 0;
    }
    const mproc_start_method methods[] = {MPROC_START_SPAWN, MPROC_START_FORKSERVER};
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        int rc = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = methods[k]});
        if (rc < 0) {
            printf("%s: %s\n", mproc_start_method_name(methods[k]), mproc_pool_message());
            return 3;
        }
        long long in[50], out[50];
        for (int i = 0; i < 50; i++)
            in[i] = i;
        rc = mproc_pool_map(p, square, in, 50, sizeof *in, out, sizeof *out, NULL);
        mproc_pool_free(p);
        for (int i = 0; rc == 0 && i < 50; i++)
            if (out[i] != (long long)i * i)
                rc = -1;
        if (rc < 0)
            return 4;
    }
    printf("ok\n");
    return 0;
}
