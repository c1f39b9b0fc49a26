/* SPDX-License-Identifier: MIT */
/*
 * rvmutl_lang.c -- the original rvmutl's command language on standard input, for the setup
 * scripts written for it (`echo "i $LOG $SIZE" | rvmutl`, `rvmutl $LOG` then `recover`):
 * one command per line, names abbreviated to any unique prefix, `#` starts a comment.
 *
 * Commands that make sense for lrvm's log: init_log LOG SIZE, open_log (log) LOG,
 * close_log, status (log_status), recover, sizeof, update / no_update (accepted), quit.
 * rds_check SEGMENT is ours. The original's record browser (next, prev, peek, poke, replay,
 * ...) walks its own log format: those commands say what to use instead. A failed command
 * prints a line starting with "?" (as the original) and makes the exit status 1.
 */
#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>

#include "rvmutl.h"
#include "rvmutl_rds.h"

struct session {
    char log[4096]; /* the open log ("" if none) */
    int recovered;  /* recovery ran in this process (it can run once) */
};

typedef int (*cmd_fn)(struct session *s, char *args);

/* next_word -- split the first word off *p */
static char *next_word(char **p)
{
    char *w = *p;
    while (*w && isspace((unsigned char)*w))
        w++;
    if (*w == '\0')
        return NULL;
    char *e = w;
    while (*e && !isspace((unsigned char)*e))
        e++;
    if (*e)
        *e++ = '\0';
    *p = e;
    return w;
}

static int need_log(struct session *s, const char *cmd)
{
    if (s->log[0])
        return 0;
    printf("? %s: no log is open (open_log LOG first)\n", cmd);
    return 1;
}

static int do_init_log(struct session *s, char *args)
{
    char *log = next_word(&args), *size = next_word(&args);
    uint64_t n;
    if (log == NULL || size == NULL || parse_size(size, &n) != 0) {
        printf("? init_log LOG SIZE: SIZE in bytes, or with a K, M or G suffix\n");
        return 1;
    }
    if (cmd_create_log(log, n) != 0)
        return 1;
    snprintf(s->log, sizeof(s->log), "%s", log);
    return 0;
}

static int do_open_log(struct session *s, char *args)
{
    char *log = next_word(&args);
    if (log == NULL) {
        printf("? open_log LOG: which log?\n");
        return 1;
    }
    FILE *f = fopen(log, "rb");
    if (f == NULL) {
        printf("? open_log: cannot open %s (create it with init_log %s SIZE)\n", log, log);
        return 1;
    }
    fclose(f);
    snprintf(s->log, sizeof(s->log), "%s", log);
    return 0;
}

static int do_close_log(struct session *s, char *args)
{
    (void)args;
    s->log[0] = '\0';
    return 0;
}

static int do_status(struct session *s, char *args)
{
    (void)args;
    return need_log(s, "status") ? 1 : cmd_status(s->log, 0);
}

static int do_recover(struct session *s, char *args)
{
    (void)args;
    if (need_log(s, "recover"))
        return 1;
    if (s->recovered) {
        printf("? recover: one recovery per rvmutl run (lrvm initializes once per process); "
               "run rvmutl again for %s\n",
               s->log);
        return 1;
    }
    s->recovered = 1;
    return cmd_recover(s->log, 0);
}

static int do_sizeof(struct session *s, char *args)
{
    (void)s;
    (void)args;
    printf("rvm_tid_t %zu, rvm_options_t %zu, rvm_region_t %zu, rvm_offset_t %zu, "
           "rvm_length_t %zu, rvm_region_def_t %zu\n",
           sizeof(rvm_tid_t), sizeof(rvm_options_t), sizeof(rvm_region_t), sizeof(rvm_offset_t),
           sizeof(rvm_length_t), sizeof(rvm_region_def_t));
    return 0;
}

static int do_rds_check(struct session *s, char *args)
{
    char *seg = next_word(&args);
    if (seg == NULL) {
        printf("? rds_check SEGMENT: which segment?\n");
        return 1;
    }
    return cmd_rds_check(seg, s->log[0] ? s->log : NULL);
}

static int do_accept(struct session *s, char *args)
{
    (void)s;
    (void)args;
    return 0;
}

static int do_browser(struct session *s, char *args)
{
    (void)s;
    (void)args;
    printf("? this command walks the original's log format; for lrvm's log use `rvmutl list "
           "LOG`, `rvmutl dump LOG [SEQ]` or `rvmutl verify LOG`\n");
    return 1;
}

static const struct {
    const char *name;
    cmd_fn fn;
} cmds[] = {
    {"init_log", do_init_log},   {"open_log", do_open_log},   {"log", do_open_log},
    {"close_log", do_close_log}, {"status", do_status},       {"log_status", do_status},
    {"recover", do_recover},     {"sizeof", do_sizeof},       {"rds_check", do_rds_check},
    {"update", do_accept},       {"no_update", do_accept},    {"quit", NULL},
    {"next", do_browser},        {"prev", do_browser},        {"peek", do_browser},
    {"poke", do_browser},        {"replay", do_browser},      {"show", do_browser},
    {"head", do_browser},        {"tail", do_browser},        {"earliest", do_browser},
    {"find_tail", do_browser},   {"find_hole", do_browser},   {"find_earliest", do_browser},
    {"copy_log", do_browser},    {"read_status", do_browser}, {"write_status", do_browser},
    {"statistics", do_browser},  {"monitor", do_browser},     {"set", do_browser},
    {"sub_rec", do_browser},     {"seg_dict", do_browser},    {"build_seg_dict", do_browser},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

/* lookup -- exact name, else the one command it is a prefix of; -1 unknown, -2 ambiguous */
static int lookup(const char *w)
{
    int found = -1;
    for (size_t i = 0; i < NCMDS; i++) {
        if (!strcmp(cmds[i].name, w))
            return (int)i;
        if (!strncmp(cmds[i].name, w, strlen(w)))
            found = found == -1 ? (int)i : -2;
    }
    return found;
}

int utl_command_language(const char *log, FILE *in)
{
    struct session s = {.log = ""};
    int failed = 0;
    if (log != NULL) {
        char arg[4096];
        snprintf(arg, sizeof(arg), "%s", log);
        failed |= do_open_log(&s, arg);
    }
    char line[8192];
    for (;;) {
        if (isatty(fileno(in)))
            printf("* "), fflush(stdout);
        if (fgets(line, sizeof(line), in) == NULL)
            break;
        char *p = line, *w = next_word(&p);
        if (w == NULL || w[0] == '#')
            continue;
        int i = lookup(w);
        if (i == -1 || i == -2) {
            printf("? %s: %s command (help: rvmutl --help)\n", w,
                   i == -1 ? "unknown" : "ambiguous");
            failed = 1;
            continue;
        }
        if (cmds[i].fn == NULL)
            break; /* quit */
        failed |= cmds[i].fn(&s, p);
        fflush(stdout);
    }
    return failed ? 1 : 0;
}
