"""Differential tests with venues and routing (docs/ROUTING.md): random streams that mix direct
orders on several venues (different fees, a coarser tick, a coarser lot, a tie in priority)
with routed parents of both strategies, cancels and replaces of parents and children, and
venue-scoped admin commands, through the reference model and the compiled core, per call and
via process(). Events must agree byte for byte, and books, consolidated views, parents and
order() after every chunk. Every routed fill is also checked against the no-trade-through
property, from the books as they stood (test_no_trade_through_on_every_routed_fill).

``ENGINE_FUZZ_EXAMPLES`` sets the number of hypothesis examples (``make fuzz`` raises it).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.reference import ReferenceCore
from engine.schema import EVENT_DTYPE, CommandType, EventType, Flags, Reason, TradingState
from tests.conftest import commands, load_core_class, records
from tests.core import test_differential as differential
from tests.core.test_differential import FUZZ
from tests.core.test_differential_risk import tables as risk_tables

CORE = load_core_class()

# (venue, maker_fee, taker_fee, priority): a lit venue with a rebate, a cheap one, a free one
# that ties the cheap one in priority (so the venue id decides), and one listing nothing.
VENUES = [(1, -2000, 3000, 0), (2, 0, 1000, 1), (3, 0, 0, 1), (5, 100, 100, 2)]
# (instrument, venue, tick, lot): instrument 1 on three venues (2 with lot 2, 3 with tick 2),
# instrument 2 on venue 1 only, instrument 3 on the default venue (not routable).
BOOKS = [(1, 1, 1, 1), (1, 2, 1, 2), (1, 3, 2, 1), (2, 1, 1, 1), (3, 0, 1, 1)]
UNKNOWN_VENUE = 4
UNKNOWN_INSTRUMENT = 9
HISTORY = 16
N_IDS = 24
PRICES = range(96, 105)
FIELDS = ("seq", "ts_ns", "order_id", "price", "qty", "instrument", "account", "cmd", "side",
          "ord_type", "tif", "flags", "venue")


def make_engine(cls: type):
    engine = cls(history=HISTORY)
    for venue, maker, taker, priority in VENUES:
        engine.add_venue(venue, maker_fee=maker, taker_fee=taker, priority=priority)
    for instrument, venue, tick, lot in BOOKS:
        engine.add_instrument(instrument, 1, 2 ** 63 - 1, venue=venue, tick=tick, lot=lot, k=3)
    return engine


def account_of(order_id: int) -> int:
    return abs(order_id) % 3 + 1


def row(**fields: int) -> tuple:
    return tuple(int(fields.get(name, 0)) for name in FIELDS)


def stamp(rows: list[tuple]) -> list[tuple]:
    return [(i + 1, 1_000 * (i + 1)) + r[2:] for i, r in enumerate(rows)]


class Runner(differential.Runner):
    """tests/core/test_differential.py's runner ("batch" or "per_call") on this file's venues,
    with risk on when given tables."""

    def __init__(self, name: str, cls: type, per_call: bool, risk: dict | None = None) -> None:
        self.name, self.mode = name, "per_call" if per_call else "batch"
        self.engine = make_engine(cls)
        if risk is not None:
            self.engine.enable_risk({k: v.copy() for k, v in risk.items()})


def snapshot(engine) -> dict:
    books = {(i, v): (engine.depth(i, 100, venue=v), engine.instrument_state(i, venue=v))
             for i, v, _, _ in BOOKS}
    state = engine.export_state()
    return dict(
        digest=engine.state_digest(),
        books=books,
        bbo={i: engine.consolidated_bbo(i) for i in (1, 2, 3)},
        depth={i: engine.consolidated_depth(i, 100) for i in (1, 2, 3)},
        open_orders=engine.open_orders,
        parents=state["parents"].tobytes(),
        children=state["children"],
        orders={oid: engine.order(oid) for oid in range(-40, N_IDS + 2)},
    )


def run(rows: list[tuple], chunk_sizes: list[int], runners: list[Runner]) -> np.ndarray:
    """Feed the rows in chunks to every runner; identical events and states after each chunk.
    Returns the first runner's events."""
    start, k, out = 0, 0, []
    while start < len(rows):
        size = chunk_sizes[k % len(chunk_sizes)] if chunk_sizes else len(rows)
        chunk, start, k = rows[start:start + size], start + size, k + 1
        outputs = [r.feed(chunk) for r in runners]
        for runner, events in zip(runners[1:], outputs[1:]):
            assert events.dtype == EVENT_DTYPE
            if events.tobytes() != outputs[0].tobytes():
                assert records(events, routing=True) == records(outputs[0], routing=True), \
                    (runner.name, runners[0].name, chunk)
                raise AssertionError(f"{runner.name}: event bytes differ (padding?)")
        states = []
        for runner in runners:
            runner.engine.check_integrity()
            states.append(snapshot(runner.engine))
        for runner, state in zip(runners[1:], states[1:]):
            diff = {key: (state[key], states[0][key]) for key in state
                    if state[key] != states[0][key]}
            assert diff == {}, (runner.name, runners[0].name, chunk)
        out.append(outputs[0])
    return np.concatenate(out) if out else np.empty(0, EVENT_DTYPE)


