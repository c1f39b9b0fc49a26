/* SPDX-License-Identifier: MIT */
/*
 * crashnote.c -- what the restorability scan cannot see (an integer that is really a handle: a
 * pthread key, a descriptor; a pointer hidden in a tagged word) can still make a restored run
 * crash. Restarting it again would crash the same way every time, since it restores the same
 * commit. So a run that restored committed globals and dies of a fatal signal before its own
 * first commit writes a crash note into the segment's header (image_format.h, CRASH NOTE), and
 * the next start refuses with the note and the advice instead of crashing again.
 *
 * The handlers (SIGSEGV and SIGBUS through vmprim's chain, so that tracking faults still reach
 * vmprim first; SIGILL, SIGFPE, SIGABRT directly) are installed when the globals are restored,
 * just before main. A program that installs its own handler for one of them replaces ours: its
 * crashes are then its own business. After this process's first commit the handlers only pass
 * the signal on: the state is the run's own from then on, and a crash returns to that commit.
 *
 * In the handler (async-signal-safe only): fill the note, pwrite it into the header page of the
 * file (persist.c), put the default action back and return; the faulting instruction runs
 * again (SIGSEGV, SIGBUS, SIGILL, SIGFPE) or abort() raises again (SIGABRT), and the process
 * dies of the signal as it would have without us.
 */
#include "shim.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <ucontext.h>

#include <lrvm/vmprim.h>

#ifdef SHIM_HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

static volatile int armed;      /* restored, not committed yet */
static uint64_t restored_count; /* commit_count of the restored state */

#define NOTE_LO offsetof(struct image_header, crash_magic)
#define NOTE_CRC offsetof(struct image_header, crash_crc)

/* note_crc -- crc32c of crash_magic .. crash_sym */
static uint32_t note_crc(const struct image_header *h)
{
    return crc32c(0, (const char *)h + NOTE_LO, NOTE_CRC - NOTE_LO);
}

/* append -- s at *k in buf (len), NUL terminated */
static void append(char *buf, size_t len, size_t *k, const char *s)
{
    while (*s && *k + 1 < len)
        buf[(*k)++] = *s++;
    buf[*k] = 0;
}

/* where -- "f+0x1c < g+0x40 < main+0x9" of the first frames of the interrupted context (uc),
 * or "" without libunwind */
static void where(void *uc, char *buf, size_t len)
{
    buf[0] = 0;
#ifdef SHIM_HAVE_LIBUNWIND
    unw_cursor_t cur;
    if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) != 0)
        return;
    size_t k = 0;
    for (int depth = 0; depth < 4; depth++) {
        char name[64], hx[24];
        unw_word_t off = 0;
        unw_word_t ip = 0;
        unw_get_reg(&cur, UNW_REG_IP, &ip);
        if (unw_get_proc_name(&cur, name, sizeof(name), &off) != 0) {
            /* a stripped executable: its file name and the offset, for addr2line */
            const char *slash = strrchr(shim_exe.path, '/');
            size_t k2 = 0;
            name[0] = 0;
            append(name, sizeof(name), &k2, slash ? slash + 1 : shim_exe.path);
            off = ip - shim_exe.load_base;
        }
        if (depth)
            append(buf, len, &k, " < ");
        append(buf, len, &k, name);
        append(buf, len, &k, "+");
        append(buf, len, &k, shim_fmt_hex(hx, off));
        if (unw_step(&cur) <= 0)
            break;
    }
#else
    (void)uc;
    (void)len;
#endif
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    if (__atomic_exchange_n(&armed, 0, __ATOMIC_ACQ_REL)) {
        struct image_header n;
        memset(&n, 0, sizeof(n));
        n.crash_magic = IMG_CRASH_MAGIC;
        n.crash_signal = (uint32_t)sig;
        n.crash_commit_count = restored_count;
        n.crash_pid = (uint64_t)getpid();
        n.crash_addr = (uint64_t)(uintptr_t)si->si_addr;
        n.crash_pc = (uint64_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
        where(uc, n.crash_sym, sizeof(n.crash_sym));
        n.crash_crc = note_crc(&n);
        shim_persist_write_note((const char *)&n + NOTE_LO,
                                offsetof(struct image_header, crash_pad) - NOTE_LO, NOTE_LO);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL); /* the kernel's: our return address is the shim (sigchain.c) */
    if (si->si_code <= 0)
        raise(sig); /* sent, not caused by an instruction: send it again */
}

void shim_crash_arm(const struct image_header *h)
{
    restored_count = h->commit_count;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    __atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction old;
        int chain = sigs[i] == SIGSEGV || sigs[i] == SIGBUS; /* tracking faults stay vmprim's */
        /* never replace a handler the program (or a library's constructor) installed; for the
     * chained signals ask vmprim what the program's disposition is */
        if ((chain ? vmp_trap_set_chain(sigs[i], NULL, &old) : sigaction(sigs[i], NULL, &old)) !=
                0 ||
            (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
            continue;
        if (chain)
            vmp_trap_set_chain(sigs[i], &sa, NULL);
        else
            sigaction(sigs[i], &sa, NULL);
    }
}

void shim_crash_disarm(void)
{
    __atomic_store_n(&armed, 0, __ATOMIC_RELEASE);
}

int shim_crash_refuse(const struct image_header *h, const char *seg)
{
    if (h->version < IMG_FORMAT_VERSION || h->crash_magic != IMG_CRASH_MAGIC ||
        h->crash_commit_count != h->commit_count || h->crash_crc != note_crc(h))
        return 0;
    char prog[IMG_PATH_MAX], sym[IMG_SYM_MAX + 1], a[24], b[24], c[24], d[24];
    snprintf(prog, sizeof(prog), "%s", h->exe_path);
    const char *base = strrchr(prog, '/');
    memcpy(sym, h->crash_sym, IMG_SYM_MAX);
    sym[IMG_SYM_MAX] = 0;
    shim_say(2, "cannot restore ", base ? base + 1 : prog, "'s state from LRVM_SEGMENT=", seg,
             ": the last run that restored it (pid ", shim_fmt_u64(a, h->crash_pid), ") died of ",
             sigabbrev_np((int)h->crash_signal) ? "SIG" : "signal ",
             sigabbrev_np((int)h->crash_signal) ? sigabbrev_np((int)h->crash_signal)
                                                : shim_fmt_u64(b, h->crash_signal),
             " at ", shim_fmt_hex(c, h->crash_pc), sym[0] ? " in " : "", sym, " (fault address ",
             shim_fmt_hex(d, h->crash_addr),
             ") before its first commit, and "
             "would again: the restored globals hold state this process does not have. Run with "
             "LRVM_GLOBALS=0 to keep only the heap, or remove the segment and its log to start "
             "afresh",
             NULL);
    return EPERM;
}
