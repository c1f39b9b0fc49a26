/* SPDX-License-Identifier: MIT */
/*
 * log_format.h -- the on-disk format of the lrvm redo log. Specification first.
 *
 * FILE LAYOUT (all integers little-endian, the native order of the only supported
 * targets; offsets in bytes from the start of the file)
 *
 *   [0, 32 KiB)         status slot 0
 *   [32 KiB, 64 KiB)    status slot 1
 *   [64 KiB, size)      record area: a circular buffer of records, area_len bytes.
 *
 * rvm_create_log(log_len) makes a file of LOG_HDR_SIZE + log_len rounded up to 4 KiB,
 * written with zeros (not just fallocated: writing into unwritten extents would make
 * every in-place commit pay for an extent conversion and a journal commit).
 *
 * STATUS SLOT (struct log_status, then the segment dictionary)
 *
 *   0   u64 magic      LOG_STATUS_MAGIC ("LRVMLOG" + '\1')
 *   8   u32 version    LOG_FORMAT_VERSION; another value -> RVM_ELOG_VERSION_SKEW
 *   12  u32 used       bytes of this slot covered by crc (header + dictionary)
 *   16  u64 generation incremented at every status write; the valid slot with the
 *                      higher generation is current. Writes alternate between slots
 *                      (ping-pong), so a torn status write leaves the other slot intact.
 *   24  u64 area_off   LOG_HDR_SIZE
 *   32  u64 area_len   size of the record area
 *   40  u64 head_off   offset (within the area) of the oldest live record
 *   48  u64 head_seq   its sequence number
 *   56  u64 salt       the salt of the newest epoch (= epochs[nepochs-1].salt)
 *   64  u32 nsegs      entries in the segment dictionary
 *   68  u32 crc        CRC32C of bytes [0, used) with this field taken as zero
 *   72  char rvm_version[128]  RVM_VERSION of the library that created the log
 *   200 u32 nepochs    1..LOG_MAX_EPOCHS; u32 zero
 *   208 epochs[LOG_MAX_EPOCHS] of { u64 seq; u64 salt }: records with sequence numbers
 *                      in [epochs[i].seq, epochs[i+1].seq) are checksummed with
 *                      epochs[i].salt. Every recovery starts a new epoch at the first
 *                      sequence number it did not find, with a fresh random salt, so a
 *                      record left over from before a crash (a torn tail, or records
 *                      after it) can never be mistaken for a new one, even at the same
 *                      offset with the same sequence number (cf. SQLite's WAL salts).
 *                      Epochs wholly before head_seq are dropped at each status write.
 *   336 dictionary: nsegs x { u32 id; u32 path_len; u8 identity[16]; path bytes (NUL
 *                   included), zero padded to 8 }. A record names its segment by id.
 *                   (Version 2 entries have no identity field: { id; path_len; path }.)
 *
 * SEGMENT IDENTITY AND PATHS (version 3)
 *   A log belongs to its segments, not to the places they happened to be when the log was
 *   written. Two things make a copy of a segment with its log (cp -a, cp --sparse, rsync,
 *   tar) an independent pair, and a moved pair still work:
 *   - PATHS RELATIVE TO THE LOG. A dictionary path that does not start with '/' is relative
 *     to the directory holding the log file (as the log is opened, symlinks resolved). A
 *     segment in that directory or below it is always stored that way, so the copy's log
 *     names the copy's segment. A segment elsewhere is stored with its absolute path: such
 *     a pair cannot be copied as a unit, and docs say so.
 *   - IDENTITY. identity is the segment's random 128-bit id, or all zeros when the segment
 *     has none that the engine can read. A segment carries its identity in its own header
 *     page (the process-image segments of image_format.h); the engine reads it from the
 *     file when the segment joins the log and again before each status write while the
 *     entry is still all zeros (a new image segment's header reaches the file only at the
 *     first truncation). Recovery never writes a record into a file whose identity differs
 *     from a non-zero dictionary identity (or that carries none where one is expected): it
 *     fails with RVM_ELOG naming the file and the identity expected, and writes nothing
 *     there. (If no live record names that entry, recovery succeeds, and a later rvm_map of
 *     the path gives the entry to the new file and its identity.) A plain data file mapped
 *     with rvm_map has no header, and the engine does not invent one: its bytes are the
 *     application's (file offsets are part of the LRVM API). Its identity is recorded as
 *     zeros and its protection is the relative path alone. We chose not to keep that identity in an
 *     extended attribute or a sidecar file: cp without -a, tar without --xattrs, rsync
 *     without -X and many filesystems drop attributes silently, and a sidecar is separated
 *     by the same tools, so the check would vanish in exactly the copies it is meant for.
 *   Version 2 logs are read (absolute paths, no identities) and become version 3 at the
 *   first status write, which recovery makes at every open: opening is the migration.
 *
 *   A slot is valid iff magic, version, used <= LOG_SLOT_SIZE and crc all check.
 *   No valid slot -> RVM_ELOG ("not an lrvm log, or both status copies damaged").
 *   The status is written only (a) by truncation and recovery, after the segments
 *   are synced, to move the head; (b) when a new segment joins the dictionary, before
 *   any record naming it can be written; (c) when the area grows (GROWTH). Never per
 *   commit.
 *
 * RECORD (8-byte aligned within the area; never split across the area end)
 *
 *   0   u32 magic      LOG_REC_MAGIC
 *   4   u16 type       LOG_REC_TXN (an end marker: LOG_REC_END, below)
 *   6   u16 flags      version 3: the DURABLE FRONTIER d: when the record was formatted,
 *                      every record up to seq - d was durable (fdatasync'd); 0 = no claim
 *                      (the distance did not fit, and every version 2 record)
 *   8   u32 len        total bytes, header + payload + padding; multiple of 8
 *   12  u32 crc        CRC32C seeded with salt, over the record with crc taken as zero
 *   16  u64 seq        sequence number: exactly one more than the previous record's
 *   24  u32 nranges    ranges in the payload
 *   28  u32 ntxn       transactions this record commits (> 1 when no_flush commits
 *                      were coalesced into it); all or none of them are applied
 *   32  nranges x { u64 off; u32 len; u32 seg }   (16 bytes each: W3's 100 000
 *                      4-byte ranges cost 2 MB), then the new values of the ranges,
 *                      concatenated, then zeros up to a multiple of 8.
 *
 *   A record at area offset pos is VALID iff magic and type check, 32 <= len,
 *   len % 8 == 0, pos + len <= area_len, seq == the expected next sequence number,
 *   crc checks, and its ranges lie within its payload. A commit is durable when its
 *   last byte is: the record is written in place with one pwrite, then one fdatasync.
 *
 * END MARKER AND DAMAGE (version 3). A record that does not validate ends the chain. That
 *   is right for a torn tail (the last write of a crash, never acknowledged) and wrong for
 *   a record damaged later (a bad sector, a stray write): every acknowledged commit after
 *   it would be dropped in silence. So the end of the chain must be told apart:
 *   - After the last record of each write the writer puts an END MARKER: a 32-byte record
 *     header with type LOG_REC_END, len 32, nranges 0, ntxn 0, seq = the NEXT sequence
 *     number, crc seeded like a record of that seq. It goes into the zero padding the
 *     write carries anyway (no extra I/O, same fdatasync), in free space, and is
 *     overwritten by the next record. A writer that places a record elsewhere than the
 *     current tail (a wrap to offset 0) first zeroes the marker at the old tail, in the
 *     same fdatasync as the record, so a marker never survives its successor's move.
 *     A new log gets a marker for seq 1 at offset 0 when it is created, so its first
 *     opening does not scan the whole (empty) area.
 *   - Each record carries its durable frontier (flags, above). Records of ONE write may
 *     reach the disk in any order when the machine dies before the fdatasync, so a valid
 *     record after an invalid one proves nothing by itself; a valid record whose frontier
 *     covers seq k proves that k had been made durable -- acknowledged -- before it.
 *   - Reading stops at pos expecting seq k. If a valid end marker for k is at pos, this
 *     is where the last write ended: a clean end. Otherwise (no room for a marker, a torn
 *     write, a streamed record, or damage) the reader scans the free space -- from pos to
 *     the area end, then from 0 to the head -- for a valid record with seq > k checked
 *     with the salt of that seq's epoch and a frontier covering k. None: a TORN TAIL (or
 *     an end without a marker; or a torn group write whose later records survived), dropped
 *     as before. One: record k is DAMAGED IN THE MIDDLE of acknowledged
 *     commits; recovery fails with RVM_ELOG naming seq k, its offset, and the later
 *     record found, and leaves the log as it was. `rvmutl salvage` recovers the valid
 *     prefix deliberately: the new epoch then starts at k, which invalidates the records
 *     after the damage for good, and it prints what it dropped.
 *   The scan costs one read of the free space, and only when a marker is missing; a
 *   process that is killed leaves its markers in the page cache, so only power loss,
 *   damage and a last write without room for a marker pay it. Version 2 records carry
 *   no frontier (flags 0): recovery of a version 2 log does not scan, and damage to a
 *   record written before the upgrade is proven only by a later version 3 record.
 *
 * WRAP. A writer whose record does not fit in [tail, area_len) writes it at offset 0
 *   (the gap is dead space until the head passes it). A reader at pos that finds no
 *   valid record with the expected seq tries offset 0 once: the record with that seq
 *   exists at most once in an incarnation, so a valid one at 0 is the successor; a
 *   stale record there has a smaller seq or another salt. Also after a record that
 *   leaves fewer than LOG_REC_HDR bytes before the area end, the next is at 0.
 *   Writers zero-fill from the end of a write to the next 4 KiB file boundary (within
 *   free space only) so that the next append finds its page cached instead of forcing
 *   a read-modify-write of the block.
 *
 * GROWTH (same format version: only area_len changes, which every reader takes from the
 *   status). A record larger than the area, or one that must be placed at once, makes the
 *   writer grow the area instead of failing the commit, up to a bound the library is given
 *   (rvm_log_max_len; by default twice the total size of the segments the log serves). Order:
 *     1. fallocate file bytes [area_off + old area_len, area_off + new area_len), so a full
 *        disk fails before any write; pwrite zeros over them (written, not just fallocated,
 *        for the reason given for rvm_create_log above) except over the bytes the record
 *        that caused the growth is placed on next: that record's own write converts them,
 *        and until it does they are reserved and read as zeros (without fallocate support,
 *        every byte is written); fdatasync.
 *     2. write the status (other slot) with the new area_len, head and dictionary unchanged;
 *        fdatasync. Only then may a record occupy the new bytes.
 *   A crash after 1 leaves a file longer than area_off + area_len: readers ignore the excess
 *   (a status is consistent when the file is AT LEAST that long) and the next growth writes
 *   the zeros again. A crash in 2 leaves the other slot, with the old area_len, valid. A failed
 *   step 1 (ENOSPC) cuts the file back and refuses the commit; nothing of it was written.
 *   Wrap: the new bytes follow the old area end. If live records wrapped (head >= tail, log
 *   not empty), the new bytes lie between the last record before the old end and offset 0:
 *   they are dead space like a wrap gap until the head passes them, and a reader leaving that
 *   record finds no record with the expected seq there (zeros, or stale bytes of an older
 *   seq or salt) and continues at 0 by the WRAP rule below. Older libraries of format 3 read
 *   a grown log unchanged. A grown log does not shrink (log_grow.c says why).
 *   One record still carries one commit, and `len` is 32 bits: a commit is at most 4 GiB.
 *
 * SETTLING A BIG RECORD. A streamed record of at least 16 MiB (the shim's exit commit of a big
 *   heap) is applied to its segments as soon as it is durable, from the committer's memory,
 *   when no older record is live: pwrite segments ; fsync them ; status with the head past the
 *   record ; fdatasync -- barrier 2 below, the same order as truncation. The next start then
 *   has nothing to replay.
 *
 * WRITE BARRIERS (the order that makes every crash recoverable)
 *   1. commit:      pwrite(records) ; fdatasync(log)  -> then the commit returns.
 *   2. truncation:  pwrite(segments) ; fsync(each segment) ; pwrite(status, other slot) ;
 *                   fdatasync(log) -> only then may writers reuse the freed space.
 *   3. new segment: pwrite(status with dictionary) ; fdatasync(log) -> then records
 *                   naming it may be written.
 *   4. growth:      pwrite(zeros past the area) ; fdatasync(log) ; pwrite(status with the
 *                   new area_len, other slot) ; fdatasync(log) -> then records may use it.
 *   Segments receive only committed new values (no-steal), and applying a record
 *   twice leaves the same bytes (idempotent redo): a crash anywhere in truncation or
 *   recovery is repaired by running recovery again.
 *
 * RECOVERY
 *   Read the current status slot; from (head_off, head_seq) read valid records in
 *   order (large sequential reads, growing from 64 KiB to 4 MiB) and write their
 *   ranges into the segment files named by the dictionary (into the page cache: no
 *   fsync). Then write a status with the SAME head and a new epoch (next seq, fresh
 *   salt); fdatasync. The log still holds every record recovery applied, so if the
 *   machine loses the page cache, the next recovery applies them again; the next
 *   truncation in the same process fsyncs the segments recovery wrote and only then
 *   moves the head past them (barrier 2), without applying them again: the page cache
 *   holds them, and applying them again would make the file show older committed
 *   values between two of them, which a region mapped from the file would see.
 *   Recovery is therefore one sequential read, the segment pwrites and
 *   ONE small synchronous write. When the epoch table is full (a crash loop that never
 *   truncated), recovery instead fsyncs the segments and resets the head to the end of
 *   the chain with a single new epoch.
 */
