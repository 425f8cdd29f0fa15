/* src/graph/state.c - a task graph's state in SQLite: what each job was built from and
 * what came out, so a re-run does only what changed and a crash loses nothing finished.
 *
 * DESIGN. One table, one row per job (schema version in PRAGMA user_version, checked:
 * a file from a newer mproc is refused, never rewritten). The runner is the only writer:
 * it holds an flock on the file for the whole run, which the kernel releases if it dies
 * (a second runner is refused at once; nobody ever has to "unlock"). WAL mode with
 * synchronous=NORMAL and SQLite's exclusive locking (the flock already makes the file
 * ours): every outcome is its own transaction, committed as it arrives, and a committed
 * transaction survives the runner being killed at any instant (not a power cut: that
 * would need an fsync per job). A job is recorded only once it has an outcome:
 * what was in flight at a kill is simply not there, and runs again.
 *
 * What is refused with a message, never papered over with a fresh start: a file that is
 * not an SQLite database or is damaged, a newer schema, a file this process cannot write,
 * a full disk (the failed commit stops the run).
 */
#include "graph/graph.h"

#include "mproc/error.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define SCHEMA 2 /* 2: the fingerprint's parts (1 is brought up to it) */

struct gstate {
    sqlite3 *db;
    int lock_fd;
    sqlite3_stmt *get, *put;
};

static int fail(char *err, size_t n, int code, const char *fmt, const char *path, const char *why)
{
    snprintf(err, n, fmt, path, why);
    return code;
}

void mproc__state_close(struct gstate *st)
{
    if (st == NULL)
        return;
    sqlite3_finalize(st->get);
    sqlite3_finalize(st->put);
    sqlite3_close(st->db);
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* after SQLite let go of the file: its locks are POSIX locks */
    free(st);
}

/* Map an SQLite failure to a code and say it. */
static int db_fail(struct gstate *st, char *err, size_t n, const char *path, int rc)
{
    const char *why = sqlite3_errmsg(st->db);
    int prim = rc & 0xff;
    if (prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT)
        return fail(err, n, -MPROC_ECORRUPT,
                    "state file %s is damaged or not an mproc state (%s): nothing was run; "
                    "move it away to start afresh",
                    path, why);
    if (prim == SQLITE_READONLY || prim == SQLITE_PERM || prim == SQLITE_CANTOPEN)
        return fail(err, n, -EACCES, "state file %s cannot be written (%s)", path, why);
    if (prim == SQLITE_FULL)
        return fail(err, n, -ENOSPC, "state file %s: the disk is full (%s)", path, why);
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return fail(err, n, -EBUSY, "state file %s is in use (%s)", path, why);
    if (prim == SQLITE_NOMEM)
        return fail(err, n, -ENOMEM, "state file %s: %s", path, why);
    return fail(err, n, -EIO, "state file %s: %s", path, why);
}

int mproc__state_open(struct gstate **out, const char *path, char *err, size_t n)
{
    struct gstate *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0) {
        int e = errno;
        free(st);
        return fail(err, n, -e, "cannot open state file %s: %s", path, strerror(e));
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(st->lock_fd);
        free(st);
        return e == EWOULDBLOCK
                   ? fail(err, n, -EBUSY, "state file %s is in use by another run%s", path, "")
                   : fail(err, n, -e, "cannot lock state file %s: %s", path, strerror(e));
    }
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK && sqlite3_db_readonly(st->db, "main") == 1)
        rc = SQLITE_READONLY;
    int version = -1;
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(st->db, 1000);
    /* the flock makes us the file's only user: SQLite may hold its locks for the whole
       connection and keep the WAL's index in memory (no -shm file, no lock calls per
       statement: a no-op re-run of 10,000 jobs made 20,000 of them). Set before the first
       access, as SQLite needs it. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "PRAGMA locking_mode=EXCLUSIVE;", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *q;
        rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(q);
            if (rc == SQLITE_ROW) {
                version = sqlite3_column_int(q, 0);
                rc = SQLITE_OK;
            }
            sqlite3_finalize(q);
        }
    }
    if (rc == SQLITE_OK && version > SCHEMA) {
        char why[64];
        snprintf(why, sizeof why, "%d, this mproc knows %d", version, SCHEMA);
        mproc__state_close(st);
        return fail(err, n, -EPROTO,
                    "state file %s was written by a newer mproc (schema %s): nothing was run", path,
                    why);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "CREATE TABLE IF NOT EXISTS jobs(name TEXT PRIMARY KEY,"
                          " status INTEGER NOT NULL, fingerprint BLOB, out_hash BLOB,"
                          " started REAL, ended REAL, code INTEGER, msg TEXT, output BLOB,"
                          " parts BLOB);",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && version == 1) /* schema 1 had no parts: add the column */
        rc = sqlite3_exec(st->db, "ALTER TABLE jobs ADD COLUMN parts BLOB;", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "PRAGMA user_version=2;", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db,
                                "SELECT status, fingerprint, out_hash, output, code, msg, started, "
                                "ended, parts FROM jobs "
                                "WHERE name = ?1",
                                -1, &st->get, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db,
                                "INSERT OR REPLACE INTO jobs(name, status, fingerprint, "
                                "out_hash, started, ended, code, msg, output, parts) "
                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                                -1, &st->put, NULL);
    if (rc != SQLITE_OK) {
        int code = db_fail(st, err, n, path, rc);
        mproc__state_close(st);
        return code;
    }
    *out = st;
    return 0;
}

