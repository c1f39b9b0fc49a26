/* SPDX-License-Identifier: MIT */
/*
 * torture_driver.c -- runs sessions of the differential torture: each session is one fresh
 * segment and a chain of runs of torture_prog under liblrvm-preload.so, ended at random by a
 * clean exit (exit, return from main, _exit) or by SIGKILL at a random time (also during the
 * shim's start and recovery), with SIGUSR1 commits sent from here when the session's commit
 * hooks include the signal. Every run checks at its start the state the previous runs left
 * (torture_prog.c says how); a last run only checks. A session passes when every run did what
 * its end asked for: clean runs exit 0 within the time limit (a hang is a failure), killed
 * runs die of the kill, not earlier of a failed check.
 *
 * A session's choices (backend, LRVM_FLUSH, LRVM_COMMIT, aware or not, and every run's end,
 * operation count and kill time) are functions of its seed, unless given; the timing of
 * threads, commits and kills is not reproducible, so a failing seed is rerun a few times.
 * On a failure the driver prints the program's message, keeps the session's directory and
 * prints the command that reruns that session, then exits 1.
 *
 * usage: torture_driver --prog PATH --shim PATH [--dir DIR] [--seed N] [--sessions N]
 *        [--runs N] [--backend B|all] [--flush 0|1|random] [--commit SPEC|random]
 *        [--aware 0|1|random] [--timeout-ms N] [--keep 1]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "torture_model.h"

extern char **environ;

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

/* the commit hooks a session may use; "aware" says whether the program calls rvm_commit */
static const struct profile {
    const char *commit;
    int aware; /* -1: the seed decides */
} profiles[] = {
    {"none", 1}, /* explicit commits only */
    {"exit", -1},
    {"interval:%dms", 0}, /* %d: 1, 2, 5, 10 or 20 */
    {"exit,interval:%dms", -1},
    {"exit,signal", -1},
    {"signal,interval:%dms", 1},
    {"exit,signal,interval:%dms", 1},
};
#define NPROFILES (sizeof(profiles) / sizeof(profiles[0]))

struct session {
    uint64_t seed;
    unsigned runs;
    const char *backend;
    int flush, aware, signal, exit_hook;
    char commit[64];
    char dir[512];
};

struct args {
    const char *prog, *shim, *dir, *backend, *flush, *commit, *aware;
    uint64_t seed, sessions;
    unsigned runs;
    long timeout_ms;
    int keep;
};

static void fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "torture_driver: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static void nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* ---- a session's choices ----------------------------------------------------------------- */

static int pick01(const char *given, uint64_t r)
{
    if (!given || !strcmp(given, "random"))
        return (int)(r % 2);
    if (strcmp(given, "0") && strcmp(given, "1"))
        fail_usage("a 0/1 option is '%s': give 0, 1 or random", given);
    return given[0] == '1';
}

/* session_plan -- the session of seed: given options win, the seed decides the rest */
static void session_plan(const struct args *a, uint64_t seed, struct session *s)
{
    memset(s, 0, sizeof(*s));
    s->seed = seed;
    s->runs = a->runs;
    if (!a->backend || !strcmp(a->backend, "all"))
        s->backend = backends[tm_rand(seed, 0, 1) % 3];
    else
        s->backend = a->backend;
    s->flush = pick01(a->flush, tm_rand(seed, 0, 2));
    const struct profile *p = &profiles[tm_rand(seed, 0, 3) % NPROFILES];
    int ms[] = {1, 2, 5, 10, 20};
    int aware_given = a->aware && strcmp(a->aware, "random");
    if (a->commit && strcmp(a->commit, "random")) {
        snprintf(s->commit, sizeof(s->commit), "%s", a->commit);
        p = NULL;
    } else {
        snprintf(s->commit, sizeof(s->commit), p->commit, ms[tm_rand(seed, 0, 5) % 5]);
    }
    if (!aware_given && p && p->aware >= 0)
        s->aware = p->aware;
    else
        s->aware = pick01(a->aware, tm_rand(seed, 0, 4));
    if (!strcmp(s->commit, "none"))
        s->aware = 1; /* else nothing would ever be committed */
    s->signal = strstr(s->commit, "signal") != NULL;
    s->exit_hook = strstr(s->commit, "exit") != NULL && strstr(s->commit, "_exit") == NULL;
}

