"""Venues, fees and smart order routing (docs/ROUTING.md), with exact events, against the
reference model and the compiled core alike: sweeps across venues by fee-adjusted price, the
venues' grids, FOK, sweep_post's resting child and its parent's lifecycle, every reject of a
ROUTE and of a venue lookup, the consolidated views, fee rounding, and fees charged with risk
on. (tests/core/test_differential_routing.py compares the two on random streams.)
"""
from __future__ import annotations

import hashlib
from collections import namedtuple
from typing import Any

import numpy as np
import pytest

from engine.reference import ReferenceCore
from engine.schema import (
    EVENT_DTYPE,
    INT64_MAX,
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
from tests.conftest import commands, load_core_class, raw_cmd, records
from tests.risk_helpers import FX, USD, acct, cash, exposure, make_tables, pnl, tables_bytes

BUY, SELL = Side.BUY, Side.SELL
ACCEPTED, REJECTED, TRADE = EventType.ACCEPTED, EventType.REJECTED, EventType.TRADE
CANCELLED, REPLACED = EventType.CANCELLED, EventType.REPLACED
PARENT_FILL, PARENT_DONE = EventType.PARENT_FILL, EventType.PARENT_DONE
POST = Strategy.SWEEP_POST
CHILD, PARENT = int(Flags.CHILD), int(Flags.PARENT)

# (venue, maker_fee, taker_fee, priority): routing order is V2, V3 (priority 1, ids), then V1;
# V1 pays a maker rebate, V4 lists nothing.
V1, V2, V3, V4, V_UNKNOWN = 1, 2, 3, 4, 6
VENUES = [(V1, -200, 3000, 5), (V2, 0, 1000, 1), (V3, 500, 0, 1), (V4, 0, 0, 0)]
EQ = 7      # on V1, V2, V3: tick 1, lot 1, k 10
GRID = 8    # V1 (primary, bounds 2..50), V2 with lot 5, V3 with tick 2; k 10
DEF = 9     # the default venue only: not routable
UNKNOWN = 99


IMPLEMENTATIONS: list[type] = [ReferenceCore]


@pytest.fixture(autouse=True, params=["reference", "core"])
def implementation(request: pytest.FixtureRequest):
    """Every test runs once against each implementation; ``new_core()`` builds the one in use."""
    IMPLEMENTATIONS[0] = ReferenceCore if request.param == "reference" else load_core_class()
    yield request.param
    IMPLEMENTATIONS[0] = ReferenceCore


def new_core(**kwargs: Any) -> Any:
    return IMPLEMENTATIONS[0](**kwargs)


class Engine:
    """An engine that checks its integrity after every call."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.core, name)
        if not callable(attr) or name in ("check_integrity", "drain_events"):
            return attr

        def checked(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self.core.check_integrity()
            return result
        return checked


def make(k_eq: int = 10) -> Engine:
    core = new_core()
    for venue in VENUES:
        core.add_venue(*venue)
    for venue in (V1, V2, V3):
        core.add_instrument(EQ, venue=venue, k=k_eq)
    core.add_instrument(GRID, 2, 50, venue=V1, k=10)
    core.add_instrument(GRID, venue=V2, lot=5, k=10)
    core.add_instrument(GRID, venue=V3, tick=2, k=10)
    core.add_instrument(DEF)
    return Engine(core)


# -- events -----------------------------------------------------------------------------------

F = namedtuple("F", "type order_id other_id price qty leaves other_leaves fee other_fee "
                    "parent_id venue reason")


def _reason(type_: int, reason: int) -> int:
    return {REJECTED: Reason, CANCELLED: CancelCause, PARENT_DONE: OrderStatus,
            EventType.INSTRUMENT_STATE: TradingState}.get(type_, int)(reason)


def drained(engine: Engine) -> list[F]:
    events = engine.drain_events()
    assert events.dtype == EVENT_DTYPE
    records(events, routing=True)  # the padding is zero
    return [F(EventType(e["type"]), *(int(e[n]) for n in F._fields[1:-1]),
              _reason(int(e["type"]), int(e["reason"]))) for e in events]


def acc(oid: int, price: int, qty: int, venue: int = 0, parent: int = 0) -> F:
    return F(ACCEPTED, oid, 0, price, qty, qty, 0, 0, 0, parent, venue, 0)


def trade(taker: int, maker: int, price: int, qty: int, leaves: int, maker_leaves: int,
          fee: int, maker_fee: int, venue: int, parent: int = 0) -> F:
    return F(TRADE, taker, maker, price, qty, leaves, maker_leaves, fee, maker_fee, parent,
             venue, 0)


def pfill(parent: int, child: int, price: int, qty: int, leaves: int, filled: int, fee: int,
          fees: int, venue: int) -> F:
    return F(PARENT_FILL, parent, child, price, qty, leaves, filled, fee, fees, 0, venue, 0)


def pdone(parent: int, price: int, qty: int, filled: int, fees: int, status: OrderStatus,
          venue: int = 0) -> F:
    return F(PARENT_DONE, parent, 0, price, qty, 0, filled, 0, fees, 0, venue, status)


def canc(oid: int, price: int, qty: int, leaves: int, cause: CancelCause, venue: int = 0,
         parent: int = 0) -> F:
    return F(CANCELLED, oid, 0, price, qty, leaves, 0, 0, 0, parent, venue, cause)


def rej(oid: int, price: int, qty: int, reason: Reason, venue: int = 0) -> F:
    return F(REJECTED, oid, 0, price, qty, 0, 0, 0, 0, 0, venue, reason)


def rested(engine: Engine, *orders: tuple) -> None:
    """Direct GTC orders ``(id, instrument, side, price, qty, venue)`` of account 1."""
    for oid, instrument, side, price, qty, venue in orders:
        engine.submit(oid, instrument, side, price, qty, account=1, venue=venue)
    engine.drain_events()


# -- registration -----------------------------------------------------------------------------

def test_venues_and_books_are_listed_as_registered():
    engine = make()
    assert engine.venues() == [(1, -200, 3000, 5), (2, 0, 1000, 1), (3, 500, 0, 1),
                               (4, 0, 0, 0)]
    assert engine.books() == [(V1, EQ, 1, 1), (V2, EQ, 1, 1), (V3, EQ, 1, 1), (V1, GRID, 1, 1),
                              (V2, GRID, 1, 5), (V3, GRID, 2, 1), (0, DEF, 1, 1)]
    assert engine.instruments() == [EQ, GRID, DEF]
    assert engine.instrument_state(GRID) == dict(trading_state=1, min_qty=2, max_qty=50)
    assert engine.instrument_state(GRID, venue=V2) == dict(trading_state=1, min_qty=1,
                                                           max_qty=INT64_MAX)
    assert engine.instrument_state(GRID, venue=V4) is None
    state = engine.export_state()
    assert state["instruments"]["venue"].tolist() == [1, 2, 3, 1, 2, 3, 0]
    assert state["parents"].dtype == PARENT_STATE_DTYPE and len(state["parents"]) == 0
    assert state["children"] == 0


@pytest.mark.parametrize("args", [
    dict(venue=0), dict(venue=65536), dict(venue=V1), dict(venue=5, maker_fee=1_000_001),
    dict(venue=5, taker_fee=-1_000_001), dict(venue=5, priority=2 ** 31),
    dict(venue=5, priority=-2 ** 31 - 1)])
def test_add_venue_refuses_bad_values(args):
    engine = make()
    with pytest.raises(ValueError):
        engine.add_venue(**args)
    engine.add_venue(5, maker_fee=-1_000_000, taker_fee=1_000_000, priority=-2 ** 31)


@pytest.mark.parametrize("args", [
    dict(instrument_id=EQ, venue=V1),            # duplicate book
    dict(instrument_id=EQ),                      # a default-venue book beside venue books
    dict(instrument_id=DEF, venue=V1),           # venue books beside a default-venue book
    dict(instrument_id=DEF),                     # duplicate default-venue book
    dict(instrument_id=20, venue=V_UNKNOWN),     # not a registered venue
    dict(instrument_id=EQ, venue=V4, k=11),      # k differs from the first registration
    dict(instrument_id=20, tick=0), dict(instrument_id=20, lot=0), dict(instrument_id=20, k=0)])
def test_add_instrument_refuses_bad_books(args):
    engine = make()
    with pytest.raises(ValueError):
        engine.add_instrument(**args)
    engine.add_instrument(EQ, venue=V4, k=10)
    assert engine.books()[-1] == (V4, EQ, 1, 1)


# -- sweeps -----------------------------------------------------------------------------------

def test_a_buy_sweeps_three_venues_by_fee_adjusted_price():
    engine = make()
    rested(engine, (1, EQ, SELL, 100, 5, V1), (2, EQ, SELL, 101, 5, V1),
           (3, EQ, SELL, 100, 4, V2), (4, EQ, SELL, 101, 6, V3))
    # fee-adjusted asks: V2@100 100.1, V1@100 100.3, V3@101 101.0, V1@101 101.303
    assert engine.route(10, EQ, BUY, 101, 20, account=2) == 13
    assert drained(engine) == [
        acc(10, 101, 20),
        acc(-1, 100, 4, V2, parent=10), acc(-2, 101, 10, V1, parent=10),
        acc(-3, 101, 6, V3, parent=10),
        # n = 4000: taker 1000 ppm = 4, maker 0
        trade(-1, 3, 100, 4, 0, 0, 4, 0, V2, parent=10),
        pfill(10, -1, 100, 4, 16, 4, 4, 4, V2),
        # n = 5000: taker 3000 ppm = 15, maker -200 ppm = -1
        trade(-2, 1, 100, 5, 5, 0, 15, -1, V1, parent=10),
        pfill(10, -2, 100, 5, 11, 9, 15, 19, V1),
        # n = 6060: taker 0, maker 500 ppm = 3.03 -> 4 (a fee rounds up)
        trade(-3, 4, 101, 6, 0, 0, 0, 4, V3, parent=10),
        pfill(10, -3, 101, 6, 5, 15, 0, 19, V3),
        # n = 5050: taker 15.15 -> 16, maker -1.01 -> -1 (a rebate rounds toward zero)
        trade(-2, 2, 101, 5, 0, 0, 16, -1, V1, parent=10),
        pfill(10, -2, 101, 5, 0, 20, 16, 35, V1),
        pdone(10, 101, 20, 20, 35, OrderStatus.FILLED)]
    assert engine.consolidated_bbo(EQ) == {"bid": None, "ask": None}
    assert engine.order(10) == dict(
        order_id=10, instrument=EQ, account=2, side=BUY, ord_type=OrdType.LIMIT,
        tif=TimeInForce.IOC, flags=PARENT, price=101, qty=20, filled=20, leaves=0,
        status=OrderStatus.FILLED, venue=0)
    assert engine.order(-2) == dict(
        order_id=-2, instrument=EQ, account=2, side=BUY, ord_type=OrdType.LIMIT,
        tif=TimeInForce.IOC, flags=CHILD, price=101, qty=10, filled=10, leaves=0,
        status=OrderStatus.FILLED, venue=V1)
    assert engine.export_state()["children"] == 3


def test_a_sell_sweep_cancels_its_remainder_and_every_event_carries_the_parents_fields():
    engine = make()
    rested(engine, (1, EQ, BUY, 100, 5, V1), (2, EQ, BUY, 99, 2, V1),
           (3, EQ, BUY, 100, 4, V2), (4, EQ, BUY, 99, 6, V3))
    engine.route(10, EQ, SELL, 99, 20, account=2, seq=7, ts_ns=70)
    events = engine.drain_events()
    assert [F(EventType(e["type"]), *(int(e[n]) for n in F._fields[1:-1]),
              _reason(int(e["type"]), int(e["reason"]))) for e in events] == [
        acc(10, 99, 20),
        acc(-1, 100, 4, V2, parent=10), acc(-2, 99, 7, V1, parent=10),
        acc(-3, 99, 6, V3, parent=10),
        trade(-1, 3, 100, 4, 0, 0, 4, 0, V2, parent=10),
        pfill(10, -1, 100, 4, 16, 4, 4, 4, V2),
        trade(-2, 1, 100, 5, 2, 0, 15, -1, V1, parent=10),
        pfill(10, -2, 100, 5, 11, 9, 15, 19, V1),
        trade(-3, 4, 99, 6, 0, 0, 0, 3, V3, parent=10),     # 5940 x 500 ppm = 2.97 -> 3
        pfill(10, -3, 99, 6, 5, 15, 0, 19, V3),
        trade(-2, 2, 99, 2, 0, 0, 6, 0, V1, parent=10),     # 1980: 5.94 -> 6; -0.396 -> 0
        pfill(10, -2, 99, 2, 3, 17, 6, 25, V1),
        canc(10, 99, 3, 0, CancelCause.IOC_REMAINDER),
        pdone(10, 99, 20, 17, 25, OrderStatus.CANCELLED)]
    for e in records(events, routing=True):
        assert (e["seq"], e["ts_ns"], e["instrument"], e["account"], e["side"], e["cmd"]) == \
            (7, 70, EQ, 2, SELL, CommandType.ROUTE)
        if e["type"] in (TRADE, PARENT_FILL):
            assert e["other_account"] == 1
    assert engine.depth(EQ) == ([], [])
    assert engine.order(10)["status"] == OrderStatus.CANCELLED


def test_the_fee_adjusted_price_beats_the_raw_price():
    engine = make()
    rested(engine, (1, EQ, SELL, 1000, 5, V1), (2, EQ, SELL, 1002, 5, V3))
    # V1: 1000 x 1.003 = 1003 > V3: 1002 x 1.000
    engine.route(10, EQ, BUY, 1002, 5, account=2)
    assert drained(engine) == [
        acc(10, 1002, 5), acc(-1, 1002, 5, V3, parent=10),
        trade(-1, 2, 1002, 5, 0, 0, 0, 26, V3, parent=10),      # 50100 x 500 ppm = 25.05
        pfill(10, -1, 1002, 5, 0, 5, 0, 0, V3),
        pdone(10, 1002, 5, 5, 0, OrderStatus.FILLED)]
    assert engine.best_ask(EQ, venue=V1) == (1000, 5)


def test_equal_fee_adjusted_prices_go_by_priority_then_venue_id():
    engine = make()
    # V1 1000 x 1.003 == V3 1003 x 1.000; V2 1002 x 1.001 = 1003.002 is worse
    rested(engine, (1, EQ, SELL, 1000, 1, V1), (2, EQ, SELL, 1003, 1, V3),
           (3, EQ, SELL, 1002, 1, V2))
    engine.route(10, EQ, BUY, 1003, 3, account=2)
    children = [(e.order_id, e.venue) for e in drained(engine) if e.type == ACCEPTED]
    # V3 (priority 1) before V1 (priority 5) although V1 has the lower id; V2's 1003.002 last
    assert children == [(10, 0), (-1, V3), (-2, V1), (-3, V2)]
    engine = make()
    # V2 1000 x 1.001 == V3 1001 x 1.000, both priority 1: the lower venue id first
    rested(engine, (1, EQ, SELL, 1001, 1, V3), (2, EQ, SELL, 1000, 1, V2))
    engine.route(10, EQ, BUY, 1001, 2, account=2)
    assert [(e.order_id, e.venue) for e in drained(engine) if e.type == ACCEPTED] == \
        [(10, 0), (-1, V2), (-2, V3)]


def test_a_market_sweep_takes_every_level_and_cancels_the_rest():
    engine = make()
    rested(engine, (1, EQ, SELL, 100, 1, V2), (2, EQ, SELL, 150, 1, V2))
    engine.route(10, EQ, BUY, 0, 3, account=2, ord_type=OrdType.MARKET)
    assert drained(engine) == [
        acc(10, 0, 3), acc(-1, 150, 2, V2, parent=10),   # the worst price planned there
        trade(-1, 1, 100, 1, 1, 0, 1, 0, V2, parent=10),
        pfill(10, -1, 100, 1, 2, 1, 1, 1, V2),
        trade(-1, 2, 150, 1, 0, 0, 2, 0, V2, parent=10),
        pfill(10, -1, 150, 1, 1, 2, 2, 3, V2),
        canc(10, 0, 1, 0, CancelCause.MARKET_REMAINDER),
        pdone(10, 0, 3, 2, 3, OrderStatus.CANCELLED)]


# -- grids and FOK ----------------------------------------------------------------------------

def test_a_venue_is_skipped_when_less_than_its_lot_is_left():
    engine = make()
    rested(engine, (1, GRID, SELL, 99, 10, V2), (2, GRID, SELL, 100, 20, V1))
    engine.route(10, GRID, BUY, 100, 7, account=2)
    # V2@99: 7 - 7 % 5 = 5; 2 left < lot 5, so V2's rest is out of reach; V1 takes 2
    assert drained(engine) == [
        acc(10, 100, 7), acc(-1, 99, 5, V2, parent=10), acc(-2, 100, 2, V1, parent=10),
        trade(-1, 1, 99, 5, 0, 5, 5, 0, V2, parent=10),     # 4950 x 1000 ppm = 4.95 -> 5
        pfill(10, -1, 99, 5, 2, 5, 5, 5, V2),
        trade(-2, 2, 100, 2, 0, 18, 6, 0, V1, parent=10),   # 2000: 6; -0.4 -> 0
        pfill(10, -2, 100, 2, 0, 7, 6, 11, V1),
        pdone(10, 100, 7, 7, 11, OrderStatus.FILLED)]


def test_direct_orders_must_be_on_their_books_grid():
    engine = make()
    before = engine.state_digest()
    engine.submit(1, GRID, BUY, 100, 3, venue=V2)              # lot 5
    engine.submit(2, GRID, BUY, 101, 1, venue=V3)              # tick 2
    engine.submit(3, GRID, BUY, 0, 3, venue=V2)                # the price check comes first
    assert drained(engine) == [rej(1, 100, 3, Reason.BOOK_OFF_VENUE_GRID, V2),
                               rej(2, 101, 1, Reason.BOOK_OFF_VENUE_GRID, V3),
                               rej(3, 0, 3, Reason.BOOK_INVALID_PRICE, V2)]
    assert engine.state_digest() == before
    assert engine.order(1)["status"] == OrderStatus.REJECTED and engine.order(1)["venue"] == V2
    engine.submit(4, GRID, BUY, 101, 1, venue=V3, ord_type=OrdType.MARKET)  # no price grid
    engine.submit(5, GRID, BUY, 100, 10, venue=V2, account=1)
    engine.submit(5, GRID, BUY, 100, 3, venue=V2)              # off grid before duplicate
    engine.submit(6, GRID, SELL, 100, 5, venue=V2)
    engine.replace(5, 100, 7, account=1)                       # off the lot grid
    engine.replace(5, 100, 5, account=1)                       # not above filled first
    engine.replace(5, 101, 10, account=1)
    assert [e.reason for e in drained(engine)] == [
        0, CancelCause.MARKET_REMAINDER, 0, Reason.BOOK_OFF_VENUE_GRID, 0, 0,
        Reason.BOOK_OFF_VENUE_GRID, Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED, 0]


def test_fok_sweeps_all_of_it_or_nothing():
    engine = make()
    rested(engine, (1, EQ, SELL, 100, 5, V1), (2, EQ, SELL, 101, 5, V2),
           (3, GRID, SELL, 99, 10, V2))
    before = engine.state_digest()
    engine.route(10, EQ, BUY, 101, 11, account=2, tif=TimeInForce.FOK)
    engine.route(11, GRID, BUY, 99, 7, account=2, tif=TimeInForce.FOK)   # lot 5 covers 5
    assert drained(engine) == [
        acc(10, 101, 11), canc(10, 101, 11, 0, CancelCause.FOK_UNFILLABLE),
        pdone(10, 101, 11, 0, 0, OrderStatus.CANCELLED),
        acc(11, 99, 7), canc(11, 99, 7, 0, CancelCause.FOK_UNFILLABLE),
        pdone(11, 99, 7, 0, 0, OrderStatus.CANCELLED)]
    assert engine.state_digest() == before    # no child created, nothing touched
    engine.route(12, EQ, BUY, 101, 10, account=2, tif=TimeInForce.FOK)
    assert drained(engine)[-1] == pdone(12, 101, 10, 10, 15 + 6, OrderStatus.FILLED)


# -- sweep_post ---------------------------------------------------------------------------------

def post_parent(engine: Engine) -> None:
    """Parent 10 (account 2) buys 10 at 100: 4 on V2, the 6 left rest on V1 as child -2."""
    rested(engine, (3, EQ, SELL, 100, 4, V2))
    engine.route(10, EQ, BUY, 100, 10, account=2, strategy=POST)


def test_sweep_post_rests_its_remainder_on_the_lowest_maker_fee():
    engine = make()
    post_parent(engine)
    assert drained(engine) == [
        acc(10, 100, 10, V1),                                 # V1: maker fee -200, the lowest
        acc(-1, 100, 4, V2, parent=10),
        trade(-1, 3, 100, 4, 0, 0, 4, 0, V2, parent=10),
        pfill(10, -1, 100, 4, 6, 4, 4, 4, V2),
        acc(-2, 100, 6, V1, parent=10)]
    assert engine.level_orders(EQ, BUY, 100, venue=V1) == [(-2, 6)]
    assert engine.order(-2) == dict(
        order_id=-2, instrument=EQ, account=2, side=BUY, ord_type=OrdType.LIMIT,
        tif=TimeInForce.GTC, flags=CHILD | Flags.POST_ONLY, price=100, qty=6, filled=0,
        leaves=6, status=OrderStatus.NEW, venue=V1, parent_id=10)
    assert engine.order(10) == dict(
        order_id=10, instrument=EQ, account=2, side=BUY, ord_type=OrdType.LIMIT,
        tif=TimeInForce.GTC, flags=PARENT | Flags.POST_REMAINDER, price=100, qty=10, filled=4,
        leaves=6, status=OrderStatus.PARTIALLY_FILLED, cancelled=0, value=400, fees=4,
        child_id=-2, venue=V1)
    parents = engine.export_state()["parents"]
    assert parents.tolist() == [(10, 100, 10, 4, 0, 400, 4, -2, EQ, 2,
                                 PARENT | Flags.POST_REMAINDER, V1, BUY, 1, 1, 2)]


def test_a_named_post_venue_is_used_and_passive_fills_roll_up_until_the_parent_fills():
    engine = make()
    engine.route(10, EQ, BUY, 100, 5, account=2, strategy=POST, venue=V3)
    engine.submit(20, EQ, SELL, 100, 2, account=3, venue=V3)
    engine.submit(21, EQ, SELL, 99, 4, account=3, venue=V3)
    assert drained(engine) == [
        acc(10, 100, 5, V3), acc(-1, 100, 5, V3, parent=10),
        acc(20, 100, 2, V3),
        trade(20, -1, 100, 2, 0, 3, 0, 1, V3),               # the maker child: 500 ppm of 2000
        pfill(10, -1, 100, 2, 3, 2, 1, 1, V3),
        acc(21, 99, 4, V3),
        trade(21, -1, 100, 3, 1, 0, 0, 2, V3),               # 3000 x 500 ppm = 1.5 -> 2
        pfill(10, -1, 100, 3, 0, 5, 2, 3, V3),
        pdone(10, 100, 5, 5, 3, OrderStatus.FILLED, V3)]
    assert engine.best_ask(EQ, venue=V3) == (99, 1)
    assert engine.order(10)["status"] == OrderStatus.FILLED
    assert engine.export_state()["parents"].size == 0


def test_a_live_parent_is_reduced_by_replace_and_ended_by_cancel():
    engine = make()
    post_parent(engine)
    engine.submit(20, EQ, SELL, 100, 2, account=3, venue=V1)  # a passive fill of the child
    engine.drain_events()
    before = engine.state_digest()
    for args, reason in [
            ((10, 101, 8), Reason.BOOK_PARENT_REPLACE),         # another price
            ((10, 100, 11), Reason.BOOK_PARENT_REPLACE),        # a larger quantity
            ((10, 100, 0), Reason.BOOK_INVALID_QUANTITY),
            ((10, 0, 8), Reason.BOOK_INVALID_PRICE),
            ((10, 100, 6), Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED),   # 6 filled
            ((-2, 100, 8), Reason.BOOK_CHILD_ORDER)]:
        engine.replace(*args, account=2)
        assert drained(engine) == [rej(args[0], args[1], args[2], reason)]
    engine.replace(10, 100, 8, account=3)
    engine.cancel(-2, account=2)
    engine.cancel(-2, account=3)
    assert drained(engine) == [rej(10, 100, 8, Reason.BOOK_UNKNOWN_ORDER),
                               rej(-2, 0, 0, Reason.BOOK_CHILD_ORDER),
                               rej(-2, 0, 0, Reason.BOOK_UNKNOWN_ORDER)]
    engine.halt(EQ, venue=V1)
    engine.replace(10, 100, 8, account=2)
    engine.resume(EQ, venue=V1)
    assert drained(engine)[1] == rej(10, 100, 8, Reason.BOOK_INSTRUMENT_HALTED)
    assert engine.state_digest() == before

    engine.replace(10, 100, 8, account=2)
    assert drained(engine) == [F(REPLACED, -2, 0, 100, 4, 2, 0, 0, 0, 10, V1, 0),
                               F(REPLACED, 10, 0, 100, 8, 2, 0, 0, 0, 0, V1, 0)]
    assert engine.level_orders(EQ, BUY, 100, venue=V1) == [(-2, 2)]
    engine.cancel(10, account=2)
    assert drained(engine) == [
        canc(-2, 100, 2, 0, CancelCause.USER, V1, parent=10),
        canc(10, 100, 2, 0, CancelCause.USER, V1),
        pdone(10, 100, 8, 6, 4 + 0, OrderStatus.CANCELLED, V1)]
    assert engine.depth(EQ, venue=V1) == ([], [])
    assert engine.order(10)["status"] == OrderStatus.CANCELLED
    assert engine.order(-2)["status"] == OrderStatus.CANCELLED


def test_an_odd_lot_is_cancelled_and_the_rest_rests():
    engine = make()
    engine.route(10, GRID, BUY, 98, 7, account=2, strategy=POST, venue=V2)   # lot 5
    assert drained(engine) == [acc(10, 98, 7, V2),
                               canc(10, 98, 2, 5, CancelCause.ODD_LOT, V2),
                               acc(-1, 98, 5, V2, parent=10)]
    assert engine.order(10)["cancelled"] == 2
    engine.submit(20, GRID, SELL, 98, 5, account=3, venue=V2)
    assert drained(engine)[-1] == pdone(10, 98, 7, 5, 0, OrderStatus.CANCELLED, V2)
    engine.route(11, GRID, BUY, 98, 3, account=2, strategy=POST, venue=V2)
    assert drained(engine) == [acc(11, 98, 3, V2), canc(11, 98, 3, 0, CancelCause.ODD_LOT, V2),
                               pdone(11, 98, 3, 0, 0, OrderStatus.CANCELLED, V2)]


def test_a_post_level_that_cannot_hold_the_rest_cancels_it():
    engine = make()
    engine.submit(1, EQ, BUY, 100, INT64_MAX - 3, account=1, venue=V1)
    engine.route(10, EQ, BUY, 100, 5, account=2, strategy=POST, venue=V1)
    assert drained(engine)[1:] == [acc(10, 100, 5, V1),
                                   canc(10, 100, 5, 0, CancelCause.LEVEL_QUANTITY_LIMIT, V1),
                                   pdone(10, 100, 5, 0, 0, OrderStatus.CANCELLED, V1)]
    assert engine.export_state()["children"] == 0


def test_mass_cancel_by_venue_ends_a_parent_through_its_child():
    engine = make()
    post_parent(engine)
    engine.submit(30, EQ, BUY, 99, 1, account=2, venue=V2)
    engine.drain_events()
    engine.mass_cancel(account=2, instrument=EQ, venue=V2)
    assert drained(engine) == [canc(30, 99, 1, 0, CancelCause.MASS_CANCEL, V2)]
    engine.mass_cancel(account=2, venue=V1)                  # every book of V1
    assert drained(engine) == [
        canc(-2, 100, 6, 0, CancelCause.MASS_CANCEL, V1, parent=10),
        canc(10, 100, 6, 0, CancelCause.MASS_CANCEL, V1),
        pdone(10, 100, 10, 4, 4, OrderStatus.CANCELLED, V1)]
    assert engine.open_orders == 0


# -- rejects ----------------------------------------------------------------------------------

def route_row(**changes: int) -> tuple:
    fields = dict(cmd=CommandType.ROUTE, order_id=10, instrument=EQ, account=2, side=BUY,
                  ord_type=OrdType.LIMIT, tif=TimeInForce.IOC, price=100, qty=5)
    fields.update(changes)
    return raw_cmd(**fields)


SWEEP_POST = dict(tif=TimeInForce.GTC, flags=int(Flags.POST_REMAINDER))
ROUTE_REJECTS = [  # (check, changes, halt these venues of GRID first, reason)
    ("1", dict(order_id=0), (), Reason.BOOK_INVALID_ORDER_ID),
    ("2 before 3", dict(venue=V_UNKNOWN, instrument=UNKNOWN, **SWEEP_POST), (),
     Reason.BOOK_UNKNOWN_VENUE),
    ("3", dict(instrument=UNKNOWN), (), Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("4 before 5", dict(instrument=DEF, venue=V4, **SWEEP_POST), (),
     Reason.BOOK_NO_ROUTABLE_VENUE),
    ("5", dict(venue=V4, **SWEEP_POST), (), Reason.BOOK_VENUE_NOT_LISTED),
    ("6", dict(side=0), (), Reason.BOOK_INVALID_SIDE),
    ("7", dict(ord_type=3), (), Reason.BOOK_INVALID_ORDER_TYPE),
    ("8", dict(tif=4), (), Reason.BOOK_INVALID_TIME_IN_FORCE),
    ("9 post only", dict(flags=int(Flags.POST_ONLY)), (), Reason.BOOK_INVALID_INSTRUCTIONS),
    ("9 parent", dict(flags=PARENT), (), Reason.BOOK_INVALID_INSTRUCTIONS),
    ("10 sweep gtc", dict(tif=TimeInForce.GTC), (), Reason.BOOK_INVALID_STRATEGY),
    ("10 sweep venue", dict(venue=V2), (), Reason.BOOK_INVALID_STRATEGY),
    ("10 post ioc", dict(flags=int(Flags.POST_REMAINDER)), (), Reason.BOOK_INVALID_STRATEGY),
    ("10 post market", dict(ord_type=OrdType.MARKET, **SWEEP_POST), (),
     Reason.BOOK_INVALID_STRATEGY),
    ("11", dict(qty=0, price=0), (), Reason.BOOK_INVALID_QUANTITY),
    ("12 primary min", dict(instrument=GRID, qty=1), (), Reason.BOOK_QUANTITY_BELOW_MIN),
    ("13 primary max", dict(instrument=GRID, qty=51), (), Reason.BOOK_QUANTITY_ABOVE_MAX),
    ("14", dict(price=0), (), Reason.BOOK_INVALID_PRICE),
    ("15 all halted", dict(instrument=GRID, price=101), (V1, V2, V3),
     Reason.BOOK_INSTRUMENT_HALTED),
    ("15 named halted", dict(instrument=GRID, venue=V2, **SWEEP_POST), (V2,),
     Reason.BOOK_INSTRUMENT_HALTED),
    ("16 named grid", dict(instrument=GRID, venue=V3, price=101, **SWEEP_POST), (),
     Reason.BOOK_OFF_VENUE_GRID),
    ("16 no open book on grid", dict(instrument=GRID, price=101, **SWEEP_POST), (V1, V2),
     Reason.BOOK_OFF_VENUE_GRID),
    ("17 live order", dict(order_id=1), (), Reason.BOOK_DUPLICATE_ORDER_ID),
    ("17 live parent", dict(order_id=5), (), Reason.BOOK_DUPLICATE_ORDER_ID),
]


@pytest.mark.parametrize("changes, halted, reason", [r[1:] for r in ROUTE_REJECTS],
                         ids=[r[0] for r in ROUTE_REJECTS])
def test_a_route_failing_a_check_is_rejected_verbatim_and_changes_nothing(changes, halted,
                                                                          reason):
    engine = make()
    engine.submit(1, EQ, SELL, 105, 1, account=1, venue=V2)
    engine.route(5, EQ, BUY, 90, 3, account=2, strategy=POST)   # a live parent
    for venue in halted:
        engine.halt(GRID, venue=venue)
    engine.drain_events()
    before = engine.state_digest()
    row = route_row(**changes)
    out = engine.process(commands([row]))
    assert len(out) == 1
    assert records(out, routing=True)[0] == dict(
        seq=0, ts_ns=0, order_id=row[2], other_id=0, price=row[3], qty=row[4], leaves=0,
        other_leaves=0, fee=0, other_fee=0, parent_id=0, instrument=row[5], account=row[6],
        other_account=0, reason=reason, venue=row[12], type=REJECTED, side=row[8],
        cmd=CommandType.ROUTE)
    assert engine.state_digest() == before
    if row[2] not in (1, 5):  # a rejected ROUTE is recorded as a rejected NEW is, a parent
        assert engine.order(row[2])["status"] == OrderStatus.REJECTED
        assert engine.order(row[2])["flags"] == row[11] | PARENT


def test_check_16_is_only_sweep_posts():
    engine = make()
    engine.halt(GRID, venue=V1)
    engine.halt(GRID, venue=V2)
    engine.drain_events()
    engine.route(10, GRID, BUY, 101, 2, account=2)   # a sweep's limit need not be on a grid
    assert drained(engine) == [acc(10, 101, 2), canc(10, 101, 2, 0, CancelCause.IOC_REMAINDER),
                               pdone(10, 101, 2, 0, 0, OrderStatus.CANCELLED)]


@pytest.mark.parametrize("row, reason", [
    (raw_cmd(cmd=CommandType.NEW, order_id=1, instrument=UNKNOWN, venue=V_UNKNOWN, side=BUY,
             ord_type=1, tif=1, price=100, qty=1), Reason.BOOK_UNKNOWN_VENUE),
    (raw_cmd(cmd=CommandType.NEW, order_id=1, instrument=UNKNOWN, venue=V1, side=BUY,
             ord_type=1, tif=1, price=100, qty=1), Reason.BOOK_UNKNOWN_INSTRUMENT),
    (raw_cmd(cmd=CommandType.NEW, order_id=1, instrument=EQ, venue=V4, side=BUY,
             ord_type=1, tif=1, price=100, qty=1), Reason.BOOK_VENUE_NOT_LISTED),
    (raw_cmd(cmd=CommandType.NEW, order_id=1, instrument=DEF, venue=V1, side=BUY,
             ord_type=1, tif=1, price=100, qty=1), Reason.BOOK_VENUE_NOT_LISTED),
    (raw_cmd(cmd=CommandType.HALT, instrument=EQ, venue=V_UNKNOWN), Reason.BOOK_UNKNOWN_VENUE),
    (raw_cmd(cmd=CommandType.RESUME, instrument=UNKNOWN, venue=V1),
     Reason.BOOK_UNKNOWN_INSTRUMENT),
    (raw_cmd(cmd=CommandType.SET_LIMITS, instrument=EQ, venue=V4, price=1, qty=5),
     Reason.BOOK_VENUE_NOT_LISTED),
    (raw_cmd(cmd=CommandType.SET_LIMITS, instrument=EQ, venue=V1, price=0, qty=5),
     Reason.BOOK_INVALID_QUANTITY),
    (raw_cmd(cmd=CommandType.MASS_CANCEL, instrument=UNKNOWN, venue=V_UNKNOWN),
     Reason.BOOK_UNKNOWN_VENUE),
    (raw_cmd(cmd=CommandType.MASS_CANCEL, instrument=DEF, venue=V1, side=3),
     Reason.BOOK_VENUE_NOT_LISTED),
])
def test_venue_lookups_reject_verbatim_and_change_nothing(row, reason):
    engine = make()
    rested(engine, (1, EQ, SELL, 105, 1, V2))
    before = engine.state_digest()
    out = records(engine.process(commands([row])), routing=True)
    assert [(e["type"], e["reason"], e["venue"], e["order_id"], e["instrument"], e["cmd"])
            for e in out] == [(REJECTED, reason, row[12], row[2], row[5], row[7])]
    assert engine.state_digest() == before


def test_halt_resume_and_set_limits_cover_every_book_or_one():
    engine = make()
    engine.halt(EQ)
    engine.set_limits(EQ, 2, 9, venue=V2)
    engine.resume(EQ, venue=V3)
    states = [(e.type, e.venue, e.reason, e.price, e.qty) for e in drained(engine)]
    IS, H, O = EventType.INSTRUMENT_STATE, TradingState.HALTED, TradingState.OPEN
    assert states == [(IS, V1, H, 1, INT64_MAX), (IS, V2, H, 1, INT64_MAX),
                      (IS, V3, H, 1, INT64_MAX), (IS, V2, H, 2, 9), (IS, V3, O, 1, INT64_MAX)]
    engine.submit(1, EQ, BUY, 100, 1, venue=V1)
    engine.submit(2, EQ, BUY, 100, 1)                    # venue 0: the primary, V1
    engine.submit(3, EQ, BUY, 100, 1, venue=V3)
    assert [e.reason for e in drained(engine)] == [Reason.BOOK_INSTRUMENT_HALTED] * 2 + [0]


# -- queries and digest -----------------------------------------------------------------------

def test_consolidated_bbo_and_depth_merge_the_books_in_routing_order():
    engine = make()
    rested(engine, (1, EQ, BUY, 99, 3, V1), (2, EQ, BUY, 99, 2, V2), (3, EQ, BUY, 98, 1, V3),
           (4, EQ, SELL, 101, 2, V1), (5, EQ, SELL, 101, 4, V3), (6, EQ, SELL, 102, 1, V2),
           (7, DEF, SELL, 50, 3, 0))
    assert engine.consolidated_bbo(EQ) == {"bid": (99, ((V2, 2), (V1, 3))),
                                           "ask": (101, ((V3, 4), (V1, 2)))}
    assert engine.consolidated_depth(EQ) == (
        [(99, 5, ((V2, 2), (V1, 3))), (98, 1, ((V3, 1),))],
        [(101, 6, ((V3, 4), (V1, 2))), (102, 1, ((V2, 1),))])
    assert engine.consolidated_depth(EQ, 1) == ([(99, 5, ((V2, 2), (V1, 3)))],
                                                [(101, 6, ((V3, 4), (V1, 2)))])
    assert engine.consolidated_bbo(DEF) == {"bid": None, "ask": (50, ((0, 3),))}
    assert engine.best_bid(EQ) == (99, 3) and engine.best_bid(EQ, venue=V2) == (99, 2)
    assert engine.depth(EQ, venue=V3) == ([(98, 1, 1)], [(101, 4, 1)])
    with pytest.raises(KeyError):
        engine.consolidated_bbo(UNKNOWN)
    with pytest.raises(KeyError):
        engine.best_bid(EQ, venue=V4)


def test_the_digest_has_venues_children_and_live_parents():
    core = new_core()
    core.add_venue(1)
    core.add_instrument(5, venue=1)
    core.submit(1, 5, SELL, 101, 2, account=1)
    core.route(10, 5, BUY, 100, 7, account=2, strategy=POST)
    core.check_integrity()
    values = [5, 1, 1, 1, INT64_MAX, 1, 1,
              100, 1, -1, 2, 7, 0, CHILD | Flags.POST_ONLY,
              101, 1, 1, 1, 2, 0, 0,
              1, 1,  # children ever created, live parents
              10, 100, 7, 0, 0, 0, 0, -1, 2, PARENT | Flags.POST_REMAINDER, 1, BUY]
    expected = hashlib.blake2b(np.array(values, dtype="<i8").tobytes(), digest_size=32)
    assert core.state_digest() == expected.hexdigest()


# -- risk ---------------------------------------------------------------------------------------

def risk_engine(fee_ppm: int = 100, **account_2: Any) -> Engine:
    engine = make()
    engine.enable_risk(make_tables(
        [(EQ, USD, 20, 0, 0, fee_ppm), (GRID, USD, 10, 0, 0, 0), (DEF, USD, 1, 0, 0, 0)], FX,
        accounts=[acct(1, short_limit=1000), acct(2, **account_2), acct(3)]))
    return engine


def test_with_risk_on_the_accounts_pay_the_venue_fees_plus_the_instrument_fee():
    engine = risk_engine()
    start = cash(engine, 1)["cash"]
    engine.submit(1, EQ, SELL, 100, 10, account=1, venue=V1)
    engine.route(10, EQ, BUY, 100, 10, account=2)
    # n = 100 x 10 x 20 (the tables' k, not the book's 10) = 20000; taker 3000 + 100 ppm = 62;
    # maker -200 + 100 = -100 ppm: a rebate of 2
    assert drained(engine)[3:5] == [trade(-1, 1, 100, 10, 0, 0, 62, -2, V1, parent=10),
                                    pfill(10, -1, 100, 10, 0, 10, 62, 62, V1)]
    assert cash(engine, 2)["cash"] == start - 20000 - 62
    assert cash(engine, 1)["cash"] == start + 20000 + 2
    assert pnl(engine, 2, EQ) == (10, 20000, 0, 62)
    assert pnl(engine, 1, EQ) == (-10, 20000, 0, -2)


def test_with_risk_on_a_resting_child_is_exposure_and_the_kill_switch_ends_its_parent():
    engine = risk_engine()
    engine.route(10, EQ, BUY, 100, 6, account=2, strategy=POST)
    engine.drain_events()
    assert exposure(engine, 2, EQ) == (1, 6, 0, 100 * 6 * 20)
    engine.kill_switch(KillSwitch.KILLED, account=2)
    assert drained(engine)[1:] == [
        canc(-1, 100, 6, 0, CancelCause.KILL_SWITCH, V1, parent=10),
        canc(10, 100, 6, 0, CancelCause.KILL_SWITCH, V1),
        pdone(10, 100, 6, 0, 0, OrderStatus.CANCELLED, V1)]
    assert exposure(engine, 2, EQ) == (0, 0, 0, 0)


def test_with_risk_on_the_parent_is_checked_once_and_open_orders_only_for_sweep_post():
    engine = risk_engine(max_open_orders=0)
    before = engine.state_digest(), tables_bytes(engine)
    engine.route(10, EQ, BUY, 100, 5, account=2, strategy=POST)
    engine.route(11, EQ, BUY, 100, 5, account=9)
    assert drained(engine) == [rej(10, 100, 5, Reason.RISK_MAX_OPEN_ORDERS),
                               rej(11, 100, 5, Reason.RISK_UNKNOWN_ACCOUNT)]
    assert (engine.state_digest(), tables_bytes(engine)) == before
    engine.route(12, EQ, BUY, 100, 5, account=2)           # a sweep never rests
    assert drained(engine)[-1] == pdone(12, 100, 5, 0, 0, OrderStatus.CANCELLED)
