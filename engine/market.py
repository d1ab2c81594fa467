"""Market: the decimal, symbol-based Python edge over one integer core.

Owns the conversion of a quant's calls (symbols, Decimal prices and quantities) into core
commands and of the core's events back into readable objects. Must never round a price or a
quantity, never send an off-grid value to the core, and never hold matching state of its own.
"""
from __future__ import annotations

import decimal
import os
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import numpy as np

from .config import EngineConfig
from .instruments import GridError, Instrument, InstrumentSet, to_decimal
from .schema import (
    EVENT_DTYPE,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    OrderStatus,
    OrdType,
    Reason,
    Side,
    Strategy,
    TimeInForce,
)
from .venues import DEFAULT_VENUE, VenueSet, instrument_k

__all__ = ["Market", "Event", "Level", "Book", "OrderView", "ConsolidatedLevel", "Consolidated",
           "decode_events", "fee_units", "CoreLike"]

_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.InvalidOperation])


class CoreLike(Protocol):
    """The integer core API Market needs (engine._core.Core, engine.reference.ReferenceCore)."""

    def add_instrument(self, instrument_id: int, min_qty: int = ...,
                       max_qty: int = ...) -> None: ...
    def submit(self, order_id: int, instrument: int, side: int, price: int, qty: int,
               account: int = ..., ord_type: int = ..., tif: int = ..., flags: int = ...,
               seq: int = ..., ts_ns: int = ...) -> int: ...
    def cancel(self, order_id: int, account: int = ..., seq: int = ...,
               ts_ns: int = ...) -> int: ...
    def replace(self, order_id: int, price: int, qty: int, account: int = ...,
                seq: int = ..., ts_ns: int = ...) -> int: ...
    def drain_events(self) -> np.ndarray: ...
    def best_bid(self, instrument: int) -> tuple[int, int] | None: ...
    def best_ask(self, instrument: int) -> tuple[int, int] | None: ...
    def depth(self, instrument: int, n: int = ...) -> tuple[list, list]: ...
    def order(self, order_id: int) -> dict[str, Any] | None: ...
    # with venues (docs/ROUTING.md) also: add_venue, add_instrument(..., venue=, tick=, lot=,
    # k=), submit(..., venue=), route, depth(i, n, venue), consolidated_bbo, consolidated_depth


class _View(msgspec.Struct, frozen=True, kw_only=True, repr_omit_defaults=True):
    pass


class Event(_View):
    """One core event in decimals. ``type``/``side``/``reason``/``cmd`` are enum names (``side``
    is None for a rejected CANCEL/REPLACE, whose command carries no side, as in the core).

    ``reason`` is a Reason name for REJECTED and a CancelCause name for CANCELLED. ``price``,
    ``qty``, ``leaves`` are None only when the event names no known instrument (e.g. an unknown
    symbol, or a rejected CANCEL). ``seq == 0`` and ``text`` set: refused at the edge, the core
    never saw it.

    Venues (docs/ROUTING.md): ``venue`` is the name of the event's venue (None: the default
    venue 0, e.g. a routed parent's own events); ``parent_id`` the parent of a child order
    (children have negative engine-made ids; None: not a child). ``fee``/``other_fee`` are set
    on TRADE, PARENT_FILL and PARENT_DONE (for their meaning per type see docs/ROUTING.md;
    negative: a rebate) when the market has venues or the fee is not 0, else None. They are
    Decimals in the instrument's currency when its fee unit is known (``fee_units``: one unit
    = tick_size x lot_size x multiplier / k, i.e. 10**-decimals of the currency with k from the
    risk setup, the instrument's tick x lot value with k = 1), else the core's raw integer.
    PARENT_DONE's ``reason`` is an OrderStatus name (FILLED or CANCELLED); ``other_leaves`` is
    a TRADE's maker open quantity and a PARENT_FILL/PARENT_DONE's parent filled quantity.
    """

    type: str
    order_id: int
    symbol: str | None
    side: str | None
    price: Decimal | None
    qty: Decimal | None
    leaves: Decimal | None
    reason: str | None = None
    other_id: int = 0
    other_account: int = 0
    other_leaves: Decimal | None = None
    fee: Decimal | None = None
    other_fee: Decimal | None = None
    parent_id: int | None = None
    account: int = 0
    instrument: int | None = None
    venue: str | None = None
    cmd: str = "NEW"
    seq: int = 0
    ts_ns: int = 0
    text: str | None = None


