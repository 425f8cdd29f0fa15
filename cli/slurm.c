/* cli/slurm.c - jobs placed by Slurm (`--slurm`): each job a step of the allocation.
 *
 * DESIGN (docs/slurm.md). Slurm is the engine: inside an allocation (SLURM_JOB_ID set,
 * under salloc or in an sbatch script) each job runs as `srun --exact -N1 -n1 ...`, a job
 * step on one CPU of the allocation, and everything else stays the scheduler's (run.c):
 * the output is srun's, captured and grouped per job; srun's exit status is the task's
 * (128 + N when a signal N ended it); a job we end gets SIGTERM, which srun forwards to
 * its step before it exits. Through Slurm's commands rather than libslurm: srun is what
 * a Slurm user runs by hand, is stable across Slurm versions (libslurm's API is not), and
 * needs nothing at build time.
 *
 * What only the step knows (the node it ran on) comes back as the first line of its
 * standard error, a marker that begins with the byte 0x1E; srun's own lines there
 * ("srun: error: NODE: task 0: Killed", slurmstepd's "CANCELLED ... DUE TO TIME LIMIT")
 * are taken out of the job's output and read (the signal that ended the task, a step
 * cancelled), but for Slurm's reason when it ended a step at its time or memory limit,
 * which stays in the job's standard error: it says why the job failed.
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARK "\036mproc-host "

long cli_slurm_cpus(void)
{
    const char *v = getenv("SLURM_NTASKS"); /* salloc -n N */
    if (v == NULL)
        v = getenv("SLURM_CPUS_ON_NODE");
    long n = v != NULL ? strtol(v, NULL, 10) : 0;
    return n > 0 ? n : 1;
}

long cli_slurm_slots(const cli_slurm_res *res)
{
    long per = res != NULL && res->cpus > 0 ? res->cpus : 1;
    long n = cli_slurm_cpus() / per;
    return n > 0 ? n : 1;
}

int cli_slurm_ready(void)
{
    if (getenv("SLURM_JOB_ID") != NULL)
        return 0;
    cli_error("--slurm: not inside a Slurm allocation (SLURM_JOB_ID is not set): run mproc "
              "under one ('salloc -n 8 mproc run --slurm ...', or from an sbatch script), or "
              "let it ask for one with --salloc 'OPTS'");
    return -1;
}

/* The wrapper's script: the marker, then the job. As `sh -c SCRIPT sh ARGS...`, "$@" is
 * the job's argv (a shell command is `/bin/sh -c CMD`). */
static const char wrapper[] = "printf '" MARK "%s\\n' \"$SLURMD_NODENAME\" >&2; exec \"$@\"";

enum { RES_TEXT = 160 }; /* room for each resource option's text */

char **cli_slurm_launcher(const cli_slurm_res *res, int mark, size_t more)
{
    static const char *const head[] = {"srun", "--exact", "-N1",
                                       "-n1",  "--quiet", "--job-name=mproc"};
    enum { NH = sizeof head / sizeof head[0] };
    static const char *const marker[] = {"/bin/sh", "-c", wrapper, "sh"};
    enum { NM = sizeof marker / sizeof marker[0] };
    size_t slots = NH + 3 + NM + more + 1; /* head, 3 resource options, marker, more, NULL */
    /* the array, then the text of the resource options, in one block */
    char **v = calloc(1, slots * sizeof *v + 3 * RES_TEXT);
    if (v == NULL)
        return NULL;
    char *text = (char *)(v + slots);
    size_t n = 0;
    for (; n < NH; n++)
        v[n] = (char *)head[n];
    if (res != NULL && res->cpus > 0) {
        snprintf(text, RES_TEXT, "--cpus-per-task=%ld", res->cpus);
        v[n++] = text;
    }
    if (res != NULL && res->mem != NULL) {
        snprintf(text + RES_TEXT, RES_TEXT, "--mem=%.150s", res->mem);
        v[n++] = text + RES_TEXT;
    }
    if (res != NULL && res->time != NULL) {
        snprintf(text + 2 * RES_TEXT, RES_TEXT, "--time=%.150s", res->time);
        v[n++] = text + 2 * RES_TEXT;
    }
    for (size_t k = 0; mark && k < NM; k++) /* then: sh -c 'mark; exec "$@"' sh ARGV... */
        v[n++] = (char *)marker[k];
    v[n] = NULL;
    return v;
}

int cli_slurm_take_host(char *out, size_t *len, char *host, size_t hostlen)
{
    size_t ml = sizeof MARK - 1;
    for (size_t at = 0; at + ml <= *len;) {
        char *nl = memchr(out + at, '\n', *len - at);
        size_t end = nl != NULL ? (size_t)(nl - out) + 1 : *len;
        if (memcmp(out + at, MARK, ml) == 0) {
            size_t hl = end - at - ml - (nl != NULL);
            if (hl >= hostlen)
                hl = hostlen - 1;
            memcpy(host, out + at + ml, hl);
            host[hl] = '\0';
            memmove(out + at, out + end, *len - end);
            *len -= end - at;
            return 1;
        }
        at = end;
    }
    return 0;
}

