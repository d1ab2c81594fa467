# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, cdivision=True
"""The compiled twin of engine/gateway/reports.py: ReportBuilder's numbering, fill totals and
ExecutionReport frames, byte for byte, without a Python object per event or per field.

Owns the same state as ReportBuilder (per-account report numbers, per-order fill totals, each
live routed order's total and fees; the venue names) in C hash maps, and writes each frame's MessagePack straight into one growing buffer per batch, the
way ``msgspec.msgpack.Encoder`` encodes an ``ExecutionReport`` (tests/gateway/
test_reports_fast.py holds the two together). Must never differ from ReportBuilder in a byte
or in a snapshot array: either may write a snapshot the other loads.
"""
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

import msgspec
import numpy as np

from engine.gateway.reports import ACCOUNTS_DTYPE, FILLS_DTYPE, venue_table
from engine.schema import EVENT_DTYPE

cnp.import_array()

cdef extern from *:
    """
    #include <stddef.h>
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #include <math.h>

    typedef __int128 rb_i128;
    typedef unsigned __int128 rb_u128;

    /* EVENT_DTYPE (engine/schema.py), the C Event of engine/_core.pxd */
    typedef struct {
        int64_t seq, ts_ns, order_id, other_id, price, qty, leaves, other_leaves;
        int64_t fee, other_fee, parent_id;
        uint32_t instrument, account, other_account;
        uint16_t reason, venue;
        uint8_t type, side, cmd;
        uint8_t _pad[5];
    } rb_event;
    _Static_assert(sizeof(rb_event) == 112, "rb_event must match EVENT_DTYPE");

    /* ACCOUNTS_DTYPE and FILLS_DTYPE (engine/gateway/reports.py) */
    typedef struct { uint32_t account, _pad; int64_t last_report_seq; } rb_account_rec;
    typedef struct { int64_t order_id, cum_qty, notional_hi; uint64_t notional_lo; } rb_fill_rec;

    #define RB_I64_MIN ((rb_i128)INT64_MIN)
    #define RB_I64_MAX ((rb_i128)INT64_MAX)
    #define RB_U64_MAX ((rb_i128)UINT64_MAX)
    /* cum_notional goes on the wire only inside the signed 64-bit range; outside it the field
       is left out (as if 0) and avg_price still comes from the exact notional. reports.py
       must apply the same bound (see FastReportBuilder's docstring). */
    #define RB_NOTIONAL_WIRE_MIN RB_I64_MIN
    #define RB_NOTIONAL_WIRE_MAX RB_I64_MAX

    enum { RB_OK = 0, RB_FRAME = 1, RB_NOMEM = -1, RB_OVERFLOW = -2, RB_ZERODIV = -3,
           RB_SEQ_OVERFLOW = -4, RB_NOTIONAL_OVERFLOW = -5 };
    enum { RB_STATE_ONLY = 0, RB_COLLECT = 1, RB_EACH = 2 };
    /* no ExecutionReport frame is longer (about 330 bytes, plus a venue name of at most 64
       characters: 259 bytes of MessagePack, plus the fee fields and the strategy) */
    enum { RB_FRAME_MAX = 1024 };

    static inline uint64_t rb_mix(uint64_t z) {
        z += 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    /* -- account -> last report_seq: open addressing, linear probing; key -1 = empty -------- */
    typedef struct { int64_t key; uint64_t last; } rb_acct;
    typedef struct { rb_acct *s; size_t mask, size; } rb_amap;

    static int amap_init(rb_amap *m, size_t cap) {
        size_t n = 16;
        while (n < cap * 2) n <<= 1;
        rb_acct *s = (rb_acct *)malloc(n * sizeof(rb_acct));
        if (!s) return -1;
        for (size_t i = 0; i < n; i++) { s[i].key = -1; s[i].last = 0; }
        free(m->s);
        m->s = s; m->mask = n - 1; m->size = 0;
        return 0;
    }

    static void amap_free(rb_amap *m) { free(m->s); m->s = NULL; m->mask = m->size = 0; }

    static inline rb_acct *amap_find(const rb_amap *m, uint32_t account) {
        size_t i = rb_mix(account) & m->mask;
        while (m->s[i].key != -1) {
            if (m->s[i].key == (int64_t)account) return &m->s[i];
            i = (i + 1) & m->mask;
        }
        return NULL;
    }

    static int amap_grow(rb_amap *m) {
        rb_amap old = *m, nm = {NULL, 0, 0};
        if (amap_init(&nm, old.mask + 1) != 0) return -1;
        for (size_t i = 0; i <= old.mask; i++) {
            if (old.s[i].key == -1) continue;
            size_t j = rb_mix((uint64_t)old.s[i].key) & nm.mask;
            while (nm.s[j].key != -1) j = (j + 1) & nm.mask;
            nm.s[j] = old.s[i];
        }
        nm.size = old.size;
        free(old.s);
        *m = nm;
        return 0;
    }

    /* the account's slot, added with last = 0 if absent; NULL: out of memory */
    static inline rb_acct *amap_slot(rb_amap *m, uint32_t account) {
        size_t i = rb_mix(account) & m->mask;
        while (m->s[i].key != -1) {
            if (m->s[i].key == (int64_t)account) return &m->s[i];
            i = (i + 1) & m->mask;
        }
        if ((m->size + 1) * 2 > m->mask + 1) {
            if (amap_grow(m) != 0) return NULL;
            i = rb_mix(account) & m->mask;
            while (m->s[i].key != -1) i = (i + 1) & m->mask;
        }
        m->s[i].key = account; m->s[i].last = 0; m->size++;
        return &m->s[i];
    }

    /* -- order id -> fill totals (cum_qty and cum_notional, exact) -------------------------- */
    typedef struct { rb_i128 cum, notional; int64_t key; int64_t used; } rb_fill;
    typedef struct { rb_fill *s; size_t mask, size; } rb_fmap;

    static int fmap_init(rb_fmap *m, size_t cap) {
        size_t n = 16;
        while (n < cap * 2) n <<= 1;
        rb_fill *s = (rb_fill *)calloc(n, sizeof(rb_fill));
        if (!s) return -1;
        free(m->s);
        m->s = s; m->mask = n - 1; m->size = 0;
        return 0;
    }

    static void fmap_free(rb_fmap *m) { free(m->s); m->s = NULL; m->mask = m->size = 0; }

    static inline rb_fill *fmap_find(const rb_fmap *m, int64_t key) {
        size_t i = rb_mix((uint64_t)key) & m->mask;
        while (m->s[i].used) {
            if (m->s[i].key == key) return &m->s[i];
            i = (i + 1) & m->mask;
        }
        return NULL;
    }

    static int fmap_grow(rb_fmap *m) {
        rb_fmap old = *m, nm = {NULL, 0, 0};
        if (fmap_init(&nm, old.mask + 1) != 0) return -1;
        for (size_t i = 0; i <= old.mask; i++) {
            if (!old.s[i].used) continue;
            size_t j = rb_mix((uint64_t)old.s[i].key) & nm.mask;
            while (nm.s[j].used) j = (j + 1) & nm.mask;
            nm.s[j] = old.s[i];
        }
        nm.size = old.size;
        free(old.s);
        *m = nm;
        return 0;
    }

    /* the order's totals, added as 0, 0 if absent; NULL: out of memory */
    static inline rb_fill *fmap_slot(rb_fmap *m, int64_t key) {
        size_t i = rb_mix((uint64_t)key) & m->mask;
        while (m->s[i].used) {
            if (m->s[i].key == key) return &m->s[i];
            i = (i + 1) & m->mask;
        }
        if ((m->size + 1) * 2 > m->mask + 1) {
            if (fmap_grow(m) != 0) return NULL;
            i = rb_mix((uint64_t)key) & m->mask;
            while (m->s[i].used) i = (i + 1) & m->mask;
        }
        m->s[i].key = key; m->s[i].used = 1; m->s[i].cum = 0; m->s[i].notional = 0;
        m->size++;
        return &m->s[i];
    }

    /* remove a slot fmap_find/fmap_slot returned: backward-shift deletion */
    static void fmap_remove(rb_fmap *m, rb_fill *slot) {
        size_t i = (size_t)(slot - m->s), j = i, k;
        for (;;) {
            j = (j + 1) & m->mask;
            if (!m->s[j].used) break;
            k = rb_mix((uint64_t)m->s[j].key) & m->mask;
            if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j)) continue;
            m->s[i] = m->s[j];
            i = j;
        }
        m->s[i].used = 0;
        m->size--;
    }

    /* -- Python's int / int: the correctly rounded quotient, for any two int128 ----------- */
    static inline int rb_bitlen(rb_u128 x) {
        uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;
        if (hi) return 128 - __builtin_clzll(hi);
        return lo ? 64 - __builtin_clzll(lo) : 0;
    }

    static double rb_true_div(rb_i128 a, rb_i128 b) {   /* b != 0 */
        int neg = (a < 0) != (b < 0);
        rb_u128 ua = a < 0 ? -(rb_u128)a : (rb_u128)a;
        rb_u128 ub = b < 0 ? -(rb_u128)b : (rb_u128)b;
        const rb_u128 exact = (rb_u128)1 << 53;
        double r;
        if (ua <= exact && ub <= exact) {
            r = (double)(uint64_t)ua / (double)(uint64_t)ub;   /* both exact: IEEE rounds once */
        } else if (ua == 0) {
            r = 0.0;                                           /* -0.0 below if b < 0, as Python */
        } else {
            /* q = floor(a * 2**s / b) with 55 or 56 bits, the remainder folded into its lowest
               bit (a sticky bit two places below the rounding position), then one rounding
               to 53 bits and an exact scaling by 2**-s */
            int la = rb_bitlen(ua), lb = rb_bitlen(ub);
            int s = 55 + lb - la;
            rb_u128 q, rem;
            if (s <= 0) {
                rb_u128 d = ub << (-s);
                q = ua / d; rem = ua % d;
            } else if (la + s <= 128) {
                rb_u128 n = ua << s;
                q = n / ub; rem = n % ub;
            } else {                        /* |b| > 2**73: long division, bit by bit */
                q = ua / ub; rem = ua % ub;
                for (int k = 0; k < s; k++) {
                    rem <<= 1; q <<= 1;     /* rem < b <= 2**127: no overflow */
                    if (rem >= ub) { rem -= ub; q |= 1; }
                }
            }
            r = ldexp((double)(uint64_t)(q | (rem != 0)), -s);
        }
        return neg ? -r : r;
    }

    /* -- MessagePack, as msgspec writes it --------------------------------------------------- */
    #define RB_PUT(p, lit) \\
        do { memcpy((p), (lit), sizeof(lit) - 1); (p) += sizeof(lit) - 1; } while (0)

    static inline uint8_t *rb_be16(uint8_t *p, uint16_t x) {
        p[0] = x >> 8; p[1] = (uint8_t)x; return p + 2;
    }
    static inline uint8_t *rb_be32(uint8_t *p, uint32_t x) {
        x = __builtin_bswap32(x); memcpy(p, &x, 4); return p + 4;
    }
    static inline uint8_t *rb_be64(uint8_t *p, uint64_t x) {
        x = __builtin_bswap64(x); memcpy(p, &x, 8); return p + 8;
    }

    static inline uint8_t *mp_uint(uint8_t *p, uint64_t x) {
        if (x < 128) { *p++ = (uint8_t)x; return p; }
        if (x <= 0xFF) { *p++ = 0xcc; *p++ = (uint8_t)x; return p; }
        if (x <= 0xFFFF) { *p++ = 0xcd; return rb_be16(p, (uint16_t)x); }
        if (x <= 0xFFFFFFFFull) { *p++ = 0xce; return rb_be32(p, (uint32_t)x); }
        *p++ = 0xcf; return rb_be64(p, x);
    }

    static inline uint8_t *mp_int(uint8_t *p, int64_t x) {
        if (x >= 0) return mp_uint(p, (uint64_t)x);
        if (x >= -32) { *p++ = (uint8_t)x; return p; }
        if (x >= -128) { *p++ = 0xd0; *p++ = (uint8_t)x; return p; }
        if (x >= -32768) { *p++ = 0xd1; return rb_be16(p, (uint16_t)x); }
        if (x >= INT32_MIN) { *p++ = 0xd2; return rb_be32(p, (uint32_t)x); }
        *p++ = 0xd3; return rb_be64(p, (uint64_t)x);
    }

    /* msgspec takes ints from -2**63 to 2**64 - 1; NULL outside (OverflowError) */
    static inline uint8_t *mp_i128(uint8_t *p, rb_i128 x) {
        if (x < RB_I64_MIN || x > RB_U64_MAX) return NULL;
        return x < 0 ? mp_int(p, (int64_t)x) : mp_uint(p, (uint64_t)x);
    }

    static inline uint8_t *mp_f64(uint8_t *p, double d) {
        uint64_t u; memcpy(&u, &d, 8);
        *p++ = 0xcb; return rb_be64(p, u);
    }

    /* the field keys, in ExecutionReport's declaration order */
    #define K_REPORT_SEQ "\\xaa" "report_seq"
    #define K_SEQ "\\xa3" "seq"
    #define K_TS_NS "\\xa5" "ts_ns"
    #define K_EXEC_TYPE "\\xa9" "exec_type"
    #define K_REQUEST "\\xa7" "request"
    #define K_CL_ORD_ID "\\xa9" "cl_ord_id"
    #define K_INSTRUMENT "\\xaa" "instrument"
    #define K_SIDE "\\xa4" "side"
    #define K_STATUS "\\xa6" "status"
    #define K_PRICE "\\xa5" "price"
    #define K_QTY "\\xa3" "qty"
    #define K_LEAVES_QTY "\\xaa" "leaves_qty"
    #define K_CUM_QTY "\\xa7" "cum_qty"
    #define K_CUM_NOTIONAL "\\xac" "cum_notional"
    #define K_AVG_PRICE "\\xa9" "avg_price"
    #define K_LAST_PRICE "\\xaa" "last_price"
    #define K_LAST_QTY "\\xa8" "last_qty"
    #define K_LIQUIDITY "\\xa9" "liquidity"
    #define K_REASON "\\xa6" "reason"
    #define K_VENUE "\\xa5" "venue"
    #define K_FEE "\\xa3" "fee"
    #define K_CUM_FEE "\\xa7" "cum_fee"
    #define K_STRATEGY "\\xa8" "strategy"

    /* a string value: its MessagePack bytes and their length */
    typedef struct { const char *b; size_t n; } rb_str;
    #define S(lit) {lit, sizeof(lit) - 1}
    static const rb_str S_EMPTY = S("\\xa0");
    /* by CommandType: the order commands, MASS_CANCEL (4) and KILL_SWITCH (9), whose
       cancellations are reports, and ROUTE (11: a NewOrder with venue SMART, "new"); the other
       admin commands make none */
    static const rb_str S_REQUEST[12] = {S("\\xa0"), S("\\xa3" "new"), S("\\xa6" "cancel"),
                                         S("\\xa7" "replace"), S("\\xab" "mass_cancel"),
                                         S("\\xa0"), S("\\xa0"), S("\\xa0"), S("\\xa0"),
                                         S("\\xab" "kill_switch"), S("\\xa0"),
                                         S("\\xa3" "new")};
    static const rb_str S_SIDE[3] = {S("\\xa0"), S("\\xa3" "buy"), S("\\xa4" "sell")};
    static const rb_str X_NEW = S("\\xa3" "new"), X_TRADE = S("\\xa5" "trade"),
        X_CANCELLED = S("\\xa9" "cancelled"), X_REPLACED = S("\\xa8" "replaced"),
        X_REJECTED = S("\\xa8" "rejected");
    static const rb_str ST_NEW = S("\\xa3" "new"), ST_PARTIAL = S("\\xb0" "partially_filled"),
        ST_FILLED = S("\\xa6" "filled"), ST_CANCELLED = S("\\xa9" "cancelled"),
        ST_REJECTED = S("\\xa8" "rejected");
    static const rb_str L_TAKER = S("\\xa5" "taker"), L_MAKER = S("\\xa5" "maker");
    static const rb_str X_DONE = S("\\xa4" "done");
    static const rb_str G_SWEEP = S("\\xa5" "sweep"), G_SWEEP_POST = S("\\xaa" "sweep_post");
    /* by OrderStatus (PARENT_DONE's reason) */
    static const rb_str S_STATUS[6] = {S("\\xa0"), S("\\xa3" "new"), S("\\xb0" "partially_filled"),
                                       S("\\xa6" "filled"), S("\\xa9" "cancelled"),
                                       S("\\xa8" "rejected")};
    #undef S
    static inline uint8_t *mp_str(uint8_t *p, rb_str s) { memcpy(p, s.b, s.n); return p + s.n; }

    /* the fields every report has (none of them has a default): the frame's start, with the
       length and the map's size patched by rb_frame_end */
    static inline uint8_t *rb_frame_head(uint8_t *p, uint64_t report_seq, const rb_event *e,
                                         rb_str exec_type, uint64_t cl_ord_id) {
        p += 4;                                  /* the length, patched */
        *p++ = 0xde; p += 2;                     /* map16: msgspec's, for omit_defaults Structs */
        RB_PUT(p, "\\xa4" "type" "\\xaf" "ExecutionReport");
        RB_PUT(p, K_REPORT_SEQ); p = mp_uint(p, report_seq);
        RB_PUT(p, K_SEQ); p = mp_int(p, e->seq);
        RB_PUT(p, K_TS_NS); p = mp_int(p, e->ts_ns);
        RB_PUT(p, K_EXEC_TYPE); p = mp_str(p, exec_type);
        RB_PUT(p, K_REQUEST);
        p = mp_str(p, e->cmd >= 1 && e->cmd <= 11 ? S_REQUEST[e->cmd] : S_EMPTY);
        RB_PUT(p, K_CL_ORD_ID); p = mp_uint(p, cl_ord_id);
        RB_PUT(p, K_INSTRUMENT); p = mp_uint(p, e->instrument);
        return p;
    }

    static inline void rb_frame_end(uint8_t *start, uint8_t *end, unsigned fields) {
        rb_be32(start, (uint32_t)(end - start - 4));
        rb_be16(start + 5, (uint16_t)fields);
    }

    /* the buffers a batch's frames go to */
    typedef struct { uint32_t account, _pad; uint64_t report_seq; size_t off, len; } rb_frame;
    typedef struct {
        rb_amap acc;
        rb_fmap fills;
        uint8_t *buf; size_t buf_n, buf_cap;
        rb_frame *fr; size_t fr_n, fr_cap;
        int64_t defer_key; int defer;   /* RB_EACH: a filled order's totals, removed on resume */
        int64_t taker;                  /* the taker of the batch's last TRADE */
        rb_str *vn; size_t vn_n;        /* venue id -> its name's MessagePack (b NULL: none) */
    } rb_t;

    /* a venue's name: the configured one, else its number (as reports.py: str(venue)) */
    static inline uint8_t *rb_venue(uint8_t *p, const rb_t *rb, uint16_t v) {
        if (v < rb->vn_n && rb->vn[v].b) return mp_str(p, rb->vn[v]);
        char d[5]; int n = 0;
        do { d[n++] = (char)('0' + v % 10); v /= 10; } while (v);
        *p++ = (uint8_t)(0xa0 | n);
        while (n) *p++ = (uint8_t)d[--n];
        return p;
    }

    static int rb_reserve(rb_t *rb) {   /* room for the two frames of one event */
        if (rb->buf_n + 2 * RB_FRAME_MAX > rb->buf_cap) {
            size_t cap = rb->buf_cap ? rb->buf_cap : 1 << 16;
            while (rb->buf_n + 2 * RB_FRAME_MAX > cap) cap *= 2;
            uint8_t *b = (uint8_t *)realloc(rb->buf, cap);
            if (!b) return -1;
            rb->buf = b; rb->buf_cap = cap;
        }
        if (rb->fr_n + 2 > rb->fr_cap) {
            size_t cap = rb->fr_cap ? rb->fr_cap * 2 : 1024;
            rb_frame *f = (rb_frame *)realloc(rb->fr, cap * sizeof(rb_frame));
            if (!f) return -1;
            rb->fr = f; rb->fr_cap = cap;
        }
        return 0;
    }

    static inline void rb_add_frame(rb_t *rb, uint32_t account, uint64_t n, uint8_t *start,
                                    uint8_t *end) {
        rb_frame *f = &rb->fr[rb->fr_n++];
        f->account = account; f->_pad = 0; f->report_seq = n;
        f->off = (size_t)(start - rb->buf); f->len = (size_t)(end - start);
        rb->buf_n = f->off + f->len;
    }

    static inline int rb_next_seq(rb_t *rb, uint32_t account, uint64_t *n) {
        rb_acct *a = amap_slot(&rb->acc, account);
        if (!a) return RB_NOMEM;
        if (a->last == UINT64_MAX) return RB_SEQ_OVERFLOW;
        *n = ++a->last;
        return RB_OK;
    }

    /* one side of a TRADE: the taker (maker == 0) or the maker */
    static int rb_trade_leg(rb_t *rb, const rb_event *e, int maker, int mode) {
        int frames = mode != RB_STATE_ONLY;
        int64_t mine = maker ? e->other_id : e->order_id;
        int64_t my_leaves = maker ? e->other_leaves : e->leaves;
        uint32_t my_acct = maker ? e->other_account : e->account;
        int my_side = maker ? 3 - (int)e->side : (int)e->side;
        int64_t my_fee = maker ? e->other_fee : e->fee;
        rb_fill *f;
        rb_i128 notional;
        uint64_t n;
        int rc;
        /* a child's fill: its parent's PARENT_FILL reports it (the event names the taker's
           parent; a maker child has a negative id) */
        if (maker ? e->other_id < 0 : e->parent_id != 0) return RB_OK;
        f = fmap_slot(&rb->fills, mine);
        if (!f) return RB_NOMEM;
        if (__builtin_add_overflow(f->notional, (rb_i128)e->price * e->qty, &notional))
            return RB_NOTIONAL_OVERFLOW;       /* past what any journal holds: see the class */
        f->cum += e->qty;
        f->notional = notional;
        if ((rc = rb_next_seq(rb, my_acct, &n)) != RB_OK) return rc;
        if (frames) {
            uint8_t *start = rb->buf + rb->buf_n, *p;
            unsigned fields = 12;      /* the head's 8, status, cum_qty, avg_price, liquidity */
            if (f->cum == 0) return RB_ZERODIV;              /* Python: f[1] / f[0] */
            p = rb_frame_head(start, n, e, X_TRADE, (uint64_t)mine & 0xFFFFFFFFu);
            if (my_side == 1 || my_side == 2) {
                RB_PUT(p, K_SIDE); p = mp_str(p, S_SIDE[my_side]); fields++;
            }
            RB_PUT(p, K_STATUS); p = mp_str(p, my_leaves == 0 ? ST_FILLED : ST_PARTIAL);
            rb_i128 qty = f->cum + my_leaves;
            if (qty != 0) {
                RB_PUT(p, K_QTY); fields++;
                if (!(p = mp_i128(p, qty))) return RB_OVERFLOW;
            }
            if (my_leaves != 0) { RB_PUT(p, K_LEAVES_QTY); p = mp_int(p, my_leaves); fields++; }
            RB_PUT(p, K_CUM_QTY);
            if (!(p = mp_i128(p, f->cum))) return RB_OVERFLOW;
            if (notional != 0 && notional >= RB_NOTIONAL_WIRE_MIN
                    && notional <= RB_NOTIONAL_WIRE_MAX) {
                RB_PUT(p, K_CUM_NOTIONAL); p = mp_int(p, (int64_t)notional); fields++;
            }
            RB_PUT(p, K_AVG_PRICE); p = mp_f64(p, rb_true_div(notional, f->cum));
            if (e->price != 0) { RB_PUT(p, K_LAST_PRICE); p = mp_int(p, e->price); fields++; }
            if (e->qty != 0) { RB_PUT(p, K_LAST_QTY); p = mp_int(p, e->qty); fields++; }
            RB_PUT(p, K_LIQUIDITY); p = mp_str(p, maker ? L_MAKER : L_TAKER);
            if (e->venue != 0) { RB_PUT(p, K_VENUE); p = rb_venue(p, rb, e->venue); fields++; }
            if (my_fee != 0) { RB_PUT(p, K_FEE); p = mp_int(p, my_fee); fields++; }
            rb_frame_end(start, p, fields);
            rb_add_frame(rb, my_acct, n, start, p);
        }
        if (my_leaves == 0) {
            /* ReportBuilder calls ``recovered`` before it drops the totals */
            if (mode == RB_EACH) { rb->defer = 1; rb->defer_key = mine; }
            else fmap_remove(&rb->fills, f);
        }
        return frames ? RB_FRAME : RB_OK;
    }

    /* ACCEPTED, CANCELLED, REPLACED, and REJECTED of NEW/CANCEL/REPLACE/ROUTE, of an order that
       is not a child. A live parent (an entry under -order_id: its total and fees) reports its
       cancels without closing its totals (PARENT_DONE does), and keeps its total on a replace;
       a ROUTE's ACCEPTED of the parent makes that entry. */
    static int rb_order_event(rb_t *rb, const rb_event *e, int frames) {
        uint64_t n;
        rb_i128 cum = 0, notional = 0, total = 0, fees = 0;
        int rc, parent = 0;
        rb_fill *f, *info = NULL;
        if ((rc = rb_next_seq(rb, e->account, &n)) != RB_OK) return rc;
        if (e->order_id > 0 && e->type != 2) info = fmap_find(&rb->fills, -e->order_id);
        if (info) {
            parent = 1;
            if (e->type == 5 && e->qty > 0) info->cum = e->qty;      /* REPLACED: the new total */
            total = info->cum; fees = info->notional;
            f = fmap_find(&rb->fills, e->order_id);
            if (f) { cum = f->cum; notional = f->notional; }
        } else {
            f = fmap_find(&rb->fills, e->order_id);
            if (f) {
                cum = f->cum; notional = f->notional;
                if (e->type == 4) fmap_remove(&rb->fills, f);   /* CANCELLED: the order is done */
            }
            if (e->type == 1 && e->cmd == 11 && e->order_id > 0 && e->qty > 0) {
                info = fmap_slot(&rb->fills, -e->order_id);     /* a new parent */
                if (!info) return RB_NOMEM;
                info->cum = e->qty; info->notional = 0;
            }
        }
        if (!frames) return RB_OK;
        uint8_t *start = rb->buf + rb->buf_n, *p;
        unsigned fields = 9;                                  /* 8 head fields, avg_price */
        rb_str exec_type, status;
        rb_i128 qty = e->qty;
        int64_t leaves = e->leaves;
        uint16_t reason = e->reason;
        switch (e->type) {
        case 1: exec_type = X_NEW; status = ST_NEW; reason = 0; break;
        case 4:
            exec_type = X_CANCELLED;
            if (parent) {
                qty = total;
                status = leaves == 0 ? ST_CANCELLED : cum != 0 ? ST_PARTIAL : ST_NEW;
            } else {
                status = ST_CANCELLED; qty = cum + e->qty; leaves = 0;
            }
            break;
        case 5: exec_type = X_REPLACED; status = cum != 0 ? ST_PARTIAL : ST_NEW; reason = 0; break;
        default:
            exec_type = X_REJECTED;
            status = e->cmd == 1 || e->cmd == 11 ? ST_REJECTED : S_EMPTY;
            break;
        }
        p = rb_frame_head(start, n, e, exec_type, (uint64_t)e->order_id & 0xFFFFFFFFu);
        if (e->side == 1 || e->side == 2) {
            RB_PUT(p, K_SIDE); p = mp_str(p, S_SIDE[e->side]); fields++;
        }
        if (status.n > 1) { RB_PUT(p, K_STATUS); p = mp_str(p, status); fields++; }
        if (e->price != 0) { RB_PUT(p, K_PRICE); p = mp_int(p, e->price); fields++; }
        if (qty != 0) {
            RB_PUT(p, K_QTY); fields++;
            if (!(p = mp_i128(p, qty))) return RB_OVERFLOW;
        }
        if (leaves != 0) { RB_PUT(p, K_LEAVES_QTY); p = mp_int(p, leaves); fields++; }
        if (cum != 0) {
            RB_PUT(p, K_CUM_QTY); fields++;
            if (!(p = mp_i128(p, cum))) return RB_OVERFLOW;
        }
        if (notional != 0 && notional >= RB_NOTIONAL_WIRE_MIN
                && notional <= RB_NOTIONAL_WIRE_MAX) {
            RB_PUT(p, K_CUM_NOTIONAL); p = mp_int(p, (int64_t)notional); fields++;
        }
        RB_PUT(p, K_AVG_PRICE); p = mp_f64(p, cum != 0 ? rb_true_div(notional, cum) : 0.0);
        if (reason != 0) { RB_PUT(p, K_REASON); p = mp_uint(p, reason); fields++; }
        if (e->venue != 0) { RB_PUT(p, K_VENUE); p = rb_venue(p, rb, e->venue); fields++; }
        if (parent && fees != 0) {
            RB_PUT(p, K_CUM_FEE); fields++;
            if (!(p = mp_i128(p, fees))) return RB_OVERFLOW;
        }
        if (e->type == 1 && e->cmd == 11 && e->order_id > 0) {
            RB_PUT(p, K_STRATEGY); p = mp_str(p, e->venue ? G_SWEEP_POST : G_SWEEP); fields++;
        }
        rb_frame_end(start, p, fields);
        rb_add_frame(rb, e->account, n, start, p);
        return RB_FRAME;
    }

    /* PARENT_FILL: a child's fill rolled up into its parent, the parent's trade report */
    static int rb_parent_fill(rb_t *rb, const rb_event *e, int frames) {
        uint64_t n;
        rb_i128 notional, total;
        int rc;
        rb_fill *f = fmap_find(&rb->fills, e->order_id), *info;
        if (__builtin_add_overflow(f ? f->notional : 0, (rb_i128)e->price * e->qty, &notional))
            return RB_NOTIONAL_OVERFLOW;
        if (!f && !(f = fmap_slot(&rb->fills, e->order_id))) return RB_NOMEM;
        f->cum += e->qty;
        f->notional = notional;
        info = e->order_id > 0 ? fmap_find(&rb->fills, -e->order_id) : NULL;
        if (info) info->notional = e->other_fee;
        total = info ? info->cum : f->cum + e->leaves;
        rb_i128 cum = f->cum;
        if ((rc = rb_next_seq(rb, e->account, &n)) != RB_OK) return rc;
        if (!frames) return RB_OK;
        uint8_t *start = rb->buf + rb->buf_n, *p;
        unsigned fields = 11;      /* the head's 8, status, avg_price, liquidity */
        p = rb_frame_head(start, n, e, X_TRADE, (uint64_t)e->order_id & 0xFFFFFFFFu);
        if (e->side == 1 || e->side == 2) {
            RB_PUT(p, K_SIDE); p = mp_str(p, S_SIDE[e->side]); fields++;
        }
        RB_PUT(p, K_STATUS);
        p = mp_str(p, e->leaves != 0 ? ST_PARTIAL : total == cum ? ST_FILLED : ST_CANCELLED);
        if (total != 0) {
            RB_PUT(p, K_QTY); fields++;
            if (!(p = mp_i128(p, total))) return RB_OVERFLOW;
        }
        if (e->leaves != 0) { RB_PUT(p, K_LEAVES_QTY); p = mp_int(p, e->leaves); fields++; }
        if (cum != 0) {
            RB_PUT(p, K_CUM_QTY); fields++;
            if (!(p = mp_i128(p, cum))) return RB_OVERFLOW;
        }
        if (notional != 0 && notional >= RB_NOTIONAL_WIRE_MIN
                && notional <= RB_NOTIONAL_WIRE_MAX) {
            RB_PUT(p, K_CUM_NOTIONAL); p = mp_int(p, (int64_t)notional); fields++;
        }
        RB_PUT(p, K_AVG_PRICE); p = mp_f64(p, cum != 0 ? rb_true_div(notional, cum) : 0.0);
        if (e->price != 0) { RB_PUT(p, K_LAST_PRICE); p = mp_int(p, e->price); fields++; }
        if (e->qty != 0) { RB_PUT(p, K_LAST_QTY); p = mp_int(p, e->qty); fields++; }
        RB_PUT(p, K_LIQUIDITY); p = mp_str(p, e->other_id == rb->taker ? L_TAKER : L_MAKER);
        if (e->venue != 0) { RB_PUT(p, K_VENUE); p = rb_venue(p, rb, e->venue); fields++; }
        if (e->fee != 0) { RB_PUT(p, K_FEE); p = mp_int(p, e->fee); fields++; }
        if (e->other_fee != 0) { RB_PUT(p, K_CUM_FEE); p = mp_int(p, e->other_fee); fields++; }
        rb_frame_end(start, p, fields);
        rb_add_frame(rb, e->account, n, start, p);
        return RB_FRAME;
    }

    /* PARENT_DONE: a routed order ended; its totals go */
    static int rb_parent_done(rb_t *rb, const rb_event *e, int frames) {
        uint64_t n;
        rb_i128 cum = 0, notional = 0;
        int rc;
        rb_fill *f = fmap_find(&rb->fills, e->order_id);
        if (f) { cum = f->cum; notional = f->notional; fmap_remove(&rb->fills, f); }
        if (e->order_id > 0 && (f = fmap_find(&rb->fills, -e->order_id)))
            fmap_remove(&rb->fills, f);
        if ((rc = rb_next_seq(rb, e->account, &n)) != RB_OK) return rc;
        if (!frames) return RB_OK;
        uint8_t *start = rb->buf + rb->buf_n, *p;
        unsigned fields = 10;      /* the head's 8, avg_price, strategy */
        p = rb_frame_head(start, n, e, X_DONE, (uint64_t)e->order_id & 0xFFFFFFFFu);
        if (e->side == 1 || e->side == 2) {
            RB_PUT(p, K_SIDE); p = mp_str(p, S_SIDE[e->side]); fields++;
        }
        if (e->reason >= 1 && e->reason <= 5) {
            RB_PUT(p, K_STATUS); p = mp_str(p, S_STATUS[e->reason]); fields++;
        }
        if (e->price != 0) { RB_PUT(p, K_PRICE); p = mp_int(p, e->price); fields++; }
        if (e->qty != 0) { RB_PUT(p, K_QTY); p = mp_int(p, e->qty); fields++; }
        if (e->leaves != 0) { RB_PUT(p, K_LEAVES_QTY); p = mp_int(p, e->leaves); fields++; }
        if (cum != 0) {
            RB_PUT(p, K_CUM_QTY); fields++;
            if (!(p = mp_i128(p, cum))) return RB_OVERFLOW;
        }
        if (notional != 0 && notional >= RB_NOTIONAL_WIRE_MIN
                && notional <= RB_NOTIONAL_WIRE_MAX) {
            RB_PUT(p, K_CUM_NOTIONAL); p = mp_int(p, (int64_t)notional); fields++;
        }
        RB_PUT(p, K_AVG_PRICE); p = mp_f64(p, cum != 0 ? rb_true_div(notional, cum) : 0.0);
        if (e->venue != 0) { RB_PUT(p, K_VENUE); p = rb_venue(p, rb, e->venue); fields++; }
        if (e->other_fee != 0) { RB_PUT(p, K_CUM_FEE); p = mp_int(p, e->other_fee); fields++; }
        RB_PUT(p, K_STRATEGY); p = mp_str(p, e->venue ? G_SWEEP_POST : G_SWEEP);
        rb_frame_end(start, p, fields);
        rb_add_frame(rb, e->account, n, start, p);
        return RB_FRAME;
    }

    /* Run events[*pos .. n), starting with leg *leg of the first (a TRADE has two). RB_EACH
       returns RB_FRAME after each frame, the cursor on what comes next; the other modes run to
       the end (RB_OK) or the first error (< 0, the cursor on the event that failed). */
    static int rb_run(rb_t *rb, const rb_event *ev, size_t n, size_t *pos, int *leg, int mode) {
        int frames = mode != RB_STATE_ONLY, rc;
        if (rb->defer) {
            rb_fill *f = fmap_find(&rb->fills, rb->defer_key);
            if (f) fmap_remove(&rb->fills, f);
            rb->defer = 0;
        }
        for (size_t i = *pos; i < n; i++) {
            const rb_event *e = &ev[i];
            if (frames && rb_reserve(rb) != 0) { *pos = i; return RB_NOMEM; }
            if (e->type == 3) {                                       /* TRADE */
                rb->taker = e->order_id;
                for (int k = *leg; k < 2; k++) {
                    rc = rb_trade_leg(rb, e, k, mode);
                    if (rc < 0) { *pos = i; *leg = k; return rc; }
                    if (rc == RB_FRAME && mode == RB_EACH) {
                        if (k == 0) { *pos = i; *leg = 1; } else { *pos = i + 1; *leg = 0; }
                        return RB_FRAME;
                    }
                }
                *leg = 0;
                continue;
            }
            *leg = 0;
            if (e->type == 8 || e->type == 9) {                       /* PARENT_FILL, _DONE */
                rc = e->type == 8 ? rb_parent_fill(rb, e, frames) : rb_parent_done(rb, e, frames);
                if (rc < 0) { *pos = i; return rc; }
                if (rc == RB_FRAME && mode == RB_EACH) { *pos = i + 1; return RB_FRAME; }
                continue;
            }
            if (e->parent_id != 0) continue;      /* a child's own events: its parent reports */
            if (e->type == 2) {                                       /* REJECTED */
                /* admin, mass cancel: the requester's */
                if ((e->cmd < 1 || e->cmd > 3) && e->cmd != 11) continue;
                /* a command naming a child: no client order id names it */
                if (e->order_id < 0) continue;
            } else if (e->type != 1 && e->type != 4 && e->type != 5) {
                continue;                                  /* instrument state: market data */
            }
            rc = rb_order_event(rb, e, frames);
            if (rc < 0) { *pos = i; return rc; }
            if (rc == RB_FRAME && mode == RB_EACH) { *pos = i + 1; return RB_FRAME; }
        }
        *pos = n; *leg = 0;
        return RB_OK;
    }

    /* after a batch: give back buffers a burst of large batches grew, once a batch has used
       less than a quarter of them (steady large batches keep theirs: regrowing costs page
       faults on every batch) */
    static void rb_trim(rb_t *rb) {
        if (rb->buf_cap > ((size_t)1 << 22) && rb->buf_n * 4 < rb->buf_cap) {
            free(rb->buf); rb->buf = NULL; rb->buf_cap = 0;
        }
        if (rb->fr_cap > ((size_t)1 << 16) && rb->fr_n * 4 < rb->fr_cap) {
            free(rb->fr); rb->fr = NULL; rb->fr_cap = 0;
        }
        rb->buf_n = rb->fr_n = 0;
        rb->defer = 0;                  /* the callback raised: ReportBuilder never got to it */
    }

    static void rb_init(rb_t *rb) { memset(rb, 0, sizeof(*rb)); }
    static void rb_free(rb_t *rb) {
        amap_free(&rb->acc); fmap_free(&rb->fills);
        free(rb->vn); rb->vn = NULL; rb->vn_n = 0;
        free(rb->buf); free(rb->fr);
        rb->buf = NULL; rb->fr = NULL; rb->buf_cap = rb->fr_cap = rb->buf_n = rb->fr_n = 0;
    }
    static size_t rb_event_size(void) { return sizeof(rb_event); }
    static size_t rb_event_offset(int field) {
        switch (field) {
        case 0: return offsetof(rb_event, seq); case 1: return offsetof(rb_event, ts_ns);
        case 2: return offsetof(rb_event, order_id); case 3: return offsetof(rb_event, other_id);
        case 4: return offsetof(rb_event, price); case 5: return offsetof(rb_event, qty);
        case 6: return offsetof(rb_event, leaves); case 7: return offsetof(rb_event, other_leaves);
        case 8: return offsetof(rb_event, instrument); case 9: return offsetof(rb_event, account);
        case 10: return offsetof(rb_event, other_account);
        case 11: return offsetof(rb_event, reason);
        case 12: return offsetof(rb_event, type); case 13: return offsetof(rb_event, side);
        case 14: return offsetof(rb_event, cmd); case 15: return offsetof(rb_event, fee);
        case 16: return offsetof(rb_event, other_fee);
        case 17: return offsetof(rb_event, parent_id);
        default: return offsetof(rb_event, venue);
        }
    }

    /* int128 access, for the snapshot arrays, the fills view and the test hooks */
    static inline void rb_fill_get(const rb_fill *f, int64_t *cum_hi, uint64_t *cum_lo,
                                   int64_t *n_hi, uint64_t *n_lo) {
        *cum_hi = (int64_t)(f->cum >> 64); *cum_lo = (uint64_t)f->cum;
        *n_hi = (int64_t)(f->notional >> 64); *n_lo = (uint64_t)f->notional;
    }
    static inline void rb_fill_set(rb_fill *f, int64_t cum, int64_t n_hi, uint64_t n_lo) {
        f->cum = cum; f->notional = (rb_i128)(((rb_u128)(uint64_t)n_hi << 64) | n_lo);
    }
    static double rb_true_div_parts(int64_t ahi, uint64_t alo, int64_t bhi, uint64_t blo) {
        rb_i128 a = (rb_i128)(((rb_u128)(uint64_t)ahi << 64) | alo);
        rb_i128 b = (rb_i128)(((rb_u128)(uint64_t)bhi << 64) | blo);
        return rb_true_div(a, b);
    }
    """
    ctypedef struct rb_event:
        pass
    ctypedef struct rb_account_rec:
        uint32_t account
        uint32_t _pad
        int64_t last_report_seq
    ctypedef struct rb_fill_rec:
        int64_t order_id
        int64_t cum_qty
        int64_t notional_hi
        uint64_t notional_lo
    ctypedef struct rb_acct:
        int64_t key
        uint64_t last
    ctypedef struct rb_amap:
        rb_acct* s
        size_t mask
        size_t size
    ctypedef struct rb_fill:
        int64_t key
        int64_t used
    ctypedef struct rb_fmap:
        rb_fill* s
        size_t mask
        size_t size
    ctypedef struct rb_frame:
        uint32_t account
        uint64_t report_seq
        size_t off
        size_t len
    ctypedef struct rb_str:
        const char* b
        size_t n
    ctypedef struct rb_t:
        rb_amap acc
        rb_fmap fills
        uint8_t* buf
        size_t buf_n
        rb_frame* fr
        size_t fr_n
        int64_t taker
        rb_str* vn
        size_t vn_n

    enum:
        RB_OK, RB_FRAME, RB_NOMEM, RB_OVERFLOW, RB_ZERODIV, RB_SEQ_OVERFLOW, RB_NOTIONAL_OVERFLOW
        RB_STATE_ONLY, RB_COLLECT, RB_EACH

    void rb_init(rb_t* rb) noexcept nogil
    void rb_free(rb_t* rb) noexcept nogil
    void rb_trim(rb_t* rb) noexcept nogil
    int rb_run(rb_t* rb, const rb_event* ev, size_t n, size_t* pos, int* leg,
               int mode) noexcept nogil
    int amap_init(rb_amap* m, size_t cap) noexcept nogil
    rb_acct* amap_find(const rb_amap* m, uint32_t account) noexcept nogil
    rb_acct* amap_slot(rb_amap* m, uint32_t account) noexcept nogil
    int fmap_init(rb_fmap* m, size_t cap) noexcept nogil
    rb_fill* fmap_slot(rb_fmap* m, int64_t key) noexcept nogil
    void amap_free(rb_amap* m) noexcept nogil
    void fmap_free(rb_fmap* m) noexcept nogil
    size_t rb_event_size() noexcept nogil
    size_t rb_event_offset(int field) noexcept nogil

    void rb_fill_get(const rb_fill* f, int64_t* cum_hi, uint64_t* cum_lo, int64_t* n_hi,
                     uint64_t* n_lo) noexcept nogil
    void rb_fill_set(rb_fill* f, int64_t cum, int64_t n_hi, uint64_t n_lo) noexcept nogil
    double rb_true_div_parts(int64_t ahi, uint64_t alo, int64_t bhi, uint64_t blo) noexcept nogil


