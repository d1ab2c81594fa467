"""The reference model: docs/RULES.md and docs/ROUTING.md written out literally, the slow twin
of engine/_core.pyx.

Owns its own venues, books (one per instrument and venue), live-order index, live routed
(parent) orders, finished-order history and event buffer, and nothing else; with risk on
(``enable_risk``), the risk state and rules of docs/RISK.md live in ``engine/risk/reference.py``
and this file calls them where the rules say.
Must never import the compiled core, never trade clarity for speed, and never disagree with
docs/RULES.md, docs/RISK.md or docs/ROUTING.md: where they differ, this file is the bug.
"""
from __future__ import annotations

import hashlib
import operator
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sortedcontainers import SortedDict

from .risk.reference import RiskModel, fee, notional, saturate
from .schema import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    INSTRUMENT_STATE_DTYPE,
    INT64_MAX,
    MAX_FEE_PPM,
    ORDER_STATE_DTYPE,
    PARENT_STATE_DTYPE,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    KillSwitch,
    OrderStatus,
    OrdType,
    Reason,
    Side,
    Strategy,
    TimeInForce,
    TradingState,
)

__all__ = ["ReferenceCore", "INT64_MAX"]

UINT32_MAX = (1 << 32) - 1
MAX_VENUE = (1 << 16) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
KNOWN_FLAGS = int(Flags.POST_ONLY)  # what a NEW may carry
ROUTE_FLAGS = int(Flags.POST_REMAINDER)  # what a ROUTE may carry
MASS_CANCEL_FLAGS = int(Flags.ALL_ACCOUNTS)  # what a MASS_CANCEL may carry
RISK_ADMIN_FLAGS = int(Flags.ALL_ACCOUNTS)  # what SET_RISK, KILL_SWITCH and RESTRICT may carry
MAX_COMMAND = int(CommandType.ROUTE)


# ---------------------------------------------------------------------------------------------
# Plain data
# ---------------------------------------------------------------------------------------------

class Command(NamedTuple):
    """One COMMAND_DTYPE record as Python ints."""

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
    venue: int


@dataclass(eq=False)
class Venue:
    venue: int
    maker_fee: int  # ppm of the notional; < 0 a rebate
    taker_fee: int
    priority: int  # lower ranks first; ties by venue id


DEFAULT_VENUE = Venue(0, 0, 0, 0)  # venue 0: no fees, not routable


@dataclass(eq=False)
class Parent:
    """A routed order (docs/ROUTING.md): live while its one resting child is."""

    order_id: int
    instrument: int
    account: int
    side: int
    ord_type: int
    tif: int
    flags: int  # PARENT, plus POST_REMAINDER for sweep_post
    price: int  # the limit price; 0 for MARKET
    qty: int  # the total quantity (after a REPLACE: the new total)
    venue: int  # the post venue (sweep_post), else 0
    filled: int = 0
    cancelled: int = 0  # cancelled without a child resting for it
    value: int = 0  # sum of price x qty over the fills, saturating
    fees: int = 0  # sum of the children's fees, saturating
    child: Order | None = None  # the resting child

    @property
    def open(self) -> int:
        return self.qty - self.filled - self.cancelled

    @property
    def child_id(self) -> int:
        return 0 if self.child is None else self.child.order_id


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
    venue: int = 0  # the venue of its book
    parent: Parent | None = None  # a child order's parent

    @property
    def open(self) -> int:
        return self.qty - self.filled

    @property
    def parent_id(self) -> int:
        return 0 if self.parent is None else self.parent.order_id


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
    venue: int = 0  # 0: the default venue
    tick: int = 1  # the book's grid: prices a multiple of tick, quantities of lot
    lot: int = 1
    k: int = 1  # cash units per tick x lot (risk off; with risk on the tables' k)
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


def within(side: int, limit: int | None, price: int) -> bool:
    """May a ``side`` taker with ``limit`` (None: any price) trade at ``price``?"""
    if limit is None:
        return True
    return price <= limit if side == Side.BUY else price >= limit


def taker_limit(taker: Order) -> int | None:
    """A taker's worst price: its limit, a protected MARKET's protection price, else None."""
    if taker.ord_type == OrdType.MARKET:
        return taker.protect
    return taker.price


def acceptable(taker: Order, maker_price: int) -> bool:
    """May ``taker`` trade at ``maker_price``? A MARKET order accepts every price, unless risk
    protects it (then: every price up to / down to its protection price)."""
    return within(taker.side, taker_limit(taker), maker_price)


def crosses(side: int, price: int, book: Book) -> bool:
    """Would a limit order at ``price`` trade against the opposite best on arrival?"""
    best = book.best(opposite(side))
    if best is None:
        return False
    if side == Side.BUY:
        return price >= best.price
    return price <= best.price


def book_key(venue: int, instrument: int) -> int:
    """A book's key: ``venue << 32 | instrument`` (a default-venue book: its instrument id)."""
    return (venue << 32) | instrument


