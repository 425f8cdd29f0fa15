/* tests/graph_util.h - what the task-graph tests share: removing a test's directory and
 * asking SQLite whether a state file is intact. */
#ifndef MPROC_TEST_GRAPH_UTIL_H
#define MPROC_TEST_GRAPH_UTIL_H

#include "harness.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rmdir_all(const char *dir)
{
    assert_int_equal(nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* PRAGMA integrity_check on the state file at path: 0 when it says ok. */
static inline int integrity(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return -1;
    sqlite3_stmt *q;
    int ok = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            ok = strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0 ? 0 : -1;
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return ok;
}

/* ... on dir/state.db. */
static inline int integrity_in(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/state.db", dir);
    return integrity(path);
}

#endif
