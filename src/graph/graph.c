/* src/graph/graph.c - building a task graph and checking it (see mproc/graph.h).
 *
 * DESIGN. Jobs live in one growing array, named through an open-addressing hash table
 * built by mproc_graph_check, which also resolves each job's dependency names to indices
 * and the reverse edges (users) the runner follows. Bad graphs are refused with a message
 * naming the jobs. Nothing is recursive: the cycle check is Kahn's algorithm (peel off
 * jobs whose dependencies are all peeled; what is left is in a cycle or downstream of
 * one), and a cycle to show is found by walking from a leftover job to a leftover
 * dependency until a job repeats, so a 100,000-long chain costs no stack.
 */
#include "graph/graph.h"

#include "mproc/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mproc__graph_say(mproc_graph *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
}

int mproc_graph_new(mproc_graph **out)
{
    if (out == NULL)
        return -EINVAL;
    mproc_graph *g = calloc(1, sizeof *g);
    if (g == NULL)
        return -ENOMEM;
    *out = g;
    return 0;
}

enum { ARENA_CHUNK = 64 * 1024 };

/* n bytes from g's arena, aligned to `align` (1 or 8); NULL when out of memory. */
static void *arena_alloc(mproc_graph *g, size_t n, size_t align)
{
    struct garena *a = g->arena;
    size_t at = a != NULL ? (a->used + align - 1) & ~(align - 1) : 0;
    if (a == NULL || at + n > a->cap) {
        size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK; /* a big one: a chunk its size */
        struct garena *c = malloc(sizeof *c + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        if (a != NULL && cap != ARENA_CHUNK) { /* keep filling the current chunk */
            c->next = a->next;
            a->next = c;
            c->used = n;
            return c->data;
        }
        c->next = a;
        g->arena = a = c;
        at = 0;
    }
    a->used = at + n;
    return a->data + at;
}

static char *arena_str(mproc_graph *g, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = arena_alloc(g, n, 1);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* A NULL-terminated copy of n strings, in the arena. */
static char **arena_strings(mproc_graph *g, const char *const *v, size_t n)
{
    char **d = arena_alloc(g, (n + 1) * sizeof *d, sizeof(void *));
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((d[i] = arena_str(g, v[i])) == NULL)
            return NULL;
    d[n] = NULL;
    return d;
}

static size_t argv_len(char *const *argv)
{
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    return n;
}

/* What a job holds outside the arena. */
static void job_release(struct gjob *j)
{
    free(j->deps);
    free(j->users);
    free(j->msg);
    free(j->out);
}

void mproc_graph_free(mproc_graph *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->n; i++)
        job_release(&g->jobs[i]);
    for (struct garena *a = g->arena, *next; a != NULL; a = next) {
        next = a->next;
        free(a);
    }
    free(g->jobs);
    free(g->index);
    free(g);
}

int mproc_graph_add(mproc_graph *g, const char *name, const mproc_job_opts *o)
{
    if (g == NULL)
        return -EINVAL;
    g->err[0] = '\0';
    if (name == NULL || name[0] == '\0' || o == NULL) {
        mproc__graph_say(g, "a job needs a name and its work");
        return -EINVAL;
    }
    int kinds = (o->fn != NULL) + (o->command != NULL) + (o->argv != NULL);
    if (kinds != 1 || (o->argv != NULL && o->argv[0] == NULL) ||
        (o->input == NULL && o->input_len > 0) || (o->deps == NULL && o->ndeps > 0) ||
        !(o->timeout >= 0)) {
        mproc__graph_say(g,
                         "job '%s': give exactly one of fn, command and argv (argv not "
                         "empty), an input for its length, a timeout >= 0",
                         name);
        return -EINVAL;
    }
    if ((o->inputs == NULL && o->ninputs > 0) || (o->outputs == NULL && o->noutputs > 0)) {
        mproc__graph_say(g, "job '%s': input or output files missing for their count", name);
        return -EINVAL;
    }
    for (size_t i = 0; i < o->ninputs; i++)
        if (o->inputs[i] == NULL) {
            mproc__graph_say(g, "job '%s': input file %zu is NULL", name, i);
            return -EINVAL;
        }
    for (size_t i = 0; i < o->noutputs; i++)
        if (o->outputs[i] == NULL) {
            mproc__graph_say(g, "job '%s': output file %zu is NULL", name, i);
            return -EINVAL;
        }
    for (size_t i = 0; i < o->ndeps; i++)
        if (o->deps[i] == NULL) {
            mproc__graph_say(g, "job '%s': dependency %zu is NULL", name, i);
            return -EINVAL;
        }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        struct gjob *v = realloc(g->jobs, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        g->jobs = v;
        g->cap = cap;
    }
    struct gjob j = {.fn = o->fn,
                     .input_len = o->input_len,
                     .output_cap = o->output_cap ? o->output_cap : (size_t)64 << 10,
                     .timeout = o->timeout,
                     .retries = o->retries,
                     .ndeps = o->ndeps};
    /* empty lists and inputs take no memory (NULL): a graph of 100,000 jobs is mostly
       small jobs */
    j.name = arena_str(g, name);
    j.dep_names = o->ndeps > 0 ? arena_strings(g, o->deps, o->ndeps) : NULL;
    j.input = o->input_len > 0 ? arena_alloc(g, o->input_len, sizeof(void *)) : NULL;
    j.ninputs = o->ninputs;
    j.noutputs = o->noutputs;
    j.inputs = o->ninputs > 0 ? arena_strings(g, o->inputs, o->ninputs) : NULL;
    j.launcher = o->launcher != NULL
                     ? arena_strings(g, (const char *const *)o->launcher, argv_len(o->launcher))
                     : NULL;
    j.outputs = o->noutputs > 0 ? arena_strings(g, o->outputs, o->noutputs) : NULL;
    if (o->fn != NULL) {
        j.kind = GJOB_FN;
        int rc = mproc_task_id(o->fn, NULL, 0, &j.task_id_len);
        if (rc == -MPROC_ETOOSMALL && (j.task_id = arena_alloc(g, j.task_id_len, 1)) == NULL)
            return -ENOMEM;
        if (j.task_id == NULL ||
            mproc_task_id(o->fn, j.task_id, j.task_id_len, &j.task_id_len) < 0) {
            mproc__graph_say(g, "job '%s': its function is in no loaded module", name);
            return -EINVAL;
        }
    } else if (o->command != NULL) {
        j.kind = GJOB_SHELL;
        j.command = arena_str(g, o->command);
    } else {
        j.kind = GJOB_ARGV;
        j.argv = arena_strings(g, (const char *const *)o->argv, argv_len(o->argv));
    }
    /* out of memory: what the arena gave this job stays there until the graph is freed */
    if (j.name == NULL || (o->ndeps > 0 && j.dep_names == NULL) ||
        (o->input_len > 0 && j.input == NULL) || (o->ninputs > 0 && j.inputs == NULL) ||
        (o->noutputs > 0 && j.outputs == NULL) || (j.kind == GJOB_SHELL && j.command == NULL) ||
        (j.kind == GJOB_ARGV && j.argv == NULL) || (o->launcher != NULL && j.launcher == NULL))
        return -ENOMEM;
    if (o->input_len > 0)
        memcpy(j.input, o->input, o->input_len);
    g->jobs[g->n++] = j;
    g->checked = false;
    return 0;
}

/* ---- the name index --------------------------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

size_t mproc__graph_find(const mproc_graph *g, const char *name)
{
    if (g->index == NULL)
        return SIZE_MAX;
    size_t mask = g->index_cap - 1;
    for (size_t at = (size_t)hash_name(name) & mask;; at = (at + 1) & mask) {
        size_t v = g->index[at];
        if (v == 0)
            return SIZE_MAX;
        if (strcmp(g->jobs[v - 1].name, name) == 0)
            return v - 1;
    }
}

/* Index every job by name; a second job with a name is reported (-EINVAL). */
static int build_index(mproc_graph *g)
{
    size_t cap = 16;
    while (cap < 2 * g->n)
        cap *= 2;
    size_t *index = calloc(cap, sizeof *index);
    if (index == NULL)
        return -ENOMEM;
    free(g->index);
    g->index = index;
    g->index_cap = cap;
    for (size_t i = 0; i < g->n; i++) {
        size_t at = (size_t)hash_name(g->jobs[i].name) & (cap - 1);
        for (; index[at] != 0; at = (at + 1) & (cap - 1))
            if (strcmp(g->jobs[index[at] - 1].name, g->jobs[i].name) == 0) {
                mproc__graph_say(g, "two jobs are named '%s'", g->jobs[i].name);
                return -EINVAL;
            }
        index[at] = i + 1;
    }
    return 0;
}

/* ---- checking ---------------------------------------------------------------------------- */

/* Resolve dependency names to indices and build the reverse edges. */
static int resolve(mproc_graph *g)
{
    size_t *nusers = calloc(g->n ? g->n : 1, sizeof *nusers);
    if (nusers == NULL)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < g->n && rc == 0; i++) {
        struct gjob *j = &g->jobs[i];
        free(j->deps);
        j->deps = j->ndeps > 0 ? malloc(j->ndeps * sizeof *j->deps) : NULL;
        if (j->ndeps > 0 && j->deps == NULL) {
            rc = -ENOMEM;
            break;
        }
        for (size_t k = 0; k < j->ndeps; k++) {
            size_t d = mproc__graph_find(g, j->dep_names[k]);
            if (d == SIZE_MAX) {
                mproc__graph_say(g, "job '%s' depends on '%s', which is not a job", j->name,
                                 j->dep_names[k]);
                rc = -EINVAL;
                break;
            }
            j->deps[k] = d;
            nusers[d]++;
        }
    }
    for (size_t i = 0; i < g->n && rc == 0; i++) {
        struct gjob *j = &g->jobs[i];
        free(j->users);
        j->users = nusers[i] > 0 ? malloc(nusers[i] * sizeof *j->users) : NULL;
        j->nusers = 0;
        if (nusers[i] > 0 && j->users == NULL)
            rc = -ENOMEM;
    }
    for (size_t i = 0; i < g->n && rc == 0; i++)
        for (size_t k = 0; k < g->jobs[i].ndeps; k++) {
            struct gjob *d = &g->jobs[g->jobs[i].deps[k]];
            d->users[d->nusers++] = i;
        }
    free(nusers);
    return rc;
}

