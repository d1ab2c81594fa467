"""Market: the decimal, symbol-based Python edge over one integer core.

Owns the conversion of a quant's calls (symbols, Decimal prices and quantities) into core
commands and of the core's events back into readable objects. Must never round a price or a
quantity, never send an off-grid value to the core, and never hold matching state of its own.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
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
    TimeInForce,
)

__all__ = ["Market", "Event", "Level", "Book", "OrderView", "decode_events", "CoreLike"]


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


class _View(msgspec.Struct, frozen=True, kw_only=True, repr_omit_defaults=True):
    pass


class Event(_View):
    """One core event in decimals. ``type``/``side``/``reason``/``cmd`` are enum names (``side``
    is None for a rejected CANCEL/REPLACE, whose command carries no side, as in the core).

    ``reason`` is a Reason name for REJECTED and a CancelCause name for CANCELLED. ``price``,
    ``qty``, ``leaves`` are None only when the event names no known instrument (e.g. an unknown
    symbol, or a rejected CANCEL). ``seq == 0`` and ``text`` set: refused at the edge, the core
    never saw it.
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
    account: int = 0
    instrument: int | None = None
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
    """The top ``depth`` levels of one instrument, best first on each side."""

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    def __str__(self) -> str:
        rows = [f"{self.symbol}"]
        rows += [f"  ask {lv.price:>14} x {lv.qty} ({lv.orders})" for lv in reversed(self.asks)]
        rows += [f"  bid {lv.price:>14} x {lv.qty} ({lv.orders})" for lv in self.bids]
        return "\n".join(rows)


class OrderView(_View):
    """A live or recently finished order (the core's ``order()`` dict) in decimals."""

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


def _name(enum: type, code: int) -> str:
    try:
        return enum(code).name
    except ValueError:
        return str(code)


def _side(code: int) -> str | None:
    """A Side name; None for 0 (a rejected CANCEL/REPLACE copies a command that has no side)."""
    return None if code == 0 else _name(Side, code)


def decode_events(events: np.ndarray, instruments: InstrumentSet, *,
                  instrument: Instrument | None = None) -> list[Event]:
    """An EVENT_DTYPE array as Events. ``instrument`` decodes a rejected REPLACE, whose record
    carries no instrument (the command names only an order id); otherwise it is ignored."""
    if events.dtype != EVENT_DTYPE:
        raise ValueError("events must be an array of EVENT_DTYPE")
    cols = {name: events[name].tolist() for name in
            ("seq", "ts_ns", "order_id", "other_id", "price", "qty", "leaves", "other_leaves",
             "instrument", "account", "other_account", "reason", "type", "side", "cmd")}
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
        else:
            reason_name = None if reason == 0 else str(reason)
        trade = etype == EventType.TRADE
        out.append(Event(
            type=_name(EventType, etype), order_id=cols["order_id"][i],
            symbol=inst.symbol if inst else None, side=_side(cols["side"][i]),
            price=inst.ticks_to_price(cols["price"][i]) if inst else None,
            qty=inst.lots_to_qty(cols["qty"][i]) if inst else None,
            leaves=inst.lots_to_qty(cols["leaves"][i]) if inst else None,
            reason=reason_name,
            other_id=cols["other_id"][i], other_account=cols["other_account"][i],
            other_leaves=inst.lots_to_qty(cols["other_leaves"][i]) if trade and inst else None,
            account=cols["account"][i],
            instrument=inst.id if inst else (cols["instrument"][i] if names_instrument else None),
            cmd=_name(CommandType, cmd), seq=cols["seq"][i], ts_ns=cols["ts_ns"][i],
        ))
    return out


def _default_core() -> CoreLike:
    from ._core import Core  # lazily: config and the reference model work before it is built

    return Core()


_TIFS = {t.name.lower(): t for t in TimeInForce}
_SIDES = {s.name.lower(): s for s in Side}


