"""Market data for subscribers: a top-of-book view per book, trades, instrument status, and each
instrument's book consolidated over its venues.

Owns the market-data sequence of every view and the levels each BookUpdate is a difference
against, so that a BookSnapshot followed by every later BookUpdate equals the core's top
``depth`` levels of that book. Must never change engine state; it only reads the core after
each batch.

A view is named by one int key (``view_key``): ``instrument | venue << 32``. Venue 0 is the
instrument's primary book as an engine without venues shows it (no ``venue`` in its messages:
byte for byte what it was); a venue id is that venue's book (its messages name the venue);
``CONSOLIDATED`` is the instrument's book merged over every venue (ConsolidatedBook messages).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..schema import EventType, TradingState
from .protocol import BookSnapshot, BookUpdate, ConsolidatedBook, InstrumentStatus, Trade, frame
from .routing import CONSOLIDATED, VenueNames

Level = tuple[int, int, int]            # price (ticks), open qty (lots), orders
_SIDE = {1: "buy", 2: "sell"}
_STATE = {int(s): s.name.lower() for s in TradingState}       # 1: "open", 2: "halted"
_MASK = (1 << 32) - 1


def view_key(instrument: int, venue: int = 0) -> int:
    """The key of a view: 0 the primary book, a venue id its book, CONSOLIDATED the merge."""
    return instrument | (venue << 32)


def instrument_status(instrument: int, seq: int, state: int, min_qty: int, max_qty: int,
                      md_seq: int, venue: str = "") -> InstrumentStatus:
    """The InstrumentStatus message of an INSTRUMENT_STATE event (a halt, resume or new
    quantity bounds; the event's reason, price and qty): for subscribers, and as the answer
    to the admin who asked."""
    return InstrumentStatus(instrument=instrument, md_seq=md_seq, seq=seq,
                            trading_state=_STATE.get(state, str(state)), min_qty=min_qty,
                            max_qty=max_qty, venue=venue)


def _diff(old: dict[int, Level], new: list[Level]) -> tuple[dict[int, Level], list[Level]]:
    now = {lv[0]: lv for lv in new}
    changed = [lv for p, lv in now.items() if old.get(p) != lv]
    changed += [(p, 0, 0) for p in old if p not in now]
    return now, changed


class MarketData:
    """Views of the subscribed books, kept current batch by batch.

    ``on_batch`` returns ``(view key, frame)`` pairs in the order they must go out: the trades
    and status changes of every book view in event order, then per book view (by key) one
    BookUpdate with every level that changed over the batch (qty 0: it left the view), then per
    consolidated view one ConsolidatedBook if the merged book changed.
    """

    def __init__(self, core: Any, depth: int = 10, venues: VenueNames | None = None) -> None:
        self.core = core
        self.depth = depth
        self.venues = venues if venues is not None else VenueNames()
        self.md_seq: dict[int, int] = {}
        self._bids: dict[int, dict[int, Level]] = {}
        self._asks: dict[int, dict[int, Level]] = {}
        self._merged: dict[int, tuple[list, list]] = {}        # consolidated: the last sent
        self._by_instrument: dict[int, list[int]] = {}         # instrument -> its view keys

    # -- views -----------------------------------------------------------------------------------
    def _venue(self, key: int) -> int:
        """The core's venue argument of a book view (0: the primary book)."""
        return key >> 32

    def watch(self, key: int) -> None:
        """Start keeping a view (its first subscriber arrived)."""
        inst, venue = key & _MASK, key >> 32
        if key in self._bids or key in self._merged:
            return
        if venue == CONSOLIDATED:
            self._merged[key] = self._consolidated(inst)
        else:
            bids, asks = self.core.depth(inst, self.depth, venue=venue)
            self._bids[key] = {lv[0]: lv for lv in bids}
            self._asks[key] = {lv[0]: lv for lv in asks}
        self.md_seq.setdefault(key, 0)
        self._by_instrument.setdefault(inst, []).append(key)
        self._by_instrument[inst].sort()

    def unwatch(self, key: int) -> None:
        self._bids.pop(key, None)
        self._asks.pop(key, None)
        self._merged.pop(key, None)
        keys = self._by_instrument.get(key & _MASK)
        if keys is not None and key in keys:
            keys.remove(key)
            if not keys:
                del self._by_instrument[key & _MASK]

    def snapshot(self, key: int) -> bytes:
        """The view's current state: BookSnapshot, or ConsolidatedBook (whole) for the merge."""
        self.watch(key)
        inst, venue = key & _MASK, key >> 32
        if venue == CONSOLIDATED:
            bids, asks = self._merged[key]
            return frame(ConsolidatedBook(instrument=inst, md_seq=self.md_seq[key],
                                          depth=self.depth, bids=bids, asks=asks))
        bids = sorted(self._bids[key].values(), key=lambda lv: -lv[0])
        asks = sorted(self._asks[key].values(), key=lambda lv: lv[0])
        return frame(BookSnapshot(instrument=inst, md_seq=self.md_seq[key], depth=self.depth,
                                  bids=bids, asks=asks, venue=self.venues.name(venue)))

    def _consolidated(self, instrument: int) -> tuple[list, list]:
        name = self.venues.name
        bids, asks = self.core.consolidated_depth(instrument, self.depth)
        return ([(p, q, [(name(v), vq) for v, vq in at]) for p, q, at in bids],
                [(p, q, [(name(v), vq) for v, vq in at]) for p, q, at in asks])

    def _next(self, key: int) -> int:
        n = self.md_seq.get(key, 0) + 1
        self.md_seq[key] = n
        return n

    def _book_views(self, instrument: int, venue: int) -> list[int]:
        """The views that show the book of ``instrument`` on ``venue``."""
        keys = self._by_instrument.get(instrument, ())
        out = []
        for key in keys:
            v = key >> 32
            if v == venue and v != 0 or v == 0 and venue == self.venues.primary(instrument):
                out.append(key)
        return out

    # -- each batch ------------------------------------------------------------------------------
    def on_batch(self, events: np.ndarray) -> list[tuple[int, bytes]]:
        if not self._by_instrument or not len(events):
            return []
        watched = self._by_instrument
        mask = np.isin(events["instrument"], np.fromiter(watched, dtype=np.uint32))
        if not mask.any():
            return []
        ev = events[mask]
        out: list[tuple[int, bytes]] = []
        kinds = ev["type"]
        wanted = ev[(kinds == EventType.TRADE) | (kinds == EventType.INSTRUMENT_STATE)]
        name = self.venues.name
        # one tolist() for the batch: numpy scalars one field at a time cost a microsecond each
        for (seq, ts, _, _, price, qty, _, _, _, _, _, inst, _, _, reason, venue, typ, side, _,
             _) in wanted.tolist():
            for key in self._book_views(inst, venue):
                vname = name(key >> 32)
                if typ == EventType.TRADE:
                    out.append((key, frame(Trade(
                        instrument=inst, md_seq=self._next(key), seq=seq, ts_ns=ts, price=price,
                        qty=qty, aggressor=_SIDE.get(side, ""), venue=vname))))
                else:
                    out.append((key, frame(instrument_status(inst, seq, reason, price, qty,
                                                              self._next(key), vname))))
        merged = []
        for inst in sorted(set(ev["instrument"].tolist())):
            for key in watched.get(inst, ()):
                venue = key >> 32
                if venue == CONSOLIDATED:
                    merged.append(key)
                    continue
                bids, asks = self.core.depth(inst, self.depth, venue=venue)
                self._bids[key], bid_changes = _diff(self._bids[key], bids)
                self._asks[key], ask_changes = _diff(self._asks[key], asks)
                if bid_changes or ask_changes:
                    bid_changes.sort(key=lambda lv: -lv[0])
                    ask_changes.sort(key=lambda lv: lv[0])
                    out.append((key, frame(BookUpdate(
                        instrument=inst, md_seq=self._next(key), bids=bid_changes,
                        asks=ask_changes, venue=name(venue)))))
        for key in merged:
            now = self._consolidated(key & _MASK)
            if now != self._merged[key]:
                self._merged[key] = now
                out.append((key, frame(ConsolidatedBook(
                    instrument=key & _MASK, md_seq=self._next(key), depth=self.depth,
                    bids=now[0], asks=now[1]))))
        return out
