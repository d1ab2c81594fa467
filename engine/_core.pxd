# cython: language_level=3
# The compiled core's table of contents: the C records, the engine state, and the functions
# that change it. Everything here runs without the GIL and without Python objects.
from libc.stdint cimport int64_t, int32_t, uint32_t, uint16_t, uint8_t

from engine.risk._risk cimport Risk

# -- CODES (mirror engine/schema.py; tests/core/test_codes.py holds them to it) --
cdef enum:
    CMD_NEW = 1
    CMD_CANCEL = 2
    CMD_REPLACE = 3
    CMD_MASS_CANCEL = 4
    CMD_HALT = 5
    CMD_RESUME = 6
    CMD_SET_LIMITS = 7
    CMD_SET_RISK = 8
    CMD_KILL_SWITCH = 9
    CMD_RESTRICT = 10
    CMD_ROUTE = 11

    SIDE_BUY = 1
    SIDE_SELL = 2

    ORD_LIMIT = 1
    ORD_MARKET = 2

    TIF_GTC = 1
    TIF_IOC = 2
    TIF_FOK = 3

    FLAG_POST_ONLY = 1
    FLAG_ALL_ACCOUNTS = 2
    FLAG_POST_REMAINDER = 4
    FLAG_PARENT = 0x4000
    FLAG_CHILD = 0x8000
    FLAGS_KNOWN = 1                 # the bits a NEW (and so a resting order) may carry
    MASS_CANCEL_FLAGS_KNOWN = 2     # the bits a MASS_CANCEL may carry
    ROUTE_FLAGS_KNOWN = 4           # the bits a ROUTE may carry

    EV_ACCEPTED = 1
    EV_REJECTED = 2
    EV_TRADE = 3
    EV_CANCELLED = 4
    EV_REPLACED = 5
    EV_INSTRUMENT_STATE = 6
    EV_RISK = 7
    EV_PARENT_FILL = 8
    EV_PARENT_DONE = 9

    CAUSE_USER = 1
    CAUSE_IOC_REMAINDER = 2
    CAUSE_MARKET_REMAINDER = 3
    CAUSE_FOK_UNFILLABLE = 4
    CAUSE_LEVEL_QUANTITY_LIMIT = 5
    CAUSE_MASS_CANCEL = 6
    CAUSE_KILL_SWITCH = 7
    CAUSE_ODD_LOT = 8

    TS_OPEN = 1
    TS_HALTED = 2

    ST_NEW = 1
    ST_PARTIALLY_FILLED = 2
    ST_FILLED = 3
    ST_CANCELLED = 4
    ST_REJECTED = 5

    R_UNKNOWN_COMMAND = 1001
    R_INVALID_ORDER_ID = 1002
    R_UNKNOWN_INSTRUMENT = 1003
    R_INVALID_SIDE = 1004
    R_INVALID_ORDER_TYPE = 1005
    R_INVALID_TIME_IN_FORCE = 1006
    R_INVALID_INSTRUCTIONS = 1007
    R_INVALID_QUANTITY = 1008
    R_QUANTITY_BELOW_MIN = 1009
    R_QUANTITY_ABOVE_MAX = 1010
    R_INVALID_PRICE = 1011
    R_DUPLICATE_ORDER_ID = 1012
    R_POST_ONLY_WOULD_TAKE = 1013
    R_UNKNOWN_ORDER = 1014
    R_REPLACE_QTY_NOT_ABOVE_FILLED = 1015
    R_INSTRUMENT_HALTED = 1016
    R_UNKNOWN_VENUE = 1017
    R_VENUE_NOT_LISTED = 1018
    R_OFF_VENUE_GRID = 1019
    R_NO_ROUTABLE_VENUE = 1020
    R_CHILD_ORDER = 1021
    R_PARENT_REPLACE = 1022
    R_INVALID_STRATEGY = 1023

# -- RECORDS (layouts match COMMAND_DTYPE and EVENT_DTYPE in engine/schema.py) --
cdef struct Command:
    int64_t seq
    int64_t ts_ns
    int64_t order_id
    int64_t price
    int64_t qty
    uint32_t instrument
    uint32_t account
    uint8_t cmd
    uint8_t side
    uint8_t ord_type
    uint8_t tif
    uint16_t flags
    uint16_t venue

