# cython: language_level=3
# The compiled pre-trade risk: the account tables and the functions the core calls from its
# deterministic path (docs/RISK.md). Layouts match the RISK_*_DTYPE records of engine/schema.py.
from libc.stdint cimport int64_t, int32_t, uint32_t, uint16_t, uint8_t

cdef extern from *:
    """
    typedef __int128 risk_i128;
    """
    # exact products of two int64 values; Cython sees a C integer, the compiler 128 bits
    ctypedef long long i128 "risk_i128"

# -- CODES (mirror engine/schema.py; tests/core/test_codes.py holds them to it) --
cdef enum:
    KILL_ACTIVE = 0
    KILL_REDUCE_ONLY = 1
    KILL_KILLED = 2

    RK_MAX_ORDER_QTY = 1
    RK_MAX_ORDER_NOTIONAL = 2
    RK_POSITION_LIMIT = 3
    RK_SHORT_LIMIT = 4
    RK_MAX_OPEN_ORDERS = 5
    RK_RATE = 6
    RK_CREDIT = 7
    RK_PRICE_BAND = 8
    RK_REFERENCE_PRICE = 9
    RK_FX_RATE = 10
    RK_CASH_ADJUST = 11
    RK_FEE = 12

    R_RISK_UNKNOWN_ACCOUNT = 2001
    R_RISK_NO_REFERENCE_PRICE = 2002
    R_RISK_PRICE_BAND = 2003
    R_RISK_MAX_ORDER_QTY = 2004
    R_RISK_MAX_ORDER_NOTIONAL = 2005
    R_RISK_INSUFFICIENT_CASH = 2006
    R_RISK_INSUFFICIENT_POSITION = 2007
    R_RISK_POSITION_LIMIT = 2008
    R_RISK_MAX_OPEN_ORDERS = 2009
    R_RISK_RATE_LIMITED = 2010
    R_RISK_RESTRICTED = 2011
    R_RISK_RESTRICTED_GLOBAL = 2012
    R_RISK_KILL_SWITCH = 2013
    R_RISK_KILL_SWITCH_GLOBAL = 2014
    R_RISK_REDUCE_ONLY = 2015
    R_RISK_INVALID_VALUE = 2016
    R_RISK_DISABLED = 2017
    R_RISK_UNKNOWN_INSTRUMENT = 1003   # BOOK_UNKNOWN_INSTRUMENT, for SET_RISK and RESTRICT

# -- RECORDS --
cdef struct RAccount:
    uint32_t account
    uint32_t base_ccy
    uint8_t kill
    uint8_t _pad[7]
    int64_t open_orders
    int64_t max_open_orders
    int64_t rate_per_s
    int64_t rate_burst
    int64_t tokens_nano
    int64_t last_ts

cdef struct RPosition:
    int64_t position
    int64_t cost
    int64_t realized
    int64_t fees
    int64_t open_buy_qty
    int64_t open_sell_qty
    int64_t max_order_qty
    int64_t max_order_notional
    int64_t position_limit
    int64_t short_limit
    uint8_t restricted
    uint8_t _pad[7]

cdef struct RCash:
    int64_t cash
    int64_t credit
    int64_t open_buy_notional

cdef struct RInstrument:
    uint32_t instrument
    uint32_t ccy
    int64_t k
    int64_t band_bps
    int64_t ref_price
    int64_t last_price
    int64_t fee_ppm
    uint8_t restricted
    uint8_t _pad[7]

cdef struct Risk:
    int32_t n_acct
    int32_t n_inst
    int32_t n_ccy
    int32_t last          # the account index found last (a cache for risk_account)
    int32_t* index        # account id -> index (-1: none) for ids below n_index, else NULL
    int64_t n_index
    RAccount* acct
    RPosition* pos        # [a * n_inst + i]
    RCash* cash           # [a * n_ccy + c]
    RInstrument* inst
    int64_t* fx
    int64_t kill          # the global kill switch

# -- CHECKS, EXPOSURE AND FILLS: engine/risk/checks.pxi, included where they are called --

# -- ADMIN (0: applied, else the reject reason) --
cdef uint16_t risk_set(Risk* r, uint8_t kind, uint32_t account, uint32_t instrument, int32_t b,
                       int64_t value, int64_t aux, int64_t ts) noexcept nogil
cdef uint16_t risk_kill(Risk* r, uint32_t account, bint everyone, uint8_t mode) noexcept nogil
cdef uint16_t risk_restrict(Risk* r, uint32_t account, bint everyone, int32_t b,
                            uint8_t on) noexcept nogil

# -- TABLES (Core.enable_risk, risk_state, export_state, load_state) --
cdef Risk* risk_from_tables(object tables) except NULL
cdef dict risk_to_tables(const Risk* r)
cdef bytes risk_bytes(const Risk* r)
cdef void risk_free(Risk* r) noexcept nogil
