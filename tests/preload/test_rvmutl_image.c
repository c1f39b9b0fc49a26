/* SPDX-License-Identifier: MIT */
/*
 * test_rvmutl_image.c -- `rvmutl image` on segments built here with liblrvm (no shim), so it
 * also runs under ASan/UBSan (suite 'preload'): a header only in the segment file, a header
 * whose last update is still in the log (shown with it, counted as pending), a heap-only
 * segment, the old layout, garbage. LRVM_TEST_RVMUTL from meson.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rvm/rvm.h>

#include "heap_format.h"
#include "image_format.h"

/* utl -- run rvmutl image SEG [LOG]; stdout into out, returns the exit status */
static int utl(const char *seg, const char *log, char *out, size_t n)
{
    const char *bin = getenv("LRVM_TEST_RVMUTL");
    cr_assert(bin && *bin, "LRVM_TEST_RVMUTL not set: run through meson test");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s image %s %s", bin, seg, log ? log : "");
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* header -- a format-1 header as the shim writes it */
static void header(struct image_header *h, uint64_t glen, uint64_t commits)
{
    memset(h, 0, sizeof(*h));
    memcpy(h->magic, IMG_MAGIC, 8);
    h->version = IMG_FORMAT_VERSION;
    h->header_size = sizeof(*h);
    h->heap_base = 0x200000000000ull;
    h->heap_reserve = 64u << 20;
    h->globals_off = IMG_HEADER_SIZE;
    h->globals_len = glen;
    h->heap_off = IMG_HEADER_SIZE + glen;
    h->globals_vaddr = glen ? 0x555555558000ull : 0;
    h->load_base = 0x555555554000ull;
    h->id_kind = IMG_ID_GNU;
    h->id_len = 4;
    memcpy(h->build_id, "\xde\xad\xbe\xef", 4);
    snprintf(h->exe_path, sizeof(h->exe_path), "/usr/bin/example");
    h->flags = glen ? IMG_F_GLOBALS | IMG_F_GLOBALS_VALID : 0;
    h->commit_count = commits;
    h->last_commit_ns = 1700000000ull * 1000000000ull;
    h->last_commit_pid = 4242;
}

/* make_seg -- dir/name with header h and a heap header of 8 MiB backed */
static void make_seg(const char *path, const struct image_header *h)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, h, sizeof(*h), 0), (ssize_t)sizeof(*h));
    struct heap_header hh;
    memset(&hh, 0, sizeof(hh));
    memcpy(hh.magic, HEAP_MAGIC, 8);
    hh.size = 8u << 20;
    hh.nchunks = 2;
    cr_assert_eq(pwrite(fd, &hh, sizeof(hh), (off_t)h->heap_off), (ssize_t)sizeof(hh));
    cr_assert_eq(ftruncate(fd, (off_t)(h->heap_off + 65536)), 0);
    close(fd);
}

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-utlimg-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(rvmutl_image, .init = setup, .fini = teardown);

Test(rvmutl_image, header_from_the_file)
{
    char seg[128], out[8192];
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    struct image_header h;
    header(&h, 8192, 5);
    make_seg(seg, &h);
    cr_assert_eq(utl(seg, NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "  binary:      /usr/bin/example\n"), "%s", out);
    cr_assert(strstr(out, "  build-id:    deadbeef\n"), "%s", out);
    cr_assert(strstr(out, "  load base:   0x555555554000\n"), "%s", out);
    cr_assert(strstr(out, "  globals:     [0x555555558000, 0x55555555a000) 8192 bytes at segment "
                          "offset 4096, committed\n"),
              "%s", out);
    cr_assert(strstr(out, "  heap:        base 0x200000000000, reservation 64 MiB, at segment "
                          "offset 12288\n"),
              "%s", out);
    cr_assert(strstr(out, "  heap in use: 8 MiB backed (2 chunks of 4 MiB)\n"), "%s", out);
    cr_assert(strstr(out, "  commits:     5; last 2023-11-14 22:13:20 UTC by pid 4242\n"), "%s",
              out);
    cr_assert(strstr(out, "log ") && strstr(out, "absent"), "%s", out);
}

Test(rvmutl_image, pending_log_records_are_overlaid)
{
    char seg[128], log[128], out[8192];
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    snprintf(log, sizeof(log), "%s/seg.log", dir);
    struct image_header h;
    header(&h, 0, 1);
    make_seg(seg, &h);
    /* a child commits a new header (commit 2, pid 77) and exits without truncating */
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        rvm_options_t o;
        rvm_init_options(&o);
        o.log_dev = log;
        o.create_log_file = rvm_true;
        o.create_log_size = RVM_MK_OFFSET(0, 1u << 20);
        o.create_log_mode = 0600;
        o.truncate = 0;
        if (rvm_initialize(RVM_VERSION, &o) != RVM_SUCCESS)
            _exit(10);
        rvm_region_t r;
        rvm_init_region(&r);
        r.data_dev = seg;
        r.offset = RVM_MK_OFFSET(0, 0);
        r.length = IMG_HEADER_SIZE;
        if (rvm_map(&r, NULL) != RVM_SUCCESS)
            _exit(11);
        struct image_header *m = (struct image_header *)r.vmaddr;
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        if (rvm_begin_transaction(&tid, no_restore) != RVM_SUCCESS ||
            rvm_set_range(&tid, m, sizeof(*m)) != RVM_SUCCESS)
            _exit(12);
        m->commit_count = 2;
        m->last_commit_pid = 77;
        if (rvm_end_transaction(&tid, flush) != RVM_SUCCESS)
            _exit(13);
        _exit(0); /* no rvm_terminate: the record stays in the log */
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    cr_assert_eq(utl(seg, NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "  commits:     2; last ") && strstr(out, " by pid 77\n"), "%s", out);
    cr_assert(strstr(out, "1 committed record(s) not yet applied to the segment file; shown above "
                          "with them"),
              "%s", out);
    cr_assert(strstr(out, "not kept (heap-only segment, LRVM_GLOBALS=0)"), "%s", out);
    /* the file itself still says 1: image is read-only */
    int fd = open(seg, O_RDONLY);
    struct image_header f;
    cr_assert_eq(pread(fd, &f, sizeof(f), 0), (ssize_t)sizeof(f));
    close(fd);
    cr_assert_eq(f.commit_count, 1);
}

Test(rvmutl_image, foreign_files_are_named)
{
    char seg[128], out[8192];
    snprintf(seg, sizeof(seg), "%s/old", dir);
    int fd = open(seg, O_RDWR | O_CREAT, 0600);
    cr_assert_eq(pwrite(fd, HEAP_MAGIC, 8, 0), 8);
    close(fd);
    cr_assert_eq(utl(seg, NULL, out, sizeof(out)), 1, "%s", out);
    cr_assert(strstr(out, "a heap in the layout before segment format 1"), "%s", out);
    snprintf(seg, sizeof(seg), "%s/text", dir);
    fd = open(seg, O_RDWR | O_CREAT, 0600);
    cr_assert_eq(pwrite(fd, "hello world\n", 12, 0), 12);
    close(fd);
    cr_assert_eq(utl(seg, NULL, out, sizeof(out)), 1, "%s", out);
    cr_assert(strstr(out, "not an lrvm process-image segment"), "%s", out);
    snprintf(seg, sizeof(seg), "%s/missing", dir);
    cr_assert_eq(utl(seg, NULL, out, sizeof(out)), 1, "%s", out);
}
