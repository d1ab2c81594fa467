"""`engine report best-execution`: how well every routed (parent) order of a journal executed.

Owns the report: one row per ROUTE the core accepted (what was asked, what filled, at what
average price and fees, against the consolidated best bid and offer the order arrived to) and
a summary over them (the share filled at or better than the arrival best price, the fees, and
the fees saved against sending every fill to the instrument's primary venue). Must never
change what the core does: it replays the journal through a fresh core exactly as
``engine replay`` does, only split right before each ROUTE command so that
``consolidated_bbo`` sees the books as the order found them. Prices, quantities and fees stay
exact (integer arithmetic, decimal strings out); the only floats are the slippage in basis
points and the at-or-better share in percent, both rounded to 2 decimals.
"""
from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MAX_DECIMAL_PLACES
from ..instruments import Instrument, InstrumentSet
from ..journal.format import JournalCorrupt, JournalError, JournalMismatch, list_snapshots
from ..journal.reader import Journal
from ..journal.replay import DEFAULT_BATCH, new_core
from ..journal.replay_run import ReplayArgumentError, output_format
from ..journal.snapshot import core_state, read_snapshot
from ..risk.reference import fee as fee_units
from ..risk.reference import notional
from ..schema import (
    EVENT_DTYPE,
    CommandType,
    EventType,
    Flags,
    OrderStatus,
    OrdType,
    RiskKind,
    Side,
    TimeInForce,
)
from ..venues import VenueSet

__all__ = ["ParentExecution", "BestExecutionReport", "ReportArgumentError", "COLUMNS",
           "COLUMN_NAMES", "AVG_EXTRA_PLACES", "best_execution", "write_report", "read_rows",
           "run_best_execution", "arrow_schema", "fee_units", "notional"]

# The average price is exact when it has at most this many decimal places more than the
# instrument's tick size; otherwise it is rounded half-even to that many.
AVG_EXTRA_PLACES = 6

RAW_UNITS = "units"  # the fee "currency" of a journal that ran without risk

# One row per parent: (column, arrow type). Decimals are exact strings; None is empty/null.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("parent_id", "int64"),        # the ROUTE's order_id (an id can be reused once a parent ends)
    ("seq", "int64"),              # the ROUTE command's sequence number
    ("ts_ns", "int64"),            # its sequencer timestamp
    ("account", "int64"),
    ("instrument", "int64"),
    ("symbol", "string"),
    ("side", "string"),            # buy | sell
    ("strategy", "string"),        # sweep | sweep_post
    ("tif", "string"),             # IOC | FOK | GTC
    ("quantity", "string"),        # the routed quantity, instrument units
    ("limit_price", "string"),     # the limit price, or "market"
    ("status", "string"),          # filled | cancelled | open (still live at the journal's end)
    ("filled_qty", "string"),
    ("avg_price", "string"),       # sum(price x qty) / filled over the PARENT_FILLs; null: none
    ("fees", "string"),            # sum of the PARENT_FILL fees (see fee_currency)
    ("fee_currency", "string"),    # the instrument's currency; "units" without risk (raw)
    ("fees_saved", "string"),      # primary-venue fees of the same fills minus ``fees``
    ("arrival_bid", "string"),     # consolidated best bid just before the ROUTE; null: none
    ("arrival_bid_qty", "string"),  # open quantity at it over every book
    ("arrival_ask", "string"),
    ("arrival_ask_qty", "string"),
    ("arrival_mid", "string"),     # (bid + ask) / 2; null unless two-sided
    ("slippage_bps", "double"),    # vs. the arrival mid, positive = worse, 2 decimals
    ("at_or_better", "bool"),      # avg at or better than the arrival best price on its side
    ("venues", "string"),          # "LIT:50 ALT:30": quantity per venue, in the order first used
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


class ReportArgumentError(ReplayArgumentError):
    """An argument of ``engine report best-execution`` that cannot be used (one line)."""


