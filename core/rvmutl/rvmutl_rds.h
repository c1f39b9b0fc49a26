/*
 * rvmutl_rds.h -- rvmutl's RDS command: rds-check SEGMENT (exit status 0 consistent,
 * 1 damaged or unreadable).
 */
#ifndef LRVM_RVMUTL_RDS_H
#define LRVM_RVMUTL_RDS_H

int cmd_rds_check(const char *seg);

#endif
