/* SPDX-License-Identifier: MIT */
/*
 * rvm.h -- the LRVM interface (release 1.29 compatible), implemented by liblrvm.
 *
 * Programs written for the original LRVM compile unchanged against this header:
 * names, types, struct layouts, enum values, return-code numbers, option flags,
 * version strings and macros are those of the original LRVM release 1.29.
 *
 * Threading: every call may be made from any thread. A transaction (rvm_tid_t)
 * belongs to one thread at a time. LRVM provides no concurrency control for
 * application data: two transactions may write disjoint ranges concurrently.
 *
 * Sticky errors: if a write or sync of the log or of a segment fails (EIO, ENOSPC,
 * a short write), the library stops writing at once -- nothing is half applied and
 * nothing already committed is lost (the log on disk stays the authority) -- and
 * every later call that would write returns RVM_EIO. rvm_errmsg names the file and
 * the failed operation, rvm_ioerrno holds the errno. Restart the process: recovery
 * in rvm_initialize completes whatever was durable. The LRVM code table has no
 * "panic" code, so RVM_EIO is that code. The commit whose write or sync failed was not
 * acknowledged: after recovery it is either wholly present or wholly absent (its
 * record may have reached the disk before the sync failed), never partial.
 */
#ifndef RVM_RVM_H
#define RVM_RVM_H

#include <sys/time.h>
#include <sys/param.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef RVM_API
#define RVM_API __attribute__((visibility("default")))
#endif

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* rvm_initialize checks this string exactly; it is also stored in the log status block */
#define RVM_VERSION "RVM Interface Version 1.3  7 Mar 1994"
#define RVM_VERSION_MAX 128

typedef enum { rvm_false = 0, rvm_true = 1 } rvm_bool_t;

typedef enum {
    rvm_first_struct_id = 39, /* internal */
    rvm_region_id,            /* 40 */
    rvm_options_id,           /* 41 */
    rvm_tid_id,               /* 42 */
    rvm_statistics_id,        /* 43 */
    rvm_last_struct_id        /* internal */
} rvm_struct_id_t;

typedef enum {
    rvm_first_mode = 139, /* internal */
    restore,              /* 140: restore memory on abort */
    no_restore,           /* 141: do not restore memory on abort */
    flush,                /* 142: flush records to log on commit */
    no_flush,             /* 143: do not flush records on commit */
    rvm_last_mode         /* internal */
} rvm_mode_t;

/* return codes */
typedef int rvm_return_t;
#define RVM_SUCCESS 0      /* success */
#define rvm_first_code 199 /* internal */
#define RVM_EINIT 200      /* RVM not initialized */
#define RVM_EINTERNAL 201  /* internal error, see rvm_errmsg */
#define RVM_EIO 202        /* I/O error, see rvm_ioerrno and rvm_errmsg */
/* 203 is not defined; rvm_return(203) reads "RVM_EPLACEHOLDER" */
#define RVM_ELOG 204               /* invalid log device */
#define RVM_ELOG_VERSION_SKEW 205  /* RVM log format version skew */
#define RVM_EMODE 206              /* invalid transaction begin/end mode */
#define RVM_ENAME_TOO_LONG 207     /* device name longer than MAXPATHLEN-1 chars */
#define RVM_ENO_MEMORY 208         /* heap exhausted */
#define RVM_ENOT_MAPPED 209        /* designated region not mapped */
#define RVM_EOFFSET 210            /* invalid segment offset */
#define RVM_EOPTIONS 211           /* invalid options record or pointer */
#define RVM_EOVERLAP 212           /* region overlaps existing seg mapping */
#define RVM_EPAGER 213             /* invalid external pager */
#define RVM_ERANGE 214             /* invalid virtual memory address */
#define RVM_EREGION 215            /* invalid region descriptor or pointer */
#define RVM_EREGION_DEF 216        /* invalid region definition descriptor */
#define RVM_ESRC 217               /* invalid address range for new values */
#define RVM_ESTATISTICS 218        /* invalid statistics record */
#define RVM_ESTAT_VERSION_SKEW 219 /* RVM statistics format version skew */
#define RVM_ETERMINATED 220        /* terminated by error already reported */
#define RVM_ETHREADS 221           /* illegal C Thread library */
#define RVM_ETID 222               /* invalid transaction identifier or ptr */
#define RVM_ETOO_BIG 223           /* internal resources exceeded */
#define RVM_EUNCOMMIT 224          /* uncommitted transaction(s) pending */
#define RVM_EVERSION_SKEW 225      /* RVM library version skew */
#define RVM_EVM_OVERLAP 226        /* region overlaps existing vm mapping */
#define rvm_last_code 227          /* internal */