# -- exact decimals -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _unit(unit: Decimal) -> tuple[int, int]:
    """A canonical grid unit as ``(t, e)`` with ``unit = t * 10**-e``, ``e >= 0``."""
    sign, digits, exp = unit.as_tuple()
    t = int("".join(map(str, digits)))
    return (t * 10 ** exp, 0) if exp >= 0 else (t, -exp)  # type: ignore[operator]


def _fixed(n: int, places: int) -> str:
    """The integer ``n`` scaled by ``10**-places``, in plain notation, exactly."""
    if places <= 0:
        return str(n)
    sign, digits = ("-" if n < 0 else ""), str(abs(n)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _ratio_text(num: int, den: int, unit: tuple[int, int], extra: int) -> str:
    """``num / den`` units (ticks) as a decimal price: exact with the fewest places (at
    least the unit's) if it has at most ``extra`` places more than the unit, else rounded
    half-even to that many. ``num >= 0``, ``den > 0``."""
    t, e = unit
    q, r = divmod(num * t * 10 ** extra, den)
    places = e + extra
    if r:
        if 2 * r > den or (2 * r == den and q % 2):
            q += 1
    else:
        while places > e and q % 10 == 0:
            q //= 10
            places -= 1
    return _fixed(q, places)


# -- the report -----------------------------------------------------------------------------------

@dataclass
class ParentExecution:
    """One routed (parent) order: what the ROUTE asked, what it got, and the market it met.

    Integer fields are the core's (ticks, lots, cash units); ``row()`` gives the report's
    columns with exact decimals."""

    parent_id: int
    seq: int
    ts_ns: int
    account: int
    instrument: Instrument
    side: int
    strategy: str
    tif: int
    ord_type: int
    qty: int                      # lots
    price: int                    # ticks (0 for MARKET)
    bid: tuple[int, int] | None   # (ticks, lots over every book) at arrival
    ask: tuple[int, int] | None
    fee_currency: str
    fee_decimals: int | None      # None: raw units (no risk)
    status: str = "open"
    filled: int = 0               # lots
    value: int = 0                # sum of price x qty (ticks x lots), exact
    fees: int = 0                 # cash units
    primary_fees: int = 0         # what the same fills would have paid on the primary venue
    venues: dict[int, int] = field(default_factory=dict)  # venue -> lots, first use first
    venue_names: dict[int, str] = field(default_factory=dict, repr=False)

    # -- exact values ------------------------------------------------------------------------
    @property
    def avg_ticks(self) -> Fraction | None:
        """sum(price x qty) / filled over the PARENT_FILLs, in ticks; None without fills."""
        return Fraction(self.value, self.filled) if self.filled else None

    @property
    def mid_ticks(self) -> Fraction | None:
        """(arrival best bid + best ask) / 2 in ticks; None unless both exist."""
        if self.bid is None or self.ask is None:
            return None
        return Fraction(self.bid[0] + self.ask[0], 2)

    @property
    def fees_saved(self) -> int:
        return self.primary_fees - self.fees

    @property
    def slippage_bps(self) -> float | None:
        """buy: (avg - mid) / mid x 10_000, sell: (mid - avg) / mid x 10_000 (positive =
        worse), rounded to 2 decimals; None without fills or a two-sided arrival market."""
        if not self.filled or self.bid is None or self.ask is None:
            return None
        s = self.bid[0] + self.ask[0]              # mid = s / 2, avg = value / filled
        if s <= 0:
            return None
        diff = 2 * self.value - self.filled * s    # (avg - mid) x 2 x filled
        if self.side != Side.BUY:
            diff = -diff
        return round(diff * 10_000 / (self.filled * s), 2) + 0.0   # + 0.0: never "-0.0"

    @property
    def at_or_better(self) -> bool | None:
        """buy: avg <= the arrival best ask; sell: avg >= the arrival best bid; None without
        fills or without a best price on the order's side at arrival."""
        if not self.filled:
            return None
        if self.side == Side.BUY:
            return None if self.ask is None else self.value <= self.ask[0] * self.filled
        return None if self.bid is None else self.value >= self.bid[0] * self.filled

    # -- decimals ----------------------------------------------------------------------------
    def _price(self, num: int, den: int = 1, extra: int = 0) -> str:
        return _ratio_text(num, den, _unit(self.instrument.tick_size), extra)

    def _qty(self, lots: int) -> str:
        t, e = _unit(self.instrument.lot_size)
        return _fixed(lots * t, e)

    def money(self, units: int) -> str:
        """Cash units as an exact decimal of the currency (raw units without risk)."""
        return str(units) if self.fee_decimals is None else _fixed(units, self.fee_decimals)

    def row(self) -> dict[str, Any]:
        """The report's columns (COLUMNS), decimals as exact strings, absent values None."""
        inst, bid, ask = self.instrument, self.bid, self.ask
        return {
            "parent_id": self.parent_id, "seq": self.seq, "ts_ns": self.ts_ns,
            "account": self.account, "instrument": inst.id, "symbol": inst.symbol,
            "side": "buy" if self.side == Side.BUY else "sell", "strategy": self.strategy,
            "tif": _TIF.get(self.tif, str(self.tif)), "quantity": self._qty(self.qty),
            "limit_price": ("market" if self.ord_type == OrdType.MARKET
                            else self._price(self.price)),
            "status": self.status, "filled_qty": self._qty(self.filled),
            "avg_price": (self._price(self.value, self.filled, AVG_EXTRA_PLACES)
                          if self.filled else None),
            "fees": self.money(self.fees), "fee_currency": self.fee_currency,
            "fees_saved": self.money(self.fees_saved),
            "arrival_bid": self._price(bid[0]) if bid else None,
            "arrival_bid_qty": self._qty(bid[1]) if bid else None,
            "arrival_ask": self._price(ask[0]) if ask else None,
            "arrival_ask_qty": self._qty(ask[1]) if ask else None,
            "arrival_mid": self._price(bid[0] + ask[0], 2, 1) if bid and ask else None,
            "slippage_bps": self.slippage_bps, "at_or_better": self.at_or_better,
            "venues": " ".join(f"{self.venue_names.get(v, v)}:{self._qty(q)}"
                               for v, q in self.venues.items()),
        }


_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}


