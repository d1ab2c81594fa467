"""Venues and smart order routing through the gateway (docs/PROTOCOL.md, "Venues and smart order
routing"; docs/ROUTING.md): direct orders on a named venue, SMART parents reported by their
client order id (children's fills with venue and fee, rolled up; a final ``done``), per-venue
and consolidated market data, the edge's two refusals, the core's rejects as reports, rights,
restarts, the fast inbound path and the compiled report builder held to the Python one.

The default config: LIT (1; maker -20, taker 30 ppm), ALT (2; 0, 10), CROSS (3; free) all list
AAPL (tick 0.01, lot 1); risk on, AAPL's k = 10_000 cash units (millionths of a USD) per tick x
lot, so a fee is in millionths of a dollar.
"""
from __future__ import annotations

import asyncio
import os
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import VenueConfig, VenueListingConfig, default_config
from engine.gateway import _wire
from engine.gateway._reports import FastReportBuilder
from engine.gateway.client import Client
from engine.gateway.protocol import (
    UNSET,
    Cancel,
    ExecutionReport,
    LogonAck,
    NewOrder,
    Reject,
    Replace,
    Subscribe,
    decode_server,
    frame,
)
from engine.gateway.reports import ReportBuilder
from engine.gateway.routing import RouteRequestError, VenueNames
from engine.gateway.server import Server, order_record
from engine.gateway.terminal import (
    Catalog,
    OpenOrder,
    OrderCmd,
    UsageError,
    format_orders,
    format_report,
    order_message,
    parse_command,
    run_terminal,
)
from engine.instruments import InstrumentSet
from engine.pipeline import Engine
from engine.schema import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    Reason,
)
from engine.venues import VenueSet

from .conftest import AAPL, ADMIN, ALICE, BOB, logon, run, serving, settle

LIT, ALT, CROSS = 1, 2, 3
SPY, ES, UST = 2, 3, 6
NAMES = {LIT: "LIT", ALT: "ALT", CROSS: "CROSS"}


def no_venues():
    return msgspec.structs.replace(default_config(), venues=())


def coarse():
    """The default config with ALT quoting AAPL on a coarser grid: tick 0.05, lot 10."""
    base = default_config()
    venues = tuple(msgspec.structs.replace(v, instruments=(
        VenueListingConfig(symbol="AAPL", tick_size=Decimal("0.05"), lot_size=Decimal("10")),
        "SPY")) if v.name == "ALT" else v for v in base.venues)
    return msgspec.structs.replace(base, venues=venues)


def pick(r: Any, *fields: str) -> tuple:
    return tuple(getattr(r, f) for f in fields)


async def until(c: Client, exec_type: str, cl_ord_id: int | None = None
                ) -> list[ExecutionReport]:
    return await c.reports_until(lambda r: r.exec_type == exec_type and (
        cl_ord_id is None or r.cl_ord_id == cl_ord_id), timeout=10)


async def reject(c: Client) -> Reject:
    return await c.next_reject(timeout=10)


def drained(c: Client) -> list[Any]:
    out = []
    while not c.reports.empty():
        out.append(c.reports.get_nowait())
    return out


async def rest_three_venues(b: Client) -> list[ExecutionReport]:
    """bob's asks of the README's worked sweep: 150.00 on LIT and ALT, 150.01 on ALT and
    CROSS. Their four ``new`` reports."""
    for cl, venue, price, qty in [(1, "LIT", 15000, 100), (2, "ALT", 15000, 100),
                                  (3, "ALT", 15001, 200), (4, "CROSS", 15001, 50)]:
        await b.new_order(cl, AAPL, "sell", qty, price, venue=venue)
    return await until(b, "new", 4)


# -- a SMART sweep across three venues -------------------------------------------------------------

def test_a_smart_sweep_across_three_venues_reports_fills_venues_fees_and_the_rollup() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            news = await rest_three_venues(b)
            await a.smart_order(1, AAPL, "buy", 300, 15001)          # sweep, IOC
            got = await until(a, "done", 1)
            F = ("exec_type", "cl_ord_id", "status", "qty", "leaves_qty", "cum_qty",
                 "cum_notional", "last_price", "last_qty", "liquidity", "venue", "fee",
                 "cum_fee", "strategy")
            assert [pick(r, *F) for r in got] == [
                ("new", 1, "new", 300, 300, 0, 0, 0, 0, "", "", 0, 0, "sweep"),
                # 150.00: ALT first (150.0015 with its 10 ppm) before LIT (150.0045)
                ("trade", 1, "partially_filled", 300, 200, 100, 1_500_000, 15000, 100, "taker",
                 "ALT", 150_000, 150_000, ""),
                ("trade", 1, "partially_filled", 300, 100, 200, 3_000_000, 15000, 100, "taker",
                 "LIT", 450_000, 600_000, ""),
                # 150.01: the free CROSS before ALT
                ("trade", 1, "partially_filled", 300, 50, 250, 3_750_050, 15001, 50, "taker",
                 "CROSS", 0, 600_000, ""),
                ("trade", 1, "filled", 300, 0, 300, 4_500_100, 15001, 50, "taker", "ALT",
                 75_005, 675_005, ""),
                ("done", 1, "filled", 300, 0, 300, 4_500_100, 0, 0, "", "", 0, 675_005,
                 "sweep"),
            ]
            assert {r.request for r in got} == {"new"} and got[-1].price == 15001
            assert got[-1].avg_price == 4_500_100 / 300
            assert [r.report_seq for r in got] == [1, 2, 3, 4, 5, 6]
            # bob's resting orders: new on their venues, then each maker fill with his fee
            assert [pick(r, "cl_ord_id", "venue") for r in news] == [
                (1, "LIT"), (2, "ALT"), (3, "ALT"), (4, "CROSS")]
            fills = await b.reports_until(lambda r: r.cl_ord_id == 3 and r.exec_type == "trade")
            assert [pick(r, "cl_ord_id", "status", "last_qty", "liquidity", "venue", "fee")
                    for r in fills] == [
                (2, "filled", 100, "maker", "ALT", 0),
                (1, "filled", 100, "maker", "LIT", -300_000),      # LIT's 20 ppm rebate
                (4, "filled", 50, "maker", "CROSS", 0),
                (3, "partially_filled", 50, "maker", "ALT", 0)]
            # what risk charged is what the reports say: 0.675005 USD
            pos = next(p for p in (await a.risk()).risk.positions if p.symbol == "AAPL")
            assert (pos.fees, pos.position) == ("0.675005", "1300")
            assert (await a.orders()).orders == []                    # the parent is done
            assert [pick(o, "cl_ord_id", "leaves_qty", "venue") for o in
                    (await b.orders()).orders] == [(3, 150, "ALT")]
    run(body)


