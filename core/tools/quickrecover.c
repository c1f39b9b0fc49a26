/*
 * quickrecover.c -- W4 while designing.
 *   quickrecover DIR w   1000 flush txns (4 random 8-byte updates of an 8 MB segment),
 *                        then exit without truncating, as after kill -9
 *   quickrecover DIR r   time rvm_initialize = recovery of those 1000 records (wall, CPU)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <rvm/rvm.h>

#define CK(x)                                                                          \
    do {                                                                               \
        rvm_return_t r_ = (x);                                                         \
        if (r_) {                                                                      \
            fprintf(stderr, "%s: %s %s\n", #x, rvm_return(r_), rvm_errmsg);            \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* main -- w: make the log, r: time its recovery */
int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: quickrecover DIR w|r\n");
        return 2;
    }
    char lp[512], sp[512];
    snprintf(lp, sizeof lp, "%s/w4log", argv[1]);
    snprintf(sp, sizeof sp, "%s/w4seg", argv[1]);
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = lp;
    o->truncate = 0;
    if (argv[2][0] == 'w') {
        unlink(lp);
        unlink(sp);
        /* a written (not sparse) 8 MB segment, as after loading the array */
        int fd = open(sp, O_RDWR | O_CREAT, 0600);
        static char z[1 << 20];
        for (int i = 0; i < 8; i++)
            if (fd < 0 || pwrite(fd, z, sizeof z, (off_t)i << 20) != (ssize_t)sizeof z)
                return 1;
        fsync(fd);
        close(fd);
        rvm_offset_t l = RVM_MK_OFFSET(0, 64 << 20);
        CK(rvm_create_log(o, &l, 0600));
        CK(RVM_INIT(o));
        rvm_region_t *r = rvm_malloc_region();
        r->data_dev = sp;
        CK(rvm_map(r, NULL));
        long *a = (long *)r->vmaddr;
        for (int i = 0; i < 1000; i++) {
            rvm_tid_t t;
            rvm_init_tid(&t);
            CK(rvm_begin_transaction(&t, no_restore));
            for (int k = 0; k < 4; k++) {
                long j = rand() % 1000000;
                CK(rvm_set_range(&t, &a[j], 8));
                a[j] = i;
            }
            CK(rvm_end_transaction(&t, flush));
        }
        _exit(0);
    }
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    CK(RVM_INIT(o));
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("W4 recovery of 1000 txns: wall %.2f ms, cpu %.2f ms\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
           (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6);
    return 0;
}