cdef struct Event:
    int64_t seq
    int64_t ts_ns
    int64_t order_id
    int64_t other_id
    int64_t price
    int64_t qty
    int64_t leaves
    int64_t other_leaves
    int64_t fee
    int64_t other_fee
    int64_t parent_id
    uint32_t instrument
    uint32_t account
    uint32_t other_account
    uint16_t reason
    uint16_t venue
    uint8_t type
    uint8_t side
    uint8_t cmd
    uint8_t _pad[5]

# A resting order: 64 bytes, one cache line. prev/next link it into its level's FIFO queue
# (next doubles as the free-list link); book/level point back so a cancel is O(1).
cdef struct Order:
    int64_t order_id
    int64_t price
    int64_t qty          # total quantity, filled part included
    int64_t filled
    int32_t prev
    int32_t next
    int32_t book
    int32_t level
    uint32_t account
    uint32_t instrument
    uint16_t flags
    uint8_t side
    uint8_t ord_type
    uint8_t tif
    uint8_t _pad[3]

cdef struct Level:
    int64_t price
    int64_t total        # open quantity of all its orders
    int32_t head
    int32_t tail
    int32_t count
    int32_t next_free

# Levels of one side, ordered by key so that the best level is the LAST: key = price for bids,
# -price for asks. Two tiers, like sortedcontainers' list of sublists: blocks of up to
# BLOCK_LEVELS sorted (key, level) pairs, and a sorted directory of blocks with each block's
# largest key. Near the top an insert moves a few bytes of the last block; anywhere, it moves
# at most one block plus (on a split) the directory, so its cost stays small with many levels.
cdef enum:
    BLOCK_LEVELS = 64

cdef struct Block:
    int64_t keys[BLOCK_LEVELS]
    int32_t levels[BLOCK_LEVELS]
    int32_t n
    int32_t next_free

cdef struct BookSide:
    int64_t* bmax        # largest key of each block, ascending
    int32_t* blocks      # block ids, ascending; the best level is the last of the last block
    int32_t nb
    int32_t bcap
    int32_t n            # levels on this side

# One instrument on one venue (docs/ROUTING.md). The venue's fees and the instrument's index
# are copied in, so matching reads them from the record it already holds.
cdef struct Book:
    uint32_t instrument
    uint8_t trading_state  # TS_OPEN or TS_HALTED: a NEW reads it from the record it already holds
    uint16_t venue         # 0: the default venue
    int64_t min_qty        # the quantity bounds of NEW and REPLACE (SET_LIMITS changes them)
    int64_t max_qty
    int64_t tick           # prices must be a multiple of it (instrument ticks)
    int64_t lot            # quantities must be a multiple of it (instrument lots)
    int64_t k              # cash units per tick x lot, for fees with risk off
    int64_t maker_ppm      # the venue's fees, millionths of notional (< 0: a rebate)
    int64_t taker_ppm
    int32_t priority       # the venue's routing priority (lower first)
    int32_t ix             # the instrument's index (registration order): its risk table row
    int32_t route_head     # the instrument's first routable book (routing order), -1: none
    int32_t route_next     # the next routable book of the instrument, -1: the last
    BookSide bids
    BookSide asks

cdef struct Venue:
    int64_t maker_ppm
    int64_t taker_ppm
    int32_t priority
    uint16_t venue
    uint16_t _pad

# A routed (parent) order: live while its one resting child is, or within its ROUTE command.
cdef struct Parent:
    int64_t order_id
    int64_t price
    int64_t qty
    int64_t filled
    int64_t cancelled
    int64_t value          # sum of price x qty over its fills (saturating)
    int64_t fees
    int64_t child_id       # the resting child, 0: none
    uint32_t instrument
    uint32_t account
    uint16_t flags
    uint16_t venue
    uint8_t side
    uint8_t ord_type
    uint8_t tif
    uint8_t status
    int32_t child          # the resting child's order slot, -1: none
    int32_t next_free

# Routing scratch: one entry per routable book of the instrument being routed, and the plan.
cdef struct RouteBook:
    int64_t planned        # lots the plan takes from this book
    int64_t last_price     # the worst price the plan takes here (the child's limit)
    int64_t child_id
    int64_t filled
    int32_t book
    int32_t j              # cursor: the next level of the opposite side (block j, entry p)
    int32_t p
    int32_t first          # the plan step that first uses this book, -1: none
    int32_t done           # no further level can be planned here

cdef struct Step:
    int64_t price
    int64_t qty
    int32_t rb
    int32_t _pad

