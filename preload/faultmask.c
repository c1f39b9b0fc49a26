/*
 * faultmask.c -- SIGSEGV and SIGBUS stay deliverable in every thread (fault backends).
 *
 * With LRVM_TRACK=mprotect (SIGSEGV) or uffd-sigbus (SIGBUS), the first write of an epoch to
 * a heap page is a synchronous fault that vmprim's handler turns into "page recorded, write
 * allowed". If the writing thread blocks that signal, the kernel cannot run the handler and
 * kills the process instead. Blocking every signal is common practice for helper threads
 * (GLib blocks all signals around the creation of its worker threads; so did this shim's own
 * commit thread), and POSIX leaves blocked synchronous faults undefined anyway. So while a
 * fault backend is in use (shim_kw_hi != 0), the program's sigprocmask and pthread_sigmask
 * never block SIGSEGV or SIGBUS: they are removed from SIG_BLOCK and SIG_SETMASK sets. A
 * program that blocks them on purpose and relies on it (rare: a fault while blocked is fatal
 * anyway) sees them unblocked; sigaction's sa_mask (signals blocked while a handler runs) is
 * not changed here (sigchain.c owns sigaction).
 *
 * The library's own calls (vmprim, liblrvm, commit.c) keep their exact meaning: they are
 * bound at link time with -Wl,--wrap (as in mutexwait.c) to the unfiltered version. Both are
 * the rt_sigprocmask system call with glibc's rule for its internal signals, so that no
 * dlsym is needed (the library's own calls run in fault handlers, before main).
 */
#include "shim.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FM_EXPORT __attribute__((visibility("default")))

/* fm_mask -- pthread_sigmask's semantics by the system call (no dlsym: the library's own
 * calls run inside fault handlers, before main): glibc's two internal signals (32, 33:
 * cancellation and setxid) are never blocked, as glibc guarantees; with fault != 0, neither
 * are SIGSEGV and SIGBUS while a fault backend is in use. Returns 0 or an errno. */
static int fm_mask(int how, const sigset_t *set, sigset_t *old, int fault)
{
  sigset_t tmp;
  if (set != NULL && how != SIG_UNBLOCK) {
    tmp = *set;
    tmp.__val[0] &= ~((1ul << 31) | (1ul << 32));   /* bit n-1 is signal n */
    if (fault && shim_kw_hi != 0)
      tmp.__val[0] &= ~((1ul << (SIGSEGV - 1)) | (1ul << (SIGBUS - 1)));
    set = &tmp;
  }
  int saved = errno;
  long r = syscall(SYS_rt_sigprocmask, how, set, old, _NSIG / 8);
  int err = r == 0 ? 0 : errno;
  errno = saved;
  return err;
}

/* pthread_sigmask -- libc's pthread_sigmask, never blocking SIGSEGV/SIGBUS with a fault backend */
FM_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
  return fm_mask(how, set, old, 1);
}

/* sigprocmask -- libc's sigprocmask, never blocking SIGSEGV/SIGBUS with a fault backend */
FM_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
  int err = fm_mask(how, set, old, 1);
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

/* this library's own calls (-Wl,--wrap): unchanged meaning */
int __wrap_sigprocmask(int how, const sigset_t *set, sigset_t *old);
int __wrap_pthread_sigmask(int how, const sigset_t *set, sigset_t *old);
int __wrap_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
  return fm_mask(how, set, old, 0);
}
int __wrap_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
  int err = fm_mask(how, set, old, 0);
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}