def all_runners(risk: dict | None = None) -> list[Runner]:
    return [Runner("reference-batch", ReferenceCore, False, risk),
            Runner("core-batch", CORE, False, risk), Runner("core-per-call", CORE, True, risk)]


# -- random streams ---------------------------------------------------------------------------

@st.composite
def new_rows(draw) -> dict:
    return dict(cmd=CommandType.NEW, order_id=draw(st.integers(1, N_IDS)),
                instrument=draw(st.sampled_from([1, 1, 1, 1, 2, 3, UNKNOWN_INSTRUMENT])),
                venue=draw(st.sampled_from([0, 1, 2, 2, 3, 3, UNKNOWN_VENUE, 5])),
                side=draw(st.sampled_from([1, 2])),
                ord_type=draw(st.sampled_from([1, 1, 1, 1, 2])),
                tif=draw(st.sampled_from([1, 1, 1, 2, 3])),
                flags=draw(st.sampled_from([0, 0, 0, 1])),
                price=draw(st.sampled_from(PRICES)), qty=draw(st.sampled_from([1, 2, 2, 4, 6])))


@st.composite
def route_rows(draw) -> dict:
    post = draw(st.booleans())
    return dict(cmd=CommandType.ROUTE, order_id=draw(st.integers(1, N_IDS)),
                instrument=draw(st.sampled_from([1, 1, 1, 1, 2, 3, UNKNOWN_INSTRUMENT])),
                venue=draw(st.sampled_from([0, 0, 0, 1, 2, 3, 5, UNKNOWN_VENUE]))
                if post else draw(st.sampled_from([0] * 9 + [2])),
                side=draw(st.sampled_from([1, 2, 2, 1, 0])),
                ord_type=draw(st.sampled_from([1, 1, 1, 1, 2, 3])),
                tif=1 if post and draw(st.integers(0, 9)) else draw(st.sampled_from([2, 2, 3, 1])),
                flags=(int(Flags.POST_REMAINDER) if post else 0)
                | draw(st.sampled_from([0] * 15 + [1])),
                price=draw(st.sampled_from(list(PRICES) + [0])),
                qty=draw(st.sampled_from([1, 3, 5, 8, 12, 0])))


@st.composite
def cancel_rows(draw) -> dict:
    return dict(cmd=CommandType.CANCEL, order_id=draw(st.integers(-8, N_IDS)))


@st.composite
def replace_rows(draw) -> dict:
    return dict(cmd=CommandType.REPLACE, order_id=draw(st.integers(-8, N_IDS)),
                price=draw(st.sampled_from(PRICES)), qty=draw(st.integers(0, 12)))


