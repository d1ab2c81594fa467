"""The risk tables' validation, shared by the compiled core and the reference model.

Owns what ``enable_risk`` and a snapshot's risk sections must satisfy (docs/RISK.md,
"State"). Must never change a table: it returns contiguous copies or raises.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..schema import INT64_MAX, NOTIONAL_CAP, RISK_TABLES, KillSwitch

__all__ = ["check_tables", "check_exposure", "exposure", "MAX_RATE", "MAX_BPS", "MAX_FEE_PPM"]

MAX_RATE = 10**9        # rate_per_s and rate_burst
MAX_BPS = 1_000_000     # band_bps
MAX_FEE_PPM = 1_000_000


def _fail(table: str, row: int, what: str) -> ValueError:
    return ValueError(f"risk table {table!r} row {row}: {what}")


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _range(arr: np.ndarray, table: str, field: str, lo: int, hi: int = INT64_MAX) -> None:
    col = arr[field]
    row = _first((col < lo) | (col > hi))
    if row is not None:
        raise _fail(table, row, f"{field} must be in {lo}..{hi}, got {col[row]}")


def check_tables(tables: Any, instrument_ids: Sequence[int],
                 fresh: bool = True) -> dict[str, np.ndarray]:
    """The six tables as contiguous arrays, checked against docs/RISK.md.

    ``instrument_ids``: the core's instruments in registration order. ``fresh``: the tables
    start a core without orders, so every open-order count and exposure must be 0 (a
    snapshot's tables, loaded with their orders, pass ``fresh=False``). TypeError for a
    wrong type, a missing or unknown key or a wrong dtype; ValueError for a bad value.
    """
    if not isinstance(tables, Mapping):
        raise TypeError(f"risk tables must be a dict of numpy arrays, got {type(tables).__name__}")
    missing = [k for k in RISK_TABLES if k not in tables]
    if missing:
        raise TypeError(f"risk tables are missing {', '.join(missing)}")
    unknown = sorted(str(k) for k in tables if k not in RISK_TABLES)
    if unknown:
        raise TypeError(f"risk tables have unknown keys: {', '.join(unknown)}")
    out: dict[str, np.ndarray] = {}
    for key, dtype in RISK_TABLES.items():
        arr = tables[key]
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
            raise TypeError(f"risk table {key!r} must be a numpy array of its RISK_* dtype, got "
                            f"{getattr(arr, 'dtype', type(arr).__name__)}")
        if arr.ndim != 1:
            raise TypeError(f"risk table {key!r} must be one-dimensional, got {arr.ndim}")
        out[key] = np.ascontiguousarray(arr).copy()
    acct, pos, cash = out["accounts"], out["positions"], out["cash"]
    inst, ccy, glob = out["instruments"], out["currencies"], out["global"]
    n_acct, n_inst, n_ccy = len(acct), len(inst), len(ccy)
    if n_ccy < 1:
        raise ValueError("risk tables need at least one currency")
    if len(glob) != 1:
        raise ValueError(f"risk table 'global' must have one row, got {len(glob)}")
    if len(pos) != n_acct * n_inst:
        raise ValueError(f"risk table 'positions' must have accounts x instruments ="
                         f" {n_acct * n_inst} rows, got {len(pos)}")
    if len(cash) != n_acct * n_ccy:
        raise ValueError(f"risk table 'cash' must have accounts x currencies ="
                         f" {n_acct * n_ccy} rows, got {len(cash)}")
    ids = inst["instrument"].tolist()
    if ids != list(instrument_ids):
        raise ValueError(f"risk table 'instruments' lists {ids}; the core's instruments, in"
                         f" registration order, are {list(instrument_ids)}")
    # accounts
    a_ids = acct["account"].astype(np.int64)
    row = _first(a_ids == 0)
    if row is not None:
        raise _fail("accounts", row, "account id 0 is not an account")
    if n_acct > 1:
        row = _first(np.diff(a_ids) <= 0)
        if row is not None:
            raise _fail("accounts", row + 1, "account ids must be strictly ascending")
    _range(acct, "accounts", "base_ccy", 0, n_ccy - 1)
    _range(acct, "accounts", "kill", 0, max(KillSwitch))
    _range(acct, "accounts", "max_open_orders", 0)
    _range(acct, "accounts", "rate_per_s", 0, MAX_RATE)
    _range(acct, "accounts", "rate_burst", 0, MAX_RATE)
    row = _first((acct["rate_per_s"] > 0) & (acct["rate_burst"] < 1))
    if row is not None:
        raise _fail("accounts", row, "rate_burst must be >= 1 when rate_per_s > 0")
    _range(acct, "accounts", "tokens_nano", 0, INT64_MAX)
    row = _first(acct["tokens_nano"] > acct["rate_burst"] * 10**9)
    if row is not None:
        raise _fail("accounts", row, "tokens_nano must be at most rate_burst * 10**9")
    # positions
    for f in ("max_order_qty", "max_order_notional", "position_limit", "short_limit"):
        _range(pos, "positions", f, 0)
    for f in ("cost", "open_buy_qty", "open_sell_qty"):
        _range(pos, "positions", f, 0)
    # fees may be negative: a venue's maker rebate (docs/ROUTING.md, "Fees on every trade")
    row = _first(pos["restricted"] > 1)
    if row is not None:
        raise _fail("positions", row, "restricted must be 0 or 1")
    row = _first((pos["position"] == 0) & (pos["cost"] != 0))
    if row is not None:
        raise _fail("positions", row, "a flat position (0) must have cost 0")
    # cash
    _range(cash, "cash", "credit", 0)
    _range(cash, "cash", "open_buy_notional", 0)
    # instruments and currencies
    _range(inst, "instruments", "ccy", 0, n_ccy - 1)
    _range(inst, "instruments", "k", 1)
    _range(inst, "instruments", "band_bps", 0, MAX_BPS)
    _range(inst, "instruments", "ref_price", 0)
    _range(inst, "instruments", "last_price", 0)
    _range(inst, "instruments", "fee_ppm", 0, MAX_FEE_PPM)
    row = _first(inst["restricted"] > 1)
    if row is not None:
        raise _fail("instruments", row, "restricted must be 0 or 1")
    _range(ccy, "currencies", "fx", 1)
    _range(glob, "global", "kill", 0, max(KillSwitch))
    if fresh:
        for t, f in (("accounts", "open_orders"), ("positions", "open_buy_qty"),
                     ("positions", "open_sell_qty"), ("cash", "open_buy_notional")):
            row = _first(out[t][f] != 0)
            if row is not None:
                raise _fail(t, row, f"{f} must be 0: a core takes risk before any order")
    else:
        _range(acct, "accounts", "open_orders", 0)
    for t in ("accounts", "positions", "instruments"):
        if np.any(out[t]["_pad"]):
            raise _fail(t, _first(out[t]["_pad"].any(axis=1)), "pad bytes must be 0")
    return out


def _index(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, int | None]:
    """For each of ``wanted``, its row in ``keys`` (unique, any order), and the first position
    of ``wanted`` that ``keys`` does not hold (None: every one is there)."""
    if not len(keys):
        return np.zeros(len(wanted), dtype=np.int64), (0 if len(wanted) else None)
    order = np.argsort(keys, kind="stable")
    pos = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
    rows = order[pos]
    return rows, _first(keys[rows] != wanted)


def exposure(tables: Mapping[str, np.ndarray], orders: np.ndarray) -> dict[str, np.ndarray]:
    """What resting ``orders`` (ORDER_STATE_DTYPE) add up to in the tables' terms, as int64
    arrays: ``open_orders`` per account, ``open_buy_qty``/``open_sell_qty`` per position row
    and ``open_buy_notional`` per cash row (each order's notional capped at NOTIONAL_CAP + 1,
    as the core counts it). ValueError if an order's account or instrument has no risk
    record. O(orders), vectorized."""
    acct, inst = tables["accounts"], tables["instruments"]
    n_acct, n_inst, n_ccy = len(acct), len(inst), len(tables["currencies"])
    a, bad = _index(acct["account"].astype(np.int64), orders["account"].astype(np.int64))
    if bad is not None:
        raise ValueError(f"orders[{bad}] (order id {orders['order_id'][bad]}): account"
                         f" {orders['account'][bad]} has no risk record")
    i, bad = _index(inst["instrument"].astype(np.int64), orders["instrument"].astype(np.int64))
    if bad is not None:
        raise ValueError(f"orders[{bad}] (order id {orders['order_id'][bad]}): instrument"
                         f" {orders['instrument'][bad]} has no risk record")
    open_qty = orders["qty"] - orders["filled"]
    buy = orders["side"] == 1
    k = inst["k"][i]
    # price x open x k, exact below the cap; the products are only used where they fit
    fits = (open_qty <= NOTIONAL_CAP // k) & \
        (orders["price"] <= NOTIONAL_CAP // np.maximum(open_qty * k, 1))
    with np.errstate(over="ignore"):
        notional = np.where(fits, orders["price"] * open_qty * k, NOTIONAL_CAP + 1)
    out = {"open_orders": np.bincount(a, minlength=n_acct).astype(np.int64)}
    for field, rows, size, values, take in (
            ("open_buy_qty", a * n_inst + i, n_acct * n_inst, open_qty, buy),
            ("open_sell_qty", a * n_inst + i, n_acct * n_inst, open_qty, ~buy),
            ("open_buy_notional", a * n_ccy + inst["ccy"][i], n_acct * n_ccy, notional, buy)):
        total = np.zeros(size, dtype=np.int64)
        np.add.at(total, rows[take], values[take])
        out[field] = total
    return out


def check_exposure(tables: Mapping[str, np.ndarray], orders: np.ndarray) -> None:
    """ValueError unless the tables' open-order counts and exposure are what ``orders`` (the
    resting orders of the same state) add up to."""
    want = exposure(tables, orders)
    for table, field in (("accounts", "open_orders"), ("positions", "open_buy_qty"),
                         ("positions", "open_sell_qty"), ("cash", "open_buy_notional")):
        have = tables[table][field]
        row = _first(have != want[field])
        if row is not None:
            raise _fail(table, row, f"{field} is {have[row]}, the resting orders add up to"
                                    f" {want[field][row]}")
