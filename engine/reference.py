"""The reference model: docs/RULES.md written out literally, the slow twin of engine/_core.pyx.

Owns its own books, live-order index, finished-order history and event buffer, and nothing else;
with risk on (``enable_risk``), the risk state and rules of docs/RISK.md live in
``engine/risk/reference.py`` and this file calls them where the rules say.
Must never import the compiled core, never trade clarity for speed, and never disagree with
docs/RULES.md or docs/RISK.md: where they differ, this file is the bug.
"""
from __future__ import annotations

import hashlib
import operator
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sortedcontainers import SortedDict

from .risk.reference import RiskModel
from .schema import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    INT64_MAX,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    KillSwitch,
    OrderStatus,
    OrdType,
    Reason,
    Side,
    TimeInForce,
    TradingState,
)

__all__ = ["ReferenceCore", "INT64_MAX"]

UINT32_MAX = (1 << 32) - 1
KNOWN_FLAGS = int(Flags.POST_ONLY)  # what a NEW may carry
MASS_CANCEL_FLAGS = int(Flags.ALL_ACCOUNTS)  # what a MASS_CANCEL may carry
RISK_ADMIN_FLAGS = int(Flags.ALL_ACCOUNTS)  # what SET_RISK, KILL_SWITCH and RESTRICT may carry


# ---------------------------------------------------------------------------------------------
# Plain data
# ---------------------------------------------------------------------------------------------

class Command(NamedTuple):
    """One COMMAND_DTYPE record as Python ints (the ``_pad`` field dropped)."""

    seq: int
    ts_ns: int
    order_id: int
    price: int
    qty: int
    instrument: int
    account: int
    cmd: int
    side: int
    ord_type: int
    tif: int
    flags: int


@dataclass(eq=False)
class Order:
    order_id: int
    instrument: int
    account: int
    side: int
    ord_type: int
    tif: int
    flags: int
    price: int  # the limit price; 0 for a MARKET order
    qty: int  # the total quantity (after a REPLACE: the new total)
    filled: int = 0
    # A MARKET order with risk on is protected: it trades only at prices up to (a buy) or
    # down to (a sell) this one, ref +- band (docs/RISK.md, check 3). None: any price.
    protect: int | None = None

    @property
    def open(self) -> int:
        return self.qty - self.filled


@dataclass(eq=False)
class Level:
    price: int
    orders: deque = field(default_factory=deque)  # of Order, oldest first
    total: int = 0  # the sum of the open quantity of ``orders``


@dataclass(eq=False)
class Book:
    instrument: int
    min_qty: int  # the bounds of NEW and REPLACE quantities (SET_LIMITS changes them)
    max_qty: int
    trading_state: int = int(TradingState.OPEN)
    # price -> Level. The best bid is the highest key, the best ask the lowest.
    bids: SortedDict = field(default_factory=SortedDict)
    asks: SortedDict = field(default_factory=SortedDict)

    def levels(self, side: int) -> SortedDict:
        return self.bids if side == Side.BUY else self.asks

    def levels_best_first(self, side: int) -> list[Level]:
        levels = self.levels(side)
        if side == Side.BUY:
            return list(reversed(levels.values()))
        return list(levels.values())

    def best(self, side: int) -> Level | None:
        levels = self.levels(side)
        if not levels:
            return None
        return levels.peekitem(-1 if side == Side.BUY else 0)[1]


def opposite(side: int) -> int:
    return Side.SELL if side == Side.BUY else Side.BUY


def acceptable(taker: Order, maker_price: int) -> bool:
    """May ``taker`` trade at ``maker_price``? A MARKET order accepts every price, unless risk
    protects it (then: every price up to / down to its protection price)."""
    if taker.ord_type == OrdType.MARKET:
        if taker.protect is None:
            return True
        if taker.side == Side.BUY:
            return maker_price <= taker.protect
        return maker_price >= taker.protect
    if taker.side == Side.BUY:
        return maker_price <= taker.price
    return maker_price >= taker.price


def crosses(side: int, price: int, book: Book) -> bool:
    """Would a limit order at ``price`` trade against the opposite best on arrival?"""
    best = book.best(opposite(side))
    if best is None:
        return False
    if side == Side.BUY:
        return price >= best.price
    return price <= best.price


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------

