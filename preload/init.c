/* SPDX-License-Identifier: MIT */
/*
 * init.c -- start-up: when the shim decides, in what order it sets up, and what it refuses.
 *
 * The first malloc of the process (or our constructor, whichever comes first) initialises:
 *   1. AT_SECURE (setuid/setgid/capabilities) -> INACTIVE: glibc serves everything and no LRVM_*
 *      variable is even read (a user must not steer a privileged program's files).
 *   2. parse the options table (env.c); an invalid value stops the program (status 2).
 *   3. with LRVM_SEGMENT and LRVM_GLOBALS: re-exec once with randomisation off (reexec.c).
 *   4. reserve and create the heap (shimheap.c); failure stops the program (status 2).
 * Nested allocations during these steps (dlsym, strerror's buffer, ...) come from the bootstrap
 * arena. The constructor then, with malloc working: fork handlers, commit hooks, and removes
 * the shim from LD_PRELOAD so that exec'd programs do not inherit it (unless LRVM_INHERIT).
 *
 * Why _exit(2) and not exit(2) on refusal: exit runs atexit handlers and stdio flushing that
 * call malloc, which has nothing to serve from; the message is already written.
 */
#include "shim.h"

#include <dlfcn.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

volatile int shim_state;
static __thread int init_thread __attribute__((tls_model("initial-exec")));

/* shim_is_secure -- the kernel says AT_SECURE, or the test hook asks to behave as if */
int shim_is_secure(char *const *envp)
{
    if (getauxval(AT_SECURE))
        return 1;
    for (; envp && *envp; envp++)
        if (strcmp(*envp, "_LRVM_TEST_AT_SECURE=1") == 0)
            return 1; /* test hook: can only turn the shim off, never on */
    return 0;
}

/* init_run -- steps 1-4 above; returns the state to settle in */
static int init_run(void)
{
    char **envp = environ;
    if (!envp)
        return SHIM_UNINIT; /* too early (libc not started): stay on the bootstrap arena */
    if (shim_is_secure(envp)) {
        if (boot_resolve_real())
            _exit(2);
        /* silence here was the bug: the user learned that nothing persisted only when the
     * state was gone. A fixed text; no LRVM_* variable is read to compose it. */
        shim_say(2,
                 "persistence is OFF for this program: it runs in secure mode (AT_SECURE: "
                 "set-user-ID, set-group-ID or file capabilities), where the shim stays inactive "
                 "so that no user can steer a privileged program's files; it runs with ordinary "
                 "memory and nothing of it is kept",
                 NULL);
        return SHIM_INACTIVE;
    }
    if (shim_env_parse(envp, 2) || shim_self_range())
        _exit(2);
    if (shim_opts.segment && shim_opts.globals)
        shim_reexec_norandom(); /* before the segment is opened or locked (reexec.c) */
    if (shim_heap_setup())
        _exit(2);
    return SHIM_ACTIVE;
}

/* shim_ensure_init -- initialise once; other threads wait, the initialiser's own nested calls
 * get SHIM_INITING (bootstrap arena) */
int shim_ensure_init(void)
{
    for (;;) {
        int s = __atomic_load_n(&shim_state, __ATOMIC_ACQUIRE);
        if (s >= SHIM_ACTIVE)
            return s;
        if (s == SHIM_INITING) {
            /* Once the internal heap exists, another thread is served from it as the initialiser
       * is: such a thread is liblrvm's own (rvm_initialize starts the log's truncation
       * thread, which allocates), and the initialiser may be waiting for it (rvm_map waits
       * for truncation): spinning here would deadlock (a restart after a 1 GiB commit did). */
            if (init_thread || shim_internal_heap != NULL)
                return SHIM_INITING;
            sched_yield();
            continue;
        }
        int expect = SHIM_UNINIT;
        if (!__atomic_compare_exchange_n(&shim_state, &expect, SHIM_INITING, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue;
        init_thread = 1;
        int r = init_run();
        init_thread = 0;
        __atomic_store_n(&shim_state, r, __ATOMIC_RELEASE);
        return r == SHIM_UNINIT ? SHIM_INITING : r;
    }
}

/* preload_drop_self -- remove our library from LD_PRELOAD, in place (the value only shrinks,
 * so no allocation), so that programs this one execs start without the shim */
static void preload_drop_self(void)
{
    Dl_info di;
    char *v = getenv("LD_PRELOAD");
    if (!v || !dladdr((void *)preload_drop_self, &di) || !di.dli_fname)
        return;
    const char *self = strrchr(di.dli_fname, '/');
    self = self ? self + 1 : di.dli_fname;
    char *out = v;
    const char *p = v;
    while (*p) {
        size_t sep = strspn(p, " :");
        p += sep;
        size_t len = strcspn(p, " :");
        if (!len)
            break;
        const char *base = p + len;
        while (base > p && base[-1] != '/')
            base--;
        int mine =
            (size_t)(p + len - base) == strlen(self) && strncmp(base, self, strlen(self)) == 0;
        if (!mine) {
            if (out != v)
                *out++ = ':';
            memmove(out, p, len);
            out += len;
        }
        p += len;
    }
    *out = 0;
    if (!*v)
        unsetenv("LD_PRELOAD");
}

/* shim_ctor -- make sure the decision is taken before main, then install what needs malloc */
__attribute__((constructor(101))) static void shim_ctor(void)
{
    int s = shim_ensure_init();
    if (s != SHIM_ACTIVE)
        return; /* INACTIVE: AT_SECURE, nothing else to do (ld.so ignores LD_PRELOAD anyway) */
    shim_kwrite_setup();
    if (shim_sigchain_setup() || shim_heap_atfork() || shim_commit_setup() || shim_aware_setup() ||
        shim_mutex_setup())
        _exit(2);
    if (shim_persistent)
        shim_libc_probe(); /* libc's FILE, stdio buffers, DIR: volatile (libcobj.c) */
    if (!shim_opts.inherit)
        preload_drop_self();
}