@dataclass
class BestExecutionReport:
    """The report: ``rows`` (one ParentExecution per accepted ROUTE, in arrival order) and the
    summary. ``as_json()`` is ``--json``'s object, ``format()`` the text, ``to_arrow()`` the
    ``--out`` table."""

    journal: str
    first_seq: int
    last_seq: int
    commands: int
    raw_fees: bool                 # the journal ran without risk: fees in raw integer units
    parents: list[ParentExecution]
    ignored_fills: int = 0         # fills of parents routed before the replay's first command
    snapshot_seq: int = 0          # older segments gone: the replay started from this snapshot

    # -- summary -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """``parents``, ``filled``/``cancelled``/``open`` (counts by final status),
        ``filled_qty`` (sum over the parents, instrument units), ``at_or_better`` of
        ``at_or_better_of`` parents (those with fills and an arrival best price on their side)
        and ``at_or_better_pct``, ``fees`` and ``fees_saved`` per currency, ``fee_units``."""
        counts = {"filled": 0, "cancelled": 0, "open": 0}
        filled_qty = Fraction(0)
        fees: dict[str, list[int]] = {}
        good = of = 0
        for p in self.parents:
            counts[p.status] += 1
            filled_qty += p.filled * Fraction(p.instrument.lot_size)
            acc = fees.setdefault(p.fee_currency, [0, 0, p.fee_decimals])  # type: ignore[list-item]
            acc[0] += p.fees
            acc[1] += p.fees_saved
            verdict = p.at_or_better
            if verdict is not None:
                of += 1
                good += verdict
        money = {ccy: (self._money(f, d), self._money(s, d)) for ccy, (f, s, d) in fees.items()}
        return {
            "parents": len(self.parents), **counts,
            "filled_qty": _ratio_text(filled_qty.numerator, filled_qty.denominator, (1, 0),
                                      MAX_DECIMAL_PLACES),  # a lot size's places: exact
            "at_or_better": good, "at_or_better_of": of,
            "at_or_better_pct": round(100.0 * good / of, 2) if of else None,
            "fees": {ccy: m[0] for ccy, m in money.items()},
            "fees_saved": {ccy: m[1] for ccy, m in money.items()},
            "fee_units": "raw" if self.raw_fees else "cash",
            "ignored_fills": self.ignored_fills,
        }

    @staticmethod
    def _money(units: int, decimals: int | None) -> str:
        return str(units) if decimals is None else _fixed(units, decimals)

    def rows(self) -> list[dict[str, Any]]:
        return [p.row() for p in self.parents]

    def as_json(self) -> dict[str, Any]:
        return {"journal": self.journal, "first_seq": self.first_seq, "last_seq": self.last_seq,
                "commands": self.commands, "snapshot_seq": self.snapshot_seq,
                "rows": self.rows(), "summary": self.summary()}

    def to_arrow(self) -> Any:
        """One row per parent, the COLUMNS (decimals as strings)."""
        import pyarrow as pa

        rows = self.rows()
        schema = arrow_schema()
        return pa.table({name: pa.array([r[name] for r in rows], type=schema.field(name).type)
                         for name in COLUMN_NAMES}, schema=schema)

    def format(self) -> str:
        head = (f"best execution: {self.journal}, seq {self.first_seq:,}..{self.last_seq:,}"
                f" ({self.commands:,} commands)" if self.commands
                else f"best execution: {self.journal} (no commands)")
        lines = [head]
        if self.snapshot_seq:
            lines.append(f"state: from the snapshot after seq {self.snapshot_seq:,} (the older"
                         " segments are gone: ROUTEs up to it are not reported)")
        if self.raw_fees:
            lines.append("fees: raw integer cash units (the journal ran without risk: no"
                         " currency decimals)")
        else:
            lines.append("fees: in each instrument's currency (the risk currency decimals)")
        if not self.parents:
            lines.append("no routed orders: the journal holds no ROUTE command the core"
                         " accepted")
            return "\n".join(lines) + "\n"
        lines.append("slippage: against the arrival mid, basis points, positive = worse;"
                     " arrival = the consolidated book just before the ROUTE")
        lines.append("")
        lines.extend(_table(self.rows()))
        s = self.summary()
        lines.append("")
        lines.append("summary")
        lines.append(f"  parents       {s['parents']:,} ({s['filled']:,} filled,"
                     f" {s['cancelled']:,} cancelled, {s['open']:,} open)")
        lines.append(f"  filled qty    {s['filled_qty']}")
        pct = "-" if s["at_or_better_pct"] is None else f"{s['at_or_better_pct']:.2f}%"
        lines.append(f"  at or better  {s['at_or_better']:,} of {s['at_or_better_of']:,}"
                     f" ({pct}; parents with fills and an arrival best price on their side)")
        lines.append(f"  fees          {_per_ccy(s['fees'])}")
        lines.append(f"  fees saved    {_per_ccy(s['fees_saved'])} (vs. every fill on the"
                     " primary venue, same role)")
        if self.ignored_fills:
            lines.append(f"  ignored       {self.ignored_fills:,} fills of parents routed"
                         " before the snapshot the replay started from")
        return "\n".join(lines) + "\n"


def _per_ccy(amounts: dict[str, str]) -> str:
    return ", ".join(f"{v} {ccy}" for ccy, v in amounts.items()) or "0"


_TEXT_COLUMNS = (  # (header, column, right-aligned)
    ("parent", "parent_id", True), ("seq", "seq", True), ("acct", "account", True),
    ("symbol", "symbol", False), ("side", "side", False), ("strategy", "strategy", False),
    ("qty", "quantity", True), ("limit", "limit_price", True), ("status", "status", False),
    ("filled", "filled_qty", True), ("avg", "avg_price", True), ("fees", "fees", True),
    ("saved", "fees_saved", True), ("ccy", "fee_currency", False),
    ("bid", "arrival_bid", True), ("ask", "arrival_ask", True), ("mid", "arrival_mid", True),
    ("slip bps", "slippage_bps", True), ("at/better", "at_or_better", False),
    ("venues", "venues", False),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    cells = [[_cell(r[col]) for _, col, _ in _TEXT_COLUMNS] for r in rows]
    heads = [h for h, _, _ in _TEXT_COLUMNS]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if right else v.ljust(w)
                         for v, w, (_, _, right) in zip(values, widths, _TEXT_COLUMNS)).rstrip()

    return [line(heads)] + [line(c) for c in cells]


def arrow_schema() -> Any:
    import pyarrow as pa

    types = {"int64": pa.int64(), "string": pa.string(), "double": pa.float64(),
             "bool": pa.bool_()}
    return pa.schema([(name, types[t]) for name, t in COLUMNS])


# -- the replay -----------------------------------------------------------------------------------

_ROUTE = int(CommandType.ROUTE)
_ACCEPTED, _TRADE = int(EventType.ACCEPTED), int(EventType.TRADE)
_PARENT_FILL, _PARENT_DONE = int(EventType.PARENT_FILL), int(EventType.PARENT_DONE)
_RISK, _SET_RISK, _FEE = int(EventType.RISK), int(CommandType.SET_RISK), int(RiskKind.FEE)
_POST_REMAINDER = int(Flags.POST_REMAINDER)


class _Instruments:
    """Per instrument: k, the risk fee in force, the primary venue's fees, the fee currency."""

    def __init__(self, instruments: InstrumentSet, venues: VenueSet, risk: dict | None,
                 currencies: tuple[str, ...], decimals: tuple[int, ...]) -> None:
        self.set = instruments
        self.k: dict[int, int] = {i.id: 1 for i in instruments}
        self.fee_ppm: dict[int, int] = {i.id: 0 for i in instruments}
        self.ccy: dict[int, tuple[str, int | None]] = {i.id: (RAW_UNITS, None)
                                                       for i in instruments}
        if risk is not None:
            for r in risk["instruments"]:
                i = int(r["instrument"])
                self.k[i], self.fee_ppm[i] = int(r["k"]), int(r["fee_ppm"])
                c = int(r["ccy"])
                self.ccy[i] = (currencies[c], int(decimals[c]))
        self.primary: dict[int, tuple[int, int]] = {}   # instrument -> (maker, taker) ppm
        for inst in instruments:
            book = venues.primary(inst.id)
            if book is not None:
                v = venues.by_id(book.venue)
                self.primary[inst.id] = (v.maker_fee, v.taker_fee)


