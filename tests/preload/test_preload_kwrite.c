/*
 * test_preload_kwrite.c -- issue 6 items 6 and 3 (suite 'preload'):
 *   - kernel writes into the persistent heap work with EVERY DIRTY backend (kwrite.c,
 *     libcobj.c): kwrite_probe read()s, recv()s, fread()s, readv()s, stat()s, readdir()s ...
 *     into heap buffers; the data persists; gawk and sort give the output they give without
 *     the shim; stdin read with fgets/getline;
 *   - LRVM_MUTEX_WAIT (mutexwait.c): with it, restarts after random SIGKILLs under interval
 *     commits always see mutex_probe's invariant; without it, violations are counted and
 *     logged (not asserted: they are likely, not certain).
 * Programs are started directly with LD_PRELOAD (not through `timeout` or a shell, which would
 * take the shim and drop it from the environment of their child).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

static int scale(void)
{
  const char *s = getenv("LRVM_TEST_SCALE");
  int v = s ? atoi(s) : 1;
  return v > 0 ? v : 1;
}

static const char *need(const char *var)
{
  const char *v = getenv(var);
  cr_assert(v && *v, "%s not set: run through meson test", var);
  return v;
}

/* slurp -- the whole of fd from offset 0, closed */
static char *slurp(int fd)
{
  struct stat st;
  fstat(fd, &st);
  char *b = malloc((size_t)st.st_size + 1);
  ssize_t n = pread(fd, b, (size_t)st.st_size, 0);
  b[n > 0 ? n : 0] = 0;
  close(fd);
  return b;
}

static int tmpfd(void)
{
  char p[] = "/tmp/lrvm-kwrite-XXXXXX";
  int fd = mkstemp(p);
  cr_assert(fd >= 0);
  unlink(p);
  return fd;
}

struct proc {
  pid_t pid;
  int ofd, efd;
};

/* start -- argv with the environment minus LD_PRELOAD/LRVM_* (but LRVM_TEST_*), plus extra;
 * with shim, LD_PRELOAD and LRVM_STATS=1. stdin from in_path (or /dev/null). */
static struct proc start(char *const argv[], const char *const extra[], int shim,
                         const char *in_path)
{
  size_t n = 0;
  for (char **e = environ; *e; e++)
    n++;
  const char **env = calloc(n + 32, sizeof(*env));
  size_t k = 0;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "LD_PRELOAD=", 11) && (strncmp(*e, "LRVM_", 5) || !strncmp(*e, "LRVM_TEST_", 10)))
      env[k++] = *e;
  char pre[4200];
  if (shim) {
    snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", need("LRVM_TEST_SHIM"));
    env[k++] = pre;
    env[k++] = "LRVM_STATS=1";
    for (size_t i = 0; extra && extra[i]; i++)
      env[k++] = extra[i];
  }
  env[k] = NULL;
  struct proc p = {.ofd = tmpfd(), .efd = tmpfd()};
  p.pid = fork();
  cr_assert(p.pid >= 0);
  if (p.pid == 0) {
    int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(p.ofd, 1);
    dup2(p.efd, 2);
    execve(argv[0], argv, (char *const *)env);
    dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  free(env);
  return p;
}

struct result {
  int status;   /* exit status, 128 + signal if killed, -1 if timed out */
  char *out, *err;
};

/* finish -- wait for p (kill it after timeout_ms: status -1), collect its output */
static struct result finish(struct proc p, int timeout_ms)
{
  struct result r = {.status = -1};
  int st;
  for (int waited = 0; waited < timeout_ms; waited++) {
    if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
      r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (r.status == -1) {
    kill(p.pid, SIGKILL);
    waitpid(p.pid, &st, 0);
  }
  r.out = slurp(p.ofd);
  r.err = slurp(p.efd);
  return r;
}

static struct result run(char *const argv[], const char *const extra[], int shim,
                         const char *in_path)
{
  return finish(start(argv, extra, shim, in_path), 120000);
}

/* tdir -- a fresh temporary directory (dir: at least 40 bytes) */
static void tdir(char *dir)
{
  strcpy(dir, "/tmp/lrvm-kwrite-dir-XXXXXX");
  cr_assert(mkdtemp(dir));
}

static void dir_remove(const char *dir)
{
  char cmd[256];
  cr_assert((size_t)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir) < sizeof(cmd));
  cr_expect_eq(system(cmd), 0);
}

