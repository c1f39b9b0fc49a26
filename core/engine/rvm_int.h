/* SPDX-License-Identifier: MIT */
/*
 * rvm_int.h -- core internals shared across files, grouped by the file that defines
 * them (the project's table of contents for core/).
 *
 * LOCK ORDER: engine.mu -> log.trunc_mu -> log.status_mu -> log.mu. Never take a lock to
 * the left while holding one to the right. The segment table is append-only with a
 * fixed capacity, so truncation reads it without engine.mu.
 */
#ifndef LRVM_CORE_RVM_INT_H
#define LRVM_CORE_RVM_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <rvm/rvm.h>
#include <rvm/rvm_statistics.h>

#include "log_format.h"

#define SEG_MAX 1024      /* segments per log (ids 1..SEG_MAX) */
#define SHADOW_PAGE 4096u /* granule of the no_flush coalescing set */

/* a growable byte buffer (reused: steady state does not malloc) */
struct buf {
    char *p;
    size_t len, cap;
};

/* where the chain of valid records ends, and why (log_end.c) */
enum log_end_kind {
    LOG_END_MARKER = 0, /* an end marker for the expected seq: the last write ended here */
    LOG_END_UNMARKED,   /* no marker and no later record: a torn tail, or no room for one */
    LOG_END_DAMAGED,    /* a later valid record exists: the record here is damaged */
};
struct log_end {
    int kind;                      /* enum log_end_kind */
    uint64_t off, seq;             /* where the chain stopped: area offset, expected seq */
    uint64_t later_off, later_seq; /* DAMAGED: the first later valid record found */
    uint64_t last_seq;             /* DAMAGED: the last seq of the valid run starting there */
};

/* an open segment file; lives until rvm_terminate; id is its dictionary id */
struct seg {
    uint32_t id;
    int fd;
    char *path; /* absolute path, as stored in the dictionary */
    dev_t dev;
    ino_t ino;
    uint64_t size;     /* usable bytes: file size chopped to 512 */
    int nmapped;       /* regions currently mapped */
    uint64_t last_seq; /* highest seq of a record (queued or written) naming it */
    int dirty;         /* written by apply since its last fsync (trunc_mu) */
    int open_err;      /* errno when a dictionary segment could not be opened (fd -1) */
    char *open_why;    /* ... and why, when the ownership rules refused it (or NULL) */
    int ident_bad;     /* the file there carries another identity than the log's (fd -1) */
    uint8_t ident[LOG_SEG_ID_LEN]; /* its identity (identity.c); all zero = none known */
    struct shadow ***sdir;         /* coalescing set pages of this segment: [page>>9][page&511] */
    size_t sdir_len;               /* (log.mu) */
};

/* a mapped region */
struct region {
    struct seg *seg;
    char *vmaddr;
    uint64_t len;   /* mapped bytes */
    uint64_t vmlen; /* len rounded up to a page */
    uint64_t off;   /* offset in the segment */
    int allocated;  /* the VM was allocated by rvm_map (vmaddr was NULL) */
    int priv;       /* mapped with mmap(MAP_PRIVATE) of the segment */
    int lazy;       /* priv chosen by rvm_map itself, not asked for (seg.c: "MAP, DON'T
                          * COPY"): turned into a copy where a file mapping cannot serve */
    int copied;     /* memory was made from the file (copy or priv, not no_copy) */
};

/* one range of a transaction or commit vector; src: where the new bytes are at commit */
struct range {
    struct region *rg; /* NULL for ranges built from the coalescing set */
    struct seg *seg;
    uint64_t off; /* segment offset */
    uint64_t len;
    const char *src;
    uint64_t oldpos; /* restore mode: offset of the old value in txn.old */
};

/* internal state of a begun transaction (pooled) */
struct txn {
    rvm_tid_t *pub;
    int restore;
    struct range *r;
    size_t n, cap;
    struct buf old;
    struct region *last_rg;
    uint64_t last_gen;
    uint64_t elim, saved; /* coalescing counts of the commit in progress */
    struct txn *next, *prev;
};

/* a page of the no_flush coalescing set: newest queued bytes + which bytes are set */
struct shadow {
    uint64_t key; /* seg id << 40 | page number */
    struct seg *seg;
    uint64_t bits[SHADOW_PAGE / 64];
    char data[SHADOW_PAGE];
};

