/*
 * image_format.h -- a segment holding a process image: the layout of the data segment that
 * keeps one program's persistent heap and, optionally, its executable's global variables.
 * Format version 2 (version 1 is read, and becomes version 2 at its next commit).
 *
 * WHO USES IT. Whoever maps a program's heap and globals from one segment (the LD_PRELOAD shim
 * does; an aware program could), and rvmutl, which shows such a segment without running the
 * program. Core knows only this layout; how the globals are found in a running process and when
 * they are restored is the user's business.
 *
 * LAYOUT (offsets in the segment file; all parts page aligned):
 *
 *   [0, 4096)                          header page: struct image_header, zero padded
 *   [globals_off, + globals_len)       the executable's writable data (.data/.bss after RELRO),
 *                                      byte for byte as it lies at globals_vaddr; absent
 *                                      (globals_len == 0) in a heap-only segment
 *   [heap_off, + heap_reserve)         the heap (heap_format.h), mapped at heap_base
 *
 * heap_off = round_up(4096 + globals_len, 4096). The file is extended (sparse) to
 * heap_off + heap_reserve; the heap backs what it uses with posix_fallocate.
 *
 * ATOMICITY. Each part is its own LRVM region of the segment and all three are tracked, so one
 * rvm_commit commits header, globals and heap together: a restart sees the globals and the heap
 * of the same instant (a pointer in a global always points into the heap it was committed with).
 * The mutable header fields (commit_count, last_commit_*, flags) are written just before each
 * commit and are part of it.
 *
 * IMMUTABLE FIELDS are written once, in the commit that creates the segment: magic .. exe_path.
 * A reader refuses (never "repairs"):
 *   - a file whose first 8 bytes are the heap's magic "LRVMHEAP": the layout before version 1
 *     (offset 0 = heap base); there is no upgrade path, the user must start a new segment;
 *   - magic "LRVMIMG1" with a version it does not know;
 *   - globals present and a different build-id than the running executable's (a different
 *     program or a rebuilt one: its globals are laid out differently, restoring them would
 *     corrupt it);
 *   - globals present and a different load base (pointers into the executable would be wrong).
 * A heap-only segment (IMG_F_GLOBALS clear) records build-id and base for display only: another
 * build of the program may open it (the named-roots use case: an aware program finds its data
 * by name, not by the addresses of its globals, so a rebuild must not lock it out).
 *
 * BUILD-ID. The NT_GNU_BUILD_ID note of the executable (IMG_ID_GNU, id_len bytes). A binary
 * without one gets IMG_ID_CRC32C: the 4-byte crc32c of /proc/self/exe's whole contents, which
 * changes whenever a single byte of the file does (a relink, strip, or patch) -- stricter than a
 * build-id, never looser.
 *
 * HELD-LOCK TABLE. Bytes [IMG_LOCK_OFF, 4096) of the header page (mutable, committed with every
 * commit): the pthread mutexes and condition variables in the globals or the heap that some
 * thread possibly held or waited on at the commit instant (a superset: listed before acquiring,
 * unlisted after releasing). 32 rows of 64 bytes: row 0 is the table's own (word 0: holds that
 * were not listed because the table was full at that instant; the rest zero), rows 1..31 belong
 * to one thread each while it holds something: word 0 nonzero = in use, words 1..7 = object
 * addresses, low bit set for a condition variable, 0 = empty. The objects listed are put back in
 * their released state when the image is restored (threads do not come back; see
 * preload/lockset.c). All zero = nothing held: a segment written before the table existed
 * reads as an empty table, so the format version is unchanged.
 *
 * IDENTITY (version 2). seg_id is a random 128-bit id drawn when the segment is created (or at
 * the first commit of a version 1 segment, which that commit turns into version 2) and never
 * changed. The log's dictionary records it (log_format.h), and recovery refuses to apply the
 * log to a file that carries another identity, or none once the log knows one. A byte copy of
 * the segment keeps the id: a copy of the segment WITH its log is the same segment at another
 * place, and its log names it by a path relative to the log, so the copy recovers into itself.
 *
 * LOG PENDING (version 2). log_pending != 0 says "commits of this segment may be in its log and
 * not yet in this file": without the log, the file is not the last committed state. Unlike
 * every other mutable field, it is written straight into the file (pwrite + fdatasync) by the
 * program that commits, BEFORE its first record can reach the log, and it is also set in the
 * header in memory, so every committed header carries it and no truncation can clear it. Only
 * a tool that has applied the whole log to the file and emptied the log (`rvmutl recover` /
 * `truncate`), or a user who accepts the loss (`rvmutl forget-log`), clears it, again with a
 * direct write. A crash between those steps leaves it set, which errs on the safe side. A
 * header that is all zeros except log_pending is a segment whose creating commit is only in
 * its log. A missing log next to a segment with log_pending set is refused, not recreated.
 *
 * GLOBALS COMMITTED. IMG_F_GLOBALS_VALID is set in the first commit that contains the globals.
 * Until then the globals area holds nothing meaningful (a crash between creation and that commit)
 * and a restart must keep the program's fresh globals.
 */