/* ---- one run ----------------------------------------------------------------------------- */

struct run_plan {
    const char *end; /* kill, exit, return, _exit, verify */
    long kill_ms;    /* kill: after this long since the start */
    uint64_t ops;
};

static struct run_plan run_plan(const struct session *s, unsigned i)
{
    uint64_t r = tm_rand(s->seed, 1000 + i, 0), pct = r % 100;
    struct run_plan p = {.ops = 50 + (r >> 8) % 700};
    if (i > s->runs)
        p.end = "verify";
    else if (pct < 10)
        p.end = "kill", p.kill_ms = (long)((r >> 20) % 40), p.ops = 1u << 30;
    else if (pct < 45)
        p.end = "kill", p.kill_ms = 20 + (long)((r >> 20) % 400), p.ops = 1u << 30;
    else if (pct < 70)
        p.end = "exit";
    else if (pct < 80)
        p.end = "return";
    else
        p.end = s->aware ? "_exit" : "exit";
    return p;
}

/* child_env -- the driver's environment without LD_PRELOAD and LRVM_*, plus the session's */
static char **child_env(const struct args *a, const struct session *s)
{
    static char buf[8][600];
    size_t n = 0, k = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 9, sizeof(*env));
    if (!env)
        fail_usage("out of memory");
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "LRVM_", 5))
            env[k++] = *e;
    snprintf(buf[0], sizeof(buf[0]), "LD_PRELOAD=%s", a->shim);
    snprintf(buf[1], sizeof(buf[1]), "LRVM_SEGMENT=%s/seg", s->dir);
    snprintf(buf[2], sizeof(buf[2]), "LRVM_TRACK=%s", s->backend);
    snprintf(buf[3], sizeof(buf[3]), "LRVM_FLUSH=%d", s->flush);
    snprintf(buf[4], sizeof(buf[4]), "LRVM_COMMIT=%s", s->commit);
    snprintf(buf[5], sizeof(buf[5]), "LRVM_LOG_SIZE=64M");
    for (int i = 0; i < 6; i++)
        env[k++] = buf[i];
    env[k] = NULL;
    return env;
}