/* must be sizeof(char *) */
typedef unsigned long rvm_length_t;

/* 64-bit offset as two rvm_length_t words; "INTERNAL FIELDS" */
typedef struct {
    rvm_length_t high;
    rvm_length_t low;
} rvm_offset_t;

/* transaction identifier: init with rvm_init_tid or rvm_malloc_tid before use */
typedef struct {
    rvm_struct_id_t struct_id; /* self-identifier, do not change */
    rvm_bool_t from_heap;      /* true if heap allocated, do not change */
    struct timeval uname;      /* unique name (timestamp) */
    void *tid;                 /* internal use only */
    rvm_length_t reserved;     /* internal use only */
} rvm_tid_t;

/* options record: init with rvm_init_options or rvm_malloc_options before use */
typedef struct {
    rvm_struct_id_t struct_id;     /* self-identifier, do not change */
    rvm_bool_t from_heap;          /* true if heap allocated, do not change */
    char *log_dev;                 /* device name */
    long truncate;                 /* truncation threshold, % of log */
    rvm_length_t recovery_buf_len; /* length of recovery buffer */
    rvm_length_t flush_buf_len;    /* length of flush buffer (partitions only) */
    rvm_length_t max_read_len;     /* maximum single read length */
    rvm_bool_t log_empty;          /* TRUE ==> log empty */
    char *pager;                   /* char array for external pager name */
    long n_uncommit;               /* length of uncommitted tid array */
    rvm_tid_t *tid_array;          /* ptr to array of uncommitted tid's */
    rvm_length_t flags;            /* bit vector for optimization and other flags */
    rvm_bool_t create_log_file;    /* TRUE ==> create the log file */
    rvm_offset_t create_log_size;  /* when creating a new log file, wanted size */
    long create_log_mode;          /* when creating a new log file, wanted mode */
} rvm_options_t;

/* region descriptor: init with rvm_init_region or rvm_malloc_region before use */
typedef struct {
    rvm_struct_id_t struct_id; /* self-identifier, do not change */
    rvm_bool_t from_heap;      /* true if heap allocated, do not change */
    char *data_dev;            /* device name */
    rvm_offset_t dev_length;   /* maximum device length */
    rvm_offset_t offset;       /* offset of region in segment */
    char *vmaddr;              /* vm address of region/range */
    rvm_length_t length;       /* length of region/range */
    rvm_bool_t no_copy;        /* do not copy mapped data if true */
} rvm_region_t;

/* options constants */
#define TRUNCATE 50                   /* default truncation threshold, % of log */
#define RECOVERY_BUF_LEN (256 * 1024) /* default recovery buffer length */
#define MIN_RECOVERY_BUF_LEN (64 * 1024)
#define FLUSH_BUF_LEN (256 * 1024) /* default flush buffer length */
#define MIN_FLUSH_BUF_LEN (64 * 1024)
#define MAX_READ_LEN (512 * 1024) /* default maximum single read length */

#define RVM_COALESCE_RANGES 1 /* coalesce ranges of one transaction */
#define RVM_COALESCE_TRANS 2  /* coalesce no_flush commits (implies ranges) */
#define RVM_ALL_OPTIMIZATIONS (RVM_COALESCE_RANGES | RVM_COALESCE_TRANS)
#define RVM_MAP_PRIVATE 8   /* use a private mapping (mmap) of the segment */
#define RVM_SHARED_GROUP 16 /* trust logs and segments of the process's groups, */
                            /* group-writable ones too (lrvm extension; see the */
                            /* trust model: any group member can then steer them) */