class Market:
    """Decimal, symbol-based order entry and queries over one core.

    ``instruments``: an InstrumentSet, an EngineConfig, a TOML config path, or None for the
    embedded default config. ``core_factory``: a zero-argument callable returning an object with
    the core API (default ``engine._core.Core``; e.g. ``engine.reference.ReferenceCore``).
    ``clock``: returns ``ts_ns`` for each command (default: 0). Commands return the list of
    Events they produced; bad data (unknown symbol, off-grid or non-numeric price/quantity) is
    refused at the edge with one REJECTED event and never reaches the core.
    """

    def __init__(self,
                 instruments: InstrumentSet | EngineConfig | str | os.PathLike[str] | None = None,
                 *, core_factory: Callable[[], CoreLike] | None = None,
                 clock: Callable[[], int] | None = None) -> None:
        if instruments is None:
            instruments = InstrumentSet.default()
        elif isinstance(instruments, EngineConfig):
            instruments = InstrumentSet.from_config(instruments)
        elif isinstance(instruments, (str, os.PathLike)):
            instruments = InstrumentSet.load(instruments)
        elif not isinstance(instruments, InstrumentSet):
            raise TypeError(f"instruments must be an InstrumentSet, an EngineConfig, a path or"
                            f" None, got {type(instruments).__name__}")
        self._instruments = instruments
        self._core = (core_factory or _default_core)()
        for inst in instruments:
            self._core.add_instrument(inst.id, inst.min_lots, inst.max_lots)
        self._clock = clock
        self._next_id = 1
        self._seq = 0

    def __repr__(self) -> str:
        return f"Market({', '.join(self._instruments.symbols)}; core={type(self._core).__name__})"

    @property
    def instruments(self) -> InstrumentSet:
        return self._instruments

    @property
    def core(self) -> CoreLike:
        """The integer core (ticks and lots), for anything this edge does not cover."""
        return self._core

    # -- commands ------------------------------------------------------------------------------
    def buy(self, symbol: str, qty: Any, price: Any = None, *, order_id: int | None = None,
            account: int = 0, tif: str | TimeInForce = "gtc",
            post_only: bool = False) -> list[Event]:
        """A buy order; ``price=None`` is a market order."""
        return self.submit(symbol, Side.BUY, qty, price, order_id=order_id, account=account,
                           tif=tif, post_only=post_only)

    def sell(self, symbol: str, qty: Any, price: Any = None, *, order_id: int | None = None,
             account: int = 0, tif: str | TimeInForce = "gtc",
             post_only: bool = False) -> list[Event]:
        """A sell order; ``price=None`` is a market order."""
        return self.submit(symbol, Side.SELL, qty, price, order_id=order_id, account=account,
                           tif=tif, post_only=post_only)

    def submit(self, symbol: str, side: str | Side, qty: Any, price: Any = None, *,
               order_id: int | None = None, account: int = 0, tif: str | TimeInForce = "gtc",
               post_only: bool = False) -> list[Event]:
        """A new order; ``side`` is "buy"/"sell" or a Side, ``tif`` "gtc"/"ioc"/"fok"."""
        side_ = side if isinstance(side, Side) else _SIDES.get(str(side).lower())
        if side_ is None:
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        tif_ = tif if isinstance(tif, TimeInForce) else _TIFS.get(str(tif).lower())
        if tif_ is None:
            raise ValueError(f"tif must be one of {', '.join(_TIFS)}, got {tif!r}")
        if order_id is None:
            order_id = self._next_id
        if isinstance(order_id, int) and order_id >= self._next_id:
            self._next_id = order_id + 1
        inst = self._instruments.get(symbol)
        if inst is None:
            return [self._edge_reject(Reason.EDGE_UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}",
                                      order_id, None, symbol, side_, price, qty, account)]
        try:
            lots = inst.qty_to_lots(qty)
            ticks = 0 if price is None else inst.price_to_ticks(price)
        except GridError as e:
            return [self._edge_reject(e.reason, e.message, order_id, inst, symbol, side_, price,
                                      qty, account)]
        seq, ts = self._stamp()
        self._core.submit(order_id, inst.id, int(side_), ticks, lots, account,
                          int(OrdType.MARKET if price is None else OrdType.LIMIT), int(tif_),
                          int(Flags.POST_ONLY if post_only else Flags.NONE), seq, ts)
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
    def book(self, symbol: str, depth: int = 5) -> Book:
        """The best ``depth`` levels on each side (KeyError for an unknown symbol)."""
        inst = self._instruments[symbol]
        bids, asks = self._core.depth(inst.id, depth)

        def levels(rows: Iterable[tuple[int, int, int]]) -> tuple[Level, ...]:
            return tuple(Level(price=inst.ticks_to_price(p), qty=inst.lots_to_qty(q), orders=n)
                         for p, q, n in rows)

        return Book(symbol=inst.symbol, bids=levels(bids), asks=levels(asks))

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
        return OrderView(
            order_id=d["order_id"], symbol=inst.symbol, account=d["account"],
            side=_name(Side, d["side"]), ord_type=_name(OrdType, d["ord_type"]),
            tif=_name(TimeInForce, d["tif"]), post_only=bool(d["flags"] & Flags.POST_ONLY),
            price=inst.ticks_to_price(d["price"]), qty=inst.lots_to_qty(d["qty"]),
            filled=inst.lots_to_qty(d["filled"]), leaves=inst.lots_to_qty(d["leaves"]),
            status=_name(OrderStatus, d["status"]))

    def decode(self, events: np.ndarray, *, instrument: Instrument | None = None) -> list[Event]:
        """An EVENT_DTYPE array from this market's core as Events (see decode_events)."""
        return decode_events(events, self._instruments, instrument=instrument)

    # -- internals -----------------------------------------------------------------------------
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
                     cmd: CommandType = CommandType.NEW) -> Event:
        """A REJECTED event laid out as the core's, for a command that never reached it."""
        def as_decimal(value: Any) -> Decimal | None:
            try:
                return to_decimal(value)
            except GridError:
                return None

        zero = inst.lots_to_qty(0) if inst else Decimal(0)
        if price is None and cmd == CommandType.NEW:  # a market order: the core reports 0
            price_ = inst.ticks_to_price(0) if inst else Decimal(0)
        else:
            price_ = as_decimal(price)
        return Event(type="REJECTED", order_id=order_id,
                     symbol=inst.symbol if inst else (symbol if isinstance(symbol, str) else None),
                     side=_side(int(side)), price=price_, qty=as_decimal(qty), leaves=zero,
                     reason=reason.name, account=account, instrument=inst.id if inst else None,
                     cmd=cmd.name, text=text)
