"""PyBook: docs/RULES.md as a hand-tuned pure-Python book, the benchmark baseline for the core.

Owns its own books, live-order index, finished-order history and event buffer, and nothing else.
It is a yardstick: nothing in the engine may depend on it, it must never import the compiled
core, and it must never disagree with docs/RULES.md or engine/reference.py by a single byte on
the order commands (NEW, CANCEL, REPLACE). The admin commands (MASS_CANCEL, HALT, RESUME,
SET_LIMITS) are out of its scope: it has no per-call methods for them, ``process()`` rejects
them with BOOK_UNKNOWN_COMMAND, and its differential tests never send them.
"""
from __future__ import annotations

import hashlib
import struct
from collections import deque
from itertools import starmap
from typing import Any

import numpy as np
from sortedcontainers import SortedList

from .schema import (COMMAND_DTYPE, EVENT_DTYPE, INT64_MAX, CancelCause, CommandType,
                     EventType, Flags, OrderStatus, OrdType, Reason, Side, TimeInForce,
                     TradingState)

__all__ = ["PyBook", "INT64_MAX"]

UINT32_MAX = (1 << 32) - 1

# The codes of engine/schema.py as plain ints: comparing with an IntEnum member costs a
# Python-level __eq__ on every call, comparing with an int does not.
BUY, SELL = int(Side.BUY), int(Side.SELL)
LIMIT, MARKET = int(OrdType.LIMIT), int(OrdType.MARKET)
GTC, IOC, FOK = int(TimeInForce.GTC), int(TimeInForce.IOC), int(TimeInForce.FOK)
POST_ONLY = int(Flags.POST_ONLY)
OPEN = int(TradingState.OPEN)  # the only trading state PyBook knows (it has no HALT)
NEW, CANCEL, REPLACE = (int(m) for m in (CommandType.NEW, CommandType.CANCEL, CommandType.REPLACE))
ACCEPTED, REJECTED, TRADE, CANCELLED, REPLACED = (int(m) for m in (
    EventType.ACCEPTED, EventType.REJECTED, EventType.TRADE, EventType.CANCELLED,
    EventType.REPLACED))
USER, IOC_REMAINDER, MARKET_REMAINDER, FOK_UNFILLABLE, LEVEL_QUANTITY_LIMIT = (int(m) for m in (
    CancelCause.USER, CancelCause.IOC_REMAINDER, CancelCause.MARKET_REMAINDER,
    CancelCause.FOK_UNFILLABLE, CancelCause.LEVEL_QUANTITY_LIMIT))
ST_NEW, ST_PARTIALLY_FILLED, ST_FILLED, ST_CANCELLED, ST_REJECTED = (int(m) for m in (
    OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED,
    OrderStatus.REJECTED))
# every core reject reason, as R_<name without BOOK_>
globals().update({f"R_{m.name[5:]}": int(m) for m in Reason if m.name.startswith("BOOK_")})

# Both sides of a book are keyed so that the best level has the LOWEST key: asks by price, bids
# by -price. A taker may trade with a level iff ``level key <= limit key`` (buy: price, sell:
# -price, market: MARKET_LIMIT_KEY), so matching, FOK and POST_ONLY need no side branches. An
# empty side's cached best key is EMPTY, which no limit key reaches.
EMPTY = 1 << 80
MARKET_LIMIT_KEY = 1 << 79
MOVED = -1

# Layouts (plain lists, indexed by literal ints in the hot paths):
#   order: [0 order_id, 1 account, 2 side, 3 price, 4 qty (total), 5 filled, 6 flags,
#           7 instrument, 8 level, 9 status: 0 while live, else the finished OrderStatus, or
#           MOVED for the stale copy a REPLACE left in its old level]. Only GTC limit orders
#           get one (nothing else rests), so ord_type and tif are not stored.
#   level: [0 open total, 1 deque of orders (oldest first), 2 price, 3 key, 4 half,
#           5 number of live orders]
#   half:  [0 dict key -> level, 1 SortedList of keys, 2 best (lowest) key or EMPTY]
#   book:  [0 min_qty, 1 max_qty, 2 bids half, 3 asks half]
# Levels delete lazily: a cancelled (or moved) order stays in its deque with a non-zero status
# until matching pops it off the front, the level empties, or dead entries outnumber live ones
# (then the deque is compacted); queries and the digest skip dead entries. ``deque.remove``
# instead costs O(queue) element comparisons per cancel.
# An event is a tuple of the EVENT_DTYPE fields a book without venues sets: (seq, ts_ns,
# order_id, other_id, price, qty, leaves, other_leaves, instrument, account, other_account,
# reason, type, side, cmd, 0), the final 0 standing for _pad[0]; _EVENT packs the zeroed
# routing fields in between.