#define RVM_MAP_COPY 32     /* rvm_map reads regions it allocates into anonymous */
                            /* memory instead of mapping the file copy-on-write */
                            /* (lrvm extension; see docs/library.md) */

/* offset, length and page macros; operand macros take their arguments' addresses */
#define RVM_MK_OFFSET(x, y) rvm_mk_offset((rvm_length_t)(x), (rvm_length_t)(y))
#define RVM_OFFSET_INITIALIZER(x, y) \
    {                                \
        (x), (y)                     \
    }
#define RVM_ZERO_OFFSET(x) (x) = RVM_MK_OFFSET(0, 0)
#define RVM_OFFSET_TO_LENGTH(x) ((x).low)
#define RVM_OFFSET_HIGH_BITS_TO_LENGTH(x) ((x).high)
#define RVM_LENGTH_TO_OFFSET(x) RVM_MK_OFFSET(0, (x))
#define RVM_ADD_OFFSETS(x, y) rvm_add_offsets(&(x), &(y))
#define RVM_ADD_LENGTH_TO_OFFSET(x, y) rvm_add_length_to_offset(&(x), (y))
#define RVM_ADD_LENGTH_TO_ADDR(length, vmaddr) \
    ((char *)((rvm_length_t)(length) + (rvm_length_t)(vmaddr)))
#define RVM_SUB_OFFSETS(x, y) rvm_sub_offsets(&(x), &(y))
#define RVM_SUB_LENGTH_FROM_OFFSET(x, y) rvm_sub_length_from_offset(&(x), (y))
#define RVM_SUB_LENGTH_FROM_ADDR(vmaddr, length) \
    ((char *)((rvm_length_t)(vmaddr) - (rvm_length_t)(length)))
#define RVM_OFFSET_LSS(x, y) \
    (((x).high < (y).high) || (((x).high == (y).high) && ((x).low < (y).low)))
#define RVM_OFFSET_GTR(x, y) \
    (((x).high > (y).high) || (((x).high == (y).high) && ((x).low > (y).low)))
#define RVM_OFFSET_LEQ(x, y) (!RVM_OFFSET_GTR((x), (y)))
#define RVM_OFFSET_GEQ(x, y) (!RVM_OFFSET_LSS((x), (y)))
#define RVM_OFFSET_EQL(x, y) (((x).high == (y).high) && ((x).low == (y).low))
#define RVM_OFFSET_EQL_ZERO(x) (((x).high == 0) && ((x).low == 0))

#define RVM_PAGE_SIZE rvm_page_size()
#define RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(x) \
    ((rvm_length_t)(((rvm_length_t)(x) + rvm_page_size() - 1) & rvm_page_mask()))
#define RVM_ROUND_LENGTH_DOWN_TO_PAGE_SIZE(x) ((rvm_length_t)((rvm_length_t)(x)&rvm_page_mask()))
#define RVM_ROUND_ADDR_UP_TO_PAGE_SIZE(x) \
    ((char *)(((rvm_length_t)(x) + rvm_page_size() - 1) & rvm_page_mask()))
#define RVM_ROUND_ADDR_DOWN_TO_PAGE_SIZE(x) ((char *)((rvm_length_t)(x)&rvm_page_mask()))
#define RVM_ROUND_OFFSET_UP_TO_PAGE_SIZE(x) rvm_rnd_offset_up_to_page(&(x))
#define RVM_ROUND_OFFSET_DOWN_TO_PAGE_SIZE(x) rvm_rnd_offset_dn_to_page(&(x))

#define RVM_INIT(options) rvm_initialize(RVM_VERSION, (options))

