/* SPDX-License-Identifier: MIT */
/*
 * offset.c -- rvm_offset_t arithmetic and page helpers behind the RVM_* macros.
 *
 * An rvm_offset_t is a 128-bit quantity as (high, low) words; carries and borrows
 * propagate between them as in the original.
 */
#include <unistd.h>

#include <rvm/rvm.h>

/* rvm_mk_offset -- offset from (high, low) */
rvm_offset_t rvm_mk_offset(rvm_length_t x, rvm_length_t y)
{
    rvm_offset_t o = {x, y};
    return o;
}

/* rvm_add_offsets -- x + y */
rvm_offset_t rvm_add_offsets(rvm_offset_t *x, rvm_offset_t *y)
{
    rvm_offset_t r;
    r.low = x->low + y->low;
    r.high = x->high + y->high + (r.low < x->low);
    return r;
}

/* rvm_add_length_to_offset -- offset + length */
rvm_offset_t rvm_add_length_to_offset(rvm_offset_t *offset, rvm_length_t length)
{
    rvm_offset_t r;
    r.low = offset->low + length;
    r.high = offset->high + (r.low < offset->low);
    return r;
}

/* rvm_sub_offsets -- x - y */
rvm_offset_t rvm_sub_offsets(rvm_offset_t *x, rvm_offset_t *y)
{
    rvm_offset_t r;
    r.low = x->low - y->low;
    r.high = x->high - y->high - (x->low < y->low);
    return r;
}

/* rvm_sub_length_from_offset -- offset - length */
rvm_offset_t rvm_sub_length_from_offset(rvm_offset_t *offset, rvm_length_t length)
{
    rvm_offset_t r;
    r.low = offset->low - length;
    r.high = offset->high - (offset->low < length);
    return r;
}

/* rvm_page_size -- the VM page size */
rvm_length_t rvm_page_size(void)
{
    static rvm_length_t page;
    if (page == 0)
        page = (rvm_length_t)sysconf(_SC_PAGESIZE);
    return page;
}

/* rvm_page_mask -- mask that rounds an address down to a page */
rvm_length_t rvm_page_mask(void)
{
    return ~(rvm_page_size() - 1);
}

/* rvm_rnd_offset_up_to_page -- round an offset up to a page multiple */
rvm_offset_t rvm_rnd_offset_up_to_page(rvm_offset_t *x)
{
    rvm_offset_t r = rvm_add_length_to_offset(x, rvm_page_size() - 1);
    r.low &= rvm_page_mask();
    return r;
}

/* rvm_rnd_offset_dn_to_page -- round an offset down to a page multiple */
rvm_offset_t rvm_rnd_offset_dn_to_page(rvm_offset_t *x)
{
    rvm_offset_t r = *x;
    r.low &= rvm_page_mask();
    return r;
}