/* gen_input -- a deterministic file of n lines "NUMBER wordK text I" */
static void gen_input(const char *path, long lines)
{
  FILE *f = fopen(path, "w");
  cr_assert(f);
  unsigned x = 7;
  for (long i = 0; i < lines; i++) {
    x = x * 1103515245u + 12345u;
    fprintf(f, "%u word%u some text %ld\n", x >> 4, (x >> 10) % 3000, i);
  }
  fclose(f);
}

/* the settings of one backend's persistent runs */
struct cfg {
  char seg[128], track[64];
  const char *extra[8];
};
static void cfg_init(struct cfg *c, const char *dir, const char *backend, const char *more)
{
  memset(c, 0, sizeof(*c));
  snprintf(c->seg, sizeof(c->seg), "LRVM_SEGMENT=%s/seg", dir);
  snprintf(c->track, sizeof(c->track), "LRVM_TRACK=%s", backend);
  const char *e[] = {c->seg, c->track, "LRVM_HEAP_SIZE=256M", "LRVM_LOG_SIZE=16M", more, NULL};
  memcpy(c->extra, e, sizeof(e));
}

/* backend_line -- the shim's statistics must name the backend: it really was in use */
static void expect_backend(const struct result *r, const char *backend)
{
  char want[64];
  snprintf(want, sizeof(want), "stats: tracking %s:", backend);
  cr_expect(strstr(r->err, want) != NULL, "backend %s not in use: %s", backend, r->err);
}

Test(preload_kwrite, probe_every_backend, .timeout = 240)
{
  for (size_t b = 0; b < 3; b++) {
    char dir[64], in[128], scratch[128];
    tdir(dir);
    snprintf(in, sizeof(in), "%s/input", dir);
    snprintf(scratch, sizeof(scratch), "%s/scratch", dir);
    mkdir(scratch, 0700);
    gen_input(in, 20000);
    struct cfg c;
    cfg_init(&c, dir, backends[b], NULL);
    char *io[] = {(char *)need("LRVM_TEST_KWPROBE"), "io", in, scratch, NULL};
    struct result r = run(io, c.extra, 1, NULL);
    cr_expect_eq(r.status, 0, "%s: status %d\n%s\n%s", backends[b], r.status, r.out, r.err);
    cr_expect(strstr(r.out, "done 0 failures") && !strstr(r.out, "FAIL"), "%s:\n%s\n%s",
              backends[b], r.out, r.err);
    expect_backend(&r, backends[b]);
    char addr[64] = "";
    sscanf(r.out, "keep %63s", addr);
    cr_expect(strncmp(addr, "0x2000", 6) == 0, "%s: the block is not in the heap: %s",
              backends[b], addr);
    /* the bytes read(2) put into the heap were committed at exit */
    char *chk[] = {(char *)need("LRVM_TEST_KWPROBE"), "check", addr, in, NULL};
    r = run(chk, c.extra, 1, NULL);
    cr_expect_eq(r.status, 0, "%s: %s %s", backends[b], r.out, r.err);
    cr_expect(strstr(r.out, "persisted ok") != NULL, "%s: %s %s", backends[b], r.out, r.err);
    dir_remove(dir);
  }
}

/* seg_remove -- remove dir's segment and log (the next run starts a new one) */
static void seg_remove(const char *dir)
{
  char p[128];
  snprintf(p, sizeof(p), "%s/seg", dir);
  unlink(p);
  snprintf(p, sizeof(p), "%s/seg.log", dir);
  unlink(p);
}

