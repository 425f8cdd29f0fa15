/* src/graph/graph.h - what the files of src/graph/ share: a graph and its jobs. */
#ifndef MPROC_GRAPH_INTERNAL_H
#define MPROC_GRAPH_INTERNAL_H

#include "mproc/graph.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum gjob_kind { GJOB_FN, GJOB_SHELL, GJOB_ARGV };

struct gjob {
    char *name;
    char **dep_names; /* as given */
    size_t ndeps;
    size_t *deps;  /* resolved (mproc_graph_check): indices of the jobs it depends on */
    size_t *users; /* the jobs that depend on it */
    size_t nusers;
    enum gjob_kind kind;
    mproc_task_fn fn;
    unsigned char *input;
    size_t input_len, output_cap;
    char **argv; /* GJOB_SHELL: {"/bin/sh", "-c", command}; GJOB_ARGV: a copy */
    double timeout;
    unsigned retries;
    /* the run (src/graph/run.c) */
    int status;         /* mproc_job_status */
    int code;           /* failed: its code */
    char *msg;          /* failed: its message (NULL: none) */
    unsigned char *out; /* done: its output */
    size_t out_len;
    size_t waiting; /* dependencies not done yet */
    unsigned tries;
};

struct mproc_graph {
    struct gjob *jobs;
    size_t n, cap;
    size_t *index; /* name -> job: open addressing over job indices + 1 (0: empty) */
    size_t index_cap;
    bool checked; /* deps resolved since the last add */
    char err[512];
};

/* src/graph/graph.c */
/* The job named name, or SIZE_MAX (after a check). */
size_t mproc__graph_find(const mproc_graph *g, const char *name);
__attribute__((format(printf, 2, 3))) void mproc__graph_say(mproc_graph *g, const char *fmt, ...);

#endif