# -- layout checks: the C records must be the numpy ones ------------------------------------------

_EVENT_FIELDS = ("seq", "ts_ns", "order_id", "other_id", "price", "qty", "leaves", "other_leaves",
                 "instrument", "account", "other_account", "reason", "type", "side", "cmd",
                 "fee", "other_fee", "parent_id", "venue")


def _check_layouts():
    if rb_event_size() != EVENT_DTYPE.itemsize or any(
            rb_event_offset(k) != EVENT_DTYPE.fields[f][1] for k, f in enumerate(_EVENT_FIELDS)):
        raise ImportError("engine.gateway._reports: its event record does not match EVENT_DTYPE")
    if sizeof(rb_account_rec) != ACCOUNTS_DTYPE.itemsize or \
            sizeof(rb_fill_rec) != FILLS_DTYPE.itemsize:
        raise ImportError("engine.gateway._reports: its snapshot records do not match reports.py")


_check_layouts()

cdef int64_t I64_MAX = 0x7FFFFFFFFFFFFFFF
cdef uint64_t U64_MASK = 0xFFFFFFFFFFFFFFFF


cdef object _py_i128(int64_t hi, uint64_t lo):
    if (hi == 0 and lo >> 63 == 0) or (hi == -1 and lo >> 63 == 1):
        return <int64_t>lo
    return (<object>hi << 64) | <object>lo