/* same -- argv's stdout and status with the shim (cfg) equal those without */
static void same(char *const argv[], const struct cfg *c, const char *in_path, const char *what)
{
  if (access(argv[0], X_OK) != 0)
    cr_skip_test("%s is not installed (scripts/setup.sh installs it)", argv[0]);
  struct result a = run(argv, NULL, 0, in_path);
  struct result b = run(argv, c->extra, 1, in_path);
  cr_assert_eq(a.status, 0, "%s without the shim: %d %s", argv[0], a.status, a.err);
  cr_expect_eq(b.status, a.status, "%s (%s) with the shim: %d %s", argv[0], what, b.status,
               b.err);
  cr_expect(strlen(a.out) > 0);
  cr_expect(strcmp(a.out, b.out) == 0, "%s (%s): output differs with the shim", argv[0], what);
  expect_backend(&b, what);
}

Test(preload_kwrite, programs_every_backend, .timeout = 300)
{
  for (size_t b = 0; b < 3; b++) {
    char dir[64], in[128];
    tdir(dir);
    snprintf(in, sizeof(in), "%s/input", dir);
    gen_input(in, 100000L * scale());
    struct cfg c;
    cfg_init(&c, dir, backends[b], "LRVM_COMMIT=exit,interval:50ms");
    /* one segment per program: with the globals in it (LRVM_GLOBALS, on by default) a
     * segment belongs to the program that made it, another is refused */
    char *sort[] = {"/usr/bin/sort", "-k2,2", "-k1,1n", in, NULL};
    same(sort, &c, NULL, backends[b]);
    seg_remove(dir);
    char *awk[] = {"/usr/bin/gawk", "{ n[$2]++; s += $1 } END { for (k in n) c++; "
                   "print c, s, NR }", in, NULL};
    same(awk, &c, NULL, backends[b]);
    seg_remove(dir);
    char *kw_stdin[] = {(char *)need("LRVM_TEST_KWPROBE"), "stdin", NULL};
    same(kw_stdin, &c, in, backends[b]);   /* fgets + getline on stdin */
    dir_remove(dir);
  }
}

/* torture -- `runs` runs of mutex_probe under interval commits every 10 ms, each SIGKILLed
 * 0.3-1 s after it printed its state; returns how many restarts saw the invariant broken (runs killed before
 * they printed their state are not counted; *judged counts the others) */
