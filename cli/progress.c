/* cli/progress.c - the progress line of `mproc run --bar` / `--eta` on standard error.
 *
 * DESIGN: one line, redrawn in place ("\r", then the text, then "erase to the end of
 * the line") at most ten times a second, by the scheduler's loop (which wakes at least
 * that often while the line is shown) and after each finished job. It shows the jobs
 * done out of the total, the rate since the start and the time left at that rate. The
 * input is read lazily, so the total is known only once it is exhausted: until then it
 * is "?", and so are the percentage and the time left, as GNU parallel shows them. The
 * width follows the terminal (TIOCGWINSZ on stderr), 80 columns when it is not one.
 * Before a job's output is written the line is erased, so that output never lands
 * after the bar's text; the next drawing puts the line back under it.
 * Nothing here waits or starts anything; a failed write is ignored (the line is
 * cosmetic, the jobs' own output is what counts).
 */
#include <mproc.h>

#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_start(cli_progress *p, int mode)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->t0 = now_mono();
    p->last = -1;
}

static void fmt_time(char *b, size_t n, double s)
{
    if (!(s >= 0) || s > 359999)
        snprintf(b, n, "?");
    else if (s >= 3600)
        snprintf(b, n, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(b, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

int cli_progress_format(char *buf, size_t n, int mode, int width, unsigned long done,
                        unsigned long total, int known, double elapsed)
{
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char eta[32], tot[32], pct[8];
    if (known && total > 0 && rate > 0)
        fmt_time(eta, sizeof eta, (double)(total - (done < total ? done : total)) / rate);
    else if (known && done >= total)
        fmt_time(eta, sizeof eta, 0);
    else
        snprintf(eta, sizeof eta, "?");
    if (known) {
        snprintf(tot, sizeof tot, "%lu", total);
        snprintf(pct, sizeof pct, "%3d%%",
                 total ? (int)((double)(done < total ? done : total) * 100.0 / (double)total)
                       : 100);
    } else {
        snprintf(tot, sizeof tot, "?");
        snprintf(pct, sizeof pct, "  ?%%");
    }
    int l = snprintf(buf, n, "%s %lu/%s done, %.1f jobs/s, ETA %s", pct, done, tot, rate, eta);
    if (l < 0 || (size_t)l >= n)
        return l < 0 ? 0 : (int)n - 1;
    if (mode != CLI_PROGRESS_BAR)
        return l;
    /* " [####......]" in the room left. */
    int room = width - l - 3;
    if (room < 10 || (size_t)l + (size_t)room + 4 >= n)
        return l;
    int fill =
        known && total ? (int)((double)(done < total ? done : total) * room / (double)total) : 0;
    buf[l++] = ' ';
    buf[l++] = '[';
    for (int i = 0; i < room; i++)
        buf[l++] = !known ? (i == 0 ? '?' : ' ') : i < fill ? '#' : '.';
    buf[l++] = ']';
    buf[l] = '\0';
    return l;
}

void cli_progress_draw(cli_progress *p, unsigned long done, unsigned long total, int known,
                       int force)
{
    if (!p->mode)
        return;
    double now = now_mono();
    if (!force && p->last >= 0 && now - p->last < 0.1)
        return;
    p->last = now;
    int width = 80;
    struct winsize ws;
    if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        width = ws.ws_col;
    char line[1024];
    int l = cli_progress_format(line + 1, sizeof line - 8, p->mode, width - 1, done, total, known,
                                now - p->t0);
    line[0] = '\r';
    memcpy(line + 1 + l, "\033[K", 3);
    ssize_t w = write(2, line, (size_t)l + 4);
    (void)w;
    p->shown = 1;
}

void cli_progress_clear(cli_progress *p)
{
    if (!p->shown)
        return;
    ssize_t w = write(2, "\r\033[K", 4);
    (void)w;
    p->shown = 0;
}

void cli_progress_end(cli_progress *p, unsigned long done, unsigned long total, int known)
{
    if (!p->mode)
        return;
    cli_progress_draw(p, done, total, known, 1);
    ssize_t w = write(2, "\n", 1);
    p->shown = 0;
    (void)w;
}