def best_execution(journal_dir: str | os.PathLike[str] | Journal, *,
                   batch: int = DEFAULT_BATCH) -> BestExecutionReport:
    """Replay a journal and report every routed (parent) order in it (docs/ROUTING.md).

    The replay runs in batches of ``batch`` commands, each split right before every ROUTE
    command so that the arrival market, ``consolidated_bbo(instrument)``, is the state of the
    instrument's books just before the ROUTE ran. JournalError if the directory is not a
    journal (or is corrupt); a journal without commands or without routed orders gives an
    empty report.
    """
    journal = journal_dir if isinstance(journal_dir, Journal) else Journal(Path(journal_dir))
    manifest = journal.manifest
    instruments = journal.instruments
    venues = manifest.venue_set()
    names = {v.id: v.name for v in venues}
    raw = manifest.risk is None
    report = BestExecutionReport(str(journal.path), journal.first_seq, journal.last_seq,
                                 journal.count, raw, [])
    if not journal.count:
        return report
    core = new_core(instruments, risk=manifest.risk_tables(), venues=venues)
    begin = _start_from_snapshot(journal, core) if journal.first_seq > 1 else 0
    report.snapshot_seq = begin
    risk_now = core.risk_state() if not raw else None
    info = _Instruments(instruments, venues, risk_now,
                        () if raw else tuple(manifest.risk.currencies),  # type: ignore[union-attr]
                        () if raw else tuple(manifest.risk.decimals))  # type: ignore[union-attr]
    live: dict[int, ParentExecution] = {}   # order id -> the live parent with that id
    out = report.parents
    for cmds in journal.iter_batches(begin + 1 if begin else None, None, batch):
        routes = np.flatnonzero(cmds["cmd"] == _ROUTE)
        # seq -> (the arrival bbo, the ROUTE's flags, tif, ord_type)
        arrival: dict[int, tuple[Any, int, int, int]] = {}
        if not len(routes):
            events = core.process(cmds)
        else:
            chunks = []
            start = 0
            for r, seq, inst, flags, tif, ord_type in zip(
                    routes.tolist(), *(cmds[f][routes].tolist()
                                       for f in ("seq", "instrument", "flags", "tif", "ord_type"))):
                if r > start:
                    chunks.append(core.process(cmds[start:r]))
                arrival[seq] = (_bbo(core, inst), flags, tif, ord_type)
                start = r
            chunks.append(core.process(cmds[start:]))
            events = _concat(chunks)
        report.ignored_fills += _fold(events, arrival, live, out, info, names)
    return report