static int torture(const char *mode, int runs, int *judged, const char *backend,
                   const char *how)
{
  char dir[64], wait[64];
  tdir(dir);
  struct cfg c;
  snprintf(wait, sizeof(wait), "LRVM_MUTEX_WAIT=%s", mode);
  cfg_init(&c, dir, backend, "LRVM_COMMIT=interval:10ms");
  c.extra[5] = wait;
  char *init[] = {(char *)need("LRVM_TEST_MUTEXPROBE"), "init", NULL};
  struct result r = run(init, c.extra, 1, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  char addr[64] = "";
  sscanf(r.out, "%63s", addr);
  cr_assert(strncmp(addr, "0x2000", 6) == 0, "%s", r.out);
  char *argv[] = {(char *)need("LRVM_TEST_MUTEXPROBE"), (char *)how, addr, NULL};
  unsigned seed = 12345;
  int broken = 0;
  *judged = 0;
  for (int i = 0; i < runs; i++) {
    struct proc p = start(argv, c.extra, 1, NULL);
    /* restart time varies (recovery replays the log): kill at a random moment AFTER the
     * program has judged and repaired the pair */
    struct stat st;
    for (int w = 0; w < 20000 && fstat(p.ofd, &st) == 0 && st.st_size == 0; w++) {
      struct timespec t1 = {0, 1000000L};
      nanosleep(&t1, NULL);
    }
    int ms = 300 + (int)(rand_r(&seed) % 700);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    kill(p.pid, SIGKILL);
    r = finish(p, 10000);
    cr_expect_eq(r.status, 128 + SIGKILL, "run %d: %s", i, r.err);
    if (strncmp(r.out, "state ", 6) != 0)
      continue;
    (*judged)++;
    if (strstr(r.out, "broken")) {
      broken++;
      if (strcmp(mode, "0") != 0)
        cr_log_error("run %d (%s): %s", i, backend, r.out);
    }
  }
  dir_remove(dir);
  return broken;
}

Test(preload_kwrite, mutex_wait_keeps_invariants, .timeout = 300)
{
  int runs = 10 * scale(), judged;
  int broken = torture("200ms", runs, &judged, "wp-async", "run");
  cr_expect(judged >= runs - 2, "only %d of %d runs printed their state", judged, runs);
  cr_expect_eq(broken, 0, "LRVM_MUTEX_WAIT=200ms: %d of %d restarts saw a half-made update",
               broken, judged);
  broken = torture("200ms", runs / 2, &judged, "mprotect", "run");
  cr_expect_eq(broken, 0, "LRVM_MUTEX_WAIT=200ms (mprotect): %d of %d restarts broken", broken,
               judged);
  /* Without the mode the torture does see half-made updates (it can fail): shown with the
   * busy variant, where nearly every instant is inside one. (The default variant's commits
   * land between bursts on this machine: mode-off violations there are rare.) Logged, not
   * asserted: likely, not certain. */
  broken = torture("0", runs, &judged, "wp-async", "busy");
  /* stderr, not cr_log_warn (a warning makes Criterion exit 1): shown in meson's test log */
  fprintf(stderr, "LRVM_MUTEX_WAIT=0 (busy variant): %d of %d restarts saw a half-made "
          "update%s\n", broken, judged, broken ? "" : " -- the torture was weak this time");
}

Test(preload_kwrite, mutex_wait_option_and_stats, .timeout = 120)
{
  char dir[64], in[128], scratch[128];
  tdir(dir);
  snprintf(in, sizeof(in), "%s/input", dir);
  snprintf(scratch, sizeof(scratch), "%s/scratch", dir);
  mkdir(scratch, 0700);
  gen_input(in, 20000);
  struct cfg c;
  cfg_init(&c, dir, "mprotect", "LRVM_MUTEX_WAIT=5");
  char *io[] = {(char *)need("LRVM_TEST_KWPROBE"), "io", in, scratch, NULL};
  struct result r = run(io, c.extra, 1, NULL);
  cr_expect_eq(r.status, 2, "%s", r.err);
  cr_expect(strstr(r.err, "LRVM_MUTEX_WAIT=5: invalid value; accepted: 0 (off) or a time") !=
            NULL, "%s", r.err);
  cfg_init(&c, dir, "mprotect", "LRVM_MUTEX_WAIT=20ms");
  c.extra[5] = "LRVM_COMMIT=exit,interval:5ms";
  r = run(io, c.extra, 1, NULL);
  cr_expect_eq(r.status, 0, "%s %s", r.out, r.err);
  cr_expect(strstr(r.err, "stats: mutex wait: ") && strstr(r.err, " forced (LRVM_MUTEX_WAIT"),
            "%s", r.err);
  dir_remove(dir);
}

/* With LRVM_FLUSH=0 the exit commit must make every earlier no_flush commit durable, even
 * when it finds nothing new to log itself (then it writes no record; persist.c flushes). */
Test(preload_kwrite, exit_after_no_flush_commits_is_durable, .timeout = 120)
{
  char dir[64], prev[64] = "";
  tdir(dir);
  struct cfg c;
  cfg_init(&c, dir, "wp-async", "LRVM_COMMIT=exit,interval:10ms");
  c.extra[5] = "LRVM_FLUSH=0";
  char *init[] = {(char *)need("LRVM_TEST_MUTEXPROBE"), "init", NULL};
  struct result r = run(init, c.extra, 1, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  char addr[64] = "";
  sscanf(r.out, "%63s", addr);
  for (int i = 0; i < 5; i++) {
    char *argv[] = {(char *)need("LRVM_TEST_MUTEXPROBE"), "run", addr, "400", NULL};
    r = run(argv, c.extra, 1, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    unsigned long long sx, sy, ex, ey;
    cr_assert(sscanf(r.out, "state %llu %llu ok\nend %llu %llu", &sx, &sy, &ex, &ey) == 4,
              "%s", r.out);
    char now[64];
    snprintf(now, sizeof(now), "%llu", sx);
    if (i > 0)
      cr_expect_str_eq(now, prev, "run %d started from %s, the previous run ended at %s", i,
                       now, prev);
    snprintf(prev, sizeof(prev), "%llu", ex);
  }
  dir_remove(dir);
}
