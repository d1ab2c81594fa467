"""Market data for subscribers: a top-of-book view per instrument, trades, instrument status.

Owns the per-instrument market-data sequence and the view each BookUpdate is a difference
against, so that a BookSnapshot followed by every later BookUpdate equals the core's top
``depth`` levels. Must never change engine state; it only reads the core after each batch.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..schema import EventType, TradingState
from .protocol import BookSnapshot, BookUpdate, InstrumentStatus, Trade, frame

Level = tuple[int, int, int]            # price (ticks), open qty (lots), orders
_SIDE = {1: "buy", 2: "sell"}
_STATE = {int(s): s.name.lower() for s in TradingState}       # 1: "open", 2: "halted"


def instrument_status(instrument: int, seq: int, state: int, min_qty: int, max_qty: int,
                      md_seq: int) -> InstrumentStatus:
    """The InstrumentStatus message of an INSTRUMENT_STATE event (a halt, resume or new
    quantity bounds; the event's reason, price and qty): for subscribers, and as the answer
    to the admin who asked."""
    return InstrumentStatus(instrument=instrument, md_seq=md_seq, seq=seq,
                            trading_state=_STATE.get(state, str(state)), min_qty=min_qty,
                            max_qty=max_qty)


def _diff(old: dict[int, Level], new: list[Level]) -> tuple[dict[int, Level], list[Level]]:
    now = {lv[0]: lv for lv in new}
    changed = [lv for p, lv in now.items() if old.get(p) != lv]
    changed += [(p, 0, 0) for p in old if p not in now]
    return now, changed


class MarketData:
    """Views of the subscribed instruments, kept current batch by batch.

    ``on_batch`` returns ``(instrument, frame)`` pairs in the order they must go out: for each
    instrument, its trades and status changes in event order, then one BookUpdate with every
    level of the view that changed over the batch (qty 0: it left the view).
    """

    def __init__(self, core: Any, depth: int = 10) -> None:
        self.core = core
        self.depth = depth
        self.md_seq: dict[int, int] = {}
        self._bids: dict[int, dict[int, Level]] = {}
        self._asks: dict[int, dict[int, Level]] = {}

    def watch(self, instrument: int) -> None:
        """Start keeping a view of ``instrument`` (the first subscriber arrived)."""
        if instrument not in self._bids:
            bids, asks = self.core.depth(instrument, self.depth)
            self._bids[instrument] = {lv[0]: lv for lv in bids}
            self._asks[instrument] = {lv[0]: lv for lv in asks}
            self.md_seq.setdefault(instrument, 0)

    def unwatch(self, instrument: int) -> None:
        self._bids.pop(instrument, None)
        self._asks.pop(instrument, None)

    def snapshot(self, instrument: int) -> bytes:
        self.watch(instrument)
        bids = sorted(self._bids[instrument].values(), key=lambda lv: -lv[0])
        asks = sorted(self._asks[instrument].values(), key=lambda lv: lv[0])
        return frame(BookSnapshot(instrument=instrument, md_seq=self.md_seq[instrument],
                                  depth=self.depth, bids=bids, asks=asks))

    def _next(self, instrument: int) -> int:
        n = self.md_seq.get(instrument, 0) + 1
        self.md_seq[instrument] = n
        return n

    def on_batch(self, events: np.ndarray) -> list[tuple[int, bytes]]:
        if not self._bids or not len(events):
            return []
        watched = self._bids
        mask = np.isin(events["instrument"], np.fromiter(watched, dtype=np.uint32))
        if not mask.any():
            return []
        ev = events[mask]
        out: list[tuple[int, bytes]] = []
        kinds = ev["type"]
        wanted = ev[(kinds == EventType.TRADE) | (kinds == EventType.INSTRUMENT_STATE)]
        # one tolist() for the batch: numpy scalars one field at a time cost a microsecond each
        for (seq, ts, _, _, price, qty, _, _, inst, _, _, reason, typ, side, _,
             _) in wanted.tolist():
            if typ == EventType.TRADE:
                out.append((inst, frame(Trade(
                    instrument=inst, md_seq=self._next(inst), seq=seq, ts_ns=ts, price=price,
                    qty=qty, aggressor=_SIDE.get(side, "")))))
            else:
                out.append((inst, frame(instrument_status(inst, seq, reason, price, qty,
                                                          self._next(inst)))))
        for inst in sorted(set(ev["instrument"].tolist())):
            bids, asks = self.core.depth(inst, self.depth)
            self._bids[inst], bid_changes = _diff(self._bids[inst], bids)
            self._asks[inst], ask_changes = _diff(self._asks[inst], asks)
            if bid_changes or ask_changes:
                bid_changes.sort(key=lambda lv: -lv[0])
                ask_changes.sort(key=lambda lv: lv[0])
                out.append((inst, frame(BookUpdate(instrument=inst, md_seq=self._next(inst),
                                                   bids=bid_changes, asks=ask_changes))))
        return out