size_t mproc__graph_order(const mproc_graph *g, size_t *order, size_t *left)
{
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < g->n; i++) {
        left[i] = g->jobs[i].ndeps;
        if (left[i] == 0)
            order[tail++] = i;
    }
    while (head < tail) {
        const struct gjob *j = &g->jobs[order[head++]];
        for (size_t k = 0; k < j->nusers; k++)
            if (--left[j->users[k]] == 0)
                order[tail++] = j->users[k];
    }
    return tail;
}

/* Kahn's algorithm; on a cycle, say one. */
static int find_cycle(mproc_graph *g)
{
    size_t *left = malloc((g->n ? g->n : 1) * sizeof *left);   /* deps not peeled */
    size_t *queue = malloc((g->n ? g->n : 1) * sizeof *queue); /* peeled, in order */
    if (left == NULL || queue == NULL) {
        free(left);
        free(queue);
        return -ENOMEM;
    }
    size_t tail = mproc__graph_order(g, queue, left);
    int rc = 0;
    if (tail < g->n) {
        /* every job left has a dependency left: walk them until one repeats. queue is
           reused as the walk's order (SIZE_MAX: not on the walk yet). */
        for (size_t i = 0; i < g->n; i++)
            queue[i] = SIZE_MAX;
        size_t at = 0;
        while (left[at] == 0)
            at++;
        size_t step = 0;
        while (queue[at] == SIZE_MAX) {
            queue[at] = step++;
            const struct gjob *j = &g->jobs[at];
            size_t next = SIZE_MAX;
            for (size_t k = 0; k < j->ndeps && next == SIZE_MAX; k++)
                if (left[j->deps[k]] != 0)
                    next = j->deps[k];
            at = next; /* exists: at is left, so one of its dependencies is */
        }
        /* the cycle starts at `at`: follow it once more, writing the names */
        size_t len = 0, start = at;
        len += (size_t)snprintf(g->err, sizeof g->err, "a cycle of dependencies: %s",
                                g->jobs[start].name);
        do {
            const struct gjob *j = &g->jobs[at];
            size_t next = SIZE_MAX;
            for (size_t k = 0; k < j->ndeps && next == SIZE_MAX; k++)
                if (left[j->deps[k]] != 0) /* the walk's own rule: it comes back */
                    next = j->deps[k];
            at = next;
            if (len < sizeof g->err)
                len +=
                    (size_t)snprintf(g->err + len, sizeof g->err - len, " -> %s", g->jobs[at].name);
        } while (at != start);
        if (len < sizeof g->err)
            (void)snprintf(g->err + len, sizeof g->err - len, " (each needs the next)");
        rc = -EINVAL;
    }
    free(left);
    free(queue);
    return rc;
}