static pid_t run_start(const struct args *a, const struct session *s, unsigned i,
                       const struct run_plan *p, char **env)
{
    char ack[600], seed[32], run[32], ops[32], aware[4], exitc[4], flush[4], out[600];
    snprintf(ack, sizeof(ack), "%s/ack", s->dir);
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)s->seed);
    snprintf(run, sizeof(run), "%u", i);
    snprintf(ops, sizeof(ops), "%llu", (unsigned long long)p->ops);
    snprintf(aware, sizeof(aware), "%d", s->aware);
    snprintf(exitc, sizeof(exitc), "%d", s->exit_hook);
    snprintf(flush, sizeof(flush), "%d", s->flush);
    snprintf(out, sizeof(out), "%s/run-%u.out", s->dir, i);
    char *argv[] = {(char *)a->prog,
                    "--seed",
                    seed,
                    "--ack",
                    ack,
                    "--run",
                    run,
                    "--ops",
                    ops,
                    "--end",
                    (char *)p->end,
                    "--aware",
                    aware,
                    "--exit-commit",
                    exitc,
                    "--flush",
                    flush,
                    NULL};
    pid_t pid = fork();
    if (pid < 0)
        fail_usage("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execve(a->prog, argv, env);
        dprintf(2, "exec %s: %s\n", a->prog, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* ready -- whether run i has finished its check (it writes its number into the ack file) */
static int ready(const struct session *s, unsigned i)
{
    char path[600];
    uint64_t w[3] = {0, 0, 0};
    snprintf(path, sizeof(path), "%s/ack", s->dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, w, sizeof(w), 0);
    close(fd);
    return n == (ssize_t)sizeof(w) && w[2] == i;
}

/* dump_stacks -- a hung run's threads' stacks into run-I.stacks, if gdb is there (a hang is
 * rare and timing-dependent: the stacks are the evidence) */
static void dump_stacks(const struct session *s, unsigned i, pid_t pid)
{
    char cmd[1400];
    snprintf(cmd, sizeof(cmd),
             "command -v gdb >/dev/null && timeout 120 gdb -p %d -batch -ex "
             "'thread apply all bt' > '%s/run-%u.stacks' 2>&1",
             (int)pid, s->dir, i);
    if (system(cmd) != 0)
        fprintf(stderr, "torture_driver: no stacks of the hung run (gdb missing or failed)\n");
}

/* run_wait -- wait for run i (pid), killing it at the plan's time, sending SIGUSR1 commits
 * after it is ready when the session asks for them; the exit status, 128 + signal, or -1
 * for a hang (killed at the time limit) */
static int run_wait(const struct args *a, const struct session *s, unsigned i,
                    const struct run_plan *p, pid_t pid)
{
    long t0 = now_ms(), next_sig = 0;
    uint64_t r = tm_rand(s->seed, 2000 + i, 0);
    int killed = 0, st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        long t = now_ms() - t0;
        if (!strcmp(p->end, "kill") && t >= p->kill_ms && !killed) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        if (t >= a->timeout_ms) {
            dump_stacks(s, i, pid);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        if (s->signal && !killed && t >= next_sig && ready(s, i)) {
            kill(pid, SIGUSR1);
            r = tm_mix(r);
            next_sig = t + 2 + (long)(r % 20);
        }
        nap_ms(1);
    }
}

/* ---- a session --------------------------------------------------------------------------- */

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        fprintf(stderr, "    | %s", line);
    fclose(f);
}

/* print_stacks -- the frames of a gdb backtrace file (thread headers and #N lines) */
static void print_stacks(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        if (line[0] == '#' || !strncmp(line, "Thread ", 7))
            fprintf(stderr, "    | %s", line);
    fclose(f);
}

/* reproducer -- the command that reruns session s as it was planned */
static void reproducer(const struct args *a, const struct session *s)
{
    fprintf(stderr,
            "  rerun: %s --prog %s --shim %s --seed %llu --runs %u --backend %s "
            "--flush %d --commit '%s' --aware %d --timeout-ms %ld\n",
            "torture_driver", a->prog, a->shim, (unsigned long long)s->seed, s->runs, s->backend,
            s->flush, s->commit, s->aware, a->timeout_ms);
    fprintf(stderr,
            "  or:    scripts/torture.sh --seed %llu --runs %u --backend %s --flush %d "
            "--commit '%s' --aware %d\n",
            (unsigned long long)s->seed, s->runs, s->backend, s->flush, s->commit, s->aware);
    fprintf(stderr, "  (timing is not reproducible: rerun a few times; kept: %s)\n", s->dir);
}

/* run_verdict -- NULL if run i ended as planned, else what went wrong */
static const char *run_verdict(const struct run_plan *p, int status)
{
    if (status == -1)
        return "HANG: did not finish within the time limit (killed)";
    if (!strcmp(p->end, "kill") && status == 128 + SIGKILL)
        return NULL;
    if (status == 0)
        return NULL;
    if (status == 3)
        return "the state found is not one commit's (CHECK FAILED)";
    if (status == 4)
        return "rvm_commit failed";
    return "the run failed (exit status or signal below)";
}

/* session_run -- 0 if every run of session s passed, else 1 (reported) */
static int session_run(const struct args *a, struct session *s)
{
    snprintf(s->dir, sizeof(s->dir), "%s/seed-%llu", a->dir, (unsigned long long)s->seed);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", s->dir, s->dir);
    if (system(cmd) != 0)
        fail_usage("cannot make %s", s->dir);
    char **env = child_env(a, s);
    for (unsigned i = 1; i <= s->runs + 1; i++) {
        struct run_plan p = run_plan(s, i);
        pid_t pid = run_start(a, s, i, &p, env);
        int status = run_wait(a, s, i, &p, pid);
        const char *bad = run_verdict(&p, status);
        if (bad) {
            char out[600];
            snprintf(out, sizeof(out), "%s/run-%u.out", s->dir, i);
            fprintf(stderr,
                    "FAIL seed %llu run %u/%u (end %s, backend %s, LRVM_FLUSH=%d, "
                    "LRVM_COMMIT=%s, aware %d): %s; status %d\n",
                    (unsigned long long)s->seed, i, s->runs + 1, p.end, s->backend, s->flush,
                    s->commit, s->aware, bad, status);
            print_file(out);
            if (status == -1) {
                snprintf(out, sizeof(out), "%s/run-%u.stacks", s->dir, i);
                fprintf(stderr, "  stacks of the hung run (%s):\n", out);
                print_stacks(out);
            }
            reproducer(a, s);
            free(env);
            return 1;
        }
    }
    free(env);
    printf("ok seed %llu: %u runs, backend %s, LRVM_FLUSH=%d, LRVM_COMMIT=%s, aware %d\n",
           (unsigned long long)s->seed, s->runs + 1, s->backend, s->flush, s->commit, s->aware);
    fflush(stdout);
    if (!a->keep) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "torture_driver: could not remove %s\n", s->dir);
    }
    return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