char **cli_slurm_argv(const cli_slurm_res *res, const char *shell_cmd)
{
    static const char *const tail[] = {"/bin/sh", "-c"};
    enum { NT = sizeof tail / sizeof tail[0] };
    char **v = cli_slurm_launcher(res, 1, NT + 1);
    if (v == NULL)
        return NULL;
    size_t n = 0;
    while (v[n] != NULL)
        n++;
    for (size_t k = 0; k < NT; k++)
        v[n++] = (char *)tail[k];
    v[n++] = (char *)shell_cmd;
    v[n] = NULL;
    return v;
}

int cli_slurm_mem_ok(const char *v)
{
    size_t d = strspn(v, "0123456789");
    return d > 0 && (v[d] == '\0' || (strchr("KMGT", v[d]) != NULL && v[d + 1] == '\0'));
}

int cli_slurm_time_ok(const char *v)
{
    return v[0] >= '0' && v[0] <= '9' && strspn(v, "0123456789:-") == strlen(v);
}

int cli_slurm_salloc(const char *opts, int argc, char **argv)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        cli_error("--salloc: cannot find this program: %s", strerror(errno));
        return -1;
    }
    self[len] = '\0';
    char *copy = strdup(opts);
    char **v = calloc(strlen(opts) / 2 + (size_t)argc + 4, sizeof *v);
    if (copy == NULL || v == NULL) {
        free(copy);
        free(v);
        cli_error("out of memory");
        return -1;
    }
    size_t n = 0;
    v[n++] = "salloc";
    for (char *w = strtok(copy, " \t"); w != NULL; w = strtok(NULL, " \t"))
        v[n++] = w; /* salloc's options, as a user would type them */
    v[n++] = self;
    for (int k = 0; k < argc; k++) /* "run" and its arguments: inside, SLURM_JOB_ID is set */
        v[n++] = argv[k];
    v[n] = NULL;
    fflush(NULL);
    execvp("salloc", v);
    cli_error("--salloc: cannot run salloc: %s", strerror(errno));
    free(copy);
    free(v);
    return -1;
}

/* A signal's number from the name srun gives it (strsignal's words), or 0. */
static int signal_named(const char *name, size_t n)
{
    for (int sig = 1; sig < NSIG; sig++) {
        const char *s = strsignal(sig);
        if (s != NULL && strlen(s) == n && strncmp(s, name, n) == 0)
            return sig;
    }
    return 0;
}

int cli_slurm_line(cli_slurm_step *st, const char *line, size_t n)
{
    size_t ml = sizeof MARK - 1;
    if (n >= ml && memcmp(line, MARK, ml) == 0) {
        size_t hl = n - ml;
        if (hl >= sizeof st->host)
            hl = sizeof st->host - 1;
        memcpy(st->host, line + ml, hl);
        st->host[hl] = '\0';
        while (hl > 0 && (st->host[hl - 1] == '\n' || st->host[hl - 1] == '\r'))
            st->host[--hl] = '\0';
        return 1;
    }
    if (n >= 6 && memcmp(line, "srun: ", 6) == 0) {
        size_t yl = n < sizeof st->why ? n : sizeof st->why - 1;
        memcpy(st->why, line, yl);
        while (yl > 0 && (st->why[yl - 1] == '\n' || st->why[yl - 1] == '\r'))
            yl--;
        st->why[yl] = '\0';
        /* "srun: error: NODE: task 0: Killed": the signal that ended the task */
        const char *t = memmem(line, n, ": task ", 7);
        const char *c = t != NULL ? memchr(t + 7, ':', n - (size_t)(t + 7 - line)) : NULL;
        if (c != NULL && c + 2 <= line + n) {
            const char *w = c + 2;
            size_t wl = (size_t)(line + n - w);
            while (wl > 0 && (w[wl - 1] == '\n' || w[wl - 1] == '\r'))
                wl--;
            int sig = signal_named(w, wl);
            if (sig != 0)
                st->sig = sig;
        }
        return 1;
    }
    if (n >= 10 && memcmp(line, "slurmstepd", 10) == 0) {
        if (memmem(line, n, "DUE TO TIME LIMIT", 17) != NULL) {
            st->time_limit = 1;
            return 0; /* Slurm's reason for the failure: the job's output keeps it */
        }
        if (memmem(line, n, "oom", 3) != NULL || memmem(line, n, "OOM", 3) != NULL)
            return 0; /* the same for its memory limit */
        if (memmem(line, n, "CANCELLED", 9) != NULL)
            st->cancelled = 1; /* scancel, or the allocation ended under it */
        return 1;
    }
    return 0;
}
