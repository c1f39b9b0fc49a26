/* SPDX-License-Identifier: MIT */
/*
 * test_api_records.c -- the parts of <rvm/rvm.h> and <rvm/rvm_statistics.h> a program sees
 * without a log: struct layouts and sizes, enum and return-code numbers, print names, option
 * constants, record allocators/initialisers/copiers, offset arithmetic and page macros.
 * Binary compatibility with programs built against the original
 * rests on these numbers, so each is pinned exactly.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stddef.h>

#include "core_test.h"
#include <rvm/rvm_statistics.h>

Test(api_records, struct_sizes_match_original_x86_64)
{
    cr_expect_eq(sizeof(rvm_tid_t), 40);
    cr_expect_eq(sizeof(rvm_options_t), 120);
    cr_expect_eq(sizeof(rvm_region_t), 72);
    cr_expect_eq(sizeof(rvm_offset_t), 16);
    cr_expect_eq(sizeof(rvm_length_t), 8);
    cr_expect_eq(sizeof(rvm_length_t), sizeof(char *));
    cr_expect_eq(sizeof(rvm_return_t), sizeof(int));
}

Test(api_records, struct_field_offsets)
{
    /* the order of fields is the original's; a program may use designated offsets via memcpy */
    cr_expect_eq(offsetof(rvm_tid_t, struct_id), 0);
    cr_expect_eq(offsetof(rvm_tid_t, from_heap), 4);
    cr_expect_eq(offsetof(rvm_tid_t, uname), 8);
    cr_expect_eq(offsetof(rvm_tid_t, tid), 24);
    cr_expect_eq(offsetof(rvm_tid_t, reserved), 32);
    cr_expect_eq(offsetof(rvm_options_t, log_dev), 8);
    cr_expect_eq(offsetof(rvm_options_t, truncate), 16);
    cr_expect_eq(offsetof(rvm_options_t, flags), 80);
    cr_expect_eq(offsetof(rvm_options_t, create_log_size), 96);
    cr_expect_eq(offsetof(rvm_options_t, create_log_mode), 112);
    cr_expect_eq(offsetof(rvm_region_t, data_dev), 8);
    cr_expect_eq(offsetof(rvm_region_t, dev_length), 16);
    cr_expect_eq(offsetof(rvm_region_t, offset), 32);
    cr_expect_eq(offsetof(rvm_region_t, vmaddr), 48);
    cr_expect_eq(offsetof(rvm_region_t, length), 56);
    cr_expect_eq(offsetof(rvm_region_t, no_copy), 64);
    cr_expect_eq(offsetof(rvm_offset_t, high), 0);
    cr_expect_eq(offsetof(rvm_offset_t, low), 8);
}

Test(api_records, enum_values)
{
    cr_expect_eq(rvm_false, 0);
    cr_expect_eq(rvm_true, 1);
    cr_expect_eq(rvm_region_id, 40);
    cr_expect_eq(rvm_options_id, 41);
    cr_expect_eq(rvm_tid_id, 42);
    cr_expect_eq(rvm_statistics_id, 43);
    cr_expect_eq(restore, 140);
    cr_expect_eq(no_restore, 141);
    cr_expect_eq(flush, 142);
    cr_expect_eq(no_flush, 143);
    cr_expect_eq(TRUE, 1);
    cr_expect_eq(FALSE, 0);
}

