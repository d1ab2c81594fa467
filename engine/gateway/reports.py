"""Execution reports: the core's events turned into per-account, gap-free numbered reports.

Owns report numbering and each order's running fill totals (cumulative quantity and notional,
for the average price). It is a pipeline part (engine.pipeline.Part): a pure function of the
journal's commands and events, snapshotted with the core and rebuilt by recovery, so report
numbers survive a restart. Must never send anything itself: the server releases the frames.

Routed orders (docs/ROUTING.md; docs/PROTOCOL.md "Routed orders"): the owner hears about the
parent only, by its client order id. A child's own events (``parent_id`` set; a TRADE's maker
with a negative id) make no report; each PARENT_FILL is one ``trade`` report of the parent
(the child's venue, fee and liquidity, the parent's rolled-up totals) and PARENT_DONE its final
``done`` report. A live parent keeps a second ``fills`` entry under ``-order_id``:
``[total quantity, fees so far]`` (children are never keys, so negative keys are free).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..schema import CommandType, EventType, Flags, OrderStatus, Side
from .protocol import ExecutionReport, OrderState, frame

ACCOUNTS_DTYPE = np.dtype([("account", "<u4"), ("_pad", "<u4"), ("last_report_seq", "<i8")])
# notional is a Python int (price x qty sums can pass 2**63); stored as two 64-bit halves. A live
# routed order also has a row under -order_id: cum_qty its total quantity, notional its fees
FILLS_DTYPE = np.dtype([("order_id", "<i8"), ("cum_qty", "<i8"), ("notional_hi", "<i8"),
                        ("notional_lo", "<u8")])

CL_ORD_ID_BITS = 32
CL_ORD_ID_MASK = (1 << CL_ORD_ID_BITS) - 1
# cum_notional goes on the wire only inside the signed 64-bit range (what a client's int64
# holds); outside it the field is left out (0, its default) and avg_price still comes from the
# exact notional. engine/gateway/_reports.pyx applies the same bound.
NOTIONAL_WIRE_MIN, NOTIONAL_WIRE_MAX = -(1 << 63), (1 << 63) - 1

# what caused a report; engine/gateway/_reports.pyx has the same table (S_REQUEST)
# (a ROUTE is what a NewOrder with venue SMART becomes: "new")
_REQUEST = {CommandType.NEW: "new", CommandType.CANCEL: "cancel",
            CommandType.REPLACE: "replace", CommandType.MASS_CANCEL: "mass_cancel",
            CommandType.KILL_SWITCH: "kill_switch", CommandType.ROUTE: "new"}
_SIDE = {Side.BUY: "buy", Side.SELL: "sell"}
_ORDER_COMMANDS = (CommandType.NEW, CommandType.CANCEL, CommandType.REPLACE, CommandType.ROUTE)
_NEW_COMMANDS = (CommandType.NEW, CommandType.ROUTE)
_NOTIONAL_MIN, _NOTIONAL_MAX = -(1 << 127), (1 << 127) - 1   # the compiled twin's int128


def _runs(reports: list[tuple[int, int, bytes]]) -> list[tuple[int, int, int, bytes]]:
    """One batch's reports as one ``(account, first, last, frames joined)`` per account, in the
    order the accounts first appear (an account's numbers in one batch are consecutive)."""
    groups: dict[int, list] = {}
    for account, n, data in reports:
        g = groups.get(account)
        if g is None:
            groups[account] = [n, n, [data]]
        else:
            g[1] = n
            g[2].append(data)
    return [(a, first, last, b"".join(frames)) for a, (first, last, frames) in groups.items()]


class _Sink:
    """A list's ``append`` that hands each report straight on (recovery keeps no list)."""

    __slots__ = ("append",)

    def __init__(self, fn: Callable[[int, int, bytes], None]) -> None:
        self.append = lambda item: fn(*item)


def _wire_notional(n: int) -> int:
    return n if NOTIONAL_WIRE_MIN <= n <= NOTIONAL_WIRE_MAX else 0


def venue_table(venues: Mapping[int, str] | None) -> dict[int, str]:
    """``{venue id: name}`` checked: ids 1..65535, names of 1..64 characters (what a config's
    ``[[venues]]`` allows; the compiled builder's frames have room for no longer)."""
    out: dict[int, str] = {}
    for k, v in dict(venues or {}).items():
        if type(k) is not int or not 1 <= k <= 65535:
            raise ValueError(f"venue ids are ints 1..65535, got {k!r}")
        if type(v) is not str or not 1 <= len(v) <= 64:
            raise ValueError(f"venue {k}: a name is a str of 1..64 characters, got {v!r}")
        out[k] = v
    return dict(sorted(out.items()))


def _strategy(venue: int) -> str:
    """A parent's strategy from its ACCEPTED or PARENT_DONE event: sweep_post parents carry the
    venue their rest is posted on, sweep parents venue 0 (docs/ROUTING.md)."""
    return "sweep_post" if venue else "sweep"


_ORD_TYPE_NAME = {1: "limit", 2: "market"}
_TIF_NAME = {1: "gtc", 2: "ioc", 3: "fok"}
_STATUS_NAME = {int(s): s.name.lower() for s in OrderStatus}


def order_states(core: Any, account: int, cl_ord_id: int | None = None,
                 venue_name: Callable[[int], str] = lambda v: str(v) if v else "",
                 ) -> list[OrderState]:
    """One order of ``account`` (live, or recently finished) as the wire shows it, or with
    ``cl_ord_id`` None every open order of the account (in the books' order; a live routed
    order where its resting child is): the answer to OrderQuery, and the orders of a
    RiskReport. ``venue_name`` names a venue id (0: ""). O(resting orders) for all of them."""
    if cl_ord_id is not None:
        o = core.order(order_id_for(account, cl_ord_id))
        found = [] if o is None or o["account"] != account else [o]
    else:
        rows = core.export_state()["orders"]
        found = []
        for oid in rows["order_id"][rows["account"] == account].tolist():
            o = core.order(int(oid))
            if o is not None and o.get("parent_id"):
                o = core.order(o["parent_id"])    # a resting child: its parent, in its place
            if o is not None:
                found.append(o)
    return [OrderState(
        cl_ord_id=o["order_id"] & CL_ORD_ID_MASK, instrument=o["instrument"],
        side=_SIDE.get(o["side"], ""), status=_STATUS_NAME.get(o["status"], ""),
        price=o["price"], qty=o["qty"], leaves_qty=o["leaves"], cum_qty=o["filled"],
        ord_type=_ORD_TYPE_NAME.get(o["ord_type"], ""), tif=_TIF_NAME.get(o["tif"], ""),
        post_only=bool(o["flags"] & Flags.POST_ONLY), venue=venue_name(o.get("venue", 0)),
        strategy=("" if not o["flags"] & Flags.PARENT else
                  "sweep_post" if o["flags"] & Flags.POST_REMAINDER else "sweep"))
        for o in found]


def order_id_for(account: int, cl_ord_id: int) -> int:
    """The engine order id of an account's client order id: each account has its own id space,
    so no account can name another's order, and the id needs no table to survive a restart."""
    return (account << CL_ORD_ID_BITS) | cl_ord_id


class ReportBuilder:
    """Turns each batch's events into ExecutionReport frames, numbered per account.

    ``on_batch`` runs for every batch (live and during recovery); live reports are kept in
    ``pending`` as ``(account, report_seq, frame)`` until the server takes them. During
    recovery they go to ``recovered(account, report_seq, frame)`` if given: the same bytes the
    live run sent, so a client that missed them before a crash can have them resent.
    """

    name = "gw"
    sections = {"gw.accounts": ACCOUNTS_DTYPE, "gw.fills": FILLS_DTYPE}

    def __init__(self, recovered: Callable[..., None] | None = None,
                 runs: bool = False, venues: Mapping[int, str] | None = None) -> None:
        self.last: dict[int, int] = {}               # account -> last report_seq issued
        # order id -> [cum_qty, cum_notional]; -(a live parent's id) -> [total qty, fees]
        self.fills: dict[int, list[int]] = {}
        # venue id -> name (an id not in it is named by its number; 0 is never named)
        self.venues: dict[int, str] = venue_table(venues)
        self.pending: list[tuple[int, int, bytes]] = []
        self.recovered = recovered
        # runs: ``pending`` holds one ``(account, first, last, frames joined)`` per account per
        # batch instead of one tuple per report (what the server queues, stores and sends), and
        # ``recovered`` is called once per such run
        self.runs = runs

    def next_report_seq(self, account: int) -> int:
        return self.last.get(account, 0) + 1

    def take(self) -> list[Any]:
        out, self.pending = self.pending, []
        return out

    # -- the part -----------------------------------------------------------------------------

    def on_batch(self, commands: np.ndarray, events: np.ndarray, live: bool) -> None:
        if not len(events):
            return
        if self.runs and (live or self.recovered is not None):
            reports: list[tuple[int, int, bytes]] = []
            self._build(events, True, reports)
            if live:
                self.pending += _runs(reports)
            else:
                for run in _runs(reports):
                    self.recovered(*run)
        elif not live and self.recovered is not None:
            self._build(events, True, _Sink(self.recovered))
        else:
            self._build(events, live, self.pending)

    def _build(self, events: np.ndarray, live: bool, out: list | _Sink) -> None:
        last, fills, names = self.last, self.fills, self.venues
        taker = 0             # the taker of the batch's last TRADE: its PARENT_FILL is "taker"
        for (seq, ts, oid, other, price, qty, leaves, other_leaves, fee, other_fee, parent, inst,
             acct, other_acct, reason, venue, typ, side, cmd, _) in events.tolist():
            vname = (names.get(venue) or str(venue)) if venue else ""
            if typ == EventType.TRADE:
                taker = oid
                for mine, my_leaves, my_acct, my_side, my_fee, liq, child in (
                        (oid, leaves, acct, side, fee, "taker", parent != 0),
                        (other, other_leaves, other_acct, 3 - side, other_fee, "maker",
                         other < 0)):
                    if child:
                        continue      # a child's fill: its parent's PARENT_FILL reports it
                    f = fills.get(mine)
                    if f is None:
                        f = fills[mine] = [0, 0]
                    f[0] += qty
                    f[1] += price * qty
                    n = last.get(my_acct, 0) + 1
                    last[my_acct] = n
                    if live:
                        out.append((my_acct, n, frame(ExecutionReport(
                            report_seq=n, seq=seq, ts_ns=ts, exec_type="trade",
                            request=_REQUEST.get(cmd, ""), cl_ord_id=mine & CL_ORD_ID_MASK,
                            instrument=inst, side=_SIDE.get(my_side, ""),
                            status="filled" if my_leaves == 0 else "partially_filled",
                            qty=f[0] + my_leaves, leaves_qty=my_leaves, cum_qty=f[0],
                            cum_notional=_wire_notional(f[1]), avg_price=f[1] / f[0],
                            last_price=price, last_qty=qty, liquidity=liq, venue=vname,
                            fee=my_fee))))
                    if my_leaves == 0:
                        del fills[mine]
                continue
            if typ == EventType.PARENT_FILL:
                # one child fill rolled up to its parent: the parent's trade report
                f = fills.get(oid)
                notional = (0 if f is None else f[1]) + price * qty
                if not _NOTIONAL_MIN <= notional <= _NOTIONAL_MAX:
                    raise OverflowError("gateway reports: an order's notional would leave the"
                                        " 128-bit range")
                if f is None:
                    f = fills[oid] = [0, 0]
                f[0] += qty
                f[1] = notional
                info = fills.get(-oid) if oid > 0 else None
                if info is not None:
                    info[1] = other_fee
                n = last.get(acct, 0) + 1
                last[acct] = n
                if live:
                    total = info[0] if info is not None else f[0] + leaves
                    out.append((acct, n, frame(ExecutionReport(
                        report_seq=n, seq=seq, ts_ns=ts, exec_type="trade",
                        request=_REQUEST.get(cmd, ""), cl_ord_id=oid & CL_ORD_ID_MASK,
                        instrument=inst, side=_SIDE.get(side, ""),
                        status="partially_filled" if leaves != 0 else
                        "filled" if total == f[0] else "cancelled",
                        qty=total, leaves_qty=leaves, cum_qty=f[0],
                        cum_notional=_wire_notional(f[1]),
                        avg_price=f[1] / f[0] if f[0] else 0.0, last_price=price, last_qty=qty,
                        liquidity="taker" if other == taker else "maker", venue=vname,
                        fee=fee, cum_fee=other_fee))))
                continue
            if typ == EventType.PARENT_DONE:
                f = fills.pop(oid, None)
                if oid > 0:
                    fills.pop(-oid, None)
                n = last.get(acct, 0) + 1
                last[acct] = n
                if live:
                    cum, notional = f if f is not None else (0, 0)
                    out.append((acct, n, frame(ExecutionReport(
                        report_seq=n, seq=seq, ts_ns=ts, exec_type="done",
                        request=_REQUEST.get(cmd, ""), cl_ord_id=oid & CL_ORD_ID_MASK,
                        instrument=inst, side=_SIDE.get(side, ""),
                        status=_STATUS_NAME.get(reason, ""), price=price, qty=qty,
                        leaves_qty=leaves, cum_qty=cum, cum_notional=_wire_notional(notional),
                        avg_price=notional / cum if cum else 0.0, venue=vname,
                        cum_fee=other_fee, strategy=_strategy(venue)))))
                continue
            if parent:
                continue              # a child's own events: its parent's reports stand for them
            if typ == EventType.REJECTED:
                if cmd not in _ORDER_COMMANDS:
                    continue          # admin and mass-cancel rejects go to the requester
                if oid < 0:
                    continue          # a command naming a child: no client order id names it
            elif typ not in (EventType.ACCEPTED, EventType.CANCELLED, EventType.REPLACED):
                continue              # instrument state changes are market data
            n = last.get(acct, 0) + 1
            last[acct] = n
            info = fills.get(-oid) if oid > 0 and typ != EventType.REJECTED else None
            if info is not None:      # a live parent's cancel (maybe of an odd lot) or replace
                f = fills.get(oid)
                if typ == EventType.REPLACED and qty > 0:
                    info[0] = qty
            elif typ == EventType.CANCELLED:
                f = fills.pop(oid, None)
            else:
                f = fills.get(oid)
                if typ == EventType.ACCEPTED and cmd == CommandType.ROUTE and oid > 0 and qty > 0:
                    fills[-oid] = [qty, 0]        # a new parent: its total and fees
            if not live:
                continue
            cum, notional = f if f is not None else (0, 0)
            extra: dict[str, Any] = {}
            if info is not None:
                extra["cum_fee"] = info[1]
            if typ == EventType.ACCEPTED:
                kw = dict(exec_type="new", status="new", price=price, qty=qty, leaves_qty=leaves)
                if cmd == CommandType.ROUTE and oid > 0:
                    extra["strategy"] = _strategy(venue)
            elif typ == EventType.CANCELLED:
                if info is not None:
                    kw = dict(exec_type="cancelled", price=price, qty=info[0], reason=reason,
                              leaves_qty=leaves, status="cancelled" if leaves == 0 else
                              "partially_filled" if cum else "new")
                else:
                    kw = dict(exec_type="cancelled", status="cancelled", price=price,
                              qty=cum + qty, reason=reason)
            elif typ == EventType.REPLACED:
                kw = dict(exec_type="replaced", status="partially_filled" if cum else "new",
                          price=price, qty=qty, leaves_qty=leaves)
            else:
                kw = dict(exec_type="rejected", status="rejected" if cmd in _NEW_COMMANDS
                          else "", price=price, qty=qty, reason=reason, leaves_qty=leaves)
            out.append((acct, n, frame(ExecutionReport(
                report_seq=n, seq=seq, ts_ns=ts, request=_REQUEST.get(cmd, ""),
                cl_ord_id=oid & CL_ORD_ID_MASK, instrument=inst, side=_SIDE.get(side, ""),
                cum_qty=cum, cum_notional=_wire_notional(notional),
                avg_price=notional / cum if cum else 0.0, venue=vname, **kw, **extra))))

    def export_state(self) -> dict[str, np.ndarray]:
        accounts = np.zeros(len(self.last), dtype=ACCOUNTS_DTYPE)
        if self.last:
            keys = sorted(self.last)
            accounts["account"] = keys
            accounts["last_report_seq"] = [self.last[k] for k in keys]
        fills = np.zeros(len(self.fills), dtype=FILLS_DTYPE)
        if self.fills:
            keys = sorted(self.fills)
            fills["order_id"] = keys
            fills["cum_qty"] = [self.fills[k][0] for k in keys]
            fills["notional_hi"] = [self.fills[k][1] >> 64 for k in keys]
            fills["notional_lo"] = [self.fills[k][1] & ((1 << 64) - 1) for k in keys]
        return {"gw.accounts": accounts, "gw.fills": fills}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        accounts, fills = state["gw.accounts"], state["gw.fills"]
        if bool((accounts["last_report_seq"] < 0).any()) or bool((fills["cum_qty"] <= 0).any()):
            raise ValueError("gateway report state: negative report numbers or fill totals")
        self.last = dict(zip(accounts["account"].tolist(), accounts["last_report_seq"].tolist()))
        self.fills = {oid: [cum, (hi << 64) | lo] for oid, cum, hi, lo in fills.tolist()}
        self.pending = []
