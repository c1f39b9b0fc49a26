/* SPDX-License-Identifier: MIT */
/*
 * test_preload_release.c -- memory the heap gives back to the kernel and reuses stays tracked
 * and is diffed against what was COMMITTED, with every DIRTY backend.
 *
 * When a program frees a large block the heap releases its pages (MADV_DONTNEED): they then
 * read as zeros while the segment still holds the bytes of the last commit. Each test fills
 * 16 MiB with 0xAA and commits it (run 1); run 2 frees it and writes a new allocation over
 * the released pages; run 3 must find exactly run 2's bytes. Both shapes are tried: one huge
 * block (whole chunks released at free) and 100 KiB blocks (free spans purged).
 *  - reuse: new bytes everywhere (uffd-sigbus lost every page: the release dropped the
 *    write protection, so the writes were never seen);
 *  - calloc: zeros over the released pages (mprotect and uffd-sigbus kept 0xAA: the first
 *    write found a zero page and took it for the committed image, so zeros were "no change");
 *  - poke: one byte per page, the rest never written: a committed page must be whole again;
 *  - commit-kill: an acknowledged rvm_commit, then SIGKILL: the commit holds the new bytes.
 * Env (from meson): LRVM_TEST_SHIM, LRVM_TEST_RELPROBE.
 */
#include "child.h"

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

/* rel_run -- release_probe ARGS... under the shim with segment dir/seg and backend */
static struct result rel_run(const char *dir, const char *backend, const char *a1, const char *a2,
                             const char *a3, const char *a4, const char *a5)
{
    char seg[256], track[64];
    snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", dir);
    snprintf(track, sizeof(track), "LRVM_TRACK=%s", backend);
    const char *extra[] = {seg, track, "LRVM_HEAP_SIZE=256M", "LRVM_LOG_SIZE=96M", NULL};
    char *argv[] = {(char *)child_need("LRVM_TEST_RELPROBE"),
                    (char *)a1,
                    (char *)a2,
                    (char *)a3,
                    (char *)a4,
                    (char *)a5,
                    NULL};
    return child_run(argv, extra, CHILD_SHIM | CHILD_STATS, NULL, 120000);
}

/* scenario -- fill 0xAA, then `mode` with byte `byte` (and `how`), then check `byte` */
static void scenario(const char *mode, const char *shape, const char *byte, const char *how)
{
    for (size_t b = 0; b < sizeof(backends) / sizeof(*backends); b++) {
        char dir[64];
        child_tdir(dir, sizeof(dir), "release");
        struct result r = rel_run(dir, backends[b], "fill", "8", shape, "0xaa", NULL);
        cr_assert_eq(r.status, 0, "%s fill: %s%s", backends[b], r.out, r.err);
        cr_assert(strstr(r.err, "commit failed") == NULL, "%s: %s", backends[b], r.err);
        r = rel_run(dir, backends[b], "check", "0xaa", NULL, NULL, NULL);
        cr_assert_eq(r.status, 0, "%s after fill: %s%s", backends[b], r.out, r.err);

        r = rel_run(dir, backends[b], mode, "8", shape, byte, how);
        int want = how ? 128 + SIGKILL : 0;
        cr_assert_eq(r.status, want, "%s %s: status %d %s%s", backends[b], mode, r.status, r.out,
                     r.err);
        cr_assert(strstr(r.err, "commit failed") == NULL, "%s: %s", backends[b], r.err);
        r = rel_run(dir, backends[b], "check", byte, strcmp(mode, "poke") == 0 ? "poke" : NULL,
                    NULL, NULL);
        cr_expect_eq(r.status, 0, "%s, %s %s over released memory: the restart shows\n%s%s",
                     backends[b], mode, shape, r.out, r.err);
        child_dir_remove(dir);
    }
}

Test(preload_release, reuse_huge, .timeout = 120)
{
    scenario("reuse", "huge", "0x55", NULL);
}

Test(preload_release, reuse_small, .timeout = 120)
{
    scenario("reuse", "small", "0x55", NULL);
}

Test(preload_release, calloc_huge, .timeout = 120)
{
    scenario("calloc", "huge", "0", NULL);
}

Test(preload_release, calloc_small, .timeout = 120)
{
    scenario("calloc", "small", "0", NULL);
}

Test(preload_release, poke_huge, .timeout = 120)
{
    scenario("poke", "huge", "0x55", NULL);
}

Test(preload_release, commit_kill_huge, .timeout = 120)
{
    scenario("reuse", "huge", "0x33", "commit-kill");
}