Test(api_records, return_code_numbers)
{
    cr_expect_eq(RVM_SUCCESS, 0);
    cr_expect_eq(RVM_EINIT, 200);
    cr_expect_eq(RVM_EINTERNAL, 201);
    cr_expect_eq(RVM_EIO, 202);
    cr_expect_eq(RVM_ELOG, 204);
    cr_expect_eq(RVM_ELOG_VERSION_SKEW, 205);
    cr_expect_eq(RVM_EMODE, 206);
    cr_expect_eq(RVM_ENAME_TOO_LONG, 207);
    cr_expect_eq(RVM_ENO_MEMORY, 208);
    cr_expect_eq(RVM_ENOT_MAPPED, 209);
    cr_expect_eq(RVM_EOFFSET, 210);
    cr_expect_eq(RVM_EOPTIONS, 211);
    cr_expect_eq(RVM_EOVERLAP, 212);
    cr_expect_eq(RVM_EPAGER, 213);
    cr_expect_eq(RVM_ERANGE, 214);
    cr_expect_eq(RVM_EREGION, 215);
    cr_expect_eq(RVM_EREGION_DEF, 216);
    cr_expect_eq(RVM_ESRC, 217);
    cr_expect_eq(RVM_ESTATISTICS, 218);
    cr_expect_eq(RVM_ESTAT_VERSION_SKEW, 219);
    cr_expect_eq(RVM_ETERMINATED, 220);
    cr_expect_eq(RVM_ETHREADS, 221);
    cr_expect_eq(RVM_ETID, 222);
    cr_expect_eq(RVM_ETOO_BIG, 223);
    cr_expect_eq(RVM_EUNCOMMIT, 224);
    cr_expect_eq(RVM_EVERSION_SKEW, 225);
    cr_expect_eq(RVM_EVM_OVERLAP, 226);
}

