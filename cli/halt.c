/* cli/halt.c - GNU parallel's --halt rules, for mproc run and mproc make.
 *
 * --halt WHEN,fail|success|done=N or N%: after each job, count the jobs that failed,
 * succeeded or ended; at N (or N% of all the jobs) the run halts: soon, starting nothing
 * new, or now, ending the jobs running too. The exit status then is GNU parallel's: 0
 * for success=; the status of the one job when one job was enough (128 + its signal when
 * it was killed, as a shell reports it); else the number of jobs that failed (101 for
 * more than 100), or with N% the percentage of all the jobs that failed, rounded up.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int cli_halt_parse(const char *s, cli_halt *h)
{
    if (strcmp(s, "0") == 0 || strcmp(s, "never") == 0) {
        h->when = CLI_HALT_NEVER;
        return 0;
    }
    if (strcmp(s, "1") == 0 || strcmp(s, "2") == 0) { /* GNU's short forms */
        *h = (cli_halt){
            .when = s[0] == '1' ? CLI_HALT_SOON : CLI_HALT_NOW, .on = CLI_HALT_FAIL, .value = 1};
        return 0;
    }
    cli_halt n = {0};
    const char *comma = strchr(s, ',');
    if (!comma)
        return -1;
    size_t wl = (size_t)(comma - s);
    if (wl == 3 && strncmp(s, "now", 3) == 0)
        n.when = CLI_HALT_NOW;
    else if (wl == 4 && strncmp(s, "soon", 4) == 0)
        n.when = CLI_HALT_SOON;
    else
        return -1;
    const char *why = comma + 1;
    const char *eq = strchr(why, '=');
    if (!eq)
        return -1;
    size_t yl = (size_t)(eq - why);
    if (yl == 4 && strncmp(why, "fail", 4) == 0)
        n.on = CLI_HALT_FAIL;
    else if (yl == 7 && strncmp(why, "success", 7) == 0)
        n.on = CLI_HALT_SUCCESS;
    else if (yl == 4 && strncmp(why, "done", 4) == 0)
        n.on = CLI_HALT_DONE;
    else
        return -1;
    const char *num = eq + 1;
    size_t nl = strlen(num);
    char tmp[32];
    if (nl == 0 || nl >= sizeof tmp)
        return -1;
    memcpy(tmp, num, nl + 1);
    if (tmp[nl - 1] == '%') {
        tmp[nl - 1] = '\0';
        n.percent = 1;
    }
    char *end;
    errno = 0;
    long v = strtol(tmp, &end, 10);
    if (errno != 0 || end == tmp || *end != '\0' || v < 1 || v > (n.percent ? 100 : LONG_MAX))
        return -1;
    n.value = (double)v;
    *h = n;
    return 0;
}

int cli_failed_status(unsigned long failed, int percent, unsigned long of)
{
    if (percent)
        return of ? (int)((failed * 100 + of - 1) / of) : 0;
    return failed > CLI_EXIT_MAX_FAILED - 1 ? CLI_EXIT_MAX_FAILED : (int)failed;
}

int cli_halt_reached(const cli_halt *h, const cli_halt_counts *c, int exitval, int sig, int *status)
{
    if (h->when == CLI_HALT_NEVER)
        return 0;
    int failed = exitval != 0 || sig != 0;
    unsigned long count;
    if (h->on == CLI_HALT_FAIL) {
        if (!failed)
            return 0;
        count = c->failed;
    } else if (h->on == CLI_HALT_SUCCESS) {
        if (failed)
            return 0;
        count = c->succeeded;
    } else {
        count = c->finished;
    }
    double need = h->percent ? (double)c->all * h->value / 100.0 : h->value;
    if ((double)count < need)
        return 0;
    if (h->on == CLI_HALT_SUCCESS)
        *status = 0;
    else if (need == 1.0)
        *status = exitval != 0 ? exitval & 255 : sig ? 128 + sig : 0;
    else
        *status = cli_failed_status(c->failed, h->percent, c->all);
    return 1;
}
