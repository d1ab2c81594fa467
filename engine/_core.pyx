# cython: language_level=3, embedsignature=True
"""The compiled matching core: books, orders, matching, events, per-call and batch APIs.

It owns all order state in preallocated C arrays and changes it only through `process_one`,
which both APIs call. It must never read a clock, draw a random number, or depend on the
order of a Python dict: its state is a pure function of the commands it was given.
Semantics: docs/RULES.md. Data structures: docs/implementation.md.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t, int32_t, uint32_t, uint16_t, uint8_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memmove, memcpy

import hashlib
from collections.abc import Mapping

import numpy as np

from engine.risk._risk cimport *

# the checks, exposure and fill updates, compiled into this module so they inline
include "risk/checks.pxi"

from .schema import COMMAND_DTYPE, EVENT_DTYPE, INSTRUMENT_STATE_DTYPE, ORDER_STATE_DTYPE
from .schema import INT64_MAX as _INT64_MAX, MAX_FEE_PPM as _MAX_FEE_PPM, PARENT_STATE_DTYPE
from .risk.tables import check_exposure, check_tables

cnp.import_array()

INT64_MAX = _INT64_MAX
MAX_FEE = _MAX_FEE_PPM

cdef enum:
    MIN_ORDERS = 64
    MIN_EVENTS = 1024
    MAX_POOL = 1 << 30        # pools double up to this many records (int32 indices)

cdef int64_t I64_MAX = 0x7FFFFFFFFFFFFFFF

# byte offsets of the free-list link in each pooled record
cdef Order _order
cdef Level _level
cdef Block _block
cdef Parent _parent
cdef size_t PARENT_LINK = <size_t>(<char*>&_parent.next_free - <char*>&_parent)
cdef size_t ORDER_LINK = <size_t>(<char*>&_order.next - <char*>&_order)
cdef size_t LEVEL_LINK = <size_t>(<char*>&_level.next_free - <char*>&_level)
cdef size_t BLOCK_LINK = <size_t>(<char*>&_block.next_free - <char*>&_block)


# ---------------------------------------------------------------------------------------------
# Id map: int64 key -> int32 value
# ---------------------------------------------------------------------------------------------

cdef inline uint64_t mix64(int64_t key) noexcept nogil:
    # splitmix64 finaliser: consecutive ids spread over the table
    cdef uint64_t z = <uint64_t>key + <uint64_t>0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef int map_init(IdMap* m, size_t cap) noexcept nogil:
    cdef size_t n = 16
    while n < cap:
        n <<= 1
    m.keys = <int64_t*>malloc(n * sizeof(int64_t))
    m.vals = <int32_t*>malloc(n * sizeof(int32_t))
    if m.keys == NULL or m.vals == NULL:
        return -1
    memset(m.vals, 0xFF, n * sizeof(int32_t))
    m.mask = n - 1
    m.size = 0
    return 0


cdef void map_free(IdMap* m) noexcept nogil:
    free(m.keys)
    free(m.vals)
    m.keys = NULL
    m.vals = NULL


cdef inline int32_t map_get(const IdMap* m, int64_t key) noexcept nogil:
    cdef size_t i = mix64(key) & m.mask
    while m.vals[i] != -1:
        if m.keys[i] == key:
            return m.vals[i]
        i = (i + 1) & m.mask
    return -1


cdef int map_grow(IdMap* m) noexcept nogil:
    cdef IdMap old = m[0]
    cdef size_t i, j
    if map_init(m, (old.mask + 1) * 2) != 0:
        map_free(m)
        m[0] = old
        return -1
    for i in range(old.mask + 1):
        if old.vals[i] != -1:
            j = mix64(old.keys[i]) & m.mask
            while m.vals[j] != -1:
                j = (j + 1) & m.mask
            m.keys[j] = old.keys[i]
            m.vals[j] = old.vals[i]
    m.size = old.size
    map_free(&old)
    return 0


cdef inline int map_reserve_one(IdMap* m) noexcept nogil:
    # keep the load factor at or below 1/2 so probe chains stay short
    if (m.size + 1) * 2 > m.mask + 1:
        return map_grow(m)
    return 0


cdef inline void map_put(IdMap* m, int64_t key, int32_t val) noexcept nogil:
    # the caller has reserved room and knows the key is absent
    cdef size_t i = mix64(key) & m.mask
    while m.vals[i] != -1:
        i = (i + 1) & m.mask
    m.keys[i] = key
    m.vals[i] = val
    m.size += 1


cdef void map_del(IdMap* m, int64_t key) noexcept nogil:
    cdef size_t i = mix64(key) & m.mask
    cdef size_t j, k
    while m.vals[i] != -1:
        if m.keys[i] == key:
            break
        i = (i + 1) & m.mask
    else:
        return
    # backward-shift deletion: pull later members of the probe chain into the hole
    j = i
    while True:
        j = (j + 1) & m.mask
        if m.vals[j] == -1:
            break
        k = mix64(m.keys[j]) & m.mask
        if (i <= j and i < k <= j) or (i > j and (i < k or k <= j)):
            continue
        m.keys[i] = m.keys[j]
        m.vals[i] = m.vals[j]
        i = j
    m.vals[i] = -1
    m.size -= 1


# ---------------------------------------------------------------------------------------------
# Pools: orders and levels, preallocated, growing by doubling, recycled through free lists
# ---------------------------------------------------------------------------------------------

cdef int grow_pool(void** data, int32_t* cap, int32_t* free_head, size_t elem,
                   size_t link, int32_t first_cap) noexcept nogil:
    # Double a pool of `elem`-byte records and thread the new ones onto its free list through
    # the int32 field at byte offset `link`. Indices stay valid; pointers into it do not.
    cdef int32_t old = cap[0]
    cdef int32_t new_cap = old * 2 if old > 0 else first_cap
    cdef char* p
    cdef int32_t i
    if old >= MAX_POOL:
        return -1
    p = <char*>realloc(data[0], <size_t>new_cap * elem)
    if p == NULL:
        return -1
    data[0] = p
    for i in range(old, new_cap):
        (<int32_t*>(p + <size_t>i * elem + link))[0] = i + 1 if i < new_cap - 1 else free_head[0]
    free_head[0] = old
    cap[0] = new_cap
    return 0


cdef inline int grow_orders(State* st) noexcept nogil:
    return grow_pool(<void**>&st.orders, &st.orders_cap, &st.orders_free, sizeof(Order),
                     ORDER_LINK, MIN_ORDERS)


cdef inline int32_t alloc_order(State* st) noexcept nogil:
    cdef int32_t oi
    if st.orders_free == -1 and grow_orders(st) != 0:
        return -1
    oi = st.orders_free
    st.orders_free = st.orders[oi].next
    return oi


cdef inline void free_order(State* st, int32_t oi) noexcept nogil:
    st.orders[oi].order_id = 0
    st.orders[oi].next = st.orders_free
    st.orders_free = oi


cdef int grow_parents(State* st) noexcept nogil:
    # a free slot has order_id 0 (the exports skip it)
    cdef int32_t old = st.parents_cap, i
    if grow_pool(<void**>&st.parents, &st.parents_cap, &st.parents_free, sizeof(Parent),
                 PARENT_LINK, 16) != 0:
        return -1
    for i in range(old, st.parents_cap):
        st.parents[i].order_id = 0
    return 0


cdef inline int32_t alloc_parent(State* st) noexcept nogil:
    # the caller has made sure one is free (grow_parents)
    cdef int32_t ps = st.parents_free
    st.parents_free = st.parents[ps].next_free
    return ps


cdef inline void free_parent(State* st, int32_t ps) noexcept nogil:
    map_del(&st.parent_map, st.parents[ps].order_id)
    st.parents[ps].order_id = 0
    st.parents[ps].next_free = st.parents_free
    st.parents_free = ps
    st.n_parents -= 1


cdef inline int64_t book_key(uint16_t venue, uint32_t instrument) noexcept nogil:
    # the book map's key: venue 0 (the command's "primary") is the instrument id alone
    return (<int64_t>venue << 32) | instrument


cdef inline int grow_levels(State* st) noexcept nogil:
    return grow_pool(<void**>&st.levels, &st.levels_cap, &st.levels_free, sizeof(Level),
                     LEVEL_LINK, MIN_ORDERS)


cdef inline int32_t alloc_level(State* st, int64_t price) noexcept nogil:
    cdef int32_t li
    if st.levels_free == -1 and grow_levels(st) != 0:
        return -1
    li = st.levels_free
    st.levels_free = st.levels[li].next_free
    st.levels[li].price = price
    st.levels[li].total = 0
    st.levels[li].head = -1
    st.levels[li].tail = -1
    st.levels[li].count = 0
    st.levels[li].next_free = -1
    return li


cdef inline void free_level(State* st, int32_t li) noexcept nogil:
    st.levels[li].next_free = st.levels_free
    st.levels_free = li


# ---------------------------------------------------------------------------------------------
# Book sides: sorted arrays of (key, level) with the best level last
# ---------------------------------------------------------------------------------------------

cdef inline int64_t side_key(uint8_t side, int64_t price) noexcept nogil:
    return price if side == SIDE_BUY else -price


cdef inline BookSide* own_side(Book* bk, uint8_t side) noexcept nogil:
    return &bk.bids if side == SIDE_BUY else &bk.asks


cdef inline BookSide* opp_side(Book* bk, uint8_t side) noexcept nogil:
    return &bk.asks if side == SIDE_BUY else &bk.bids


cdef inline int grow_blocks(State* st) noexcept nogil:
    return grow_pool(<void**>&st.blk, &st.blk_cap, &st.blk_free, sizeof(Block), BLOCK_LINK, 8)


cdef inline int32_t alloc_block(State* st) noexcept nogil:
    # the caller has reserved one (side_reserve_one)
    cdef int32_t bi = st.blk_free
    st.blk_free = st.blk[bi].next_free
    st.blk[bi].n = 0
    st.blk[bi].next_free = -1
    return bi


cdef inline void free_block(State* st, int32_t bi) noexcept nogil:
    st.blk[bi].next_free = st.blk_free
    st.blk_free = bi


cdef inline int32_t side_best(const State* st, const BookSide* s) noexcept nogil:
    # the best level's index, or -1 for an empty side. O(1).
    cdef const Block* blk
    if s.nb == 0:
        return -1
    blk = &st.blk[s.blocks[s.nb - 1]]
    return blk.levels[blk.n - 1]


cdef inline int32_t side_find(const State* st, const BookSide* s, int64_t key,
                              int32_t* bj, int32_t* pos) noexcept nogil:
    # Where `key` is or would go: block `bj` (index into s.blocks; -1 if the side is empty) and
    # position `pos` in it of the first key >= `key` (the block's n when `key` is above all).
    # Returns the level index on an exact match, else -1. The top is looked at first.
    cdef int32_t lo, hi, mid, j
    cdef const Block* blk
    if s.nb == 0:
        bj[0] = -1
        pos[0] = 0
        return -1
    j = s.nb - 1
    if s.nb > 1 and key <= s.bmax[s.nb - 2]:
        lo = 0
        hi = s.nb - 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if s.bmax[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        j = lo
    blk = &st.blk[s.blocks[j]]
    bj[0] = j
    if blk.keys[blk.n - 1] < key:
        pos[0] = blk.n
        return -1
    if blk.keys[blk.n - 1] == key:
        pos[0] = blk.n - 1
        return blk.levels[blk.n - 1]
    lo = 0
    hi = blk.n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if blk.keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    pos[0] = lo
    return blk.levels[lo] if blk.keys[lo] == key else -1


cdef int side_dir_reserve(BookSide* s, int32_t new_cap) noexcept nogil:
    # a block directory with room for `new_cap` blocks (never shrinks what it holds)
    cdef int64_t* k = <int64_t*>realloc(s.bmax, <size_t>new_cap * sizeof(int64_t))
    cdef int32_t* l
    if k == NULL:
        return -1
    s.bmax = k
    l = <int32_t*>realloc(s.blocks, <size_t>new_cap * sizeof(int32_t))
    if l == NULL:
        return -1
    s.blocks = l
    s.bcap = new_cap
    return 0


cdef int side_reserve_one(State* st, BookSide* s) noexcept nogil:
    # room for one more level: a free block (an insert may split one) and a directory slot
    if st.blk_free == -1 and grow_blocks(st) != 0:
        return -1
    if s.nb < s.bcap:
        return 0
    return side_dir_reserve(s, s.bcap * 2 if s.bcap > 0 else 4)


cdef void side_insert(State* st, BookSide* s, int32_t j, int32_t p, int64_t key,
                      int32_t li) noexcept nogil:
    # put (key, li) at block j, position p (from side_find); reserved by side_reserve_one
    cdef Block* blk
    cdef Block* upper
    cdef int32_t bi, half = BLOCK_LEVELS // 2
    if j < 0:
        bi = alloc_block(st)
        s.blocks[0] = bi
        s.bmax[0] = key
        s.nb = 1
        blk = &st.blk[bi]
        blk.keys[0] = key
        blk.levels[0] = li
        blk.n = 1
        s.n += 1
        return
    blk = &st.blk[s.blocks[j]]
    if blk.n == BLOCK_LEVELS:
        # split: the upper half moves to a new block right after this one
        bi = alloc_block(st)
        blk = &st.blk[s.blocks[j]]
        upper = &st.blk[bi]
        memcpy(upper.keys, &blk.keys[half], half * sizeof(int64_t))
        memcpy(upper.levels, &blk.levels[half], half * sizeof(int32_t))
        upper.n = half
        blk.n = half
        memmove(&s.bmax[j + 2], &s.bmax[j + 1], <size_t>(s.nb - j - 1) * sizeof(int64_t))
        memmove(&s.blocks[j + 2], &s.blocks[j + 1], <size_t>(s.nb - j - 1) * sizeof(int32_t))
        s.blocks[j + 1] = bi
        s.bmax[j + 1] = s.bmax[j]
        s.bmax[j] = blk.keys[half - 1]
        s.nb += 1
        if p > half:
            j += 1
            p -= half
            blk = upper
    if p < blk.n:
        memmove(&blk.keys[p + 1], &blk.keys[p], <size_t>(blk.n - p) * sizeof(int64_t))
        memmove(&blk.levels[p + 1], &blk.levels[p], <size_t>(blk.n - p) * sizeof(int32_t))
    blk.keys[p] = key
    blk.levels[p] = li
    blk.n += 1
    if p == blk.n - 1:
        s.bmax[j] = key
    s.n += 1


cdef void side_erase(State* st, BookSide* s, int32_t j, int32_t p) noexcept nogil:
    # drop the entry at block j, position p; an emptied block leaves the directory
    cdef Block* blk = &st.blk[s.blocks[j]]
    blk.n -= 1
    s.n -= 1
    if blk.n == 0:
        free_block(st, s.blocks[j])
        memmove(&s.bmax[j], &s.bmax[j + 1], <size_t>(s.nb - j - 1) * sizeof(int64_t))
        memmove(&s.blocks[j], &s.blocks[j + 1], <size_t>(s.nb - j - 1) * sizeof(int32_t))
        s.nb -= 1
        return
    if p < blk.n:
        memmove(&blk.keys[p], &blk.keys[p + 1], <size_t>(blk.n - p) * sizeof(int64_t))
        memmove(&blk.levels[p], &blk.levels[p + 1], <size_t>(blk.n - p) * sizeof(int32_t))
    else:
        s.bmax[j] = blk.keys[blk.n - 1]


cdef void side_remove_level(State* st, BookSide* s, int64_t key) noexcept nogil:
    cdef int32_t j, p
    cdef int32_t li = side_find(st, s, key, &j, &p)
    free_level(st, li)
    side_erase(st, s, j, p)


cdef inline void side_pop_best(State* st, BookSide* s) noexcept nogil:
    cdef int32_t j = s.nb - 1
    side_erase(st, s, j, st.blk[s.blocks[j]].n - 1)


cdef inline bint crosses(uint8_t side, int64_t limit, int64_t level_price) noexcept nogil:
    # may an order on `side` at `limit` trade against a resting level at `level_price`?
    if side == SIDE_BUY:
        return level_price <= limit
    return level_price >= limit


# ---------------------------------------------------------------------------------------------
# Events and finished-order history
# ---------------------------------------------------------------------------------------------

cdef Event* emit(State* st, const Command* c, uint8_t type) noexcept nogil:
    cdef size_t new_cap
    cdef Event* p
    cdef Event* e
    if st.n_ev == st.ev_cap:
        new_cap = st.ev_cap * 2 if st.ev_cap > 0 else MIN_EVENTS
        p = <Event*>realloc(st.ev, new_cap * sizeof(Event))
        if p == NULL:
            st.oom = 1
            return NULL
        st.ev = p
        st.ev_cap = new_cap
    e = &st.ev[st.n_ev]
    st.n_ev += 1
    memset(e, 0, sizeof(Event))
    e.seq = c.seq
    e.ts_ns = c.ts_ns
    e.type = type
    e.cmd = c.cmd
    return e


cdef void reject(State* st, const Command* c, uint16_t reason) noexcept nogil:
    cdef Event* e = emit(st, c, EV_REJECTED)
    if e == NULL:
        return
    e.order_id = c.order_id
    e.instrument = c.instrument
    e.account = c.account
    e.side = c.side
    e.price = c.price
    e.qty = c.qty
    e.reason = reason
    e.venue = c.venue
    if c.cmd == CMD_NEW or c.cmd == CMD_ROUTE:
        record_command(st, c, ST_REJECTED)


cdef inline void order_event(State* st, const Command* c, uint8_t type, const Order* o,
                             int64_t qty, int64_t leaves, uint16_t reason,
                             int64_t parent_id) noexcept nogil:
    # an event about one order; its `book` field names the venue (set even before it rests)
    cdef Event* e = emit(st, c, type)
    if e == NULL:
        return
    e.venue = st.books[o.book].venue
    e.parent_id = parent_id
    e.order_id = o.order_id
    e.instrument = o.instrument
    e.account = o.account
    e.side = o.side
    e.price = o.price
    e.qty = qty
    e.leaves = leaves
    e.reason = reason


cdef inline void record(State* st, const Order* o, uint8_t status) noexcept nogil:
    record_at(st, o, status, st.books[o.book].venue)


cdef inline void record_at(State* st, const Order* o, uint8_t status,
                           uint16_t venue) noexcept nogil:
    cdef Finished* h
    if st.hist_cap == 0:
        return
    h = &st.hist[st.hist_n % st.hist_cap]
    st.hist_n += 1
    h.order_id = o.order_id
    h.price = o.price
    h.qty = o.qty
    h.filled = o.filled
    h.instrument = o.instrument
    h.account = o.account
    h.flags = o.flags
    h.side = o.side
    h.ord_type = o.ord_type
    h.tif = o.tif
    h.status = status
    h.venue = venue


cdef void record_command(State* st, const Command* c, uint8_t status) noexcept nogil:
    # a NEW that never became an order is remembered with the command's own fields
    cdef Order tmp
    memset(&tmp, 0, sizeof(Order))
    tmp.order_id = c.order_id
    tmp.price = c.price
    tmp.qty = c.qty
    tmp.instrument = c.instrument
    tmp.account = c.account
    tmp.flags = c.flags | (FLAG_PARENT if c.cmd == CMD_ROUTE else 0)
    tmp.side = c.side
    tmp.ord_type = c.ord_type
    tmp.tif = c.tif
    record_at(st, &tmp, status, c.venue)


cdef void instrument_event(State* st, const Command* c, const Book* bk) noexcept nogil:
    # INSTRUMENT_STATE: the whole state of one instrument, after a HALT, RESUME or SET_LIMITS
    cdef Event* e = emit(st, c, EV_INSTRUMENT_STATE)
    if e == NULL:
        return
    e.order_id = c.order_id
    e.account = c.account
    e.instrument = bk.instrument
    e.venue = bk.venue
    e.reason = bk.trading_state
    e.price = bk.min_qty
    e.qty = bk.max_qty


cdef void risk_event(State* st, const Command* c, uint16_t reason) noexcept nogil:
    # RISK: a risk admin command applied; reason = its kind or mode, qty/price = its values
    cdef Event* e = emit(st, c, EV_RISK)
    if e == NULL:
        return
    e.order_id = c.order_id
    e.account = c.account
    e.instrument = c.instrument
    e.reason = reason
    e.price = c.price
    e.qty = c.qty


# -- parents (docs/ROUTING.md, "Parent events") ------------------------------------------------

cdef inline Event* parent_event(State* st, const Command* c, uint8_t type,
                                const Parent* P) noexcept nogil:
    cdef Event* e = emit(st, c, type)
    if e == NULL:
        return NULL
    e.order_id = P.order_id
    e.instrument = P.instrument
    e.account = P.account
    e.side = P.side
    e.venue = P.venue
    e.price = P.price
    e.leaves = P.qty - P.filled - P.cancelled
    return e


cdef void parent_fill(State* st, const Command* c, int32_t ps, int64_t child_id,
                      uint16_t venue, int64_t price, int64_t qty, int64_t fee,
                      uint32_t other_account) noexcept nogil:
    # one fill of a child rolls up to its parent: PARENT_FILL
    cdef Parent* P = &st.parents[ps]
    cdef Event* e
    P.filled += qty
    P.value = sat(<i128>P.value + <i128>price * qty)
    P.fees = sat(<i128>P.fees + fee)
    P.status = ST_PARTIALLY_FILLED
    e = parent_event(st, c, EV_PARENT_FILL, P)
    if e == NULL:
        return
    e.other_id = child_id
    e.price = price
    e.qty = qty
    e.other_leaves = P.filled
    e.fee = fee
    e.other_fee = P.fees
    e.other_account = other_account
    e.venue = venue


cdef void parent_cancel(State* st, const Command* c, int32_t ps, int64_t qty,
                        uint16_t cause) noexcept nogil:
    # part of a parent's quantity is cancelled: CANCELLED for the parent
    cdef Parent* P = &st.parents[ps]
    cdef Event* e
    P.cancelled += qty
    e = parent_event(st, c, EV_CANCELLED, P)
    if e != NULL:
        e.qty = qty
        e.reason = cause


cdef void parent_done(State* st, const Command* c, int32_t ps) noexcept nogil:
    # a parent ends: PARENT_DONE, its record in the history, its slot freed
    cdef Parent* P = &st.parents[ps]
    cdef Event* e
    cdef Finished* h
    P.status = ST_FILLED if P.cancelled == 0 else ST_CANCELLED
    e = parent_event(st, c, EV_PARENT_DONE, P)
    if e != NULL:
        e.qty = P.qty
        e.leaves = 0
        e.other_leaves = P.filled
        e.other_fee = P.fees
        e.reason = P.status
    if st.hist_cap != 0:
        h = &st.hist[st.hist_n % st.hist_cap]
        st.hist_n += 1
        h.order_id = P.order_id
        h.price = P.price
        h.qty = P.qty
        h.filled = P.filled
        h.instrument = P.instrument
        h.account = P.account
        h.flags = P.flags
        h.side = P.side
        h.ord_type = P.ord_type
        h.tif = P.tif
        h.status = P.status
        h.venue = P.venue
    free_parent(st, ps)


# ---------------------------------------------------------------------------------------------
# Book maintenance
# ---------------------------------------------------------------------------------------------

cdef bint level_would_overflow(State* st, int32_t b, uint8_t side, int64_t price,
                               int64_t open_qty) noexcept nogil:
    # would resting `open_qty` at `price` take the level's open total past what int64 holds?
    cdef int32_t j, p
    cdef int32_t li = side_find(st, own_side(&st.books[b], side), side_key(side, price), &j, &p)
    return li >= 0 and st.levels[li].total > I64_MAX - open_qty


cdef int rest_order(State* st, int32_t b, int32_t oi) noexcept nogil:
    # append the order at the back of its price level, creating the level if needed;
    # the caller has reserved room in the side arrays and the level pool
    cdef Order* o = &st.orders[oi]
    cdef BookSide* s = own_side(&st.books[b], o.side)
    cdef int64_t key = side_key(o.side, o.price)
    cdef int32_t j, p
    cdef int32_t li = side_find(st, s, key, &j, &p)
    cdef Level* lvl
    if li < 0:
        li = alloc_level(st, o.price)
        if li < 0:
            return -1
        side_insert(st, s, j, p, key, li)
    o = &st.orders[oi]
    lvl = &st.levels[li]
    o.book = b
    o.level = li
    o.next = -1
    o.prev = lvl.tail
    if lvl.tail != -1:
        st.orders[lvl.tail].next = oi
    else:
        lvl.head = oi
    lvl.tail = oi
    lvl.count += 1
    lvl.total += o.qty - o.filled
    return 0


cdef void unlink_order(State* st, int32_t oi) noexcept nogil:
    # take a resting order out of its level (and the level out of its side if it empties);
    # the order stays allocated and indexed
    cdef Order* o = &st.orders[oi]
    cdef Level* lvl = &st.levels[o.level]
    if o.prev != -1:
        st.orders[o.prev].next = o.next
    else:
        lvl.head = o.next
    if o.next != -1:
        st.orders[o.next].prev = o.prev
    else:
        lvl.tail = o.prev
    lvl.count -= 1
    lvl.total -= o.qty - o.filled
    if lvl.count == 0:
        side_remove_level(st, own_side(&st.books[o.book], o.side), side_key(o.side, o.price))
    o.level = -1


cdef inline void drop_order(State* st, int32_t oi) noexcept nogil:
    map_del(&st.order_map, st.orders[oi].order_id)
    free_order(st, oi)
    st.n_live -= 1


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------

cdef bint fok_fillable(State* st, int32_t b, uint8_t side, bint market, int64_t limit,
                       int64_t qty) noexcept nogil:
    cdef BookSide* s = opp_side(&st.books[b], side)
    cdef int32_t j = s.nb - 1, p
    cdef Block* blk
    cdef Level* lvl
    cdef int64_t avail = 0
    while j >= 0:
        blk = &st.blk[s.blocks[j]]
        p = blk.n - 1
        while p >= 0:
            lvl = &st.levels[blk.levels[p]]
            if not market and not crosses(side, limit, lvl.price):
                return False
            if lvl.total >= qty - avail:      # (avail + total >= qty, without overflow)
                return True
            avail += lvl.total
            p -= 1
        j -= 1
    return False


cdef int64_t match(State* st, int32_t b, const Command* c, int64_t taker_id, uint32_t account,
                   uint8_t side, bint market, int64_t limit, int64_t leaves, int32_t tps,
                   int64_t extra) noexcept nogil:
    # trade `leaves` against the opposite side, best level first, oldest order first;
    # returns what is left. `tps` is the taker's parent slot (a router's child) or -1; `extra`
    # is added to the taker's reported leaves (a child's quantity beyond this step). Allocates
    # no orders, so Order pointers stay valid here.
    cdef Book* bk = &st.books[b]
    cdef BookSide* s = opp_side(bk, side)
    cdef int32_t li, oi, nxt, mps
    cdef Level* lvl
    cdef Order* o
    cdef int64_t fill, maker_open, tfee, mfee, tppm, mppm, k
    cdef int64_t parent_id = st.parents[tps].order_id if tps >= 0 else 0
    cdef i128 n = 0
    cdef Event* e
    cdef bint fees
    # fees (docs/ROUTING.md): the venue's, plus the instrument's risk fee; fixed for the call
    tppm = bk.taker_ppm
    mppm = bk.maker_ppm
    k = bk.k
    if st.risk != NULL:
        tppm += st.risk.inst[bk.ix].fee_ppm
        mppm += st.risk.inst[bk.ix].fee_ppm
        k = st.risk.inst[bk.ix].k
    fees = tppm != 0 or mppm != 0
    while leaves > 0 and s.nb > 0:
        li = side_best(st, s)
        lvl = &st.levels[li]
        if not market and not crosses(side, limit, lvl.price):
            break
        oi = lvl.head
        while oi != -1 and leaves > 0:
            o = &st.orders[oi]
            maker_open = o.qty - o.filled
            fill = leaves if leaves < maker_open else maker_open
            leaves -= fill
            o.filled += fill
            lvl.total -= fill
            tfee = 0
            mfee = 0
            if fees or st.risk != NULL:
                n = notional(o.price, fill, k)
                if fees:
                    tfee = sat(signed_fee(n, tppm))
                    mfee = sat(signed_fee(n, mppm))
            e = emit(st, c, EV_TRADE)
            if e != NULL:
                e.order_id = taker_id
                e.other_id = o.order_id
                e.price = o.price
                e.qty = fill
                e.leaves = leaves + extra
                e.other_leaves = maker_open - fill
                e.fee = tfee
                e.other_fee = mfee
                e.parent_id = parent_id
                e.instrument = bk.instrument
                e.account = account
                e.other_account = o.account
                e.venue = bk.venue
                e.side = side
            if st.risk != NULL:
                risk_fill(st.risk, bk.ix, st.risk_ta, side, o.account, o.price, fill,
                          o.filled == o.qty, n, tfee, mfee)
            if tps >= 0:
                parent_fill(st, c, tps, taker_id, bk.venue, o.price, fill, tfee, o.account)
            mps = -1
            if o.flags & FLAG_CHILD:
                # a resting child filled passively: its parent rolls up (and ends with it)
                mps = map_get(&st.child_map, o.order_id)
                parent_fill(st, c, mps, o.order_id, bk.venue, o.price, fill, mfee, account)
            nxt = o.next
            if o.filled == o.qty:
                record(st, o, ST_FILLED)
                lvl.head = nxt
                if nxt != -1:
                    st.orders[nxt].prev = -1
                else:
                    lvl.tail = -1
                lvl.count -= 1
                if mps >= 0:
                    map_del(&st.child_map, o.order_id)
                    st.parents[mps].child = -1
                    st.parents[mps].child_id = 0
                    parent_done(st, c, mps)
                drop_order(st, oi)
            oi = nxt
        if lvl.count == 0:
            free_level(st, li)
            side_pop_best(st, s)
    return leaves


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

cdef inline int reserve_for_rest(State* st, int32_t b, uint8_t side) noexcept nogil:
    # everything resting one more order may need, taken before the book is touched, so an
    # allocation failure never leaves a half-applied command behind
    if map_reserve_one(&st.order_map) != 0:
        return -1
    if st.orders_free == -1 and grow_orders(st) != 0:
        return -1
    if st.levels_free == -1 and grow_levels(st) != 0:
        return -1
    if side_reserve_one(st, own_side(&st.books[b], side)) != 0:
        return -1
    return 0


cdef inline uint16_t order_shape_reason(const Command* c) noexcept nogil:
    # side, order type and time in force of a NEW or a ROUTE, in that order; 0: valid
    if c.side != SIDE_BUY and c.side != SIDE_SELL:
        return R_INVALID_SIDE
    if c.ord_type != ORD_LIMIT and c.ord_type != ORD_MARKET:
        return R_INVALID_ORDER_TYPE
    if c.tif != TIF_GTC and c.tif != TIF_IOC and c.tif != TIF_FOK:
        return R_INVALID_TIME_IN_FORCE
    return 0


cdef inline uint16_t qty_reason(const Command* c, const Book* bk) noexcept nogil:
    # the quantity of a NEW or a ROUTE against the book's bounds; 0: valid
    if c.qty <= 0:
        return R_INVALID_QUANTITY
    if c.qty < bk.min_qty:
        return R_QUANTITY_BELOW_MIN
    if c.qty > bk.max_qty:
        return R_QUANTITY_ABOVE_MAX
    return 0


cdef inline bint id_in_use(State* st, int64_t order_id) noexcept nogil:
    # a live order or a live parent has this id (NEW and ROUTE: BOOK_DUPLICATE_ORDER_ID)
    return map_get(&st.order_map, order_id) >= 0 or (
        st.parent_map.size != 0 and map_get(&st.parent_map, order_id) >= 0)


cdef inline uint16_t new_risk_reason(State* st, const Command* c, int32_t ix, bint market,
                                     bint may_rest, int32_t* ra, int64_t* limit) noexcept nogil:
    # risk checks 0 and 3..10 of a NEW or a ROUTE (risk on); the account's index goes to `ra`
    ra[0] = risk_account(st.risk, c.account)
    if ra[0] < 0:
        return R_RISK_UNKNOWN_ACCOUNT
    return risk_check_new(st.risk, ra[0], ix, c.side, market, may_rest, c.price, c.qty,
                          c.ts_ns, limit)


cdef uint16_t book_miss(State* st, const Command* c) noexcept nogil:
    # why (c.venue, c.instrument) names no book (docs/ROUTING.md, "Direct orders")
    if c.venue != 0 and map_get(&st.venue_map, c.venue) < 0:
        return R_UNKNOWN_VENUE
    if map_get(&st.book_map, c.instrument) < 0:
        return R_UNKNOWN_INSTRUMENT
    return R_VENUE_NOT_LISTED


cdef int do_new(State* st, const Command* c) noexcept nogil:
    cdef int32_t b, oi, ra = -1
    cdef Book* bk
    cdef BookSide* opp
    cdef Order* o
    cdef Order tmp
    cdef bint market, protected = False
    cdef int64_t price, leaves, limit = 0
    cdef uint16_t reason
    if c.order_id <= 0:
        reject(st, c, R_INVALID_ORDER_ID)
        return 0
    b = map_get(&st.book_map, book_key(c.venue, c.instrument))
    if b < 0:
        reject(st, c, book_miss(st, c))
        return 0
    bk = &st.books[b]
    if bk.trading_state != TS_OPEN:
        reject(st, c, R_INSTRUMENT_HALTED)
        return 0
    reason = order_shape_reason(c)
    if reason:
        reject(st, c, reason)
        return 0
    if (c.flags & ~FLAGS_KNOWN) or (
            (c.flags & FLAG_POST_ONLY) and (c.ord_type != ORD_LIMIT or c.tif != TIF_GTC)):
        reject(st, c, R_INVALID_INSTRUCTIONS)
        return 0
    reason = qty_reason(c, bk)
    if reason:
        reject(st, c, reason)
        return 0
    market = c.ord_type == ORD_MARKET
    if not market and c.price <= 0:
        reject(st, c, R_INVALID_PRICE)
        return 0
    if (bk.tick != 1 and not market and c.price % bk.tick != 0) or (
            bk.lot != 1 and c.qty % bk.lot != 0):
        reject(st, c, R_OFF_VENUE_GRID)
        return 0
    if id_in_use(st, c.order_id):
        reject(st, c, R_DUPLICATE_ORDER_ID)
        return 0
    if st.risk != NULL:
        # pre-trade risk, checks 0 and 3..10 (docs/RISK.md); a market order gets a protection
        # limit
        reason = new_risk_reason(st, c, bk.ix, market, c.tif == TIF_GTC and not market, &ra,
                                 &limit)
        if reason:
            reject(st, c, reason)
            return 0
        protected = market
    opp = opp_side(bk, c.side)
    if (c.flags & FLAG_POST_ONLY) and opp.nb > 0 and crosses(
            c.side, c.price, st.levels[side_best(st, opp)].price):
        reject(st, c, R_POST_ONLY_WOULD_TAKE)
        return 0
    if c.tif == TIF_GTC and not market and reserve_for_rest(st, b, c.side) != 0:
        return -1
    if ra >= 0:
        risk_accept(st.risk, ra, c.ts_ns)
        st.risk_ta = ra

    price = 0 if market else c.price
    if not protected:
        limit = price
    # the order as it would rest; lives on the stack until it does
    tmp.order_id = c.order_id
    tmp.price = price
    tmp.qty = c.qty
    tmp.filled = 0
    tmp.book = b
    tmp.account = c.account
    tmp.instrument = c.instrument
    tmp.flags = c.flags
    tmp.side = c.side
    tmp.ord_type = c.ord_type
    tmp.tif = c.tif
    order_event(st, c, EV_ACCEPTED, &tmp, c.qty, c.qty, 0, 0)

    # a protected market order (risk on) matches as a limit at its protection price
    if c.tif == TIF_FOK and not fok_fillable(st, b, c.side, market and not protected, limit,
                                             c.qty):
        order_event(st, c, EV_CANCELLED, &tmp, c.qty, 0, CAUSE_FOK_UNFILLABLE, 0)
        record(st, &tmp, ST_CANCELLED)
        return 0

    leaves = match(st, b, c, c.order_id, c.account, c.side, market and not protected, limit,
                   c.qty, -1, 0)
    tmp.filled = c.qty - leaves
    if leaves == 0:
        record(st, &tmp, ST_FILLED)
    elif market:
        order_event(st, c, EV_CANCELLED, &tmp, leaves, 0, CAUSE_MARKET_REMAINDER, 0)
        record(st, &tmp, ST_CANCELLED)
    elif c.tif != TIF_GTC:
        order_event(st, c, EV_CANCELLED, &tmp, leaves, 0, CAUSE_IOC_REMAINDER, 0)
        record(st, &tmp, ST_CANCELLED)
    elif level_would_overflow(st, b, c.side, price, leaves):
        order_event(st, c, EV_CANCELLED, &tmp, leaves, 0, CAUSE_LEVEL_QUANTITY_LIMIT, 0)
        record(st, &tmp, ST_CANCELLED)
    else:
        oi = alloc_order(st)          # reserved above: cannot fail
        o = &st.orders[oi]
        o[0] = tmp
        rest_order(st, b, oi)         # reserved above: cannot fail
        map_put(&st.order_map, c.order_id, oi)
        st.n_live += 1
        if ra >= 0:
            risk_rest(st.risk, ra, bk.ix, c.side, price, leaves)
    return 0


cdef inline int32_t owned_order(State* st, const Command* c) noexcept nogil:
    cdef int32_t oi = map_get(&st.order_map, c.order_id)
    if oi < 0 or st.orders[oi].account != c.account:
        return -1
    return oi


cdef void cancel_order(State* st, const Command* c, int32_t oi, uint16_t cause) noexcept nogil:
    # a resting order leaves the book: CANCELLED event, history, level, index, pool. CANCEL and
    # MASS_CANCEL share this one copy (so the helpers it inlines are not copied again)
    cdef Order* o = &st.orders[oi]
    cdef int32_t ps = -1
    cdef int64_t open_qty = o.qty - o.filled
    if st.risk != NULL:
        risk_leave(st.risk, o.account, st.books[o.book].ix, o.side, o.price, open_qty)
    if o.flags & FLAG_CHILD:
        ps = map_get(&st.child_map, o.order_id)
        order_event(st, c, EV_CANCELLED, o, open_qty, 0, cause, st.parents[ps].order_id)
        map_del(&st.child_map, o.order_id)
    else:
        order_event(st, c, EV_CANCELLED, o, open_qty, 0, cause, 0)
    record(st, o, ST_CANCELLED)
    unlink_order(st, oi)
    drop_order(st, oi)
    if ps >= 0:
        # its parent ends with it (docs/ROUTING.md, "Lifecycle")
        st.parents[ps].child = -1
        st.parents[ps].child_id = 0
        parent_cancel(st, c, ps, open_qty, cause)
        parent_done(st, c, ps)


cdef inline uint16_t replace_basics_reason(const Book* bk, const Command* c) noexcept nogil:
    # the first checks of any REPLACE, an order's or a parent's (its child's book); 0: valid
    if bk.trading_state != TS_OPEN:
        return R_INSTRUMENT_HALTED
    if c.qty <= 0:
        return R_INVALID_QUANTITY
    if c.price <= 0:
        return R_INVALID_PRICE
    return 0


cdef inline int32_t owned_parent(State* st, const Command* c) noexcept nogil:
    # the slot of this account's live parent c.order_id, or -1
    cdef int32_t ps
    if st.parent_map.size == 0:
        return -1
    ps = map_get(&st.parent_map, c.order_id)
    if ps < 0 or st.parents[ps].account != c.account:
        return -1
    return ps


cdef int do_cancel(State* st, const Command* c) noexcept nogil:
    cdef int32_t oi = owned_order(st, c)
    cdef int32_t ps
    if oi < 0:
        ps = owned_parent(st, c)
        if ps < 0:
            reject(st, c, R_UNKNOWN_ORDER)
            return 0
        oi = st.parents[ps].child      # a live parent has its resting child
    elif st.orders[oi].flags & FLAG_CHILD:
        reject(st, c, R_CHILD_ORDER)
        return 0
    cancel_order(st, c, oi, CAUSE_USER)
    return 0


cdef int replace_parent(State* st, const Command* c, int32_t ps) noexcept nogil:
    # REPLACE of a live parent: only a lower quantity at its own price, taken off its resting
    # child, which keeps its place (docs/ROUTING.md, "Lifecycle")
    cdef Parent* P = &st.parents[ps]
    cdef int32_t oi = P.child, ra = -1
    cdef Order* o = &st.orders[oi]
    cdef Book* bk = &st.books[o.book]
    cdef int64_t new_qty
    cdef uint16_t reason
    cdef Event* e
    reason = replace_basics_reason(bk, c)
    if reason:
        reject(st, c, reason)
        return 0
    if c.price != P.price or c.qty > P.qty:
        reject(st, c, R_PARENT_REPLACE)
        return 0
    if c.qty <= P.filled + P.cancelled:
        reject(st, c, R_REPLACE_QTY_NOT_ABOVE_FILLED)
        return 0
    new_qty = o.qty - (P.qty - c.qty)
    if bk.lot != 1 and new_qty % bk.lot != 0:
        reject(st, c, R_OFF_VENUE_GRID)
        return 0
    if st.risk != NULL:
        ra = risk_account(st.risk, o.account)
        if ra < 0:
            reject(st, c, R_RISK_UNKNOWN_ACCOUNT)
            return 0
        reason = risk_check_replace(st.risk, ra, bk.ix, o.side, o.price, o.qty - o.filled,
                                    o.price, new_qty, new_qty - o.filled, c.ts_ns)
        if reason:
            reject(st, c, reason)
            return 0
        risk_accept(st.risk, ra, c.ts_ns)
        risk_leave(st.risk, o.account, bk.ix, o.side, o.price, o.qty - o.filled)
        risk_rest(st.risk, ra, bk.ix, o.side, o.price, new_qty - o.filled)
    st.levels[o.level].total -= o.qty - new_qty
    o.qty = new_qty
    order_event(st, c, EV_REPLACED, o, new_qty, new_qty - o.filled, 0, P.order_id)
    P.qty = c.qty
    e = parent_event(st, c, EV_REPLACED, P)
    if e != NULL:
        e.qty = c.qty
    return 0


cdef int do_replace(State* st, const Command* c) noexcept nogil:
    cdef int32_t oi = owned_order(st, c)
    cdef int32_t b, ps, ra = -1
    cdef Order* o
    cdef Book* bk
    cdef BookSide* opp
    cdef int64_t leaves
    cdef uint16_t reason
    if oi < 0:
        ps = owned_parent(st, c)
        if ps >= 0:
            return replace_parent(st, c, ps)
        reject(st, c, R_UNKNOWN_ORDER)
        return 0
    o = &st.orders[oi]
    if o.flags & FLAG_CHILD:
        reject(st, c, R_CHILD_ORDER)
        return 0
    b = o.book
    bk = &st.books[b]
    reason = replace_basics_reason(bk, c)
    if reason:
        reject(st, c, reason)
        return 0
    if c.qty < bk.min_qty:
        reject(st, c, R_QUANTITY_BELOW_MIN)
        return 0
    if c.qty > bk.max_qty:
        reject(st, c, R_QUANTITY_ABOVE_MAX)
        return 0
    if c.qty <= o.filled:
        reject(st, c, R_REPLACE_QTY_NOT_ABOVE_FILLED)
        return 0
    if (bk.tick != 1 and c.price % bk.tick != 0) or (bk.lot != 1 and c.qty % bk.lot != 0):
        reject(st, c, R_OFF_VENUE_GRID)
        return 0
    if st.risk != NULL:
        # checks 3..10 on the change the replace makes (docs/RISK.md, "Replaces")
        ra = risk_account(st.risk, o.account)
        if ra < 0:
            reject(st, c, R_RISK_UNKNOWN_ACCOUNT)
            return 0
        reason = risk_check_replace(st.risk, ra, bk.ix, o.side, o.price, o.qty - o.filled, c.price,
                                    c.qty, c.qty - o.filled, c.ts_ns)
        if reason:
            reject(st, c, reason)
            return 0
    opp = opp_side(bk, o.side)
    if (o.flags & FLAG_POST_ONLY) and opp.nb > 0 and crosses(
            o.side, c.price, st.levels[side_best(st, opp)].price):
        reject(st, c, R_POST_ONLY_WOULD_TAKE)
        return 0

    if c.price == o.price and c.qty <= o.qty:
        # a decrease (or no change) at the same price keeps its place in the queue
        if ra >= 0:
            risk_accept(st.risk, ra, c.ts_ns)
            risk_leave(st.risk, o.account, bk.ix, o.side, o.price, o.qty - o.filled)
            risk_rest(st.risk, ra, bk.ix, o.side, o.price, c.qty - o.filled)
        st.levels[o.level].total -= o.qty - c.qty
        o.qty = c.qty
        order_event(st, c, EV_REPLACED, o, c.qty, c.qty - o.filled, 0, 0)
        return 0

    # it may need a new level; reserve before touching anything
    if st.levels_free == -1 and grow_levels(st) != 0:
        return -1
    if side_reserve_one(st, own_side(bk, o.side)) != 0:
        return -1
    o = &st.orders[oi]
    if ra >= 0:
        risk_accept(st.risk, ra, c.ts_ns)
        risk_leave(st.risk, o.account, bk.ix, o.side, o.price, o.qty - o.filled)
        st.risk_ta = ra
    unlink_order(st, oi)
    o.price = c.price
    o.qty = c.qty
    order_event(st, c, EV_REPLACED, o, c.qty, c.qty - o.filled, 0, 0)
    leaves = match(st, b, c, o.order_id, o.account, o.side, False, c.price, c.qty - o.filled,
                   -1, 0)
    o.filled = c.qty - leaves
    if leaves == 0:
        record(st, o, ST_FILLED)
        drop_order(st, oi)
    elif level_would_overflow(st, b, o.side, o.price, leaves):
        order_event(st, c, EV_CANCELLED, o, leaves, 0, CAUSE_LEVEL_QUANTITY_LIMIT, 0)
        record(st, o, ST_CANCELLED)
        drop_order(st, oi)
    else:
        rest_order(st, b, oi)
        if ra >= 0:
            risk_rest(st.risk, ra, bk.ix, o.side, o.price, leaves)
    return 0


# -- admin commands ----------------------------------------------------------------------------

cdef inline bint book_covered(const Book* bk, const Command* c, bint any_instrument) noexcept nogil:
    # does an admin command with this instrument (unless any) and venue (0: all) cover the book?
    return (any_instrument or bk.instrument == c.instrument) and (
        c.venue == 0 or bk.venue == c.venue)


cdef uint16_t admin_books(State* st, const Command* c) noexcept nogil:
    # the reject reason if (c.venue, c.instrument) names nothing for an admin command, else 0
    if c.venue != 0 and map_get(&st.venue_map, c.venue) < 0:
        return R_UNKNOWN_VENUE
    if map_get(&st.book_map, c.instrument) < 0:
        return R_UNKNOWN_INSTRUMENT
    if c.venue != 0 and map_get(&st.book_map, book_key(c.venue, c.instrument)) < 0:
        return R_VENUE_NOT_LISTED
    return 0


cdef int do_mass_cancel(State* st, const Command* c) noexcept nogil:
    # Cancel every resting order that matches (account unless ALL_ACCOUNTS, instrument unless 0,
    # venue unless 0, side unless 0).
    cdef uint16_t reason
    if c.instrument != 0:
        reason = admin_books(st, c)
        if reason:
            reject(st, c, reason)
            return 0
    elif c.venue != 0 and map_get(&st.venue_map, c.venue) < 0:
        reject(st, c, R_UNKNOWN_VENUE)
        return 0
    if c.side > SIDE_SELL:
        reject(st, c, R_INVALID_SIDE)
        return 0
    if c.flags & ~MASS_CANCEL_FLAGS_KNOWN:
        reject(st, c, R_INVALID_INSTRUCTIONS)
        return 0
    cancel_where(st, c, c.instrument == 0, c.venue, c.side,
                 (c.flags & FLAG_ALL_ACCOUNTS) != 0, CAUSE_MASS_CANCEL)
    return 0


cdef void cancel_where(State* st, const Command* c, bint any_instrument, uint16_t venue,
                       uint8_t only, bint all_accounts, uint16_t cause) noexcept nogil:
    # Cancel the resting orders of the books the command covers (book_covered; the KILL_SWITCH
    # passes any_instrument and venue 0: every book) on side `only` (0: both) of c.account (of
    # everyone with all_accounts): books in registration order, bids best first then asks best
    # first, each level in queue order. O(resting orders of the books scanned).
    cdef int32_t b, j, p, oi, nxt
    cdef uint8_t side
    cdef BookSide* s
    cdef Block* blk
    cdef Order* o
    cdef Book* bk
    for b in range(st.n_books):
        bk = &st.books[b]
        if not (any_instrument or bk.instrument == c.instrument) or (
                venue != 0 and bk.venue != venue):
            continue
        for side in range(SIDE_BUY, SIDE_SELL + 1):
            if only != 0 and only != side:
                continue
            s = own_side(&st.books[b], side)
            # Best level first: the last entry of the last block, walking down. Removing the
            # current level (its last order cancelled) moves only entries after it, and frees
            # its block only if it was the block's one entry, so what is left to walk stays put.
            j = s.nb - 1
            while j >= 0:
                blk = &st.blk[s.blocks[j]]
                p = blk.n - 1
                while p >= 0:
                    oi = st.levels[blk.levels[p]].head
                    while oi != -1:
                        o = &st.orders[oi]
                        nxt = o.next
                        if all_accounts or o.account == c.account:
                            cancel_order(st, c, oi, cause)
                        oi = nxt
                    p -= 1
                j -= 1


cdef int do_trading_state(State* st, const Command* c, uint8_t state) noexcept nogil:
    # HALT / RESUME: set the trading state of the books it covers (every book of the
    # instrument, or one venue's) and report each
    cdef int32_t b
    cdef uint16_t reason = admin_books(st, c)
    if reason:
        reject(st, c, reason)
        return 0
    for b in range(st.n_books):
        if book_covered(&st.books[b], c, False):
            st.books[b].trading_state = state
            instrument_event(st, c, &st.books[b])
    return 0


cdef int do_set_limits(State* st, const Command* c) noexcept nogil:
    # SET_LIMITS: price = the new min_qty, qty = the new max_qty; resting orders keep theirs
    cdef int32_t b
    cdef uint16_t reason = admin_books(st, c)
    if reason:
        reject(st, c, reason)
        return 0
    if c.price < 1 or c.qty < c.price:
        reject(st, c, R_INVALID_QUANTITY)
        return 0
    for b in range(st.n_books):
        if book_covered(&st.books[b], c, False):
            st.books[b].min_qty = c.price
            st.books[b].max_qty = c.qty
            instrument_event(st, c, &st.books[b])
    return 0


cdef int do_risk_admin(State* st, const Command* c) noexcept nogil:
    # SET_RISK, KILL_SWITCH, RESTRICT (docs/RISK.md, "Admin commands"): the risk tables change,
    # one RISK event; a kill switch then cancels what it covers
    cdef uint16_t reason
    cdef int32_t b
    cdef bint everyone = (c.flags & FLAG_ALL_ACCOUNTS) != 0
    if st.risk == NULL:
        reject(st, c, R_RISK_DISABLED)
        return 0
    if c.flags & ~MASS_CANCEL_FLAGS_KNOWN:
        reject(st, c, R_INVALID_INSTRUCTIONS)
        return 0
    b = map_get(&st.book_map, c.instrument)
    if b >= 0:
        b = st.books[b].ix               # the risk tables count instruments, not books
    if c.cmd == CMD_SET_RISK:
        reason = risk_set(st.risk, c.ord_type, c.account, c.instrument, b, c.qty, c.price,
                          c.ts_ns)
        if reason:
            reject(st, c, reason)
            return 0
        risk_event(st, c, c.ord_type)
    elif c.cmd == CMD_KILL_SWITCH:
        reason = risk_kill(st.risk, c.account, everyone, c.side)
        if reason:
            reject(st, c, reason)
            return 0
        risk_event(st, c, c.side)
        if c.side != KILL_ACTIVE:
            cancel_where(st, c, True, 0, 0, everyone, CAUSE_KILL_SWITCH)
    else:
        reason = risk_restrict(st.risk, c.account, everyone, b, c.side)
        if reason:
            reject(st, c, reason)
            return 0
        risk_event(st, c, c.side)
    return 0


# -- smart order routing (docs/ROUTING.md) -------------------------------------------------------

cdef inline bint better_price(uint8_t side, int64_t p1, int64_t fee1, int64_t p2,
                              int64_t fee2) noexcept nogil:
    # is p1 with taker fee fee1 a strictly better fee-adjusted price than p2 with fee2?
    if side == SIDE_BUY:
        return <i128>p1 * (1000000 + fee1) < <i128>p2 * (1000000 + fee2)
    return <i128>p1 * (1000000 - fee1) > <i128>p2 * (1000000 - fee2)


cdef inline int32_t cursor_level(State* st, const RouteBook* R, uint8_t side) noexcept nogil:
    # the level under a routing cursor on the side opposite `side`
    cdef BookSide* s = opp_side(&st.books[R.book], side)
    return st.blk[s.blocks[R.j]].levels[R.p]


cdef inline void cursor_next(State* st, RouteBook* R, uint8_t side) noexcept nogil:
    # the next level outward from the best; done past the last
    cdef BookSide* s = opp_side(&st.books[R.book], side)
    R.p -= 1
    if R.p < 0:
        R.j -= 1
        if R.j < 0:
            R.done = 1
        else:
            R.p = st.blk[s.blocks[R.j]].n - 1


cdef int route_plan(State* st, int32_t head, uint8_t side, bint unlimited, int64_t limit,
                    int64_t qty, int32_t* n_rb, int32_t* n_steps,
                    int64_t* left) noexcept nogil:
    # The plan of a sweep (docs/ROUTING.md, "What a valid ROUTE produces", 2) into st.rb and
    # st.steps. Reads the books, changes nothing; -1 if the scratch cannot grow.
    cdef int32_t b = head, i, best, nrb = 0, ns = 0, cap
    cdef RouteBook* R
    cdef Book* bk
    cdef BookSide* s
    cdef Level* lvl
    cdef void* p
    cdef int64_t rem = qty, q, price, best_price = 0, best_fee = 0
    while b >= 0:
        if nrb == st.rb_cap:
            cap = st.rb_cap * 2 + 8
            p = realloc(st.rb, <size_t>cap * sizeof(RouteBook))
            if p == NULL:
                return -1
            st.rb = <RouteBook*>p
            st.rb_cap = cap
        R = &st.rb[nrb]
        memset(R, 0, sizeof(RouteBook))
        R.book = b
        R.first = -1
        s = opp_side(&st.books[b], side)
        R.j = s.nb - 1
        if R.j >= 0:
            R.p = st.blk[s.blocks[R.j]].n - 1
        R.done = st.books[b].trading_state != TS_OPEN or R.j < 0
        nrb += 1
        b = st.books[b].route_next
    while rem > 0:
        best = -1
        for i in range(nrb):
            R = &st.rb[i]
            if R.done:
                continue
            bk = &st.books[R.book]
            if rem < bk.lot:
                R.done = 1
                continue
            price = st.levels[cursor_level(st, R, side)].price
            if not unlimited and not crosses(side, limit, price):
                R.done = 1
                continue
            if best < 0 or better_price(side, price, bk.taker_ppm, best_price, best_fee):
                best = i
                best_price = price
                best_fee = bk.taker_ppm
        if best < 0:
            break
        R = &st.rb[best]
        bk = &st.books[R.book]
        lvl = &st.levels[cursor_level(st, R, side)]
        q = rem - rem % bk.lot if bk.lot != 1 else rem
        if lvl.total < q:
            q = lvl.total
        if ns == st.steps_cap:
            cap = st.steps_cap * 2 + 64
            p = realloc(st.steps, <size_t>cap * sizeof(Step))
            if p == NULL:
                return -1
            st.steps = <Step*>p
            st.steps_cap = cap
        st.steps[ns].price = lvl.price
        st.steps[ns].qty = q
        st.steps[ns].rb = best
        if R.first < 0:
            R.first = ns
        ns += 1
        R.planned += q
        R.last_price = lvl.price
        rem -= q
        cursor_next(st, R, side)
    n_rb[0] = nrb
    n_steps[0] = ns
    left[0] = rem
    return 0


cdef inline void child_order(State* st, const Command* c, const RouteBook* R, Order* o,
                             uint8_t tif, int64_t price, int64_t qty) noexcept nogil:
    # a child's record as the router places it
    memset(o, 0, sizeof(Order))
    o.order_id = R.child_id
    o.price = price
    o.qty = qty
    o.book = R.book
    o.account = c.account
    o.instrument = c.instrument
    o.flags = FLAG_CHILD | (FLAG_POST_ONLY if tif == TIF_GTC else 0)
    o.side = c.side
    o.ord_type = ORD_LIMIT
    o.tif = tif


cdef int do_route(State* st, const Command* c) noexcept nogil:
    cdef int32_t b0, b, head, pb = -1, ps, ra = -1, i, nrb = 0, ns = 0, oi
    cdef Book* bk
    cdef Parent* P
    cdef RouteBook* R
    cdef RouteBook post_rb
    cdef Step* stp
    cdef Order tmp
    cdef Order* o
    cdef bint market, post, any_open = False
    cdef int64_t limit = 0, rem, odd, rest, best_fee = 0
    cdef uint16_t reason
    cdef Event* e
    # checks 1..18, in order
    if c.order_id <= 0:
        reject(st, c, R_INVALID_ORDER_ID)
        return 0
    if c.venue != 0 and map_get(&st.venue_map, c.venue) < 0:
        reject(st, c, R_UNKNOWN_VENUE)
        return 0
    b0 = map_get(&st.book_map, c.instrument)
    if b0 < 0:
        reject(st, c, R_UNKNOWN_INSTRUMENT)
        return 0
    head = st.books[b0].route_head
    if head < 0:
        reject(st, c, R_NO_ROUTABLE_VENUE)
        return 0
    if c.venue != 0:
        pb = map_get(&st.book_map, book_key(c.venue, c.instrument))
        if pb < 0:
            reject(st, c, R_VENUE_NOT_LISTED)
            return 0
    reason = order_shape_reason(c)
    if reason:
        reject(st, c, reason)
        return 0
    if c.flags & ~ROUTE_FLAGS_KNOWN:
        reject(st, c, R_INVALID_INSTRUCTIONS)
        return 0
    post = (c.flags & FLAG_POST_REMAINDER) != 0
    market = c.ord_type == ORD_MARKET
    if (post and (market or c.tif != TIF_GTC)) or (
            not post and (c.tif == TIF_GTC or c.venue != 0)):
        reject(st, c, R_INVALID_STRATEGY)
        return 0
    reason = qty_reason(c, &st.books[b0])
    if reason:
        reject(st, c, reason)
        return 0
    if not market and c.price <= 0:
        reject(st, c, R_INVALID_PRICE)
        return 0
    b = head
    while b >= 0:
        if st.books[b].trading_state == TS_OPEN:
            any_open = True
        b = st.books[b].route_next
    if not any_open or (pb >= 0 and st.books[pb].trading_state != TS_OPEN):
        reject(st, c, R_INSTRUMENT_HALTED)
        return 0
    if post:
        if pb >= 0:
            if c.price % st.books[pb].tick != 0:
                reject(st, c, R_OFF_VENUE_GRID)
                return 0
        else:
            # the open book with the lowest maker fee (then routing order) whose grid fits
            b = head
            while b >= 0:
                bk = &st.books[b]
                if bk.trading_state == TS_OPEN and c.price % bk.tick == 0 and (
                        pb < 0 or bk.maker_ppm < best_fee):
                    pb = b
                    best_fee = bk.maker_ppm
                b = bk.route_next
            if pb < 0:
                reject(st, c, R_OFF_VENUE_GRID)
                return 0
    if id_in_use(st, c.order_id):
        reject(st, c, R_DUPLICATE_ORDER_ID)
        return 0
    if st.risk != NULL:
        # the whole parent, once (docs/ROUTING.md, check 18)
        reason = new_risk_reason(st, c, st.books[b0].ix, market, post, &ra, &limit)
        if reason:
            reject(st, c, reason)
            return 0
    if not market:
        limit = c.price

    # the plan, and everything the command may allocate, before anything changes
    if route_plan(st, head, c.side, market and ra < 0, limit, c.qty, &nrb, &ns, &rem) != 0:
        return -1
    if st.parents_free == -1 and grow_parents(st) != 0:
        return -1
    if map_reserve_one(&st.parent_map) != 0:
        return -1
    if post and (reserve_for_rest(st, pb, c.side) != 0 or map_reserve_one(&st.child_map) != 0):
        return -1
    if ra >= 0:
        risk_accept(st.risk, ra, c.ts_ns)
        st.risk_ta = ra

    # 1. the parent
    ps = alloc_parent(st)
    P = &st.parents[ps]
    memset(P, 0, sizeof(Parent))
    P.order_id = c.order_id
    P.price = 0 if market else c.price
    P.qty = c.qty
    P.instrument = c.instrument
    P.account = c.account
    P.flags = FLAG_PARENT | c.flags
    P.venue = st.books[pb].venue if post else 0
    P.side = c.side
    P.ord_type = c.ord_type
    P.tif = c.tif
    P.status = ST_NEW
    P.child = -1
    map_put(&st.parent_map, c.order_id, ps)
    st.n_parents += 1
    e = parent_event(st, c, EV_ACCEPTED, P)
    if e != NULL:
        e.qty = c.qty

    # 3. FOK: all of it or nothing
    if c.tif == TIF_FOK and rem > 0:
        parent_cancel(st, c, ps, c.qty, CAUSE_FOK_UNFILLABLE)
        parent_done(st, c, ps)
        return 0

    # 4. the children, in the order the plan first uses their books
    for i in range(ns):
        R = &st.rb[st.steps[i].rb]
        if R.first == i:
            st.child_seq += 1
            R.child_id = -st.child_seq
            child_order(st, c, R, &tmp, TIF_IOC, R.last_price, R.planned)
            order_event(st, c, EV_ACCEPTED, &tmp, R.planned, R.planned, 0, c.order_id)

    # 5. the sweep, step by step
    for i in range(ns):
        stp = &st.steps[i]
        R = &st.rb[stp.rb]
        R.filled += stp.qty
        match(st, R.book, c, R.child_id, c.account, c.side, False, stp.price, stp.qty, ps,
              R.planned - R.filled)
        if R.filled == R.planned:
            child_order(st, c, R, &tmp, TIF_IOC, R.last_price, R.planned)
            tmp.filled = R.planned
            record(st, &tmp, ST_FILLED)

    # 6. what is left
    P = &st.parents[ps]
    if not post:
        if rem > 0:
            parent_cancel(st, c, ps, rem,
                          CAUSE_MARKET_REMAINDER if market else CAUSE_IOC_REMAINDER)
        parent_done(st, c, ps)
        return 0
    bk = &st.books[pb]
    odd = rem % bk.lot if bk.lot != 1 else 0
    if odd > 0:
        parent_cancel(st, c, ps, odd, CAUSE_ODD_LOT)
    rest = rem - odd
    if rest > 0 and level_would_overflow(st, pb, c.side, c.price, rest):
        parent_cancel(st, c, ps, rest, CAUSE_LEVEL_QUANTITY_LIMIT)
        rest = 0
    if rest == 0:
        parent_done(st, c, ps)
        return 0
    st.child_seq += 1
    memset(&post_rb, 0, sizeof(RouteBook))
    post_rb.book = pb
    post_rb.child_id = -st.child_seq
    oi = alloc_order(st)              # reserved above: cannot fail
    o = &st.orders[oi]
    child_order(st, c, &post_rb, o, TIF_GTC, c.price, rest)
    order_event(st, c, EV_ACCEPTED, o, rest, rest, 0, c.order_id)
    rest_order(st, pb, oi)            # reserved above: cannot fail
    map_put(&st.order_map, o.order_id, oi)
    map_put(&st.child_map, o.order_id, ps)
    st.n_live += 1
    P.child = oi
    P.child_id = o.order_id
    if ra >= 0:
        risk_rest(st.risk, ra, bk.ix, c.side, c.price, rest)
    return 0


cdef int process_one(State* st, const Command* c) noexcept nogil:
    if c.cmd == CMD_NEW:
        return do_new(st, c)
    if c.cmd == CMD_CANCEL:
        return do_cancel(st, c)
    if c.cmd == CMD_REPLACE:
        return do_replace(st, c)
    if c.cmd == CMD_MASS_CANCEL:
        return do_mass_cancel(st, c)
    if c.cmd == CMD_HALT:
        return do_trading_state(st, c, TS_HALTED)
    if c.cmd == CMD_RESUME:
        return do_trading_state(st, c, TS_OPEN)
    if c.cmd == CMD_SET_LIMITS:
        return do_set_limits(st, c)
    if c.cmd == CMD_SET_RISK or c.cmd == CMD_KILL_SWITCH or c.cmd == CMD_RESTRICT:
        return do_risk_admin(st, c)
    if c.cmd == CMD_ROUTE:
        return do_route(st, c)
    reject(st, c, R_UNKNOWN_COMMAND)
    return 0


# ---------------------------------------------------------------------------------------------
# State export and import: what a snapshot holds, and how a fresh core takes it back
# ---------------------------------------------------------------------------------------------

# What validate_orders found wrong (its return value); load_state turns it into a message.
cdef enum:
    LS_OK = 0
    LS_INSTRUMENT = 1
    LS_ORDER_ID = 2
    LS_DUPLICATE_ID = 3
    LS_SIDE = 4
    LS_ORD_TYPE = 5
    LS_TIF = 6
    LS_FLAGS = 7
    LS_PRICE = 8
    LS_QTY = 9
    LS_FILLED = 11
    LS_STATUS = 12
    LS_ORDERING = 13
    LS_CROSSED = 14
    LS_LEVEL_TOTAL = 15


cdef extern from *:
    # a hint only: start loading a cache line that will be needed soon
    void __builtin_prefetch(const void* addr) nogil

cdef enum:
    EXPORT_LANES = 32    # level queues export_orders walks side by side


cdef inline void export_order(const Order* o, Finished* f, uint16_t venue) noexcept nogil:
    f.order_id = o.order_id
    f.price = o.price
    f.qty = o.qty
    f.filled = o.filled
    f.instrument = o.instrument
    f.account = o.account
    f.flags = o.flags
    f.side = o.side
    f.ord_type = o.ord_type
    f.tif = o.tif
    f.status = ST_NEW if o.filled == 0 else ST_PARTIALLY_FILLED
    f.venue = venue


cdef Py_ssize_t export_orders(State* st, Finished* out) noexcept nogil:
    # Every resting order into `out` (room for n_live): books in registration order, bids
    # then asks, best level first, each level in queue order. Returns how many, or -1 if its
    # scratch cannot be allocated. O(orders).
    # A queue is a linked list through a pool far bigger than the cache: walked one at a time,
    # every order waits for memory. Each level's place in `out` follows from the level counts,
    # so EXPORT_LANES queues are walked side by side and their loads overlap.
    cdef Py_ssize_t n = 0, nl = 0, k = 0, nxt = 0
    cdef int32_t b, j, p, oi, lane, active = 0
    cdef uint8_t side
    cdef BookSide* s
    cdef Block* blk
    cdef Level* lvl
    cdef Order* o
    cdef int32_t* heads
    cdef Py_ssize_t* starts
    cdef int32_t cur[EXPORT_LANES]
    cdef Py_ssize_t pos[EXPORT_LANES]
    for b in range(st.n_books):
        nl += st.books[b].bids.n + st.books[b].asks.n
    heads = <int32_t*>malloc(<size_t>(nl + 1) * sizeof(int32_t))
    starts = <Py_ssize_t*>malloc(<size_t>(nl + 1) * sizeof(Py_ssize_t))
    if heads == NULL or starts == NULL:
        free(heads)
        free(starts)
        return -1
    # the levels in export order, with where each one's orders go
    for b in range(st.n_books):
        for side in range(SIDE_BUY, SIDE_SELL + 1):
            s = own_side(&st.books[b], side)
            j = s.nb - 1
            while j >= 0:
                blk = &st.blk[s.blocks[j]]
                p = blk.n - 1
                while p >= 0:
                    lvl = &st.levels[blk.levels[p]]
                    heads[k] = lvl.head
                    starts[k] = n
                    n += lvl.count
                    k += 1
                    p -= 1
                j -= 1
    for lane in range(EXPORT_LANES):
        cur[lane] = -1
        if nxt < nl:
            __builtin_prefetch(&st.orders[heads[nxt]])
            cur[lane] = heads[nxt]
            pos[lane] = starts[nxt]
            nxt += 1
            active += 1
    while active:
        for lane in range(EXPORT_LANES):
            oi = cur[lane]
            if oi == -1:
                continue
            o = &st.orders[oi]
            export_order(o, &out[pos[lane]], st.books[o.book].venue)
            pos[lane] += 1
            oi = o.next
            if oi == -1:
                if nxt < nl:
                    oi = heads[nxt]
                    pos[lane] = starts[nxt]
                    nxt += 1
                else:
                    active -= 1
            if oi != -1:
                __builtin_prefetch(&st.orders[oi])
            cur[lane] = oi
    free(heads)
    free(starts)
    return n


cdef int validate_orders(const Finished* o, Py_ssize_t n, const IdMap* books, IdMap* ids,
                         int64_t* side_levels, Py_ssize_t* bad, Py_ssize_t* other) noexcept nogil:
    # Check the orders of a state as export_orders writes them: fields a resting order can
    # have (any qty > 0, whatever the instrument's bounds now: SET_LIMITS leaves resting orders
    # as they are), ids unique, books grouped in `books` order (instrument -> book index), bids
    # best first then asks best first, nothing crossed, no level's open total past int64. Fills
    # `ids` (order id -> index; sized by the caller for n keys) and `side_levels` (levels per
    # book side: [2b] bids, [2b+1] asks; zeroed by the caller). Returns LS_OK or what is wrong,
    # with the order's index in `bad` (and the first holder of a repeated id in `other`). O(n).
    cdef Py_ssize_t i
    cdef const Finished* f
    cdef int32_t b, prev_b = -1, seen
    cdef uint8_t prev_side = 0
    cdef int64_t prev_price = 0, total = 0, open_qty, best_bid = 0
    cdef bint new_level
    for i in range(n):
        bad[0] = i
        f = &o[i]
        b = map_get(books, book_key(f.venue, f.instrument))
        if b < 0:
            return LS_INSTRUMENT
        # a router's child has a negative id (docs/ROUTING.md), every other order a positive one
        if f.order_id == 0 or (f.order_id < 0) != ((f.flags & FLAG_CHILD) != 0):
            return LS_ORDER_ID
        if f.side != SIDE_BUY and f.side != SIDE_SELL:
            return LS_SIDE
        # only a GTC limit ever rests, and a POST_ONLY one may
        if f.ord_type != ORD_LIMIT:
            return LS_ORD_TYPE
        if f.tif != TIF_GTC:
            return LS_TIF
        if f.flags & ~(FLAGS_KNOWN | FLAG_CHILD):
            return LS_FLAGS
        if f.price <= 0:
            return LS_PRICE
        if f.qty <= 0:
            return LS_QTY
        if f.filled < 0 or f.filled >= f.qty:
            return LS_FILLED
        if f.status != (ST_NEW if f.filled == 0 else ST_PARTIALLY_FILLED):
            return LS_STATUS
        open_qty = f.qty - f.filled
        if b == prev_b and f.side == prev_side:
            # same side of the same book: the same level, or the next one away from the best
            if (f.side == SIDE_BUY and f.price > prev_price) or \
                    (f.side == SIDE_SELL and f.price < prev_price):
                return LS_ORDERING
            new_level = f.price != prev_price
        else:
            # a new side: after the previous one (books in order, bids before asks)
            if b < prev_b or (b == prev_b and f.side < prev_side):
                return LS_ORDERING
            if f.side == SIDE_BUY:
                best_bid = f.price
            elif b == prev_b and f.price <= best_bid:
                # the book's best ask is at or below its best bid
                return LS_CROSSED
            new_level = True
        if new_level:
            side_levels[2 * b + f.side - SIDE_BUY] += 1
            total = 0
        if total > I64_MAX - open_qty:
            return LS_LEVEL_TOTAL
        total += open_qty
        prev_b = b
        prev_side = f.side
        prev_price = f.price
        seen = map_get(ids, f.order_id)
        if seen >= 0:
            other[0] = seen
            return LS_DUPLICATE_ID
        map_put(ids, f.order_id, <int32_t>i)
    return LS_OK


cdef void load_orders(State* st, const Finished* o, Py_ssize_t n) noexcept nogil:
    # Rest validated orders (as validate_orders accepted them) into a fresh core whose books
    # exist and whose pools, index and block directories the caller has reserved, so nothing
    # here allocates or fails. Order i takes pool slot i (the index maps ids to exactly that).
    cdef Py_ssize_t i, start, end, hi, run
    cdef int32_t k
    cdef int32_t b
    cdef Order* d
    for i in range(n):
        d = &st.orders[i]
        memset(d, 0, sizeof(Order))
        d.order_id = o[i].order_id
        d.price = o[i].price
        d.qty = o[i].qty
        d.filled = o[i].filled
        d.account = o[i].account
        d.instrument = o[i].instrument
        d.flags = o[i].flags
        d.side = o[i].side
        d.ord_type = o[i].ord_type
        d.tif = o[i].tif
    # the free list is every slot after them (a fresh core has no order allocated)
    for k in range(<int32_t>n, st.orders_cap):
        st.orders[k].next = k + 1 if k < st.orders_cap - 1 else -1
    st.orders_free = <int32_t>n if n < st.orders_cap else -1
    # One book side at a time, its levels worst first, each level's orders in queue order:
    # every new level then lands after all others (an append to the last block, as when a
    # book builds up from the top) where best first would insert at the front of the first.
    start = 0
    while start < n:
        end = start + 1
        while end < n and o[end].instrument == o[start].instrument and \
                o[end].venue == o[start].venue and o[end].side == o[start].side:
            end += 1
        b = map_get(&st.book_map, book_key(o[start].venue, o[start].instrument))
        hi = end
        while hi > start:
            run = hi - 1
            while run > start and o[run - 1].price == o[hi - 1].price:
                run -= 1
            side_reserve_one(st, own_side(&st.books[b], o[run].side))   # reserved: no-op
            for i in range(run, hi):
                rest_order(st, b, <int32_t>i)
            hi = run
        start = end
    st.n_live = <int32_t>n


# ---------------------------------------------------------------------------------------------
# The Python face
# ---------------------------------------------------------------------------------------------

cdef inline void _check(int rc, State* st) except *:
    if rc != 0 or st.oom:
        st.oom = 0
        raise MemoryError("the engine could not allocate memory for this command")


_STATE_KEYS = ("instruments", "orders", "history", "history_total")
_OPTIONAL_STATE_KEYS = ("risk", "parents", "children")   # risk absent or None: risk off


def _state_array(state, str key, dtype):
    # one array of a state: exactly the snapshot dtype, one-dimensional, contiguous for C
    arr = state[key]
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
        raise TypeError(f"state[{key!r}] must be a numpy array of "
                        f"{'INSTRUMENT' if key == 'instruments' else 'ORDER'}_STATE_DTYPE, got "
                        f"{getattr(arr, 'dtype', type(arr).__name__)}")
    if arr.ndim != 1:
        raise TypeError(f"state[{key!r}] must be one-dimensional, got {arr.ndim} dimensions")
    return np.ascontiguousarray(arr)


def _order_problem(int err, orders, Py_ssize_t i, Py_ssize_t other):
    # the message for what validate_orders found wrong with orders[i]
    o = orders[i]
    what = {
        LS_INSTRUMENT: f"instrument {o['instrument']} is not among the state's instruments",
        LS_ORDER_ID: f"order_id must be > 0",
        LS_DUPLICATE_ID: f"the id of orders[{other}] again (order ids are unique)",
        LS_SIDE: f"side must be 1 (buy) or 2 (sell), got {o['side']}",
        LS_ORD_TYPE: f"ord_type must be 1 (LIMIT), the only type that rests, got {o['ord_type']}",
        LS_TIF: f"tif must be 1 (GTC), the only time in force that rests, got {o['tif']}",
        LS_FLAGS: f"flags {o['flags']} has unknown bits",
        LS_PRICE: f"price must be > 0 (a resting limit), got {o['price']}",
        LS_QTY: f"qty must be > 0, got {o['qty']}",
        LS_FILLED: f"filled must be in 0..qty-1 (a resting order has open quantity), "
                   f"got {o['filled']} of {o['qty']}",
        LS_STATUS: f"status must be 1 (NEW) with nothing filled, else 2 (PARTIALLY_FILLED), "
                   f"got {o['status']}",
        LS_ORDERING: "out of order: books must follow the instruments' order, each with its "
                     "bids best (highest) first, then its asks best (lowest) first",
        LS_CROSSED: f"its book is crossed: the best ask {o['price']} is at or below the best bid",
        LS_LEVEL_TOTAL: f"the open total of its level {o['price']} would pass 2**63-1",
    }[err]
    return f"orders[{i}] (order id {o['order_id']}): {what}"


def _check_parents(parents, children, orders):
    """The live parents of a state against its orders (docs/ROUTING.md, "Lifecycle"):
    ValueError naming the first parent that is wrong."""
    if children < 0:
        raise ValueError(f"children must be >= 0, got {children}")
    child_rows = np.flatnonzero(orders["flags"] & FLAG_CHILD)
    if child_rows.size and int(-orders["order_id"][child_rows].min()) > children:
        raise ValueError(f"children ({children}) is below a child's id")
    by_id = {int(orders["order_id"][i]): int(i) for i in child_rows}
    ids = set()
    positive = set(orders["order_id"][orders["order_id"] > 0].tolist())
    for i, p in enumerate(parents):
        what = f"parents[{i}] (order id {int(p['order_id'])})"
        pid = int(p["order_id"])
        if pid <= 0 or pid in ids or pid in positive:
            raise ValueError(f"{what}: the id must be > 0 and unique among orders and parents")
        ids.add(pid)
        if int(p["flags"]) != FLAG_PARENT | FLAG_POST_REMAINDER or p["ord_type"] != ORD_LIMIT \
                or p["tif"] != TIF_GTC or p["side"] not in (SIDE_BUY, SIDE_SELL) \
                or p["price"] <= 0:
            raise ValueError(f"{what}: a live parent is a sweep_post LIMIT GTC buy or sell")
        qty, filled, cancelled = int(p["qty"]), int(p["filled"]), int(p["cancelled"])
        if not (qty > 0 and filled >= 0 and cancelled >= 0 and filled + cancelled < qty):
            raise ValueError(f"{what}: needs qty > filled + cancelled >= 0")
        if p["status"] != (ST_NEW if filled == 0 else ST_PARTIALLY_FILLED) or p["value"] < 0:
            raise ValueError(f"{what}: status or value does not match its fills")
        j = by_id.pop(int(p["child_id"]), None)
        if j is None:
            raise ValueError(f"{what}: its child {int(p['child_id'])} is not a resting child "
                             "order of the state (or has another parent)")
        o = orders[j]
        if (int(o["account"]), int(o["instrument"]), int(o["side"]), int(o["price"]),
                int(o["venue"]), int(o["flags"])) != (
                int(p["account"]), int(p["instrument"]), int(p["side"]), int(p["price"]),
                int(p["venue"]), FLAG_CHILD | FLAG_POST_ONLY) or \
                int(o["qty"]) - int(o["filled"]) != qty - filled - cancelled:
            raise ValueError(f"{what}: its child order {int(o['order_id'])} does not match it")
    if by_id:
        raise ValueError(f"child order {next(iter(by_id))} has no parent in the state")


cdef class Core:
    """One engine: many instruments, one price-time (FIFO) book each, int64 ticks and lots.

    Every mutating call appends events to an internal buffer (read them with
    ``drain_events()``); ``process()`` runs a whole numpy array of commands without the GIL.

    >>> core = Core()
    >>> core.add_instrument(1)
    >>> core.submit(10, 1, 2, 101, 5)   # sell 5 @ 101 rests: 1 event (ACCEPTED)
    1
    >>> core.submit(11, 1, 1, 101, 2)   # buy 2 @ 101: ACCEPTED + TRADE
    2
    """

    cdef State st
    cdef readonly int history
    cdef int busy        # set while process() runs without the GIL

    cdef inline int _enter(self) except -1:
        # process() releases the GIL: another thread must not touch the state meanwhile
        if self.busy:
            raise RuntimeError("this Core is running process() in another thread")
        return 0

    def __cinit__(self, int history=65536, int initial_orders=1024):
        memset(&self.st, 0, sizeof(State))
        self.st.orders_free = -1
        self.st.levels_free = -1
        self.st.blk_free = -1
        if history < 0:
            raise ValueError("history must be >= 0")
        if initial_orders < 1:
            raise ValueError("initial_orders must be >= 1")
        self.history = history
        if map_init(&self.st.order_map, <size_t>initial_orders * 2) != 0 or \
                map_init(&self.st.book_map, 16) != 0 or map_init(&self.st.venue_map, 16) != 0 \
                or map_init(&self.st.parent_map, 16) != 0 or \
                map_init(&self.st.child_map, 16) != 0:
            raise MemoryError()
        self.st.parents_free = -1
        while self.st.orders_cap < initial_orders:
            if grow_orders(&self.st) != 0:
                raise MemoryError()
        if grow_levels(&self.st) != 0:
            raise MemoryError()
        if history > 0:
            # zeroed: record() never writes the pad bytes, and export_state copies them out
            self.st.hist = <Finished*>calloc(<size_t>history, sizeof(Finished))
            if self.st.hist == NULL:
                raise MemoryError()
            self.st.hist_cap = history

    def __dealloc__(self):
        cdef int32_t i
        for i in range(self.st.n_books):
            free(self.st.books[i].bids.bmax)
            free(self.st.books[i].bids.blocks)
            free(self.st.books[i].asks.bmax)
            free(self.st.books[i].asks.blocks)
        free(self.st.books)
        free(self.st.orders)
        free(self.st.levels)
        free(self.st.blk)
        free(self.st.ev)
        free(self.st.hist)
        map_free(&self.st.order_map)
        map_free(&self.st.book_map)
        map_free(&self.st.venue_map)
        map_free(&self.st.parent_map)
        map_free(&self.st.child_map)
        free(self.st.venues)
        free(self.st.parents)
        free(self.st.rb)
        free(self.st.steps)
        risk_free(self.st.risk)

    def add_venue(self, venue, maker_fee=0, taker_fee=0, priority=0):
        """Register a venue (an id in 1..65535): its maker and taker fees in millionths of the
        notional (-10**6..10**6; negative: a rebate) and its routing priority (lower first;
        ties by id). docs/ROUTING.md, "Venues and books"."""
        self._enter()
        cdef Venue* p
        cdef Venue* v
        if not 1 <= venue <= 0xFFFF:
            raise ValueError(f"venue id {venue!r} is outside 1..65535")
        for name, fee in (("maker_fee", maker_fee), ("taker_fee", taker_fee)):
            if not -MAX_FEE <= fee <= MAX_FEE:
                raise ValueError(f"{name} {fee!r} is outside -{MAX_FEE}..{MAX_FEE}")
        if not -0x80000000 <= priority <= 0x7FFFFFFF:
            raise ValueError(f"priority {priority!r} is outside the int32 range")
        if map_get(&self.st.venue_map, venue) >= 0:
            raise ValueError(f"venue {venue} is already registered")
        if map_reserve_one(&self.st.venue_map) != 0:
            raise MemoryError()
        p = <Venue*>realloc(self.st.venues, <size_t>(self.st.n_venues + 1) * sizeof(Venue))
        if p == NULL:
            raise MemoryError()
        self.st.venues = p
        v = &p[self.st.n_venues]
        memset(v, 0, sizeof(Venue))
        v.venue = venue
        v.maker_ppm = maker_fee
        v.taker_ppm = taker_fee
        v.priority = priority
        map_put(&self.st.venue_map, venue, self.st.n_venues)
        self.st.n_venues += 1

    def venues(self):
        """``[(venue, maker_fee, taker_fee, priority), ...]``, ascending ids."""
        return sorted((self.st.venues[i].venue, self.st.venues[i].maker_ppm,
                       self.st.venues[i].taker_ppm, self.st.venues[i].priority)
                      for i in range(self.st.n_venues))

    def add_instrument(self, instrument_id, min_qty=1, max_qty=INT64_MAX, venue=0, tick=1,
                       lot=1, k=1):
        """Register a book: an instrument (an id in 0..2**32-1) on a venue (0: the default
        venue, an engine without venues), with its quantity bounds in lots, the venue's tick
        and lot (multiples of the instrument's) and ``k``, the instrument's cash units per
        tick x lot (for fees with risk off). The first book of an instrument is its primary.
        docs/ROUTING.md, "Venues and books"."""
        self._enter()
        cdef Book* p
        cdef Book* bk
        cdef Venue* v = NULL
        cdef int32_t b0, b, prev, nb = self.st.n_books, vi
        if not 0 <= instrument_id <= 0xFFFFFFFF:
            raise ValueError(f"instrument id {instrument_id!r} is outside 0..2**32-1")
        if min_qty < 1:
            raise ValueError(f"min_qty must be >= 1, got {min_qty!r}")
        if max_qty < min_qty or max_qty > INT64_MAX:
            raise ValueError(f"max_qty must be in min_qty..2**63-1, got {max_qty!r}")
        for name, value in (("tick", tick), ("lot", lot), ("k", k)):
            if not 1 <= value <= INT64_MAX:
                raise ValueError(f"{name} must be in 1..2**63-1, got {value!r}")
        if not 0 <= venue <= 0xFFFF:
            raise ValueError(f"venue id {venue!r} is outside 0..65535")
        if self.st.risk != NULL:
            raise ValueError("instruments are registered before enable_risk(): the risk tables"
                             " list the core's instruments")
        if venue != 0:
            vi = map_get(&self.st.venue_map, venue)
            if vi < 0:
                raise ValueError(f"venue {venue} is not registered (add_venue)")
            v = &self.st.venues[vi]
        b0 = map_get(&self.st.book_map, instrument_id)
        if b0 >= 0:
            if self.st.books[b0].venue == 0 or venue == 0:
                raise ValueError(f"instrument {instrument_id} is already registered" + (
                    "" if self.st.books[b0].venue == venue else
                    ": an instrument has one default-venue book or books on venues, not both"))
            if map_get(&self.st.book_map, book_key(venue, instrument_id)) >= 0:
                raise ValueError(f"instrument {instrument_id} is already listed on venue {venue}")
            if self.st.books[b0].k != k:
                raise ValueError(f"instrument {instrument_id}: k {k} differs from its first"
                                 f" registration's {self.st.books[b0].k}")
        if self.st.n_books == self.st.books_cap:
            p = <Book*>realloc(self.st.books, <size_t>(self.st.books_cap * 2 + 4) * sizeof(Book))
            if p == NULL:
                raise MemoryError()
            self.st.books = p
            self.st.books_cap = self.st.books_cap * 2 + 4
        if map_reserve_one(&self.st.book_map) != 0 or map_reserve_one(&self.st.book_map) != 0:
            raise MemoryError()
        bk = &self.st.books[nb]
        memset(bk, 0, sizeof(Book))
        bk.instrument = instrument_id
        bk.venue = venue
        bk.trading_state = TS_OPEN
        bk.min_qty = min_qty
        bk.max_qty = max_qty
        bk.tick = tick
        bk.lot = lot
        bk.k = k
        bk.route_head = -1
        bk.route_next = -1
        if v != NULL:
            bk.maker_ppm = v.maker_ppm
            bk.taker_ppm = v.taker_ppm
            bk.priority = v.priority
        if b0 < 0:
            bk.ix = self.st.n_inst
            self.st.n_inst += 1
            map_put(&self.st.book_map, instrument_id, nb)   # the primary book
        else:
            bk.ix = self.st.books[b0].ix
        if venue != 0:
            map_put(&self.st.book_map, book_key(venue, instrument_id), nb)
            # into the instrument's routing list: priority, then venue id
            head = self.st.books[b0].route_head if b0 >= 0 else -1
            prev = -1
            b = head
            while b >= 0 and (self.st.books[b].priority, self.st.books[b].venue) < (
                    bk.priority, bk.venue):
                prev = b
                b = self.st.books[b].route_next
            bk.route_next = b
            if prev < 0:
                head = nb
            else:
                self.st.books[prev].route_next = nb
            for b in range(nb + 1):
                if self.st.books[b].instrument == instrument_id:
                    self.st.books[b].route_head = head
        self.st.n_books += 1

    def instruments(self):
        """The registered instrument ids, ascending."""
        return sorted({self.st.books[i].instrument for i in range(self.st.n_books)})

    def books(self):
        """``[(venue, instrument, tick, lot), ...]``: every book, in registration order."""
        return [(self.st.books[i].venue, self.st.books[i].instrument, self.st.books[i].tick,
                 self.st.books[i].lot) for i in range(self.st.n_books)]

    # -- COMMANDS (per-call API) --------------------------------------------------------------

    def submit(self, int64_t order_id, uint32_t instrument, uint8_t side, int64_t price,
               int64_t qty, uint32_t account=0, uint8_t ord_type=ORD_LIMIT,
               uint8_t tif=TIF_GTC, uint16_t flags=0, int64_t seq=0, int64_t ts_ns=0,
               uint16_t venue=0):
        """New order (on ``venue``'s book; 0: the instrument's primary). Returns the number of
        events appended. Runtime: O(log levels + fills)."""
        cdef Command c
        cdef size_t before = self.st.n_ev
        c.seq = seq
        c.ts_ns = ts_ns
        c.order_id = order_id
        c.price = price
        c.qty = qty
        c.instrument = instrument
        c.account = account
        c.cmd = CMD_NEW
        c.side = side
        c.ord_type = ord_type
        c.tif = tif
        c.flags = flags
        c.venue = venue
        self._enter()
        _check(process_one(&self.st, &c), &self.st)
        return self.st.n_ev - before

    def route(self, int64_t order_id, uint32_t instrument, uint8_t side, int64_t price,
              int64_t qty, uint32_t account=0, uint8_t ord_type=ORD_LIMIT, tif=None,
              strategy=1, uint16_t venue=0, int64_t seq=0, int64_t ts_ns=0):
        """ROUTE: a parent order swept across the venues listing the instrument
        (docs/ROUTING.md). ``strategy`` 1 = sweep, 2 = sweep_post (``Strategy``); ``tif``
        None: IOC for sweep, GTC for sweep_post; ``venue``: sweep_post's post venue (0: the
        best maker fee). Returns the number of events appended."""
        cdef Command c
        cdef size_t before = self.st.n_ev
        if strategy not in (1, 2):
            raise ValueError(f"strategy must be 1 (sweep) or 2 (sweep_post), got {strategy!r}")
        memset(&c, 0, sizeof(Command))
        c.seq = seq
        c.ts_ns = ts_ns
        c.order_id = order_id
        c.price = price
        c.qty = qty
        c.instrument = instrument
        c.account = account
        c.cmd = CMD_ROUTE
        c.side = side
        c.ord_type = ord_type
        c.tif = (TIF_IOC if strategy == 1 else TIF_GTC) if tif is None else tif
        c.flags = FLAG_POST_REMAINDER if strategy == 2 else 0
        c.venue = venue
        self._enter()
        _check(process_one(&self.st, &c), &self.st)
        return self.st.n_ev - before

    def cancel(self, int64_t order_id, uint32_t account=0, int64_t seq=0, int64_t ts_ns=0):
        """Cancel a live order of this account. Returns the number of events appended. O(1)."""
        return self._command(CMD_CANCEL, order_id, 0, account, 0, 0, 0, 0, seq, ts_ns)

    def replace(self, int64_t order_id, int64_t price, int64_t qty, uint32_t account=0,
                int64_t seq=0, int64_t ts_ns=0):
        """Change price and/or total quantity of a live order. Returns the number of events."""
        return self._command(CMD_REPLACE, order_id, 0, account, 0, 0, price, qty, seq, ts_ns)

    cdef int _command(self, uint8_t cmd, int64_t order_id, uint32_t instrument,
                      uint32_t account, uint8_t side, uint16_t flags, int64_t price, int64_t qty,
                      int64_t seq, int64_t ts_ns, uint8_t ord_type=0,
                      uint16_t venue=0) except -1:
        """One command through the shared path: cancel, replace and the admin commands."""
        cdef Command c
        cdef size_t before = self.st.n_ev
        memset(&c, 0, sizeof(Command))
        c.seq = seq
        c.ts_ns = ts_ns
        c.order_id = order_id
        c.price = price
        c.qty = qty
        c.instrument = instrument
        c.account = account
        c.cmd = cmd
        c.side = side
        c.flags = flags
        c.ord_type = ord_type
        c.venue = venue
        self._enter()
        _check(process_one(&self.st, &c), &self.st)
        return <int>(self.st.n_ev - before)

    # -- ADMIN COMMANDS (per-call API; docs/RULES.md, "Admin commands") -----------------------

    def mass_cancel(self, uint32_t account=0, uint32_t instrument=0, uint8_t side=0,
                    bint all_accounts=False, int64_t order_id=0, int64_t seq=0,
                    int64_t ts_ns=0, uint16_t venue=0):
        """Cancel every resting order of ``account`` (of every account with ``all_accounts``)
        on ``instrument`` (0: every instrument), ``venue`` (0: every venue) and ``side`` (0:
        both). Returns the number of events appended. O(resting orders of the books scanned)."""
        return self._command(CMD_MASS_CANCEL, order_id, instrument, account, side,
                             FLAG_ALL_ACCOUNTS if all_accounts else 0, 0, 0, seq, ts_ns, 0,
                             venue)

    def halt(self, uint32_t instrument, uint32_t account=0, int64_t seq=0, int64_t ts_ns=0,
             uint16_t venue=0):
        """Halt an instrument on ``venue`` (0: every venue): NEW and REPLACE are rejected until
        ``resume``. Returns the number of events appended (one INSTRUMENT_STATE per book, or
        one REJECTED)."""
        return self._command(CMD_HALT, 0, instrument, account, 0, 0, 0, 0, seq, ts_ns, 0, venue)

    def resume(self, uint32_t instrument, uint32_t account=0, int64_t seq=0, int64_t ts_ns=0,
               uint16_t venue=0):
        """Open a halted instrument again (on ``venue``, 0: every venue). Returns the number
        of events appended."""
        return self._command(CMD_RESUME, 0, instrument, account, 0, 0, 0, 0, seq, ts_ns, 0,
                             venue)

    def set_limits(self, uint32_t instrument, int64_t min_qty, int64_t max_qty,
                   uint32_t account=0, int64_t seq=0, int64_t ts_ns=0, uint16_t venue=0):
        """New quantity bounds (lots) for NEW and REPLACE on an instrument (on ``venue``, 0:
        every venue); resting orders are not touched. Returns the number of events appended."""
        return self._command(CMD_SET_LIMITS, 0, instrument, account, 0, 0, min_qty, max_qty,
                             seq, ts_ns, 0, venue)

    # -- RISK (docs/RISK.md) -------------------------------------------------------------------

    def enable_risk(self, tables):
        """Turn pre-trade risk on with these tables (a dict of the RISK_TABLES arrays; the
        engine builds them from the config with ``engine.risk.setup.build_tables``). Call it
        once, after the instruments are registered and before any order. TypeError or
        ValueError (nothing changes) if the tables are not consistent."""
        self._enter()
        cdef Risk* r
        if self.st.risk != NULL:
            raise ValueError("risk is already enabled on this core")
        if self.st.n_live or self.st.n_ev or self.st.hist_n:
            raise ValueError("enable_risk() needs a core without orders, pending events or"
                             " history")
        # the tables count instruments (Book.ix order), not books
        ids = list(dict.fromkeys(self.st.books[b].instrument for b in range(self.st.n_books)))
        checked = check_tables(tables, ids, fresh=True)
        self.st.risk = risk_from_tables(checked)

    @property
    def risk_enabled(self):
        return self.st.risk != NULL

    def risk_state(self):
        """The risk tables now (copies), or None with risk off. O(accounts x instruments)."""
        self._enter()
        return None if self.st.risk == NULL else risk_to_tables(self.st.risk)

    def set_risk(self, uint8_t kind, int64_t value, uint32_t account=0, uint32_t instrument=0,
                 int64_t aux=0, int64_t seq=0, int64_t ts_ns=0):
        """SET_RISK: set one risk value (``kind`` a RiskKind; ``aux`` the RATE burst).
        Returns the number of events appended (one RISK, or one REJECTED)."""
        return self._command(CMD_SET_RISK, 0, instrument, account, 0, 0, aux, value, seq, ts_ns,
                             kind)

    def kill_switch(self, uint8_t mode, uint32_t account=0, bint all_accounts=False,
                    int64_t seq=0, int64_t ts_ns=0):
        """KILL_SWITCH: the account's (or with ``all_accounts`` the global) switch to ``mode``
        (a KillSwitch); REDUCE_ONLY and KILLED cancel the resting orders it covers. Returns
        the number of events appended."""
        return self._command(CMD_KILL_SWITCH, 0, 0, account, mode,
                             FLAG_ALL_ACCOUNTS if all_accounts else 0, 0, 0, seq, ts_ns)

    def restrict(self, uint32_t instrument, bint restricted=True, uint32_t account=0,
                 bint all_accounts=False, int64_t seq=0, int64_t ts_ns=0):
        """RESTRICT: put the instrument on (or take it off) the account's restricted list, or
        the global one with ``all_accounts``. Returns the number of events appended."""
        return self._command(CMD_RESTRICT, 0, instrument, account, 1 if restricted else 0,
                             FLAG_ALL_ACCOUNTS if all_accounts else 0, 0, 0, seq, ts_ns)

    # -- BATCH API ----------------------------------------------------------------------------

    def process(self, commands):
        """Run an array of COMMAND_DTYPE through the core (without the GIL).

        Returns exactly the events of these commands as an EVENT_DTYPE array; events pending
        from earlier per-call commands stay pending.
        """
        cdef cnp.ndarray arr
        cdef const Command* cmds
        cdef Py_ssize_t i, n
        cdef size_t before = self.st.n_ev
        cdef int rc = 0
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise TypeError("process() takes a numpy array of engine.COMMAND_DTYPE")
        if commands.ndim != 1:
            raise ValueError("process() takes a one-dimensional array")
        arr = np.ascontiguousarray(commands)
        cmds = <const Command*>cnp.PyArray_DATA(arr)
        n = arr.shape[0]
        self._enter()
        self.busy = 1
        try:
            with nogil:
                for i in range(n):
                    rc = process_one(&self.st, &cmds[i])
                    if rc != 0 or self.st.oom:
                        break
        finally:
            self.busy = 0
        out = self._events_since(before)
        self.st.n_ev = before
        _check(rc, &self.st)
        return out

    # -- EVENTS -------------------------------------------------------------------------------

    cdef object _events_since(self, size_t start):
        cdef size_t n = self.st.n_ev - start
        cdef cnp.ndarray out = np.empty(n, dtype=EVENT_DTYPE)
        if n:
            memcpy(cnp.PyArray_DATA(out), &self.st.ev[start], n * sizeof(Event))
        return out

    def drain_events(self):
        """All pending events as an EVENT_DTYPE array; the buffer is emptied."""
        self._enter()
        out = self._events_since(0)
        self.st.n_ev = 0
        if self.st.ev_cap > (1 << 20):
            # a huge burst is not kept around for ever
            free(self.st.ev)
            self.st.ev = NULL
            self.st.ev_cap = 0
        return out

    @property
    def pending_events(self):
        return self.st.n_ev

    # -- QUERIES ------------------------------------------------------------------------------

    cdef int32_t _book_index(self, instrument, venue) except -2:
        # the book of (venue, instrument), 0 = the primary; -1 if none
        self._enter()
        if not (0 <= instrument <= 0xFFFFFFFF and 0 <= venue <= 0xFFFF):
            return -1
        return map_get(&self.st.book_map, book_key(venue, instrument))

    cdef Book* _book(self, instrument, venue=0) except NULL:
        cdef int32_t b = self._book_index(instrument, venue)
        if b < 0:
            raise KeyError(f"unknown instrument {instrument!r}" if venue == 0 else
                           f"no book for instrument {instrument!r} on venue {venue!r}")
        return &self.st.books[b]

    cdef list _instrument_books(self, instrument):
        # the books of an instrument: the default venue's, else in routing order
        cdef int32_t b = self._book_index(instrument, 0)
        if b < 0:
            raise KeyError(f"unknown instrument {instrument!r}")
        if self.st.books[b].route_head < 0:
            return [b]
        out = []
        b = self.st.books[b].route_head
        while b >= 0:
            out.append(b)
            b = self.st.books[b].route_next
        return out

    cdef object _best(self, BookSide* s):
        cdef int32_t li = side_best(&self.st, s)
        if li < 0:
            return None
        return (self.st.levels[li].price, self.st.levels[li].total)

    cdef list _level_ids(self, const BookSide* s, Py_ssize_t limit=-1):
        # level indices of one side, best first (all of them when limit < 0)
        cdef list out = []
        cdef int32_t j = s.nb - 1, p
        cdef Block* blk
        while j >= 0 and limit != 0:
            blk = &self.st.blk[s.blocks[j]]
            p = blk.n - 1
            while p >= 0 and limit != 0:
                out.append(blk.levels[p])
                limit -= 1
                p -= 1
            j -= 1
        return out

    def best_bid(self, instrument, venue=0):
        """(price, open qty) of the best bid (of ``venue``'s book; 0: the primary), or None."""
        return self._best(&self._book(instrument, venue).bids)

    def best_ask(self, instrument, venue=0):
        """(price, open qty) of the best ask (of ``venue``'s book; 0: the primary), or None."""
        return self._best(&self._book(instrument, venue).asks)

    def consolidated_bbo(self, instrument):
        """``{"bid": b, "ask": a}`` over every book of the instrument: each None or
        ``(price, ((venue, open qty), ...))``, the books at the best price in routing order."""
        out = {}
        for name, side in (("bid", SIDE_BUY), ("ask", SIDE_SELL)):
            best = None
            at = []
            for b in self._instrument_books(instrument):
                top = self._best(own_side(&self.st.books[<int32_t>b], side))
                if top is None:
                    continue
                if best is None or (top[0] > best if side == SIDE_BUY else top[0] < best):
                    best = top[0]
                    at = []
                if top[0] == best:
                    at.append((self.st.books[<int32_t>b].venue, top[1]))
            out[name] = None if best is None else (best, tuple(at))
        return out

    def consolidated_depth(self, instrument, n=10):
        """(bids, asks): up to n levels each, best first, merged over every book of the
        instrument, as (price, open qty, ((venue, open qty), ...)), books in routing order."""
        if n < 0:
            raise ValueError("n must be >= 0")
        sides = []
        for side in (SIDE_BUY, SIDE_SELL):
            merged = {}
            for b in self._instrument_books(instrument):
                for price, total, _ in self._levels(own_side(&self.st.books[<int32_t>b], side),
                                                    n):
                    merged.setdefault(price, []).append((self.st.books[<int32_t>b].venue, total))
            prices = sorted(merged, reverse=side == SIDE_BUY)[:n]
            sides.append([(p, sum(q for _, q in merged[p]), tuple(merged[p])) for p in prices])
        return sides[0], sides[1]

    cdef list _levels(self, BookSide* s, Py_ssize_t n):
        cdef list out = []
        cdef int32_t li
        for li in self._level_ids(s, n):
            out.append((self.st.levels[li].price, self.st.levels[li].total,
                        self.st.levels[li].count))
        return out

    def depth(self, instrument, n=10, venue=0):
        """(bids, asks): up to n levels each, best first, as (price, open qty, order count),
        of ``venue``'s book (0: the primary)."""
        cdef Book* bk = self._book(instrument, venue)
        if n < 0:
            raise ValueError("n must be >= 0")
        return self._levels(&bk.bids, n), self._levels(&bk.asks, n)

    def level_orders(self, instrument, side, price, venue=0):
        """[(order_id, open qty), ...] at one price level, in queue (time) order."""
        cdef Book* bk = self._book(instrument, venue)
        cdef BookSide* s
        cdef int64_t key
        cdef int32_t j, p, li, oi
        cdef list out = []
        if side == SIDE_BUY:
            s = &bk.bids
        elif side == SIDE_SELL:
            s = &bk.asks
        else:
            raise ValueError(f"side must be 1 (buy) or 2 (sell), got {side!r}")
        key = side_key(side, price)
        li = side_find(&self.st, s, key, &j, &p)
        if li >= 0:
            oi = self.st.levels[li].head
            while oi != -1:
                out.append((self.st.orders[oi].order_id,
                            self.st.orders[oi].qty - self.st.orders[oi].filled))
                oi = self.st.orders[oi].next
        return out

    def order(self, int64_t order_id):
        """A live order's state, else its latest finished state if still in history, else None."""
        self._enter()
        cdef int32_t oi = map_get(&self.st.order_map, order_id)
        cdef Order* o
        cdef Finished* h
        cdef Parent* P
        cdef size_t k, n
        cdef int32_t ps
        if oi >= 0:
            o = &self.st.orders[oi]
            out = dict(order_id=o.order_id, instrument=o.instrument, account=o.account,
                       side=o.side, ord_type=o.ord_type, tif=o.tif, flags=o.flags,
                       price=o.price, qty=o.qty, filled=o.filled, leaves=o.qty - o.filled,
                       status=ST_NEW if o.filled == 0 else ST_PARTIALLY_FILLED,
                       venue=self.st.books[o.book].venue)
            if o.flags & FLAG_CHILD:
                out["parent_id"] = self.st.parents[
                    map_get(&self.st.child_map, o.order_id)].order_id
            return out
        ps = map_get(&self.st.parent_map, order_id) if self.st.n_parents else -1
        if ps >= 0:
            P = &self.st.parents[ps]
            return dict(order_id=P.order_id, instrument=P.instrument, account=P.account,
                        side=P.side, ord_type=P.ord_type, tif=P.tif, flags=P.flags,
                        price=P.price, qty=P.qty, filled=P.filled,
                        leaves=P.qty - P.filled - P.cancelled, status=P.status, venue=P.venue,
                        cancelled=P.cancelled, value=P.value, fees=P.fees, child_id=P.child_id)
        n = min(self.st.hist_n - self.st.hist_lo, self.st.hist_cap)
        for k in range(n):
            h = &self.st.hist[(self.st.hist_n - 1 - k) % self.st.hist_cap]
            if h.order_id == order_id:
                return dict(order_id=h.order_id, instrument=h.instrument, account=h.account,
                            side=h.side, ord_type=h.ord_type, tif=h.tif, flags=h.flags,
                            price=h.price, qty=h.qty, filled=h.filled, leaves=0,
                            status=h.status, venue=h.venue)
        return None

    @property
    def open_orders(self):
        """The number of resting orders in all books."""
        return self.st.n_live

    def instrument_state(self, instrument, venue=0):
        """``{trading_state, min_qty, max_qty}`` of a registered instrument's book on ``venue``
        (0: the primary), else None. O(1)."""
        cdef int32_t b = self._book_index(instrument, venue)
        cdef Book* bk
        if b < 0:
            return None
        bk = &self.st.books[b]
        return dict(trading_state=bk.trading_state, min_qty=bk.min_qty, max_qty=bk.max_qty)

    # -- STATE (snapshots) --------------------------------------------------------------------

    def export_state(self):
        """The complete state as numpy arrays, for a snapshot; ``load_state()`` takes it back.

        ``instruments`` (INSTRUMENT_STATE_DTYPE, registration order: the id, the trading state
        and the quantity bounds now in force); ``orders``
        (ORDER_STATE_DTYPE, every resting order: books in registration order, bids then asks,
        best level first, each level in queue order); ``history`` (ORDER_STATE_DTYPE, the
        finished-order ring, oldest first); ``history_total`` (finished orders ever recorded).
        Pending events are not state. O(orders + history), the orders copied without the GIL.
        """
        self._enter()
        cdef cnp.ndarray orders = np.empty(self.st.n_live, dtype=ORDER_STATE_DTYPE)
        cdef size_t cap = self.st.hist_cap
        cdef size_t nh = min(self.st.hist_n - self.st.hist_lo, cap)
        cdef cnp.ndarray hist = np.empty(nh, dtype=ORDER_STATE_DTYPE)
        cdef Finished* out = <Finished*>cnp.PyArray_DATA(orders)
        cdef Finished* h = <Finished*>cnp.PyArray_DATA(hist)
        cdef size_t first, head
        cdef Py_ssize_t n = 0
        insts = np.zeros(self.st.n_books, dtype=INSTRUMENT_STATE_DTYPE)
        insts["instrument"] = [self.st.books[b].instrument for b in range(self.st.n_books)]
        insts["venue"] = [self.st.books[b].venue for b in range(self.st.n_books)]
        insts["trading_state"] = [self.st.books[b].trading_state for b in range(self.st.n_books)]
        insts["min_qty"] = [self.st.books[b].min_qty for b in range(self.st.n_books)]
        insts["max_qty"] = [self.st.books[b].max_qty for b in range(self.st.n_books)]
        self.busy = 1
        try:
            with nogil:
                n = export_orders(&self.st, out)
                if nh:
                    # the ring's oldest retained record first; its pad bytes are always 0
                    first = (self.st.hist_n - nh) % cap
                    head = min(nh, cap - first)
                    memcpy(h, &self.st.hist[first], head * sizeof(Finished))
                    memcpy(h + head, self.st.hist, (nh - head) * sizeof(Finished))
        finally:
            self.busy = 0
        if n < 0:
            raise MemoryError()
        if n != self.st.n_live:
            raise AssertionError(f"exported {n} orders, {self.st.n_live} are live")
        return {"instruments": insts, "orders": orders, "history": hist,
                "risk": None if self.st.risk == NULL else risk_to_tables(self.st.risk),
                "history_total": int(self.st.hist_n), "parents": self._parents(),
                "children": int(self.st.child_seq)}

    cdef _parents(self):
        # the live parents as PARENT_STATE_DTYPE, ascending id
        cdef int32_t ps
        cdef Parent* P
        rows = []
        for ps in range(self.st.parents_cap):
            P = &self.st.parents[ps]
            if P.order_id != 0:
                rows.append((P.order_id, P.price, P.qty, P.filled, P.cancelled, P.value, P.fees,
                             P.child_id, P.instrument, P.account, P.flags, P.venue, P.side,
                             P.ord_type, P.tif, P.status))
        rows.sort()
        return np.array(rows, dtype=PARENT_STATE_DTYPE)

    def load_state(self, state):
        """Take a state from ``export_state()`` into this fresh core, which then answers and
        behaves, event for event, as the exported one did.

        Fresh: no live order, pending event or history, and either no instrument registered or
        the state's (same ids in the same order, as a journal's recovery registers them); the
        state's trading states and quantity bounds replace the registered ones (HALT and
        SET_LIMITS may have changed them since registration). Everything is checked before
        anything changes: TypeError for a missing or unknown key, a wrong type or dtype;
        ValueError for a bad value (an order is named by index and id, an instrument by index
        and id); MemoryError if it does not fit. History longer than this core keeps is cut to
        its newest records. O(orders + history), the orders checked and rested in C.
        """
        self._enter()
        cdef cnp.ndarray orders, hist, levels
        cdef const Finished* op
        cdef const Finished* hp
        cdef Py_ssize_t n, nh, i, bad = -1, other = -1
        cdef int32_t b, n_inst
        cdef int err = LS_OK
        cdef IdMap books, ids
        cdef int64_t* side_levels
        cdef int64_t need_blocks = 0, need_levels = 0, total_levels = 0
        cdef int32_t dir_cap
        cdef Book* bk
        cdef Book* p
        cdef BookSide* s
        cdef size_t cap = self.st.hist_cap, keep, first, k, total_n
        cdef int32_t prepared
        cdef Finished* dst
        cdef Risk* new_risk = NULL
        # -- types --
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state() takes a dict from export_state(), got "
                            f"{type(state).__name__}")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise TypeError(f"state is missing {', '.join(missing)}")
        unknown = sorted(str(key) for key in state
                         if key not in _STATE_KEYS and key not in _OPTIONAL_STATE_KEYS)
        if unknown:
            raise TypeError(f"state has unknown keys: {', '.join(unknown)}")
        insts = _state_array(state, "instruments", INSTRUMENT_STATE_DTYPE)
        orders = _state_array(state, "orders", ORDER_STATE_DTYPE)
        hist = _state_array(state, "history", ORDER_STATE_DTYPE)
        total = state["history_total"]
        if isinstance(total, (bool, np.bool_)) or not isinstance(total, (int, np.integer)):
            raise TypeError(f"history_total must be an int, got {type(total).__name__}")
        total = int(total)
        n = orders.shape[0]
        nh = hist.shape[0]
        n_inst = self.st.n_books
        parents = _state_array(state, "parents", PARENT_STATE_DTYPE) if state.get(
            "parents") is not None else np.zeros(0, PARENT_STATE_DTYPE)
        children = state.get("children", 0)
        if isinstance(children, (bool, np.bool_)) or not isinstance(children, (int, np.integer)):
            raise TypeError(f"children must be an int, got {type(children).__name__}")
        children = int(children)
        # -- the core must be fresh --
        if self.st.n_live or self.st.n_ev or self.st.hist_n:
            raise ValueError("load_state() needs a fresh core: this one has live orders, "
                             "pending events or history")
        if not 0 <= len(insts) <= MAX_POOL:
            raise ValueError(f"too many instruments: {len(insts)}")
        ids_list = insts["instrument"].tolist()
        venue_list = insts["venue"].tolist()
        states = insts["trading_state"].tolist()
        mins = insts["min_qty"].tolist()
        maxs = insts["max_qty"].tolist()
        if n_inst and [(self.st.books[b].instrument, self.st.books[b].venue)
                       for b in range(n_inst)] != list(zip(ids_list, venue_list)):
            raise ValueError("load_state() needs a fresh core: this one has books registered "
                             "that are not the state's (same instruments and venues in the "
                             "same order)")
        if not n_inst and any(venue_list):
            raise ValueError("the state has books on venues: register the venues and books "
                             "first (add_venue, add_instrument), as the journal's manifest does")
        # -- instruments: the rules of add_instrument --
        seen = set()
        inst_ids = []        # distinct instruments, in registration order (the risk tables')
        for i in range(len(insts)):
            if not n_inst and ids_list[i] in seen:
                raise ValueError(f"instruments[{i}]: instrument {ids_list[i]} appears twice")
            if ids_list[i] not in seen:
                inst_ids.append(ids_list[i])
            seen.add(ids_list[i])
            if states[i] != TS_OPEN and states[i] != TS_HALTED:
                raise ValueError(f"instruments[{i}] (instrument {ids_list[i]}): trading_state "
                                 f"must be 1 (OPEN) or 2 (HALTED), got {states[i]}")
            if mins[i] < 1:
                raise ValueError(f"instruments[{i}] (instrument {ids_list[i]}): min_qty must be "
                                 f">= 1, got {mins[i]}")
            if maxs[i] < mins[i]:
                raise ValueError(f"instruments[{i}] (instrument {ids_list[i]}): max_qty must be "
                                 f"in min_qty..2**63-1, got {maxs[i]}")
        # -- risk: the tables, and the exposure the orders imply --
        risk_tables = state.get("risk")
        if risk_tables is None and self.st.risk != NULL:
            raise ValueError("the state has no risk tables but this core has risk on")
        if risk_tables is not None:
            risk_tables = check_tables(risk_tables, inst_ids, fresh=False)
            check_exposure(risk_tables, orders)
        # -- history --
        if not nh <= total <= INT64_MAX:
            raise ValueError(f"history_total must be in len(history)..2**63-1 ({nh}..), "
                             f"got {total}")
        total_n = total
        if nh:
            wrong = np.flatnonzero((hist["status"] < ST_FILLED) | (hist["status"] > ST_REJECTED))
            if wrong.size:
                i = wrong[0]
                raise ValueError(f"history[{i}] (order id {hist['order_id'][i]}): status "
                                 f"{hist['status'][i]} is not a final one (3, 4 or 5)")
        # -- orders, in C --
        if n > MAX_POOL:
            raise MemoryError(f"{n} orders do not fit in the order pool (at most {MAX_POOL})")
        op = <const Finished*>cnp.PyArray_DATA(orders)
        hp = <const Finished*>cnp.PyArray_DATA(hist)
        levels = np.zeros(2 * len(insts), dtype=np.int64)
        side_levels = <int64_t*>cnp.PyArray_DATA(levels)
        memset(&books, 0, sizeof(IdMap))
        memset(&ids, 0, sizeof(IdMap))
        prepared = n_inst
        try:
            # the two indexes are built here and become the core's own if all is well
            if map_init(&books, <size_t>len(insts) * 2) != 0 or \
                    map_init(&ids, <size_t>n * 2) != 0:
                raise MemoryError()
            for i in range(len(insts)):
                if map_get(&books, ids_list[i]) < 0:
                    map_put(&books, ids_list[i], <int32_t>i)      # the primary book
                if venue_list[i] != 0:
                    map_put(&books, book_key(venue_list[i], ids_list[i]), <int32_t>i)
            with nogil:
                err = validate_orders(op, n, &books, &ids, side_levels, &bad, &other)
            if err != LS_OK:
                raise ValueError(_order_problem(err, orders, bad, other))
            self._check_grids(orders)
            _check_parents(parents, children, orders)
            # -- reserve everything, so that applying cannot fail half-way --
            for i in range(2 * len(insts)):
                # levels appended in key order fill blocks to 64 and split them in halves:
                # at most levels/32 + 1 blocks per side
                total_levels += side_levels[i]
                if side_levels[i]:
                    need_blocks += side_levels[i] // 32 + 2
            if total_levels > MAX_POOL or need_blocks >= MAX_POOL:
                raise MemoryError(f"{total_levels} price levels do not fit")
            while self.st.orders_cap < n:
                if grow_orders(&self.st) != 0:
                    raise MemoryError()
            while self.st.levels_cap < total_levels:
                if grow_levels(&self.st) != 0:
                    raise MemoryError()
            while self.st.blk_cap < need_blocks + 1:
                if grow_blocks(&self.st) != 0:
                    raise MemoryError()
            if self.st.books_cap < len(insts):
                p = <Book*>realloc(self.st.books, <size_t>len(insts) * sizeof(Book))
                if p == NULL:
                    raise MemoryError()
                self.st.books = p
                self.st.books_cap = len(insts)
            for b in range(n_inst, len(insts)):
                memset(&self.st.books[b], 0, sizeof(Book))
            prepared = <int32_t>len(insts)
            if risk_tables is not None:
                new_risk = risk_from_tables(risk_tables)
            for i in range(2 * len(insts)):
                # the block directory of every side, with room to spare for its last insert
                bk = &self.st.books[i // 2]
                s = &bk.bids if i % 2 == 0 else &bk.asks
                dir_cap = <int32_t>(side_levels[i] // 32 + 3)
                if side_levels[i] and s.bcap < dir_cap:
                    if side_dir_reserve(s, dir_cap) != 0:
                        raise MemoryError()
        except BaseException:
            risk_free(new_risk)
            map_free(&books)
            map_free(&ids)
            # directories reserved for books not yet registered would otherwise leak
            for b in range(n_inst, prepared):
                free(self.st.books[b].bids.bmax)
                free(self.st.books[b].bids.blocks)
                free(self.st.books[b].asks.bmax)
                free(self.st.books[b].asks.blocks)
                memset(&self.st.books[b], 0, sizeof(Book))
            raise
        # -- apply: nothing below allocates or fails --
        for b in range(len(insts)):
            bk = &self.st.books[b]
            if b >= n_inst:
                # a default-venue book the state brings: what add_instrument(id) makes
                bk.ix = b
                bk.tick = bk.lot = bk.k = 1
                bk.route_head = bk.route_next = -1
            bk.instrument = ids_list[b]
            bk.trading_state = states[b]
            bk.min_qty = mins[b]
            bk.max_qty = maxs[b]
        self.st.n_books = <int32_t>len(insts)
        self.st.n_inst = <int32_t>len(inst_ids)
        map_free(&self.st.book_map)
        self.st.book_map = books
        map_free(&self.st.order_map)
        self.st.order_map = ids
        if new_risk != NULL:
            risk_free(self.st.risk)
            self.st.risk = new_risk
        self.busy = 1
        try:
            with nogil:
                load_orders(&self.st, op, n)
                if cap:
                    # record number g sits in slot g % cap, as record() would have put it
                    keep = min(<size_t>nh, cap)
                    first = total_n - keep
                    for k in range(keep):
                        dst = &self.st.hist[(first + k) % cap]
                        dst[0] = hp[<size_t>nh - keep + k]
                    self.st.hist_n = total_n
                    self.st.hist_lo = first
        finally:
            self.busy = 0
        self._load_parents(parents, children)

    cdef _check_grids(self, orders):
        # every resting order on its book's tick and lot grid (docs/ROUTING.md)
        cdef int32_t b
        for b in range(self.st.n_books):
            if self.st.books[b].tick == 1 and self.st.books[b].lot == 1:
                continue
            mine = np.flatnonzero((orders["instrument"] == self.st.books[b].instrument)
                                  & (orders["venue"] == self.st.books[b].venue))
            off = mine[(orders["price"][mine] % self.st.books[b].tick != 0)
                       | (orders["qty"][mine] % self.st.books[b].lot != 0)]
            if off.size:
                i = int(off[0])
                raise ValueError(f"orders[{i}] (order id {orders['order_id'][i]}): price or "
                                 f"quantity off the grid of venue {self.st.books[b].venue}")

    cdef _load_parents(self, parents, int64_t children):
        # the live parents (checked by _check_parents), after load_orders rested their children
        cdef int32_t ps, i
        cdef Parent* P
        for i in range(len(parents)):
            while self.st.parents_free == -1:
                if grow_parents(&self.st) != 0:
                    raise MemoryError()
            if map_reserve_one(&self.st.parent_map) != 0 or \
                    map_reserve_one(&self.st.child_map) != 0:
                raise MemoryError()
            ps = alloc_parent(&self.st)
            P = &self.st.parents[ps]
            row = parents[i]
            P.order_id = row["order_id"]
            P.price = row["price"]
            P.qty = row["qty"]
            P.filled = row["filled"]
            P.cancelled = row["cancelled"]
            P.value = row["value"]
            P.fees = row["fees"]
            P.child_id = row["child_id"]
            P.instrument = row["instrument"]
            P.account = row["account"]
            P.flags = row["flags"]
            P.venue = row["venue"]
            P.side = row["side"]
            P.ord_type = row["ord_type"]
            P.tif = row["tif"]
            P.status = row["status"]
            P.child = map_get(&self.st.order_map, P.child_id)
            map_put(&self.st.parent_map, P.order_id, ps)
            map_put(&self.st.child_map, P.child_id, ps)
            self.st.n_parents += 1
        self.st.child_seq = children

    # -- INTEGRITY ----------------------------------------------------------------------------

    def state_digest(self):
        """BLAKE2b of every book and resting order (layout in docs/RULES.md). O(orders)."""
        self._enter()
        cdef list vals = []
        cdef Book* bk
        cdef BookSide* s
        cdef Level* lvl
        cdef Order* o
        cdef int32_t li, oi
        cdef uint8_t side
        ids = [(self.st.books[j].instrument, self.st.books[j].venue)
               for j in range(self.st.n_books)]
        for b in sorted(range(self.st.n_books), key=ids.__getitem__):
            bk = &self.st.books[<int32_t>b]
            vals += [bk.instrument, bk.venue, bk.trading_state, bk.min_qty, bk.max_qty,
                     bk.bids.n, bk.asks.n]
            for side in range(SIDE_BUY, SIDE_SELL + 1):
                for li in self._level_ids(own_side(bk, side)):
                    lvl = &self.st.levels[li]
                    vals += [lvl.price, lvl.count]
                    oi = lvl.head
                    while oi != -1:
                        o = &self.st.orders[oi]
                        vals += [o.order_id, o.account, o.qty, o.filled, o.flags]
                        oi = o.next
        parents = self._parents()
        vals += [self.st.child_seq, len(parents)]
        for p in parents:
            vals += [int(p[f]) for f in ("order_id", "price", "qty", "filled", "cancelled",
                                         "value", "fees", "child_id", "account", "flags",
                                         "venue", "side")]
        data = np.array(vals, dtype="<i8").tobytes()
        if self.st.risk != NULL:
            data += risk_bytes(self.st.risk)
        return hashlib.blake2b(data, digest_size=32).hexdigest()

    def check_integrity(self):
        """Assert every invariant of the books, levels, orders and the id index."""
        self._enter()
        cdef Book* bk
        cdef BookSide* s
        cdef Level* lvl
        cdef Order* o
        cdef int32_t b, i, j, li, oi, prev, count
        cdef int64_t total
        cdef Block* blk
        cdef list keys
        cdef uint8_t side
        cdef Py_ssize_t live = 0, free_orders = 0
        for b in range(self.st.n_books):
            bk = &self.st.books[b]
            if bk.trading_state != TS_OPEN and bk.trading_state != TS_HALTED:
                raise AssertionError(f"book {bk.instrument}: trading state {bk.trading_state}")
            if not 1 <= bk.min_qty <= bk.max_qty:
                raise AssertionError(f"book {bk.instrument}: bounds {bk.min_qty}..{bk.max_qty}")
            if map_get(&self.st.book_map, book_key(bk.venue, bk.instrument)) != b or \
                    map_get(&self.st.book_map, bk.instrument) < 0:
                raise AssertionError(f"book {bk.instrument}/{bk.venue}: not indexed")
            if (bk.tick != 1 or bk.lot != 1) and self._off_grid(bk):
                raise AssertionError(f"book {bk.instrument}/{bk.venue}: an order off its grid")
            for side in range(SIDE_BUY, SIDE_SELL + 1):
                s = own_side(bk, side)
                keys = []
                for j in range(s.nb):
                    blk = &self.st.blk[s.blocks[j]]
                    if not 0 < blk.n <= BLOCK_LEVELS or s.bmax[j] != blk.keys[blk.n - 1]:
                        raise AssertionError(f"book {bk.instrument}: bad block directory")
                    keys += [blk.keys[i] for i in range(blk.n)]
                if len(keys) != s.n or any(a >= b for a, b in zip(keys, keys[1:])):
                    raise AssertionError(f"book {bk.instrument}: levels out of order")
                for li, key in zip(reversed(self._level_ids(s)), keys):
                    lvl = &self.st.levels[li]
                    if side_key(side, lvl.price) != key:
                        raise AssertionError(f"book {bk.instrument}: level key != price")
                    if lvl.count == 0 or lvl.head == -1:
                        raise AssertionError(f"book {bk.instrument}: empty level {lvl.price}")
                    oi = lvl.head
                    prev = -1
                    count = 0
                    total = 0
                    while oi != -1:
                        o = &self.st.orders[oi]
                        if o.prev != prev or o.level != li or o.book != b:
                            raise AssertionError(f"order {o.order_id}: broken links")
                        if o.side != side or o.price != lvl.price:
                            raise AssertionError(f"order {o.order_id}: wrong level")
                        if not 0 <= o.filled < o.qty:
                            raise AssertionError(f"order {o.order_id}: filled out of range")
                        if map_get(&self.st.order_map, o.order_id) != oi:
                            raise AssertionError(f"order {o.order_id}: not indexed")
                        if (o.flags & FLAG_CHILD) != 0 and \
                                map_get(&self.st.child_map, o.order_id) < 0:
                            raise AssertionError(f"child order {o.order_id}: no parent")
                        count += 1
                        total += o.qty - o.filled
                        prev = oi
                        oi = o.next
                    if prev != lvl.tail or count != lvl.count or total != lvl.total:
                        raise AssertionError(
                            f"book {bk.instrument} level {lvl.price}: count/total/tail mismatch")
                    live += count
            if bk.bids.n and bk.asks.n and \
                    self.st.levels[side_best(&self.st, &bk.bids)].price >= \
                    self.st.levels[side_best(&self.st, &bk.asks)].price:
                raise AssertionError(f"book {bk.instrument} is crossed")
        if live != self.st.n_live or live != <Py_ssize_t>self.st.order_map.size:
            raise AssertionError(
                f"live orders {live} != counter {self.st.n_live} / index {self.st.order_map.size}")
        oi = self.st.orders_free
        while oi != -1:
            free_orders += 1
            oi = self.st.orders[oi].next
        if free_orders + live != self.st.orders_cap:
            raise AssertionError("order pool leak")
        # live parents and their resting children (docs/ROUTING.md, "Lifecycle"); the export
        # (a copy of every order and of the history) only when there is something to check
        if self.st.n_parents == 0 and self.st.parent_map.size == 0 and \
                self.st.child_map.size == 0 and self.st.risk == NULL:
            if any(self.st.parents[ps].order_id for ps in range(self.st.parents_cap)):
                raise AssertionError("a parent slot is in use with no parent counted")
            return
        state = self.export_state()
        if len(state["parents"]) != self.st.n_parents or \
                self.st.n_parents != <Py_ssize_t>self.st.parent_map.size or \
                self.st.n_parents != <Py_ssize_t>self.st.child_map.size:
            raise AssertionError(
                f"parents: {len(state['parents'])} exported, count {self.st.n_parents}, "
                f"{self.st.parent_map.size} indexed, {self.st.child_map.size} children indexed")
        try:
            _check_parents(state["parents"], state["children"], state["orders"])
        except ValueError as e:
            raise AssertionError(str(e)) from None
        for ps in range(self.st.parents_cap):
            if self.st.parents[ps].order_id != 0 and (
                    map_get(&self.st.parent_map, self.st.parents[ps].order_id) != ps or
                    map_get(&self.st.child_map, self.st.parents[ps].child_id) != ps or
                    self.st.parents[ps].child != map_get(&self.st.order_map,
                                                         self.st.parents[ps].child_id)):
                raise AssertionError(f"parent {self.st.parents[ps].order_id}: not indexed")
        if self.st.risk != NULL:
            # the risk tables' open-order counts and exposure are what the resting orders add
            # up to (docs/RISK.md, "After the checks")
            try:
                check_exposure(state["risk"], state["orders"])
            except ValueError as e:
                raise AssertionError(str(e)) from None

    cdef bint _off_grid(self, Book* bk):
        cdef int32_t li, oi
        cdef uint8_t side
        for side in range(SIDE_BUY, SIDE_SELL + 1):
            for li in self._level_ids(own_side(bk, side)):
                oi = self.st.levels[li].head
                while oi != -1:
                    if self.st.orders[oi].price % bk.tick or self.st.orders[oi].qty % bk.lot:
                        return True
                    oi = self.st.orders[oi].next
        return False

    def memory_bytes(self):
        """Bytes held by the core's C arrays (orders, levels, id index, books, events, history)."""
        cdef size_t n = 0
        cdef int32_t b
        n += <size_t>self.st.orders_cap * sizeof(Order)
        n += <size_t>self.st.levels_cap * sizeof(Level)
        n += (self.st.order_map.mask + 1) * (sizeof(int64_t) + sizeof(int32_t))
        n += (self.st.book_map.mask + 1) * (sizeof(int64_t) + sizeof(int32_t))
        n += self.st.ev_cap * sizeof(Event) + self.st.hist_cap * sizeof(Finished)
        for b in range(self.st.n_books):
            n += (self.st.books[b].bids.bcap + self.st.books[b].asks.bcap) * (
                sizeof(int64_t) + sizeof(int32_t))
        n += <size_t>self.st.blk_cap * sizeof(Block)
        return n


# The C records must match the numpy layouts byte for byte.
assert sizeof(Command) == COMMAND_DTYPE.itemsize, "Command layout != COMMAND_DTYPE"
assert sizeof(Event) == EVENT_DTYPE.itemsize, "Event layout != EVENT_DTYPE"
assert sizeof(Finished) == ORDER_STATE_DTYPE.itemsize, "Finished layout != ORDER_STATE_DTYPE"


def _c_codes():
    """The C enum values compiled into the core, so a test can hold them to engine/schema.py."""
    return {
        "CommandType": {"NEW": CMD_NEW, "CANCEL": CMD_CANCEL, "REPLACE": CMD_REPLACE,
                        "MASS_CANCEL": CMD_MASS_CANCEL, "HALT": CMD_HALT, "RESUME": CMD_RESUME,
                        "SET_LIMITS": CMD_SET_LIMITS, "SET_RISK": CMD_SET_RISK,
                        "KILL_SWITCH": CMD_KILL_SWITCH, "RESTRICT": CMD_RESTRICT,
                        "ROUTE": CMD_ROUTE},
        "Side": {"BUY": SIDE_BUY, "SELL": SIDE_SELL},
        "OrdType": {"LIMIT": ORD_LIMIT, "MARKET": ORD_MARKET},
        "TimeInForce": {"GTC": TIF_GTC, "IOC": TIF_IOC, "FOK": TIF_FOK},
        "Flags": {"POST_ONLY": FLAG_POST_ONLY, "ALL_ACCOUNTS": FLAG_ALL_ACCOUNTS,
                  "POST_REMAINDER": FLAG_POST_REMAINDER, "PARENT": FLAG_PARENT,
                  "CHILD": FLAG_CHILD},
        "EventType": {"ACCEPTED": EV_ACCEPTED, "REJECTED": EV_REJECTED, "TRADE": EV_TRADE,
                      "CANCELLED": EV_CANCELLED, "REPLACED": EV_REPLACED,
                      "INSTRUMENT_STATE": EV_INSTRUMENT_STATE, "RISK": EV_RISK,
                      "PARENT_FILL": EV_PARENT_FILL, "PARENT_DONE": EV_PARENT_DONE},
        "CancelCause": {"USER": CAUSE_USER, "IOC_REMAINDER": CAUSE_IOC_REMAINDER,
                        "MARKET_REMAINDER": CAUSE_MARKET_REMAINDER,
                        "FOK_UNFILLABLE": CAUSE_FOK_UNFILLABLE,
                        "LEVEL_QUANTITY_LIMIT": CAUSE_LEVEL_QUANTITY_LIMIT,
                        "MASS_CANCEL": CAUSE_MASS_CANCEL, "KILL_SWITCH": CAUSE_KILL_SWITCH,
                        "ODD_LOT": CAUSE_ODD_LOT},
        "TradingState": {"OPEN": TS_OPEN, "HALTED": TS_HALTED},
        "OrderStatus": {"NEW": ST_NEW, "PARTIALLY_FILLED": ST_PARTIALLY_FILLED,
                        "FILLED": ST_FILLED, "CANCELLED": ST_CANCELLED, "REJECTED": ST_REJECTED},
        "Reason": {
            "BOOK_UNKNOWN_COMMAND": R_UNKNOWN_COMMAND,
            "BOOK_INVALID_ORDER_ID": R_INVALID_ORDER_ID,
            "BOOK_UNKNOWN_INSTRUMENT": R_UNKNOWN_INSTRUMENT,
            "BOOK_INVALID_SIDE": R_INVALID_SIDE,
            "BOOK_INVALID_ORDER_TYPE": R_INVALID_ORDER_TYPE,
            "BOOK_INVALID_TIME_IN_FORCE": R_INVALID_TIME_IN_FORCE,
            "BOOK_INVALID_INSTRUCTIONS": R_INVALID_INSTRUCTIONS,
            "BOOK_INVALID_QUANTITY": R_INVALID_QUANTITY,
            "BOOK_QUANTITY_BELOW_MIN": R_QUANTITY_BELOW_MIN,
            "BOOK_QUANTITY_ABOVE_MAX": R_QUANTITY_ABOVE_MAX,
            "BOOK_INVALID_PRICE": R_INVALID_PRICE,
            "BOOK_DUPLICATE_ORDER_ID": R_DUPLICATE_ORDER_ID,
            "BOOK_POST_ONLY_WOULD_TAKE": R_POST_ONLY_WOULD_TAKE,
            "BOOK_UNKNOWN_ORDER": R_UNKNOWN_ORDER,
            "BOOK_REPLACE_QTY_NOT_ABOVE_FILLED": R_REPLACE_QTY_NOT_ABOVE_FILLED,
            "BOOK_INSTRUMENT_HALTED": R_INSTRUMENT_HALTED,
            "BOOK_UNKNOWN_VENUE": R_UNKNOWN_VENUE,
            "BOOK_VENUE_NOT_LISTED": R_VENUE_NOT_LISTED,
            "BOOK_OFF_VENUE_GRID": R_OFF_VENUE_GRID,
            "BOOK_NO_ROUTABLE_VENUE": R_NO_ROUTABLE_VENUE,
            "BOOK_CHILD_ORDER": R_CHILD_ORDER,
            "BOOK_PARENT_REPLACE": R_PARENT_REPLACE,
            "BOOK_INVALID_STRATEGY": R_INVALID_STRATEGY,
        },
    }
