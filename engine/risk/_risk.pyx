# cython: language_level=3, embedsignature=True
"""The compiled pre-trade risk checks and post-trade account updates (docs/RISK.md).

It owns the account tables while a core runs with risk on and changes them only through the
functions the core calls from its deterministic path. It must never read a clock or depend
on anything but its tables and the command in hand: its answers are a pure function of the
journal. Every product of two int64 values is taken in 128 bits; stored values saturate at
the int64 range, and the reference model (engine/risk/reference.py) does the same.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t, int32_t, uint32_t, uint16_t, uint8_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

import numpy as np

from ..schema import RISK_TABLES
from .tables import check_tables

cnp.import_array()

include "checks.pxi"


# -- admin ----------------------------------------------------------------------------------

cdef inline bint account_kind(uint8_t kind) noexcept nogil:
    return kind <= RK_CREDIT or kind == RK_CASH_ADJUST


cdef inline bint instrument_kind(uint8_t kind) noexcept nogil:
    # per instrument, or account x instrument (0: every instrument)
    return kind <= RK_SHORT_LIMIT or kind == RK_PRICE_BAND or kind == RK_REFERENCE_PRICE \
        or kind == RK_FEE


cdef inline bint currency_kind(uint8_t kind) noexcept nogil:
    return kind == RK_CREDIT or kind == RK_FX_RATE or kind == RK_CASH_ADJUST


cdef uint16_t risk_set(Risk* r, uint8_t kind, uint32_t account, uint32_t instrument, int32_t b,
                       int64_t value, int64_t aux, int64_t ts) noexcept nogil:
    # SET_RISK: validate in the documented order, then apply
    cdef int32_t a = -1, i
    cdef RCash* C
    cdef i128 cash
    if kind < RK_MAX_ORDER_QTY or kind > RK_FEE:
        return R_RISK_INVALID_VALUE
    if account_kind(kind):
        a = risk_account(r, account)
        if a < 0:
            return R_RISK_UNKNOWN_ACCOUNT
    if instrument_kind(kind) and (b < 0 or instrument == 0) and \
            (instrument != 0 or kind >= RK_PRICE_BAND):
        # account x instrument kinds take 0 for every instrument; instrument kinds need one
        return R_RISK_UNKNOWN_INSTRUMENT
    if currency_kind(kind) and instrument >= <uint32_t>r.n_ccy:
        return R_RISK_INVALID_VALUE
    # values
    if kind == RK_RATE:
        if not (0 <= value <= MAX_RATE and 1 <= aux <= MAX_RATE):
            return R_RISK_INVALID_VALUE
    elif kind == RK_PRICE_BAND or kind == RK_FEE:
        if not 0 <= value <= MAX_BPS:
            return R_RISK_INVALID_VALUE
    elif kind == RK_FX_RATE:
        if value <= 0:
            return R_RISK_INVALID_VALUE
    elif kind == RK_CASH_ADJUST:
        C = &r.cash[<Py_ssize_t>a * r.n_ccy + instrument]
        cash = <i128>C.cash + value
        if value == 0 or cash > RISK_I64_MAX or cash < RISK_I64_MIN:
            return R_RISK_INVALID_VALUE
    elif value < 0:
        return R_RISK_INVALID_VALUE
    # apply
    if kind <= RK_SHORT_LIMIT:
        for i in range(r.n_inst):
            if instrument != 0 and i != b:
                continue
            if kind == RK_MAX_ORDER_QTY:
                r.pos[<Py_ssize_t>a * r.n_inst + i].max_order_qty = value
            elif kind == RK_MAX_ORDER_NOTIONAL:
                r.pos[<Py_ssize_t>a * r.n_inst + i].max_order_notional = value
            elif kind == RK_POSITION_LIMIT:
                r.pos[<Py_ssize_t>a * r.n_inst + i].position_limit = value
            else:
                r.pos[<Py_ssize_t>a * r.n_inst + i].short_limit = value
    elif kind == RK_MAX_OPEN_ORDERS:
        r.acct[a].max_open_orders = value
    elif kind == RK_RATE:
        r.acct[a].rate_per_s = value
        r.acct[a].rate_burst = aux
        r.acct[a].tokens_nano = aux * NANO
        r.acct[a].last_ts = ts
    elif kind == RK_CREDIT:
        r.cash[<Py_ssize_t>a * r.n_ccy + instrument].credit = value
    elif kind == RK_PRICE_BAND:
        r.inst[b].band_bps = value
    elif kind == RK_REFERENCE_PRICE:
        r.inst[b].ref_price = value
    elif kind == RK_FX_RATE:
        r.fx[instrument] = value
    elif kind == RK_CASH_ADJUST:
        r.cash[<Py_ssize_t>a * r.n_ccy + instrument].cash += value
    else:
        r.inst[b].fee_ppm = value
    return 0


cdef uint16_t risk_kill(Risk* r, uint32_t account, bint everyone, uint8_t mode) noexcept nogil:
    cdef int32_t a
    if mode > KILL_KILLED:
        return R_RISK_INVALID_VALUE
    if everyone:
        r.kill = mode
        return 0
    a = risk_account(r, account)
    if a < 0:
        return R_RISK_UNKNOWN_ACCOUNT
    r.acct[a].kill = mode
    return 0


cdef uint16_t risk_restrict(Risk* r, uint32_t account, bint everyone, int32_t b,
                            uint8_t on) noexcept nogil:
    cdef int32_t a = -1
    if on > 1:
        return R_RISK_INVALID_VALUE
    if b < 0:
        return R_RISK_UNKNOWN_INSTRUMENT
    if everyone:
        r.inst[b].restricted = on
        return 0
    a = risk_account(r, account)
    if a < 0:
        return R_RISK_UNKNOWN_ACCOUNT
    r.pos[<Py_ssize_t>a * r.n_inst + b].restricted = on
    return 0


# -- tables ---------------------------------------------------------------------------------

cdef void* _copy_in(cnp.ndarray arr, size_t item) except? NULL:
    cdef size_t n = <size_t>arr.shape[0]
    cdef void* p = calloc(n if n else 1, item)
    if p == NULL:
        raise MemoryError()
    if n:
        memcpy(p, cnp.PyArray_DATA(arr), n * item)
    return p


cdef Risk* risk_from_tables(object tables) except NULL:
    """A new Risk from tables that check_tables has passed (``tables`` is its result)."""
    cdef Risk* r = <Risk*>calloc(1, sizeof(Risk))
    if r == NULL:
        raise MemoryError()
    try:
        r.n_acct = len(tables["accounts"])
        r.n_inst = len(tables["instruments"])
        r.n_ccy = len(tables["currencies"])
        r.acct = <RAccount*>_copy_in(tables["accounts"], sizeof(RAccount))
        r.pos = <RPosition*>_copy_in(tables["positions"], sizeof(RPosition))
        r.cash = <RCash*>_copy_in(tables["cash"], sizeof(RCash))
        r.inst = <RInstrument*>_copy_in(tables["instruments"], sizeof(RInstrument))
        r.fx = <int64_t*>_copy_in(tables["currencies"], sizeof(int64_t))
        r.kill = int(tables["global"]["kill"][0])
        ids = tables["accounts"]["account"]
        top = int(ids[-1]) + 1 if len(ids) else 0
        if top <= MAX_INDEX:
            r.index = <int32_t*>malloc(<size_t>(top if top else 1) * sizeof(int32_t))
            if r.index == NULL:
                raise MemoryError()
            r.n_index = top
            for i in range(top):
                r.index[i] = -1
            for i, a in enumerate(ids.tolist()):
                r.index[a] = i
    except BaseException:
        risk_free(r)
        raise
    return r


cdef object _copy_out(const void* p, Py_ssize_t n, object dtype):
    cdef cnp.ndarray out = np.empty(n, dtype=dtype)
    if n:
        memcpy(cnp.PyArray_DATA(out), p, <size_t>n * out.itemsize)
    return out


cdef dict risk_to_tables(const Risk* r):
    glob = np.zeros(1, dtype=RISK_TABLES["global"])
    glob["kill"] = r.kill
    return {
        "accounts": _copy_out(r.acct, r.n_acct, RISK_TABLES["accounts"]),
        "positions": _copy_out(r.pos, <Py_ssize_t>r.n_acct * r.n_inst, RISK_TABLES["positions"]),
        "cash": _copy_out(r.cash, <Py_ssize_t>r.n_acct * r.n_ccy, RISK_TABLES["cash"]),
        "instruments": _copy_out(r.inst, r.n_inst, RISK_TABLES["instruments"]),
        "currencies": _copy_out(r.fx, r.n_ccy, RISK_TABLES["currencies"]),
        "global": glob,
    }


cdef bytes risk_bytes(const Risk* r):
    """The six tables' bytes in digest order (docs/RISK.md, "Digest")."""
    return b"".join(arr.tobytes() for arr in risk_to_tables(r).values())


