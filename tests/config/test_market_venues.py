"""engine.market with venues: direct orders on named venues, routed parents, fees in decimals
and the consolidated view. Every test runs on both cores through the shared ``make_core``
fixture (tests/conftest.py: the reference model and the compiled core), given to Market as
its ``core_factory``."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from engine.config import default_config, load_config
from engine.instruments import InstrumentSet
from engine.market import (
    Book,
    Consolidated,
    ConsolidatedLevel,
    Event,
    Level,
    Market,
    decode_events,
    fee_units,
)
from engine.venues import VenueSet, instrument_k

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "instruments.toml"
D = Decimal


@pytest.fixture
def market(make_core) -> Market:
    # The embedded config: LIT (maker -20 ppm, taker 30), ALT (0, 10), CROSS (0, 0); AAPL is
    # on all three (LIT its primary), k from the risk setup: fees in 10**-6 USD.
    return Market(default_config(), core_factory=make_core)


def rest_three_venues(m: Market) -> None:
    for venue, price, qty in [("LIT", "150.00", 100), ("ALT", "150.00", 100),
                              ("CROSS", "150.01", 50)]:
        assert [e.type for e in m.sell("AAPL", qty, price, account=2, venue=venue)] == [
            "ACCEPTED"]


def aapl(type_: str, order_id: int, side: str, price: str, qty: str | int, leaves: str | int,
         **kw) -> Event:
    return Event(type=type_, order_id=order_id, symbol="AAPL", side=side, price=D(price),
                 qty=D(qty), leaves=D(leaves), instrument=1, **kw)


def test_venues_registered_from_the_config(market):
    assert isinstance(market.venues, VenueSet) and market.venues.names == ["LIT", "ALT", "CROSS"]
    assert market.venues == VenueSet.from_config(default_config())
    assert market.core.venues() == [(1, -20, 30, 0), (2, 0, 10, 1), (3, 0, 0, 2)]
    assert market.core.books()[:3] == [(1, 1, 1, 1), (2, 1, 1, 1), (3, 1, 1, 1)]
    assert (0, 4, 1, 1) in market.core.books()  # the option: no venue lists it
    units = fee_units(market.instruments, instrument_k(default_config()))
    assert units[1] == D("0.000001") and units[7] == D("0.01")  # USD: 6 decimals, EUR: 2


def test_sweep_across_three_venues_in_decimals(market):
    rest_three_venues(market)
    ev = market.route("AAPL", "buy", 220, "150.01", account=1, order_id=100)
    r = dict(account=1, cmd="ROUTE", seq=4)
    assert ev == [
        aapl("ACCEPTED", 100, "BUY", "150.01", 220, 220, **r),
        aapl("ACCEPTED", -1, "BUY", "150.00", 100, 100, parent_id=100, venue="ALT", **r),
        aapl("ACCEPTED", -2, "BUY", "150.00", 100, 100, parent_id=100, venue="LIT", **r),
        aapl("ACCEPTED", -3, "BUY", "150.01", 20, 20, parent_id=100, venue="CROSS", **r),
        aapl("TRADE", -1, "BUY", "150.00", 100, 0, other_id=2, other_account=2,
             other_leaves=D(0), fee=D("0.150000"), other_fee=D("0.000000"), parent_id=100,
             venue="ALT", **r),
        aapl("PARENT_FILL", 100, "BUY", "150.00", 100, 120, other_id=-1, other_account=2,
             other_leaves=D(100), fee=D("0.150000"), other_fee=D("0.150000"), venue="ALT", **r),
        aapl("TRADE", -2, "BUY", "150.00", 100, 0, other_id=1, other_account=2,
             other_leaves=D(0), fee=D("0.450000"), other_fee=D("-0.300000"), parent_id=100,
             venue="LIT", **r),
        aapl("PARENT_FILL", 100, "BUY", "150.00", 100, 20, other_id=-2, other_account=2,
             other_leaves=D(200), fee=D("0.450000"), other_fee=D("0.600000"), venue="LIT", **r),
        aapl("TRADE", -3, "BUY", "150.01", 20, 0, other_id=3, other_account=2,
             other_leaves=D(30), fee=D("0.000000"), other_fee=D("0.000000"), parent_id=100,
             venue="CROSS", **r),
        aapl("PARENT_FILL", 100, "BUY", "150.01", 20, 0, other_id=-3, other_account=2,
             other_leaves=D(220), fee=D("0.000000"), other_fee=D("0.600000"), venue="CROSS",
             **r),
        aapl("PARENT_DONE", 100, "BUY", "150.01", 220, 0, reason="FILLED",
             other_leaves=D(220), fee=D("0.000000"), other_fee=D("0.600000"), **r),
    ]
    assert str(ev[-1].other_fee) == "0.600000" and ev[0].venue is None
    # what is left: 30 on CROSS
    assert market.consolidated("AAPL").ask == ConsolidatedLevel(
        price=D("150.01"), qty=D(30), venues=(("CROSS", D(30)),))
    assert market.order(100).status == "FILLED"


def test_fees_with_k_one_for_an_instrument_set_with_venues(make_core):
    # venues= with an InstrumentSet registers k = 1: fee units are tick x lot x multiplier
    insts = InstrumentSet.from_config(default_config())
    m = Market(insts, venues=VenueSet.from_config(default_config(), insts),
               core_factory=make_core)
    rest_three_venues(m)
    trades = [e for e in m.route("AAPL", "buy", 220, "150.01", account=1) if e.type == "TRADE"]
    assert [(t.venue, t.fee, t.other_fee) for t in trades] == [
        ("ALT", D("0.15"), D("0.00")), ("LIT", D("0.45"), D("-0.30")),
        ("CROSS", D("0.00"), D("0.00"))]
    with pytest.raises(ValueError):
        Market(default_config(), venues=m.venues, core_factory=make_core)


def test_fok_sweep_that_cannot_fill_changes_nothing(market):
    rest_three_venues(market)
    before = market.core.state_digest()
    ev = market.route("AAPL", "buy", 300, "150.01", tif="fok", account=1, order_id=7)
    assert [(e.type, e.reason) for e in ev] == [
        ("ACCEPTED", None), ("CANCELLED", "FOK_UNFILLABLE"), ("PARENT_DONE", "CANCELLED")]
    assert market.consolidated("AAPL").ask.qty == D(200)
    assert market.core.state_digest() == before  # no child was made, no book touched
    assert market.book("AAPL", venue="ALT").asks == (Level(price=D("150.00"), qty=D(100),
                                                           orders=1),)


def test_sweep_post_rests_then_cancel_of_the_parent(market):
    market.sell("AAPL", 30, "150.00", account=2, venue="ALT")
    ev = market.route("AAPL", "buy", 100, "150.00", strategy="sweep_post", post_venue="CROSS",
                      account=1, order_id=50)
    r = dict(account=1, cmd="ROUTE", seq=2)
    assert ev == [
        aapl("ACCEPTED", 50, "BUY", "150.00", 100, 100, venue="CROSS", **r),
        aapl("ACCEPTED", -1, "BUY", "150.00", 30, 30, parent_id=50, venue="ALT", **r),
        aapl("TRADE", -1, "BUY", "150.00", 30, 0, other_id=1, other_account=2,
             other_leaves=D(0), fee=D("0.045000"), other_fee=D("0.000000"), parent_id=50,
             venue="ALT", **r),
        aapl("PARENT_FILL", 50, "BUY", "150.00", 30, 70, other_id=-1, other_account=2,
             other_leaves=D(30), fee=D("0.045000"), other_fee=D("0.045000"), venue="ALT", **r),
        aapl("ACCEPTED", -2, "BUY", "150.00", 70, 70, parent_id=50, venue="CROSS", **r),
    ]
    assert market.book("AAPL", venue="CROSS") == Book(
        symbol="AAPL", venue="CROSS", bids=(Level(price=D("150.00"), qty=D(70), orders=1),),
        asks=())
    assert market.book("AAPL").bids == ()  # the primary (LIT) holds nothing

    ev = market.cancel(50, account=1)
    c = dict(account=1, cmd="CANCEL", seq=3)
    assert ev == [
        aapl("CANCELLED", -2, "BUY", "150.00", 70, 0, reason="USER", parent_id=50,
             venue="CROSS", **c),
        aapl("CANCELLED", 50, "BUY", "150.00", 70, 0, reason="USER", venue="CROSS", **c),
        aapl("PARENT_DONE", 50, "BUY", "150.00", 100, 0, reason="CANCELLED",
             other_leaves=D(30), fee=D("0.000000"), other_fee=D("0.045000"), venue="CROSS",
             **c),
    ]
    assert market.consolidated("AAPL") == Consolidated(symbol="AAPL", bid=None, ask=None,
                                                       bids=(), asks=())


def test_sweep_post_by_default_rests_on_the_best_maker_fee(market):
    ev = market.route("AAPL", "sell", 10, "151.00", strategy="sweep_post", account=1)
    assert [(e.type, e.order_id < 0, e.venue) for e in ev] == [
        ("ACCEPTED", False, "LIT"), ("ACCEPTED", True, "LIT")]  # LIT: the -20 ppm rebate


def test_direct_order_on_a_named_venue(market):
    ev = market.sell("AAPL", 40, "150.05", account=2, order_id=1, venue="ALT")
    assert ev == [aapl("ACCEPTED", 1, "SELL", "150.05", 40, 40, account=2, venue="ALT", seq=1)]
    assert market.book("AAPL").asks == ()
    assert market.book("AAPL", venue="ALT").asks == (Level(price=D("150.05"), qty=D(40),
                                                           orders=1),)
    ev = market.buy("AAPL", 10, "150.05", account=1, order_id=2, venue="ALT")
    assert ev[1] == aapl("TRADE", 2, "BUY", "150.05", 10, 0, other_id=1, other_account=2,
                         other_leaves=D(30), fee=D("0.015005"), other_fee=D("0.000000"),
                         account=1, venue="ALT", seq=2)
    # a buy on the primary (LIT) does not reach ALT's book: it rests
    ev = market.buy("AAPL", 5, "150.05", account=1, order_id=3)
    assert [(e.type, e.venue) for e in ev] == [("ACCEPTED", "LIT")]
    # a venue that does not list the instrument: the core refuses it
    ev = market.buy("ES", 1, "5800.00", venue="ALT")
    assert [(e.type, e.reason, e.venue) for e in ev] == [
        ("REJECTED", "BOOK_VENUE_NOT_LISTED", "ALT")] and ev[0].seq > 0
    # an instrument no venue lists: on the default venue, not routable
    ev = market.route("UST-10Y", "buy", 1000, "99.00")
    assert [(e.type, e.reason, e.venue) for e in ev] == [
        ("REJECTED", "BOOK_NO_ROUTABLE_VENUE", None)]


def test_unknown_venue_name_is_refused_at_the_edge(market):
    market.sell("AAPL", 10, "150.00", account=2)
    digest = market.core.state_digest()
    ev = market.buy("AAPL", 10, "150.00", venue="NYSE", order_id=9)
    assert ev == [Event(type="REJECTED", order_id=9, symbol="AAPL", side="BUY",
                        price=D("150.00"), qty=D(10), leaves=D(0),
                        reason="BOOK_UNKNOWN_VENUE", instrument=1,
                        text="unknown venue 'NYSE' (venues: LIT, ALT, CROSS)")]
    for refused in (market.sell("AAPL", 1, "150", venue="lit"),
                    market.submit("NOPE", "buy", 1, "1", venue=1),  # an id is not a name
                    market.route("AAPL", "buy", 10, "150.00", strategy="sweep_post",
                                 post_venue="NYSE")):
        assert [(e.type, e.reason, e.seq) for e in refused] == [
            ("REJECTED", "BOOK_UNKNOWN_VENUE", 0)]
    assert refused[0].cmd == "ROUTE"
    assert market.core.state_digest() == digest and len(market.core.drain_events()) == 0
    assert market._seq == 1  # nothing was stamped for the core
    with pytest.raises(ValueError):
        market.route("AAPL", "buy", 10, "150.00", strategy="twap")
    with pytest.raises(KeyError):
        market.book("AAPL", venue="NYSE")
    assert market.core.state_digest() == digest


def test_consolidated_view(market):
    rest_three_venues(market)
    market.buy("AAPL", 70, "149.99", account=1, venue="CROSS")
    market.buy("AAPL", 30, "149.99", account=1, venue="LIT")
    market.buy("AAPL", 5, "149.98", account=1, venue="ALT")
    view = market.consolidated("AAPL", depth=1)
    lv = ConsolidatedLevel
    assert view == Consolidated(
        symbol="AAPL",
        bid=lv(price=D("149.99"), qty=D(100), venues=(("LIT", D(30)), ("CROSS", D(70)))),
        ask=lv(price=D("150.00"), qty=D(200), venues=(("LIT", D(100)), ("ALT", D(100)))),
        bids=(lv(price=D("149.99"), qty=D(100), venues=(("LIT", D(30)), ("CROSS", D(70)))),),
        asks=(lv(price=D("150.00"), qty=D(200), venues=(("LIT", D(100)), ("ALT", D(100)))),))
    full = market.consolidated("AAPL")
    assert [(x.price, x.qty) for x in full.bids] == [(D("149.99"), D(100)),
                                                   (D("149.98"), D(5))]
    assert [(x.price, x.venues) for x in full.asks] == [
        (D("150.00"), (("LIT", D(100)), ("ALT", D(100)))), (D("150.01"), (("CROSS", D(50)),))]
    assert str(full).splitlines()[:2] == ["AAPL (consolidated)",
                                         "  ask         150.01 x 50 (CROSS:50)"]
    # an instrument on the default venue: one book, venue None
    market.sell("UST-10Y", 1000, "99.5")
    assert market.consolidated("UST-10Y").ask == lv(price=D("99.50000"), qty=D(1000),
                                                    venues=((None, D(1000)),))


def test_decode_events_names_venues_when_given_them(market):
    rest_three_venues(market)
    market.core.route(100, 1, 1, 15000, 150, account=1)
    raw = market.core.drain_events()
    named = decode_events(raw, market.instruments, venues=market.venues,
                          fee_units=fee_units(market.instruments,
                                              instrument_k(default_config())))
    bare = decode_events(raw, market.instruments)
    assert [e.venue for e in named][:3] == [None, "ALT", "LIT"]
    assert [e.venue for e in bare][:3] == [None, "2", "1"]
    trade = next(e for e in bare if e.type == "TRADE")
    assert (trade.fee, trade.other_fee) == (D(150000), D(0))  # raw integers
    assert next(e for e in named if e.type == "TRADE").fee == D("0.150000")


def test_market_without_venues_is_unchanged(make_core):
    no_venues = msgspec.structs.replace(default_config(), venues=())
    for m in (Market(EXAMPLE, core_factory=make_core),
              Market(load_config(EXAMPLE), core_factory=make_core),
              Market(no_venues, core_factory=make_core),
              Market(InstrumentSet.from_config(default_config()), core_factory=make_core)):
        assert not m.venues and m.venues.names == []
        assert all(venue == 0 for venue, *_ in m.core.books())
        m.sell("AAPL", 10, "150.00", order_id=1)
        ev = m.buy("AAPL", 4, "150.00", order_id=2)
        assert ev[1] == Event(type="TRADE", order_id=2, symbol="AAPL", side="BUY",
                              price=D("150.00"), qty=D(4), leaves=D(0), other_id=1,
                              other_leaves=D(6), instrument=1, seq=2)
        assert repr(ev[1]) == (
            "Event(type='TRADE', order_id=2, symbol='AAPL', side='BUY', price=Decimal('150.00'),"
            " qty=Decimal('4'), leaves=Decimal('0'), other_id=1, other_leaves=Decimal('6'),"
            " instrument=1, seq=2)")
        assert repr(m.book("AAPL")) == (
            "Book(symbol='AAPL', bids=(), asks=(Level(price=Decimal('150.00'), qty=Decimal('6'),"
            " orders=1),))")
        ev = m.buy("AAPL", 1, "150.00", venue="LIT")
        assert [(e.type, e.reason, e.seq) for e in ev] == [("REJECTED", "BOOK_UNKNOWN_VENUE", 0)]
        ev = m.route("AAPL", "buy", 1, "150.00")
        assert [(e.type, e.reason) for e in ev] == [("REJECTED", "BOOK_NO_ROUTABLE_VENUE")]


def test_order_shows_a_live_parent_its_child_and_their_venue(market):
    market.sell("AAPL", 100, "150.00", account=2, venue="ALT")
    events = market.route("AAPL", "buy", 150, "150.01", account=1, strategy="sweep_post")
    parent = events[0].order_id
    child = [e for e in events if e.type == "ACCEPTED" and e.order_id < 0][-1].order_id
    p = market.order(parent)
    # 100 filled on ALT (taker fee 10 ppm of 15,000.00 = 0.15), 50 resting on LIT
    assert (p.status, p.filled, p.leaves, p.venue, p.child_id, p.avg_price, p.fees,
            p.cancelled) == ("PARTIALLY_FILLED", Decimal("100"), Decimal("50"), "LIT", child,
                             Decimal("150.00"), Decimal("0.150000"), Decimal("0"))
    c = market.order(child)
    assert (c.parent_id, c.venue, c.post_only, c.leaves) == (parent, "LIT", True, Decimal("50"))
    assert market.order(1).venue == "ALT" and market.order(1).parent_id is None
