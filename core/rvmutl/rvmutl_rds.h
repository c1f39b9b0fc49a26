/* SPDX-License-Identifier: MIT */
/*
 * rvmutl_rds.h -- rvmutl's RDS command: rds-check SEGMENT [LOG] (exit status 0 consistent,
 * 1 damaged or unreadable). With LOG, its records not yet applied are laid over the file.
 */
#ifndef LRVM_RVMUTL_RDS_H
#define LRVM_RVMUTL_RDS_H

int cmd_rds_check(const char *seg, const char *logp);

#endif