Test(api_records, rvm_return_names_every_code)
{
    static const struct {
        rvm_return_t code;
        const char *name;
    } names[] = {
        {RVM_SUCCESS, "RVM_SUCCESS"},
        {RVM_EINIT, "RVM_EINIT"},
        {RVM_EINTERNAL, "RVM_EINTERNAL"},
        {RVM_EIO, "RVM_EIO"},
        {203, "RVM_EPLACEHOLDER"},
        {RVM_ELOG, "RVM_ELOG"},
        {RVM_ELOG_VERSION_SKEW, "RVM_ELOG_VERSION_SKEW"},
        {RVM_EMODE, "RVM_EMODE"},
        {RVM_ENAME_TOO_LONG, "RVM_ENAME_TOO_LONG"},
        {RVM_ENO_MEMORY, "RVM_ENO_MEMORY"},
        {RVM_ENOT_MAPPED, "RVM_ENOT_MAPPED"},
        {RVM_EOFFSET, "RVM_EOFFSET"},
        {RVM_EOPTIONS, "RVM_EOPTIONS"},
        {RVM_EOVERLAP, "RVM_EOVERLAP"},
        {RVM_EPAGER, "RVM_EPAGER"},
        {RVM_ERANGE, "RVM_ERANGE"},
        {RVM_EREGION, "RVM_EREGION"},
        {RVM_EREGION_DEF, "RVM_EREGION_DEF"},
        {RVM_ESRC, "RVM_ESRC"},
        {RVM_ESTATISTICS, "RVM_ESTATISTICS"},
        {RVM_ESTAT_VERSION_SKEW, "RVM_ESTAT_VERSION_SKEW"},
        {RVM_ETERMINATED, "RVM_ETERMINATED"},
        {RVM_ETHREADS, "RVM_ETHREADS"},
        {RVM_ETID, "RVM_ETID"},
        {RVM_ETOO_BIG, "RVM_ETOO_BIG"},
        {RVM_EUNCOMMIT, "RVM_EUNCOMMIT"},
        {RVM_EVERSION_SKEW, "RVM_EVERSION_SKEW"},
        {RVM_EVM_OVERLAP, "RVM_EVM_OVERLAP"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *s = rvm_return(names[i].code);
        cr_assert_not_null(s, "rvm_return(%d) returned NULL", names[i].code);
        cr_expect_str_eq(s, names[i].name, "rvm_return(%d)", names[i].code);
    }
    /* codes outside the table, including the internal sentinels, are "invalid" */
    const rvm_return_t bad[] = {-1, 1, 199, 227, 1000, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *s = rvm_return(bad[i]);
        cr_assert_not_null(s, "rvm_return(%d) returned NULL", bad[i]);
        cr_expect_str_eq(s, "Invalid RVM return code", "rvm_return(%d)", bad[i]);
    }
}

Test(api_records, rvm_mode_and_rvm_type_names)
{
    cr_expect_str_eq(rvm_mode(restore), "restore");
    cr_expect_str_eq(rvm_mode(no_restore), "no_restore");
    cr_expect_str_eq(rvm_mode(flush), "flush");
    cr_expect_str_eq(rvm_mode(no_flush), "no_flush");
    cr_expect_str_eq(rvm_type(rvm_region_id), "rvm_region_t");
    cr_expect_str_eq(rvm_type(rvm_options_id), "rvm_options_t");
    cr_expect_str_eq(rvm_type(rvm_tid_id), "rvm_tid_t");
    cr_expect_str_eq(rvm_type(rvm_statistics_id), "rvm_statistics_id");
    /* out-of-range values must not crash (the original indexes a table); any string will do */
    cr_expect_not_null(rvm_mode((rvm_mode_t)0));
    cr_expect_not_null(rvm_mode((rvm_mode_t)1000));
    cr_expect_not_null(rvm_type((rvm_struct_id_t)0));
    cr_expect_not_null(rvm_type((rvm_struct_id_t)1000));
}

Test(api_records, version_strings_and_constants)
{
    cr_expect_str_eq(RVM_VERSION, "RVM Interface Version 1.3  7 Mar 1994");
    cr_expect_eq(RVM_VERSION_MAX, 128);
    cr_expect_str_eq(RVM_STATISTICS_VERSION, "RVM Statistics Version 1.1 8 Dec 1992");
    cr_expect_eq(TRUNCATE, 50);
    cr_expect_eq(RECOVERY_BUF_LEN, 256 * 1024);
    cr_expect_eq(MIN_RECOVERY_BUF_LEN, 64 * 1024);
    cr_expect_eq(FLUSH_BUF_LEN, 256 * 1024);
    cr_expect_eq(MIN_FLUSH_BUF_LEN, 64 * 1024);
    cr_expect_eq(MAX_READ_LEN, 512 * 1024);
    cr_expect_eq(RVM_COALESCE_RANGES, 1);
    cr_expect_eq(RVM_COALESCE_TRANS, 2);
    cr_expect_eq(RVM_ALL_OPTIMIZATIONS, 3);
    cr_expect_eq(RVM_MAP_PRIVATE, 8);
    cr_expect_eq(flush_times_len, 10);
    cr_expect_eq(truncation_times_len, 5);
    cr_expect_eq(range_lengths_len, 13);
    cr_expect_eq(range_elims_len, 6);
}

Test(api_records, init_options_defaults)
{
    rvm_options_t o;
    memset(&o, 0xa5, sizeof o);
    rvm_init_options(&o);
    cr_expect_eq(o.struct_id, rvm_options_id);
    cr_expect_eq(o.from_heap, rvm_false);
    cr_expect_null(o.log_dev);
    cr_expect_eq(o.truncate, TRUNCATE);
    cr_expect_eq(o.recovery_buf_len, RECOVERY_BUF_LEN);
    cr_expect_eq(o.flush_buf_len, FLUSH_BUF_LEN);
    cr_expect_eq(o.max_read_len, MAX_READ_LEN);
    cr_expect_null(o.pager);
    cr_expect_eq(o.n_uncommit, 0);
    cr_expect_null(o.tid_array);
    cr_expect_eq(o.flags, 0);
    cr_expect_eq(o.create_log_file, rvm_false);
    cr_expect(RVM_OFFSET_EQL_ZERO(o.create_log_size));
    cr_expect_eq(o.create_log_mode, 0600);
}

Test(api_records, malloc_copy_free_records)
{
    rvm_tid_t *t = rvm_malloc_tid();
    cr_assert_not_null(t);
    cr_expect_eq(t->struct_id, rvm_tid_id);
    cr_expect_eq(t->from_heap, rvm_true);
    rvm_tid_t *t2 = rvm_copy_tid(t);
    cr_assert_not_null(t2);
    cr_expect_neq(t2, t);
    cr_expect_eq(t2->struct_id, rvm_tid_id);
    cr_expect_eq(t2->from_heap, rvm_true);
    rvm_free_tid(t);
    rvm_free_tid(t2);

    rvm_options_t *o = rvm_malloc_options();
    cr_assert_not_null(o);
    cr_expect_eq(o->struct_id, rvm_options_id);
    cr_expect_eq(o->from_heap, rvm_true);
    cr_expect_eq(o->truncate, TRUNCATE);
    o->truncate = 17;
    o->flags = RVM_COALESCE_RANGES;
    rvm_options_t *o2 = rvm_copy_options(o);
    cr_assert_not_null(o2);
    cr_expect_eq(o2->truncate, 17);
    cr_expect_eq(o2->flags, RVM_COALESCE_RANGES);
    cr_expect_eq(o2->from_heap, rvm_true);
    rvm_free_options(o);
    rvm_free_options(o2);

    rvm_region_t *r = rvm_malloc_region();
    cr_assert_not_null(r);
    cr_expect_eq(r->struct_id, rvm_region_id);
    cr_expect_eq(r->from_heap, rvm_true);
    cr_expect_null(r->data_dev);
    cr_expect_null(r->vmaddr);
    cr_expect_eq(r->length, 0);
    static char name[] = "some-device";
    r->data_dev = name;
    r->length = 8192;
    rvm_region_t *r2 = rvm_copy_region(r);
    cr_assert_not_null(r2);
    /* the copy shares the char* (the original copies pointers, not strings) */
    cr_expect_eq(r2->data_dev, name);
    cr_expect_eq(r2->length, 8192);
    cr_expect_eq(r2->from_heap, rvm_true);
    rvm_free_region(r);
    rvm_free_region(r2);

    rvm_statistics_t *s = rvm_malloc_statistics();
    cr_assert_not_null(s);
    cr_expect_eq(s->struct_id, rvm_statistics_id);
    cr_expect_eq(s->from_heap, rvm_true);
    rvm_statistics_t *s2 = rvm_copy_statistics(s);
    cr_assert_not_null(s2);
    cr_expect_eq(s2->struct_id, rvm_statistics_id);
    rvm_free_statistics(s);
    rvm_free_statistics(s2);
}

Test(api_records, init_records_on_stack)
{
    rvm_tid_t t;
    memset(&t, 0xff, sizeof t);
    rvm_init_tid(&t);
    cr_expect_eq(t.struct_id, rvm_tid_id);
    cr_expect_eq(t.from_heap, rvm_false);
    rvm_region_t r;
    memset(&r, 0xff, sizeof r);
    rvm_init_region(&r);
    cr_expect_eq(r.struct_id, rvm_region_id);
    cr_expect_eq(r.from_heap, rvm_false);
    cr_expect_null(r.data_dev);
    cr_expect_null(r.vmaddr);
    cr_expect_eq(r.length, 0);
    cr_expect_eq(r.no_copy, rvm_false);
    cr_expect(RVM_OFFSET_EQL_ZERO(r.offset));
    cr_expect(RVM_OFFSET_EQL_ZERO(r.dev_length));
    rvm_statistics_t s;
    memset(&s, 0xff, sizeof s);
    rvm_init_statistics(&s);
    cr_expect_eq(s.struct_id, rvm_statistics_id);
    cr_expect_eq(s.from_heap, rvm_false);
}

Test(api_records, offset_macros)
{
    rvm_offset_t a = RVM_MK_OFFSET(1, 2);
    cr_expect_eq(a.high, 1);
    cr_expect_eq(a.low, 2);
    cr_expect_eq(RVM_OFFSET_TO_LENGTH(a), 2);
    cr_expect_eq(RVM_OFFSET_HIGH_BITS_TO_LENGTH(a), 1);
    rvm_offset_t init = RVM_OFFSET_INITIALIZER(3, 4);
    cr_expect_eq(init.high, 3);
    cr_expect_eq(init.low, 4);
    RVM_ZERO_OFFSET(a);
    cr_expect(RVM_OFFSET_EQL_ZERO(a));
    rvm_offset_t b = RVM_LENGTH_TO_OFFSET(100);
    cr_expect_eq(b.high, 0);
    cr_expect_eq(b.low, 100);

    rvm_offset_t x = RVM_MK_OFFSET(0, 1000), y = RVM_MK_OFFSET(0, 24);
    rvm_offset_t s = RVM_ADD_OFFSETS(x, y);
    cr_expect(RVM_OFFSET_EQL(s, RVM_MK_OFFSET(0, 1024)));
    rvm_offset_t d = RVM_SUB_OFFSETS(x, y);
    cr_expect_eq(d.low, 976);
    cr_expect_eq(d.high, 0);
    rvm_offset_t e = RVM_ADD_LENGTH_TO_OFFSET(x, 24);
    cr_expect_eq(e.low, 1024);
    rvm_offset_t f = RVM_SUB_LENGTH_FROM_OFFSET(x, 1000);
    cr_expect(RVM_OFFSET_EQL_ZERO(f));

    /* the two words form one number: a carry out of .low goes into .high and back */
    rvm_offset_t big = RVM_MK_OFFSET(0, ULONG_MAX), one = RVM_MK_OFFSET(0, 1);
    rvm_offset_t c = RVM_ADD_OFFSETS(big, one);
    cr_expect_eq(c.high, 1, "carry into .high: got high=%lu low=%lu", c.high, c.low);
    cr_expect_eq(c.low, 0);
    rvm_offset_t back = RVM_SUB_OFFSETS(c, one);
    cr_expect_eq(back.high, 0, "borrow from .high: got high=%lu low=%lu", back.high, back.low);
    cr_expect_eq(back.low, ULONG_MAX);

    rvm_offset_t lo = RVM_MK_OFFSET(0, 5), hi = RVM_MK_OFFSET(1, 0);
    cr_expect(RVM_OFFSET_LSS(lo, hi));
    cr_expect(RVM_OFFSET_GTR(hi, lo));
    cr_expect(RVM_OFFSET_LEQ(lo, lo));
    cr_expect(RVM_OFFSET_GEQ(hi, hi));
    cr_expect(!RVM_OFFSET_EQL(lo, hi));
    cr_expect(!RVM_OFFSET_LSS(hi, lo));

    char *p = (char *)0x1000;
    cr_expect_eq(RVM_ADD_LENGTH_TO_ADDR(16, p), (char *)0x1010);
    cr_expect_eq(RVM_SUB_LENGTH_FROM_ADDR(p, 16), (char *)0x0ff0);
}

Test(api_records, page_macros)
{
    rvm_length_t ps = RVM_PAGE_SIZE;
    cr_expect_eq(ps, (rvm_length_t)sysconf(_SC_PAGESIZE));
    cr_expect_eq(rvm_page_mask(), ~(ps - 1), "the mask rounds down, as the macros use it");
    cr_expect_eq(RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(1), ps);
    cr_expect_eq(RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(ps), ps);
    cr_expect_eq(RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(0), 0);
    cr_expect_eq(RVM_ROUND_LENGTH_DOWN_TO_PAGE_SIZE(ps + 1), ps);
    char *a = (char *)(3 * ps + 7);
    cr_expect_eq(RVM_ROUND_ADDR_UP_TO_PAGE_SIZE(a), (char *)(4 * ps));
    cr_expect_eq(RVM_ROUND_ADDR_DOWN_TO_PAGE_SIZE(a), (char *)(3 * ps));
    rvm_offset_t o = RVM_MK_OFFSET(0, 2 * ps + 1);
    rvm_offset_t up = RVM_ROUND_OFFSET_UP_TO_PAGE_SIZE(o);
    rvm_offset_t dn = RVM_ROUND_OFFSET_DOWN_TO_PAGE_SIZE(o);
    cr_expect_eq(up.low, 3 * ps);
    cr_expect_eq(dn.low, 2 * ps);
}