@st.composite
def admin_rows(draw) -> dict:
    cmd = draw(st.sampled_from([CommandType.MASS_CANCEL, CommandType.HALT, CommandType.RESUME,
                                CommandType.RESUME, CommandType.SET_LIMITS]))
    fields = dict(cmd=cmd, instrument=draw(st.sampled_from([0, 1, 1, 2, 3])),
                  venue=draw(st.sampled_from([0, 0, 1, 2, 3, 5, UNKNOWN_VENUE])))
    if cmd == CommandType.MASS_CANCEL:
        fields.update(side=draw(st.sampled_from([0, 1, 2])),
                      flags=draw(st.sampled_from([0, int(Flags.ALL_ACCOUNTS)])),
                      order_id=draw(st.integers(1, 3)))
    elif cmd == CommandType.SET_LIMITS:
        fields.update(price=draw(st.integers(1, 2)), qty=draw(st.sampled_from([6, 12, 2 ** 40])))
    return fields


KINDS = ["new"] * 10 + ["route"] * 6 + ["cancel"] * 3 + ["replace"] * 3 + ["admin"]


@st.composite
def item(draw) -> dict:
    kind = draw(st.sampled_from(KINDS))
    return draw(dict(new=new_rows(), route=route_rows(), cancel=cancel_rows(),
                     replace=replace_rows(), admin=admin_rows())[kind])


def resolve(items: list[dict]) -> list[tuple]:
    """Rows: accounts follow the order id (a wrong one now and then: id 0 gets account 1);
    parents' and children's ids are reached through the cancels and replaces of ids <= 0 (the
    most recent children, ``-1`` the first one ever)."""
    rows = []
    for index, fields in enumerate(items):
        fields = dict(fields)
        fields.setdefault("account", account_of(fields.get("order_id", 0)))
        if fields["cmd"] in (CommandType.NEW, CommandType.ROUTE) and index % 2:
            fields["side"] = {1: 2, 2: 1}.get(fields["side"], fields["side"])
        rows.append(row(**fields))
    return stamp(rows)


streams = st.lists(item(), min_size=20, max_size=120).map(resolve)
chunkings = st.lists(st.integers(1, 24), min_size=1, max_size=5)


@FUZZ
@given(rows=streams, chunk_sizes=chunkings)
def test_core_matches_the_reference_with_venues_and_routing(rows, chunk_sizes):
    run(rows, chunk_sizes, all_runners())


@FUZZ
@given(risk=risk_tables(), rows=streams, chunk_sizes=chunkings)
def test_core_matches_the_reference_with_routing_and_risk_on(risk, rows, chunk_sizes):
    """The same streams with pre-trade risk on (random tables, tests/core/test_differential_risk):
    each parent checked once, fills charged with the venues' fees, children's exposure; the
    digests compared after every chunk hash the risk tables too."""
    runners = all_runners(risk)
    run(rows, chunk_sizes, runners)
    states = [r.engine.risk_state() for r in runners]
    for state in states[1:]:
        assert all(state[k].tobytes() == states[0][k].tobytes() for k in state)


# -- no trade-through -------------------------------------------------------------------------

def adjusted(side: int, price: int, taker_fee: int) -> int:
    """A fee-adjusted price, scaled by 10**6, as better = smaller for both sides."""
    return price * (10**6 + taker_fee) if side == 1 else -price * (10**6 - taker_fee)