def test_a_fok_sweep_that_cannot_fill_changes_no_book() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await rest_three_venues(b)
            digest = server.engine.state_digest()
            await a.smart_order(1, AAPL, "buy", 451, 15001, tif="fok")
            got = await until(a, "done", 1)
            assert [pick(r, "exec_type", "status", "qty", "cum_qty", "reason") for r in got] == [
                ("new", "new", 451, 0, 0),
                ("cancelled", "cancelled", 451, 0, CancelCause.FOK_UNFILLABLE),
                ("done", "cancelled", 451, 0, 0)]
            assert server.engine.core.depth(AAPL, 5, venue=ALT)[1] == [(15000, 100, 1),
                                                                     (15001, 200, 1)]
            await settle(server)
            assert drained(b) == [] and server.engine.state_digest() == digest
    run(body)


# -- sweep_post: resting, a passive fill, replace, cancel ------------------------------------------

def test_sweep_post_rests_fills_passively_rolls_up_and_cancels_by_the_parent_id() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await b.new_order(1, AAPL, "sell", 100, 15000, venue="CROSS")
            await until(b, "new", 1)
            await a.smart_order(7, AAPL, "buy", 250, 15000, strategy="sweep_post")
            got = await a.reports_until(lambda r: r.exec_type == "trade")
            assert [pick(r, "exec_type", "status", "qty", "leaves_qty", "cum_qty", "venue",
                         "strategy", "liquidity") for r in got] == [
                ("new", "new", 250, 250, 0, "LIT", "sweep_post", ""),    # LIT: best maker fee
                ("trade", "partially_filled", 250, 150, 100, "CROSS", "", "taker")]
            await settle(server)
            assert drained(a) == []                           # resting: no done yet
            core = server.engine.core
            assert core.depth(AAPL, 5, venue=LIT)[0] == [(15000, 150, 1)]
            (o,) = (await a.orders()).orders
            assert pick(o, "cl_ord_id", "status", "qty", "leaves_qty", "cum_qty", "venue",
                        "strategy", "tif") == (7, "partially_filled", 250, 150, 100, "LIT",
                                               "sweep_post", "gtc")
            # bob takes 60 of the posted rest on LIT: alice's passive fill, with LIT's rebate
            await b.new_order(2, AAPL, "sell", 60, 15000, venue="LIT")
            (fill,) = await until(a, "trade", 7)
            assert pick(fill, "status", "qty", "leaves_qty", "cum_qty", "last_qty", "venue",
                        "liquidity", "fee", "cum_fee", "request") == (
                "partially_filled", 250, 90, 160, 60, "LIT", "maker", -180_000, -180_000, "new")
            taker = (await until(b, "trade", 2))[-1]
            assert pick(taker, "liquidity", "venue", "fee") == ("taker", "LIT", 270_000)
            # a replace may only lower the quantity: the parent's report, the child's none
            await a.replace(7, 15000, 200)
            (rep,) = await until(a, "replaced", 7)
            assert pick(rep, "qty", "leaves_qty", "cum_qty", "venue", "cum_fee") == (
                200, 40, 160, "LIT", -180_000)
            await a.replace(7, 15000, 300)
            (rej,) = await until(a, "rejected", 7)
            assert (rej.reason, rej.request) == (Reason.BOOK_PARENT_REPLACE, "replace")
            # cancel by the parent's client order id: cancelled, then done
            await a.cancel(7)
            got = await until(a, "done", 7)
            assert [pick(r, "exec_type", "status", "qty", "cum_qty", "leaves_qty", "reason",
                         "cum_fee", "strategy") for r in got] == [
                ("cancelled", "cancelled", 200, 160, 0, CancelCause.USER, -180_000, ""),
                ("done", "cancelled", 200, 160, 0, 0, -180_000, "sweep_post")]
            assert got[-1].cum_notional == 160 * 15000
            assert core.depth(AAPL, 5, venue=LIT) == ([], [])
            assert core.open_orders == 0 and (await a.orders()).orders == []
    run(body)


def test_an_odd_lot_is_cancelled_while_the_rest_rests_on_a_coarser_venue() -> None:
    async def body() -> None:
        async with serving(coarse()) as (server, port):
            a = await logon(port, ALICE)
            await a.smart_order(1, AAPL, "buy", 105, 15000, strategy="sweep_post",
                                post_venue="ALT")
            got = await until(a, "cancelled", 1)
            assert [pick(r, "exec_type", "status", "qty", "leaves_qty", "reason", "venue")
                    for r in got] == [
                ("new", "new", 105, 105, 0, "ALT"),
                ("cancelled", "new", 105, 100, CancelCause.ODD_LOT, "ALT")]   # 5 of 105
            (o,) = (await a.orders()).orders
            assert pick(o, "qty", "leaves_qty", "venue") == (105, 100, "ALT")
            await a.mass_cancel()
            got = await until(a, "done", 1)
            assert [pick(r, "exec_type", "status", "request", "qty", "leaves_qty") for r in got] \
                == [("cancelled", "cancelled", "mass_cancel", 105, 0),
                    ("done", "cancelled", "mass_cancel", 105, 0)]
    run(body)


# -- direct orders on a named venue ----------------------------------------------------------------