def _start_from_snapshot(journal: Journal, core: Any) -> int:
    """A journal whose older segments are gone starts from its *oldest* usable snapshot (the
    most ROUTE commands it still holds get reported); returns the snapshot's seq."""
    for seq, path in sorted(list_snapshots(journal.path)):
        if not journal.first_seq - 1 <= seq <= journal.last_seq:
            continue
        try:
            got, state = read_snapshot(path, journal.manifest.instruments_digest)
        except (JournalCorrupt, JournalMismatch):
            continue
        if got == seq:
            core.load_state(core_state(state))
            return seq
    raise JournalError(f"{journal.path}: the journal starts at seq {journal.first_seq} (older"
                       " segments were archived) and no usable snapshot covers what came before")


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    """One array of the chunks' events (np.concatenate promotes the dtype once per chunk)."""
    if len(chunks) == 1:
        return chunks[0]
    return np.frombuffer(b"".join(c.data for c in chunks if len(c)), dtype=EVENT_DTYPE)


def _bbo(core: Any, instrument: int) -> dict[str, Any] | None:
    try:
        return core.consolidated_bbo(instrument)
    except (KeyError, ValueError, IndexError):   # an unknown instrument: the ROUTE is rejected
        return None


def _side(top: Any) -> tuple[int, int] | None:
    """A consolidated_bbo side as (best price, open quantity there over every book)."""
    if top is None:
        return None
    price, books = top
    total = 0
    for _, q in books:
        total += q
    return int(price), int(total)


