/* SPDX-License-Identifier: MIT */
/*
 * filecheck.c -- the ownership rules for logs and segments (see filecheck.h).
 *
 * Order of work, and why it has no check-then-use race:
 *   - the path is opened with O_NOFOLLOW: if its last component is a regular file (or a
 *     device), the descriptor IS the file and fstat on it judges that very file;
 *   - if the last component is a symbolic link (ELOOP), the chain is read one link at a time
 *     through O_PATH|O_NOFOLLOW descriptors: the owner we record and the target we read come
 *     from the same link object, even if someone renames links meanwhile; the file the last
 *     link names is then opened with O_NOFOLLOW again (a link swapped in at that moment makes
 *     the open fail, never succeed) and judged by fstat, including "same owner as the links".
 * Nothing is read from or written to the file before the verdict.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filecheck.h"
#include "sysio.h"

#define FILECHECK_MAX_LINKS 8 /* longer chains are refused (the kernel's own limit is 40) */

int filecheck_shared_group;

/* in_my_groups -- is gid the process's effective group or one of its supplementary groups? */
static int in_my_groups(gid_t gid)
{
    if (gid == getegid())
        return 1;
    gid_t list[256];
    int n = getgroups((int)(sizeof(list) / sizeof(list[0])), list);
    for (int i = 0; i < n; i++)
        if (list[i] == gid)
            return 1;
    return 0;
}

/* refuse -- format why[] and return EPERM */
__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t whylen, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return EPERM;
}

int filecheck_fd(int fd, const char *path, const char *what, char *why, size_t whylen)
{
    struct stat st;
    if (sysio.fstat(fd, &st) != 0) {
        int e = errno;
        snprintf(why, whylen, "cannot stat %s %s: %s", what, path, strerror(e));
        return e;
    }
    const char *relax =
        filecheck_shared_group
            ? ""
            : " (if it is shared with your group on purpose, set LRVM_SHARED_GROUP=1 or the "
              "RVM_SHARED_GROUP option flag)";
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return refuse(why, whylen,
                      "%s %s is not a regular file or a block device: refusing "
                      "it",
                      what, path);
    if (st.st_uid != geteuid() && !(filecheck_shared_group && in_my_groups(st.st_gid)))
        return refuse(why, whylen,
                      "%s %s belongs to uid %u, not to uid %u that this process "
                      "runs as: refusing to read or write another user's %s (one planted by "
                      "someone else could make this process overwrite files); use a file of "
                      "your own%s",
                      what, path, (unsigned)st.st_uid, (unsigned)geteuid(), what, relax);
    if (st.st_mode & S_IWOTH)
        return refuse(why, whylen,
                      "%s %s is writable by every user (mode %04o): anyone could "
                      "change what it makes this process write; refusing it (chmod o-w %s)",
                      what, path, (unsigned)(st.st_mode & 07777), path);
    if ((st.st_mode & S_IWGRP) && !filecheck_shared_group)
        return refuse(why, whylen,
                      "%s %s is writable by its group (mode %04o): refusing it "
                      "(chmod g-w %s)%s",
                      what, path, (unsigned)(st.st_mode & 07777), path, relax);
    return 0;
}

/* link_target -- the path the link `cur` names, relative targets taken from cur's directory */
static int link_target(const char *cur, const char *target, char *out, size_t outsz)
{
    const char *slash = strrchr(cur, '/');
    int n;
    if (target[0] == '/' || slash == NULL)
        n = snprintf(out, outsz, "%s", target);
    else
        n = snprintf(out, outsz, "%.*s/%s", (int)(slash - cur), cur, target);
    return n < 0 || (size_t)n >= outsz ? ENAMETOOLONG : 0;
}

/*
 * follow_links -- path ends in a symbolic link: read the chain (see the file comment).
 * On success out[] is the path the last link names and *owner the links' common owner.
 */
static int follow_links(const char *path, const char *what, char *out, size_t outsz, uid_t *owner,
                        char *why, size_t whylen)
{
    char cur[4096], target[4096];
    if (snprintf(cur, sizeof(cur), "%s", path) >= (int)sizeof(cur))
        return ENAMETOOLONG;
    int nlinks = 0;
    for (;;) {
        int lfd = open(cur, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (lfd < 0 && errno == ENOENT && nlinks > 0)
            break; /* a dangling link: cur is the file it names (O_CREAT may make it) */
        if (lfd < 0)
            return errno;
        struct stat ls;
        if (fstat(lfd, &ls) != 0 || !S_ISLNK(ls.st_mode)) {
            close(lfd);
            break; /* the chain ends here: cur names the file itself */
        }
        ssize_t k = readlinkat(lfd, "", target, sizeof(target) - 1);
        int e = errno;
        close(lfd);
        if (k < 0)
            return e;
        target[k] = '\0';
        if (nlinks > 0 && ls.st_uid != *owner)
            return refuse(why, whylen,
                          "%s %s is reached through symbolic links of different "
                          "owners (uid %u and uid %u): refusing it",
                          what, path, (unsigned)*owner, (unsigned)ls.st_uid);
        *owner = ls.st_uid;
        if (++nlinks > FILECHECK_MAX_LINKS)
            return refuse(why, whylen,
                          "%s %s: more than %d symbolic links in a row: refusing "
                          "it",
                          what, path, FILECHECK_MAX_LINKS);
        char next[4096];
        int rc = link_target(cur, target, next, sizeof(next));
        if (rc)
            return rc;
        memcpy(cur, next, sizeof(cur));
    }
    if (snprintf(out, outsz, "%s", cur) >= (int)outsz)
        return ENAMETOOLONG;
    return 0;
}

int filecheck_open(const char *path, int flags, mode_t mode, const char *what, char *why,
                   size_t whylen)
{
    why[0] = '\0';
    int fd = sysio.open(path, flags | O_NOFOLLOW, mode);
    int via_link = 0;
    uid_t link_owner = 0;
    char real[4096];
    if (fd < 0 && errno == ELOOP) {
        int rc = follow_links(path, what, real, sizeof(real), &link_owner, why, whylen);
        if (rc) {
            errno = rc;
            return -1;
        }
        /* creating through a link: only through a link of our own (a link planted by another
         * user must not choose where this process creates files) */
        if ((flags & O_CREAT) && link_owner != geteuid()) {
            errno = refuse(why, whylen,
                           "%s %s is a symbolic link of uid %u, not yours: "
                           "refusing to create its target",
                           what, path, (unsigned)link_owner);
            return -1;
        }
        via_link = 1;
        fd = sysio.open(real, flags | O_NOFOLLOW, mode);
    }
    if (fd < 0)
        return -1;
    int rc = filecheck_fd(fd, path, what, why, whylen);
    struct stat st;
    if (rc == 0 && via_link && sysio.fstat(fd, &st) == 0 && st.st_uid != link_owner)
        rc = refuse(why, whylen,
                    "%s %s is a symbolic link of uid %u to %s, which belongs to "
                    "uid %u: a link is followed only to a file of the link's owner; refusing "
                    "it",
                    what, path, (unsigned)link_owner, real, (unsigned)st.st_uid);
    if (rc) {
        sysio.close(fd);
        errno = rc;
        return -1;
    }
    return fd;
}
