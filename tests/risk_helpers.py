"""Helpers for the pre-trade risk tests (docs/RISK.md): tables built from a few lines, state
read back as dicts, RISK events as ``E`` tuples.

``make_tables`` builds the six RISK_TABLES arrays; ``risk_core`` registers the instruments on
a ``make_core`` engine and enables risk with them; ``position``, ``cash``, ``account`` and
``instrument`` read one row of ``risk_state()`` back as a dict of ints.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np

from engine.schema import RISK_TABLES, UNLIMITED, EventType
from tests.conftest import E, ev

# Currency 0 is USD, 1 is JPY. fx = rate * 10**(18 - decimals) with 2 decimals (docs/RISK.md,
# "Currencies"): USD 1.0, JPY 0.0067 USD.
USD, JPY = 0, 1
FX = [10 ** 16, 67 * 10 ** 12]

LIMIT_FIELDS = ("max_order_qty", "max_order_notional", "position_limit", "short_limit")


def make_tables(instruments: Iterable[tuple], currencies: Iterable[int] = (FX[USD],),
                accounts: Iterable[Mapping[str, Any]] = (), global_kill: int = 0
                ) -> dict[str, np.ndarray]:
    """The six risk tables.

    ``instruments``: ``(id, ccy, k, band_bps, ref_price, fee_ppm)`` in the core's registration
    order. ``currencies``: the fx of each. ``accounts``: dicts (ascending ``account``) with
    optional ``base_ccy`` (0), ``kill`` (0), ``max_open_orders``, ``rate_per_s`` (0),
    ``rate_burst`` (0), ``tokens_nano`` (default: a full bucket), ``last_ts`` (0);
    ``cash`` and ``credit``: ``{ccy: amount}``; ``positions``: ``{instrument: (position, cost)}``;
    the four per-instrument limits (``max_order_qty`` ...) for every instrument (default
    unlimited) and ``limits``: ``{instrument: {limit: value}}`` to override them for one;
    ``restricted``: instruments on the account's list.
    """
    instruments, currencies, accounts = list(instruments), list(currencies), list(accounts)
    n_acc, n_inst, n_ccy = len(accounts), len(instruments), len(currencies)
    t = {name: np.zeros(n, dtype=dtype) for (name, dtype), n in zip(
        RISK_TABLES.items(), [n_acc, n_acc * n_inst, n_acc * n_ccy, n_inst, n_ccy, 1])}
    for i, (inst_id, ccy, k, band_bps, ref_price, fee_ppm) in enumerate(instruments):
        row = t["instruments"][i]
        row["instrument"], row["ccy"], row["k"] = inst_id, ccy, k
        row["band_bps"], row["ref_price"], row["fee_ppm"] = band_bps, ref_price, fee_ppm
    t["currencies"]["fx"] = currencies
    t["global"]["kill"] = global_kill
    ids = [spec[0] for spec in instruments]
    for a, spec in enumerate(accounts):
        spec = dict(spec)
        row = t["accounts"][a]
        row["account"] = spec.pop("account")
        row["base_ccy"] = spec.pop("base_ccy", USD)
        row["kill"] = spec.pop("kill", 0)
        row["max_open_orders"] = spec.pop("max_open_orders", UNLIMITED)
        row["rate_per_s"] = spec.pop("rate_per_s", 0)
        row["rate_burst"] = spec.pop("rate_burst", 0)
        row["tokens_nano"] = spec.pop("tokens_nano", int(row["rate_burst"]) * 10 ** 9)
        row["last_ts"] = spec.pop("last_ts", 0)
        for c, amount in spec.pop("cash", {}).items():
            t["cash"][a * n_ccy + c]["cash"] = amount
        for c, amount in spec.pop("credit", {}).items():
            t["cash"][a * n_ccy + c]["credit"] = amount
        defaults = {f: spec.pop(f, UNLIMITED) for f in LIMIT_FIELDS}
        limits = spec.pop("limits", {})
        positions = spec.pop("positions", {})
        restricted = set(spec.pop("restricted", ()))
        assert not spec, f"unknown account fields: {sorted(spec)}"
        for i, inst_id in enumerate(ids):
            prow = t["positions"][a * n_inst + i]
            for f, value in {**defaults, **limits.get(inst_id, {})}.items():
                prow[f] = value
            prow["position"], prow["cost"] = positions.get(inst_id, (0, 0))
            prow["restricted"] = inst_id in restricted
    return t


def risk_core(make_core: Callable[..., Any], instruments: Iterable[tuple], **tables: Any) -> Any:
    """An engine (from the ``make_core`` fixture) with the instruments registered in this
    order and risk enabled with ``make_tables(instruments, **tables)``. An instrument may carry
    a seventh and eighth item, its ``min_qty`` and ``max_qty``."""
    instruments = list(instruments)
    core = make_core(*[(spec[0], *spec[6:8]) if len(spec) > 6 else spec[0]
                       for spec in instruments])
    core.enable_risk(make_tables([spec[:6] for spec in instruments], **tables))
    assert core.risk_enabled
    return core


# -- reading the state back -------------------------------------------------------------------

def _row(array: np.ndarray, index: int) -> dict[str, int]:
    return {name: int(array[index][name]) for name in array.dtype.names if name != "_pad"}


def _indexes(state: dict[str, np.ndarray], account_id: int, instrument_id: int | None = None
             ) -> tuple[int, int | None]:
    a = state["accounts"]["account"].tolist().index(account_id)
    i = None if instrument_id is None else \
        state["instruments"]["instrument"].tolist().index(instrument_id)
    return a, i


def position(core: Any, account_id: int, instrument_id: int) -> dict[str, int]:
    """The account's positions row for the instrument."""
    state = core.risk_state()
    a, i = _indexes(state, account_id, instrument_id)
    return _row(state["positions"], a * len(state["instruments"]) + i)


