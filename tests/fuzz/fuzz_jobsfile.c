/* tests/fuzz/fuzz_jobsfile.c - fuzz the parser of `mproc make`'s jobs files.
 *
 * The input is a jobs file. Every job the parser hands over has a name and at least one
 * command and every list is NULL-terminated; the file either parses or is refused with a
 * message that starts "FILE:LINE:COLUMN: " with LINE within the file. Nothing runs. Replayed on
 * every `make check` from corpus_jobsfile/ (see README.md here for fuzzing it).
 */
#include "../../cli/jobsfile.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checked in every build (assert would vanish under NDEBUG in the replay build). */
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_jobsfile: check failed: %s\n", #c);                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_job(struct cli_job *j, void *arg)
{
    (void)arg;
    CHECK(j->name != NULL && j->name[0] != '\0');
    CHECK(j->nrun > 0 && j->run[j->nrun] == NULL);
    CHECK(j->ndeps == 0 || j->deps[j->ndeps] == NULL);
    CHECK(j->nin == 0 || j->in[j->nin] == NULL);
    CHECK(j->nout == 0 || j->out[j->nout] == NULL);
    cli_job_release(j);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[600] = "";
    int rc = cli_jobs_parse((const char *)data, size, "F", check_job, NULL, err, sizeof err);
    if (rc == 0)
        return 0;
    CHECK(rc == -EINVAL || rc == -ENOMEM);
    if (rc == -EINVAL) {
        size_t line = 0, col = 0;
        CHECK(sscanf(err, "F:%zu:%zu: ", &line, &col) == 2);
        size_t lines = 1;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        CHECK(line >= 1 && line <= lines && col >= 1);
    }
    return 0;
}