def test_a_direct_order_trades_only_in_its_venues_book() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await b.new_order(1, AAPL, "sell", 10, 15000)           # the primary: LIT
            (r,) = await until(b, "new", 1)
            assert r.venue == "LIT"
            await a.new_order(1, AAPL, "buy", 10, 15000, venue="ALT")   # ALT's book is empty
            (r,) = await until(a, "new", 1)
            assert pick(r, "status", "leaves_qty", "venue") == ("new", 10, "ALT")
            core = server.engine.core
            assert core.best_bid(AAPL, venue=ALT) == (15000, 10) and core.best_bid(AAPL) is None
            assert core.best_ask(AAPL, venue=LIT) == (15000, 10)
            await a.new_order(2, AAPL, "buy", 4, 15000, venue="LIT")
            r = (await until(a, "trade", 2))[-1]
            assert pick(r, "status", "venue", "fee", "liquidity") == ("filled", "LIT", 18_000,
                                                                     "taker")
            (m,) = await until(b, "trade", 1)
            assert pick(m, "leaves_qty", "venue", "fee") == (6, "LIT", -12_000)
            assert [pick(o, "cl_ord_id", "venue", "strategy") for o in
                    (await a.orders()).orders] == [(1, "ALT", "")]
    run(body)


# -- what is refused, and by whom ----------------------------------------------------------------

def test_every_bad_routing_input_is_refused_and_changes_nothing() -> None:
    async def body() -> None:
        async with serving(coarse()) as (server, port):
            a = await logon(port, ALICE)
            eng = server.engine

            async def edge(expect: int, **kw: Any) -> None:
                """Refused by the gateway: a Reject, nothing journaled, the state unchanged."""
                seq, digest = eng.last_seq, eng.state_digest()
                a.send(NewOrder(cl_ord_id=9, instrument=AAPL, side="buy", qty=10, price=15000,
                                **kw))
                r = await reject(a)
                assert (r.reason, r.ref_type, r.cl_ord_id) == (expect, "NewOrder", 9), r
                assert (eng.last_seq, eng.state_digest()) == (seq, digest)

            async def core(expect: int, **kw: Any) -> ExecutionReport:
                """Refused by the core: a rejected report with its code; the state unchanged."""
                digest = eng.state_digest()
                await a.new_order(9, kw.pop("instrument", AAPL), "buy", kw.pop("qty", 10),
                                  kw.pop("price", 15000), **kw)
                (r,) = await until(a, "rejected", 9)
                assert (r.reason, r.status, r.request) == (expect, "rejected", "new"), r
                assert eng.state_digest() == digest
                return r

            await edge(Reason.BOOK_UNKNOWN_VENUE, venue="NOPE")
            await edge(Reason.BOOK_UNKNOWN_VENUE, venue="lit")          # names are exact
            await edge(Reason.BOOK_UNKNOWN_VENUE, venue="SMART", post_venue="NOPE")
            await edge(Reason.BOOK_UNKNOWN_VENUE, venue="SMART", post_venue="SMART")
            await edge(Reason.GATEWAY_INVALID_FIELD, strategy="sweep")  # no venue
            await edge(Reason.GATEWAY_INVALID_FIELD, venue="LIT", strategy="sweep_post")
            await edge(Reason.GATEWAY_INVALID_FIELD, venue="LIT", post_venue="ALT")
            await edge(Reason.GATEWAY_INVALID_FIELD, post_venue="ALT")
            # a bad strategy or an empty name fails decoding, as any bad field does
            a.send_raw(frame(NewOrder(cl_ord_id=9, instrument=AAPL, side="buy", qty=1,
                                      venue="SMART", strategy="sweep"))
                       .replace(b"\xa5sweep", b"\xa5twap!"))
            r = await reject(a)
            assert (r.reason, r.ref_type) == (Reason.GATEWAY_INVALID_FIELD, "NewOrder")
            assert "strategy" in r.text
            a.send(NewOrder(cl_ord_id=9, instrument=AAPL, side="buy", qty=1, venue=""))
            r = await reject(a)
            assert (r.reason, r.ref_type) == (Reason.GATEWAY_INVALID_FIELD, "NewOrder")
            # the core's: the grid of a coarser venue, listing, routability, strategy vs tif
            r = await core(Reason.BOOK_OFF_VENUE_GRID, venue="ALT", price=15001)
            assert r.venue == "ALT"
            await core(Reason.BOOK_OFF_VENUE_GRID, venue="ALT", qty=15)
            await core(Reason.BOOK_VENUE_NOT_LISTED, instrument=ES, price=23200, qty=1,
                       venue="ALT")
            await core(Reason.BOOK_NO_ROUTABLE_VENUE, instrument=UST, price=3152, qty=1000,
                       venue="SMART", tif="ioc")
            await core(Reason.BOOK_INVALID_STRATEGY, venue="SMART")            # sweep, GTC
            await core(Reason.BOOK_INVALID_STRATEGY, venue="SMART", tif="ioc",
                       post_venue="LIT")                                     # sweep, posted
            await core(Reason.BOOK_INVALID_STRATEGY, venue="SMART", strategy="sweep_post",
                       tif="ioc")
            await core(Reason.BOOK_OFF_VENUE_GRID, venue="SMART", strategy="sweep_post",
                       post_venue="ALT", price=15001)
            await core(Reason.BOOK_INVALID_INSTRUCTIONS, venue="SMART", tif="ioc",
                       post_only=True)
    run(body)


def test_a_child_cannot_be_named_and_the_cores_child_reject_changes_nothing() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            await a.smart_order(1, AAPL, "buy", 50, 14990, strategy="sweep_post")
            await until(a, "new", 1)
            core, eng = server.engine.core, server.engine
            child = core.order((1 << 32) | 1)["child_id"]
            assert child < 0                     # no client order id (1..2**32-1) reaches it
            a.send_raw(frame(Cancel(cl_ord_id=1)).replace(b"\xa9cl_ord_id\x01",
                                                          b"\xa9cl_ord_id\xff"))
            r = await reject(a)
            assert (r.reason, r.ref_type) == (Reason.GATEWAY_INVALID_FIELD, "Cancel")
            # the core's own rule, through the journal (as an operator's tool would send it)
            digest, seq = eng.state_digest(), eng.last_seq
            rec = np.zeros(1, COMMAND_DTYPE)
            rec["cmd"], rec["order_id"], rec["account"] = CommandType.CANCEL, child, 1
            server._add(rec.tobytes())
            await settle(server)
            assert eng.last_seq == seq + 1 and eng.state_digest() == digest
            ev = eng.core.order(child)
            assert ev is not None and ev["parent_id"] == (1 << 32) | 1       # still resting
            assert drained(a) == []              # no report names a child
            # the parent's id cancels both
            await a.cancel(1)
            assert [r.exec_type for r in await until(a, "done", 1)] == ["cancelled", "done"]
            assert core.order(child)["leaves"] == 0
    run(body)