def _fold(events: np.ndarray, arrival: dict[int, tuple[Any, int, int, int]],
            live: dict[int, ParentExecution], out: list[ParentExecution], info: _Instruments,
            names: dict[int, str]) -> int:
    """Fold one batch's events into the parents; returns the fills of unknown parents."""
    if not len(events):
        return 0
    types = events["type"]
    cmd = events["cmd"]
    keep = ((types == _PARENT_FILL) | (types == _PARENT_DONE)
            | ((types == _ACCEPTED) & (cmd == _ROUTE) & (events["parent_id"] == 0))
            | ((types == _RISK) & (cmd == _SET_RISK) & (events["reason"] == _FEE)))
    idx = np.flatnonzero(keep)
    if not len(idx):
        return 0
    # the role of each PARENT_FILL's child: the TRADE right before it (the TRADE, then the
    # taker's parent's fill, then the maker's) names the taker in order_id
    trade_at = np.where(types == _TRADE, np.arange(len(events)), -1)
    last_trade = np.maximum.accumulate(trade_at)[idx]
    taker = (last_trade >= 0) & (events["order_id"][np.maximum(last_trade, 0)]
                                 == events["other_id"][idx])
    ignored = 0
    cols = [events[name][idx].tolist() for name in (
        "type", "seq", "ts_ns", "order_id", "price", "qty", "fee", "instrument", "account",
        "reason", "venue", "side")]
    for (etype, seq, ts_ns, order_id, price, qty, fee, instrument, account, reason, venue,
         side), is_taker in zip(zip(*cols), taker.tolist()):
        if etype == _PARENT_FILL:
            p = live.get(order_id)
            if p is None:
                ignored += 1
                continue
            p.filled += qty
            p.value += price * qty
            p.fees += fee
            p.venues[venue] = p.venues.get(venue, 0) + qty
            maker_ppm, taker_ppm = info.primary[instrument]
            ppm = (taker_ppm if is_taker else maker_ppm) + info.fee_ppm[instrument]
            p.primary_fees += fee_units(notional(price, qty, info.k[instrument]), ppm)
        elif etype == _PARENT_DONE:
            p = live.pop(order_id, None)
            if p is not None:
                p.status = "filled" if reason == OrderStatus.FILLED else "cancelled"
        elif etype == _ACCEPTED:
            bbo, flags, tif, ord_type = arrival[seq]
            ccy, decimals = info.ccy[instrument]
            p = ParentExecution(
                parent_id=order_id, seq=seq, ts_ns=ts_ns, account=account,
                instrument=info.set.by_id(instrument), side=side,
                strategy="sweep_post" if flags & _POST_REMAINDER else "sweep",
                tif=tif, ord_type=ord_type, qty=qty, price=price,
                bid=_side(bbo["bid"]) if bbo else None, ask=_side(bbo["ask"]) if bbo else None,
                fee_currency=ccy, fee_decimals=decimals, venue_names=names)
            live[order_id] = p
            out.append(p)
        else:  # SET_RISK FEE: the instrument's risk fee from here on
            info.fee_ppm[instrument] = qty
    return ignored


