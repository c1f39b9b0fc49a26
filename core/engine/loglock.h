/* SPDX-License-Identifier: MIT */
/*
 * loglock.h -- one advisory lock per log file, taken by everything that reads or changes it.
 *
 * The library (log_open: exclusive, for as long as the log is open), the shim (through the
 * library) and rvmutl (exclusive for recover/truncate, which go through the library; shared
 * for the read-only commands) all lock the log file itself with flock(2). A conflicting
 * holder makes the open fail at once with "in use by pid N", never wait.
 *
 * Why flock and not fcntl (POSIX) record locks: a POSIX lock is dropped when the process
 * closes ANY descriptor of the file (rvmutl and tests open a log twice), and belongs to the
 * process rather than the descriptor. flock belongs to the open file description: it lasts
 * while the library's descriptor is open, is dropped by exec (the descriptor is O_CLOEXEC;
 * the shim re-executes itself before it opens the log, so it never carries a lock across its
 * own exec), and is shared by a fork child's duplicate. That last part is handled here: in
 * a fork child the log descriptor is replaced by one that can neither read nor write, so the
 * child never writes its parent's log and does not keep the lock after the parent exits.
 */
#ifndef LRVM_ENGINE_LOGLOCK_H
#define LRVM_ENGINE_LOGLOCK_H

#include <stddef.h>
#include <sys/types.h>

/*
 * loglock_take -- lock the log open on fd (exclusive or shared), without waiting. 0, or an
 * errno value with why[] filled: EWOULDBLOCK means another holder ("log PATH is in use by
 * pid N ..."). An exclusive lock taken by the library is then watched for fork (see above).
 */
int loglock_take(int fd, const char *path, int exclusive, char *why, size_t whylen)
    __attribute__((visibility("hidden")));

/*
 * loglock_flock -- flock(fd, op | LOCK_NB) that tells a live holder from an inherited one.
 * A flock belongs to an open file description, and a fork child shares its parent's
 * descriptions until it closes its duplicates. The library and the shim drop theirs in the
 * child's first steps (fork handlers), but between fork() and those steps the child holds
 * the lock too: a parent that forks and exits at once leaves it held for that instant, and a
 * run starting right then must not be refused. So when the process that took the lock has
 * exited (or cannot be named), the lock is polled for up to 5 s before giving up; a live
 * taker is reported at once. 0, or an errno value (EWOULDBLOCK: still held; *holder is the
 * live taker's pid, or 0).
 */
int loglock_flock(int fd, int op, pid_t *holder) __attribute__((visibility("hidden")));

/* loglock_forget -- the library is about to close fd: stop watching it for fork */
void loglock_forget(int fd) __attribute__((visibility("hidden")));

#endif /* LRVM_ENGINE_LOGLOCK_H */