class Level(_View):
    """One price level: total open quantity and number of orders."""

    price: Decimal
    qty: Decimal
    orders: int


class Book(_View):
    """The top ``depth`` levels of one instrument, best first on each side (of one venue's
    book when ``venue`` is set; None: the primary book)."""

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    venue: str | None = None

    def __str__(self) -> str:
        rows = [f"{self.symbol}" + (f" on {self.venue}" if self.venue else "")]
        rows += [f"  ask {lv.price:>14} x {lv.qty} ({lv.orders})" for lv in reversed(self.asks)]
        rows += [f"  bid {lv.price:>14} x {lv.qty} ({lv.orders})" for lv in self.bids]
        return "\n".join(rows)


class ConsolidatedLevel(_View):
    """One price over every book of an instrument: the total open quantity and each venue's
    (books in routing order; venue None: the default venue)."""

    price: Decimal
    qty: Decimal
    venues: tuple[tuple[str | None, Decimal], ...]


class Consolidated(_View):
    """The consolidated view of one instrument: the best bid and ask over its venues and the
    top levels merged across them, best first."""

    symbol: str
    bid: ConsolidatedLevel | None
    ask: ConsolidatedLevel | None
    bids: tuple[ConsolidatedLevel, ...]
    asks: tuple[ConsolidatedLevel, ...]

    def __str__(self) -> str:
        def row(name: str, lv: ConsolidatedLevel) -> str:
            parts = " ".join(f"{v or '-'}:{q}" for v, q in lv.venues)
            return f"  {name} {lv.price:>14} x {lv.qty} ({parts})"

        rows = [f"{self.symbol} (consolidated)"]
        rows += [row("ask", lv) for lv in reversed(self.asks)]
        rows += [row("bid", lv) for lv in self.bids]
        return "\n".join(rows)


class OrderView(_View):
    """A live or recently finished order (the core's ``order()`` dict) in decimals. With
    venues: ``venue`` its book's venue (None: the default venue, or a sweep parent); a live
    child's ``parent_id``; a live parent's ``cancelled``, ``avg_price``, ``fees`` and
    ``child_id`` (docs/ROUTING.md, "Queries")."""

    order_id: int
    symbol: str
    account: int
    side: str
    ord_type: str
    tif: str
    post_only: bool
    price: Decimal
    qty: Decimal
    filled: Decimal
    leaves: Decimal
    status: str
    venue: str | None = None
    parent_id: int | None = None
    cancelled: Decimal | None = None
    avg_price: Decimal | None = None
    fees: Decimal | None = None
    child_id: int | None = None


def _name(enum: type, code: int) -> str:
    try:
        return enum(code).name
    except ValueError:
        return str(code)


def _side(code: int) -> str | None:
    """A Side name; None for 0 (a rejected CANCEL/REPLACE copies a command that has no side)."""
    return None if code == 0 else _name(Side, code)


_FEE_TYPES = frozenset((EventType.TRADE, EventType.PARENT_FILL, EventType.PARENT_DONE))


def fee_units(instruments: InstrumentSet, k: Mapping[int, int] | None = None
              ) -> dict[int, Decimal]:
    """Each instrument's fee unit: what one unit of an event's ``fee`` is worth in its
    currency, exactly: tick_size x lot_size x multiplier / k (k as registered on the core,
    ``instrument_k(config)``; None: 1 for every instrument). With k from the risk setup this is
    10**-decimals of the currency (the gateway's ``fee_unit``). An instrument whose unit is not
    exact is left out (its fees then decode as raw integers)."""
    out: dict[int, Decimal] = {}
    for inst in instruments:
        kk = 1 if k is None else k.get(inst.id, 1)
        try:
            unit = _EXACT.divide(_EXACT.multiply(_EXACT.multiply(inst.tick_size, inst.lot_size),
                                                 inst.multiplier), Decimal(kk))
        except (decimal.Inexact, decimal.InvalidOperation):
            continue
        out[inst.id] = unit
    return out