# -- output ---------------------------------------------------------------------------------------

def write_report(report: BestExecutionReport, path: str | os.PathLike[str]) -> str:
    """Write one row per parent to ``path`` (.csv or .parquet, by its extension) through a
    temporary file beside it, renamed on success; returns the format."""
    fmt = output_format(path)
    p = Path(path)
    table = report.to_arrow()
    # as engine replay's EventSink: not mkstemp (its 0600 mode would survive the rename)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, str(tmp))
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, str(tmp))
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return fmt


def run_best_execution(journal_dir: str | os.PathLike[str], *,
                       out: str | os.PathLike[str] | None = None,
                       batch: int = DEFAULT_BATCH) -> BestExecutionReport:
    """``engine report best-execution``: check ``out`` (ReportArgumentError), then replay and
    report (JournalError for a journal that cannot be read), then write ``out``."""
    if out is not None:
        try:
            output_format(out)
        except ReplayArgumentError as e:
            raise ReportArgumentError(str(e)) from None
    report = best_execution(journal_dir, batch=batch)
    if out is not None:
        write_report(report, out)
    return report


def read_rows(path: str | os.PathLike[str]) -> Any:
    """A report written by ``write_report`` (.csv or .parquet) as a pyarrow Table with the
    report's schema (a CSV read back with exactly the types it was written with)."""
    fmt = output_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(str(path))
    import pyarrow.csv as pacsv

    schema = arrow_schema()
    return pacsv.read_csv(str(path), convert_options=pacsv.ConvertOptions(
        column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False,
        include_columns=list(COLUMN_NAMES)))

