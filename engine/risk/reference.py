"""The pre-trade risk reference model: docs/RISK.md written out literally, in plain Python.

Owns the six risk tables (accounts, positions, cash, instruments, currencies, global) as rows
of Python ints, the checks that read them and the updates that fills, rests and leaves make.
``engine/reference.py`` (ReferenceCore) calls it; it knows nothing about books or events.
Must never import the compiled core, never use a float, and never disagree with
docs/RISK.md: where the two differ, this file is the bug.

Arithmetic is exact (Python ints); where docs/RISK.md says a value is capped or saturates,
the cap or the saturation is applied here exactly as documented: ``notional()`` caps at
``NOTIONAL_CAP + 1``, every stored int64 field saturates at the int64 range, conversions
between currencies round up.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Protocol

import numpy as np

from ..schema import (
    INT64_MAX,
    NOTIONAL_CAP,
    RISK_TABLES,
    KillSwitch,
    OrdType,
    Reason,
    RiskKind,
    Side,
    TimeInForce,
)
from .tables import MAX_BPS, MAX_FEE_PPM, MAX_RATE, check_tables

__all__ = ["RiskModel", "notional", "convert", "saturate", "ceil_div", "fee"]

INT64_MIN = -(1 << 63)
NANO = 10 ** 9  # nano-tokens per token of the order-rate bucket
KINDS = frozenset(int(kind) for kind in RiskKind)
MODES = frozenset(int(mode) for mode in KillSwitch)


# ---------------------------------------------------------------------------------------------
# Integer helpers
# ---------------------------------------------------------------------------------------------

def saturate(x: int) -> int:
    """``x`` clamped to the int64 range (what every stored int64 field does)."""
    return max(INT64_MIN, min(INT64_MAX, x))


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for ``b > 0``, exactly."""
    return -((-a) // b)


def notional(price: int, qty: int, k: int) -> int:
    """``price * qty * k`` cash units, exact up to NOTIONAL_CAP; above it, NOTIONAL_CAP + 1."""
    return min(price * qty * k, NOTIONAL_CAP + 1)


def fee(n: int, ppm: int) -> int:
    """docs/ROUTING.md, "Fees on every trade": ``ppm`` millionths of the notional ``n >= 0``,
    a fee (``ppm >= 0``) rounded up, a rebate (``ppm < 0``) rounded toward zero; saturating at
    the int64 range (reached only by a 2_000_000 ppm fee on a notional at NOTIONAL_CAP)."""
    if ppm >= 0:
        return saturate(ceil_div(n * ppm, 10 ** 6))
    return saturate(-((n * -ppm) // 10 ** 6))


def convert(x: int, from_fx: int, to_fx: int, same: bool) -> int:
    """``x >= 0`` cash units of one currency in another: ``ceil(x * fx[a] / fx[b])``."""
    return x if same else ceil_div(x * from_fx, to_fx)


# ---------------------------------------------------------------------------------------------
# Rows: one dataclass per table, its fields the dtype's fields in order (``_pad`` left out)
# ---------------------------------------------------------------------------------------------

@dataclass(eq=False)
class AccountRow:
    account: int
    base_ccy: int
    kill: int
    open_orders: int
    max_open_orders: int
    rate_per_s: int
    rate_burst: int
    tokens_nano: int
    last_ts: int


@dataclass(eq=False)
class PositionRow:
    position: int
    cost: int
    realized: int
    fees: int
    open_buy_qty: int
    open_sell_qty: int
    max_order_qty: int
    max_order_notional: int
    position_limit: int
    short_limit: int
    restricted: int


@dataclass(eq=False)
class CashRow:
    cash: int
    credit: int
    open_buy_notional: int


@dataclass(eq=False)
class InstrumentRow:
    instrument: int
    ccy: int
    k: int
    band_bps: int
    ref_price: int
    last_price: int
    fee_ppm: int
    restricted: int


@dataclass(eq=False)
class CurrencyRow:
    fx: int


@dataclass(eq=False)
class GlobalRow:
    kill: int


ROW_TYPES: dict[str, type] = {
    "accounts": AccountRow,
    "positions": PositionRow,
    "cash": CashRow,
    "instruments": InstrumentRow,
    "currencies": CurrencyRow,
    "global": GlobalRow,
}

# The dataclasses must mirror engine/schema.py's layouts exactly (pad fields aside).
for _name, _dtype in RISK_TABLES.items():
    assert [f.name for f in fields(ROW_TYPES[_name])] == \
        [n for n in _dtype.names if not n.startswith("_")], _name


def _rows(name: str, array: np.ndarray) -> list:
    """A table's rows as dataclasses of Python ints."""
    row_type = ROW_TYPES[name]
    names = [f.name for f in fields(row_type)]
    columns = [array[n].tolist() for n in names]
    return [row_type(*(int(v) for v in values)) for values in zip(*columns)]


def _array(name: str, rows: list) -> np.ndarray:
    """Rows back as a numpy table of RISK_TABLES[name], pad bytes zero."""
    array = np.zeros(len(rows), dtype=RISK_TABLES[name])
    for f in fields(ROW_TYPES[name]):
        array[f.name] = [getattr(row, f.name) for row in rows]
    return array


class OrderLike(Protocol):
    """What the model reads of an order (engine/reference.py's ``Order``)."""

    order_id: int
    instrument: int
    account: int
    side: int
    price: int
    qty: int
    filled: int

    @property
    def open(self) -> int: ...


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------

class RiskModel:
    """The risk state of one core and the rules of docs/RISK.md over it.

    Built from the tables ``enable_risk()`` takes (validated by ``engine.risk.tables``:
    TypeError for a wrong type, dtype, missing or unknown table; ValueError for a bad value);
    ``export()`` gives them back in the same layout. ``instrument_ids`` are the core's
    instruments in registration order.
    """

    def __init__(self, tables: dict[str, np.ndarray], instrument_ids: Iterable[int]) -> None:
        # The refusals of docs/RISK.md ("enable_risk refuses ..."), shared with the compiled
        # core so that both refuse the same tables with the same error.
        tables = check_tables(tables, list(instrument_ids), fresh=True)
        self.accounts: list[AccountRow] = _rows("accounts", tables["accounts"])
        self.positions: list[PositionRow] = _rows("positions", tables["positions"])
        self.cash: list[CashRow] = _rows("cash", tables["cash"])
        self.instruments: list[InstrumentRow] = _rows("instruments", tables["instruments"])
        self.currencies: list[CurrencyRow] = _rows("currencies", tables["currencies"])
        self.global_: list[GlobalRow] = _rows("global", tables["global"])
        # account id -> row index a; instrument id -> row index i (registration order)
        self._account_index = {row.account: a for a, row in enumerate(self.accounts)}
        self._instrument_index = {row.instrument: i for i, row in enumerate(self.instruments)}

    # -- state out -----------------------------------------------------------------------------

    def export(self) -> dict[str, np.ndarray]:
        """The six tables as fresh numpy arrays (RISK_TABLES layouts and order, pad bytes 0)."""
        rows = {"accounts": self.accounts, "positions": self.positions, "cash": self.cash,
                "instruments": self.instruments, "currencies": self.currencies,
                "global": self.global_}
        return {name: _array(name, rows[name]) for name in RISK_TABLES}

    def digest_bytes(self) -> bytes:
        """The raw bytes of the six tables in RISK_TABLES order (what state_digest() appends)."""
        return b"".join(array.tobytes() for array in self.export().values())

    # -- lookups -------------------------------------------------------------------------------

    def has_account(self, account: int) -> bool:
        return account in self._account_index

    def has_instrument(self, instrument: int) -> bool:
        return instrument in self._instrument_index

    def _account(self, account: int) -> AccountRow:
        return self.accounts[self._account_index[account]]

    def _instrument(self, instrument: int) -> InstrumentRow:
        return self.instruments[self._instrument_index[instrument]]

    def _position(self, account: int, instrument: int) -> PositionRow:
        a, i = self._account_index[account], self._instrument_index[instrument]
        return self.positions[a * len(self.instruments) + i]

    def _cash(self, account: int, ccy: int) -> CashRow:
        return self.cash[self._account_index[account] * len(self.currencies) + ccy]

    def _convert(self, x: int, from_ccy: int, to_ccy: int) -> int:
        return convert(x, self.currencies[from_ccy].fx, self.currencies[to_ccy].fx,
                       from_ccy == to_ccy)

    @staticmethod
    def reference_price(inst: InstrumentRow) -> int | None:
        """The last trade price in this core, else the configured one, else none (0: none)."""
        if inst.last_price > 0:
            return inst.last_price
        if inst.ref_price > 0:
            return inst.ref_price
        return None

    # -- the checks ------------------------------------------------------------------------------

    def check_new(self, account: int, instrument: int, side: int, ord_type: int, tif: int,
                  price: int, qty: int, ts_ns: int) -> tuple[Reason, int | None]:
        """Checks 0 and 3..10 of a NEW that passed the core's own validation (up to the
        duplicate id). Returns the first failing code (Reason.NONE: it passes) and, for a
        market order, its protection price: the worst price it may trade at."""
        if not self.has_account(account):
            return Reason.RISK_UNKNOWN_ACCOUNT, None
        acct = self._account(account)
        inst = self._instrument(instrument)
        pos = self._position(account, instrument)
        cash = self._cash(account, inst.ccy)

        # 3. price band; w = the worst price the order may trade at
        ref = self.reference_price(inst)
        band = ref * inst.band_bps // 10000 if ref is not None else 0
        protect = None
        if ord_type == OrdType.LIMIT:
            if self._outside_band(inst, price):
                return Reason.RISK_PRICE_BAND, None
            worst = price
        else:
            if ref is None:
                return Reason.RISK_NO_REFERENCE_PRICE, None
            worst = ref + band
            protect = ref + band if side == Side.BUY else ref - band

        # 4. order size
        if qty > pos.max_order_qty:
            return Reason.RISK_MAX_ORDER_QTY, None
        n = notional(worst, qty, inst.k)
        if self._over_notional(n, inst, acct, pos):
            return Reason.RISK_MAX_ORDER_NOTIONAL, None

        # 5. buying power, 6. position limit
        if side == Side.BUY:
            if n > cash.cash + cash.credit - cash.open_buy_notional:
                return Reason.RISK_INSUFFICIENT_CASH, None
            if pos.position + pos.open_buy_qty + qty > pos.position_limit:
                return Reason.RISK_POSITION_LIMIT, None
        else:
            if qty > pos.position - pos.open_sell_qty + pos.short_limit:
                return Reason.RISK_INSUFFICIENT_POSITION, None
            if pos.position - pos.open_sell_qty - qty < -pos.position_limit:
                return Reason.RISK_POSITION_LIMIT, None

        # 7. open orders: only a GTC limit order can rest
        if ord_type == OrdType.LIMIT and tif == TimeInForce.GTC:
            if acct.open_orders + 1 > acct.max_open_orders:
                return Reason.RISK_MAX_OPEN_ORDERS, None

        # 8..10
        reason = self._rate_restricted_kill(acct, inst, pos, side, qty, own_open=0, ts_ns=ts_ns)
        return reason, protect

    def check_replace(self, order: OrderLike, price: int, qty: int, ts_ns: int) -> Reason:
        """Checks of a REPLACE of the resting ``order`` to ``price`` and total ``qty`` that
        passed the core's checks: 0, 3, 4, 5 and 6 on the change, 8, 9, 10 (not 7)."""
        if not self.has_account(order.account):
            return Reason.RISK_UNKNOWN_ACCOUNT
        acct = self._account(order.account)
        inst = self._instrument(order.instrument)
        pos = self._position(order.account, order.instrument)
        cash = self._cash(order.account, inst.ccy)

        # 3. the band, on the new price
        if self._outside_band(inst, price):
            return Reason.RISK_PRICE_BAND

        # 4. the new total
        if qty > pos.max_order_qty:
            return Reason.RISK_MAX_ORDER_QTY
        if self._over_notional(notional(price, qty, inst.k), inst, acct, pos):
            return Reason.RISK_MAX_ORDER_NOTIONAL

        # 5. and 6., only on the change (and only when it grows)
        old_open, new_open = order.open, qty - order.filled
        more = new_open - old_open
        if order.side == Side.BUY:
            more_cash = notional(price, new_open, inst.k) - notional(order.price, old_open, inst.k)
            if more_cash > 0 and more_cash > cash.cash + cash.credit - cash.open_buy_notional:
                return Reason.RISK_INSUFFICIENT_CASH
            if more > 0 and pos.position + pos.open_buy_qty + more > pos.position_limit:
                return Reason.RISK_POSITION_LIMIT
        elif more > 0:
            if more > pos.position - pos.open_sell_qty + pos.short_limit:
                return Reason.RISK_INSUFFICIENT_POSITION
            if pos.position - pos.open_sell_qty - more < -pos.position_limit:
                return Reason.RISK_POSITION_LIMIT

        # 8..10, the order's own open quantity taken out for the reduce-only test; a replace
        # that only lowers the quantity at the same price is not held by a restricted list
        return self._rate_restricted_kill(acct, inst, pos, order.side, new_open,
                                          own_open=old_open, ts_ns=ts_ns,
                                          restricted=not (price == order.price and more <= 0))

    def _outside_band(self, inst: InstrumentRow, price: int) -> bool:
        """Check 3 for a limit price: outside ref +- band (no reference or band 0: never)."""
        ref = self.reference_price(inst)
        if ref is None or inst.band_bps == 0:
            return False
        band = ref * inst.band_bps // 10000
        return not ref - band <= price <= ref + band

    def _over_notional(self, n: int, inst: InstrumentRow, acct: AccountRow,
                       pos: PositionRow) -> bool:
        """Check 4's notional half: past the cap, or past the limit in the base currency."""
        return n > NOTIONAL_CAP or \
            self._convert(n, inst.ccy, acct.base_ccy) > pos.max_order_notional

    def _rate_restricted_kill(self, acct: AccountRow, inst: InstrumentRow, pos: PositionRow,
                              side: int, qty: int, own_open: int, ts_ns: int,
                              restricted: bool = True) -> Reason:
        """Checks 8 (order rate), 9 (restricted lists, unless ``restricted`` is False) and 10
        (kill switch)."""
        # 8. order rate
        tokens = self._tokens(acct, ts_ns)
        if tokens is not None and tokens < NANO:
            return Reason.RISK_RATE_LIMITED
        # 9. restricted lists
        if restricted and pos.restricted:
            return Reason.RISK_RESTRICTED
        if restricted and inst.restricted:
            return Reason.RISK_RESTRICTED_GLOBAL
        # 10. kill switch: the higher of the account's and the global mode is in force
        mode = max(acct.kill, self.global_[0].kill)
        if mode == KillSwitch.KILLED:
            if acct.kill == KillSwitch.KILLED:
                return Reason.RISK_KILL_SWITCH
            return Reason.RISK_KILL_SWITCH_GLOBAL
        if mode == KillSwitch.REDUCE_ONLY:
            if side == Side.BUY:
                ok = pos.position < 0 and pos.open_buy_qty - own_open + qty <= -pos.position
            else:
                ok = pos.position > 0 and pos.open_sell_qty - own_open + qty <= pos.position
            if not ok:
                return Reason.RISK_REDUCE_ONLY
        return Reason.NONE

    @staticmethod
    def _tokens(acct: AccountRow, ts_ns: int) -> int | None:
        """The account's bucket, in nano-tokens, at ``ts_ns``; None when it has no rate."""
        if acct.rate_per_s <= 0:
            return None
        refill = max(0, ts_ns - acct.last_ts) * acct.rate_per_s
        return min(acct.rate_burst * NANO, acct.tokens_nano + refill)

    # -- what an accepted order changes --------------------------------------------------------

    def take_token(self, account: int, ts_ns: int) -> None:
        """An accepted NEW or REPLACE takes one token from a rate-limited account's bucket."""
        acct = self._account(account)
        tokens = self._tokens(acct, ts_ns)
        if tokens is None:
            return
        acct.tokens_nano = tokens - NANO
        acct.last_ts = max(acct.last_ts, ts_ns)

    def rest(self, order: OrderLike) -> None:
        """``order`` rests with its open quantity: its exposure is added."""
        self._exposure(order, +1)

    def leave(self, order: OrderLike) -> None:
        """``order`` leaves the book with its open quantity: its exposure is taken back. (A maker
        that filled completely leaves with 0 open: only ``open_orders`` changes then.)"""
        self._exposure(order, -1)

    def _exposure(self, order: OrderLike, sign: int) -> None:
        acct = self._account(order.account)
        inst = self._instrument(order.instrument)
        pos = self._position(order.account, order.instrument)
        acct.open_orders = saturate(acct.open_orders + sign)
        if order.side == Side.BUY:
            pos.open_buy_qty = saturate(pos.open_buy_qty + sign * order.open)
            cash = self._cash(order.account, inst.ccy)
            cash.open_buy_notional = saturate(
                cash.open_buy_notional + sign * notional(order.price, order.open, inst.k))
        else:
            pos.open_sell_qty = saturate(pos.open_sell_qty + sign * order.open)

    def fee_ppm(self, instrument: int) -> int:
        """The instrument's risk fee ``F`` (docs/ROUTING.md, "Fees on every trade")."""
        return self._instrument(instrument).fee_ppm

    def k(self, instrument: int) -> int:
        """The instrument's cash units per tick x lot (the tables' ``k``)."""
        return self._instrument(instrument).k

    def fill(self, taker: OrderLike, maker: OrderLike, price: int, qty: int,
             taker_fee: int, maker_fee: int) -> None:
        """One fill of ``qty`` lots at ``price`` (the maker's) ticks: cash, fees, positions,
        cost and realized P&L of each side (taker first, then maker), the maker's open
        exposure, the instrument's last price. The fees are the caller's (docs/ROUTING.md:
        the venue's fee plus the instrument's ``fee_ppm``; a negative fee is a rebate)."""
        inst = self._instrument(taker.instrument)
        n = price * qty * inst.k
        for order, fee_ in ((taker, taker_fee), (maker, maker_fee)):
            self._fill_side(order.account, inst, order.side, qty, n, fee_)
        # the resting maker's open quantity shrinks (at its own price: n is its notional)
        pos = self._position(maker.account, maker.instrument)
        if maker.side == Side.BUY:
            pos.open_buy_qty = saturate(pos.open_buy_qty - qty)
            cash = self._cash(maker.account, inst.ccy)
            cash.open_buy_notional = saturate(cash.open_buy_notional - n)
        else:
            pos.open_sell_qty = saturate(pos.open_sell_qty - qty)
        inst.last_price = price

    def _fill_side(self, account: int, inst: InstrumentRow, side: int, qty: int, n: int,
                   fee: int) -> None:
        """One side of a fill: pay or get the notional, pay the fee, move the position."""
        cash = self._cash(account, inst.ccy)
        pos = self._position(account, inst.instrument)
        if side == Side.BUY:
            cash.cash = saturate(cash.cash - n - fee)
            d = qty
        else:
            cash.cash = saturate(cash.cash + n - fee)
            d = -qty
        pos.fees = saturate(pos.fees + fee)
        self._move_position(pos, d, n)

    @staticmethod
    def _move_position(pos: PositionRow, d: int, n: int) -> None:
        """The cost rule: position P and cost C move by a fill of signed quantity ``d`` for
        ``n`` cash units; closing part of a position realizes its P&L (before fees)."""
        p, c = pos.position, pos.cost
        if p == 0 or (p > 0) == (d > 0):  # opening or adding to a position
            pos.position = saturate(p + d)
            pos.cost = saturate(c + n)
            return
        sign = 1 if d > 0 else -1
        close = min(abs(d), abs(p))
        basis = c if close == abs(p) else c * close // abs(p)
        value = n if close == abs(d) else n * close // abs(d)
        realized = value - basis if p > 0 else basis - value
        pos.realized = saturate(pos.realized + realized)
        c -= basis
        p += sign * close
        if abs(d) > close:  # the rest of the fill opens a position the other way
            p += sign * (abs(d) - close)
            c = n - value
        pos.position = saturate(p)
        pos.cost = saturate(c)

    # -- admin commands ----------------------------------------------------------------------

    ACCOUNT_KINDS = frozenset({
        RiskKind.MAX_ORDER_QTY, RiskKind.MAX_ORDER_NOTIONAL, RiskKind.POSITION_LIMIT,
        RiskKind.SHORT_LIMIT, RiskKind.MAX_OPEN_ORDERS, RiskKind.RATE, RiskKind.CREDIT,
        RiskKind.CASH_ADJUST})
    # account x instrument limits: instrument 0 means every instrument
    LIMIT_KINDS = {RiskKind.MAX_ORDER_QTY: "max_order_qty",
                   RiskKind.MAX_ORDER_NOTIONAL: "max_order_notional",
                   RiskKind.POSITION_LIMIT: "position_limit",
                   RiskKind.SHORT_LIMIT: "short_limit"}
    # one instrument (not 0), the account ignored
    INSTRUMENT_KINDS = frozenset({RiskKind.PRICE_BAND, RiskKind.REFERENCE_PRICE, RiskKind.FEE})
    # the ``instrument`` field is a currency index
    CURRENCY_KINDS = frozenset({RiskKind.CREDIT, RiskKind.CASH_ADJUST, RiskKind.FX_RATE})

    def set_risk(self, kind: int, value: int, aux: int, account: int, instrument: int,
                 ts_ns: int) -> Reason:
        """SET_RISK: validate in the documented order, then apply. Reason.NONE: applied."""
        if kind not in KINDS:
            return Reason.RISK_INVALID_VALUE
        kind = RiskKind(kind)
        if kind in self.ACCOUNT_KINDS and not self.has_account(account):
            return Reason.RISK_UNKNOWN_ACCOUNT
        if kind in self.LIMIT_KINDS and instrument != 0 and not self.has_instrument(instrument):
            return Reason.BOOK_UNKNOWN_INSTRUMENT
        if kind in self.INSTRUMENT_KINDS and (instrument == 0
                                              or not self.has_instrument(instrument)):
            return Reason.BOOK_UNKNOWN_INSTRUMENT
        if kind in self.CURRENCY_KINDS and instrument >= len(self.currencies):
            return Reason.RISK_INVALID_VALUE

        if kind in self.LIMIT_KINDS:
            if value < 0:
                return Reason.RISK_INVALID_VALUE
            targets = [inst.instrument for inst in self.instruments] if instrument == 0 \
                else [instrument]
            for target in targets:
                setattr(self._position(account, target), self.LIMIT_KINDS[kind], value)
        elif kind == RiskKind.MAX_OPEN_ORDERS:
            if value < 0:
                return Reason.RISK_INVALID_VALUE
            self._account(account).max_open_orders = value
        elif kind == RiskKind.RATE:
            if not (0 <= value <= MAX_RATE and 1 <= aux <= MAX_RATE):
                return Reason.RISK_INVALID_VALUE
            acct = self._account(account)
            acct.rate_per_s, acct.rate_burst = value, aux
            acct.tokens_nano, acct.last_ts = aux * NANO, ts_ns  # refilled to the burst
        elif kind == RiskKind.CREDIT:
            if value < 0:
                return Reason.RISK_INVALID_VALUE
            self._cash(account, instrument).credit = value
        elif kind == RiskKind.CASH_ADJUST:
            cash = self._cash(account, instrument)
            if value == 0 or saturate(cash.cash + value) != cash.cash + value:
                return Reason.RISK_INVALID_VALUE
            cash.cash += value
        elif kind == RiskKind.PRICE_BAND:
            if not 0 <= value <= MAX_BPS:
                return Reason.RISK_INVALID_VALUE
            self._instrument(instrument).band_bps = value
        elif kind == RiskKind.REFERENCE_PRICE:
            if value < 0:
                return Reason.RISK_INVALID_VALUE
            self._instrument(instrument).ref_price = value
        elif kind == RiskKind.FEE:
            if not 0 <= value <= MAX_FEE_PPM:
                return Reason.RISK_INVALID_VALUE
            self._instrument(instrument).fee_ppm = value
        else:  # FX_RATE
            if value <= 0:
                return Reason.RISK_INVALID_VALUE
            self.currencies[instrument].fx = value
        return Reason.NONE

    def kill_switch(self, mode: int, account: int, all_accounts: bool) -> Reason:
        """KILL_SWITCH: set the account's (or the global) mode. The core cancels the orders."""
        if mode not in MODES:
            return Reason.RISK_INVALID_VALUE
        if all_accounts:
            self.global_[0].kill = mode
        elif not self.has_account(account):
            return Reason.RISK_UNKNOWN_ACCOUNT
        else:
            self._account(account).kill = mode
        return Reason.NONE

    def restrict(self, instrument: int, restricted: int, account: int,
                 all_accounts: bool) -> Reason:
        """RESTRICT: put the instrument on (1) or take it off (0) the account's or global list."""
        if restricted not in (0, 1):
            return Reason.RISK_INVALID_VALUE
        if not self.has_instrument(instrument):
            return Reason.BOOK_UNKNOWN_INSTRUMENT
        if all_accounts:
            self._instrument(instrument).restricted = restricted
        elif not self.has_account(account):
            return Reason.RISK_UNKNOWN_ACCOUNT
        else:
            self._position(account, instrument).restricted = restricted
        return Reason.NONE

    # -- integrity -----------------------------------------------------------------------------

    def check_integrity(self, live: Iterable[OrderLike]) -> None:
        """The open-order exposure equals what the resting orders ``live`` add up to."""
        n_inst, n_ccy = len(self.instruments), len(self.currencies)
        open_orders = [0] * len(self.accounts)
        buy_qty = [0] * len(self.positions)
        sell_qty = [0] * len(self.positions)
        buy_notional = [0] * len(self.cash)
        for order in live:
            assert self.has_account(order.account), \
                f"order {order.order_id} rests for account {order.account} with no risk record"
            a = self._account_index[order.account]
            i = self._instrument_index[order.instrument]
            inst = self.instruments[i]
            open_orders[a] += 1
            if order.side == Side.BUY:
                buy_qty[a * n_inst + i] += order.open
                buy_notional[a * n_ccy + inst.ccy] += notional(order.price, order.open, inst.k)
            else:
                sell_qty[a * n_inst + i] += order.open
        assert [a.open_orders for a in self.accounts] == open_orders, "open_orders"
        assert [p.open_buy_qty for p in self.positions] == buy_qty, "open_buy_qty"
        assert [p.open_sell_qty for p in self.positions] == sell_qty, "open_sell_qty"
        assert [c.open_buy_notional for c in self.cash] == buy_notional, "open_buy_notional"