# order() fields; a finished order is kept in the history as a tuple of these
ORDER_FIELDS = ("order_id", "instrument", "account", "side", "ord_type", "tif", "flags", "price",
                "qty", "filled", "leaves", "status")

# drain_events() packs the tuples with struct (about 4x faster than np.array over a list of
# tuples, byte for byte the same); '<' means no alignment. PyBook has only the default venue
# and no routing, so fee, other_fee, parent_id (the 24x) and venue (the 2x) are always 0; the
# 16th value fills _pad[0].
_EVENT = struct.Struct("<qqqqqqqq24xIIIH2xBBBB4x")
assert _EVENT.size == EVENT_DTYPE.itemsize


def _full_row(row: tuple) -> tuple:
    # one event tuple in EVENT_DTYPE's own field order (the zeroed routing fields put in)
    return (*row[:8], 0, 0, 0, *row[8:12], 0, *row[12:15], (0,) * 5)


def _new_half() -> list:
    return [{}, SortedList(), EMPTY]


def _to_array(rows: list[tuple]) -> np.ndarray:
    if not rows:
        return np.empty(0, dtype=EVENT_DTYPE)
    try:
        data = b"".join(starmap(_EVENT.pack, rows))
    except struct.error:
        # A field outside its C type (PyBook does not check call arguments): let numpy raise
        # the OverflowError the array would have raised.
        return np.array([_full_row(r) for r in rows], dtype=EVENT_DTYPE)
    out = np.empty(len(rows), dtype=EVENT_DTYPE)  # aligned, owns its memory, like the core's
    out.view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
    return out


