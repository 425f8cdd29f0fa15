/* cli/spool.h - a job's captured output, bounded in memory (cli/spool.c). */
#ifndef MPROC_CLI_SPOOL_H
#define MPROC_CLI_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "output.h"

/* Zero-initialise, then set fd = -1 (SPOOL_INIT). */
typedef struct spool {
    char *mem; /* the newest bytes, at most 64 KiB */
    size_t len, cap;
    int fd; /* the older bytes: an unlinked temporary file, or -1 */
    off_t flen;
} spool;

#define SPOOL_INIT                                                                                 \
    {                                                                                              \
        NULL, 0, 0, -1, 0                                                                          \
    }

/* Free space to read into: *p and *room > 0 (moving the memory to the file when it is
 * full). 0, or -ENOMEM / -errno of the temporary file (ENOSPC...). */
int spool_room(spool *s, char **p, size_t *room);
/* The directory spool files go to: $TMPDIR, or /tmp (for messages). */
const char *spool_dir(void);
/* n bytes were written at the pointer spool_room gave. */
void spool_commit(spool *s, size_t n);
size_t spool_size(const spool *s);
/* Write everything held (lines prefixed by tag when not NULL) and empty the spool. */
int spool_emit(spool *s, cli_out *o, int fd, const char *tag);
/* Write everything up to the last newline; keep the unfinished line. */
int spool_emit_lines(spool *s, cli_out *o, int fd, const char *tag);
/* Forget the contents (a retried job starts afresh). */
void spool_reset(spool *s);
void spool_release(spool *s);

#endif