def test_rejected_child_commands_in_the_journal_make_no_report() -> None:
    events = np.zeros(1, EVENT_DTYPE)
    events[0]["type"], events[0]["cmd"], events[0]["order_id"] = (
        EventType.REJECTED, CommandType.CANCEL, -3)
    events[0]["account"], events[0]["reason"] = 1, Reason.BOOK_CHILD_ORDER
    for b in (ReportBuilder(), FastReportBuilder()):
        b.on_batch(None, events, True)
        assert b.take() == [] and b.last == {}


def test_another_account_cannot_see_or_touch_a_parent_or_its_children() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await a.smart_order(5, AAPL, "buy", 100, 14990, strategy="sweep_post")
            await until(a, "new", 5)
            digest = server.engine.state_digest()
            await b.cancel(5)                                # bob's id 5: none of his
            (r,) = await until(b, "rejected", 5)
            assert r.reason == Reason.BOOK_UNKNOWN_ORDER
            await b.replace(5, 14990, 50)
            (r,) = await until(b, "rejected", 5)
            assert r.reason == Reason.BOOK_UNKNOWN_ORDER
            assert server.engine.state_digest() == digest
            assert (await b.orders()).orders == [] and (await b.orders(5)).orders == []
            assert (await b.risk()).orders == []
            # bob's fill against the posted child names bob's order, and nothing of alice's
            await b.new_order(1, AAPL, "sell", 30, 14990, venue="LIT")
            got = await until(b, "trade", 1)
            assert [pick(r, "cl_ord_id", "venue") for r in got] == [(1, "LIT"), (1, "LIT")]
            (fill,) = await until(a, "trade", 5)
            assert pick(fill, "cum_qty", "leaves_qty", "liquidity") == (30, 70, "maker")
            # the other account's market data shows the level, not whose it is
            book = await b.subscribe(AAPL)
            assert book.levels()[0] == [(14990, 70, 1)]
    run(body)


# -- market data: per venue, consolidated ---------------------------------------------------------

def _merged(server: Server, n: int = 10) -> tuple[list, list]:
    bids, asks = server.engine.core.consolidated_depth(AAPL, n)
    name = server.venues.name
    return ([(p, q, [(name(v), vq) for v, vq in at]) for p, q, at in bids],
            [(p, q, [(name(v), vq) for v, vq in at]) for p, q, at in asks])


def test_market_data_per_venue_and_consolidated() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            w = await logon(port, ADMIN)
            core = server.engine.core
            await b.new_order(1, AAPL, "sell", 100, 15000, venue="LIT")
            await b.new_order(2, AAPL, "sell", 70, 15000, venue="ALT")
            await until(b, "new", 2)
            primary = await w.subscribe(AAPL)
            alt = await w.subscribe(AAPL, venue="ALT")
            first = await w.subscribe_consolidated(AAPL)
            assert (primary.venue, alt.venue) == ("", "ALT")
            assert primary.levels() == core.depth(AAPL, 10)
            assert alt.levels() == core.depth(AAPL, 10, venue=ALT)
            assert (first.bids, first.asks) == _merged(server)
            assert first.asks[0] == (15000, 170, [("LIT", 100), ("ALT", 70)])
            bbo = core.consolidated_bbo(AAPL)
            assert bbo == {"bid": None, "ask": (15000, ((LIT, 100), (ALT, 70)))}
            rng = random.Random(5)
            for i in range(3, 60):
                venue = rng.choice(["LIT", "ALT", "CROSS", None])
                await b.new_order(i, AAPL, rng.choice(["buy", "sell"]), rng.randint(1, 30),
                                  15000 + rng.randint(-4, 4), venue=venue)
                if i % 10 == 0:
                    await a.smart_order(i, AAPL, rng.choice(["buy", "sell"]),
                                        rng.randint(10, 80), 15000 + rng.randint(-3, 3),
                                        strategy=rng.choice(["sweep", "sweep_post"]))
            await settle(server, 10)
            assert primary.levels() == core.depth(AAPL, 10)
            assert alt.levels() == core.depth(AAPL, 10, venue=ALT)
            last = w.consolidated[AAPL]
            assert (last.bids, last.asks) == _merged(server) and last.md_seq > first.md_seq
            bbo = core.consolidated_bbo(AAPL)         # the first level of each side
            for side, levels in (("bid", last.bids), ("ask", last.asks)):
                want = bbo[side]
                if want is None:
                    assert levels == []
                else:
                    assert (levels[0][0], levels[0][2]) == (
                        want[0], [(server.venues.name(v), q) for v, q in want[1]])
            # trades: each book's to its own view; the primary view's are LIT's, as before
            trades = []
            while not w.trades.empty():
                trades.append(w.trades.get_nowait())
            assert {t.venue for t in trades} <= {"", "ALT"} and trades
            assert all(t.venue == "ALT" for t in trades if t.venue)
            seqs = {}
            for t in trades:
                seqs.setdefault(t.venue, []).append(t.md_seq)
            assert all(s == sorted(set(s)) for s in seqs.values())
            # refusals, and unsubscribing
            for kw, reason in [(dict(venue="NOPE"), Reason.BOOK_UNKNOWN_VENUE),
                               (dict(venue="SMART"), Reason.BOOK_UNKNOWN_VENUE),
                               (dict(instrument=ES, venue="ALT"), Reason.BOOK_VENUE_NOT_LISTED),
                               (dict(venue="ALT", consolidated=True),
                                Reason.GATEWAY_INVALID_FIELD)]:
                w.send(Subscribe(**{"instrument": AAPL, **kw}))
                r = await reject(w)
                assert (r.reason, r.ref_type) == (reason, "Subscribe")
            await w.unsubscribe(AAPL, venue="ALT")
            await w.unsubscribe(AAPL, consolidated=True)
            await settle(server)
            assert set(server.subscribers) == {AAPL}
    run(body)


