/* src/graph/graph.h - what the files of src/graph/ share: a graph and its jobs. */
#ifndef MPROC_GRAPH_INTERNAL_H
#define MPROC_GRAPH_INTERNAL_H

#include "mproc/graph.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum gjob_kind { GJOB_FN, GJOB_SHELL, GJOB_ARGV };

#define GH_LEN 16

/* What a job is given at add time and never changes (its name, dependency names, work,
 * files) lives in the graph's arena: chunks freed only with the graph, so a 100,000-job
 * graph is not 600,000 small allocations, each with its malloc header and rounding. */
struct garena {
    struct garena *next;
    size_t used, cap;
    unsigned char data[];
};

struct gjob {
    char *name;       /* arena */
    char **dep_names; /* arena: as given */
    size_t ndeps;
    size_t *deps;  /* resolved (mproc_graph_check): indices of the jobs it depends on */
    size_t *users; /* the jobs that depend on it */
    size_t nusers;
    enum gjob_kind kind;
    mproc_task_fn fn;
    unsigned char *input; /* arena, like every pointer down to task_id */
    size_t input_len, output_cap;
    char *command;            /* GJOB_SHELL: run as /bin/sh -c command */
    char **argv;              /* GJOB_ARGV: a copy (NULL-terminated) */
    char **inputs, **outputs; /* files (NULL-terminated) */
    size_t ninputs, noutputs;
    unsigned char *task_id; /* GJOB_FN: mproc_task_id */
    char **launcher;        /* its own (NULL-terminated), or NULL: the run's */
    size_t task_id_len;
    double timeout;
    unsigned retries;
    /* the run (src/graph/run.c) */
    unsigned char fp[GH_LEN];       /* its fingerprint, computed when it becomes ready */
    unsigned char parts[3][GH_LEN]; /* ... of: its work, its inputs, its upstream outputs */
    unsigned char out_hash[GH_LEN]; /* done: what its dependents' fingerprints take */
    bool up_to_date;                /* done from the state, not run */
    bool looked;                    /* the state was asked about it in this run */
    bool wanted;                    /* a target or upstream of one (every job without targets) */
    double started;                 /* when its last try began (wall clock, for the state) */
    double ended;                   /* ... and ended */
    int signal;                     /* a command killed by a signal */
    int status;                     /* mproc_job_status */
    int code;                       /* failed: its code */
    char *msg;                      /* failed: its message (NULL: none) */
    const char *why;                /* todo after a load: why it would run (a constant; msg wins) */
    unsigned char *out;             /* done: its output */
    size_t out_len;
    size_t waiting; /* dependencies not done yet */
    unsigned tries;
};

struct mproc_graph {
    struct gjob *jobs;
    size_t n, cap;
    struct garena *arena; /* the chunk being filled first */
    size_t *index;        /* name -> job: open addressing over job indices + 1 (0: empty) */
    size_t index_cap;
    bool checked; /* deps resolved since the last add */
    int stop;     /* mproc_graph_stop during a run: 1 start nothing new, 2 end what runs too */
    bool running; /* inside mproc_graph_run (stop is only meaningful then) */
    char err[512];
};

/* src/graph/hash.c: the fingerprints' 128-bit hash, streaming. */
struct gh {
    uint64_t a, b, len;
    unsigned char buf[8];
    size_t nbuf;
};
void mproc__gh_init(struct gh *h);
void mproc__gh_add(struct gh *h, const void *data, size_t len);
void mproc__gh_u64(struct gh *h, uint64_t v);
void mproc__gh_str(struct gh *h, const void *data, size_t len); /* framed: length first */
void mproc__gh_end(struct gh *h, unsigned char out[GH_LEN]);

/* src/graph/state.c: the state file (SQLite). */
struct gstate;
struct grow {   /* a job's row */
    int status; /* -1: never recorded */
    bool has_fp, has_parts;
    unsigned char parts[3][GH_LEN];
    unsigned char fp[GH_LEN], out_hash[GH_LEN];
    unsigned char *out; /* malloc'd */
    size_t out_len;
    int code;
    char *msg; /* malloc'd, or NULL */
    double started, ended;
};
/* Open (create) and lock the state; err: what went wrong. 0 or a code (see state.c). */
int mproc__state_open(struct gstate **out, const char *path, char *err, size_t n);
void mproc__state_close(struct gstate *st);
/* 1 and the row, 0 when the job was never recorded, or a negative code. */
int mproc__state_get(struct gstate *st, const char *name, struct grow *row);
/* Record j's outcome (committed when this returns). 0 or a code, with err. */
int mproc__state_put(struct gstate *st, const char *name, const struct gjob *j, double started,
                     double ended, char *err, size_t n);
/* Forget a job (it runs again next time). 0 or -EIO. */
int mproc__state_forget(struct gstate *st, const char *name);

/* Why a job is as it is: its message, else the reason a load found, else "". */
static inline const char *mproc__gjob_msg(const struct gjob *j)
{
    return j->msg != NULL ? j->msg : j->why != NULL ? j->why : "";
}

/* src/graph/guard.c: a process that ends the jobs' process groups if the runner dies. */
struct gguard;
int mproc__guard_start(struct gguard **out);              /* 0 or a code */
void mproc__guard_add(struct gguard *gd, pid_t group);    /* a job started (gd may be NULL) */
void mproc__guard_forget(struct gguard *gd, pid_t group); /* ... its leader is to be reaped */
void mproc__guard_stop(struct gguard *gd);                /* the run is over (NULL: no-op) */

/* src/graph/graph.c */
/* Kahn's order over the dependencies: order[0..returned) lists jobs upstream first;
 * left[i]: how many of job i's dependencies were not reached (nonzero only in or below a
 * cycle). Both arrays hold g->n entries. Needs the graph resolved (check). */
size_t mproc__graph_order(const mproc_graph *g, size_t *order, size_t *left);
/* Mark the jobs a run wants: these targets and everything upstream (all without). 0, or
 * -ENOENT with the unknown target named in g->err, -ENOMEM. */
int mproc__graph_want(mproc_graph *g, const char *const *targets, size_t n);
/* The job named name, or SIZE_MAX (after a check). */
size_t mproc__graph_find(const mproc_graph *g, const char *name);
__attribute__((format(printf, 2, 3))) void mproc__graph_say(mproc_graph *g, const char *fmt, ...);

#endif