int mproc_graph_check(mproc_graph *g)
{
    if (g == NULL)
        return -EINVAL;
    g->err[0] = '\0';
    int rc = build_index(g);
    if (rc == 0)
        rc = resolve(g);
    if (rc == 0)
        rc = find_cycle(g);
    if (rc == -ENOMEM)
        mproc__graph_say(g, "out of memory checking the graph");
    g->checked = rc == 0;
    return rc;
}

const char *mproc_graph_error(const mproc_graph *g)
{
    return g != NULL ? g->err : "";
}

const char *mproc_job_status_name(int status)
{
    switch (status) {
    case MPROC_JOB_TODO:
        return "todo";
    case MPROC_JOB_RUNNING:
        return "in progress";
    case MPROC_JOB_DONE:
        return "done";
    case MPROC_JOB_FAILED:
        return "failed";
    case MPROC_JOB_BLOCKED:
        return "blocked";
    default:
        return "?";
    }
}

int mproc_graph_counts_get(const mproc_graph *g, mproc_graph_counts *c)
{
    if (g == NULL || c == NULL)
        return -EINVAL;
    *c = (mproc_graph_counts){0};
    for (size_t i = 0; i < g->n; i++) {
        switch (g->jobs[i].status) {
        case MPROC_JOB_TODO:
            c->todo++;
            break;
        case MPROC_JOB_RUNNING:
            c->running++;
            break;
        case MPROC_JOB_DONE:
            c->done++;
            c->up_to_date += g->jobs[i].up_to_date;
            break;
        case MPROC_JOB_FAILED:
            c->failed++;
            break;
        default:
            c->blocked++;
            break;
        }
    }
    return 0;
}