cdef void risk_free(Risk* r) noexcept nogil:
    if r == NULL:
        return
    free(r.acct)
    free(r.pos)
    free(r.cash)
    free(r.inst)
    free(r.fx)
    free(r.index)
    free(r)


def _c_codes():
    """The C enum values compiled into the risk checks, so a test can hold them to
    engine/schema.py."""
    return {
        "KillSwitch": {"ACTIVE": KILL_ACTIVE, "REDUCE_ONLY": KILL_REDUCE_ONLY,
                       "KILLED": KILL_KILLED},
        "RiskKind": {"MAX_ORDER_QTY": RK_MAX_ORDER_QTY,
                     "MAX_ORDER_NOTIONAL": RK_MAX_ORDER_NOTIONAL,
                     "POSITION_LIMIT": RK_POSITION_LIMIT, "SHORT_LIMIT": RK_SHORT_LIMIT,
                     "MAX_OPEN_ORDERS": RK_MAX_OPEN_ORDERS, "RATE": RK_RATE,
                     "CREDIT": RK_CREDIT, "PRICE_BAND": RK_PRICE_BAND,
                     "REFERENCE_PRICE": RK_REFERENCE_PRICE, "FX_RATE": RK_FX_RATE,
                     "CASH_ADJUST": RK_CASH_ADJUST, "FEE": RK_FEE},
        "Reason": {
            "RISK_UNKNOWN_ACCOUNT": R_RISK_UNKNOWN_ACCOUNT,
            "RISK_NO_REFERENCE_PRICE": R_RISK_NO_REFERENCE_PRICE,
            "RISK_PRICE_BAND": R_RISK_PRICE_BAND,
            "RISK_MAX_ORDER_QTY": R_RISK_MAX_ORDER_QTY,
            "RISK_MAX_ORDER_NOTIONAL": R_RISK_MAX_ORDER_NOTIONAL,
            "RISK_INSUFFICIENT_CASH": R_RISK_INSUFFICIENT_CASH,
            "RISK_INSUFFICIENT_POSITION": R_RISK_INSUFFICIENT_POSITION,
            "RISK_POSITION_LIMIT": R_RISK_POSITION_LIMIT,
            "RISK_MAX_OPEN_ORDERS": R_RISK_MAX_OPEN_ORDERS,
            "RISK_RATE_LIMITED": R_RISK_RATE_LIMITED,
            "RISK_RESTRICTED": R_RISK_RESTRICTED,
            "RISK_RESTRICTED_GLOBAL": R_RISK_RESTRICTED_GLOBAL,
            "RISK_KILL_SWITCH": R_RISK_KILL_SWITCH,
            "RISK_KILL_SWITCH_GLOBAL": R_RISK_KILL_SWITCH_GLOBAL,
            "RISK_REDUCE_ONLY": R_RISK_REDUCE_ONLY,
            "RISK_INVALID_VALUE": R_RISK_INVALID_VALUE,
            "RISK_DISABLED": R_RISK_DISABLED,
            "BOOK_UNKNOWN_INSTRUMENT": R_RISK_UNKNOWN_INSTRUMENT,
        },
    }