cdef int _raise(int rc) except -1:
    if rc == RB_NOMEM:
        raise MemoryError()
    if rc == RB_OVERFLOW:
        raise OverflowError("can't serialize ints < -2**63 or > 2**64 - 1")   # msgspec's words
    if rc == RB_ZERODIV:
        raise ZeroDivisionError("division by zero")
    if rc == RB_SEQ_OVERFLOW:
        raise OverflowError("gateway reports: report_seq would pass 2**64 - 1")
    if rc == RB_NOTIONAL_OVERFLOW:
        raise OverflowError("gateway reports: an order's notional would leave the 128-bit range")
    raise SystemError(f"gateway reports: unexpected status {rc}")


cdef object _field(arr, str name, object dtype):
    a = np.asarray(arr[name])
    if not np.can_cast(a.dtype, dtype, "safe"):
        raise TypeError(f"gateway report state: field {name!r} is {a.dtype}, not {dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


cdef class FastReportBuilder:
    """engine.gateway.reports.ReportBuilder compiled: the same public face, the same frames
    byte for byte, the same snapshot arrays (either loads what the other exported).

    ``on_batch`` runs without the GIL while it numbers and encodes (live, or recovery without a
    ``recovered`` callback); live frames are built in one buffer and turned into
    ``(account, report_seq, bytes)`` tuples in ``pending`` at the end of the batch (with
    ``runs``: one ``(account, first, last, frames joined)`` per account per batch, as the
    server takes them). During recovery with ``recovered`` set, it is called after each frame
    (with ``runs``: once per run), as ReportBuilder does.

    Differences, none visible to the server: ``last`` and ``fills`` are read-only copies
    (sorted by key) of the C tables. Numbers beyond what a journal
    can produce fail earlier here: a report_seq past 2**64 - 1 or an order's notional past the
    128-bit range raises OverflowError in ``on_batch`` (ReportBuilder would fail in
    ``export_state``).

    ``cum_notional`` goes on the wire only inside the signed 64-bit range; outside it the field
    is left out and ``avg_price`` still comes from the exact notional. reports.py must do the
    same (ReportBuilder, unchanged, encodes 2**63 .. 2**64 - 1 as uint64 and raises
    OverflowError from msgspec beyond).
    """

    cdef rb_t rb
    cdef public list pending
    cdef public object recovered
    cdef readonly bint runs  # pending holds (account, first, last, frames joined) per batch
    cdef readonly dict venues   # venue id -> name (an id not in it is named by its number)
    cdef bytes _vn_blob         # the names' MessagePack, which rb.vn points into
    cdef int busy        # on_batch is running without the GIL
    cdef int in_batch    # on_batch is running (it may be calling ``recovered``)

    name = "gw"
    sections = {"gw.accounts": ACCOUNTS_DTYPE, "gw.fills": FILLS_DTYPE}

    def __cinit__(self, *args, **kwargs):
        rb_init(&self.rb)
        if amap_init(&self.rb.acc, 16) != 0 or fmap_init(&self.rb.fills, 1024) != 0:
            raise MemoryError()

    def __init__(self, recovered=None, runs=False, venues=None):
        cdef Py_ssize_t off = 0
        cdef rb_str* vn
        cdef size_t nv
        self.pending = []
        self.recovered = recovered
        self.runs = bool(runs)
        table = venue_table(venues)
        encoded = {k: msgspec.msgpack.encode(v) for k, v in table.items()}
        blob = b"".join(encoded.values())
        nv = <size_t>(max(table) + 1) if table else 0      # ids are 1..65535
        vn = <rb_str*>calloc(nv, sizeof(rb_str)) if nv else NULL
        if nv and vn == NULL:
            raise MemoryError()
        free(self.rb.vn)
        self.rb.vn = vn
        self.rb.vn_n = nv
        self._vn_blob = blob
        for k, data in encoded.items():
            vn[k].b = PyBytes_AS_STRING(blob) + off
            vn[k].n = len(data)
            off += len(data)
        self.venues = table

    def __dealloc__(self):
        rb_free(&self.rb)

    cdef inline int _enter(self) except -1:
        if self.busy:
            raise RuntimeError("this FastReportBuilder is running on_batch() in another thread")
        return 0

    # -- the numbers ------------------------------------------------------------------------------

    @property
    def last(self):
        """account -> last report_seq issued (a copy, by account)."""
        cdef size_t i
        self._enter()
        items = []
        for i in range(self.rb.acc.mask + 1):
            if self.rb.acc.s[i].key != -1:
                items.append((<uint32_t>self.rb.acc.s[i].key, self.rb.acc.s[i].last))
        items.sort()
        return dict(items)

    @property
    def fills(self):
        """order id -> [cum_qty, cum_notional] of the orders with fills that are still open,
        and -(a live routed order's id) -> [its total qty, its fees so far] (a copy, by key;
        ReportBuilder's ``fills``)."""
        cdef size_t i
        cdef int64_t ch, nh
        cdef uint64_t cl, nl
        self._enter()
        items = []
        for i in range(self.rb.fills.mask + 1):
            if self.rb.fills.s[i].used:
                rb_fill_get(&self.rb.fills.s[i], &ch, &cl, &nh, &nl)
                items.append((self.rb.fills.s[i].key, [_py_i128(ch, cl), _py_i128(nh, nl)]))
        items.sort()
        return dict(items)

    def next_report_seq(self, account):
        cdef rb_acct* a
        self._enter()
        if type(account) is not int:
            return self.last.get(account, 0) + 1        # whatever dict.get would match
        if not 0 <= account <= 0xFFFFFFFF:
            return 1
        a = amap_find(&self.rb.acc, <uint32_t>account)
        return 1 if a == NULL else a.last + 1

    def take(self):
        out, self.pending = self.pending, []
        return out

    # -- the part ---------------------------------------------------------------------------------

    def on_batch(self, commands, events, live):
        cdef cnp.ndarray arr
        cdef const rb_event* ev
        cdef size_t n, pos = 0
        cdef int leg = 0, rc = RB_OK, mode
        if not len(events):
            return
        self._enter()
        if self.in_batch:
            raise RuntimeError("FastReportBuilder.on_batch() called from its own callback")
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise TypeError("on_batch() takes a one-dimensional array of EVENT_DTYPE")
        arr = np.ascontiguousarray(events)
        ev = <const rb_event*>cnp.PyArray_DATA(arr)
        n = <size_t>arr.shape[0]
        sink = self.recovered
        if live or (sink is not None and self.runs):
            mode = RB_COLLECT       # with runs, recovery hands over one run per account too
        elif sink is not None:
            mode = RB_EACH
        else:
            mode = RB_STATE_ONLY
        out = self.pending
        if out is None:
            raise TypeError("pending must be a list")
        self.in_batch = 1
        self.rb.taker = 0           # a PARENT_FILL's liquidity looks back within its batch only
        try:
            if mode == RB_EACH:
                while True:
                    rc = rb_run(&self.rb, ev, n, &pos, &leg, mode)
                    if rc != RB_FRAME:
                        break
                    data = PyBytes_FromStringAndSize(<char*>self.rb.buf, <Py_ssize_t>self.rb.buf_n)
                    account, seq = self.rb.fr[0].account, self.rb.fr[0].report_seq
                    self.rb.buf_n = 0
                    self.rb.fr_n = 0
                    sink(account, seq, data)
            else:
                self.busy = 1
                with nogil:
                    rc = rb_run(&self.rb, ev, n, &pos, &leg, mode)
                self.busy = 0
                # runs are handed over whole or not at all (as ReportBuilder does: a batch that
                # fails part-way gives none); single frames up to the failure, as it does too
                if self.rb.fr_n and (rc >= 0 or not self.runs):
                    if not live:
                        out = []
                    if self.runs:
                        self._release_runs(out)
                    else:
                        self._release(out)
                    if not live:
                        for run in out:
                            sink(*run)
        finally:
            self.busy = 0
            self.in_batch = 0
            rb_trim(&self.rb)
        if rc < 0:
            _raise(rc)

    cdef int _release(self, list out) except -1:
        # the batch's frames: one bytes object each (the server keeps them per account)
        cdef size_t i
        cdef const rb_frame* f
        cdef const char* base = <const char*>self.rb.buf
        for i in range(self.rb.fr_n):
            f = &self.rb.fr[i]
            out.append((f.account, f.report_seq,
                        PyBytes_FromStringAndSize(base + f.off, <Py_ssize_t>f.len)))
        return 0

    cdef int _release_runs(self, list out) except -1:
        # one bytes object per account: its frames of the batch back to back, in order (an
        # account's report numbers within one batch are consecutive)
        cdef size_t i, n = self.rb.fr_n
        cdef Py_ssize_t g
        cdef const rb_frame* f
        cdef const char* base = <const char*>self.rb.buf
        cdef list groups = []       # [account, first seq, last seq, total bytes, write offset]
        cdef dict where = {}
        cdef list data
        cdef Py_ssize_t* group_of = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        if group_of == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                f = &self.rb.fr[i]
                found = where.get(f.account)
                if found is None:
                    g = len(groups)
                    where[f.account] = g
                    groups.append([f.account, f.report_seq, f.report_seq, 0, 0])
                else:
                    g = found
                    groups[g][2] = f.report_seq
                groups[g][3] += f.len
                group_of[i] = g
            data = [PyBytes_FromStringAndSize(NULL, grp[3]) for grp in groups]
            for i in range(n):
                f = &self.rb.fr[i]
                g = group_of[i]
                grp = groups[g]
                memcpy(PyBytes_AS_STRING(data[g]) + <Py_ssize_t>grp[4], base + f.off, f.len)
                grp[4] += f.len
        finally:
            free(group_of)
        for g in range(len(groups)):
            grp = groups[g]
            out.append((grp[0], grp[1], grp[2], data[g]))
        return 0

    # -- snapshots --------------------------------------------------------------------------------

    def export_state(self):
        cdef size_t i, j = 0
        cdef rb_account_rec* a
        cdef rb_fill_rec* r
        cdef int64_t ch, nh
        cdef uint64_t cl, nl
        self._enter()
        accounts = np.zeros(self.rb.acc.size, dtype=ACCOUNTS_DTYPE)
        a = <rb_account_rec*>cnp.PyArray_DATA(accounts)
        for i in range(self.rb.acc.mask + 1):
            if self.rb.acc.s[i].key != -1:
                if self.rb.acc.s[i].last > <uint64_t>I64_MAX:
                    raise OverflowError("gateway report state: a report_seq above 2**63 - 1")
                a[j].account = <uint32_t>self.rb.acc.s[i].key
                a[j].last_report_seq = <int64_t>self.rb.acc.s[i].last
                j += 1
        fills = np.zeros(self.rb.fills.size, dtype=FILLS_DTYPE)
        r = <rb_fill_rec*>cnp.PyArray_DATA(fills)
        j = 0
        for i in range(self.rb.fills.mask + 1):
            if self.rb.fills.s[i].used:
                rb_fill_get(&self.rb.fills.s[i], &ch, &cl, &nh, &nl)
                if not ((ch == 0 and cl >> 63 == 0) or (ch == -1 and cl >> 63 == 1)):
                    raise OverflowError("gateway report state: a cum_qty outside int64")
                r[j].order_id = self.rb.fills.s[i].key
                r[j].cum_qty = <int64_t>cl
                r[j].notional_hi = nh
                r[j].notional_lo = nl
                j += 1
        return {"gw.accounts": accounts[np.argsort(accounts["account"], kind="stable")],
                "gw.fills": fills[np.argsort(fills["order_id"], kind="stable")]}

    def load_state(self, state):
        cdef rb_amap acc
        cdef rb_fmap fm
        cdef rb_acct* slot = <rb_acct*>1         # not NULL: nothing failed
        cdef rb_fill* f = <rb_fill*>1
        cdef Py_ssize_t i, na, nf
        cdef const uint32_t[::1] keys
        cdef const int64_t[::1] lasts, oids, cums, his
        cdef const uint64_t[::1] los
        self._enter()
        if self.in_batch:
            raise RuntimeError("FastReportBuilder.load_state() called from its own callback")
        accounts, fills = state["gw.accounts"], state["gw.fills"]
        if bool((accounts["last_report_seq"] < 0).any()) or bool((fills["cum_qty"] <= 0).any()):
            raise ValueError("gateway report state: negative report numbers or fill totals")
        keys = _field(accounts, "account", np.uint32)
        lasts = _field(accounts, "last_report_seq", np.int64)
        oids = _field(fills, "order_id", np.int64)
        cums = _field(fills, "cum_qty", np.int64)
        his = _field(fills, "notional_hi", np.int64)
        los = _field(fills, "notional_lo", np.uint64)
        na, nf = keys.shape[0], oids.shape[0]
        acc.s = NULL
        fm.s = NULL
        if amap_init(&acc, <size_t>na) != 0 or fmap_init(&fm, <size_t>nf) != 0:
            amap_free(&acc)
            fmap_free(&fm)
            raise MemoryError()
        for i in range(na):
            slot = amap_slot(&acc, keys[i])
            if slot == NULL:
                break
            slot.last = <uint64_t>lasts[i]
        for i in range(nf):
            f = fmap_slot(&fm, oids[i])
            if f == NULL:
                break
            rb_fill_set(f, cums[i], his[i], los[i])
        if slot == NULL or f == NULL:
            amap_free(&acc)
            fmap_free(&fm)
            raise MemoryError()
        amap_free(&self.rb.acc)
        fmap_free(&self.rb.fills)
        self.rb.acc = acc
        self.rb.fills = fm
        self.pending = []


def _true_divide(a, b):
    """``a / b`` for two ints in the signed 128-bit range, as the builder computes avg_price
    (tests compare it with Python's own int division)."""
    if b == 0:
        raise ZeroDivisionError("division by zero")
    if not (-(1 << 127) <= a < (1 << 127) and -(1 << 127) <= b < (1 << 127)):
        raise OverflowError("outside the signed 128-bit range")
    return rb_true_div_parts(a >> 64, a & U64_MASK, b >> 64, b & U64_MASK)
