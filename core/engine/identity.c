/* SPDX-License-Identifier: MIT */
/*
 * identity.c -- what a log knows about its segments besides their ids: the identity a
 * segment carries in its own header, and where the segment is relative to the log.
 *
 * WHY (log_format.h, SEGMENT IDENTITY AND PATHS). A log used to name its segments by
 * absolute path, so a copy of a segment with its log (a backup, `cp -a dir copy`)
 * recovered into the ORIGINAL segment, and a moved pair looked for its segment at the
 * old place. Paths under the log's directory are now stored relative to it, which makes
 * the pair a unit that can be copied and moved; and a segment that carries an identity
 * (the process-image segments of image_format.h) is checked against the identity the log
 * recorded, so a log is never applied to another segment that happens to sit at the
 * expected path.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "image_format.h"
#include "rvm_int.h"

/* seg_ident_known -- is this identity set (not all zeros)? */
int seg_ident_known(const uint8_t id[LOG_SEG_ID_LEN])
{
    for (unsigned i = 0; i < LOG_SEG_ID_LEN; i++)
        if (id[i])
            return 1;
    return 0;
}

/* seg_ident_hex -- the identity as 32 hex digits (for messages) */
void seg_ident_hex(const uint8_t id[LOG_SEG_ID_LEN], char out[2 * LOG_SEG_ID_LEN + 1])
{
    for (unsigned i = 0; i < LOG_SEG_ID_LEN; i++) {
        out[2 * i] = "0123456789abcdef"[id[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[id[i] & 15];
    }
    out[2 * LOG_SEG_ID_LEN] = 0;
}

/*
 * seg_ident_read -- the identity the segment file carries in its header: 1 and id set,
 * or 0 (no header we know, a header of a version without identity, or a read error: the
 * caller treats all of them as "carries none"). Only committed bytes are in the file
 * (no-steal), so a header found here is one a commit made.
 */
int seg_ident_read(int fd, uint8_t id[LOG_SEG_ID_LEN])
{
    struct image_header h;
    memset(id, 0, LOG_SEG_ID_LEN);
    if (fd < 0 || full_pread(fd, &h, sizeof(h), 0) != 0)
        return 0;
    if (memcmp(h.magic, IMG_MAGIC, 8) != 0 || h.version < 2 ||
        h.header_size < offsetof(struct image_header, seg_id) + sizeof(h.seg_id))
        return 0;
    memcpy(id, h.seg_id, LOG_SEG_ID_LEN);
    return seg_ident_known(id);
}

/* log_dir_of -- the absolute directory of a log file (symlinks resolved); NULL on error */
char *log_dir_of(const char *logpath)
{
    char abs[PATH_MAX];
    if (realpath(logpath, abs) == NULL)
        return NULL;
    char *slash = strrchr(abs, '/');
    if (slash == abs)
        slash[1] = 0; /* a log in / */
    else
        *slash = 0;
    return strdup(abs);
}

/* dict_path_store -- how the dictionary stores segment path abs (absolute): relative to
 * logdir when the segment lies in it or below, else abs itself */
const char *dict_path_store(const char *logdir, const char *abs)
{
    if (logdir == NULL)
        return abs;
    size_t n = strlen(logdir);
    if (n == 1 && logdir[0] == '/')
        return abs[1] ? abs + 1 : abs;
    if (strncmp(abs, logdir, n) == 0 && abs[n] == '/' && abs[n + 1] != 0)
        return abs + n + 1;
    return abs;
}

/* dict_path_resolve -- the absolute path of a stored dictionary path (malloc'd) */
char *dict_path_resolve(const char *logdir, const char *stored)
{
    if (stored[0] == '/' || logdir == NULL)
        return strdup(stored);
    size_t a = strlen(logdir), b = strlen(stored);
    char *p = malloc(a + b + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, logdir, a);
    size_t k = a;
    if (a == 0 || logdir[a - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, stored, b + 1);
    return p;
}