#ifndef LRVM_CORE_LOG_FORMAT_H
#define LRVM_CORE_LOG_FORMAT_H

#include <stdint.h>

#define LOG_SLOT_SIZE (32u * 1024u)
#define LOG_HDR_SIZE (2u * LOG_SLOT_SIZE)
#define LOG_STATUS_MAGIC 0x01474f4c4d56524cull /* "LRVMLOG\1" */
#define LOG_FORMAT_VERSION 3u
#define LOG_FORMAT_VERSION_V2 2u  /* still read: no identities, absolute paths, no markers */
#define LOG_REC_MAGIC 0x5256524cu /* "LRVR" */
#define LOG_REC_TXN 1u
#define LOG_REC_END 2u /* end marker: not a record, never applied */
#define LOG_REC_HDR 32u
#define LOG_RANGE_HDR 16u
#define LOG_MIN_AREA (64u * 1024u)
#define LOG_MAX_EPOCHS 8u
#define LOG_SEG_ID_LEN 16u /* segment identity bytes in a dictionary entry */

struct log_status {
    uint64_t magic;
    uint32_t version;
    uint32_t used;
    uint64_t generation;
    uint64_t area_off;
    uint64_t area_len;
    uint64_t head_off;
    uint64_t head_seq;
    uint64_t salt;
    uint32_t nsegs;
    uint32_t crc;
    char rvm_version[128];
    uint32_t nepochs;
    uint32_t zero;
    struct log_epoch {
        uint64_t seq;
        uint64_t salt;
    } epochs[LOG_MAX_EPOCHS];
};
_Static_assert(sizeof(struct log_status) == 336, "status header layout is on disk");

struct log_rec_hdr {
    uint32_t magic;
    uint16_t type;
    uint16_t flags;
    uint32_t len;
    uint32_t crc;
    uint64_t seq;
    uint32_t nranges;
    uint32_t ntxn;
};
_Static_assert(sizeof(struct log_rec_hdr) == LOG_REC_HDR, "record header layout is on disk");

struct log_range_hdr {
    uint64_t off;
    uint32_t len;
    uint32_t seg;
};
_Static_assert(sizeof(struct log_range_hdr) == LOG_RANGE_HDR, "range header layout is on disk");

#endif /* LRVM_CORE_LOG_FORMAT_H */