def cash(core: Any, account_id: int, ccy: int = USD) -> dict[str, int]:
    """The account's cash row in the currency."""
    state = core.risk_state()
    a, _ = _indexes(state, account_id)
    return _row(state["cash"], a * len(state["currencies"]) + ccy)


def account(core: Any, account_id: int) -> dict[str, int]:
    state = core.risk_state()
    a, _ = _indexes(state, account_id)
    return _row(state["accounts"], a)


def instrument(core: Any, instrument_id: int) -> dict[str, int]:
    state = core.risk_state()
    return _row(state["instruments"],
                state["instruments"]["instrument"].tolist().index(instrument_id))


def pnl(core: Any, account_id: int, instrument_id: int) -> tuple[int, int, int, int]:
    """``(position, cost, realized, fees)`` of the account on the instrument."""
    row = position(core, account_id, instrument_id)
    return row["position"], row["cost"], row["realized"], row["fees"]


def exposure(core: Any, account_id: int, instrument_id: int, ccy: int = USD
             ) -> tuple[int, int, int, int]:
    """``(open_orders, open_buy_qty, open_sell_qty, open_buy_notional)`` of the account."""
    row = position(core, account_id, instrument_id)
    return (account(core, account_id)["open_orders"], row["open_buy_qty"],
            row["open_sell_qty"], cash(core, account_id, ccy)["open_buy_notional"])


def tables_bytes(core: Any) -> bytes:
    return b"".join(array.tobytes() for array in core.risk_state().values())


# -- events -----------------------------------------------------------------------------------

def risk_event(reason: int, qty: int = 0, price: int = 0, order_id: int = 0) -> E:
    """A RISK event: reason = the kind, mode or restrict flag; qty/price = the values."""
    return E(EventType.RISK, order_id, 0, price, qty, 0, 0, int(reason))


RICH = 10 ** 15


def acct(account_id: int, **fields: Any) -> dict[str, Any]:
    """An account with plenty of cash in both currencies unless ``cash`` says otherwise."""
    return dict(account=account_id, **{"cash": {USD: RICH, JPY: RICH}, **fields})


def drained(core: Any) -> list[E]:
    return ev(core.drain_events())


def state_of(core: Any) -> tuple[str, bytes]:
    """What a rejected command must leave as it was: the digest and the risk tables."""
    return core.state_digest(), tables_bytes(core)