#ifndef LRVM_IMAGE_FORMAT_H
#define LRVM_IMAGE_FORMAT_H

#include <stdint.h>

#define IMG_MAGIC "LRVMIMG1"
#define IMG_FORMAT_VERSION 2u
#define IMG_FORMAT_VERSION_V1 1u      /* still read: no seg_id, no log_pending */
#define IMG_HEADER_SIZE 4096u          /* the header page */
#define IMG_BUILD_ID_MAX 64u
#define IMG_PATH_MAX 1024u

enum img_id_kind {
  IMG_ID_NONE = 0,     /* not recorded */
  IMG_ID_GNU = 1,      /* NT_GNU_BUILD_ID note */
  IMG_ID_CRC32C = 2,   /* fallback: crc32c of the executable file's contents (4 bytes) */
};

enum img_flags {
  IMG_F_GLOBALS = 1u << 0,        /* the segment carries the executable's globals */
  IMG_F_GLOBALS_VALID = 1u << 1,  /* ... and a commit has put them there */
};

/* struct image_header -- page 0 of the segment; native little-endian x86-64 layout. */
struct image_header {
  char magic[8];               /* IMG_MAGIC */
  uint32_t version;            /* IMG_FORMAT_VERSION */
  uint32_t header_size;        /* sizeof(struct image_header) */
  /* immutable, set at creation */
  uint64_t heap_base;          /* address the heap is mapped at */
  uint64_t heap_reserve;       /* bytes reserved for the heap */
  uint64_t heap_off;           /* segment offset of the heap */
  uint64_t globals_off;        /* segment offset of the globals area (IMG_HEADER_SIZE) */
  uint64_t globals_len;        /* bytes of globals (page multiple); 0 = heap-only */
  uint64_t globals_vaddr;      /* run-time address of the globals area */
  uint64_t load_base;          /* the executable's load base (0 for a non-PIE executable) */
  uint64_t created_ns;         /* CLOCK_REALTIME at creation */
  uint32_t id_kind;            /* enum img_id_kind */
  uint32_t id_len;             /* bytes of build_id used */
  uint8_t build_id[IMG_BUILD_ID_MAX];
  char exe_path[IMG_PATH_MAX]; /* the executable, for messages and rvmutl (NUL terminated) */
  /* mutable, written just before each commit and committed with it */
  uint32_t flags;              /* enum img_flags */
  uint32_t pad;
  uint64_t commit_count;       /* commits made through this layout */
  uint64_t last_commit_ns;     /* CLOCK_REALTIME of the last commit */
  uint64_t last_commit_pid;    /* process that made it */
  /* version 2 */
  uint8_t seg_id[16];          /* identity: immutable once set (see IDENTITY) */
  uint32_t log_pending;        /* see LOG PENDING: written directly, not by commits alone */
  uint32_t pad2;
};
#define IMG_HEADER_V1_SIZE 1208u   /* header_size of version 1: the fields before seg_id */

#define IMG_LOCK_OFF 2048u            /* the held-lock table in the header page */
#define IMG_LOCK_ROW_SIZE 64u
#define IMG_LOCK_ROWS 32u              /* row 0: the table's own word(s) */
#define IMG_LOCK_ROW_ENTRIES 7         /* objects per thread row */

_Static_assert(__builtin_offsetof(struct image_header, seg_id) == IMG_HEADER_V1_SIZE,
               "version 1 headers end where seg_id starts");
_Static_assert(sizeof(struct image_header) <= IMG_LOCK_OFF, "header overlaps the lock table");
_Static_assert(IMG_LOCK_OFF + IMG_LOCK_ROWS * IMG_LOCK_ROW_SIZE <= IMG_HEADER_SIZE,
               "lock table exceeds the header page");

#endif
