/* SPDX-License-Identifier: MIT */
/*
 * rdsinit.c -- make an RVM data segment holding an empty RDS heap, as the original LRVM
 * distribution's rdsinit does, with the same command line and the same dialogue:
 *
 *   rdsinit log data_seg                                        ask for everything
 *   rdsinit log data_seg datalen saddr hlen slen nl chunk       ask only for confirmation
 *   rdsinit -f log data_seg datalen saddr hlen slen nl chunk    no questions (scripts)
 *
 * Numbers may be decimal, 0x-hex or 0-octal. The log must exist (rvmutl i / create-log).
 * Nothing is written before every parameter is valid and confirmed; the segment file is then
 * created (preallocated, so a full disk is an error now and not a SIGBUS later) and
 * rds_zap_heap writes the header and the heap through the log and truncates it, so the file
 * is complete when rdsinit says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rvm/rds.h>
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>

#include "rds_format.h"

struct params {
    unsigned long datalen, saddr, hlen, slen, nlists, chunk;
};

static void usage(void)
{
    printf("Usage: rdsinit [-f] log data_seg [ datalen saddr hlen slen nl chunk ] \n"
           "  where\n"
           "    -f       supplied parameter are firm, do not ask for confirm\n"
           "    log      is the name of log file/device\n"
           "    data_seg is the name of data segment file/device\n"
           "    datalen  gives the length of data segment\n"
           "    saddr    is the starting address of rvm\n"
           "    hlen     is the heap length\n"
           "    slen     is the static length\n"
           "    nl       is the number of free list used by RDS\n"
           "    chunk    is the chunksize\n");
}

static void quit(void)
{
    printf("rdsinit quit.  No permanent change is made\n");
    exit(1);
}

/* read_line -- one line of the dialogue; end of input means quit */
static void read_line(char *buf, size_t n)
{
    if (fgets(buf, (int)n, stdin) == NULL) {
        printf("\n");
        quit();
    }
}

/* answer -- y/Y/empty: 1, q/Q: quit, anything else: 0 */
static int answer(void)
{
    char s[120];
    read_line(s, sizeof(s));
    if (!strcmp(s, "y\n") || !strcmp(s, "Y\n") || !strcmp(s, "\n"))
        return 1;
    if (!strcmp(s, "q\n") || !strcmp(s, "Q\n"))
        quit();
    return 0;
}

/* ask -- prompt for one number, show it (raised to min, rounded up to unit), confirm */
static unsigned long ask(const char *prompt, const char *explain, unsigned long unit,
                         unsigned long min)
{
    for (;;) {
        char s[80];
        printf("%s   ==> please enter %s: ", explain, prompt);
        fflush(stdout);
        read_line(s, sizeof(s));
        unsigned long v = strtoul(s, NULL, 0), t = v < min ? min : v;
        if (unit && t % unit)
            t += unit - t % unit;
        printf("   ====> You have entered %lu (in hex 0x%lx). ", v, v);
        if (v < min)
            printf("\n         Umm... minimum is %lu (in hex 0x%lx) ", min, min);
        if (t != (v < min ? min : v))
            printf("\n         Umm... not a multiple of %lu.  I need to round it\n"
                   "         up to %lu (in hex 0x%lx). ",
                   unit, t, t);
        printf("Accept ? (y|n|q) ");
        fflush(stdout);
        if (answer())
            return t;
        explain = "";
    }
}

/* ask_all -- the interactive dialogue for the six numbers */
static void ask_all(struct params *p)
{
    unsigned long pg = RVM_PAGE_SIZE;
    printf("\n============================================================\n"
           "  Getting parameters for RDS\n"
           "============================================================\n");
    p->datalen = ask("length of data segment",
                     "1) length of data segment file/device "
                     "(heap + static + one page of segment header)\n",
                     pg, 3 * pg);
    p->saddr = ask("starting address of rvm",
                   "2) starting address of rvm: where the heap "
                   "and then the static area are mapped;\n   page aligned, far above the "
                   "program's break and libraries (e.g. 0x20000000)\n",
                   pg, 0x2000000);
    for (;;) {
        p->hlen = ask("the heap length", "3) heap length (a multiple of the page size)\n", pg, pg);
        p->slen =
            ask("the static length", "4) static length (a multiple of the page size)\n", pg, pg);
        if (p->hlen + p->slen + RVM_SEGMENT_HDR_SIZE <= p->datalen)
            break;
        printf("\n   Sorry ! your heap len + static len is too large !\n"
               "   their sum must be at most 0x%lx (%lu)\n   please re-enter\n\n",
               p->datalen - RVM_SEGMENT_HDR_SIZE, p->datalen - RVM_SEGMENT_HDR_SIZE);
    }
    p->nlists = ask("a decimal value for nlists",
                    "5) nlists: number of free lists "
                    "(100 is a reasonable choice)\n",
                    0, RDS_MIN_FREE_LISTS);
    p->chunk = ask("a decimal value for chunksize",
                   "6) chunksize: the unit of allocation, "
                   "a multiple of sizeof(char *)\n",
                   sizeof(char *), RDS_MIN_CHUNK_SIZE);
}