def trade_throughs(engine, rows: list[tuple]) -> tuple[int, list]:
    """Run ``rows`` one at a time through ``engine``; for each ROUTE, rebuild every routable
    book of the instrument from its depth before the command and walk the command's trades in
    order. At each child fill: no other open book (one whose lot the parent's open quantity
    still covers) may hold an acceptable level better after fees, or equal on a book first in
    routing order. Returns (routed fills checked, violations)."""
    fees = {v: (taker, prio) for v, _, taker, prio in VENUES}
    lots = {(i, v): lot for i, v, _, lot in BOOKS}
    checked, bad = 0, []
    for r in rows:
        fields = dict(zip(FIELDS, r))
        before = None
        if fields["cmd"] == CommandType.ROUTE and fields["instrument"] in (1, 2):
            inst = fields["instrument"]
            before = {}
            for i, v, _, _ in BOOKS:
                if i != inst or v == 0:
                    continue
                state = engine.instrument_state(i, venue=v)
                bids, asks = engine.depth(i, 1000, venue=v)
                before[v] = dict(open=state["trading_state"] == TradingState.OPEN,
                                 levels={1: [[p, q] for p, q, _ in asks],
                                         2: [[p, q] for p, q, _ in bids]})
        events = engine.process(commands([r]))
        if before is None:
            continue
        side, limit = fields["side"], fields["price"]
        market = fields["ord_type"] == 2
        open_qty = fields["qty"]
        for e in events:
            if e["type"] == EventType.PARENT_FILL and e["order_id"] == fields["order_id"]:
                open_qty = int(e["leaves"])
            if e["type"] != EventType.TRADE or e["parent_id"] != fields["order_id"] \
                    or e["parent_id"] == 0:
                continue
            checked += 1
            v, price, qty = int(e["venue"]), int(e["price"]), int(e["qty"])
            mine = (adjusted(side, price, fees[v][0]), fees[v][1], v)
            for w, book in before.items():
                if w == v or not book["open"] or open_qty < lots[(fields["instrument"], w)]:
                    continue
                levels = book["levels"][side]
                if not levels:
                    continue
                p = levels[0][0]
                if not market and (p > limit if side == 1 else p < limit):
                    continue
                if (adjusted(side, p, fees[w][0]), fees[w][1], w) < mine:
                    bad.append((fields, dict(venue=v, price=price), dict(venue=w, price=p)))
            levels = before[v]["levels"][side]
            assert levels and levels[0][0] == price, "a child traded off its venue's best level"
            levels[0][1] -= qty
            if levels[0][1] == 0:
                levels.pop(0)
    return checked, bad


@FUZZ
@given(rows=streams)
def test_no_trade_through_on_random_streams(rows):
    # the random streams (halts, odd lots, coarse grids, rejects and all), in both engines
    for cls in (ReferenceCore, CORE):
        checked, bad = trade_throughs(make_engine(cls), rows)
        assert bad == []


def routing_stream(seed: int, n: int) -> list[tuple]:
    """A seeded stream: resting liquidity on every venue, and routed parents against it."""
    rng = np.random.RandomState(seed)
    rows = []
    next_id = 1
    for _ in range(n):
        oid, next_id = next_id, next_id + 1
        side = int(rng.randint(1, 3))
        if rng.rand() < 0.65:
            venue, tick, lot = [(1, 1, 1), (2, 1, 2), (3, 2, 1)][rng.randint(0, 3)]
            price = int(rng.randint(95, 106)) // tick * tick
            rows.append(row(cmd=CommandType.NEW, order_id=oid, account=account_of(oid),
                            instrument=1, venue=venue, side=side, ord_type=1, tif=1,
                            price=price, qty=lot * int(rng.randint(1, 5))))
        else:
            post = rng.rand() < 0.3
            rows.append(row(cmd=CommandType.ROUTE, order_id=oid, account=account_of(oid),
                            instrument=1, side=side,
                            ord_type=1 if post or rng.rand() < 0.9 else 2,
                            tif=1 if post else (2 if rng.rand() < 0.8 else 3),
                            flags=int(Flags.POST_REMAINDER) if post else 0,
                            price=int(rng.randint(95, 106)), qty=int(rng.randint(1, 16))))
        if rng.rand() < 0.03:
            rows.append(row(cmd=rng.choice([CommandType.HALT, CommandType.RESUME]),
                            instrument=1, venue=int(rng.randint(1, 4))))
    return stamp(rows)