def _fee(raw: int, unit: Decimal | None) -> Decimal:
    """A fee in currency (raw x unit, on the unit's decimal places), or the raw integer."""
    if unit is None:
        return Decimal(raw)
    exponent = min(int(unit.as_tuple().exponent), 0)
    return _EXACT.quantize(_EXACT.multiply(Decimal(raw), unit), Decimal(1).scaleb(exponent))


def decode_events(events: np.ndarray, instruments: InstrumentSet, *,
                  instrument: Instrument | None = None, venues: VenueSet | None = None,
                  fee_units: Mapping[int, Decimal] | None = None) -> list[Event]:
    """An EVENT_DTYPE array as Events. ``instrument`` decodes a rejected REPLACE, whose record
    carries no instrument (the command names only an order id); otherwise it is ignored.
    ``venues`` names each event's venue (without it a venue is its id as a str; 0 is None) and,
    when it has venues, sets the fees of every TRADE/PARENT_FILL/PARENT_DONE even when 0.
    ``fee_units`` (instrument id -> Decimal, see ``fee_units()``) turns fees into currency;
    without a unit a fee is the core's raw integer as a Decimal."""
    if events.dtype != EVENT_DTYPE:
        raise ValueError("events must be an array of EVENT_DTYPE")
    cols = {name: events[name].tolist() for name in
            ("seq", "ts_ns", "order_id", "other_id", "price", "qty", "leaves", "other_leaves",
             "instrument", "account", "other_account", "reason", "type", "side", "cmd",
             "fee", "other_fee", "parent_id", "venue")}
    has_venues = bool(venues)
    units = fee_units or {}
    out = []
    for i in range(len(events)):
        etype, cmd = cols["type"][i], cols["cmd"][i]
        # A rejected CANCEL/REPLACE copies its command, which names no instrument.
        names_instrument = not (etype == EventType.REJECTED and cmd != CommandType.NEW)
        inst: Instrument | None
        if names_instrument:
            inst = instruments.get(cols["instrument"][i])
        else:
            inst = instrument if cmd == CommandType.REPLACE else None
        reason = cols["reason"][i]
        if etype == EventType.REJECTED:
            reason_name = _name(Reason, reason)
        elif etype == EventType.CANCELLED:
            reason_name = _name(CancelCause, reason)
        elif etype == EventType.PARENT_DONE:
            reason_name = _name(OrderStatus, reason)
        else:
            reason_name = None if reason == 0 else str(reason)
        # other_leaves: a TRADE's maker open qty; a PARENT_FILL/PARENT_DONE's filled qty
        trade = etype in _FEE_TYPES
        fee = other_fee = None
        if etype in _FEE_TYPES and (has_venues or cols["fee"][i] or cols["other_fee"][i]):
            unit = units.get(inst.id) if inst else None
            fee, other_fee = _fee(cols["fee"][i], unit), _fee(cols["other_fee"][i], unit)
        venue_id = cols["venue"][i]
        venue = venues.get(venue_id) if venues is not None and venue_id else None
        out.append(Event(
            type=_name(EventType, etype), order_id=cols["order_id"][i],
            symbol=inst.symbol if inst else None, side=_side(cols["side"][i]),
            price=inst.ticks_to_price(cols["price"][i]) if inst else None,
            qty=inst.lots_to_qty(cols["qty"][i]) if inst else None,
            leaves=inst.lots_to_qty(cols["leaves"][i]) if inst else None,
            reason=reason_name,
            other_id=cols["other_id"][i], other_account=cols["other_account"][i],
            other_leaves=inst.lots_to_qty(cols["other_leaves"][i]) if trade and inst else None,
            fee=fee, other_fee=other_fee, parent_id=cols["parent_id"][i] or None,
            account=cols["account"][i],
            instrument=inst.id if inst else (cols["instrument"][i] if names_instrument else None),
            venue=(venue.name if venue is not None else str(venue_id)) if venue_id else None,
            cmd=_name(CommandType, cmd), seq=cols["seq"][i], ts_ns=cols["ts_ns"][i],
        ))
    return out


def _default_core() -> CoreLike:
    from ._core import Core  # lazily: config and the reference model work before it is built

    return Core()


_TIFS = {t.name.lower(): t for t in TimeInForce}
_SIDES = {s.name.lower(): s for s in Side}


def _parse_side(side: str | Side) -> Side:
    side_ = side if isinstance(side, Side) else _SIDES.get(str(side).lower())
    if side_ is None:
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    return side_


