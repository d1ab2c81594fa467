"""Execution reports: the core's events turned into per-account, gap-free numbered reports.

Owns report numbering and each order's running fill totals (cumulative quantity and notional,
for the average price). It is a pipeline part (engine.pipeline.Part): a pure function of the
journal's commands and events, snapshotted with the core and rebuilt by recovery, so report
numbers survive a restart. Must never send anything itself: the server releases the frames.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..schema import CommandType, EventType, OrderStatus, Side
from .protocol import ExecutionReport, OrderState, frame

ACCOUNTS_DTYPE = np.dtype([("account", "<u4"), ("_pad", "<u4"), ("last_report_seq", "<i8")])
# notional is a Python int (price x qty sums can pass 2**63); stored as two 64-bit halves
FILLS_DTYPE = np.dtype([("order_id", "<i8"), ("cum_qty", "<i8"), ("notional_hi", "<i8"),
                        ("notional_lo", "<u8")])

CL_ORD_ID_BITS = 32
CL_ORD_ID_MASK = (1 << CL_ORD_ID_BITS) - 1
# cum_notional goes on the wire only inside the signed 64-bit range (what a client's int64
# holds); outside it the field is left out (0, its default) and avg_price still comes from the
# exact notional. engine/gateway/_reports.pyx applies the same bound.
NOTIONAL_WIRE_MIN, NOTIONAL_WIRE_MAX = -(1 << 63), (1 << 63) - 1

# what caused a report; engine/gateway/_reports.pyx has the same table (S_REQUEST)
_REQUEST = {CommandType.NEW: "new", CommandType.CANCEL: "cancel",
            CommandType.REPLACE: "replace", CommandType.MASS_CANCEL: "mass_cancel",
            CommandType.KILL_SWITCH: "kill_switch"}
_SIDE = {Side.BUY: "buy", Side.SELL: "sell"}
_ORDER_COMMANDS = (CommandType.NEW, CommandType.CANCEL, CommandType.REPLACE)


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


_ORD_TYPE_NAME = {1: "limit", 2: "market"}
_TIF_NAME = {1: "gtc", 2: "ioc", 3: "fok"}
_STATUS_NAME = {int(s): s.name.lower() for s in OrderStatus}


def order_states(core: Any, account: int, cl_ord_id: int | None = None) -> list[OrderState]:
    """One order of ``account`` (live, or recently finished) as the wire shows it, or with
    ``cl_ord_id`` None every open order of the account (in the books' order): the answer to
    OrderQuery, and the orders of a RiskReport. O(resting orders) for all of them."""
    if cl_ord_id is not None:
        o = core.order(order_id_for(account, cl_ord_id))
        found = [] if o is None or o["account"] != account else [o]
    else:
        rows = core.export_state()["orders"]
        found = [core.order(int(oid)) for oid in
                 rows["order_id"][rows["account"] == account].tolist()]
    return [OrderState(
        cl_ord_id=o["order_id"] & CL_ORD_ID_MASK, instrument=o["instrument"],
        side=_SIDE.get(o["side"], ""), status=_STATUS_NAME.get(o["status"], ""),
        price=o["price"], qty=o["qty"], leaves_qty=o["leaves"], cum_qty=o["filled"],
        ord_type=_ORD_TYPE_NAME.get(o["ord_type"], ""), tif=_TIF_NAME.get(o["tif"], ""),
        post_only=bool(o["flags"] & 1)) for o in found]


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
                 runs: bool = False) -> None:
        self.last: dict[int, int] = {}               # account -> last report_seq issued
        self.fills: dict[int, list[int]] = {}        # order id -> [cum_qty, cum_notional]
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
        last, fills = self.last, self.fills
        for (seq, ts, oid, other, price, qty, leaves, other_leaves, inst, acct, other_acct,
             reason, typ, side, cmd, _) in events.tolist():
            if typ == EventType.TRADE:
                for mine, my_leaves, my_acct, my_side, liq in (
                        (oid, leaves, acct, side, "taker"),
                        (other, other_leaves, other_acct, 3 - side, "maker")):
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
                            last_price=price, last_qty=qty, liquidity=liq))))
                    if my_leaves == 0:
                        del fills[mine]
                continue
            if typ == EventType.REJECTED:
                if cmd not in _ORDER_COMMANDS:
                    continue          # admin and mass-cancel rejects go to the requester
            elif typ not in (EventType.ACCEPTED, EventType.CANCELLED, EventType.REPLACED):
                continue              # instrument state changes are market data
            n = last.get(acct, 0) + 1
            last[acct] = n
            f = fills.pop(oid, None) if typ == EventType.CANCELLED else fills.get(oid)
            if not live:
                continue
            cum, notional = f if f is not None else (0, 0)
            if typ == EventType.ACCEPTED:
                kw = dict(exec_type="new", status="new", price=price, qty=qty, leaves_qty=leaves)
            elif typ == EventType.CANCELLED:
                kw = dict(exec_type="cancelled", status="cancelled", price=price,
                          qty=cum + qty, reason=reason)
            elif typ == EventType.REPLACED:
                kw = dict(exec_type="replaced", status="partially_filled" if cum else "new",
                          price=price, qty=qty, leaves_qty=leaves)
            else:
                kw = dict(exec_type="rejected", status="rejected" if cmd == CommandType.NEW
                          else "", price=price, qty=qty, reason=reason, leaves_qty=leaves)
            out.append((acct, n, frame(ExecutionReport(
                report_seq=n, seq=seq, ts_ns=ts, request=_REQUEST.get(cmd, ""),
                cl_ord_id=oid & CL_ORD_ID_MASK, instrument=inst, side=_SIDE.get(side, ""),
                cum_qty=cum, cum_notional=_wire_notional(notional),
                avg_price=notional / cum if cum else 0.0, **kw))))

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