/* the no_flush coalescing set (RVM_COALESCE_TRANS): not yet a record */
struct cset {
    struct shadow **list; /* in insertion order; sorted when it becomes a record */
    size_t n, listcap;
    struct shadow **pool; /* recycled pages */
    size_t npool, poolcap;
    uint64_t ntxn;                  /* transactions in the set */
    uint64_t nbytes;                /* bytes set (upper bound of distinct bytes) */
    uint64_t nruns_est;             /* upper bound of ranges it will emit */
    uint64_t nranges_in, nbytes_in; /* what went in (statistics) */
    struct range *out;              /* scratch for materialize */
    size_t outcap;
};

/* the open log */
struct log {
    int fd;
    char *path;
    char *dir; /* its directory, absolute: relative dictionary paths start here */
    uint64_t area_off, area_len;
    uint64_t salt;                           /* of new records: the last epoch's */
    struct log_epoch epochs[LOG_MAX_EPOCHS]; /* (status_mu for changes) */
    uint32_t nepochs;

    pthread_mutex_t trunc_mu; /* one apply pass at a time */

    pthread_mutex_t status_mu; /* the durable status: generation, slot, head, dictionary */
    uint64_t generation;
    int cur_slot;
    uint64_t st_head_off, st_head_seq;
    uint32_t st_nsegs; /* dictionary entries made durable */

    pthread_mutex_t mu;          /* everything below */
    pthread_cond_t sync_cv;      /* group commit: a sync finished */
    pthread_cond_t space_cv;     /* truncation freed space */
    pthread_cond_t trunc_cv;     /* wake the truncation thread */
    uint64_t head_off, head_seq; /* oldest live record (== durable status head) */
    uint64_t tail_off;           /* next write position */
    uint64_t used;               /* live bytes incl. wrap gaps */
    uint64_t next_seq;           /* next seq to assign */
    uint64_t written_seq;        /* last seq written to the file */
    uint64_t durable_seq;        /* last seq made durable (synced) */
    struct buf pend;             /* formatted records, seqs assigned, not yet written */
    struct buf wbuf;             /* the leader's batch (swapped with pend) */
    struct cset cs;
    int writer_active;
    int space_waiters;
    long truncate_pct; /* 0: no daemon */
    int trunc_running, trunc_stop;
    pthread_t trunc_thread;
    int n_queued_txn; /* no_flush commits not yet written */
    uint64_t queued_bytes;
    uint64_t n_grow;    /* times the record area grew (log_grow.c) */
    uint64_t n_settled; /* big streamed records applied at once (log_stream.c) */
    /* THE APPLIED SPAN: live records whose new values are already in the segments' page
     * cache, which no truncation has made durable yet: (head, applied_seq], ending at area
     * offset applied_end, applied_bytes of area (trunc.c). Empty when applied_seq <
     * head_seq. Recovery leaves one (applied_urgent: the daemon makes it durable at once, or
     * every start would apply it again), and so does applying ahead (trunc_apply_ahead).
     * Written under trunc_mu and mu, read under either. */
    uint64_t applied_seq, applied_end, applied_bytes;
    int applied_urgent;
    int apply_ahead; /* the daemon applies durable records ahead (trunc_set_apply_ahead) */
    int trunc_brief; /* trunc_mu is held by an apply pass, not a step (trunc_apply_through) */
};

/* process-wide state */
struct rvm_state {
    pthread_mutex_t mu;
    int state; /* RVM_ST_* */
    struct log *log;
    struct seg *segs[SEG_MAX + 1]; /* by id; append-only */
    uint32_t nsegs;
    struct region **regions; /* sorted by vmaddr */
    size_t nregions, regcap;
    uint64_t map_gen; /* bumped by every unmap (atomic) */
    struct txn *open_txns;
    struct txn *free_txns;
    long n_open;
    long truncate;
    rvm_length_t recovery_buf_len, flush_buf_len, max_read_len;
    int sticky;              /* a write or sync failed: refuse further writes */
    int map_copy;            /* RVM_MAP_COPY: rvm_map copies instead of mapping the file */
    int salvage;             /* recovery keeps the valid prefix of a damaged log (rvmutl) */
    struct log_end salvaged; /* what the last salvaging recovery dropped (kind DAMAGED) */
    rvm_statistics_t st;     /* counters: commit/log ones under log.mu, others under mu */
};

