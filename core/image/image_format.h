/* SPDX-License-Identifier: MIT */
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
 * and a restart must keep the program's fresh globals. A commit that does not contain them (the
 * segment opened heap-only, LRVM_GLOBALS=0) clears it again: the globals area then holds an
 * older instant than the heap, and restoring it later would pair old globals with a newer heap.
 *
 * RESTORABILITY VERDICT (version 2; mutable, committed with every commit). Restored globals are
 * only useful if what they point to comes back too. Before each commit the writer scans the
 * globals it commits (and, within a budget, the heap blocks they reach) for values that point
 * into memory that does not come back at a restart: anonymous mappings outside the segment (an
 * interpreter's own arenas, thread stacks, thread-local storage), the main stack, the program
 * break, file mappings, shared libraries' writable data, the writer's own volatile memory --
 * and, at a writer's last commit (its exit), for globals holding heap blocks that were freed
 * (a dangling pointer: the next run would use memory the heap may hand out again, or that
 * reads as zeros; an earlier commit may catch a pointer between a free and its reassignment;
 * a word inside a heap block may be stale slack, so only globals count). Words of the
 * mutexes and condition variables in the held-lock table are not judged (they are released
 * at restore). Pointers to libc's standard streams (stdin, stdout, stderr: objects in libc's
 * data that every process has at the same address) are restorable. restore_kind (enum
 * img_restore_kind) says what the first such value points into, 0 if the scan found none;
 * restore_sym / restore_sym_off name the global holding it (or, for a heap word, the global
 * the path started from), from the executable's symbol table ("" if the address is
 * in no symbol), restore_addr is where the value lies, restore_value the value,
 * restore_target the mapping's name as the kernel shows it. A reader restoring the globals of
 * a commit with restore_kind != 0 must refuse before the program runs, with that reason; a
 * heap-only open ignores the verdict (the commit it makes clears it with IMG_F_GLOBALS_VALID).
 * The verdict is heuristic in one direction only: an integer that happens to equal such an
 * address is reported (a refusal, never damage); a pointer the scan cannot see (hidden, or in a
 * heap block beyond the budget) is not, and CRASH NOTE below covers what follows.
 *
 * CRASH NOTE (version 2). A run that restored committed state and then dies of a fatal signal
 * before its own first commit writes crash_* into the header page of the FILE directly (one
 * pwrite, outside the log; the only write to a segment that is not a committed record). Why
 * that is safe: the note is advisory and self-validating (crash_magic, and crash_commit_count
 * must equal commit_count, so any later commit makes an old note void without touching it);
 * the run made no commit, so the log holds nothing for the header page that truncation could
 * write later (recovery at its start had applied everything). A torn note fails its magic or
 * its crc and is ignored. A reader that finds a valid note refuses to restore the same state
 * again and prints it (signal, fault address, faulting function).
 *
 * VERSIONS. 1: no identity, no log-pending mark, no verdict and no crash note (header_size
 * IMG_HEADER_SIZE_V1); those bytes are zero in a version-1 header, which reads as "no identity
 * yet, restorable, no crash". A writer that commits to a
 * version-1 segment upgrades it in that commit (version and header_size), so an older reader
 * refuses it rather than ignore a verdict.
 */
#ifndef LRVM_IMAGE_FORMAT_H
#define LRVM_IMAGE_FORMAT_H

#include <stdint.h>

#define IMG_MAGIC "LRVMIMG1"
#define IMG_FORMAT_VERSION 2u
#define IMG_FORMAT_VERSION_V1 1u /* still read: no seg_id, no log_pending */
#define IMG_HEADER_SIZE 4096u    /* the header page */
#define IMG_BUILD_ID_MAX 64u
#define IMG_PATH_MAX 1024u

enum img_id_kind {
    IMG_ID_NONE = 0,   /* not recorded */
    IMG_ID_GNU = 1,    /* NT_GNU_BUILD_ID note */
    IMG_ID_CRC32C = 2, /* fallback: crc32c of the executable file's contents (4 bytes) */
};

/* what a value in the committed globals points into that will not come back at a restart */
enum img_restore_kind {
    IMG_RK_RESTORABLE = 0, /* nothing found */
    IMG_RK_ANON = 1,       /* an anonymous mapping outside the segment */
    IMG_RK_STACK = 2,      /* the main thread's stack */
    IMG_RK_TLS = 3,        /* the main thread's thread-local storage */
    IMG_RK_BRK = 4,        /* the program break ([heap]) */
    IMG_RK_FILE = 5,       /* a file mapping */
    IMG_RK_LIBDATA = 6,    /* a shared library's writable data */
    IMG_RK_INTERNAL = 7,   /* lrvm's own volatile memory */
    IMG_RK_KERNEL = 8,     /* memory the kernel maps ([vdso], [vvar] ...) */
    IMG_RK_FREED = 9,      /* a heap block that was freed (a dangling pointer) */
};