def _int(name: str, value: Any) -> int:
    """An int argument (a float or other type is a TypeError, as the compiled core's)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------

class ReferenceCore:
    """Same API and semantics as ``engine._core.Core`` (see engine/_core.pyi, docs/RULES.md,
    docs/ROUTING.md)."""

    def __init__(self, history: int = 65536, initial_orders: int = 1024) -> None:
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        if initial_orders < 1:  # a capacity hint the reference does not need, checked alike
            raise ValueError(f"initial_orders must be >= 1, got {initial_orders}")
        self._venues: dict[int, Venue] = {}  # venue id -> Venue (registered venues only)
        # book_key(venue, instrument) -> Book, in registration order (a default-venue book is
        # keyed by its instrument id alone, as in the compiled core)
        self._books: dict[int, Book] = {}
        # instrument -> its books in registration order (the first is its primary book); the
        # keys are in the order of each instrument's first registration (the risk tables' order)
        self._inst_books: dict[int, list[Book]] = {}
        self._live: dict[int, Order] = {}  # order_id -> resting order (children included)
        self._parents: dict[int, Parent] = {}  # order_id -> live parent
        self._children = 0  # children ever created: the next child id is -(children + 1)
        self._history_capacity = history
        self._history_total = 0  # finished orders ever recorded
        # The last ``history`` finished orders as order() dicts, oldest first. A deque with
        # maxlen evicts the oldest finish when a new one is recorded.
        self._history: deque[dict[str, int]] = deque(maxlen=history)
        self._events: list[tuple] = []  # pending EVENT_DTYPE rows
        self._risk: RiskModel | None = None  # docs/RISK.md; None: risk is off

    # -- venues and instruments ----------------------------------------------------------------

    def add_venue(self, venue: int, maker_fee: int = 0, taker_fee: int = 0,
                  priority: int = 0) -> None:
        venue, maker_fee = _int("venue", venue), _int("maker_fee", maker_fee)
        taker_fee, priority = _int("taker_fee", taker_fee), _int("priority", priority)
        if not 1 <= venue <= MAX_VENUE:
            raise ValueError(f"venue id out of range 1..65535: {venue}")
        if venue in self._venues:
            raise ValueError(f"duplicate venue id: {venue}")
        for name, value in (("maker_fee", maker_fee), ("taker_fee", taker_fee)):
            if not -MAX_FEE_PPM <= value <= MAX_FEE_PPM:
                raise ValueError(f"{name} out of range -{MAX_FEE_PPM}..{MAX_FEE_PPM}: {value}")
        if not INT32_MIN <= priority <= INT32_MAX:
            raise ValueError(f"priority out of range -2**31..2**31-1: {priority}")
        self._venues[venue] = Venue(venue, maker_fee, taker_fee, priority)

    def venues(self) -> list[tuple[int, int, int, int]]:
        return [(v.venue, v.maker_fee, v.taker_fee, v.priority)
                for v in sorted(self._venues.values(), key=lambda v: v.venue)]

    def add_instrument(self, instrument_id: int, min_qty: int = 1, max_qty: int = INT64_MAX,
                       venue: int = 0, tick: int = 1, lot: int = 1, k: int = 1) -> None:
        instrument_id, min_qty, max_qty = (_int("instrument_id", instrument_id),
                                           _int("min_qty", min_qty), _int("max_qty", max_qty))
        venue, tick, lot, k = (_int("venue", venue), _int("tick", tick), _int("lot", lot),
                               _int("k", k))
        if self._risk is not None:
            raise ValueError("instruments must be registered before enable_risk()")
        if not 0 <= instrument_id <= UINT32_MAX:
            raise ValueError(f"instrument id out of range 0..2**32-1: {instrument_id}")
        if not 0 <= venue <= MAX_VENUE:
            raise ValueError(f"venue id out of range 0..65535: {venue}")
        if venue != 0 and venue not in self._venues:
            raise ValueError(f"unknown venue: {venue} (add_venue() it first)")
        books = self._inst_books.get(instrument_id, [])
        if book_key(venue, instrument_id) in self._books:
            raise ValueError(f"duplicate instrument id: {instrument_id}"
                             + (f" on venue {venue}" if venue else ""))
        if books and (venue == 0) != (books[0].venue == 0):
            raise ValueError(f"instrument {instrument_id} cannot have both a default-venue "
                             "book and books on registered venues")
        if min_qty < 1:
            raise ValueError(f"min_qty must be >= 1, got {min_qty}")
        if not min_qty <= max_qty <= INT64_MAX:
            raise ValueError(f"max_qty must be in min_qty ({min_qty})..2**63-1, got {max_qty}")
        for name, value in (("tick", tick), ("lot", lot), ("k", k)):
            if not 1 <= value <= INT64_MAX:
                raise ValueError(f"{name} must be in 1..2**63-1, got {value}")
        if books and k != books[0].k:
            raise ValueError(f"k of instrument {instrument_id} is {books[0].k} (its first "
                             f"registration), got {k}")
        book = Book(instrument_id, min_qty, max_qty, venue=venue, tick=tick, lot=lot, k=k)
        self._books[book_key(venue, instrument_id)] = book
        self._inst_books.setdefault(instrument_id, []).append(book)

    def instruments(self) -> list[int]:
        return sorted(self._inst_books)

    def books(self) -> list[tuple[int, int, int, int]]:
        return [(b.venue, b.instrument, b.tick, b.lot) for b in self._books.values()]

    def _venue(self, venue: int) -> Venue:
        return DEFAULT_VENUE if venue == 0 else self._venues[venue]

    def _routing_key(self, book: Book) -> tuple[int, int, int]:
        """Routing order: the default venue first, then priority, then venue id."""
        v = self._venue(book.venue)
        return (book.venue != 0, v.priority, v.venue)

    def _routable(self, instrument: int) -> list[Book]:
        """The instrument's books on registered venues, in routing order."""
        return sorted((b for b in self._inst_books.get(instrument, []) if b.venue != 0),
                      key=self._routing_key)

    # -- commands: per-call API ----------------------------------------------------------------

    def submit(self, order_id: int, instrument: int, side: int, price: int, qty: int,
               account: int = 0, ord_type: int = 1, tif: int = 1, flags: int = 0,
               seq: int = 0, ts_ns: int = 0, venue: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, order_id=order_id, price=price, qty=qty, instrument=instrument,
            account=account, cmd=CommandType.NEW, side=side, ord_type=ord_type, tif=tif,
            flags=flags, venue=venue))

    def route(self, order_id: int, instrument: int, side: int, price: int, qty: int,
              account: int = 0, ord_type: int = OrdType.LIMIT, tif: int | None = None,
              strategy: int = Strategy.SWEEP, venue: int = 0, seq: int = 0,
              ts_ns: int = 0) -> int:
        """A ROUTE command (docs/ROUTING.md). ``tif`` None: IOC for SWEEP, GTC for SWEEP_POST;
        SWEEP_POST is the command's POST_REMAINDER flag."""
        if strategy not in (Strategy.SWEEP, Strategy.SWEEP_POST):
            raise ValueError(f"strategy must be SWEEP (1) or SWEEP_POST (2), got {strategy}")
        post = strategy == Strategy.SWEEP_POST
        if tif is None:
            tif = TimeInForce.GTC if post else TimeInForce.IOC
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, order_id=order_id, price=price, qty=qty, instrument=instrument,
            account=account, cmd=CommandType.ROUTE, side=side, ord_type=ord_type, tif=tif,
            flags=Flags.POST_REMAINDER if post else 0, venue=venue))

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
                    ts_ns: int = 0, venue: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, order_id=order_id, instrument=instrument, account=account,
            cmd=CommandType.MASS_CANCEL, side=side,
            flags=Flags.ALL_ACCOUNTS if all_accounts else 0, venue=venue))

    def halt(self, instrument: int, account: int = 0, seq: int = 0, ts_ns: int = 0,
             venue: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, instrument=instrument, account=account, cmd=CommandType.HALT,
            venue=venue))

    def resume(self, instrument: int, account: int = 0, seq: int = 0, ts_ns: int = 0,
               venue: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, instrument=instrument, account=account,
            cmd=CommandType.RESUME, venue=venue))

    def set_limits(self, instrument: int, min_qty: int, max_qty: int, account: int = 0,
                   seq: int = 0, ts_ns: int = 0, venue: int = 0) -> int:
        return self._apply(self._command(
            seq=seq, ts_ns=ts_ns, instrument=instrument, account=account, price=min_qty,
            qty=max_qty, cmd=CommandType.SET_LIMITS, venue=venue))

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
        # one row per instrument, in the order of each instrument's first registration
        self._risk = RiskModel(tables, list(self._inst_books))  # validates

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
        return Command(*record.tolist()[0])

    # -- commands: batch API -------------------------------------------------------------------

    def process(self, commands: np.ndarray) -> np.ndarray:
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise TypeError("process() takes a numpy array of engine.COMMAND_DTYPE")
        if commands.ndim != 1:
            raise ValueError("process() takes a one-dimensional array")
        start = len(self._events)
        for row in commands.tolist():
            self._apply(Command(*row))
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
        elif c.cmd == CommandType.ROUTE:
            self._route(c)
        else:
            self._reject(c, Reason.BOOK_UNKNOWN_COMMAND)
        return len(self._events) - before

    # Book lookup (docs/ROUTING.md, "Direct orders") ----------------------------------------------

    def _lookup(self, venue: int, instrument: int) -> tuple[Reason, Book | None]:
        """The book a command names: venue 0 is the instrument's primary book."""
        if venue != 0 and venue not in self._venues:
            return Reason.BOOK_UNKNOWN_VENUE, None
        books = self._inst_books.get(instrument)
        if not books:
            return Reason.BOOK_UNKNOWN_INSTRUMENT, None
        if venue == 0:
            return Reason.NONE, books[0]
        book = self._books.get(book_key(venue, instrument))
        if book is None:
            return Reason.BOOK_VENUE_NOT_LISTED, None
        return Reason.NONE, book

    def _covered(self, venue: int, instrument: int) -> tuple[Reason, list[Book]]:
        """The books an admin command covers: venue 0 every book of the instrument, else the
        one book on that venue (HALT, RESUME, SET_LIMITS)."""
        reason, book = self._lookup(venue, instrument)
        if reason != Reason.NONE:
            return reason, []
        return Reason.NONE, list(self._inst_books[instrument]) if venue == 0 else [book]

    def _id_taken(self, order_id: int) -> bool:
        """Check 13 of NEW, 17 of ROUTE: a live order or a live parent has this id."""
        return order_id in self._live or order_id in self._parents

    # NEW ---------------------------------------------------------------------------------------

    def _validate_new(self, c: Command) -> tuple[Reason, int | None]:
        """The first failing check of a NEW (Reason.NONE: none) and, with risk on, a market
        order's protection price."""
        if c.order_id <= 0:
            return Reason.BOOK_INVALID_ORDER_ID, None
        reason, book = self._lookup(c.venue, c.instrument)
        if reason != Reason.NONE:
            return reason, None
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
        # the book's grid: a LIMIT price on its tick, any quantity on its lot
        if (c.ord_type == OrdType.LIMIT and c.price % book.tick) or c.qty % book.lot:
            return Reason.BOOK_OFF_VENUE_GRID, None
        if self._id_taken(c.order_id):
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
            self._remember_rejected(c)
            return

        book = self._lookup(c.venue, c.instrument)[1]
        order = Order(
            order_id=c.order_id, instrument=c.instrument, account=c.account, side=c.side,
            ord_type=c.ord_type, tif=c.tif, flags=c.flags,
            price=c.price if c.ord_type == OrdType.LIMIT else 0, qty=c.qty, protect=protect,
            venue=book.venue)
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
            self._trade(c, book, level, taker, maker, min(taker.open, maker.open))

    def _fees(self, book: Book, price: int, qty: int) -> tuple[int, int]:
        """(taker fee, maker fee) of a trade of ``qty`` at ``price`` in ``book``
        (docs/ROUTING.md, "Fees on every trade")."""
        if self._risk is not None:
            k, extra = self._risk.k(book.instrument), self._risk.fee_ppm(book.instrument)
        else:
            k, extra = book.k, 0
        n = notional(price, qty, k)
        venue = self._venue(book.venue)
        return fee(n, venue.taker_fee + extra), fee(n, venue.maker_fee + extra)

    def _trade(self, c: Command, book: Book, level: Level, taker: Order, maker: Order,
               qty: int) -> None:
        """One trade of ``qty`` between ``taker`` and ``maker`` (the oldest order of ``level``)
        at the maker's price: the TRADE, the maker leaving the book if it filled, then the
        PARENT_FILL of the taker's parent and of the maker's (which ends with its child)."""
        price = maker.price
        taker.filled += qty
        maker.filled += qty
        level.total -= qty
        taker_fee, maker_fee = self._fees(book, price, qty)
        if self._risk is not None:
            self._risk.fill(taker, maker, price, qty, taker_fee, maker_fee)
        self._emit(c, EventType.TRADE, taker, price=price, qty=qty, leaves=taker.open,
                   other_id=maker.order_id, other_account=maker.account,
                   other_leaves=maker.open, fee=taker_fee, other_fee=maker_fee)
        if maker.open == 0:
            self._unrest(book, maker)
            self._finish(maker, OrderStatus.FILLED)
        if taker.parent is not None:
            self._parent_fill(c, taker.parent, taker, price, qty, taker_fee, maker.account)
        if maker.parent is not None:
            parent = maker.parent
            self._parent_fill(c, parent, maker, price, qty, maker_fee, taker.account)
            if maker.open == 0:  # the resting child filled: its parent ends with it
                parent.child = None
                self._parent_done(c, parent)

    # ROUTE (docs/ROUTING.md) ---------------------------------------------------------------------

    def _validate_route(self, c: Command) -> tuple[Reason, int | None, Book | None]:
        """Checks 1..18 of a ROUTE: the first failing one (Reason.NONE: none), a MARKET
        parent's protection price (risk on) and, for sweep_post, the post book."""
        if c.order_id <= 0:
            return Reason.BOOK_INVALID_ORDER_ID, None, None
        if c.venue != 0 and c.venue not in self._venues:
            return Reason.BOOK_UNKNOWN_VENUE, None, None
        books = self._inst_books.get(c.instrument)
        if not books:
            return Reason.BOOK_UNKNOWN_INSTRUMENT, None, None
        routable = self._routable(c.instrument)
        if not routable:
            return Reason.BOOK_NO_ROUTABLE_VENUE, None, None
        named = None
        if c.venue != 0:
            named = self._books.get(book_key(c.venue, c.instrument))
            if named is None:
                return Reason.BOOK_VENUE_NOT_LISTED, None, None
        if c.side not in (Side.BUY, Side.SELL):
            return Reason.BOOK_INVALID_SIDE, None, None
        if c.ord_type not in (OrdType.LIMIT, OrdType.MARKET):
            return Reason.BOOK_INVALID_ORDER_TYPE, None, None
        if c.tif not in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK):
            return Reason.BOOK_INVALID_TIME_IN_FORCE, None, None
        if c.flags & ~ROUTE_FLAGS:
            return Reason.BOOK_INVALID_INSTRUCTIONS, None, None
        post = bool(c.flags & Flags.POST_REMAINDER)
        if post:
            strategy_ok = c.ord_type == OrdType.LIMIT and c.tif == TimeInForce.GTC
        else:
            strategy_ok = c.tif in (TimeInForce.IOC, TimeInForce.FOK) and c.venue == 0
        if not strategy_ok:
            return Reason.BOOK_INVALID_STRATEGY, None, None
        if c.qty <= 0:
            return Reason.BOOK_INVALID_QUANTITY, None, None
        primary = books[0]
        if c.qty < primary.min_qty:
            return Reason.BOOK_QUANTITY_BELOW_MIN, None, None
        if c.qty > primary.max_qty:
            return Reason.BOOK_QUANTITY_ABOVE_MAX, None, None
        if c.ord_type == OrdType.LIMIT and c.price <= 0:
            return Reason.BOOK_INVALID_PRICE, None, None
        open_books = [b for b in routable if b.trading_state == TradingState.OPEN]
        if not open_books or (named is not None and named.trading_state != TradingState.OPEN):
            return Reason.BOOK_INSTRUMENT_HALTED, None, None
        post_book = None
        if post:  # check 16 is sweep_post's: the post book's tick must divide the price
            if named is not None:
                post_book = named if c.price % named.tick == 0 else None
            else:
                on_grid = [b for b in open_books if c.price % b.tick == 0]
                if on_grid:  # the lowest maker fee, then the lowest priority, then venue id
                    post_book = min(on_grid, key=lambda b: (
                        self._venue(b.venue).maker_fee, self._venue(b.venue).priority, b.venue))
            if post_book is None:
                return Reason.BOOK_OFF_VENUE_GRID, None, None
        if self._id_taken(c.order_id):
            return Reason.BOOK_DUPLICATE_ORDER_ID, None, None
        protect = None
        if self._risk is not None:  # docs/RISK.md checks 0, 3..10, once, on the whole parent
            reason, protect = self._risk.check_new(c.account, c.instrument, c.side, c.ord_type,
                                                   c.tif, c.price, c.qty, c.ts_ns)
            if reason != Reason.NONE:
                return reason, None, None
        return Reason.NONE, protect, post_book

    def _plan(self, instrument: int, side: int, limit: int | None,
              qty: int) -> tuple[list[tuple[Book, Level, int]], int]:
        """Step 2 of a ROUTE: the planned steps ``(book, level, q)`` and what is left, ``R``.
        Nothing changes."""
        books = [b for b in self._routable(instrument) if b.trading_state == TradingState.OPEN]
        levels = {id(b): b.levels_best_first(opposite(side)) for b in books}
        taken = {id(b): 0 for b in books}  # how many of its levels are planned (best first)
        plan: list[tuple[Book, Level, int]] = []
        r = qty
        while r > 0:
            best: tuple[int, Book, Level] | None = None
            for book in books:  # routing order: the first of equal keys wins
                if r < book.lot or taken[id(book)] == len(levels[id(book)]):
                    continue
                level = levels[id(book)][taken[id(book)]]
                if not within(side, limit, level.price):
                    continue
                taker_fee = self._venue(book.venue).taker_fee
                if side == Side.BUY:  # lowest price x (10**6 + taker_fee)
                    key = level.price * (10 ** 6 + taker_fee)
                else:  # highest price x (10**6 - taker_fee): compare its negation
                    key = -(level.price * (10 ** 6 - taker_fee))
                if best is None or key < best[0]:
                    best = (key, book, level)
            if best is None:
                break
            _, book, level = best
            q = min(level.total, r - r % book.lot)
            plan.append((book, level, q))
            taken[id(book)] += 1
            r -= q
        return plan, r

    def _route(self, c: Command) -> None:
        reason, protect, post_book = self._validate_route(c)
        if reason != Reason.NONE:
            self._reject(c, reason)
            self._remember_rejected(c, int(Flags.PARENT))  # as a rejected NEW is, a parent
            return
        post = post_book is not None
        parent = Parent(
            order_id=c.order_id, instrument=c.instrument, account=c.account, side=c.side,
            ord_type=c.ord_type, tif=c.tif,
            flags=int(Flags.PARENT) | (int(Flags.POST_REMAINDER) if post else 0),
            price=c.price if c.ord_type == OrdType.LIMIT else 0, qty=c.qty,
            venue=post_book.venue if post else 0)
        if self._risk is not None:
            self._risk.take_token(c.account, c.ts_ns)  # one token, as a NEW takes

        # 1. ACCEPTED for the parent
        self._emit_parent(c, EventType.ACCEPTED, parent, qty=parent.qty, leaves=parent.open)

        # 2. The plan: the limit is the price (MARKET: none, or its protection price)
        limit = parent.price if c.ord_type == OrdType.LIMIT else protect
        plan, r = self._plan(c.instrument, c.side, limit, c.qty)

        # 3. FOK: all of it across the venues, or nothing
        if c.tif == TimeInForce.FOK and r > 0:
            parent.cancelled += parent.qty
            self._emit_parent(c, EventType.CANCELLED, parent, qty=parent.qty, leaves=0,
                              reason=CancelCause.FOK_UNFILLABLE)
            self._parent_done(c, parent)
            return

        # 4. Children: one per book the plan uses, in the order it first uses them
        children: dict[int, Order] = {}
        for book, level, q in plan:
            child = children.get(id(book))
            if child is None:
                children[id(book)] = Order(
                    order_id=self._next_child_id(), instrument=c.instrument,
                    account=c.account, side=c.side, ord_type=int(OrdType.LIMIT),
                    tif=int(TimeInForce.IOC), flags=int(Flags.CHILD), price=level.price,
                    qty=q, venue=book.venue, parent=parent)
            else:  # the worst price planned on the book; its planned quantity in all
                child.price = level.price
                child.qty += q
        for child in children.values():
            self._emit(c, EventType.ACCEPTED, child, qty=child.qty, leaves=child.open)

        # 5. The sweep: each planned step matches its child against that one level
        for book, level, q in plan:
            child = children[id(book)]
            while q > 0:
                maker = level.orders[0]
                qty = min(q, maker.open)
                self._trade(c, book, level, child, maker, qty)
                q -= qty
            if child.open == 0:  # its plan covered exactly its quantity
                self._finish(child, OrderStatus.FILLED)

        # 6. What is left
        if not post:
            if r > 0:
                parent.cancelled += r
                cause = CancelCause.MARKET_REMAINDER if c.ord_type == OrdType.MARKET \
                    else CancelCause.IOC_REMAINDER
                self._emit_parent(c, EventType.CANCELLED, parent, qty=r, leaves=parent.open,
                                  reason=cause)
            self._parent_done(c, parent)
            return
        odd = r % post_book.lot
        if odd > 0:
            parent.cancelled += odd
            self._emit_parent(c, EventType.CANCELLED, parent, qty=odd, leaves=parent.open,
                              reason=CancelCause.ODD_LOT)
        rest = r - odd
        if rest > 0:
            level = post_book.levels(c.side).get(parent.price)
            if level is None or level.total + rest <= INT64_MAX:
                child = Order(
                    order_id=self._next_child_id(), instrument=c.instrument, account=c.account,
                    side=c.side, ord_type=int(OrdType.LIMIT), tif=int(TimeInForce.GTC),
                    flags=int(Flags.CHILD | Flags.POST_ONLY), price=parent.price, qty=rest,
                    venue=post_book.venue, parent=parent)
                self._emit(c, EventType.ACCEPTED, child, qty=child.qty, leaves=child.open)
                self._rest(post_book, child)
                parent.child = child
                self._parents[parent.order_id] = parent
                return
            parent.cancelled += rest
            self._emit_parent(c, EventType.CANCELLED, parent, qty=rest, leaves=parent.open,
                              reason=CancelCause.LEVEL_QUANTITY_LIMIT)
        self._parent_done(c, parent)

    def _next_child_id(self) -> int:
        self._children += 1
        return -self._children

    def _parent_fill(self, c: Command, parent: Parent, child: Order, price: int, qty: int,
                     child_fee: int, counterparty: int) -> None:
        """A child's trade rolls up to its parent: one PARENT_FILL."""
        parent.filled += qty
        parent.value = saturate(parent.value + price * qty)
        parent.fees = saturate(parent.fees + child_fee)
        self._emit_parent(c, EventType.PARENT_FILL, parent, price=price, qty=qty,
                          leaves=parent.open, other_id=child.order_id,
                          other_leaves=parent.filled, fee=child_fee, other_fee=parent.fees,
                          other_account=counterparty, venue=child.venue)

    def _parent_done(self, c: Command, parent: Parent) -> None:
        """A parent ends: PARENT_DONE, out of the live parents, into the history."""
        status = OrderStatus.FILLED if parent.cancelled == 0 else OrderStatus.CANCELLED
        self._emit_parent(c, EventType.PARENT_DONE, parent, qty=parent.qty, leaves=0,
                          other_leaves=parent.filled, other_fee=parent.fees, reason=status)
        self._parents.pop(parent.order_id, None)
        self._remember(dict(
            order_id=parent.order_id, instrument=parent.instrument, account=parent.account,
            side=parent.side, ord_type=parent.ord_type, tif=parent.tif, flags=parent.flags,
            price=parent.price, qty=parent.qty, filled=parent.filled, leaves=0,
            status=int(status), venue=parent.venue))

    def _end_child(self, c: Command, child: Order, cause: CancelCause) -> None:
        """A resting child was cancelled (its CANCELLED already emitted): its parent is
        cancelled for the child's open quantity and ends."""
        parent = child.parent
        parent.child = None
        parent.cancelled += child.open
        self._emit_parent(c, EventType.CANCELLED, parent, qty=child.open, leaves=parent.open,
                          reason=cause)
        self._parent_done(c, parent)

    # CANCEL ------------------------------------------------------------------------------------

    def _cancel(self, c: Command) -> None:
        order = self._live.get(c.order_id)
        if order is None:
            parent = self._parents.get(c.order_id)
            if parent is None or parent.account != c.account:
                self._reject(c, Reason.BOOK_UNKNOWN_ORDER)
                return
            order = parent.child  # a live parent: its child goes, then the parent ends
        elif order.account != c.account:
            self._reject(c, Reason.BOOK_UNKNOWN_ORDER)
            return
        elif order.parent is not None:
            self._reject(c, Reason.BOOK_CHILD_ORDER)
            return
        self._cancel_one(c, order, CancelCause.USER)

    def _cancel_one(self, c: Command, order: Order, cause: CancelCause) -> None:
        """A resting order leaves the book, cancelled with ``cause`` (its parent with it)."""
        open_qty = order.open
        self._unrest(self._books[book_key(order.venue, order.instrument)], order)
        self._emit(c, EventType.CANCELLED, order, qty=open_qty, leaves=0, reason=cause)
        self._finish(order, OrderStatus.CANCELLED)
        if order.parent is not None:
            self._end_child(c, order, cause)

    # REPLACE -----------------------------------------------------------------------------------

    def _validate_replace(self, c: Command, order: Order | None) -> Reason:
        if order is None or order.account != c.account:
            return Reason.BOOK_UNKNOWN_ORDER
        if order.parent is not None:
            return Reason.BOOK_CHILD_ORDER
        book = self._books[book_key(order.venue, order.instrument)]
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
        if c.price % book.tick or c.qty % book.lot:
            return Reason.BOOK_OFF_VENUE_GRID
        if self._risk is not None:  # docs/RISK.md, "Replaces": before the post-only check
            reason = self._risk.check_replace(order, c.price, c.qty, c.ts_ns)
            if reason != Reason.NONE:
                return reason
        if order.flags & Flags.POST_ONLY and crosses(order.side, c.price, book):
            return Reason.BOOK_POST_ONLY_WOULD_TAKE
        return Reason.NONE

    def _replace(self, c: Command) -> None:
        order = self._live.get(c.order_id)
        if order is None:
            parent = self._parents.get(c.order_id)
            if parent is not None and parent.account == c.account:
                self._replace_parent(c, parent)
                return
        reason = self._validate_replace(c, order)
        if reason != Reason.NONE:
            self._reject(c, reason)  # not recorded in the history: the order is unchanged
            return
        book = self._books[book_key(order.venue, order.instrument)]
        if self._risk is not None:
            self._risk.take_token(order.account, c.ts_ns)

        # 1. REPLACED
        self._emit(c, EventType.REPLACED, order, price=c.price, qty=c.qty,
                   leaves=c.qty - order.filled)

        # 2. Same price, total not increased: shrink in place, keep the queue position.
        if c.price == order.price and c.qty <= order.qty:
            self._shrink(book, order, c.qty)
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

    def _shrink(self, book: Book, order: Order, qty: int) -> None:
        """A resting order's total becomes ``qty`` (not more) in place, keeping its queue
        place. With risk on, the old exposure is released and the new one added at once."""
        level = book.levels(order.side)[order.price]
        level.total -= order.qty - qty
        if self._risk is not None:
            self._risk.leave(order)
        order.qty = qty
        if self._risk is not None:
            self._risk.rest(order)

    def _validate_replace_parent(self, c: Command, parent: Parent) -> Reason:
        child = parent.child
        book = self._books[book_key(child.venue, child.instrument)]
        if book.trading_state == TradingState.HALTED:
            return Reason.BOOK_INSTRUMENT_HALTED
        if c.qty <= 0:
            return Reason.BOOK_INVALID_QUANTITY
        if c.price <= 0:
            return Reason.BOOK_INVALID_PRICE
        if c.price != parent.price or c.qty > parent.qty:
            return Reason.BOOK_PARENT_REPLACE
        if c.qty <= parent.filled + parent.cancelled:
            return Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED
        child_qty = child.qty - (parent.qty - c.qty)
        if child_qty % book.lot:
            return Reason.BOOK_OFF_VENUE_GRID
        if self._risk is not None:  # as a REPLACE of the child
            reason = self._risk.check_replace(child, c.price, child_qty, c.ts_ns)
            if reason != Reason.NONE:
                return reason
        return Reason.NONE

    def _replace_parent(self, c: Command, parent: Parent) -> None:
        """REPLACE of a live parent: a lower quantity at its own price, taken off its resting
        child, which keeps its place."""
        reason = self._validate_replace_parent(c, parent)
        if reason != Reason.NONE:
            self._reject(c, reason)
            return
        child = parent.child
        if self._risk is not None:
            self._risk.take_token(parent.account, c.ts_ns)
        self._shrink(self._books[book_key(child.venue, child.instrument)], child,
                     child.qty - (parent.qty - c.qty))
        parent.qty = c.qty
        self._emit(c, EventType.REPLACED, child, price=child.price, qty=child.qty,
                   leaves=child.open)
        self._emit_parent(c, EventType.REPLACED, parent, price=parent.price, qty=parent.qty,
                          leaves=parent.open)

    # MASS_CANCEL ---------------------------------------------------------------------------------

    def _validate_mass_cancel(self, c: Command) -> tuple[Reason, list[Book]]:
        """The checks of a MASS_CANCEL (venue, instrument, listing, side, flags) and the books
        it covers, in registration order."""
        if c.venue != 0 and c.venue not in self._venues:
            return Reason.BOOK_UNKNOWN_VENUE, []
        if c.instrument != 0 and c.instrument not in self._inst_books:
            return Reason.BOOK_UNKNOWN_INSTRUMENT, []
        if c.instrument != 0 and c.venue != 0 and book_key(c.venue, c.instrument) not in self._books:
            return Reason.BOOK_VENUE_NOT_LISTED, []
        if c.side not in (0, Side.BUY, Side.SELL):
            return Reason.BOOK_INVALID_SIDE, []
        if c.flags & ~MASS_CANCEL_FLAGS:
            return Reason.BOOK_INVALID_INSTRUCTIONS, []
        books = [b for b in self._books.values()
                 if (c.instrument == 0 or b.instrument == c.instrument)
                 and (c.venue == 0 or b.venue == c.venue)]
        return Reason.NONE, books

    def _mass_cancel(self, c: Command) -> None:
        reason, books = self._validate_mass_cancel(c)
        if reason != Reason.NONE:
            self._reject(c, reason)  # not recorded in the history, like any rejected non-NEW
            return
        self._cancel_resting(c, CancelCause.MASS_CANCEL, books,
                             account=None if c.flags & Flags.ALL_ACCOUNTS else c.account,
                             side=c.side)

    def _cancel_resting(self, c: Command, cause: CancelCause, books: list[Book],
                        account: int | None, side: int = 0) -> None:
        """Cancel the resting orders of ``account`` (None: every account) and ``side`` (0:
        both) on ``books``, in mass-cancel order, with ``cause``; a child's parent ends right
        after the child's CANCELLED."""
        sides = (Side.BUY, Side.SELL) if side == 0 else (side,)
        for book in books:
            for one_side in sides:
                for level in book.levels_best_first(one_side):  # a copy: levels may go meanwhile
                    for order in list(level.orders):  # queue (time) order
                        if account is None or order.account == account:
                            self._cancel_one(c, order, cause)

    # HALT, RESUME, SET_LIMITS --------------------------------------------------------------------

    def _set_trading_state(self, c: Command, state: TradingState) -> None:
        reason, books = self._covered(c.venue, c.instrument)
        if reason != Reason.NONE:
            self._reject(c, reason)
            return
        for book in books:  # halting a halted book is allowed: same event
            book.trading_state = int(state)
            self._instrument_event(c, book)

    def _set_limits(self, c: Command) -> None:
        reason, books = self._covered(c.venue, c.instrument)
        if reason != Reason.NONE:
            self._reject(c, reason)
            return
        min_qty, max_qty = c.price, c.qty
        if not 1 <= min_qty <= max_qty:
            self._reject(c, Reason.BOOK_INVALID_QUANTITY)
            return
        for book in books:  # resting orders are not touched
            book.min_qty, book.max_qty = min_qty, max_qty
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
        # One RISK event: the command's fields, reason = the kind or mode, side 0, venue 0.
        self._push(c, EventType.RISK, order_id=c.order_id, price=c.price, qty=c.qty,
                   instrument=c.instrument, account=c.account, reason=value)
        # A kill switch set to REDUCE_ONLY or KILLED cancels the resting orders it covers.
        if c.cmd == CommandType.KILL_SWITCH and c.side != KillSwitch.ACTIVE:
            self._cancel_resting(c, CancelCause.KILL_SWITCH, list(self._books.values()),
                                 account=None if all_accounts else c.account)

    def _instrument_event(self, c: Command, book: Book) -> None:
        """One INSTRUMENT_STATE event: the book's whole state after the command."""
        self._push(c, EventType.INSTRUMENT_STATE, order_id=c.order_id, price=book.min_qty,
                   qty=book.max_qty, instrument=book.instrument, account=c.account,
                   reason=book.trading_state, venue=book.venue)

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

    @staticmethod
    def _order_record(order: Order, leaves: int, status: int) -> dict[str, int]:
        """What order() tells of an order: the usual fields and its book's venue."""
        return dict(
            order_id=order.order_id, instrument=order.instrument, account=order.account,
            side=order.side, ord_type=order.ord_type, tif=order.tif, flags=order.flags,
            price=order.price, qty=order.qty, filled=order.filled, leaves=leaves,
            status=int(status), venue=order.venue)

    def _live_record(self, order: Order) -> dict[str, int]:
        """order() of a resting order; a child's names its parent too."""
        record = self._order_record(
            order, leaves=order.open,
            status=OrderStatus.NEW if order.filled == 0 else OrderStatus.PARTIALLY_FILLED)
        if order.parent is not None:
            record["parent_id"] = order.parent_id
        return record

    @staticmethod
    def _parent_record(parent: Parent) -> dict[str, int]:
        """order() of a live parent: the usual fields and its router state."""
        return dict(
            order_id=parent.order_id, instrument=parent.instrument, account=parent.account,
            side=parent.side, ord_type=parent.ord_type, tif=parent.tif, flags=parent.flags,
            price=parent.price, qty=parent.qty, filled=parent.filled, leaves=parent.open,
            status=int(OrderStatus.NEW if parent.filled == 0 else OrderStatus.PARTIALLY_FILLED),
            cancelled=parent.cancelled, value=parent.value, fees=parent.fees,
            child_id=parent.child_id, venue=parent.venue)

    def _finish(self, order: Order, status: OrderStatus) -> None:
        """A finished order (a child too) in the history: the usual fields and its venue."""
        self._remember(self._order_record(order, leaves=0, status=status))

    def _remember_rejected(self, c: Command, flags: int = 0) -> None:
        """A rejected NEW (or ROUTE: ``flags`` PARENT added) is recorded with the command's
        fields."""
        self._remember(dict(
            order_id=c.order_id, instrument=c.instrument, account=c.account, side=c.side,
            ord_type=c.ord_type, tif=c.tif, flags=c.flags | flags, price=c.price, qty=c.qty,
            filled=0, leaves=0, status=int(OrderStatus.REJECTED), venue=c.venue))

    def _remember(self, record: dict[str, int]) -> None:
        if self._history_capacity > 0:
            self._history.append(record)
            self._history_total += 1

    # -- events --------------------------------------------------------------------------------

    def _push(self, c: Command, type_: EventType, *, order_id: int = 0, other_id: int = 0,
              price: int = 0, qty: int = 0, leaves: int = 0, other_leaves: int = 0,
              fee: int = 0, other_fee: int = 0, parent_id: int = 0, instrument: int = 0,
              account: int = 0, other_account: int = 0, reason: int = 0, venue: int = 0,
              side: int = 0) -> None:
        """Append one EVENT_DTYPE row caused by command ``c``."""
        self._events.append((
            c.seq, c.ts_ns, order_id, other_id, price, qty, leaves, other_leaves, fee,
            other_fee, parent_id, instrument, account, other_account, int(reason), venue,
            int(type_), side, c.cmd, 0))

    def _emit(self, c: Command, type_: EventType, order: Order, *, qty: int, leaves: int,
              price: int | None = None, other_id: int = 0, other_account: int = 0,
              other_leaves: int = 0, reason: int = 0, fee: int = 0,
              other_fee: int = 0) -> None:
        """Append an event about ``order`` (the taker, for a trade) caused by command ``c``:
        its book's venue, its parent (a child)."""
        self._push(c, type_, order_id=order.order_id, other_id=other_id,
                   price=order.price if price is None else price, qty=qty, leaves=leaves,
                   other_leaves=other_leaves, fee=fee, other_fee=other_fee,
                   parent_id=order.parent_id, instrument=order.instrument,
                   account=order.account, other_account=other_account, reason=reason,
                   venue=order.venue, side=order.side)

    def _emit_parent(self, c: Command, type_: EventType, parent: Parent, *, qty: int,
                     leaves: int, price: int | None = None, other_id: int = 0,
                     other_account: int = 0, other_leaves: int = 0, reason: int = 0,
                     fee: int = 0, other_fee: int = 0, venue: int | None = None) -> None:
        """Append an event about a parent: its own id, account, instrument and side,
        ``parent_id`` 0, its venue unless told."""
        self._push(c, type_, order_id=parent.order_id, other_id=other_id,
                   price=parent.price if price is None else price, qty=qty, leaves=leaves,
                   other_leaves=other_leaves, fee=fee, other_fee=other_fee,
                   instrument=parent.instrument, account=parent.account,
                   other_account=other_account, reason=reason,
                   venue=parent.venue if venue is None else venue, side=parent.side)

    def _reject(self, c: Command, reason: Reason) -> None:
        """One REJECTED event copying the command's fields verbatim (its venue too)."""
        self._push(c, EventType.REJECTED, order_id=c.order_id, price=c.price, qty=c.qty,
                   instrument=c.instrument, account=c.account, reason=reason, venue=c.venue,
                   side=c.side)

    # -- queries -------------------------------------------------------------------------------

    def _book(self, instrument: int, venue: int = 0) -> Book:
        """One book: venue 0 is the instrument's primary. KeyError if there is none."""
        books = self._inst_books.get(instrument)
        if not books:
            raise KeyError(f"unknown instrument: {instrument}")
        if venue == 0:
            return books[0]
        book = self._books.get(book_key(venue, instrument))
        if book is None:
            raise KeyError(f"venue {venue} does not list instrument {instrument}")
        return book

    def best_bid(self, instrument: int, venue: int = 0) -> tuple[int, int] | None:
        level = self._book(instrument, venue).best(Side.BUY)
        return None if level is None else (level.price, level.total)

    def best_ask(self, instrument: int, venue: int = 0) -> tuple[int, int] | None:
        level = self._book(instrument, venue).best(Side.SELL)
        return None if level is None else (level.price, level.total)

    def depth(self, instrument: int, n: int = 10, venue: int = 0
              ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        book = self._book(instrument, venue)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")

        def side_depth(side: int) -> list[tuple[int, int, int]]:
            return [(level.price, level.total, len(level.orders))
                    for level in book.levels_best_first(side)[:n]]

        return side_depth(Side.BUY), side_depth(Side.SELL)

    def level_orders(self, instrument: int, side: int, price: int,
                     venue: int = 0) -> list[tuple[int, int]]:
        book = self._book(instrument, venue)
        if side not in (Side.BUY, Side.SELL):
            raise ValueError(f"side must be BUY (1) or SELL (2), got {side}")
        level = book.levels(side).get(price)
        if level is None:
            return []
        return [(order.order_id, order.open) for order in level.orders]

    def _consolidated(self, instrument: int, side: int
                      ) -> list[tuple[int, int, tuple[tuple[int, int], ...]]]:
        """Every price level of the instrument's books on one side, best first:
        ``(price, total, ((venue, qty), ...))``, books in routing order."""
        if not self._inst_books.get(instrument):
            raise KeyError(f"unknown instrument: {instrument}")
        books = sorted(self._inst_books[instrument], key=self._routing_key)
        prices = sorted({p for b in books for p in b.levels(side)}, reverse=side == Side.BUY)
        out = []
        for price in prices:
            parts = tuple((b.venue, b.levels(side)[price].total) for b in books
                          if price in b.levels(side))
            out.append((price, sum(q for _, q in parts), parts))
        return out

    def consolidated_bbo(self, instrument: int) -> dict[str, Any]:
        """``{"bid": b, "ask": a}``: each None or ``(price, ((venue, qty), ...))``."""
        result: dict[str, Any] = {}
        for name, side in (("bid", Side.BUY), ("ask", Side.SELL)):
            levels = self._consolidated(instrument, side)
            result[name] = None if not levels else (levels[0][0], levels[0][2])
        return result

    def consolidated_depth(self, instrument: int, n: int = 10) -> tuple[list, list]:
        """``(bids, asks)``: up to ``n`` levels each, best first, merged over the books."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return (self._consolidated(instrument, Side.BUY)[:n],
                self._consolidated(instrument, Side.SELL)[:n])

    def order(self, order_id: int) -> dict[str, Any] | None:
        live = self._live.get(order_id)
        if live is not None:
            return self._live_record(live)
        parent = self._parents.get(order_id)
        if parent is not None:
            return self._parent_record(parent)
        for record in reversed(self._history):  # newest first
            if record["order_id"] == order_id:
                return dict(record)
        return None

    @property
    def open_orders(self) -> int:
        return len(self._live)

    @property
    def history(self) -> int:
        return self._history_capacity

    def instrument_state(self, instrument: int, venue: int = 0) -> dict[str, int] | None:
        try:
            book = self._book(instrument, venue)
        except KeyError:
            return None
        return dict(trading_state=book.trading_state, min_qty=book.min_qty,
                    max_qty=book.max_qty)

    # -- state -----------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """The state as the compiled core's ``export_state()`` gives it (no ``load_state`` here):
        ``instruments`` one row per book (registration order), ``orders`` every resting order
        (books in registration order, bids then asks, best level first, queue order),
        ``history`` (oldest first), ``history_total``, ``risk``, ``parents`` (live parents,
        ascending id) and ``children`` (children ever created)."""
        books = list(self._books.values())
        insts = np.zeros(len(books), dtype=INSTRUMENT_STATE_DTYPE)
        for i, b in enumerate(books):
            insts[i]["instrument"], insts[i]["trading_state"] = b.instrument, b.trading_state
            insts[i]["venue"], insts[i]["min_qty"], insts[i]["max_qty"] = \
                b.venue, b.min_qty, b.max_qty
        resting = [self._live_record(o) for b in books for side in (Side.BUY, Side.SELL)
                   for level in b.levels_best_first(side) for o in level.orders]
        parents = np.zeros(len(self._parents), dtype=PARENT_STATE_DTYPE)
        for i, p in enumerate(sorted(self._parents.values(), key=lambda p: p.order_id)):
            record = self._parent_record(p)
            for name in PARENT_STATE_DTYPE.names:
                parents[i][name] = record[name]
        return {"instruments": insts, "orders": self._order_array(resting),
                "history": self._order_array(list(self._history)),
                "risk": None if self._risk is None else self._risk.export(),
                "history_total": self._history_total, "parents": parents,
                "children": self._children}

    @staticmethod
    def _order_array(records: list[dict[str, int]]) -> np.ndarray:
        array = np.zeros(len(records), dtype=ORDER_STATE_DTYPE)
        for i, record in enumerate(records):
            for name in ORDER_STATE_DTYPE.names:
                if name != "_pad":
                    array[i][name] = record[name]
        return array

    # -- integrity -----------------------------------------------------------------------------

    def state_digest(self) -> str:
        values: list[int] = []
        for book in sorted(self._books.values(), key=lambda b: (b.instrument, b.venue)):
            values += [book.instrument, book.venue, book.trading_state, book.min_qty,
                       book.max_qty, len(book.bids), len(book.asks)]
            for side in (Side.BUY, Side.SELL):
                for level in book.levels_best_first(side):
                    values += [level.price, len(level.orders)]
                    for order in level.orders:
                        values += [order.order_id, order.account, order.qty, order.filled,
                                   order.flags]
        values += [self._children, len(self._parents)]
        for order_id in sorted(self._parents):
            p = self._parents[order_id]
            values += [p.order_id, p.price, p.qty, p.filled, p.cancelled, p.value, p.fees,
                       p.child_id, p.account, p.flags, p.venue, p.side]
        data = np.array(values, dtype="<i8").tobytes()
        if self._risk is not None:  # docs/RISK.md, "Digest": the six tables follow the books
            data += self._risk.digest_bytes()
        return hashlib.blake2b(data, digest_size=32).hexdigest()

    def check_integrity(self) -> None:
        seen: dict[int, Order] = {}
        for key, book in self._books.items():
            instrument, venue = book.instrument, book.venue
            name = f"instrument {instrument} venue {venue}"
            assert key == book_key(venue, instrument), f"{name}: misfiled"
            assert book.trading_state in (TradingState.OPEN, TradingState.HALTED), \
                f"{name}: trading state {book.trading_state}"
            assert 1 <= book.min_qty <= book.max_qty <= INT64_MAX, \
                f"{name}: bounds {book.min_qty}..{book.max_qty}"
            for side in (Side.BUY, Side.SELL):
                for price, level in book.levels(side).items():
                    where = f"{name} side {side} level {price}"
                    assert level.price == price, f"{where}: level keyed under the wrong price"
                    assert level.orders, f"{where}: empty level"
                    total = sum(o.open for o in level.orders)
                    assert level.total == total, f"{where}: total {level.total} != sum {total}"
                    for o in level.orders:
                        assert o.order_id not in seen, f"{where}: order {o.order_id} twice"
                        seen[o.order_id] = o
                        assert (o.instrument, o.venue, o.side, o.price) == \
                            (instrument, venue, side, price), \
                            f"{where}: order {o.order_id} is in the wrong level"
                        assert o.ord_type == OrdType.LIMIT and o.tif == TimeInForce.GTC, \
                            f"{where}: order {o.order_id} rests but is not a GTC limit order"
                        assert 0 <= o.filled < o.qty, \
                            f"{where}: order {o.order_id} filled {o.filled} of {o.qty}"
                        assert o.price % book.tick == 0 and o.qty % book.lot == 0 and \
                            o.filled % book.lot == 0, f"{where}: order {o.order_id} off grid"
                        if o.order_id < 0:
                            p = o.parent
                            assert p is not None and o.flags & Flags.CHILD, \
                                f"{where}: child {o.order_id} without a parent"
                            assert self._parents.get(p.order_id) is p and p.child is o, \
                                f"{where}: child {o.order_id}: its parent does not hold it"
                        else:
                            assert o.parent is None and not o.flags & Flags.CHILD, \
                                f"{where}: order {o.order_id} marked as a child"
            bid, ask = book.best(Side.BUY), book.best(Side.SELL)
            assert bid is None or ask is None or bid.price < ask.price, \
                f"{name}: book crossed ({bid.price} >= {ask.price})"
        assert seen.keys() == self._live.keys(), "live-order index does not match the levels"
        for order_id, order in self._live.items():
            assert seen[order_id] is order, f"live-order index holds a stale order {order_id}"
        for order_id, p in self._parents.items():
            assert order_id == p.order_id > 0, f"parent {order_id} misfiled"
            assert order_id not in self._live, f"parent {order_id} shares an id with an order"
            child = p.child
            assert child is not None and self._live.get(child.order_id) is child, \
                f"live parent {order_id} has no resting child"
            assert -self._children <= child.order_id < 0, f"parent {order_id}: child id"
            assert child.open == p.open > 0, f"parent {order_id}: open {p.open} != child's"
            assert p.flags == Flags.PARENT | Flags.POST_REMAINDER and p.venue == child.venue, \
                f"parent {order_id}: flags or venue"
        for instrument, books in self._inst_books.items():
            assert books and all(b.instrument == instrument for b in books)
            assert len({b.venue == 0 for b in books}) == 1, \
                f"instrument {instrument} mixes the default venue and registered venues"
            assert len({b.k for b in books}) == 1, f"instrument {instrument}: k differs"
        assert len(self._history) <= self._history_capacity, "history over capacity"
        if self._risk is not None:
            self._risk.check_integrity(self._live.values())