/* diagnostics for the last failure: file, operation, what to do; errno of an I/O failure */
RVM_API extern char *rvm_errmsg;
RVM_API extern int rvm_ioerrno;
RVM_API extern rvm_bool_t rvm_no_yield;        /* accepted for compatibility; no effect */
RVM_API extern rvm_bool_t rvm_map_private;     /* process-global RVM_MAP_PRIVATE switch */
RVM_API extern rvm_length_t rvm_optimizations; /* process-global RVM_COALESCE_* switches */
/* lrvm extension: bytes of record area a log may grow to when a commit does not fit in it;
 * 0 (the default): twice the total size of the segments it serves. A commit that needs more
 * fails with RVM_ETOO_BIG (the transaction stays open). */
RVM_API extern rvm_length_t rvm_log_max_len;

/* print names */
RVM_API char *rvm_return(rvm_return_t code);
RVM_API char *rvm_mode(rvm_mode_t mode);
RVM_API char *rvm_type(rvm_struct_id_t id);

/* record allocators, initialisers, copiers, finalisers */
RVM_API rvm_tid_t *rvm_malloc_tid(void);
RVM_API void rvm_init_tid(rvm_tid_t *tid);
RVM_API rvm_tid_t *rvm_copy_tid(rvm_tid_t *tid);
RVM_API void rvm_free_tid(rvm_tid_t *tid);

RVM_API rvm_options_t *rvm_malloc_options(void);
RVM_API void rvm_init_options(rvm_options_t *options);
RVM_API rvm_options_t *rvm_copy_options(rvm_options_t *options);
RVM_API void rvm_free_options(rvm_options_t *options);

RVM_API rvm_region_t *rvm_malloc_region(void);
RVM_API void rvm_init_region(rvm_region_t *region);
RVM_API rvm_region_t *rvm_copy_region(rvm_region_t *region);
RVM_API void rvm_free_region(rvm_region_t *region);

/*
 * Main interface. Each returns RVM_SUCCESS or one of the codes above. Besides the codes
 * listed per call below, any call that writes the log or a segment can return RVM_EIO (see
 * "Sticky errors" at the top; rvm_errmsg names the file), any call can return RVM_ENO_MEMORY
 * when memory runs out, and all but rvm_initialize return RVM_EINIT before a successful
 * rvm_initialize.
 *
 * rvm_initialize   RVM_EVERSION_SKEW (version is not RVM_VERSION), RVM_EOPTIONS,
 *                  RVM_ENAME_TOO_LONG, RVM_ELOG (log unreadable, damaged or not a log),
 *                  RVM_ELOG_VERSION_SKEW, RVM_ESTAT_VERSION_SKEW, RVM_EINIT (called again
 *                  after rvm_terminate: a restart is not allowed). A second call while
 *                  initialised succeeds and does nothing. Without options->log_dev it
 *                  succeeds with no log; mapping and transactions then return RVM_ELOG
 *                  until rvm_set_options names one (one log per process).
 * rvm_terminate    RVM_EUNCOMMIT (a transaction is still open).
 * rvm_create_log   RVM_EOPTIONS (options NULL or no log_dev), RVM_ETOO_BIG (size too
 *                  large), RVM_ELOG (the file exists or the log is already open).
 * rvm_map          RVM_EREGION, RVM_ENAME_TOO_LONG, RVM_ELOG (no log), RVM_EPAGER
 *                  (options->pager set), RVM_ENOT_MAPPED, RVM_EOFFSET (offset beyond the
 *                  segment), RVM_ERANGE (vmaddr not page aligned or not in the address
 *                  space), RVM_EVM_OVERLAP (memory already mapped to a region),
 *                  RVM_EOVERLAP (segment bytes already mapped). On error the region
 *                  record is left as it was passed in.
 * rvm_unmap        RVM_ENOT_MAPPED, RVM_EUNCOMMIT (an open transaction touches the region),
 *                  RVM_ERANGE (vmaddr/length are not exactly those of a mapped region).
 * rvm_set_options  RVM_EOPTIONS.
 * rvm_query        RVM_EOPTIONS, RVM_ENOT_MAPPED (region given and not mapped).
 * rvm_begin_transaction  RVM_ETID, RVM_ELOG (no log), RVM_EMODE (not restore or
 *                  no_restore), RVM_ENO_MEMORY.
 * rvm_set_range, rvm_modify_bytes  RVM_ETID (not begun or already ended),
 *                  RVM_ENOT_MAPPED (the range is not inside one mapped region).
 * rvm_abort_transaction  RVM_ETID.
 * rvm_end_transaction    RVM_EMODE (not flush or no_flush), RVM_ETID, RVM_ETOO_BIG (the
 *                  record needs more log than rvm_log_max_len allows, or more than 4 GiB:
 *                  a smaller log grows), RVM_EIO (the log could not grow: disk full; not
 *                  sticky); on these errors the transaction stays open.
 * rvm_flush, rvm_truncate  RVM_ELOG (no log).
 *
 * rvm_initialize   -- check version, apply options; with options->log_dev, open the log
 *                     and run recovery (apply every committed record to the segments).
 * rvm_terminate    -- flush queued no_flush commits, stop the truncation thread, close.
 * rvm_map          -- map (part of) a segment file at region->vmaddr (NULL: allocate).
 * rvm_unmap        -- forget a mapping (does not release the memory).
 * rvm_begin_transaction / rvm_set_range / rvm_modify_bytes / rvm_abort_transaction /
 * rvm_end_transaction -- transactions; end with flush (durable on return) or no_flush
 *                     (queued; durable after rvm_flush or a later flush commit).
 * rvm_flush        -- make every no_flush commit durable.
 * rvm_truncate     -- apply the whole log to the segments (epoch truncation).
 * rvm_create_log   -- create a log file of *log_len bytes of record space.
 */
