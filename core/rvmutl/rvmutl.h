/* SPDX-License-Identifier: MIT */
/*
 * rvmutl.h -- what rvmutl's two front ends share: the `rvmutl COMMAND LOG` form (rvmutl.c)
 * and the original rvmutl's command language on standard input (rvmutl_lang.c).
 * Each cmd_* returns the exit status of the command: 0 ok, 1 failed or found a problem.
 */
#ifndef LRVM_RVMUTL_H
#define LRVM_RVMUTL_H

#include <stdint.h>
#include <stdio.h>

int parse_size(const char *s, uint64_t *out);
int cmd_create_log(const char *log, uint64_t size);
int cmd_status(const char *path, int verify);
int cmd_recover(const char *path, int salvage);
int utl_overlay_file(const char *logp, const char *seg, uint64_t off, void *buf, size_t len,
                     uint64_t *nrec);

/* progress_begin / progress_end -- around an apply (recovery, truncation): a progress line on
 * standard error while it runs, only when standard error is a terminal (rvmutl_progress.c) */
void progress_begin(void);
void progress_end(void);

/* cmd_leaks -- `rvmutl leaks SEGMENT [LOG] [--all] [--reclaim [--yes]]` (rvmutl_leaks.c);
 * argv: the arguments after "leaks" */
int cmd_leaks(int argc, char **argv);

/* utl_command_language -- open log (if not NULL), then run commands read from in until
 * quit or end of input; exit status 0 if every command succeeded, else 1 */
int utl_command_language(const char *log, FILE *in);

#endif
