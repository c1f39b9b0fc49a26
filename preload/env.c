/* SPDX-License-Identifier: MIT */
/*
 * env.c -- the shim's options: ONE table of every LRVM_* variable, with its meaning, default and
 * accepted values, parsed once before main.
 *
 * Why parse from envp ourselves: the shim initialises from inside the first malloc, possibly
 * before libc has finished starting; getenv and stdio may allocate. The parser reads the envp
 * strings in place (values point into the environment, which lives for the whole process) and
 * writes errors with one write(2). An invalid value stops the program before main (status 2):
 * running with a silently ignored setting would be worse (a persistence the user believes in
 * and does not have).
 *
 * lrvm-run derives its command-line options from the same table (--segment == LRVM_SEGMENT).
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct shim_opts shim_opts;

enum opt_kind { OK_PATH, OK_SIZE, OK_ADDR, OK_BOOL, OK_COMMIT, OK_TRACK, OK_TIME };

/* struct opt -- one row of the table. */
struct opt {
    const char *name; /* environment variable */
    enum opt_kind kind;
    const char *dflt;     /* default, as the user would write it */
    const char *accepted; /* accepted values, quoted in error messages */
    const char *meaning;
};

/* The table. Order = the order of --help. Defaults are parsed by the same code as user values. */
static const struct opt opts[] = {
    {"LRVM_SEGMENT", OK_PATH, "", "a file path (created if missing)",
     "data segment holding the heap; unset: a volatile heap (nothing persists)"},
    {"LRVM_LOG", OK_PATH, "", "a file path", "redo log; default: <segment>.log beside the segment"},
    {"LRVM_LOG_SIZE", OK_SIZE, "256M", "a size: bytes or with suffix K, M, G (e.g. 512M)",
     "log size (preallocated, zero-filled at creation); a commit that does not fit grows the"
     " log, up to LRVM_LOG_MAX"},
    {"LRVM_LOG_MAX", OK_SIZE, "0", "0 or a size: bytes or with suffix K, M, G (e.g. 8G)",
     "largest size the log may grow to when a commit's changes do not fit in it; 0: twice the"
     " segment's size (the heap reservation, LRVM_HEAP_SIZE). A commit needing more fails"},
    {"LRVM_HEAP_SIZE", OK_SIZE, "16G", "a size from 8M to 256G, multiple of 4M (suffix K, M, G)",
     "address space reserved for the heap (MAP_NORESERVE: costs no memory until used)"},
    {"LRVM_HEAP_BASE", OK_ADDR, "0x200000000000", "a 4 MiB-aligned address, hex (0x...) or decimal",
     "fixed address of the heap (same on every run so pointers stay valid)"},
    {"LRVM_COMMIT", OK_COMMIT, "exit",
     "comma list of: exit, signal[:SIG] (SIG = USR1, USR2, HUP, ... or a number; default USR1),"
     " interval:TIME (TIME with ms or s, e.g. 500ms), none",
     "when the heap is committed"},
    {"LRVM_MUTEX_WAIT", OK_TIME, "0", "0 (off) or a time with ms or s (e.g. 20ms)",
     "signal and interval commits wait at most this long for an instant at which no thread"
     " holds a pthread mutex (the program's consistency points), then commit anyway"},
    {"LRVM_FLUSH", OK_BOOL, "1", "1/yes/on/true or 0/no/off/false",
     "flush (fsync) the log at each commit; 0 trades durability of the last commits for speed"},
    {"LRVM_TRACK", OK_TRACK, "auto", "auto, wp-async, uffd-sigbus, mprotect",
     "DIRTY backend that finds the pages written between commits"},
    {"LRVM_GLOBALS", OK_BOOL, "1", "1/yes/on/true or 0/no/off/false",
     "also keep the program's global variables (.data/.bss) in the segment"},
    {"LRVM_STATS", OK_BOOL, "0", "1/yes/on/true or 0/no/off/false",
     "print heap and commit statistics to stderr at exit"},
    {"LRVM_BACKTRACE", OK_BOOL, "0", "1/yes/on/true or 0/no/off/false",
     "print a backtrace on stderr when the program crashes"},
    {"LRVM_INHERIT", OK_BOOL, "0", "1/yes/on/true or 0/no/off/false",
     "programs started by exec keep the shim (default: LD_PRELOAD loses it)"},
    {"LRVM_SHARED_GROUP", OK_BOOL, "0", "1/yes/on/true or 0/no/off/false",
     "also accept a segment and log of another user of your group, and group-writable ones"
     " (default: only your own files, writable by you alone; see docs/trust-model.md)"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* ---- output without allocation ---------------------------------------------------------- */

/* shim_say -- one write(2) of "lrvm: " + strings + "\n" (truncated at 1 KiB) */
void shim_say(int fd, const char *s, ...)
{
    char buf[1024];
    size_t n = 0;
    const char *pre = "lrvm: ";
    va_list ap;
    va_start(ap, s);
    for (const char *part = pre, *next = s; part;
         part = next, next = next ? va_arg(ap, const char *) : NULL)
        for (const char *p = part; *p && n < sizeof(buf) - 1; p++)
            buf[n++] = *p;
    va_end(ap);
    buf[n++] = '\n';
    int saved = errno; /* a diagnostic from inside malloc must not change the program's errno */
    ssize_t w = write(fd, buf, n);
    (void)w;
    errno = saved;
}

/* shim_fmt_u64 -- decimal */
char *shim_fmt_u64(char *buf, uint64_t v)
{
    char t[24];
    int i = 0;
    do
        t[i++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (int j = 0; j < i; j++)
        buf[j] = t[i - 1 - j];
    buf[i] = 0;
    return buf;
}

/* shim_fmt_hex -- 0x-prefixed hexadecimal */
char *shim_fmt_hex(char *buf, uint64_t v)
{
    char t[20];
    int i = 0;
    do
        t[i++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    buf[0] = '0';
    buf[1] = 'x';
    for (int j = 0; j < i; j++)
        buf[2 + j] = t[i - 1 - j];
    buf[2 + i] = 0;
    return buf;
}

uint64_t shim_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- value parsers ------------------------------------------------------------------------ */

/* parse_u64 -- decimal or 0x hex, whole string up to *end; -1 on no digits or overflow */
static int parse_u64(const char *s, uint64_t *out, const char **end)
{
    uint64_t v = 0;
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    const char *p = s;
    for (;; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (p == s)
        return -1;
    *out = v;
    *end = p;
    return 0;
}

/* shim_parse_size -- N, NK, NM, NG (binary units, case-insensitive, optional trailing B) */
int shim_parse_size(const char *s, size_t *out)
{
    uint64_t v;
    const char *e;
    if (parse_u64(s, &v, &e))
        return -1;
    unsigned shift = 0;
    switch (*e) {
    case 'k':
    case 'K':
        shift = 10;
        e++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        e++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        e++;
        break;
    default: break;
    }
    if (shift && (*e == 'b' || *e == 'B'))
        e++;
    if (*e || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

/* shim_parse_time_ns -- Nms or Ns (a unit is required: "500" is ambiguous) */
int shim_parse_time_ns(const char *s, uint64_t *out)
{
    uint64_t v;
    const char *e;
    if (parse_u64(s, &v, &e))
        return -1;
    uint64_t mul;
    if (strcmp(e, "ms") == 0)
        mul = 1000000ull;
    else if (strcmp(e, "s") == 0)
        mul = 1000000000ull;
    else
        return -1;
    if (v == 0 || v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

/* parse_signal -- "USR1", "SIGUSR1", or a number in 1..SIGRTMAX, not SIGKILL/SIGSTOP and not
 * the fault signals the shim needs */
static int parse_signal(const char *s, size_t len, int *sig)
{
    static const struct {
        const char *n;
        int s;
    } names[] = {
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
        {"INT", SIGINT},   {"TERM", SIGTERM}, {"QUIT", SIGQUIT},
        {"ALRM", SIGALRM}, {"PWR", SIGPWR},   {"WINCH", SIGWINCH},
    };
    if (len > 3 && strncmp(s, "SIG", 3) == 0) {
        s += 3;
        len -= 3;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].n) == len && strncmp(names[i].n, s, len) == 0) {
            *sig = names[i].s;
            return 0;
        }
    int v = 0;
    if (len == 0 || len > 3)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > SIGRTMAX || v == SIGKILL || v == SIGSTOP || v == SIGSEGV || v == SIGBUS)
        return -1;
    *sig = v;
    return 0;
}

/* shim_parse_commit -- "exit,signal:USR1,interval:500ms" or "none" */
int shim_parse_commit(const char *s, unsigned *hooks, int *sig, uint64_t *interval_ns)
{
    unsigned h = 0;
    int sg = SIGUSR1;
    uint64_t iv = 0;
    if (strcmp(s, "none") == 0) {
        *hooks = 0;
        return 0;
    }
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *colon = memchr(s, ':', len);
        size_t klen = colon ? (size_t)(colon - s) : len;
        const char *val = colon ? colon + 1 : NULL;
        size_t vlen = colon ? len - klen - 1 : 0;
        if (klen == 4 && strncmp(s, "exit", 4) == 0 && !val) {
            h |= SHIM_COMMIT_EXIT;
        } else if (klen == 6 && strncmp(s, "signal", 6) == 0) {
            if (val && parse_signal(val, vlen, &sg))
                return -1;
            h |= SHIM_COMMIT_SIGNAL;
        } else if (klen == 8 && strncmp(s, "interval", 8) == 0 && val && vlen < 32) {
            char t[32];
            memcpy(t, val, vlen);
            t[vlen] = 0;
            if (shim_parse_time_ns(t, &iv))
                return -1;
            h |= SHIM_COMMIT_INTERVAL;
        } else {
            return -1;
        }
        s += len;
        if (*s == ',' && *++s == 0)
            return -1; /* trailing comma */
    }
    if (!h)
        return -1;
    *hooks = h;
    *sig = sg;
    *interval_ns = iv;
    return 0;
}

/* parse_bool -- 1/yes/on/true, 0/no/off/false */
static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "yes", "on", "true"}, *const no[] = {"0", "no", "off",
                                                                                "false"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* opt_apply -- parse value v of row o into shim_opts; 0 or -1 (invalid) */
static int opt_apply(const struct opt *o, const char *v)
{
    struct shim_opts *so = &shim_opts;
    const char *n = o->name;
    size_t sz;
    uint64_t u;
    const char *e;
    int b;
    switch (o->kind) {
    case OK_PATH:
        if (strcmp(n, "LRVM_SEGMENT") == 0)
            so->segment = *v ? v : NULL;
        else
            so->log = *v ? v : NULL;
        return 0;
    case OK_SIZE:
        if (shim_parse_size(v, &sz))
            return -1;
        if (strcmp(n, "LRVM_HEAP_SIZE") == 0) {
            if (sz < (8u << 20) || sz > ((size_t)256 << 30) || sz % (4u << 20))
                return -1;
            so->heap_size = sz;
        } else if (strcmp(n, "LRVM_LOG_MAX") == 0) {
            if (sz != 0 && sz < (1u << 20))
                return -1;
            so->log_max = sz;
        } else {
            if (sz < (1u << 20))
                return -1;
            so->log_size = sz;
        }
        return 0;
    case OK_ADDR:
        if (parse_u64(v, &u, &e) || *e || u == 0 || u % (4u << 20) || u >= (1ull << 47))
            return -1;
        so->heap_base = (uintptr_t)u;
        return 0;
    case OK_BOOL:
        if (parse_bool(v, &b))
            return -1;
        if (strcmp(n, "LRVM_FLUSH") == 0)
            so->flush = b;
        else if (strcmp(n, "LRVM_GLOBALS") == 0)
            so->globals = b;
        else if (strcmp(n, "LRVM_STATS") == 0)
            so->stats = b;
        else if (strcmp(n, "LRVM_BACKTRACE") == 0)
            so->backtrace = b;
        else if (strcmp(n, "LRVM_SHARED_GROUP") == 0)
            so->shared_group = b;
        else
            so->inherit = b;
        return 0;
    case OK_COMMIT:
        return shim_parse_commit(v, &so->commit, &so->commit_signal, &so->commit_interval_ns);
    case OK_TIME: /* LRVM_MUTEX_WAIT: 0 = off */
        if (strcmp(v, "0") == 0)
            return so->mutex_wait_ns = 0, 0;
        return shim_parse_time_ns(v, &so->mutex_wait_ns);
    case OK_TRACK:
        if (strcmp(v, "auto") && strcmp(v, "wp-async") && strcmp(v, "uffd-sigbus") &&
            strcmp(v, "mprotect"))
            return -1;
        so->track = v;
        return 0;
    }
    return -1;
}

/* env_find -- the value of name in envp, or NULL */
static const char *env_find(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* shim_env_parse -- defaults first (from the table), then the environment */
int shim_env_parse(char *const *envp, int errfd)
{
    memset(&shim_opts, 0, sizeof(shim_opts));
    for (size_t i = 0; i < NOPTS; i++)
        if (opt_apply(&opts[i], opts[i].dflt))
            return -1; /* a default the parser rejects: caught by the unit tests */
    int bad = 0;
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = env_find(envp, opts[i].name);
        if (v && opt_apply(&opts[i], v)) {
            shim_say(errfd, opts[i].name, "=", v, ": invalid value; accepted: ", opts[i].accepted,
                     " (default ", *opts[i].dflt ? opts[i].dflt : "unset", ")", NULL);
            bad = 1;
        }
    }
    /* A misspelt LRVM_ variable would silently do nothing: name it. */
    for (char *const *p = envp; p && *p; p++) {
        if (strncmp(*p, "LRVM_", 5) != 0)
            continue;
        size_t k = (size_t)(strchrnul(*p, '=') - *p);
        int known = strncmp(*p, "LRVM_TEST_", 10) == 0; /* the test suite's own variables */
        for (size_t i = 0; i < NOPTS && !known; i++)
            known = strlen(opts[i].name) == k && strncmp(opts[i].name, *p, k) == 0;
        if (!known) {
            char name[64];
            size_t m = k < sizeof(name) - 1 ? k : sizeof(name) - 1;
            memcpy(name, *p, m);
            name[m] = 0;
            shim_say(errfd, name, ": unknown variable (lrvm-run --help lists the LRVM_* variables)",
                     NULL);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

/* shim_env_help -- the table, as variables or as lrvm-run options */
void shim_env_help(int fd, int as_options)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        char opt[64] = "--";
        size_t k = 2;
        for (const char *p = o->name + 5; *p && k < sizeof(opt) - 1; p++)
            opt[k++] = (*p == '_') ? '-' : (char)(*p - 'A' + 'a');
        opt[k] = 0;
        dprintf(fd, "  %-16s %s\n", as_options ? opt : o->name, o->meaning);
        if (as_options)
            dprintf(fd, "  %-16s (sets %s)\n", "", o->name);
        dprintf(fd, "  %-16s default: %s; accepted: %s\n", "", *o->dflt ? o->dflt : "unset",
                o->accepted);
    }
}

/* shim_env_option -- "heap-size" -> "LRVM_HEAP_SIZE" */
const char *shim_env_option(const char *opt, int *takes_value)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *p = opts[i].name + 5, *q = opt;
        for (; *p && *q; p++, q++)
            if ((*p == '_' ? '-' : *p - 'A' + 'a') != *q)
                break;
        if (!*p && !*q) {
            *takes_value = 1;
            return opts[i].name;
        }
    }
    return NULL;
}

/* man_text -- s as roff text: backslashes and hyphens escaped, and a leading '.' or '\''
 * neutralised so that a table entry can never turn into a roff request */
static void man_text(int fd, const char *s)
{
    if (*s == '.' || *s == '\'')
        dprintf(fd, "\\&");
    for (; *s; s++) {
        if (*s == '\\')
            dprintf(fd, "\\e");
        else if (*s == '-')
            dprintf(fd, "\\-");
        else
            dprintf(fd, "%c", *s);
    }
}

/* shim_env_man -- the table as roff (.TP paragraphs), for the man pages generated at build
 * time: as lrvm-run's options for lrvm-run(1), as variables for lrvm(7). The same rows as
 * shim_env_help, so --help and the man pages cannot disagree. */
void shim_env_man(int fd, int as_options)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        dprintf(fd, ".TP\n");
        if (as_options) {
            dprintf(fd, ".BI \\-\\-");
            for (const char *p = o->name + 5; *p; p++) {
                if (*p == '_')
                    dprintf(fd, "\\-");
                else
                    dprintf(fd, "%c", (char)(*p - 'A' + 'a'));
            }
            dprintf(fd, " \" VALUE\"\n");
        } else {
            dprintf(fd, ".B ");
            man_text(fd, o->name);
            dprintf(fd, "\n");
        }
        man_text(fd, o->meaning);
        dprintf(fd, ".\n.br\n");
        if (as_options) {
            dprintf(fd, "Sets ");
            man_text(fd, o->name);
            dprintf(fd, ". ");
        }
        dprintf(fd, "Default: ");
        man_text(fd, *o->dflt ? o->dflt : "unset");
        dprintf(fd, "; accepted: ");
        man_text(fd, o->accepted);
        dprintf(fd, ".\n");
    }
}
