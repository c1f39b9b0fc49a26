/* SPDX-License-Identifier: MIT */
/*
 * names.c -- printable names of return codes, modes and struct ids (rvm_return & co).
 */
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>

static char *names_codes[] = {
    "RVM_EINIT",       "RVM_EINTERNAL",
    "RVM_EIO",         "RVM_EPLACEHOLDER",
    "RVM_ELOG",        "RVM_ELOG_VERSION_SKEW",
    "RVM_EMODE",       "RVM_ENAME_TOO_LONG",
    "RVM_ENO_MEMORY",  "RVM_ENOT_MAPPED",
    "RVM_EOFFSET",     "RVM_EOPTIONS",
    "RVM_EOVERLAP",    "RVM_EPAGER",
    "RVM_ERANGE",      "RVM_EREGION",
    "RVM_EREGION_DEF", "RVM_ESRC",
    "RVM_ESTATISTICS", "RVM_ESTAT_VERSION_SKEW",
    "RVM_ETERMINATED", "RVM_ETHREADS",
    "RVM_ETID",        "RVM_ETOO_BIG",
    "RVM_EUNCOMMIT",   "RVM_EVERSION_SKEW",
    "RVM_EVM_OVERLAP",
};
_Static_assert(sizeof(names_codes) / sizeof(names_codes[0]) == rvm_last_code - RVM_EINIT,
               "one name per return code");

/* rvm_return -- name of a return code ("RVM_SUCCESS", "RVM_EINIT", ...) */
char *rvm_return(rvm_return_t code)
{
    if (code == RVM_SUCCESS)
        return "RVM_SUCCESS";
    if (code == RVM_ESEGMENT_HDR)
        return "RVM_ESEGMENT_HDR";
    if (code >= RVM_EINIT && code < rvm_last_code)
        return names_codes[code - RVM_EINIT];
    return "Invalid RVM return code";
}

/* rvm_mode -- name of a transaction mode */
char *rvm_mode(rvm_mode_t mode)
{
    switch (mode) {
    case restore: return "restore";
    case no_restore: return "no_restore";
    case flush: return "flush";
    case no_flush: return "no_flush";
    default: return "Invalid RVM transaction mode";
    }
}

/* rvm_type -- name of a struct id */
char *rvm_type(rvm_struct_id_t id)
{
    switch (id) {
    case rvm_region_id: return "rvm_region_t";
    case rvm_options_id: return "rvm_options_t";
    case rvm_tid_id: return "rvm_tid_t";
    case rvm_statistics_id: return "rvm_statistics_id";
    default: return "Invalid RVM structure type";
    }
}