/* confirm -- show the parameters and ask; 1 if agreed */
static int confirm(const struct params *p)
{
    printf("\nThe following parameters are chosen:\n");
    printf("   length of data segment: %#10lx (%10lu)\n", p->datalen, p->datalen);
    printf("  starting address of rvm: %#10lx (%10lu)\n", p->saddr, p->saddr);
    printf("                 heap len: %#10lx (%10lu)\n", p->hlen, p->hlen);
    printf("               static len: %#10lx (%10lu)\n", p->slen, p->slen);
    printf("                   nlists: %#10lx (%10lu)\n", p->nlists, p->nlists);
    printf("               chunk size: %#10lx (%10lu)\n", p->chunk, p->chunk);
    printf("Do you agree with these parameters ? (y|n|q) ");
    fflush(stdout);
    return answer();
}

/* check -- every rule the heap needs; prints the first broken one */
static int check(const struct params *p)
{
    unsigned long pg = RVM_PAGE_SIZE;
    const char *why = NULL;
    if (p->saddr == 0 || p->saddr % pg)
        why = "saddr (starting address) must be a non-zero multiple of the page size";
    else if (p->hlen == 0 || p->hlen % pg || p->slen % pg)
        why = "hlen and slen must be multiples of the page size (hlen not zero)";
    else if (p->datalen % pg || p->hlen + p->slen + RVM_SEGMENT_HDR_SIZE > p->datalen)
        why = "datalen must be a page multiple of at least hlen + slen + one page";
    else if (p->chunk < RDS_MIN_CHUNK_SIZE || p->chunk % sizeof(char *))
        why = "chunk must be a multiple of sizeof(char *) and at least RDS_MIN_CHUNK_SIZE";
    else if (p->nlists < RDS_MIN_FREE_LISTS || rds_hdr_len(p->nlists) + p->chunk > p->hlen)
        why = "nl must be at least 1 and the heap must hold the header of nl lists";
    if (why == NULL)
        return 0;
    printf("? invalid rdsinit parameters: %s (page size %lu, RDS_MIN_CHUNK_SIZE %zu)\n", why, pg,
           RDS_MIN_CHUNK_SIZE);
    return -1;
}

/* make_file -- the data segment, datalen bytes of zeros, space reserved */
static int make_file(const char *name, unsigned long len)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        printf("?  Couldn't create %s: %s\n", name, strerror(errno));
        return -1;
    }
    int e = 0;
    if (S_ISREG(st.st_mode)) { /* a raw partition keeps its size; its header is new */
        if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)len) != 0)
            e = errno;
        else
            e = posix_fallocate(fd, 0, (off_t)len);
    }
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    close(fd);
    if (e != 0) {
        printf("?  Couldn't write %lu bytes to %s: %s\n", len, name, strerror(e));
        return -1;
    }
    return 0;
}

/* get_params -- from the command line, with confirmation unless firm */
static void get_params(int argc, char **argv, int firm, struct params *p)
{
    int given = argc == 8;
    if (given) {
        unsigned long *f[] = {&p->datalen, &p->saddr, &p->hlen, &p->slen, &p->nlists, &p->chunk};
        for (int i = 0; i < 6; i++)
            *f[i] = strtoul(argv[2 + i], NULL, 0);
        if (firm)
            return;
    }
    for (;;) {
        if (!given)
            ask_all(p);
        given = 0;
        if (confirm(p))
            return;
    }
}

int main(int argc, char **argv)
{
    int firm = 0, c;
    while ((c = getopt(argc, argv, "f")) != -1) {
        if (c != 'f') {
            usage();
            return 1;
        }
        firm = 1;
    }
    argc -= optind;
    argv += optind;
    if (argc != 2 && argc != 8) {
        usage();
        return 1;
    }
    rvm_options_t *options = rvm_malloc_options();
    options->log_dev = argv[0];
    rvm_return_t ret = RVM_INIT(options);
    rvm_free_options(options); /* rvm_initialize keeps its own copy */
    if (ret != RVM_SUCCESS) {
        printf("?  rvm_initialize failed, code: %s\n   %s\n   (create the log first: rvmutl "
               "create-log %s SIZE)\n",
               rvm_return(ret), rvm_errmsg, argv[0]);
        return 1;
    }
    printf("rvm_initialize succeeded.\n");
    struct params p = {0};
    get_params(argc, argv, firm, &p);
    if (check(&p) != 0)
        quit();
    printf("Going to initialize data file to zero, could take awhile.\n");
    if (make_file(argv[1], p.datalen) != 0)
        return 1;
    printf("done.\n");
    int err;
    rds_zap_heap(argv[1], RVM_MK_OFFSET(0, p.datalen), (char *)p.saddr, p.slen, p.hlen, p.nlists,
                 p.chunk, &err);
    if (err != SUCCESS) {
        printf("?  ERROR: rds_zap_heap %s: %s\n", err > 0 ? rvm_return(err) : "failed", rds_errmsg);
        return 1;
    }
    printf("rds_zap_heap completed successfully.\n");
    ret = rvm_terminate();
    if (ret != RVM_SUCCESS) {
        printf("\n? Error in rvm_terminate, ret = %s\n", rvm_return(ret));
        return 1;
    }
    printf("rvm_terminate succeeded.\n");
    return 0;
}