enum { RVM_ST_UNINIT = 0, RVM_ST_INIT = 1, RVM_ST_TERMINATED = 2 };

extern struct rvm_state engine __attribute__((visibility("hidden")));

/* rvm_ready -- initialized and not terminated (read without engine.mu by every call) */
static inline int rvm_ready(void)
{
    return __atomic_load_n(&engine.state, __ATOMIC_ACQUIRE) == RVM_ST_INIT;
}

#pragma GCC visibility push(hidden)

/* crc32c.c */
uint32_t crc32c(uint32_t seed, const void *buf, size_t len);
void crc32c_force_table(int on);

/* util.c */
int buf_reserve(struct buf *b, size_t more);
void buf_free(struct buf *b);
rvm_return_t err_set(rvm_return_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
rvm_return_t err_io(int e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int err_lock_free(void);
int full_pwrite(int fd, const void *p, size_t n, uint64_t off);
int full_pread(int fd, void *p, size_t n, uint64_t off);
uint64_t now_usec(void);
int mmap_buf_grow(void **p, size_t *cap, size_t need, size_t first);
int thread_spawn(pthread_t *t, void *(*fn)(void *), void *arg, const char *name);

/* log.c */
rvm_return_t log_create(const char *path, uint64_t log_len, long mode);
uint64_t log_new_salt(uint64_t old);
rvm_return_t log_open(const char *path, struct log **out);
void log_close(struct log *lg);
rvm_return_t log_status_read(int fd, const char *path, struct log_status *st, struct buf *dict);
rvm_return_t log_status_write(struct log *lg, uint64_t head_off, uint64_t head_seq);
rvm_return_t log_add_segment(struct log *lg, struct seg *s);
uint64_t log_record_size(const struct range *r, size_t n);
rvm_return_t log_enqueue(struct log *lg, const struct range *r, size_t n, uint32_t ntxn,
                         uint64_t *seq);
rvm_return_t log_force(struct log *lg, uint64_t seq);
void log_kick_truncation(struct log *lg);
/* log_wait_space -- the writer cannot place its next record: make room (lg->mu held) */
rvm_return_t log_wait_space(struct log *lg);
rvm_return_t log_erase_marker(struct log *lg, uint64_t tail);
/* log_sync -- fdatasync what was written; lg->mu held (released during the sync) */
rvm_return_t log_sync(struct log *lg);

/* log_grow.c (a log too small for a commit grows, up to log_area_bound) */
uint64_t log_area_bound(const struct log *lg);
uint64_t log_grow_target(const struct log *lg, uint64_t size, int exact);
rvm_return_t log_grow(struct log *lg, uint64_t size, int exact);
rvm_return_t log_ensure_area(struct log *lg, uint64_t size);

/* cset.c (no_flush coalescing) */
rvm_return_t cset_add(struct log *lg, const struct range *r, size_t n);
rvm_return_t cset_materialize(struct log *lg);
void cset_free(struct cset *cs);
void cset_seg_free(struct seg *s);

/* apply.c (shared by recovery and truncation) */
struct apply_res {
    uint64_t end_off; /* where the next record would be */
    uint64_t next_seq;
    uint64_t consumed; /* area bytes freed, incl. wrap gaps */
    uint64_t nrec;
    uint64_t nranges;
    uint64_t bytes;
};
struct logrd {
    int fd;
    const char *path;
    uint64_t area_off, area_len;
    const struct log_epoch *epochs; /* salt epochs of the status; NULL: one epoch, */
    uint32_t nepochs;
    uint64_t salt; /* this salt (readers of a single incarnation) */
    struct buf b;
    uint64_t win_off; /* area offset of b.p[0] */
    size_t chunk;     /* the next read's size: doubles up to chunk_max (0: 4 MiB) */
    size_t chunk_max;
};
int logrd_next(struct logrd *rd, uint64_t *pos, uint64_t seq, const struct log_rec_hdr **hdr,
               const char **payload);
int logrd_try(struct logrd *rd, uint64_t pos, uint64_t seq, const struct log_rec_hdr **hdr,
              const char **payload);
int rec_check_payload(const struct log_rec_hdr *h, const char *payload);
rvm_return_t apply_log(struct log *lg, uint64_t off, uint64_t seq, uint64_t max_seq, uint64_t limit,
                       struct apply_res *res);
rvm_return_t apply_sync_segments(void);
/* apply_progress_fn -- hears, after each applied record, the area bytes applied so far and
 * the bytes expected (0: unknown). Called on the applying thread; must not call into lrvm. */
typedef void (*apply_progress_fn)(void *arg, uint64_t done, uint64_t total);
/* apply_set_progress -- register fn (NULL: none) for the applies that follow (rvmutl) */
void apply_set_progress(apply_progress_fn fn, void *arg);
uint32_t rec_seed_for(const struct log_epoch *e, uint32_t n, uint64_t seq);

/* trunc.c */
rvm_return_t trunc_step(struct log *lg, uint64_t limit, int *progress);
rvm_return_t trunc_all(struct log *lg);
rvm_return_t trunc_recovered(struct log *lg);
/* trunc_apply_ahead -- apply up to limit bytes of durable records past the applied span to
 * the segments' page cache, without fsync or head move (the span grows) */
rvm_return_t trunc_apply_ahead(struct log *lg, uint64_t limit);
/* trunc_set_apply_ahead -- ask the daemon to apply durable records ahead soon after they
 * become durable (the tracker's lazy twins read the segment file as committed images);
 * returns 1 if a daemon runs to do it */
int trunc_set_apply_ahead(struct log *lg, int on);
/* trunc_applied_seq -- every record up to this seq is in the segments' page cache */
uint64_t trunc_applied_seq(struct log *lg);
/* trunc_apply_through -- apply durable records ahead now, in the caller's thread, until the
 * segments' page cache holds every record up to seq (or none is left that is durable, or a
 * truncation step holds the segments longer than a few milliseconds); returns
 * trunc_applied_seq */
uint64_t trunc_apply_through(struct log *lg, uint64_t seq);
rvm_return_t trunc_start(struct log *lg, long pct);
void trunc_stop(struct log *lg);
rvm_return_t recover(struct log *lg);

/* log_end.c */
int log_end_find(struct logrd *rd, uint64_t end_off, uint64_t seq, uint64_t head_off,
                 struct log_end *out);
void log_end_marker(char *p, uint64_t seq, uint64_t salt);
rvm_return_t log_end_error(const char *logpath, const struct log_end *e);

/* identity.c */
int seg_ident_read(int fd, uint8_t id[LOG_SEG_ID_LEN]);
int seg_ident_known(const uint8_t id[LOG_SEG_ID_LEN]);
void seg_ident_hex(const uint8_t id[LOG_SEG_ID_LEN], char out[2 * LOG_SEG_ID_LEN + 1]);
const char *dict_path_store(const char *logdir, const char *abs);
char *dict_path_resolve(const char *logdir, const char *stored);
char *log_dir_of(const char *logpath);

/* seg.c */
rvm_return_t seg_get(const char *path, uint64_t dev_length, int create_ok, struct seg **out);
struct region *region_find(const char *addr, uint64_t len);
struct region *region_find_overlap(const char *addr, uint64_t len);
rvm_return_t seg_file_image(const char *addr, uint64_t len, int *fd);
rvm_return_t seg_region_unfile(const char *addr, uint64_t len, int *still_file);
void seg_close_all(void);
rvm_return_t seg_load_dict(const struct log *lg, const struct buf *dict, uint32_t n,
                           uint32_t version);

/* rvm.c */
rvm_return_t rvm_opts_apply(rvm_options_t *o);

/* txn.c */
void txn_free_all(void);
rvm_return_t txn_commit_ranges(struct range *r, size_t n, rvm_mode_t mode, uint32_t ntxn,
                               uint64_t elim, uint64_t saved);

/* stats.c */
void stats_hist(rvm_length_t *hist, int len, const rvm_length_t *dist, rvm_length_t v);
/* stats_end_epoch -- a truncation applied records: add the epoch's n_* counters to the
 * tot_* totals and start a new epoch (caller holds the log's lock) */
void stats_end_epoch(rvm_statistics_t *s);
void stats_fill_log(void);

#pragma GCC visibility pop

#endif /* LRVM_CORE_RVM_INT_H */