class ReferenceCore:
    """Same API and semantics as ``engine._core.Core`` (see engine/_core.pyi, docs/RULES.md)."""

    def __init__(self, history: int = 65536, initial_orders: int = 1024) -> None:
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        if initial_orders < 1:  # a capacity hint the reference does not need, checked alike
            raise ValueError(f"initial_orders must be >= 1, got {initial_orders}")
        self._books: dict[int, Book] = {}
        self._live: dict[int, Order] = {}  # order_id -> resting order, across all instruments
        self._history_capacity = history
        # The last ``history`` finished orders as order() dicts, oldest first. A deque with
        # maxlen evicts the oldest finish when a new one is recorded.
        self._history: deque[dict[str, int]] = deque(maxlen=history)
        self._events: list[tuple] = []  # pending EVENT_DTYPE rows
        self._risk: RiskModel | None = None  # docs/RISK.md; None: risk is off

    # -- instruments ---------------------------------------------------------------------------

    def add_instrument(self, instrument_id: int, min_qty: int = 1, max_qty: int = INT64_MAX) -> None:
        if self._risk is not None:
            raise ValueError("instruments must be registered before enable_risk()")
        if not 0 <= instrument_id <= UINT32_MAX:
            raise ValueError(f"instrument id out of range 0..2**32-1: {instrument_id}")
        if instrument_id in self._books:
            raise ValueError(f"duplicate instrument id: {instrument_id}")
        if min_qty < 1:
            raise ValueError(f"min_qty must be >= 1, got {min_qty}")
        if not min_qty <= max_qty <= INT64_MAX:
            raise ValueError(f"max_qty must be in min_qty ({min_qty})..2**63-1, got {max_qty}")
        self._books[instrument_id] = Book(instrument_id, min_qty, max_qty)

    def instruments(self) -> list[int]:
        return sorted(self._books)

    # -- commands: per-call API ----------------------------------------------------------------

    def submit(self, order_id: int, instrument: int, side: int, price: int, qty: int,
               account: int = 0, ord_type: int = 1, tif: int = 1, flags: int = 0,
               seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, order_id=order_id, price=price, qty=qty, instrument=instrument,
            account=account, cmd=CommandType.NEW, side=side, ord_type=ord_type, tif=tif,
            flags=flags))

    def cancel(self, order_id: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, order_id=order_id, account=account, cmd=CommandType.CANCEL))

    def replace(self, order_id: int, price: int, qty: int, account: int = 0,
                seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, order_id=order_id, price=price, qty=qty, account=account,
            cmd=CommandType.REPLACE))

    def mass_cancel(self, account: int = 0, instrument: int = 0, side: int = 0,
                    all_accounts: bool = False, order_id: int = 0, seq: int = 0,
                    ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, order_id=order_id, instrument=instrument, account=account,
            cmd=CommandType.MASS_CANCEL, side=side,
            flags=Flags.ALL_ACCOUNTS if all_accounts else 0))

    def halt(self, instrument: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, instrument=instrument, account=account, cmd=CommandType.HALT))

    def resume(self, instrument: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, instrument=instrument, account=account,
            cmd=CommandType.RESUME))

    def set_limits(self, instrument: int, min_qty: int, max_qty: int, account: int = 0,
                   seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, instrument=instrument, account=account, price=min_qty,
            qty=max_qty, cmd=CommandType.SET_LIMITS))

    # -- risk (docs/RISK.md) ---------------------------------------------------------------------

    def enable_risk(self, tables: dict[str, np.ndarray]) -> None:
        """Turn pre-trade risk on with these tables (RISK_TABLES layouts): after the
        instruments are registered, before any order. TypeError for a wrong type, dtype,
        missing or unknown table; ValueError for a bad value or a bad moment."""
        if self._risk is not None:
            raise ValueError("risk is already enabled")
        if self._live or self._events or self._history:
            raise ValueError("enable_risk() needs a core without orders, pending events or "
                             "history")
        self._risk = RiskModel(tables, list(self._books))  # validates; registration order

    @property
    def risk_enabled(self) -> bool:
        return self._risk is not None

    def risk_state(self) -> dict[str, np.ndarray] | None:
        """The six risk tables (fresh copies), or None when risk is off."""
        return None if self._risk is None else self._risk.export()

    def set_risk(self, kind: int, value: int, account: int = 0, instrument: int = 0,
                 aux: int = 0, seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, price=aux, qty=value, instrument=instrument, account=account,
            cmd=CommandType.SET_RISK, ord_type=kind))

    def kill_switch(self, mode: int, account: int = 0, all_accounts: bool = False,
                    seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, account=account, cmd=CommandType.KILL_SWITCH, side=mode,
            flags=Flags.ALL_ACCOUNTS if all_accounts else 0))

    def restrict(self, instrument: int, restricted: bool = True, account: int = 0,
                 all_accounts: bool = False, seq: int = 0, ts_ns: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, instrument=instrument, account=account,
            cmd=CommandType.RESTRICT, side=1 if restricted else 0,
            flags=Flags.ALL_ACCOUNTS if all_accounts else 0))

    @staticmethod
    def _command(**fields: int) -> Command:
        """A command record with zeros for the fields not given. Going through a numpy record
        makes out-of-range values fail exactly as they would in an array (OverflowError)."""
        record = np.zeros(1, dtype=COMMAND_DTYPE)
        for name, value in fields.items():
            record[name] = operator.index(value)  # ints only: a float is a TypeError
        return Command(*record.tolist()[0][:-1])

    # -- commands: batch API -------------------------------------------------------------------

    def process(self, commands: np.ndarray) -> np.ndarray:
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise TypeError("process() takes a numpy array of engine.COMMAND_DTYPE")
        if commands.ndim != 1:
            raise ValueError("process() takes a one-dimensional array")
        start = len(self._events)
        for row in commands.tolist():
            self._apply(Command(*row[:-1]))
        produced = self._events[start:]
        del self._events[start:]  # earlier pending events stay pending
        return np.array(produced, dtype=EVENT_DTYPE)

    # -- events --------------------------------------------------------------------------------

    def drain_events(self) -> np.ndarray:
        events = np.array(self._events, dtype=EVENT_DTYPE)
        self._events.clear()
        return events

    @property
    def pending_events(self) -> int:
        return len(self._events)

    # -- the one entry point of every command --------------------------------------------------

    def _apply(self, c: Command) -> int:
        """Apply one command; return the number of events it appended."""
        before = len(self._events)
        if c.cmd == CommandType.NEW:
            self._new(c)
        elif c.cmd == CommandType.CANCEL:
            self._cancel(c)
        elif c.cmd == CommandType.REPLACE:
            self._replace(c)
        elif c.cmd == CommandType.MASS_CANCEL:
            self._mass_cancel(c)
        elif c.cmd == CommandType.HALT:
            self._set_trading_state(c, TradingState.HALTED)
        elif c.cmd == CommandType.RESUME:
            self._set_trading_state(c, TradingState.OPEN)
        elif c.cmd == CommandType.SET_LIMITS:
            self._set_limits(c)
        elif c.cmd in (CommandType.SET_RISK, CommandType.KILL_SWITCH, CommandType.RESTRICT):
            self._risk_admin(c)
        else:
            self._reject(c, Reason.BOOK_UNKNOWN_COMMAND)
        return len(self._events) - before

    # NEW ---------------------------------------------------------------------------------------

    def _validate_new(self, c: Command) -> tuple[Reason, int | None]:
        """The first failing check of a NEW (Reason.NONE: none) and, with risk on, a market
        order's protection price."""
        if c.order_id <= 0:
            return Reason.BOOK_INVALID_ORDER_ID, None
        book = self._books.get(c.instrument)
        if book is None:
            return Reason.BOOK_UNKNOWN_INSTRUMENT, None
        if book.trading_state == TradingState.HALTED:
            return Reason.BOOK_INSTRUMENT_HALTED, None
        if c.side not in (Side.BUY, Side.SELL):
            return Reason.BOOK_INVALID_SIDE, None
        if c.ord_type not in (OrdType.LIMIT, OrdType.MARKET):
            return Reason.BOOK_INVALID_ORDER_TYPE, None
        if c.tif not in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK):
            return Reason.BOOK_INVALID_TIME_IN_FORCE, None
        post_only = bool(c.flags & Flags.POST_ONLY)
        if c.flags & ~KNOWN_FLAGS:
            return Reason.BOOK_INVALID_INSTRUCTIONS, None
        if post_only and not (c.ord_type == OrdType.LIMIT and c.tif == TimeInForce.GTC):
            return Reason.BOOK_INVALID_INSTRUCTIONS, None
        if c.qty <= 0:
            return Reason.BOOK_INVALID_QUANTITY, None
        if c.qty < book.min_qty:
            return Reason.BOOK_QUANTITY_BELOW_MIN, None
        if c.qty > book.max_qty:
            return Reason.BOOK_QUANTITY_ABOVE_MAX, None
        if c.ord_type == OrdType.LIMIT and c.price <= 0:
            return Reason.BOOK_INVALID_PRICE, None
        if c.order_id in self._live:
            return Reason.BOOK_DUPLICATE_ORDER_ID, None
        protect = None
        if self._risk is not None:  # docs/RISK.md checks 0, 3..10
            reason, protect = self._risk.check_new(c.account, c.instrument, c.side, c.ord_type,
                                                   c.tif, c.price, c.qty, c.ts_ns)
            if reason != Reason.NONE:
                return reason, None
        if post_only and crosses(c.side, c.price, book):
            return Reason.BOOK_POST_ONLY_WOULD_TAKE, None
        return Reason.NONE, protect

    def _new(self, c: Command) -> None:
        reason, protect = self._validate_new(c)
        if reason != Reason.NONE:
            self._reject(c, reason)
            self._remember(dict(
                order_id=c.order_id, instrument=c.instrument, account=c.account, side=c.side,
                ord_type=c.ord_type, tif=c.tif, flags=c.flags, price=c.price, qty=c.qty,
                filled=0, leaves=0, status=int(OrderStatus.REJECTED)))
            return

        book = self._books[c.instrument]
        order = Order(
            order_id=c.order_id, instrument=c.instrument, account=c.account, side=c.side,
            ord_type=c.ord_type, tif=c.tif, flags=c.flags,
            price=c.price if c.ord_type == OrdType.LIMIT else 0, qty=c.qty, protect=protect)
        if self._risk is not None:
            self._risk.take_token(c.account, c.ts_ns)  # only an accepted order takes one

        # 1. ACCEPTED
        self._emit(c, EventType.ACCEPTED, order, qty=order.qty, leaves=order.open)

        # 2. FOK: all of it at acceptable prices, or nothing at all (the book is not touched).
        if order.tif == TimeInForce.FOK and self._available(book, order) < order.qty:
            self._emit(c, EventType.CANCELLED, order, qty=order.qty, leaves=0,
                       reason=CancelCause.FOK_UNFILLABLE)
            self._finish(order, OrderStatus.CANCELLED)
            return

        # 3. Matching
        self._match(c, book, order)

        # 4. What remains open
        if order.open == 0:
            self._finish(order, OrderStatus.FILLED)
        elif order.ord_type == OrdType.MARKET:
            self._emit(c, EventType.CANCELLED, order, qty=order.open, leaves=0,
                       reason=CancelCause.MARKET_REMAINDER)
            self._finish(order, OrderStatus.CANCELLED)
        elif order.tif == TimeInForce.IOC:
            self._emit(c, EventType.CANCELLED, order, qty=order.open, leaves=0,
                       reason=CancelCause.IOC_REMAINDER)
            self._finish(order, OrderStatus.CANCELLED)
        else:  # GTC LIMIT (a FOK that passed its check has filled completely)
            self._rest_or_cancel(c, book, order)

    def _available(self, book: Book, taker: Order) -> int:
        """Open quantity on the opposite side at prices ``taker`` accepts."""
        return sum(level.total
                   for level in book.levels_best_first(opposite(taker.side))
                   if acceptable(taker, level.price))

    def _match(self, c: Command, book: Book, taker: Order) -> None:
        """Trade ``taker`` against the opposite side, best price first, oldest order first."""
        makers_side = opposite(taker.side)
        while taker.open > 0:
            level = book.best(makers_side)
            if level is None or not acceptable(taker, level.price):
                break
            maker = level.orders[0]
            qty = min(taker.open, maker.open)
            taker.filled += qty
            maker.filled += qty
            level.total -= qty
            if self._risk is not None:
                self._risk.fill(taker, maker, maker.price, qty)
            self._emit(c, EventType.TRADE, taker, price=maker.price, qty=qty, leaves=taker.open,
                       other_id=maker.order_id, other_account=maker.account,
                       other_leaves=maker.open)
            if maker.open == 0:
                self._unrest(book, maker)
                self._finish(maker, OrderStatus.FILLED)

    # CANCEL ------------------------------------------------------------------------------------

    def _cancel(self, c: Command) -> None:
        order = self._live.get(c.order_id)
        if order is None or order.account != c.account:
            self._reject(c, Reason.BOOK_UNKNOWN_ORDER)
            return
        self._unrest(self._books[order.instrument], order)
        self._emit(c, EventType.CANCELLED, order, qty=order.open, leaves=0,
                   reason=CancelCause.USER)
        self._finish(order, OrderStatus.CANCELLED)

    # REPLACE -----------------------------------------------------------------------------------

    def _validate_replace(self, c: Command, order: Order | None) -> Reason:
        if order is None or order.account != c.account:
            return Reason.BOOK_UNKNOWN_ORDER
        book = self._books[order.instrument]
        if book.trading_state == TradingState.HALTED:
            return Reason.BOOK_INSTRUMENT_HALTED
        if c.qty <= 0:
            return Reason.BOOK_INVALID_QUANTITY
        if c.price <= 0:
            return Reason.BOOK_INVALID_PRICE
        if c.qty < book.min_qty:
            return Reason.BOOK_QUANTITY_BELOW_MIN
        if c.qty > book.max_qty:
            return Reason.BOOK_QUANTITY_ABOVE_MAX
        if c.qty <= order.filled:
            return Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED
        if self._risk is not None:  # docs/RISK.md, "Replaces": before the post-only check
            reason = self._risk.check_replace(order, c.price, c.qty, c.ts_ns)
            if reason != Reason.NONE:
                return reason
        if order.flags & Flags.POST_ONLY and crosses(order.side, c.price, book):
            return Reason.BOOK_POST_ONLY_WOULD_TAKE
        return Reason.NONE

    def _replace(self, c: Command) -> None:
        order = self._live.get(c.order_id)
        reason = self._validate_replace(c, order)
        if reason != Reason.NONE:
            self._reject(c, reason)  # not recorded in the history: the order is unchanged
            return
        book = self._books[order.instrument]
        if self._risk is not None:
            self._risk.take_token(order.account, c.ts_ns)

        # 1. REPLACED
        self._emit(c, EventType.REPLACED, order, price=c.price, qty=c.qty,
                   leaves=c.qty - order.filled)

        # 2. Same price, total not increased: shrink in place, keep the queue position.
        #    With risk on, the old exposure is released and the new one added at once.
        if c.price == order.price and c.qty <= order.qty:
            level = book.levels(order.side)[order.price]
            level.total -= order.qty - c.qty
            if self._risk is not None:
                self._risk.leave(order)
            order.qty = c.qty
            if self._risk is not None:
                self._risk.rest(order)
            return

        # 3. Otherwise: leave the level, then arrive again like a GTC limit order.
        self._unrest(book, order)
        order.price = c.price
        order.qty = c.qty
        self._match(c, book, order)
        if order.open == 0:
            self._finish(order, OrderStatus.FILLED)
        else:
            self._rest_or_cancel(c, book, order)

    # MASS_CANCEL ---------------------------------------------------------------------------------

    def _validate_mass_cancel(self, c: Command) -> Reason:
        if c.instrument != 0 and c.instrument not in self._books:
            return Reason.BOOK_UNKNOWN_INSTRUMENT
        if c.side not in (0, Side.BUY, Side.SELL):
            return Reason.BOOK_INVALID_SIDE
        if c.flags & ~MASS_CANCEL_FLAGS:
            return Reason.BOOK_INVALID_INSTRUCTIONS
        return Reason.NONE

    def _mass_cancel(self, c: Command) -> None:
        reason = self._validate_mass_cancel(c)
        if reason != Reason.NONE:
            self._reject(c, reason)  # not recorded in the history, like any rejected non-NEW
            return
        self._cancel_resting(c, CancelCause.MASS_CANCEL,
                             account=None if c.flags & Flags.ALL_ACCOUNTS else c.account,
                             instrument=c.instrument, side=c.side)

    def _cancel_resting(self, c: Command, cause: CancelCause, account: int | None,
                        instrument: int = 0, side: int = 0) -> None:
        """Cancel the resting orders of ``account`` (None: every account), ``instrument`` (0:
        every one) and ``side`` (0: both), in mass-cancel order, with ``cause``."""
        # Instruments in registration order (the insertion order of ``_books``), or just one.
        books = list(self._books.values()) if instrument == 0 else [self._books[instrument]]
        sides = (Side.BUY, Side.SELL) if side == 0 else (side,)
        for book in books:
            for one_side in sides:
                for level in book.levels_best_first(one_side):  # a copy: levels may go meanwhile
                    for order in list(level.orders):  # queue (time) order
                        if account is None or order.account == account:
                            self._unrest(book, order)
                            self._emit(c, EventType.CANCELLED, order, qty=order.open, leaves=0,
                                       reason=cause)
                            self._finish(order, OrderStatus.CANCELLED)

    # HALT, RESUME, SET_LIMITS --------------------------------------------------------------------

    def _set_trading_state(self, c: Command, state: TradingState) -> None:
        book = self._books.get(c.instrument)
        if book is None:
            self._reject(c, Reason.BOOK_UNKNOWN_INSTRUMENT)
            return
        book.trading_state = int(state)  # halting a halted instrument is allowed: same event
        self._instrument_event(c, book)

    def _set_limits(self, c: Command) -> None:
        book = self._books.get(c.instrument)
        if book is None:
            self._reject(c, Reason.BOOK_UNKNOWN_INSTRUMENT)
            return
        min_qty, max_qty = c.price, c.qty
        if not 1 <= min_qty <= max_qty:
            self._reject(c, Reason.BOOK_INVALID_QUANTITY)
            return
        book.min_qty, book.max_qty = min_qty, max_qty  # resting orders are not touched
        self._instrument_event(c, book)

    # SET_RISK, KILL_SWITCH, RESTRICT (docs/RISK.md, "Admin commands") -------------------------

    def _risk_admin(self, c: Command) -> None:
        if self._risk is None:
            self._reject(c, Reason.RISK_DISABLED)
            return
        if c.flags & ~RISK_ADMIN_FLAGS:
            self._reject(c, Reason.BOOK_INVALID_INSTRUCTIONS)
            return
        all_accounts = bool(c.flags & Flags.ALL_ACCOUNTS)
        if c.cmd == CommandType.SET_RISK:
            reason = self._risk.set_risk(c.ord_type, c.qty, c.price, c.account, c.instrument,
                                         c.ts_ns)
            value = c.ord_type  # the kind
        elif c.cmd == CommandType.KILL_SWITCH:
            reason = self._risk.kill_switch(c.side, c.account, all_accounts)
            value = c.side  # the mode
        else:
            reason = self._risk.restrict(c.instrument, c.side, c.account, all_accounts)
            value = c.side  # 1: restricted, 0: lifted
        if reason != Reason.NONE:
            self._reject(c, reason)  # not recorded in the history, like any rejected non-NEW
            return
        # One RISK event: the command's fields, reason = the kind or mode, side 0.
        self._events.append((
            c.seq, c.ts_ns, c.order_id, 0, c.price, c.qty, 0, 0, c.instrument, c.account, 0,
            value, int(EventType.RISK), 0, c.cmd, 0))
        # A kill switch set to REDUCE_ONLY or KILLED cancels the resting orders it covers.
        if c.cmd == CommandType.KILL_SWITCH and c.side != KillSwitch.ACTIVE:
            self._cancel_resting(c, CancelCause.KILL_SWITCH,
                                 account=None if all_accounts else c.account)

    def _instrument_event(self, c: Command, book: Book) -> None:
        """One INSTRUMENT_STATE event: the instrument's whole state after the command."""
        self._events.append((
            c.seq, c.ts_ns, c.order_id, 0, book.min_qty, book.max_qty, 0, 0,
            book.instrument, c.account, 0, book.trading_state,
            int(EventType.INSTRUMENT_STATE), 0, c.cmd, 0))

    # -- book and history bookkeeping ----------------------------------------------------------

    def _rest_or_cancel(self, c: Command, book: Book, order: Order) -> None:
        """Rest ``order``, unless its level's open total would pass what an int64 holds."""
        level = book.levels(order.side).get(order.price)
        if level is not None and level.total + order.open > INT64_MAX:
            self._emit(c, EventType.CANCELLED, order, qty=order.open, leaves=0,
                       reason=CancelCause.LEVEL_QUANTITY_LIMIT)
            self._finish(order, OrderStatus.CANCELLED)
            return
        self._rest(book, order)

    def _rest(self, book: Book, order: Order) -> None:
        """Put ``order`` at the back of its price level and into the live index."""
        levels = book.levels(order.side)
        if order.price not in levels:
            levels[order.price] = Level(order.price)
        level = levels[order.price]
        level.orders.append(order)
        level.total += order.open
        self._live[order.order_id] = order
        if self._risk is not None:
            self._risk.rest(order)  # its exposure: open quantity (and notional, a buy)

    def _unrest(self, book: Book, order: Order) -> None:
        """Take ``order`` out of its level (removing the level if emptied) and the live index.
        Every way off the book comes here (cancel, mass cancel, kill switch, replace, a maker's
        last fill), so this is where risk takes its exposure back."""
        if self._risk is not None:
            self._risk.leave(order)
        levels = book.levels(order.side)
        level = levels[order.price]
        level.orders.remove(order)
        level.total -= order.open
        if not level.orders:
            del levels[order.price]
        del self._live[order.order_id]

    def _finish(self, order: Order, status: OrderStatus) -> None:
        self._remember(dict(
            order_id=order.order_id, instrument=order.instrument, account=order.account,
            side=order.side, ord_type=order.ord_type, tif=order.tif, flags=order.flags,
            price=order.price, qty=order.qty, filled=order.filled, leaves=0, status=int(status)))

    def _remember(self, record: dict[str, int]) -> None:
        if self._history_capacity > 0:
            self._history.append(record)

    # -- events --------------------------------------------------------------------------------

    def _emit(self, c: Command, type_: EventType, order: Order, *, qty: int, leaves: int,
              price: int | None = None, other_id: int = 0, other_account: int = 0,
              other_leaves: int = 0, reason: int = 0) -> None:
        """Append an event about ``order`` (the taker, for a trade) caused by command ``c``."""
        self._events.append((
            c.seq, c.ts_ns, order.order_id, other_id,
            order.price if price is None else price, qty, leaves, other_leaves,
            order.instrument, order.account, other_account, int(reason), int(type_),
            order.side, c.cmd, 0))

    def _reject(self, c: Command, reason: Reason) -> None:
        """One REJECTED event copying the command's fields verbatim."""
        self._events.append((
            c.seq, c.ts_ns, c.order_id, 0, c.price, c.qty, 0, 0,
            c.instrument, c.account, 0, int(reason), int(EventType.REJECTED),
            c.side, c.cmd, 0))

    # -- queries -------------------------------------------------------------------------------

    def _book(self, instrument: int) -> Book:
        try:
            return self._books[instrument]
        except KeyError:
            raise KeyError(f"unknown instrument: {instrument}") from None

    def best_bid(self, instrument: int) -> tuple[int, int] | None:
        level = self._book(instrument).best(Side.BUY)
        return None if level is None else (level.price, level.total)

    def best_ask(self, instrument: int) -> tuple[int, int] | None:
        level = self._book(instrument).best(Side.SELL)
        return None if level is None else (level.price, level.total)

    def depth(self, instrument: int, n: int = 10) -> tuple[list[tuple[int, int, int]],
                                                          list[tuple[int, int, int]]]:
        book = self._book(instrument)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")

        def side_depth(side: int) -> list[tuple[int, int, int]]:
            return [(level.price, level.total, len(level.orders))
                    for level in book.levels_best_first(side)[:n]]

        return side_depth(Side.BUY), side_depth(Side.SELL)

    def level_orders(self, instrument: int, side: int, price: int) -> list[tuple[int, int]]:
        book = self._book(instrument)
        if side not in (Side.BUY, Side.SELL):
            raise ValueError(f"side must be BUY (1) or SELL (2), got {side}")
        level = book.levels(side).get(price)
        if level is None:
            return []
        return [(order.order_id, order.open) for order in level.orders]

    def order(self, order_id: int) -> dict[str, Any] | None:
        live = self._live.get(order_id)
        if live is not None:
            return dict(
                order_id=live.order_id, instrument=live.instrument, account=live.account,
                side=live.side, ord_type=live.ord_type, tif=live.tif, flags=live.flags,
                price=live.price, qty=live.qty, filled=live.filled, leaves=live.open,
                status=int(OrderStatus.NEW if live.filled == 0 else OrderStatus.PARTIALLY_FILLED))
        for record in reversed(self._history):  # newest first
            if record["order_id"] == order_id:
                return dict(record)
        return None

    @property
    def open_orders(self) -> int:
        return len(self._live)

    def instrument_state(self, instrument: int) -> dict[str, int] | None:
        book = self._books.get(instrument)
        if book is None:
            return None
        return dict(trading_state=book.trading_state, min_qty=book.min_qty,
                    max_qty=book.max_qty)

    # -- integrity -----------------------------------------------------------------------------

    def state_digest(self) -> str:
        values: list[int] = []
        for instrument in sorted(self._books):
            book = self._books[instrument]
            values += [instrument, book.trading_state, book.min_qty, book.max_qty,
                       len(book.bids), len(book.asks)]
            for side in (Side.BUY, Side.SELL):
                for level in book.levels_best_first(side):
                    values += [level.price, len(level.orders)]
                    for order in level.orders:
                        values += [order.order_id, order.account, order.qty, order.filled,
                                   order.flags]
        data = np.array(values, dtype="<i8").tobytes()
        if self._risk is not None:  # docs/RISK.md, "Digest": the six tables follow the books
            data += self._risk.digest_bytes()
        return hashlib.blake2b(data, digest_size=32).hexdigest()

    def check_integrity(self) -> None:
        seen: dict[int, Order] = {}
        for instrument, book in self._books.items():
            assert book.trading_state in (TradingState.OPEN, TradingState.HALTED), \
                f"instrument {instrument}: trading state {book.trading_state}"
            assert 1 <= book.min_qty <= book.max_qty <= INT64_MAX, \
                f"instrument {instrument}: bounds {book.min_qty}..{book.max_qty}"
            for side in (Side.BUY, Side.SELL):
                for price, level in book.levels(side).items():
                    where = f"instrument {instrument} side {side} level {price}"
                    assert level.price == price, f"{where}: level keyed under the wrong price"
                    assert level.orders, f"{where}: empty level"
                    total = sum(o.open for o in level.orders)
                    assert level.total == total, f"{where}: total {level.total} != sum {total}"
                    for o in level.orders:
                        assert o.order_id not in seen, f"{where}: order {o.order_id} twice"
                        seen[o.order_id] = o
                        assert (o.instrument, o.side, o.price) == (instrument, side, price), \
                            f"{where}: order {o.order_id} is in the wrong level"
                        assert o.ord_type == OrdType.LIMIT and o.tif == TimeInForce.GTC, \
                            f"{where}: order {o.order_id} rests but is not a GTC limit order"
                        assert 0 <= o.filled < o.qty, \
                            f"{where}: order {o.order_id} filled {o.filled} of {o.qty}"
            bid, ask = book.best(Side.BUY), book.best(Side.SELL)
            assert bid is None or ask is None or bid.price < ask.price, \
                f"instrument {instrument}: book crossed ({bid.price} >= {ask.price})"
        assert seen.keys() == self._live.keys(), "live-order index does not match the levels"
        for order_id, order in self._live.items():
            assert seen[order_id] is order, f"live-order index holds a stale order {order_id}"
        assert len(self._history) <= self._history_capacity, "history over capacity"
        if self._risk is not None:
            self._risk.check_integrity(self._live.values())
