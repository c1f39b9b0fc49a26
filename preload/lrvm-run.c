/* SPDX-License-Identifier: MIT */
/*
 * lrvm-run -- run a program under the lrvm shim.
 *
 *   lrvm-run [options] [--] PROGRAM [ARGS...]
 *
 * Each option sets the LRVM_* variable of the same name (--heap-size 1G == LRVM_HEAP_SIZE=1G;
 * the table is env.c's, so the two can never drift apart). lrvm-run then validates the whole
 * environment with the shim's own parser (an error is reported here, with the same message),
 * puts liblrvm-preload.so first in LD_PRELOAD, turns address-space randomisation off for the
 * program (personality ADDR_NO_RANDOMIZE, as `setarch -R` does: pointers into the executable
 * and libraries must mean the same thing on every run) and execs it: the exit status is the
 * program's. lrvm-run's own failures exit with 125 (usage, invalid option), 126 (shim not found)
 * or 127 (program not found), like env(1) and nohup(1).
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

extern char **environ;

#define SHIM_NAME "liblrvm-preload.so"

/* usage -- the help text, generated from the options table */
static void usage(int fd)
{
    dprintf(fd,
            "usage: lrvm-run [options] [--] PROGRAM [ARGS...]\n"
            "Runs PROGRAM with lrvm's persistent heap as its malloc (LD_PRELOAD of " SHIM_NAME
            "),\n"
            "address-space randomisation off. Exit status: PROGRAM's; 125 usage error, 126 shim\n"
            "not found, 127 PROGRAM not found. Each option sets the variable named below; the\n"
            "variables can also be set directly in the environment.\n\n"
            "options (--name VALUE or --name=VALUE):\n");
    shim_env_help(fd, 1);
    dprintf(fd, "  %-16s this text\n", "--help");
}

/* find_shim -- SHIM_NAME next to this executable, or in ../lib (installed layouts) */
static int find_shim(char *out, size_t outsz)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    *slash = 0;
    static const char *const rel[] = {"", "/../lib", "/../lib/x86_64-linux-gnu", "/../lib64"};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        int k = snprintf(out, outsz, "%s%s/%s", exe, rel[i], SHIM_NAME);
        if (k < 0 || (size_t)k >= outsz)
            continue;
        char real[PATH_MAX];
        if (access(out, R_OK) == 0 && realpath(out, real)) {
            int r = snprintf(out, outsz, "%s", real);
            return r < 0 || (size_t)r >= outsz ? -1 : 0;
        }
    }
    return -1;
}

/* main -- parse options into the environment, validate, exec */
/* program_path -- the file execvp would run for prog (PATH search as execvp does it); 0 or -1 */
static int program_path(const char *prog, char *out, size_t outsz)
{
    if (strchr(prog, '/'))
        return snprintf(out, outsz, "%s", prog) < (int)outsz ? 0 : -1;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/bin:/usr/bin";
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, ":");
        int n = snprintf(out, outsz, "%.*s%s%s", (int)len, p, len ? "/" : "", prog);
        if (n > 0 && (size_t)n < outsz && access(out, X_OK) == 0)
            return 0;
        p += len + (p[len] == ':');
    }
    return -1;
}

/*
 * say_if_secure -- the kernel starts a set-user-ID or set-group-ID program (or one with file
 * capabilities) that raises privileges in secure mode (AT_SECURE): the dynamic loader then
 * ignores LD_PRELOAD, and the shim would stay inactive even if loaded (a user must not steer
 * a privileged program's files). The program runs, but persists nothing: say so, since
 * otherwise the user learns it only when the state is gone. The same when lrvm-run itself
 * runs in secure mode (then so does everything it starts).
 */
static void say_if_secure(const char *prog)
{
    const char *why = NULL;
    char path[PATH_MAX];
    struct stat st;
    if (getauxval(AT_SECURE))
        why = "lrvm-run itself runs in secure mode (AT_SECURE)";
    else if (program_path(prog, path, sizeof(path)) == 0 && stat(path, &st) == 0) {
        if ((st.st_mode & S_ISUID) && st.st_uid != getuid())
            why = "it is set-user-ID";
        else if ((st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP) && st.st_gid != getgid())
            why = "it is set-group-ID";
        else if (getuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0)
            why = "it has file capabilities";
    }
    if (why)
        fprintf(stderr,
                "lrvm-run: persistence is OFF for %s: %s, so the kernel runs it in secure "
                "mode (AT_SECURE), where the lrvm shim stays inactive; it will run with "
                "ordinary memory and nothing of it will be kept. Run a copy without the "
                "set-ID bits or capabilities to persist it.\n",
                prog, why);
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(1);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            break; /* the program */
        char name[64];
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof(name))
            len = sizeof(name) - 1;
        memcpy(name, a + 2, len);
        name[len] = 0;
        int takes;
        const char *var = shim_env_option(name, &takes);
        if (!var) {
            fprintf(stderr, "lrvm-run: unknown option --%s (lrvm-run --help lists them)\n", name);
            return 125;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lrvm-run: --%s needs a value (lrvm-run --help)\n", name);
                return 125;
            }
            val = argv[++i];
        }
        setenv(var, val, 1);
    }
    if (i >= argc) {
        fprintf(stderr, "lrvm-run: no program given\n");
        usage(2);
        return 125;
    }
    if (shim_env_parse(environ, 2))
        return 125; /* the parser named the variable and the accepted values */

    char shim[PATH_MAX];
    if (find_shim(shim, sizeof(shim))) {
        fprintf(stderr, "lrvm-run: cannot find " SHIM_NAME " next to lrvm-run or in ../lib; "
                        "reinstall lrvm or set LD_PRELOAD yourself\n");
        return 126;
    }
    const char *old = getenv("LD_PRELOAD");
    char *pre = malloc(strlen(shim) + (old ? strlen(old) : 0) + 2);
    if (!pre)
        return 125;
    sprintf(pre, "%s%s%s", shim, old && *old ? ":" : "", old ? old : "");
    setenv("LD_PRELOAD", pre, 1);

    int pers = personality(0xffffffff);
    if (pers == -1 || personality((unsigned long)pers | ADDR_NO_RANDOMIZE) == -1)
        fprintf(stderr,
                "lrvm-run: warning: cannot turn address-space randomisation off (%s); "
                "the heap still has a fixed base\n",
                strerror(errno));
    say_if_secure(argv[i]);
    execvp(argv[i], argv + i);
    int err = errno;
    fprintf(stderr, "lrvm-run: cannot run %s: %s\n", argv[i], strerror(err));
    return err == ENOENT ? 127 : 126;
}
