/* SPDX-License-Identifier: MIT */
/*
 * fuzz_segment.c -- libFuzzer target: the segment loader's header reader over arbitrary
 * bytes, through the public rvm_load_segment.
 *
 * RVM is initialised once per fuzzing process (LLVMFuzzerInitialize) with a fresh log in a
 * temporary directory. Each input becomes the header page of a segment file followed by
 * SEG_PAGES zero pages; rvm_load_segment must either refuse it with an error code or map
 * the regions it describes -- never crash, never map over memory the process already uses
 * (a foreign header naming live addresses must be refused, not obeyed), never leak. A loaded
 * segment is released again so every input starts from the same state.
 *
 * With input byte 0 == 'S' the harness repairs the struct id and version string at the start
 * of the header (the original layout: int struct_id = 1, char version[128]) so the fuzzer
 * spends its time on region counts, lengths, offsets and addresses.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>

#define SEG_PAGES 16

static char dir[256], log_path[300], seg_path[300];
static size_t page;
static unsigned char *buf;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* cleanup -- remove the temporary log, segment and directory when the fuzzer exits. */
static void cleanup(void)
{
    unlink(seg_path);
    unlink(log_path);
    rmdir(dir);
}

/* LLVMFuzzerInitialize -- once per fuzzing process: a temporary directory, a log, RVM up */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    page = (size_t)sysconf(_SC_PAGESIZE);
    buf = calloc(SEG_PAGES + 1, page);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lrvm-fuzzseg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!buf || !mkdtemp(dir))
        abort();
    snprintf(log_path, sizeof log_path, "%s/log", dir);
    snprintf(seg_path, sizeof seg_path, "%s/seg", dir);
    atexit(cleanup);
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = log_path;
    o.truncate = 0;
    o.create_log_file = rvm_true;
    o.create_log_size = RVM_MK_OFFSET(0, 256 * 1024);
    o.create_log_mode = 0600;
    rvm_return_t rc = rvm_initialize(RVM_VERSION, &o);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "fuzz_segment: rvm_initialize: %s\n", rvm_return(rc));
        abort();
    }
    return 0;
}

/* LLVMFuzzerTestOneInput -- one input as a segment header: load, and release if loaded */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(buf, 0, (SEG_PAGES + 1) * page);
    int seal = size > 0 && data[0] == 'S';
    if (seal) {
        data++;
        size--;
    }
    memcpy(buf, data, size < page ? size : page);
    if (seal) {
        int id = 1;
        memcpy(buf, &id, sizeof id);
        memset(buf + 4, 0, 128);
        strcpy((char *)buf + 4, "RVM Segment Loader Release 0.1  15 Nov. 1990");
    }
    FILE *f = fopen(seg_path, "w");
    if (!f || fwrite(buf, page, SEG_PAGES + 1, f) != SEG_PAGES + 1)
        abort();
    fclose(f);
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    rvm_return_t rc = rvm_load_segment(seg_path, RVM_MK_OFFSET(0, 0), NULL, &n, &defs);
    if (rc == RVM_SUCCESS) {
        rc = rvm_release_segment(n, &defs);
        if (rc != RVM_SUCCESS) {
            fprintf(stderr, "fuzz_segment: release of a loaded segment failed: %s\n",
                    rvm_return(rc));
            abort();
        }
    }
    return 0;
}