class PyBook:
    """Same API and event stream as ``engine._core.Core`` (engine/_core.pyi, docs/RULES.md),
    in pure Python written for speed: the per-call baseline for the compiled core.

    Differences from the core, none of them visible in events or state for valid calls:

    - Call arguments must be Python ints (or int subclasses) and are not range-checked: where
      the core raises OverflowError for a value outside its field's C type (e.g. ``side=256``,
      ``account=-1``), PyBook carries on and the bad value surfaces as an error at
      ``drain_events()``/``process()`` when the event is packed (the events stay pending).
    - ``process()`` loops over the rows and calls the per-call methods.
    - ``order()`` scans a bounded deque of the last ``history`` finished orders.
    - No admin commands: ``process()`` rejects MASS_CANCEL, HALT, RESUME and SET_LIMITS rows
      with BOOK_UNKNOWN_COMMAND (the core and the reference model carry them out), and there
      are no ``mass_cancel``/``halt``/``resume``/``set_limits`` methods; every instrument stays
      OPEN with the bounds it was registered with.
    """

    __slots__ = ("_books", "_live", "_events", "_history", "_history_capacity")

    def __init__(self, history: int = 65536, initial_orders: int = 1024) -> None:
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        if initial_orders < 1:  # a capacity hint PyBook does not need, checked alike
            raise ValueError(f"initial_orders must be >= 1, got {initial_orders}")
        self._books: dict[int, list] = {}
        self._live: dict[int, list] = {}  # order_id -> resting order, across all instruments
        self._events: list[tuple] = []  # pending events
        self._history_capacity = history
        self._history: deque[tuple] = deque(maxlen=history)  # finished, oldest first

    # -- instruments ---------------------------------------------------------------------------

    def add_instrument(self, instrument_id: int, min_qty: int = 1,
                       max_qty: int = INT64_MAX) -> None:
        if not 0 <= instrument_id <= UINT32_MAX:
            raise ValueError(f"instrument id out of range 0..2**32-1: {instrument_id}")
        if instrument_id in self._books:
            raise ValueError(f"duplicate instrument id: {instrument_id}")
        if min_qty < 1:
            raise ValueError(f"min_qty must be >= 1, got {min_qty}")
        if not min_qty <= max_qty <= INT64_MAX:
            raise ValueError(f"max_qty must be in min_qty ({min_qty})..2**63-1, got {max_qty}")
        self._books[instrument_id] = [min_qty, max_qty, _new_half(), _new_half()]

    def instruments(self) -> list[int]:
        return sorted(self._books)

    # -- NEW -----------------------------------------------------------------------------------

    def submit(self, order_id: int, instrument: int, side: int, price: int, qty: int,
               account: int = 0, ord_type: int = 1, tif: int = 1, flags: int = 0,
               seq: int = 0, ts_ns: int = 0) -> int:
        book = self._books.get(instrument)
        live = self._live
        # Every check of RULES.md at once; the rare failure works out its reason in order.
        if (order_id <= 0 or book is None or not 0 < side < 3 or not 0 < ord_type < 3
                or not 0 < tif < 4 or (flags and (flags != POST_ONLY or ord_type != LIMIT
                                                  or tif != GTC))
                or not book[0] <= qty <= book[1] or (price <= 0 and ord_type == LIMIT)
                or order_id in live):
            return self._reject_new(order_id, instrument, side, price, qty, account, ord_type,
                                    tif, flags, seq, ts_ns, 0)
        if side == BUY:
            own, opp, key = book[2], book[3], -price
            limit = price if ord_type == LIMIT else MARKET_LIMIT_KEY
        else:
            own, opp, key = book[3], book[2], price
            limit = -price if ord_type == LIMIT else MARKET_LIMIT_KEY
        crossing = opp[2] <= limit
        if flags and crossing:
            return self._reject_new(order_id, instrument, side, price, qty, account, ord_type,
                                    tif, flags, seq, ts_ns, R_POST_ONLY_WOULD_TAKE)
        events = self._events
        if ord_type == MARKET:
            price = 0
        events.append((seq, ts_ns, order_id, 0, price, qty, qty, 0, instrument, account, 0, 0,
                       ACCEPTED, side, NEW, 0))
        if not crossing and tif == GTC and ord_type == LIMIT:
            # the common case: rest at the back of the level
            levels = own[0]
            level = levels.get(key)
            if level is None:
                order = [order_id, account, side, price, qty, 0, flags, instrument, None, 0]
                order[8] = levels[key] = [qty, deque((order,)), price, key, own, 1]
                own[1].add(key)
                if key < own[2]:
                    own[2] = key
            else:
                total = level[0] + qty
                if total > INT64_MAX:
                    events.append((seq, ts_ns, order_id, 0, price, qty, 0, 0, instrument,
                                   account, 0, LEVEL_QUANTITY_LIMIT, CANCELLED, side, NEW, 0))
                    self._history.append((order_id, instrument, account, side, LIMIT, GTC,
                                          flags, price, qty, 0, 0, ST_CANCELLED))
                    return 2
                order = [order_id, account, side, price, qty, 0, flags, instrument, level, 0]
                level[0] = total
                level[5] += 1
                level[1].append(order)
            live[order_id] = order
            return 1
        n0 = len(events) - 1
        if not crossing:
            if tif == FOK:
                return self._fok_unfillable(order_id, instrument, side, price, qty, account,
                                            ord_type, tif, flags, seq, ts_ns)
            open_ = qty
        else:
            if tif == FOK and _available(opp, limit, qty) < qty:
                return self._fok_unfillable(order_id, instrument, side, price, qty, account,
                                            ord_type, tif, flags, seq, ts_ns)
            open_ = self._match(events, seq, ts_ns, order_id, account, side, instrument, NEW,
                                opp, limit, qty)
            if not open_:
                self._history.append((order_id, instrument, account, side, ord_type, tif, flags,
                                      price, qty, qty, 0, ST_FILLED))
                return len(events) - n0
        if ord_type == MARKET or tif == IOC:
            events.append((seq, ts_ns, order_id, 0, price, open_, 0, 0, instrument, account, 0,
                           MARKET_REMAINDER if ord_type == MARKET else IOC_REMAINDER,
                           CANCELLED, side, NEW, 0))
            self._history.append((order_id, instrument, account, side, ord_type, tif, flags,
                                  price, qty, qty - open_, 0, ST_CANCELLED))
        else:  # a GTC limit order that traded part of its quantity
            self._rest_or_cancel([order_id, account, side, price, qty, qty - open_, flags,
                                  instrument, None, 0], own, key, open_, seq, ts_ns, NEW)
        return len(events) - n0

    def _rest_or_cancel(self, order: list, own: list, key: int, open_: int, seq: int,
                        ts_ns: int, cmd: int) -> None:
        """Rest ``order`` (``open_`` lots) at the back of its level in ``own`` and index it,
        unless the level's open total would pass 2**63 - 1: then one LEVEL_QUANTITY_LIMIT."""
        levels = own[0]
        level = levels.get(key)
        if level is None:
            order[8] = levels[key] = [open_, deque((order,)), order[3], key, own, 1]
            own[1].add(key)
            if key < own[2]:
                own[2] = key
        else:
            total = level[0] + open_
            if total > INT64_MAX:
                self._events.append((seq, ts_ns, order[0], 0, order[3], open_, 0, 0, order[7],
                                     order[1], 0, LEVEL_QUANTITY_LIMIT, CANCELLED, order[2], cmd,
                                     0))
                self._history.append(_record(order, ST_CANCELLED))
                return
            order[8] = level
            level[0] = total
            level[5] += 1
            level[1].append(order)
        self._live[order[0]] = order

    def _reject_new(self, order_id, instrument, side, price, qty, account, ord_type, tif, flags,
                    seq, ts_ns, reason) -> int:
        """One REJECTED for a NEW (the first failing check of RULES.md unless ``reason``)."""
        if not reason:
            book = self._books.get(instrument)
            if order_id <= 0:
                reason = R_INVALID_ORDER_ID
            elif book is None:
                reason = R_UNKNOWN_INSTRUMENT
            elif side != BUY and side != SELL:
                reason = R_INVALID_SIDE
            elif ord_type != LIMIT and ord_type != MARKET:
                reason = R_INVALID_ORDER_TYPE
            elif tif != GTC and tif != IOC and tif != FOK:
                reason = R_INVALID_TIME_IN_FORCE
            elif flags & ~POST_ONLY or (flags & POST_ONLY and (ord_type != LIMIT or tif != GTC)):
                reason = R_INVALID_INSTRUCTIONS
            elif qty <= 0:
                reason = R_INVALID_QUANTITY
            elif qty < book[0]:
                reason = R_QUANTITY_BELOW_MIN
            elif qty > book[1]:
                reason = R_QUANTITY_ABOVE_MAX
            elif ord_type == LIMIT and price <= 0:
                reason = R_INVALID_PRICE
            else:
                reason = R_DUPLICATE_ORDER_ID
        self._events.append((seq, ts_ns, order_id, 0, price, qty, 0, 0, instrument, account, 0,
                             reason, REJECTED, side, NEW, 0))
        self._history.append((order_id, instrument, account, side, ord_type, tif, flags, price,
                              qty, 0, 0, ST_REJECTED))
        return 1

    def _fok_unfillable(self, order_id, instrument, side, price, qty, account, ord_type, tif,
                        flags, seq, ts_ns) -> int:
        self._events.append((seq, ts_ns, order_id, 0, price, qty, 0, 0, instrument, account, 0,
                             FOK_UNFILLABLE, CANCELLED, side, NEW, 0))
        self._history.append((order_id, instrument, account, side, ord_type, tif, flags, price,
                              qty, 0, 0, ST_CANCELLED))
        return 2

    def _match(self, events, seq, ts_ns, order_id, account, side, instrument, cmd, opp, limit,
               open_) -> int:
        """Trade a taker with ``open_`` lots against the half ``opp``, whose best key is
        ``<= limit``, best level first, oldest order first; return the taker's open after."""
        levels = opp[0]
        live = self._live
        finished = self._history.append
        emit = events.append
        best = opp[2]
        while True:
            level = levels[best]
            queue = level[1]
            price = level[2]
            while True:
                maker = queue[0]
                if maker[9]:  # cancelled or moved: drop it
                    queue.popleft()
                    continue
                maker_open = maker[4] - maker[5]
                if open_ < maker_open:  # the taker is done, the maker stays
                    maker[5] += open_
                    level[0] -= open_
                    emit((seq, ts_ns, order_id, maker[0], price, open_, 0, maker_open - open_,
                          instrument, account, maker[1], 0, TRADE, side, cmd, 0))
                    return 0
                # the maker is filled: it leaves the book (the list itself is dropped)
                open_ -= maker_open
                queue.popleft()
                del live[maker[0]]
                finished((maker[0], maker[7], maker[1], maker[2], LIMIT, GTC, maker[6], price,
                          maker[4], maker[4], 0, ST_FILLED))
                level[0] -= maker_open
                level[5] -= 1
                emit((seq, ts_ns, order_id, maker[0], price, maker_open, open_, 0,
                      instrument, account, maker[1], 0, TRADE, side, cmd, 0))
                if not level[5]:
                    break
                if not open_:
                    return 0
            del levels[best]
            keys = opp[1]
            keys.pop(0)
            opp[2] = best = keys[0] if levels else EMPTY
            if not open_ or best > limit:
                return open_

    # -- CANCEL --------------------------------------------------------------------------------

    def cancel(self, order_id: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> int:
        order = self._live.pop(order_id, None)
        if order is None or order[1] != account:
            if order is not None:
                self._live[order_id] = order  # another account's order: put it back
            self._events.append((seq, ts_ns, order_id, 0, 0, 0, 0, 0, 0, account, 0,
                                 R_UNKNOWN_ORDER, REJECTED, 0, CANCEL, 0))
            return 1
        open_ = order[4] - order[5]
        order[9] = ST_CANCELLED
        level = order[8]
        if level[5] == 1:
            _drop_level(level)
        else:
            level[0] -= open_
            level[5] -= 1
            if len(level[1]) > 2 * level[5] + 16:
                _compact(level)
        self._events.append((seq, ts_ns, order_id, 0, order[3], open_, 0, 0, order[7], account,
                             0, USER, CANCELLED, order[2], CANCEL, 0))
        self._history.append((order_id, order[7], account, order[2], LIMIT, GTC, order[6],
                              order[3], order[4], order[5], 0, ST_CANCELLED))
        return 1

    # -- REPLACE -------------------------------------------------------------------------------

    def replace(self, order_id: int, price: int, qty: int, account: int = 0,
                seq: int = 0, ts_ns: int = 0) -> int:
        live = self._live
        order = live.get(order_id)
        if order is None or order[1] != account:
            reason = R_UNKNOWN_ORDER
        else:
            book = self._books[order[7]]
            filled = order[5]
            side = order[2]
            if side == BUY:
                own, opp, key, limit = book[2], book[3], -price, price
            else:
                own, opp, key, limit = book[3], book[2], price, -price
            if qty <= 0:
                reason = R_INVALID_QUANTITY
            elif price <= 0:
                reason = R_INVALID_PRICE
            elif qty < book[0]:
                reason = R_QUANTITY_BELOW_MIN
            elif qty > book[1]:
                reason = R_QUANTITY_ABOVE_MAX
            elif qty <= filled:
                reason = R_REPLACE_QTY_NOT_ABOVE_FILLED
            elif order[6] and opp[2] <= limit:
                reason = R_POST_ONLY_WOULD_TAKE
            else:
                reason = 0
        if reason:
            self._events.append((seq, ts_ns, order_id, 0, price, qty, 0, 0, 0, account, 0,
                                 reason, REJECTED, 0, REPLACE, 0))
            return 1

        events = self._events
        instrument = order[7]
        open_ = qty - filled
        events.append((seq, ts_ns, order_id, 0, price, qty, open_, 0, instrument, account, 0, 0,
                       REPLACED, side, REPLACE, 0))
        level = order[8]
        if price == order[3] and qty <= order[4]:  # shrink in place, keep the queue position
            level[0] -= order[4] - qty
            order[4] = qty
            return 1

        # leave the level, then arrive again like a GTC limit order
        del live[order_id]
        moved = order
        order = order[:]  # a fresh entry; the old one stays behind, dead, in its old deque
        moved[9] = MOVED
        if level[5] == 1:
            _drop_level(level)
        else:
            level[0] -= moved[4] - filled
            level[5] -= 1
            if len(level[1]) > 2 * level[5] + 16:
                _compact(level)
        order[3] = price
        order[4] = qty
        n0 = len(events) - 1
        if opp[2] <= limit:
            open_ = self._match(events, seq, ts_ns, order_id, account, side, instrument, REPLACE,
                                opp, limit, open_)
            order[5] = qty - open_
            if not open_:
                self._history.append(_record(order, ST_FILLED))
                return len(events) - n0
        self._rest_or_cancel(order, own, key, open_, seq, ts_ns, REPLACE)
        return len(events) - n0

    # -- batch API -----------------------------------------------------------------------------

    def process(self, commands: np.ndarray) -> np.ndarray:
        """The events of exactly these COMMAND_DTYPE rows (pending events stay pending)."""
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise TypeError("process() takes a numpy array of engine.COMMAND_DTYPE")
        if commands.ndim != 1:
            raise ValueError("process() takes a one-dimensional array")
        events = self._events
        start = len(events)
        submit, cancel, replace = self.submit, self.cancel, self.replace
        for seq, ts, oid, price, qty, inst, acct, cmd, side, ot, tif, flags, _ in commands.tolist():
            if cmd == NEW:
                submit(oid, inst, side, price, qty, acct, ot, tif, flags, seq, ts)
            elif cmd == CANCEL or cmd == REPLACE:
                if cmd == CANCEL:
                    n = cancel(oid, acct, seq, ts)
                else:
                    n = replace(oid, price, qty, acct, seq, ts)
                if n == 1 and events[-1][12] == REJECTED:
                    # a REJECTED copies the row verbatim, fields the per-call API lacks included
                    events[-1] = (seq, ts, oid, 0, price, qty, 0, 0, inst, acct, 0,
                                  events[-1][11], REJECTED, side, cmd, 0)
            else:
                events.append((seq, ts, oid, 0, price, qty, 0, 0, inst, acct, 0,
                               R_UNKNOWN_COMMAND, REJECTED, side, cmd, 0))
        produced = events[start:]
        out = _to_array(produced)
        del events[start:]
        return out

    # -- events --------------------------------------------------------------------------------

    def drain_events(self) -> np.ndarray:
        out = _to_array(self._events)
        self._events.clear()
        return out

    @property
    def pending_events(self) -> int:
        return len(self._events)

    # -- queries -------------------------------------------------------------------------------

    def _book(self, instrument: int) -> list:
        try:
            return self._books[instrument]
        except (KeyError, TypeError):
            raise KeyError(f"unknown instrument: {instrument}") from None

    @staticmethod
    def _best(half: list) -> tuple[int, int] | None:
        if half[2] == EMPTY:
            return None
        level = half[0][half[2]]
        return (level[2], level[0])

    def best_bid(self, instrument: int) -> tuple[int, int] | None:
        return self._best(self._book(instrument)[2])

    def best_ask(self, instrument: int) -> tuple[int, int] | None:
        return self._best(self._book(instrument)[3])

    def depth(self, instrument: int, n: int = 10) -> tuple[list[tuple[int, int, int]],
                                                          list[tuple[int, int, int]]]:
        book = self._book(instrument)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")

        def side_depth(half: list) -> list[tuple[int, int, int]]:
            levels = half[0]
            return [(levels[k][2], levels[k][0], levels[k][5])
                    for k in half[1].islice(0, n)]

        return side_depth(book[2]), side_depth(book[3])

    def level_orders(self, instrument: int, side: int, price: int) -> list[tuple[int, int]]:
        book = self._book(instrument)
        if side == BUY:
            level = book[2][0].get(-price)
        elif side == SELL:
            level = book[3][0].get(price)
        else:
            raise ValueError(f"side must be BUY (1) or SELL (2), got {side}")
        if level is None:
            return []
        return [(o[0], o[4] - o[5]) for o in level[1] if not o[9]]

    def order(self, order_id: int) -> dict[str, Any] | None:
        # PyBook has the default venue only: every order's venue is 0
        o = self._live.get(order_id)
        if o is not None:
            return dict(zip(ORDER_FIELDS, _record(
                o, ST_NEW if o[5] == 0 else ST_PARTIALLY_FILLED, o[4] - o[5])), venue=0)
        for record in reversed(self._history):  # newest first
            if record[0] == order_id:
                return dict(zip(ORDER_FIELDS, record), venue=0)
        return None

    @property
    def open_orders(self) -> int:
        return len(self._live)

    @property
    def history(self) -> int:
        return self._history_capacity

    # -- integrity -----------------------------------------------------------------------------

    def state_digest(self) -> str:
        values: list[int] = []
        add = values.extend
        for instrument in sorted(self._books):
            book = self._books[instrument]
            add((instrument, 0, OPEN, book[0], book[1], len(book[2][0]), len(book[3][0])))
            for half in (book[2], book[3]):
                levels = half[0]
                for k in half[1]:  # best first on both sides
                    level = levels[k]
                    add((level[2], level[5]))
                    for o in level[1]:
                        if not o[9]:
                            add((o[0], o[1], o[4], o[5], o[6]))
        add((0, 0))  # no routing: no child ever created, no live parent
        data = np.array(values, dtype="<i8").tobytes()
        return hashlib.blake2b(data, digest_size=32).hexdigest()

    def check_integrity(self) -> None:
        seen: dict[int, list] = {}
        for instrument, book in self._books.items():
            for side, half in ((BUY, book[2]), (SELL, book[3])):
                levels, keys, best = half
                where = f"instrument {instrument} side {side}"
                assert list(keys) == sorted(levels), f"{where}: sorted keys != level keys"
                assert best == (keys[0] if levels else EMPTY), f"{where}: stale best key"
                for k, level in levels.items():
                    total, queue, price, key, owner, count = level
                    assert key == k == (-price if side == BUY else price) and owner is half, \
                        f"{where} level {price}: wrong key or owner"
                    assert all(o[9] in (MOVED, ST_CANCELLED) for o in queue if o[9]), \
                        f"{where} level {price}: a dead entry with an odd status"
                    queue = [o for o in queue if not o[9]]
                    assert queue and count == len(queue), f"{where} level {price}: bad count"
                    assert total == sum(o[4] - o[5] for o in queue), f"{where}: bad total"
                    for o in queue:
                        assert o[0] not in seen, f"{where}: order {o[0]} twice"
                        seen[o[0]] = o
                        assert o[8] is level and (o[7], o[2], o[3]) == (instrument, side, price), \
                            f"{where}: order {o[0]} is in the wrong level"
                        assert 0 <= o[5] < o[4], f"{where}: order {o[0]} filled {o[5]} of {o[4]}"
            bid, ask = book[2][2], book[3][2]
            assert bid == EMPTY or ask == EMPTY or -bid < ask, f"instrument {instrument}: crossed"
        assert seen.keys() == self._live.keys(), "live-order index does not match the levels"
        for order_id, o in self._live.items():
            assert seen[order_id] is o, f"live-order index holds a stale order {order_id}"


def _available(half: list, limit: int, need: int) -> int:
    """Open quantity in ``half`` at keys ``<= limit``, counted until ``need`` is reached."""
    levels = half[0]
    total = 0
    for k in half[1]:
        if k > limit:
            break
        total += levels[k][0]
        if total >= need:
            break
    return total


def _record(o: list, status: int, leaves: int = 0) -> tuple:
    """An order as an order() tuple (finished orders are kept as these: plain ints only, so the
    cyclic garbage collector stops tracking them)."""
    return (o[0], o[7], o[1], o[2], LIMIT, GTC, o[6], o[3], o[4], o[5], leaves, status)


def _compact(level: list) -> None:
    """Rebuild a level's deque without its dead entries."""
    level[1] = deque([o for o in level[1] if not o[9]])


def _drop_level(level: list) -> None:
    """Remove a level whose last live order is leaving from its half."""
    half = level[4]
    key = level[3]
    del half[0][key]
    keys = half[1]
    if key == half[2]:
        keys.pop(0)
        half[2] = keys[0] if half[0] else EMPTY
    else:
        keys.remove(key)