static uint64_t num(const char *opt, const char *v)
{
    char *e;
    errno = 0;
    unsigned long long x = strtoull(v, &e, 0);
    if (errno || e == v || *e)
        fail_usage("%s wants a number, not '%s'", opt, v);
    return x;
}

static void parse(int argc, char **argv, struct args *a)
{
    *a = (struct args){.seed = 1,
                       .sessions = 1,
                       .runs = 8,
                       .timeout_ms = 120000,
                       .dir = "/tmp",
                       .shim = getenv("LRVM_TEST_SHIM")};
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            fail_usage("%s needs a value", k);
        if (!strcmp(k, "--prog"))
            a->prog = v;
        else if (!strcmp(k, "--shim"))
            a->shim = v;
        else if (!strcmp(k, "--dir"))
            a->dir = v;
        else if (!strcmp(k, "--seed"))
            a->seed = num(k, v);
        else if (!strcmp(k, "--sessions"))
            a->sessions = num(k, v);
        else if (!strcmp(k, "--runs"))
            a->runs = (unsigned)num(k, v);
        else if (!strcmp(k, "--backend"))
            a->backend = v;
        else if (!strcmp(k, "--flush"))
            a->flush = v;
        else if (!strcmp(k, "--commit"))
            a->commit = v;
        else if (!strcmp(k, "--aware"))
            a->aware = v;
        else if (!strcmp(k, "--timeout-ms"))
            a->timeout_ms = (long)num(k, v);
        else if (!strcmp(k, "--keep"))
            a->keep = (int)num(k, v);
        else
            fail_usage("unknown option %s (see the comment at the top of torture_driver.c)", k);
    }
    if (!a->prog || !a->shim)
        fail_usage("--prog PATH and --shim PATH (or LRVM_TEST_SHIM) are required");
    if (a->seed == 0)
        fail_usage("--seed must not be 0");
    if (a->backend && strcmp(a->backend, "all")) {
        int ok = 0;
        for (int i = 0; i < 3; i++)
            ok |= !strcmp(a->backend, backends[i]);
        if (!ok)
            fail_usage("--backend %s: give wp-async, uffd-sigbus, mprotect or all", a->backend);
    }
}

int main(int argc, char **argv)
{
    struct args a;
    parse(argc, argv, &a);
    unsigned failed = 0;
    for (uint64_t k = 0; k < a.sessions; k++) {
        struct session s;
        session_plan(&a, a.seed + k, &s);
        failed += (unsigned)session_run(&a, &s);
    }
    printf("torture: %llu sessions, %u failed\n", (unsigned long long)a.sessions, failed);
    return failed ? 1 : 0;
}