@pytest.mark.parametrize("cls", [ReferenceCore, CORE], ids=["reference", "core"])
def test_no_trade_through_on_every_routed_fill(cls):
    rows = routing_stream(seed=11, n=2000)
    checked, bad = trade_throughs(make_engine(cls), rows)
    assert checked > 400, "the stream was meant to route many fills"
    assert bad == []


def test_the_seeded_routing_stream_agrees_byte_for_byte():
    rows = routing_stream(seed=5, n=2500)
    events = run(rows, [int(x) for x in np.random.RandomState(5).randint(1, 80, size=40)],
                 all_runners())
    types = set(events["type"].tolist())
    assert {EventType.PARENT_FILL, EventType.PARENT_DONE, EventType.TRADE} <= types
    # fees both ways: LIT's taker fee and its maker rebate
    trades = events[events["type"] == EventType.TRADE]
    assert (trades["fee"] > 0).any() and (trades["other_fee"] < 0).any()


def test_seeded_streams_reach_every_routing_outcome():
    """The kinds of rows the random streams draw, from numpy seeds, reach every routing event
    and every venue and routing reject (so the differential test exercises them)."""
    seen_reasons: set[int] = set()
    seen_types: set[int] = set()
    for seed in range(40):
        rng = np.random.RandomState(seed)
        extra = [_fixed_fault(KINDS[rng.randint(len(KINDS))], rng) for _ in range(120)]
        rows = stamp(routing_stream(seed, 200) + resolve(extra))
        events = make_engine(CORE).process(commands(rows))
        seen_types |= set(events["type"].tolist())
        seen_reasons |= set(events["reason"][events["type"] == EventType.REJECTED].tolist())
    assert {EventType.PARENT_FILL, EventType.PARENT_DONE, EventType.REPLACED} <= seen_types
    assert {Reason.BOOK_UNKNOWN_VENUE, Reason.BOOK_VENUE_NOT_LISTED, Reason.BOOK_OFF_VENUE_GRID,
            Reason.BOOK_NO_ROUTABLE_VENUE, Reason.BOOK_CHILD_ORDER,
            Reason.BOOK_INVALID_STRATEGY} <= seen_reasons


def _fixed_fault(kind: str, rng: np.random.RandomState) -> dict:
    """One row of ``kind`` from a numpy generator, in the hypothesis generator's ranges."""
    oid = int(rng.randint(-8, N_IDS + 1))
    if kind == "new":
        return dict(cmd=CommandType.NEW, order_id=max(oid, 1), instrument=int(rng.choice(
            [1, 2, 3, UNKNOWN_INSTRUMENT])), venue=int(rng.choice([0, 1, 2, 3, 4, 5])),
            side=int(rng.randint(1, 3)), ord_type=1, tif=1, price=int(rng.randint(96, 105)),
            qty=int(rng.choice([1, 2, 3])))
    if kind == "route":
        post = bool(rng.randint(2))
        return dict(cmd=CommandType.ROUTE, order_id=max(oid, 1),
                    instrument=int(rng.choice([1, 2, 3])), venue=int(rng.choice([0, 0, 2, 4])),
                    side=int(rng.randint(1, 3)), ord_type=1, tif=int(rng.choice([1, 2, 3])),
                    flags=int(Flags.POST_REMAINDER) if post else 0,
                    price=int(rng.randint(96, 105)), qty=int(rng.randint(1, 10)))
    if kind == "cancel":
        return dict(cmd=CommandType.CANCEL, order_id=oid)
    if kind == "replace":
        return dict(cmd=CommandType.REPLACE, order_id=oid, price=int(rng.randint(96, 105)),
                    qty=int(rng.randint(1, 8)))
    return dict(cmd=CommandType.HALT if rng.randint(4) == 0 else CommandType.RESUME,
                instrument=1, venue=int(rng.randint(0, 4)))