static const struct gjob *job_named(const mproc_graph *g, const char *name)
{
    if (g->checked) {
        size_t i = mproc__graph_find(g, name);
        return i == SIZE_MAX ? NULL : &g->jobs[i];
    }
    for (size_t i = 0; i < g->n; i++) /* not indexed since the last add */
        if (strcmp(g->jobs[i].name, name) == 0)
            return &g->jobs[i];
    return NULL;
}

int mproc_graph_status(const mproc_graph *g, const char *name, int *code, const char **msg)
{
    if (g == NULL || name == NULL)
        return -EINVAL;
    const struct gjob *j = job_named(g, name);
    if (j == NULL)
        return -ENOENT;
    if (code != NULL)
        *code = j->status == MPROC_JOB_FAILED ? j->code : 0;
    if (msg != NULL)
        *msg = mproc__gjob_msg(j);
    return j->status;
}

int mproc_graph_output(const mproc_graph *g, const char *name, const void **data, size_t *len)
{
    if (g == NULL || name == NULL || data == NULL || len == NULL)
        return -EINVAL;
    const struct gjob *j = job_named(g, name);
    if (j == NULL)
        return -ENOENT;
    if (j->status != MPROC_JOB_DONE)
        return -MPROC_ESTATE;
    *data = j->out;
    *len = j->out_len;
    return 0;
}

int mproc__graph_want(mproc_graph *g, const char *const *targets, size_t n)
{
    for (size_t i = 0; i < g->n; i++)
        g->jobs[i].wanted = n == 0;
    if (n == 0)
        return 0;
    size_t *stack = malloc(g->n * sizeof *stack), top = 0;
    if (stack == NULL)
        return -ENOMEM;
    for (size_t t = 0; t < n; t++) {
        size_t i = targets[t] != NULL ? mproc__graph_find(g, targets[t]) : SIZE_MAX;
        if (i == SIZE_MAX) {
            mproc__graph_say(g, "no job is named '%s'", targets[t] != NULL ? targets[t] : "");
            free(stack);
            return -ENOENT;
        }
        if (!g->jobs[i].wanted) {
            g->jobs[i].wanted = true;
            stack[top++] = i;
        }
    }
    while (top > 0) { /* upstream, with an explicit stack */
        const struct gjob *j = &g->jobs[stack[--top]];
        for (size_t k = 0; k < j->ndeps; k++)
            if (!g->jobs[j->deps[k]].wanted) {
                g->jobs[j->deps[k]].wanted = true;
                stack[top++] = j->deps[k];
            }
    }
    free(stack);
    return 0;
}

int mproc_graph_job(const mproc_graph *g, size_t i, mproc_job_info *info)
{
    if (g == NULL || info == NULL)
        return -EINVAL;
    if (i >= g->n)
        return -ENOENT;
    const struct gjob *j = &g->jobs[i];
    *info = (mproc_job_info){.name = j->name,
                             .status = j->status,
                             .code = j->status == MPROC_JOB_FAILED ? j->code : 0,
                             .msg = mproc__gjob_msg(j),
                             .up_to_date = j->up_to_date,
                             .deps = (const char *const *)j->dep_names,
                             .ndeps = j->ndeps,
                             .index = i,
                             .started = j->started,
                             .runtime = j->ended > j->started ? j->ended - j->started : 0,
                             .signal = j->signal,
                             .command = j->kind == GJOB_SHELL  ? j->command
                                        : j->kind == GJOB_ARGV ? j->argv[0]
                                                               : NULL,
                             .argv = j->kind == GJOB_ARGV ? j->argv : NULL};
    return 0;
}