RVM_API rvm_return_t rvm_initialize(const char *version, rvm_options_t *opts);
RVM_API rvm_return_t rvm_terminate(void);
RVM_API rvm_return_t rvm_map(rvm_region_t *region, rvm_options_t *options);
RVM_API rvm_return_t rvm_unmap(rvm_region_t *region);
RVM_API rvm_return_t rvm_set_options(rvm_options_t *options);
RVM_API rvm_return_t rvm_query(rvm_options_t *options, rvm_region_t *region);
RVM_API rvm_return_t rvm_begin_transaction(rvm_tid_t *tid, rvm_mode_t mode);
RVM_API rvm_return_t rvm_set_range(rvm_tid_t *tid, void *dest, rvm_length_t length);
RVM_API rvm_return_t rvm_modify_bytes(rvm_tid_t *tid, void *dest, const void *src,
                                      rvm_length_t length);
RVM_API rvm_return_t rvm_abort_transaction(rvm_tid_t *tid);
RVM_API rvm_return_t rvm_end_transaction(rvm_tid_t *tid, rvm_mode_t mode);
RVM_API rvm_return_t rvm_flush(void);
RVM_API rvm_return_t rvm_truncate(void);
RVM_API rvm_return_t rvm_create_log(rvm_options_t *rvm_options, rvm_offset_t *log_len, long mode);

/* offset / page support (used by the macros) */
RVM_API rvm_offset_t rvm_mk_offset(rvm_length_t x, rvm_length_t y);
RVM_API rvm_offset_t rvm_add_offsets(rvm_offset_t *x, rvm_offset_t *y);
RVM_API rvm_offset_t rvm_add_length_to_offset(rvm_offset_t *offset, rvm_length_t length);
RVM_API rvm_offset_t rvm_sub_offsets(rvm_offset_t *x, rvm_offset_t *y);
RVM_API rvm_offset_t rvm_sub_length_from_offset(rvm_offset_t *offset, rvm_length_t length);
RVM_API rvm_length_t rvm_page_size(void);
RVM_API rvm_length_t rvm_page_mask(void);
RVM_API rvm_offset_t rvm_rnd_offset_up_to_page(rvm_offset_t *x);
RVM_API rvm_offset_t rvm_rnd_offset_dn_to_page(rvm_offset_t *x);

#ifdef __cplusplus
}
#endif

#endif /* RVM_RVM_H */