int mproc__state_get(struct gstate *st, const char *name, struct grow *row)
{
    *row = (struct grow){.status = -1};
    sqlite3_reset(st->get);
    sqlite3_bind_text(st->get, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st->get);
    if (rc == SQLITE_DONE)
        return 0; /* never recorded */
    if (rc != SQLITE_ROW)
        return -EIO;
    row->status = sqlite3_column_int(st->get, 0);
    const void *fp = sqlite3_column_blob(st->get, 1);
    if (fp != NULL && sqlite3_column_bytes(st->get, 1) == GH_LEN) {
        memcpy(row->fp, fp, GH_LEN);
        row->has_fp = true;
    }
    const void *oh = sqlite3_column_blob(st->get, 2);
    if (oh != NULL && sqlite3_column_bytes(st->get, 2) == GH_LEN)
        memcpy(row->out_hash, oh, GH_LEN);
    const void *out = sqlite3_column_blob(st->get, 3);
    int len = sqlite3_column_bytes(st->get, 3);
    if (len > 0) {
        row->out = malloc((size_t)len);
        if (row->out == NULL)
            return -ENOMEM;
        memcpy(row->out, out, (size_t)len);
        row->out_len = (size_t)len;
    }
    row->code = sqlite3_column_int(st->get, 4);
    const unsigned char *msg = sqlite3_column_text(st->get, 5);
    if (msg != NULL) {
        size_t ml = strlen((const char *)msg) + 1;
        row->msg = malloc(ml);
        if (row->msg == NULL)
            return -ENOMEM;
        memcpy(row->msg, msg, ml);
    }
    row->started = sqlite3_column_double(st->get, 6);
    row->ended = sqlite3_column_double(st->get, 7);
    const void *parts = sqlite3_column_blob(st->get, 8);
    if (parts != NULL && sqlite3_column_bytes(st->get, 8) == (int)sizeof row->parts) {
        memcpy(row->parts, parts, sizeof row->parts);
        row->has_parts = true;
    }
    sqlite3_reset(st->get);
    return 1;
}

int mproc__state_forget(struct gstate *st, const char *name)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(st->db, "DELETE FROM jobs WHERE name = ?1", -1, &q, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        sqlite3_finalize(q);
    }
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int mproc__state_put(struct gstate *st, const char *name, const struct gjob *j, double started,
                     double ended, char *err, size_t n)
{
    sqlite3_stmt *q = st->put;
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, j->status);
    sqlite3_bind_blob(q, 3, j->fp, GH_LEN, SQLITE_STATIC);
    if (j->status == MPROC_JOB_DONE)
        sqlite3_bind_blob(q, 4, j->out_hash, GH_LEN, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 4);
    sqlite3_bind_double(q, 5, started);
    sqlite3_bind_double(q, 6, ended);
    sqlite3_bind_int(q, 7, j->code);
    if (j->msg != NULL)
        sqlite3_bind_text(q, 8, j->msg, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 8);
    if (j->out_len > 0)
        sqlite3_bind_blob64(q, 9, j->out, j->out_len, SQLITE_STATIC);
    else
        sqlite3_bind_zeroblob(q, 9, 0);
    sqlite3_bind_blob(q, 10, j->parts, (int)sizeof j->parts, SQLITE_STATIC);
    int rc = sqlite3_step(q); /* autocommit: the outcome is committed when this returns */
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (rc != SQLITE_DONE)
        return db_fail(st, err, n, sqlite3_db_filename(st->db, "main"), rc);
    return 0;
}