def test_without_venues_reports_and_market_data_are_the_old_bytes() -> None:
    async def body() -> None:
        async with serving(no_venues()) as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            assert a.logon_ack.venues == [] and all(not i.venues for i in
                                                    a.logon_ack.instruments)
            book = await a.subscribe(AAPL)
            await b.new_order(1, AAPL, "sell", 10, 15000)
            await a.new_order(1, AAPL, "buy", 4, 15000)
            await until(a, "trade", 1)
            await settle(server)
            # the reports of an engine without venues have no venue, fee or routing key
            for f in [d for acct in (1, 2) for _, _, d in server.store.kept[acct]]:
                pos = 0
                while pos < len(f):
                    n = int.from_bytes(f[pos:pos + 4], "big")
                    keys = msgspec.msgpack.decode(f[pos + 4:pos + 4 + n]).keys()
                    assert not keys & {"venue", "fee", "cum_fee", "strategy"}
                    pos += 4 + n
            assert book.venue == "" and book.levels() == server.engine.core.depth(AAPL, 10)
            a.send(NewOrder(cl_ord_id=2, instrument=AAPL, side="buy", qty=1, price=15000,
                            venue="LIT"))
            assert (await reject(a)).reason == Reason.BOOK_UNKNOWN_VENUE
            await a.smart_order(3, AAPL, "buy", 1, 15000)
            (r,) = await until(a, "rejected", 3)
            assert r.reason == Reason.BOOK_NO_ROUTABLE_VENUE
    run(body)


def test_logon_lists_the_venues_their_grids_and_fee_units() -> None:
    async def body() -> None:
        async with serving(coarse()) as (server, port):
            ack: LogonAck = (await logon(port, ALICE)).logon_ack
            assert [(v.id, v.name, v.maker_fee, v.taker_fee, v.priority) for v in ack.venues] \
                == [(1, "LIT", -20, 30, 0), (2, "ALT", 0, 10, 1), (3, "CROSS", 0, 0, 2)]
            alt = ack.venues[1]
            assert [(li.symbol, li.tick_size, li.lot_size) for li in alt.instruments] == [
                ("AAPL", "0.05", "10"), ("SPY", "0.01", "1")]
            info = {i.symbol: i for i in ack.instruments}
            assert info["AAPL"].venues == ["LIT", "ALT", "CROSS"]
            assert info["ES"].venues == ["LIT"] and info["UST-10Y"].venues == []
            assert info["AAPL"].fee_unit == "0.000001" and info["XS-CORP-2034"].fee_unit == "0.01"
    run(body)


def test_a_venue_named_smart_is_refused_at_start() -> None:
    # the config refuses the name (a ValueError); the server would too, for a config built
    # some other way
    with pytest.raises(ValueError, match="SMART"):
        VenueConfig(id=9, name="SMART", maker_fee=0, taker_fee=0, instruments=("AAPL",))


# -- restarts: the same reports, byte for byte -----------------------------------------------------

def test_routed_reports_are_resent_byte_for_byte_after_a_restart(tmp_path: Path) -> None:
    async def body() -> None:
        async with serving(journal_dir=tmp_path) as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await rest_three_venues(b)
            await a.smart_order(1, AAPL, "buy", 300, 15001)
            await until(a, "done", 1)
            await a.smart_order(2, AAPL, "buy", 40, 14990, strategy="sweep_post")
            await until(a, "new", 2)
            await settle(server)
            sent = b"".join(d for _, _, d in server.store.kept[1])
        async with serving(journal_dir=tmp_path) as (server, port):
            again = b"".join(d for _, _, d in server.store.kept[1])
            assert again == sent
            a = await logon(port, ALICE)
            resent = await a.reports_until(lambda r: r.report_seq == a.logon_ack.resent)
            assert b"".join(frame(r) for r in resent) == sent
            await b_fill(server, port)
            (fill,) = await until(a, "trade", 2)
            assert pick(fill, "cum_qty", "leaves_qty", "venue", "liquidity") == (
                10, 30, "LIT", "maker")
            await a.cancel(2)
            assert [r.exec_type for r in await until(a, "done", 2)] == ["cancelled", "done"]

    async def b_fill(server: Server, port: int) -> None:
        b = await logon(port, BOB)
        await b.new_order(9, AAPL, "sell", 10, 14990, venue="LIT")
        await until(b, "trade", 9)
    run(body)


# -- the client's and the terminal's side ---------------------------------------------------------

def test_terminal_commands_for_venues_and_smart_orders() -> None:
    cat = Catalog(InstrumentSet.default(), ["LIT", "ALT", "CROSS"])
    p = lambda line: parse_command(line, cat)  # noqa: E731
    assert p("buy AAPL 100 @ 150.00 venue=LIT") == OrderCmd("buy", AAPL, 100, 15000, venue="LIT")
    assert p("sell AAPL 5 @ 150 ioc venue=alt") == OrderCmd("sell", AAPL, 5, 15000, "ioc",
                                                            venue="ALT")
    assert p("smart buy AAPL 300 @ 150.01") == OrderCmd(
        "buy", AAPL, 300, 15001, "ioc", False, "SMART", "sweep")
    assert p("smart sell AAPL 10 fok") == OrderCmd(
        "sell", AAPL, 10, None, "fok", False, "SMART", "sweep")
    assert p("smart buy AAPL 250 @ 150 post") == OrderCmd(
        "buy", AAPL, 250, 15000, "gtc", False, "SMART", "sweep_post")
    assert p("smart buy AAPL 250 @ 150 post=cross") == OrderCmd(
        "buy", AAPL, 250, 15000, "gtc", False, "SMART", "sweep_post", "CROSS")
    for bad, why in [("buy AAPL 1 @ 150 venue=NOPE", "unknown venue 'NOPE'"),
                     ("buy AAPL 1 @ 150 venue=", "venue= needs"),
                     ("smart AAPL 1", "expected buy or sell"),
                     ("smart buy AAPL 1 @ 150 gtc", "unexpected 'gtc'"),
                     ("smart buy AAPL 1 @ 150 post=NOPE", "unknown venue")]:
        with pytest.raises(UsageError, match=why):
            p(bad)
    msg = order_message(p("smart buy AAPL 250 @ 150 post=CROSS"), 4)
    assert (msg.venue, msg.strategy, msg.post_venue, msg.tif) == ("SMART", "sweep_post",
                                                                  "CROSS", "gtc")
    plain = order_message(p("buy AAPL 1 @ 150"), 4)
    assert frame(plain) == frame(NewOrder(cl_ord_id=4, instrument=AAPL, side="buy", qty=1,
                                          price=15000))
    assert b"venue" not in frame(plain)                 # the old bytes: no new keys


