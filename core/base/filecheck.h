/* SPDX-License-Identifier: MIT */
/*
 * filecheck.h -- open a log or a segment only if it is safe to trust: the ownership rules.
 *
 * A log tells recovery which files to write and what to write into them, and a segment's
 * bytes become a program's memory. Either one planted by another user turns the process
 * against its own user (a root process overwrote a root-owned file through another user's
 * log). So before anything is read from such a file or written through it:
 *
 *   1. owner: the file belongs to the user the process runs as (its effective uid; for a
 *      root process that means root). With the shared-group option, a file of another user
 *      is accepted when its group is one of the process's groups.
 *   2. mode: nobody else may write it: no write bit for others, ever; no write bit for the
 *      group unless the shared-group option is on.
 *   3. symbolic links: a path whose last component is a symbolic link (or a chain of them)
 *      is followed only when every link in the chain has the same owner as the file it
 *      leads to; a link planted by another user towards someone else's file is refused.
 *   4. type: a regular file or a block device, nothing else (no FIFOs, sockets, directories).
 *
 * The checks are made on the open descriptor (fstat), never on the path before opening, so
 * the file cannot be swapped between the check and the use; the last component is opened
 * with O_NOFOLLOW and symbolic links are read one by one through O_PATH descriptors.
 * Directory components are not examined: a directory that other users may write lets them
 * delete or rename the files in it (the trust model in docs/trust-model.md), but not make
 * the process accept a file that breaks the rules above.
 */
#ifndef LRVM_CORE_FILECHECK_H
#define LRVM_CORE_FILECHECK_H

#include <stddef.h>
#include <sys/types.h>

/* process-wide: accept group-owned and group-writable files of the process's groups
 * (rvm option flag RVM_SHARED_GROUP; the shim's and rvmutl's LRVM_SHARED_GROUP=1) */
extern int filecheck_shared_group __attribute__((visibility("hidden")));

/*
 * filecheck_open -- open(path, flags, mode) under the rules above. `what` names the file's
 * role in messages ("log", "segment"). Returns the descriptor (O_CLOEXEC), or -1 with errno
 * set: the open's own errno (ENOENT ...), or EPERM when a rule refused the file, in which
 * case why[] holds a message naming the file and the rule (why[] is "" for other errors).
 */
int filecheck_open(const char *path, int flags, mode_t mode, const char *what, char *why,
                   size_t whylen) __attribute__((visibility("hidden")));

/* filecheck_fd -- rules 1, 2 and 4 on an open descriptor; 0, or EPERM with why[] filled */
int filecheck_fd(int fd, const char *path, const char *what, char *why, size_t whylen)
    __attribute__((visibility("hidden")));

#endif /* LRVM_CORE_FILECHECK_H */
