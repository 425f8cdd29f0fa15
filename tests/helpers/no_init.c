/* tests/helpers/no_init.c - a program that uses the spawn or forkserver start method but
 * never calls mproc_init. Run as `no_init METHOD [INIT_TIMEOUT]`: it makes a pool of 2
 * workers by METHOD and prints "CODE|MESSAGE" of mproc_pool_new (a pool made is used and
 * freed). Its copies started as workers or as the fork server run main() again with no
 * arguments: each tries to make a pool too (the fork bomb a missing mproc_init could
 * start) and, with NO_INIT_HANG set, then sleeps instead of returning. */
#include "mproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) { /* a copy started as a worker or server */
        mproc_pool *p;
        if (mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = MPROC_START_SPAWN}) == 0) {
            mproc_pool_free(p);
            return 99; /* it should have refused: this process never reached mproc_init */
        }
        if (getenv("NO_INIT_HANG") != NULL)
            sleep(60);
        return 0;
    }
    mproc_start_method m =
        strcmp(argv[1], "spawn") == 0 ? MPROC_START_SPAWN : MPROC_START_FORKSERVER;
    mproc_pool *p;
    int rc = mproc_pool_new(
        &p,
        &(mproc_pool_opts){.workers = 2, .start = m, .init_timeout = argc > 2 ? atof(argv[2]) : 0});
    if (rc == 0)
        mproc_pool_free(p);
    printf("%s|%s\n", mproc_errname(rc), rc == 0 ? "" : mproc_pool_message());
    return 0;
}