#define IMG_CRASH_MAGIC 0x48534152u /* "RASH" */
#define IMG_SYM_MAX 96u
#define IMG_TARGET_MAX 128u

enum img_flags {
    IMG_F_GLOBALS = 1u << 0,       /* the segment carries the executable's globals */
    IMG_F_GLOBALS_VALID = 1u << 1, /* ... and a commit has put them there */
};

/* struct image_header -- page 0 of the segment; native little-endian x86-64 layout. */
struct image_header {
    char magic[8];        /* IMG_MAGIC */
    uint32_t version;     /* IMG_FORMAT_VERSION */
    uint32_t header_size; /* sizeof(struct image_header) */
    /* immutable, set at creation */
    uint64_t heap_base;     /* address the heap is mapped at */
    uint64_t heap_reserve;  /* bytes reserved for the heap */
    uint64_t heap_off;      /* segment offset of the heap */
    uint64_t globals_off;   /* segment offset of the globals area (IMG_HEADER_SIZE) */
    uint64_t globals_len;   /* bytes of globals (page multiple); 0 = heap-only */
    uint64_t globals_vaddr; /* run-time address of the globals area */
    uint64_t load_base;     /* the executable's load base (0 for a non-PIE executable) */
    uint64_t created_ns;    /* CLOCK_REALTIME at creation */
    uint32_t id_kind;       /* enum img_id_kind */
    uint32_t id_len;        /* bytes of build_id used */
    uint8_t build_id[IMG_BUILD_ID_MAX];
    char exe_path[IMG_PATH_MAX]; /* the executable, for messages and rvmutl (NUL terminated) */
    /* mutable, written just before each commit and committed with it */
    uint32_t flags; /* enum img_flags */
    uint32_t pad;
    uint64_t commit_count;    /* commits made through this layout */
    uint64_t last_commit_ns;  /* CLOCK_REALTIME of the last commit */
    uint64_t last_commit_pid; /* process that made it */
    /* version 2 */
    uint8_t seg_id[16];   /* identity: immutable once set (see IDENTITY) */
    uint32_t log_pending; /* see LOG PENDING: written directly, not by commits alone */
    uint32_t pad2;
    /* the restorability verdict of this commit (mutable, committed) */
    uint32_t restore_kind; /* enum img_restore_kind */
    uint32_t restore_pad;
    uint64_t restore_addr;               /* where the value lies (a global, or a heap word) */
    uint64_t restore_value;              /* the value */
    uint64_t restore_sym_off;            /* restore_addr - the symbol's address */
    char restore_sym[IMG_SYM_MAX];       /* the global (NUL terminated; "" = no symbol) */
    char restore_target[IMG_TARGET_MAX]; /* the mapping, as /proc/self/maps names it */
    /* version 2: the crash note (written outside the log, see CRASH NOTE) */
    uint32_t crash_magic; /* IMG_CRASH_MAGIC when set */
    uint32_t crash_signal;
    uint64_t crash_commit_count; /* commit_count of the state that was restored */
    uint64_t crash_pid;
    uint64_t crash_addr; /* si_addr */
    uint64_t crash_pc;
    char crash_sym[IMG_SYM_MAX]; /* "function+0xoff" of the faulting frame, "" if unknown */
    uint32_t crash_crc;          /* crc32c of crash_magic .. crash_sym */
    uint32_t crash_pad;
};

/* bytes of a version-1 header: everything before seg_id */
#define IMG_HEADER_SIZE_V1 1208u

#define IMG_LOCK_OFF 2048u /* the held-lock table in the header page */
#define IMG_LOCK_ROW_SIZE 64u
#define IMG_LOCK_ROWS 32u      /* row 0: the table's own word(s) */
#define IMG_LOCK_ROW_ENTRIES 7 /* objects per thread row */

_Static_assert(__builtin_offsetof(struct image_header, seg_id) == IMG_HEADER_SIZE_V1,
               "version 1 headers end where seg_id starts");
_Static_assert(sizeof(struct image_header) <= IMG_LOCK_OFF, "header overlaps the lock table");
_Static_assert(IMG_LOCK_OFF + IMG_LOCK_ROWS * IMG_LOCK_ROW_SIZE <= IMG_HEADER_SIZE,
               "lock table exceeds the header page");

#endif