def test_terminal_lines_of_a_routed_order() -> None:
    from engine.gateway.protocol import InstrumentInfo
    infos = [InstrumentInfo(id=1, symbol="AAPL", asset_class="equity", tick_size="0.01",
                            lot_size="1", multiplier="1", currency="USD", min_qty=1,
                            max_qty=10**6, venues=["LIT", "ALT", "CROSS"],
                            fee_unit="0.000001")]
    cat = Catalog(infos, ["LIT", "ALT", "CROSS"])
    base = dict(report_seq=1, seq=1, ts_ns=0, request="new", cl_ord_id=1, instrument=1,
                side="buy")
    new = ExecutionReport(exec_type="new", status="new", price=15001, qty=300, leaves_qty=300,
                          strategy="sweep", **base)
    assert format_report(new, cat) == "#1 NEW     buy 300 AAPL @ 150.01 via SMART (sweep)"
    view = {1: OpenOrder(1, 1, "buy", 15001, 300, 0, 300, "", "sweep")}
    fill = ExecutionReport(exec_type="trade", status="partially_filled", qty=300,
                           leaves_qty=100, cum_qty=200, cum_notional=3_000_000, last_price=15000,
                           last_qty=100, liquidity="taker", venue="LIT", fee=450_000,
                           cum_fee=600_000, **base)
    assert format_report(fill, cat, view) == (
        "#1 PARTIAL buy 300 AAPL @ 150.01 (last 100 @ 150.00 on LIT, cum 200, leaves 100,"
        " avg 150.00, fee 0.450000 USD, fees 0.600000 USD)")
    done = ExecutionReport(exec_type="done", status="filled", price=15001, qty=300, cum_qty=300,
                           cum_notional=4_500_100, cum_fee=675_005, strategy="sweep", **base)
    assert format_report(done, cat, view) == (
        "#1 DONE    buy 300 AAPL @ 150.01 (filled: cum 300, avg ~150.003333,"
        " fees 0.675005 USD)")
    # a direct order on the primary venue reads as it did before venues; another venue's names it
    direct = ExecutionReport(exec_type="new", status="new", price=15000, qty=5, leaves_qty=5,
                             venue="LIT", **base)
    assert format_report(direct, cat) == "#1 NEW     buy 5 AAPL @ 150.00"
    other = msgspec.structs.replace(direct, venue="ALT")
    assert format_report(other, cat) == "#1 NEW     buy 5 AAPL @ 150.00 on ALT"
    assert format_orders({1: OpenOrder(1, 1, "buy", 15000, 250, 100, 150, "LIT", "sweep_post"),
                          2: OpenOrder(2, 1, "sell", 15100, 5, 0, 5, "ALT")}, cat) == [
        "open orders (2):",
        "  #1 buy 250 AAPL @ 150.00 via SMART (sweep_post on LIT) (cum 100, leaves 150)",
        "  #2 sell 5 AAPL @ 151.00 on ALT (cum 0, leaves 5)"]


def test_engine_client_runs_a_smart_order(port: int) -> None:
    import io

    async def body() -> tuple[int, str, int, str]:
        out, err = io.StringIO(), io.StringIO()
        rc = await run_terminal("127.0.0.1", port, 2, "demo-bob-key",
                                ["sell AAPL 100 @ 150.00 venue=CROSS"], wait=0.3, out=out,
                                err=err)
        out2, err2 = io.StringIO(), io.StringIO()
        rc2 = await run_terminal("127.0.0.1", port, 1, "demo-alice-key",
                                 ["smart buy AAPL 120 @ 150.00"], wait=0.3, out=out2, err=err2)
        return rc, out.getvalue(), rc2, out2.getvalue()

    rc, text, rc2, text2 = asyncio.run(body())
    assert rc == 0 and text.splitlines() == ["#1 NEW     sell 100 AAPL @ 150.00 on CROSS"]
    assert rc2 == 0 and text2.splitlines() == [
        "#1 NEW     buy 120 AAPL @ 150.00 via SMART (sweep)",
        "#1 PARTIAL buy 120 AAPL @ 150.00 (last 100 @ 150.00 on CROSS, cum 100, leaves 20,"
        " avg 150.00)",
        "#1 CANCELLED buy 120 AAPL @ 150.00 (cum 100, cancelled 20: IOC_REMAINDER)",
        "#1 DONE    buy 120 AAPL @ 150.00 (cancelled: cum 100, avg 150.00, fees 0)"]


# -- the inbound fast path with venues -------------------------------------------------------------

VENUES = VenueNames(VenueSet.from_config(default_config()))
TABLE = VENUES.wire_table
ACCOUNT = 77


