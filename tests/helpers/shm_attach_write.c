/* tests/helpers/shm_attach_write.c - attach a named block and write to it.
 *
 * Usage: shm_attach_write NAME TEXT
 * Attaches the existing block NAME (whole size), checks that it starts zeroed where
 * TEXT will go, copies TEXT (with its NUL) to offset 0, frees the handle (the name
 * stays) and exits 0. Exit codes: 2 usage, 3 attach failed, 4 too small, 5 not zeroed.
 */
#include "mproc.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    mproc_shm *s;
    int rc = mproc_shm_new(&s, argv[1], 0, 0);
    if (rc < 0) {
        fprintf(stderr, "shm_attach_write: %s: %s\n", argv[1], mproc_strerror(rc));
        return 3;
    }
    size_t n = strlen(argv[2]) + 1;
    int code = 0;
    char *buf = mproc_shm_buf(s);
    if (mproc_shm_size(s) < n) {
        code = 4;
    } else {
        for (size_t i = 0; i < n && code == 0; i++)
            if (buf[i] != 0)
                code = 5;
        if (code == 0)
            memcpy(buf, argv[2], n);
    }
    mproc_shm_free(s);
    return code;
}