def _parse_tif(tif: str | TimeInForce) -> TimeInForce:
    tif_ = tif if isinstance(tif, TimeInForce) else _TIFS.get(str(tif).lower())
    if tif_ is None:
        raise ValueError(f"tif must be one of {', '.join(_TIFS)}, got {tif!r}")
    return tif_


class Market:
    """Decimal, symbol-based order entry and queries over one core.

    ``instruments``: an InstrumentSet, an EngineConfig, a TOML config path, or None for the
    embedded default config. ``core_factory``: a zero-argument callable returning an object with
    the core API (default ``engine._core.Core``; e.g. ``engine.reference.ReferenceCore``).
    ``clock``: returns ``ts_ns`` for each command (default: 0). Commands return the list of
    Events they produced; bad data (unknown symbol or venue name, off-grid or non-numeric
    price/quantity) is refused at the edge with one REJECTED event and never reaches the core.

    Venues (docs/ROUTING.md): an EngineConfig with ``[[venues]]`` registers them and every
    instrument's books on the core (``VenueSet.register`` with ``k = instrument_k(config)``, so
    fees come out in the currency's cash units); ``venues=`` (a VenueSet) does the same for
    another instrument source, with k = 1. Without venues (also ``Market()`` and a path: only
    their instruments) every instrument has one book on the default venue, as before. Orders
    name a venue by name (None: the primary), ``route()`` sends a routed parent.
    """

    def __init__(self,
                 instruments: InstrumentSet | EngineConfig | str | os.PathLike[str] | None = None,
                 *, core_factory: Callable[[], CoreLike] | None = None,
                 clock: Callable[[], int] | None = None,
                 venues: VenueSet | None = None) -> None:
        if venues is not None and not isinstance(venues, VenueSet):
            raise TypeError(f"venues must be a VenueSet, got {type(venues).__name__}")
        k: dict[int, int] | None = None
        if instruments is None:
            instruments = InstrumentSet.default()
        elif isinstance(instruments, EngineConfig):
            if venues is not None:
                raise ValueError("an EngineConfig brings its own [[venues]]: pass venues= only"
                                 " with an InstrumentSet")
            config, instruments = instruments, InstrumentSet.from_config(instruments)
            if config.venues:
                venues = VenueSet.from_config(config, instruments)
                k = instrument_k(config, instruments)
        elif isinstance(instruments, (str, os.PathLike)):
            instruments = InstrumentSet.load(instruments)
        elif not isinstance(instruments, InstrumentSet):
            raise TypeError(f"instruments must be an InstrumentSet, an EngineConfig, a path or"
                            f" None, got {type(instruments).__name__}")
        self._instruments = instruments
        self._venues = venues if venues is not None else VenueSet.empty()
        self._core = (core_factory or _default_core)()
        if self._venues:
            self._venues.register(self._core, instruments, k=k)
        else:
            for inst in instruments:
                self._core.add_instrument(inst.id, inst.min_lots, inst.max_lots)
        self._fee_units = fee_units(instruments, k)
        self._clock = clock
        self._next_id = 1
        self._seq = 0

    def __repr__(self) -> str:
        return f"Market({', '.join(self._instruments.symbols)}; core={type(self._core).__name__})"

    @property
    def instruments(self) -> InstrumentSet:
        return self._instruments

    @property
    def venues(self) -> VenueSet:
        """The venues registered on the core (empty: none, every book on the default venue)."""
        return self._venues

    @property
    def core(self) -> CoreLike:
        """The integer core (ticks and lots), for anything this edge does not cover."""
        return self._core

    # -- commands ------------------------------------------------------------------------------
    def buy(self, symbol: str, qty: Any, price: Any = None, *, order_id: int | None = None,
            account: int = 0, tif: str | TimeInForce = "gtc", post_only: bool = False,
            venue: str | None = None) -> list[Event]:
        """A buy order; ``price=None`` is a market order."""
        return self.submit(symbol, Side.BUY, qty, price, order_id=order_id, account=account,
                           tif=tif, post_only=post_only, venue=venue)

    def sell(self, symbol: str, qty: Any, price: Any = None, *, order_id: int | None = None,
             account: int = 0, tif: str | TimeInForce = "gtc", post_only: bool = False,
             venue: str | None = None) -> list[Event]:
        """A sell order; ``price=None`` is a market order."""
        return self.submit(symbol, Side.SELL, qty, price, order_id=order_id, account=account,
                           tif=tif, post_only=post_only, venue=venue)

    def submit(self, symbol: str, side: str | Side, qty: Any, price: Any = None, *,
               order_id: int | None = None, account: int = 0, tif: str | TimeInForce = "gtc",
               post_only: bool = False, venue: str | None = None) -> list[Event]:
        """A new order; ``side`` is "buy"/"sell" or a Side, ``tif`` "gtc"/"ioc"/"fok";
        ``venue`` a venue name (None: the instrument's primary book). An unknown venue name is
        refused at the edge (BOOK_UNKNOWN_VENUE); the core checks that the venue lists the
        instrument and its grid (BOOK_VENUE_NOT_LISTED, BOOK_OFF_VENUE_GRID)."""
        side_ = _parse_side(side)
        tif_ = _parse_tif(tif)
        order_id = self._order_id(order_id)
        if venue is not None and self._venue_id(venue) is None:
            return [self._edge_reject(Reason.BOOK_UNKNOWN_VENUE, self._unknown_venue(venue),
                                      order_id, self._instruments.get(symbol), symbol, side_,
                                      price, qty, account)]
        inst = self._instruments.get(symbol)
        if inst is None:
            return [self._edge_reject(Reason.EDGE_UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}",
                                      order_id, None, symbol, side_, price, qty, account,
                                      venue=venue)]
        try:
            lots = inst.qty_to_lots(qty)
            ticks = 0 if price is None else inst.price_to_ticks(price)
        except GridError as e:
            return [self._edge_reject(e.reason, e.message, order_id, inst, symbol, side_, price,
                                      qty, account, venue=venue)]
        seq, ts = self._stamp()
        args = (order_id, inst.id, int(side_), ticks, lots, account,
                int(OrdType.MARKET if price is None else OrdType.LIMIT), int(tif_),
                int(Flags.POST_ONLY if post_only else Flags.NONE), seq, ts)
        if venue is None:
            self._core.submit(*args)  # as before venues: any core-like object takes it
        else:
            self._core.submit(*args, venue=self._venue_id(venue))
        return self.decode(self._core.drain_events())

    def route(self, symbol: str, side: str | Side, qty: Any, price: Any = None, *,
              strategy: str | Strategy = "sweep", tif: str | TimeInForce | None = None,
              post_venue: str | None = None, order_id: int | None = None,
              account: int = 0) -> list[Event]:
        """A routed (parent) order across the venues listing the instrument (docs/ROUTING.md,
        "ROUTE"); ``price=None`` is a market order. ``strategy``: "sweep" (take the best
        fee-adjusted prices up to the limit, cancel the rest; ``tif`` IOC by default, or FOK)
        or "sweep_post" (the same, then rest the rest post-only on ``post_venue``, a venue
        name, or by default on the open book with the lowest maker fee; GTC). The events are
        the parent's (``venue`` None unless it rests) and its children's (negative ids,
        ``parent_id`` set)."""
        side_ = _parse_side(side)
        if isinstance(strategy, Strategy):
            strategy_ = strategy
        else:
            strategy_ = {s.name.lower(): s for s in Strategy}.get(str(strategy).lower())
        if strategy_ is None:
            raise ValueError(f"strategy must be 'sweep' or 'sweep_post', got {strategy!r}")
        tif_ = None if tif is None else _parse_tif(tif)
        order_id = self._order_id(order_id)
        venue_id = 0
        if post_venue is not None:
            venue_id = self._venue_id(post_venue)
            if venue_id is None:
                return [self._edge_reject(Reason.BOOK_UNKNOWN_VENUE,
                                          self._unknown_venue(post_venue), order_id,
                                          self._instruments.get(symbol), symbol, side_, price,
                                          qty, account, cmd=CommandType.ROUTE)]
        inst = self._instruments.get(symbol)
        if inst is None:
            return [self._edge_reject(Reason.EDGE_UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}",
                                      order_id, None, symbol, side_, price, qty, account,
                                      cmd=CommandType.ROUTE, venue=post_venue)]
        try:
            lots = inst.qty_to_lots(qty)
            ticks = 0 if price is None else inst.price_to_ticks(price)
        except GridError as e:
            return [self._edge_reject(e.reason, e.message, order_id, inst, symbol, side_, price,
                                      qty, account, cmd=CommandType.ROUTE, venue=post_venue)]
        seq, ts = self._stamp()
        self._core.route(order_id, inst.id, int(side_), ticks, lots, account=account,
                         ord_type=int(OrdType.MARKET if price is None else OrdType.LIMIT),
                         tif=None if tif_ is None else int(tif_), strategy=int(strategy_),
                         venue=venue_id, seq=seq, ts_ns=ts)
        return self.decode(self._core.drain_events())

    def cancel(self, order_id: int, account: int = 0) -> list[Event]:
        """Cancel a live order of ``account``."""
        seq, ts = self._stamp()
        self._core.cancel(order_id, account, seq, ts)
        return self.decode(self._core.drain_events())

    def replace(self, order_id: int, price: Any, qty: Any, account: int = 0) -> list[Event]:
        """New limit price and new total quantity (filled part included) of a live order."""
        live = self._core.order(order_id)
        inst = None if live is None else self._instruments.get(live["instrument"])
        if (inst is None or live["account"] != account
                or live["status"] not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)):
            # Without a live order of this account there is no grid to convert with; refuse it
            # exactly as the core would (and, like it, without revealing another account's order).
            return [self._edge_reject(Reason.BOOK_UNKNOWN_ORDER, f"no live order {order_id}",
                                      order_id, None, None, 0, price, qty, account,
                                      cmd=CommandType.REPLACE)]
        try:
            ticks = inst.price_to_ticks(price)
            lots = inst.qty_to_lots(qty)
        except GridError as e:
            return [self._edge_reject(e.reason, e.message, order_id, inst, inst.symbol,
                                      0, price, qty, account, cmd=CommandType.REPLACE)]
        seq, ts = self._stamp()
        self._core.replace(order_id, ticks, lots, account, seq, ts)
        return self.decode(self._core.drain_events(), instrument=inst)

    # -- queries -------------------------------------------------------------------------------
    def book(self, symbol: str, depth: int = 5, venue: str | None = None) -> Book:
        """The best ``depth`` levels on each side of the instrument's book on ``venue`` (a
        name; None: its primary book). KeyError for an unknown symbol or venue name, or a
        venue that does not list the instrument."""
        inst = self._instruments[symbol]
        if venue is None:
            bids, asks = self._core.depth(inst.id, depth)
        else:
            venue_id = self._venue_id(venue)
            if venue_id is None:
                raise KeyError(self._unknown_venue(venue))
            bids, asks = self._core.depth(inst.id, depth, venue_id)

        def levels(rows: Iterable[tuple[int, int, int]]) -> tuple[Level, ...]:
            return tuple(Level(price=inst.ticks_to_price(p), qty=inst.lots_to_qty(q), orders=n)
                         for p, q, n in rows)

        return Book(symbol=inst.symbol, bids=levels(bids), asks=levels(asks), venue=venue)

    def consolidated(self, symbol: str, depth: int = 5) -> Consolidated:
        """The instrument over all its books: the best bid and ask with each venue's size
        (``core.consolidated_bbo``) and the top ``depth`` merged levels per side with each
        venue's quantity (``core.consolidated_depth``), in decimals, venues by name in routing
        order. KeyError for an unknown symbol."""
        inst = self._instruments[symbol]

        def level(price: int, parts: Iterable[tuple[int, int]]) -> ConsolidatedLevel:
            venues = tuple((self._venue_name(v), inst.lots_to_qty(q)) for v, q in parts)
            return ConsolidatedLevel(price=inst.ticks_to_price(price),
                                     qty=sum((q for _, q in venues), inst.lots_to_qty(0)),
                                     venues=venues)

        bbo = self._core.consolidated_bbo(inst.id)
        bids, asks = self._core.consolidated_depth(inst.id, depth)
        return Consolidated(
            symbol=inst.symbol,
            bid=None if bbo["bid"] is None else level(*bbo["bid"]),
            ask=None if bbo["ask"] is None else level(*bbo["ask"]),
            bids=tuple(level(p, parts) for p, _, parts in bids),
            asks=tuple(level(p, parts) for p, _, parts in asks))

    def best_bid(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """(price, total qty) of the best bid, or None."""
        return self._best(symbol, self._core.best_bid)

    def best_ask(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """(price, total qty) of the best ask, or None."""
        return self._best(symbol, self._core.best_ask)

    def order(self, order_id: int) -> OrderView | None:
        """A live order, or the latest finished state the core still remembers, or None."""
        d = self._core.order(order_id)
        if d is None:
            return None
        inst = self._instruments.by_id(d["instrument"])
        parent: dict[str, Any] = {}
        if "child_id" in d:     # a live parent: its rollup
            filled = d["filled"]
            parent = dict(
                cancelled=inst.lots_to_qty(d["cancelled"]), child_id=d["child_id"] or None,
                fees=_fee(d["fees"], self._fee_units.get(inst.id)),
                avg_price=None if not filled else
                inst.ticks_to_price(d["value"] // filled) if d["value"] % filled == 0 else
                inst.ticks_to_price(1) * Decimal(d["value"]) / Decimal(filled))
        return OrderView(
            order_id=d["order_id"], symbol=inst.symbol, account=d["account"],
            side=_name(Side, d["side"]), ord_type=_name(OrdType, d["ord_type"]),
            tif=_name(TimeInForce, d["tif"]), post_only=bool(d["flags"] & Flags.POST_ONLY),
            price=inst.ticks_to_price(d["price"]), qty=inst.lots_to_qty(d["qty"]),
            filled=inst.lots_to_qty(d["filled"]), leaves=inst.lots_to_qty(d["leaves"]),
            status=_name(OrderStatus, d["status"]), venue=self._venue_name(d.get("venue", 0)),
            parent_id=d.get("parent_id"), **parent)

    def decode(self, events: np.ndarray, *, instrument: Instrument | None = None) -> list[Event]:
        """An EVENT_DTYPE array from this market's core as Events (see decode_events)."""
        return decode_events(events, self._instruments, instrument=instrument,
                             venues=self._venues, fee_units=self._fee_units)

    # -- internals -----------------------------------------------------------------------------
    def _order_id(self, order_id: int | None) -> Any:
        if order_id is None:
            order_id = self._next_id
        if isinstance(order_id, int) and order_id >= self._next_id:
            self._next_id = order_id + 1
        return order_id

    def _venue_id(self, name: Any) -> int | None:
        """A venue name's id; None if it names no venue (ids are not names)."""
        venue = self._venues.get(name) if isinstance(name, str) else None
        return None if venue is None else venue.id

    def _venue_name(self, venue_id: int) -> str | None:
        if venue_id == DEFAULT_VENUE:
            return None
        venue = self._venues.get(venue_id)
        return str(venue_id) if venue is None else venue.name

    def _unknown_venue(self, name: Any) -> str:
        return f"unknown venue {name!r} (venues: {', '.join(self._venues.names) or 'none'})"

    def _stamp(self) -> tuple[int, int]:
        self._seq += 1
        return self._seq, (self._clock() if self._clock else 0)

    def _best(self, symbol: str, query: Callable[[int], tuple[int, int] | None]):
        inst = self._instruments[symbol]
        best = query(inst.id)
        return None if best is None else (inst.ticks_to_price(best[0]), inst.lots_to_qty(best[1]))

    @staticmethod
    def _edge_reject(reason: Reason, text: str, order_id: Any, inst: Instrument | None,
                     symbol: Any, side: int, price: Any, qty: Any, account: int,
                     cmd: CommandType = CommandType.NEW, venue: str | None = None) -> Event:
        """A REJECTED event laid out as the core's, for a command that never reached it."""
        def as_decimal(value: Any) -> Decimal | None:
            try:
                return to_decimal(value)
            except GridError:
                return None

        zero = inst.lots_to_qty(0) if inst else Decimal(0)
        if price is None and cmd in (CommandType.NEW, CommandType.ROUTE):  # market: 0
            price_ = inst.ticks_to_price(0) if inst else Decimal(0)
        else:
            price_ = as_decimal(price)
        return Event(type="REJECTED", order_id=order_id,
                     symbol=inst.symbol if inst else (symbol if isinstance(symbol, str) else None),
                     side=_side(int(side)), price=price_, qty=as_decimal(qty), leaves=zero,
                     reason=reason.name, account=account, instrument=inst.id if inst else None,
                     cmd=cmd.name, text=text, venue=venue)