def slow(body: bytes) -> bytes | None:
    from engine.gateway.protocol import decode_client
    try:
        msg = decode_client(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if type(msg) not in (NewOrder, Cancel, Replace):
        return None
    try:
        return order_record(msg, ACCOUNT, VENUES)
    except RouteRequestError:
        return None


def check(body: bytes) -> bytes | None:
    fast = _wire.parse_one(body, ACCOUNT, TABLE)
    if fast is not None:
        assert slow(body) == fast, body
    return fast


_names = ["LIT", "ALT", "CROSS", "SMART", "NOPE", "", "lit", "SMART2"]
_values = st.one_of(st.sampled_from(_names + ["sweep", "sweep_post", "twap", "buy", "sell",
                                              "NewOrder", "limit", "ioc", "gtc"]),
                    st.none(), st.booleans(), st.integers(-3, 20_000))
_keys = st.sampled_from(["type", "cl_ord_id", "instrument", "side", "qty", "price", "tif",
                         "ord_type", "post_only", "venue", "strategy", "post_venue"])


@settings(max_examples=800, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(_keys, _values, max_size=12),
       st.fixed_dictionaries({"type": st.just("NewOrder"), "cl_ord_id": st.integers(1, 9),
                              "instrument": st.integers(0, 3), "side": st.just("buy"),
                              "qty": st.integers(1, 9)}))
def test_random_venue_maps_are_taken_only_as_the_slow_path_reads_them(d, base) -> None:
    check(msgspec.msgpack.encode(d))
    check(msgspec.msgpack.encode({**base, **{k: v for k, v in d.items() if k in
                                             ("venue", "strategy", "post_venue", "tif")}}))


def venue_orders():
    opt = lambda s: st.one_of(st.just(UNSET), st.none(), s)  # noqa: E731
    direct = st.builds(NewOrder, cl_ord_id=st.integers(1, (1 << 32) - 1),
                       instrument=st.integers(0, 9), side=st.sampled_from(["buy", "sell"]),
                       qty=st.integers(-5, 1 << 40), price=st.integers(-5, 1 << 40),
                       tif=st.sampled_from(["gtc", "ioc", "fok"]), post_only=st.booleans(),
                       venue=opt(st.sampled_from(["LIT", "ALT", "CROSS"])))
    smart = st.builds(NewOrder, cl_ord_id=st.integers(1, (1 << 32) - 1),
                      instrument=st.integers(0, 9), side=st.sampled_from(["buy", "sell"]),
                      qty=st.integers(1, 1000), price=st.integers(0, 20_000),
                      ord_type=st.sampled_from(["limit", "market"]),
                      tif=st.sampled_from(["gtc", "ioc", "fok"]), post_only=st.booleans(),
                      venue=st.just("SMART"), strategy=opt(st.sampled_from(["sweep",
                                                                            "sweep_post"])),
                      post_venue=opt(st.sampled_from(["LIT", "ALT", "CROSS"])))
    return st.one_of(direct, smart)


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(venue_orders())
def test_every_venue_order_a_client_encodes_is_taken_and_read_exactly(msg) -> None:
    body = frame(msg)[4:]
    assert check(body) == order_record(msg, ACCOUNT, VENUES)
    rec = np.frombuffer(order_record(msg, ACCOUNT, VENUES), dtype=COMMAND_DTYPE)[0]
    if msg.venue == "SMART":
        assert rec["cmd"] == CommandType.ROUTE
        assert bool(rec["flags"] & Flags.POST_REMAINDER) == (msg.strategy == "sweep_post")
        assert rec["venue"] == (VENUES.ids[msg.post_venue] if msg.post_venue else 0)
    else:
        assert rec["cmd"] == CommandType.NEW
        assert rec["venue"] == (VENUES.ids[msg.venue] if msg.venue else 0)


def test_the_scan_takes_venue_orders_only_with_the_servers_table() -> None:
    msg = NewOrder(cl_ord_id=3, instrument=AAPL, side="sell", qty=5, price=15000, venue="ALT")
    data = frame(msg) * 3
    out = bytearray()
    assert _wire.scan(data, 0, len(data), ACCOUNT, out, 1 << 16, 100, TABLE) == (
        len(data), 3, _wire.DONE)
    assert bytes(out) == order_record(msg, ACCOUNT, VENUES) * 3
    out = bytearray()
    assert _wire.scan(data, 0, len(data), ACCOUNT, out, 1 << 16, 100) == (0, 0, _wire.SLOW)


# -- the compiled report builder against reports.py ------------------------------------------------

def routing_session(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A random session of direct venue orders, SMART sweeps and sweep_posts, cancels and
    replaces (of parents too) by three accounts on AAPL and SPY, through a core with the default
    venues and risk off, in random batches: (commands, events) per batch."""
    cfg = msgspec.structs.replace(default_config(), risk=msgspec.structs.replace(
        default_config().risk, enabled=False))
    eng = Engine.from_config(cfg, durability="none")
    rng = random.Random(seed)
    cmds = np.zeros(n, COMMAND_DTYPE)
    ids: dict[int, list[int]] = {1: [], 2: [], 3: []}
    for i in range(n):
        acct = rng.choice((1, 2, 3))
        c = cmds[i]
        c["account"] = acct
        roll = rng.random()
        if roll < 0.15 and ids[acct]:
            c["cmd"], c["order_id"] = CommandType.CANCEL, rng.choice(ids[acct])
        elif roll < 0.22 and ids[acct]:
            c["cmd"], c["order_id"] = CommandType.REPLACE, rng.choice(ids[acct])
            c["price"], c["qty"] = 15000 + rng.randint(-3, 3), rng.randint(1, 60)
        else:
            cl = len(ids[acct]) % 200 + 1
            oid = (acct << 32) | cl
            ids[acct].append(oid)
            c["order_id"], c["instrument"] = oid, rng.choice((1, 1, 2))
            c["side"], c["ord_type"] = rng.choice((1, 2)), 1
            c["qty"] = rng.randint(1, 60)
            c["price"] = (15000 if c["instrument"] == 1 else 50000) + rng.randint(-4, 4)
            if roll < 0.6:
                c["cmd"], c["tif"], c["venue"] = CommandType.NEW, 1, rng.choice((0, 1, 2, 3))
            elif roll < 0.8:
                c["cmd"], c["tif"] = CommandType.ROUTE, rng.choice((2, 3))
            else:
                c["cmd"], c["tif"], c["flags"] = CommandType.ROUTE, 1, Flags.POST_REMAINDER
                c["venue"] = rng.choice((0, 0, 1, 2, 3))
    out, i = [], 0
    while i < n:
        k = rng.randint(1, 300)
        out.append((cmds[i:i + k].copy(), eng.process(cmds[i:i + k].copy())))
        i += k
    eng.close()
    return out


@pytest.fixture(scope="module")
def routed() -> list[tuple[np.ndarray, np.ndarray]]:
    return routing_session(6000, seed=3)


def test_the_routing_session_has_every_kind_of_parent_event(routed) -> None:
    ev = np.concatenate([e for _, e in routed])
    kinds = set(ev["type"].tolist())
    assert {EventType.PARENT_FILL, EventType.PARENT_DONE, EventType.REPLACED} <= kinds
    done = ev[ev["type"] == EventType.PARENT_DONE]
    assert {3, 4} <= set(done["reason"].tolist())                 # filled and cancelled
    assert (ev["other_id"][ev["type"] == EventType.TRADE] < 0).any()   # a resting child made
    assert ((ev["type"] == EventType.REPLACED) & (ev["parent_id"] != 0)).any()


@pytest.mark.parametrize("mode", ["live", "recovery", "runs"])
def test_routed_reports_are_the_same_bytes_from_both_builders(routed, mode: str) -> None:
    got: tuple[list, list] = ([], [])
    runs = mode == "runs"
    py = ReportBuilder(venues=NAMES, runs=runs)
    fast = FastReportBuilder(venues=NAMES, runs=runs)
    if mode != "live":
        py.recovered = lambda *a: got[0].append(a)
        fast.recovered = lambda *a: got[1].append(a)
    frames = []
    for cmds, events in routed:
        py.on_batch(cmds, events, mode == "live")
        fast.on_batch(cmds, events, mode == "live")
        a, b = py.take(), fast.take()
        assert a == b
        frames += a
    assert got[0] == got[1]
    assert py.last == fast.last and py.fills == fast.fills
    for k, arr in py.export_state().items():
        assert arr.tobytes() == fast.export_state()[k].tobytes()
    if mode == "live":
        msgs = [decode_server(f[4:]) for _, _, f in frames]
        assert {"done", "trade", "cancelled", "replaced", "rejected"} <= {m.exec_type
                                                                         for m in msgs}
        assert all(m.cl_ord_id < 1000 for m in msgs)      # no child id reaches a client
        assert any(m.strategy == "sweep_post" for m in msgs)
        assert any(m.venue == "CROSS" and m.exec_type == "trade" for m in msgs)
        # each account's routed orders: done once, after their last trade
        open_parents: dict[tuple[int, int], int] = {}
        for m, (acct, _, _) in zip(msgs, frames):
            key = (acct, m.cl_ord_id)
            if m.exec_type == "new" and m.strategy:
                open_parents[key] = m.qty
            elif m.exec_type == "replaced" and key in open_parents:
                open_parents[key] = m.qty
            elif m.exec_type == "done":
                assert key in open_parents and m.qty == open_parents.pop(key)
        # a fresh builder loading the other's snapshot half-way continues identically
        half = len(routed) // 2
        a, b = ReportBuilder(venues=NAMES), FastReportBuilder(venues=NAMES)
        for cmds, events in routed[:half]:
            a.on_batch(cmds, events, False)
        b.load_state(a.export_state())
        a2 = ReportBuilder(venues=NAMES)
        a2.load_state(a.export_state())
        for cmds, events in routed[half:]:
            a2.on_batch(cmds, events, True)
            b.on_batch(cmds, events, True)
            assert a2.take() == b.take()


_I64 = st.integers(-(1 << 63), (1 << 63) - 1)
_small = st.integers(-3, 6)


@st.composite
def routing_rows(draw: Any) -> dict[str, int]:
    typ = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 8, 9, 9, 6, 0, 77]))
    qty = st.one_of(st.integers(-2, 60), st.integers(-(1 << 56), 1 << 56))
    return dict(seq=draw(_I64), ts_ns=draw(_I64),
                order_id=draw(st.one_of(_small, st.sampled_from([(1 << 32) | 1, (2 << 32) | 1,
                                                                 -(1 << 63), (1 << 63) - 1]))),
                other_id=draw(_small), price=draw(st.one_of(st.integers(-5, 20_000), _I64))
                if typ not in (3, 8) else draw(st.integers(-(1 << 40), 1 << 40)),
                qty=draw(qty), leaves=draw(st.one_of(_small, _I64)),
                other_leaves=draw(_small), fee=draw(st.one_of(_small, _I64)),
                other_fee=draw(st.one_of(_small, _I64)),
                parent_id=draw(st.sampled_from([0, 0, 1, (1 << 32) | 1])),
                instrument=draw(st.integers(0, 3)), account=draw(st.integers(0, 3)),
                other_account=draw(st.integers(0, 3)), reason=draw(st.integers(0, 9)),
                venue=draw(st.sampled_from([0, 0, 1, 2, 3, 9, 65535])), type=typ,
                side=draw(st.integers(0, 3)), cmd=draw(st.sampled_from([1, 2, 3, 4, 9, 11, 0])))


def _outcome(fn: Any) -> str:
    try:
        fn()
        return "ok"
    except (OverflowError, ZeroDivisionError) as e:
        return type(e).__name__


@settings(max_examples=int(os.environ.get("ENGINE_FUZZ_EXAMPLES", "400")), deadline=None,
          derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(routing_rows(), min_size=1, max_size=30), cut=st.integers(1, 30))
def test_random_routing_event_records_make_the_same_bytes(rows, cut) -> None:
    arr = np.zeros(len(rows), EVENT_DTYPE)
    for i, r in enumerate(rows):
        for k, v in r.items():
            arr[i][k] = v
    py, fast = ReportBuilder(venues=NAMES), FastReportBuilder(venues=NAMES)
    for i in range(0, len(arr), cut):
        a = _outcome(lambda: py.on_batch(None, arr[i:i + cut], True))
        b = _outcome(lambda: fast.on_batch(None, arr[i:i + cut], True))
        assert a == b
        assert py.take() == fast.take()
        assert py.last == fast.last and py.fills == fast.fills
        if a != "ok":
            return


def test_a_parent_fill_past_the_128_bit_notional_fails_alike() -> None:
    big = (1 << 63) - 1
    arr = np.zeros(3, EVENT_DTYPE)
    for i in range(3):
        arr[i]["type"], arr[i]["order_id"], arr[i]["account"] = EventType.PARENT_FILL, 5, 1
        arr[i]["price"], arr[i]["qty"], arr[i]["leaves"] = big, big, 1
    for b in (ReportBuilder(), FastReportBuilder()):
        with pytest.raises(OverflowError, match="128-bit"):
            b.on_batch(None, arr, True)
        assert b.fills[5][0] == 2 * big and b.last == {1: 2}


def test_venue_tables_are_checked_alike() -> None:
    for bad in ({0: "X"}, {70000: "X"}, {1: ""}, {1: "x" * 65}, {"1": "X"}):
        for cls in (ReportBuilder, FastReportBuilder):
            with pytest.raises(ValueError):
                cls(venues=bad)
    assert FastReportBuilder(venues={3: "Ü" * 64}).venues == {3: "Ü" * 64}
