/* SPDX-License-Identifier: MIT */
/*
 * stacks.c -- stacks the program carves out of the heap (pthread_attr_setstack, makecontext)
 * are replaced by private mappings while a fault backend is in use.
 *
 * With LRVM_TRACK=uffd-sigbus or mprotect a heap page is write-protected at every commit
 * until its first write, which a fault reports. A stack is written by the KERNEL too: it
 * builds every signal frame there (including the frame of the fault that would open the
 * page: the process is then killed with SIGSEGV), and at a thread's exit it clears the
 * thread id in the thread descriptor at the stack's top (CLONE_CHILD_CLEARTID: a failed
 * write there leaves pthread_join waiting forever). Tested: a coroutine on a malloc'ed
 * makecontext stack died at its first commit. A stack's content means nothing after a
 * restart anyway, so such a stack is swapped for an anonymous mapping of the same size; the
 * program's heap block is left untouched and unused. The substitutes are remembered by the
 * block's address and size (a pool of coroutines or threads that reuses its stacks reuses
 * the substitutes); a block never seen again keeps its mapping until the process ends (at
 * most STACKS_MAX are remembered, beyond that each call maps a new one).
 * With wp-async (or no tracking) nothing is replaced: the kernel's writes are recorded there.
 */
#include "kwrite.h"

#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <ucontext.h>

#define STACKS_MAX 1024

static struct {
    uintptr_t heap;
    size_t size;
    void *map;
} substitutes[STACKS_MAX];
static size_t nsubstitutes;
static pthread_mutex_t substitutes_mu = PTHREAD_MUTEX_INITIALIZER;

/* stack_for -- p, or the private mapping that replaces the heap block [p, p+n) as a stack */
static void *stack_for(void *p, size_t n)
{
    if (p == NULL || n == 0 || !kw_hit(p, n))
        return p;
    void *m = NULL;
    pthread_mutex_lock(&substitutes_mu);
    for (size_t i = 0; i < nsubstitutes && m == NULL; i++)
        if (substitutes[i].heap == (uintptr_t)p && substitutes[i].size == n)
            m = substitutes[i].map;
    if (m == NULL) {
        m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (m == MAP_FAILED) {
            m = p; /* no memory: keep the program's stack (and the limit) rather than fail */
        } else if (nsubstitutes < STACKS_MAX) {
            substitutes[nsubstitutes].heap = (uintptr_t)p;
            substitutes[nsubstitutes].size = n;
            substitutes[nsubstitutes++].map = m;
        }
    }
    pthread_mutex_unlock(&substitutes_mu);
    return m;
}

SLOT(pthread_attr_setstack);
SLOT(makecontext);

/* pthread_attr_setstack -- libc's; a heap stack is replaced (file comment) */
KW_EXPORT int pthread_attr_setstack(pthread_attr_t *attr, void *addr, size_t size)
{
    return REAL(pthread_attr_setstack)(attr, stack_for(addr, size), size);
}

/* makecontext -- libc's; a heap stack is replaced (file comment). The function's arguments
 * (argc of them, at most 16 here) are passed on as glibc reads them: 64-bit words. */
KW_EXPORT void makecontext(ucontext_t *uc, void (*fn)(void), int argc, ...)
{
    long a[16] = {0};
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 16; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    uc->uc_stack.ss_sp = stack_for(uc->uc_stack.ss_sp, uc->uc_stack.ss_size);
    REAL(makecontext)
    (uc, fn, argc, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12],
     a[13], a[14], a[15]);
}

/* shim_stacks_setup -- resolve the real functions before main (see shim_kwrite_setup) */
void shim_stacks_setup(void)
{
    kw_try(&kw_slot_pthread_attr_setstack, "pthread_attr_setstack");
    kw_try(&kw_slot_makecontext, "makecontext");
}
