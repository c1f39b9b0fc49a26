/* SPDX-License-Identifier: MIT */
/*
 * rvmutl_progress.c -- the progress line of `rvmutl recover` / `truncate` on a terminal.
 *
 * Applying a large log takes seconds; on a terminal rvmutl shows how far it got, on one line of
 * standard error rewritten in place with \r, at most four times a second, and ends it with a
 * newline (a line with the final figures is shown even when the apply was quick). When
 * standard error is not a terminal (a pipe, a file, a script's log) it prints
 * nothing: escape-free output is what scripts expect. The library itself never prints: it calls
 * back (apply_set_progress) after each applied record, and this file decides what to show.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "rvm_int.h"
#include "rvmutl.h"

#define PROGRESS_EVERY_NS 250000000ull /* at most four updates a second */

struct progress {
    uint64_t t0, last;    /* start, last update (ns, monotonic) */
    uint64_t at;          /* when the last record was applied */
    uint64_t done, total; /* log bytes applied, expected (0: unknown) */
    int active;           /* standard error is a terminal: show progress */
};

static struct progress pg;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* progress_draw -- rewrite the line: bytes applied / expected, percentage, rate */
static void progress_draw(uint64_t now)
{
    double secs = (double)(now - pg.t0) / 1e9, mb = (double)pg.done / 1e6;
    double rate = secs > 0 ? mb / secs : 0;
    if (pg.total > 0)
        fprintf(stderr, "\rrvmutl: applying the log: %.1f / %.1f MB (%3.0f%%), %.0f MB/s ", mb,
                (double)pg.total / 1e6, 100.0 * (double)pg.done / (double)pg.total, rate);
    else
        fprintf(stderr, "\rrvmutl: applying the log: %.1f MB, %.0f MB/s ", mb, rate);
    fflush(stderr);
    pg.last = now;
}

/* progress_cb -- the library's callback, after each applied record */
static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    pg.done = done;
    pg.total = total;
    uint64_t now = mono_ns();
    pg.at = now;
    if (now - pg.last >= PROGRESS_EVERY_NS)
        progress_draw(now);
}

void progress_begin(void)
{
    if (!isatty(STDERR_FILENO))
        return;
    pg = (struct progress){.t0 = mono_ns(), .active = 1};
    pg.last = pg.t0;
    apply_set_progress(progress_cb, NULL);
}

void progress_end(void)
{
    apply_set_progress(NULL, NULL);
    if (pg.active && pg.done > 0) { /* the final figures, however short the run was */
        progress_draw(pg.at);       /* the rate of the apply, not of the fsyncs after it */
        fputc('\n', stderr);
    }
    pg.active = 0;
}