# Open addressing, linear probing, backward-shift deletion; vals[i] == -1 marks an empty slot.
cdef struct IdMap:
    int64_t* keys
    int32_t* vals
    size_t mask
    size_t size

cdef struct Finished:
    int64_t order_id
    int64_t price
    int64_t qty
    int64_t filled
    uint32_t instrument
    uint32_t account
    uint16_t flags
    uint8_t side
    uint8_t ord_type
    uint8_t tif
    uint8_t status
    uint16_t venue

cdef struct State:
    Order* orders
    int32_t orders_cap
    int32_t orders_free
    int32_t n_live
    Level* levels
    int32_t levels_cap
    int32_t levels_free
    Block* blk
    int32_t blk_cap
    int32_t blk_free
    Book* books
    int32_t n_books
    int32_t books_cap
    IdMap order_map
    IdMap book_map
    Event* ev
    size_t n_ev
    size_t ev_cap
    Finished* hist
    size_t hist_cap
    size_t hist_n        # total ever recorded; slot = hist_n % hist_cap
    size_t hist_lo       # records numbered below this were never in this ring (load_state)
    int oom
    Risk* risk           # pre-trade risk (engine/risk/_risk.pxd); NULL: risk off
    int32_t risk_ta      # the risk account index of the order now matching as taker
    Venue* venues
    int32_t n_venues
    int32_t n_inst       # distinct instruments (Book.ix runs 0..n_inst-1)
    IdMap venue_map      # venue id -> index in venues
    Parent* parents
    int32_t parents_cap
    int32_t parents_free
    int32_t n_parents    # live parents
    IdMap parent_map     # parent order id -> slot
    IdMap child_map      # resting child order id -> its parent's slot
    int64_t child_seq    # children ever created (the last child id is -child_seq)
    RouteBook* rb
    int32_t rb_cap
    Step* steps
    int32_t steps_cap

# -- COMMANDS --
cdef int process_one(State* st, const Command* c) noexcept nogil
cdef int do_new(State* st, const Command* c) noexcept nogil
cdef int do_cancel(State* st, const Command* c) noexcept nogil
cdef void cancel_order(State* st, const Command* c, int32_t oi, uint16_t cause) noexcept nogil
cdef int do_replace(State* st, const Command* c) noexcept nogil
cdef int do_mass_cancel(State* st, const Command* c) noexcept nogil
cdef int do_trading_state(State* st, const Command* c, uint8_t state) noexcept nogil
cdef int do_set_limits(State* st, const Command* c) noexcept nogil
cdef int do_risk_admin(State* st, const Command* c) noexcept nogil
cdef int do_route(State* st, const Command* c) noexcept nogil
cdef void cancel_where(State* st, const Command* c, bint any_instrument, uint16_t venue,
                       uint8_t side, bint all_accounts, uint16_t cause) noexcept nogil

# -- MATCHING --
cdef int64_t match(State* st, int32_t b, const Command* c, int64_t taker_id, uint32_t account,
                   uint8_t side, bint market, int64_t limit, int64_t leaves, int32_t tps,
                   int64_t extra) noexcept nogil
cdef bint fok_fillable(State* st, int32_t b, uint8_t side, bint market, int64_t limit,
                       int64_t qty) noexcept nogil

# -- BOOK MAINTENANCE --
cdef int rest_order(State* st, int32_t b, int32_t oi) noexcept nogil
cdef void unlink_order(State* st, int32_t oi) noexcept nogil

# -- EVENTS --
cdef Event* emit(State* st, const Command* c, uint8_t type) noexcept nogil
cdef void reject(State* st, const Command* c, uint16_t reason) noexcept nogil
cdef void record_command(State* st, const Command* c, uint8_t status) noexcept nogil
cdef void instrument_event(State* st, const Command* c, const Book* bk) noexcept nogil
cdef void risk_event(State* st, const Command* c, uint16_t reason) noexcept nogil

# -- STATE EXPORT AND IMPORT (Core.export_state / Core.load_state) --
cdef Py_ssize_t export_orders(State* st, Finished* out) noexcept nogil
cdef int validate_orders(const Finished* o, Py_ssize_t n, const IdMap* books, IdMap* ids,
                         int64_t* side_levels, Py_ssize_t* bad, Py_ssize_t* other) noexcept nogil
cdef void load_orders(State* st, const Finished* o, Py_ssize_t n) noexcept nogil
