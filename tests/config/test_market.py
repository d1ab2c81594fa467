"""engine.market: the decimal, symbol-based edge over a core. Matching runs on both
implementations through the shared ``make_core`` fixture (tests/conftest.py: the reference model,
and the compiled core once built, with check_integrity() after every command); edge refusals
are also checked on a recording stub, so they are proven never to reach a core."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from engine.config import load_config
from engine.instruments import InstrumentSet
from engine.market import Book, Event, Level, Market, OrderView, decode_events
from engine.schema import EVENT_DTYPE, INT64_MAX, Side
from tests.conftest import load_core_class

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "instruments.toml"


@pytest.fixture
def market(make_core) -> Market:
    # make_core() with no instruments: a fresh core; the Market registers its own instruments.
    return Market(EXAMPLE, core_factory=make_core)


class StubCore:
    """Records every call; never produces an event. Enough for what the edge refuses."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.registered: list[tuple[int, int, int]] = []

    def add_instrument(self, instrument_id, min_qty=1, max_qty=INT64_MAX):
        self.registered.append((instrument_id, min_qty, max_qty))

    def submit(self, *args, **kwargs):
        self.calls.append(("submit", args, kwargs))
        return 0

    def cancel(self, *args, **kwargs):
        self.calls.append(("cancel", args, kwargs))
        return 0

    def replace(self, *args, **kwargs):
        self.calls.append(("replace", args, kwargs))
        return 0

    def order(self, order_id):
        return None

    def drain_events(self):
        return np.zeros(0, dtype=EVENT_DTYPE)


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


# -- rest and trade in decimals ----------------------------------------------------------------

def test_rest_and_trade_with_decimal_prices(market):
    ev = market.sell("AAPL", 100, "189.50", order_id=1)
    assert types(ev) == ["ACCEPTED"]
    assert (ev[0].symbol, ev[0].side, ev[0].price, ev[0].qty, ev[0].leaves) == (
        "AAPL", "SELL", Decimal("189.50"), Decimal(100), Decimal(100))
    market.sell("AAPL", "50", Decimal("189.49"), order_id=2)

    book = market.book("AAPL")
    assert book == Book(symbol="AAPL", bids=(), asks=(
        Level(price=Decimal("189.49"), qty=Decimal(50), orders=1),
        Level(price=Decimal("189.50"), qty=Decimal(100), orders=1)))

    ev = market.buy("AAPL", 120, "189.50", order_id=3)
    assert types(ev) == ["ACCEPTED", "TRADE", "TRADE"]
    t1, t2 = ev[1:]
    assert (t1.price, t1.qty, t1.leaves, t1.other_id, t1.other_leaves) == (
        Decimal("189.49"), Decimal(50), Decimal(70), 2, Decimal(0))
    assert (t2.price, t2.qty, t2.leaves, t2.other_id, t2.other_leaves) == (
        Decimal("189.50"), Decimal(70), Decimal(0), 1, Decimal(30))
    assert str(t1.price) == "189.49" and t1.side == "BUY" and t1.symbol == "AAPL"

    assert market.best_ask("AAPL") == (Decimal("189.50"), Decimal(30))
    assert market.best_bid("AAPL") is None
    o = market.order(1)
    assert isinstance(o, OrderView)
    assert (o.status, o.filled, o.leaves, o.price, o.side) == (
        "PARTIALLY_FILLED", Decimal(70), Decimal(30), Decimal("189.50"), "SELL")
    assert market.order(3).status == "FILLED"


def test_fill_prices_in_decimals_across_asset_classes(market):
    cases = [  # symbol, maker price, taker price, qty, expected fill price
        ("ES", "4500.25", "4500.75", "2", "4500.25"),
        ("EURUSD", "1.08345", "1.08350", "250000", "1.08345"),
        ("UST-10Y", "99.96875", "100", "1000000", "99.96875"),
        ("BTC-USD", "65000.01", "65000.01", "0.1234", "65000.01"),
    ]
    for symbol, maker, taker, qty, fill in cases:
        market.sell(symbol, qty, maker)
        ev = market.buy(symbol, qty, taker)
        trades = [e for e in ev if e.type == "TRADE"]
        assert len(trades) == 1, (symbol, ev)
        assert trades[0].price == Decimal(fill) and trades[0].qty == Decimal(qty)
        assert str(trades[0].price) == str(market.instruments[symbol].ticks_to_price(
            market.instruments[symbol].price_to_ticks(fill)))


def test_fractional_crypto_lots_leave_exact_remainders(market):
    market.sell("BTC-USD", "0.5", "65000.00", order_id=10)
    ev = market.buy("BTC-USD", "0.1234", "65000.00", order_id=11)
    trade = ev[-1]
    assert trade.type == "TRADE" and trade.qty == Decimal("0.1234")
    assert trade.other_leaves == Decimal("0.3766") and str(trade.other_leaves) == "0.3766"
    assert market.order(10).leaves == Decimal("0.3766")


def test_market_order_trades_then_cancels_the_remainder(market):
    market.sell("ES", 1, "4500.00")
    ev = market.buy("ES", 3)
    assert types(ev) == ["ACCEPTED", "TRADE", "CANCELLED"]
    assert ev[1].price == Decimal("4500.00")
    assert ev[2].reason == "MARKET_REMAINDER" and ev[2].qty == Decimal(2)


def test_ioc_and_post_only(market):
    market.sell("SPY", 10, "500.00")
    ev = market.buy("SPY", 15, "500.00", tif="ioc")
    assert types(ev) == ["ACCEPTED", "TRADE", "CANCELLED"] and ev[2].reason == "IOC_REMAINDER"
    market.sell("SPY", 10, "501.00")
    ev = market.buy("SPY", 1, "501.00", post_only=True)
    assert types(ev) == ["REJECTED"] and ev[0].reason == "BOOK_POST_ONLY_WOULD_TAKE"
    with pytest.raises(ValueError, match="tif"):
        market.buy("SPY", 1, "1", tif="day")


def test_cancel_and_replace_in_decimals(market):
    market.buy("AAPL", 100, "189.00", order_id=7, account=4)
    ev = market.replace(7, "189.10", 150, account=4)
    assert types(ev) == ["REPLACED"]
    assert (ev[0].price, ev[0].qty, ev[0].leaves, ev[0].symbol) == (
        Decimal("189.10"), Decimal(150), Decimal(150), "AAPL")
    ev = market.replace(7, "189.105", 150, account=4)  # off grid: refused, order unchanged
    assert types(ev) == ["REJECTED"] and ev[0].reason == "EDGE_PRICE_OFF_GRID"
    assert ev[0].cmd == "REPLACE" and market.order(7).price == Decimal("189.10")
    ev = market.replace(7, "189.20", 150, account=5)  # another account: as if it did not exist
    assert ev[0].reason == "BOOK_UNKNOWN_ORDER" and ev[0].symbol is None and ev[0].side is None
    ev = market.replace(7, "0", 150, account=4)  # reaches the core, which refuses it
    assert ev[0].reason == "BOOK_INVALID_PRICE" and ev[0].symbol == "AAPL"
    assert ev[0].price == Decimal("0.00") and ev[0].seq > 0
    ev = market.cancel(7, account=4)
    assert types(ev) == ["CANCELLED"] and ev[0].reason == "USER" and ev[0].qty == Decimal(150)
    ev = market.cancel(7, account=4)
    assert types(ev) == ["REJECTED"] and ev[0].reason == "BOOK_UNKNOWN_ORDER"


def test_instrument_limits_reach_the_core(market):
    ev = market.buy("AAPL", 1_000_001, "1.00")
    assert ev[0].reason == "BOOK_QUANTITY_ABOVE_MAX"
    ev = market.buy("XS-CORP-2034", 1000, "101.000")
    assert ev[0].reason == "BOOK_QUANTITY_BELOW_MIN"


# -- refused at the edge -----------------------------------------------------------------------

def test_off_grid_price_is_rejected_and_the_book_unchanged(market):
    market.sell("AAPL", 100, "189.50")
    market.buy("AAPL", 100, "189.40")
    before = (market.book("AAPL"), market.core.state_digest(), market.core.open_orders)
    ev = market.buy("AAPL", 100, "189.505", order_id=50)
    assert len(ev) == 1
    e = ev[0]
    assert (e.type, e.reason, e.order_id, e.symbol, e.side, e.cmd) == (
        "REJECTED", "EDGE_PRICE_OFF_GRID", 50, "AAPL", "BUY", "NEW")
    assert e.price == Decimal("189.505") and e.qty == Decimal(100) and e.leaves == Decimal(0)
    assert e.seq == 0 and "tick size 0.01" in e.text
    assert (market.book("AAPL"), market.core.state_digest(), market.core.open_orders) == before
    assert market.order(50) is None  # the core never saw it


@pytest.mark.parametrize("symbol,qty,price,reason", [
    ("AAPL", 100, "189.505", "EDGE_PRICE_OFF_GRID"),
    ("ES", 1, "4500.10", "EDGE_PRICE_OFF_GRID"),
    ("UST-10Y", "1000", "99.515625", "EDGE_PRICE_OFF_GRID"),
    ("EURUSD", "1500", "1.08345", "EDGE_QUANTITY_OFF_GRID"),
    ("BTC-USD", "0.00015", "65000.00", "EDGE_QUANTITY_OFF_GRID"),
    ("AAPL", 100, 189.5, "EDGE_BAD_VALUE"),
    ("AAPL", 100.0, "189.50", "EDGE_BAD_VALUE"),
    ("AAPL", 100, "NaN", "EDGE_BAD_VALUE"),
    ("AAPL", "1E+30", "189.50", "EDGE_BAD_VALUE"),
    ("AAPL", 100, "cheap", "EDGE_BAD_VALUE"),
    ("NOPE", 100, "1.00", "EDGE_UNKNOWN_SYMBOL"),
])
def test_edge_refusals_never_reach_the_core(symbol, qty, price, reason):
    stub = StubCore()
    market = Market(EXAMPLE, core_factory=lambda: stub)
    ev = market.buy(symbol, qty, price)
    assert len(ev) == 1 and ev[0].type == "REJECTED" and ev[0].reason == reason
    assert ev[0].text and ev[0].order_id == 1
    assert stub.calls == []


def test_edge_refusal_of_a_replace_never_reaches_the_core():
    stub = StubCore()
    market = Market(EXAMPLE, core_factory=lambda: stub)
    ev = market.replace(1, "1.00", 1)
    assert ev[0].reason == "BOOK_UNKNOWN_ORDER" and ev[0].cmd == "REPLACE"
    assert stub.calls == []


def test_instruments_are_registered_with_their_lot_limits():
    stub = StubCore()
    market = Market(EXAMPLE, core_factory=lambda: stub)
    assert [r[0] for r in stub.registered] == market.instruments.ids
    assert (5, 1, 100_000) in stub.registered  # EURUSD: 1000 .. 100,000,000 in lots of 1000


def test_edge_reject_looks_like_a_core_reject(market):
    core_reject = market.buy("AAPL", 0, "189.50", order_id=60)[0]  # the core refuses qty 0
    edge_reject = market.buy("AAPL", 1, "189.505", order_id=61)[0]
    assert core_reject.reason == "BOOK_INVALID_QUANTITY" and core_reject.seq > 0
    assert type(core_reject) is type(edge_reject) is Event
    for field in ("type", "symbol", "side", "account", "instrument", "cmd", "leaves"):
        assert getattr(core_reject, field) == getattr(edge_reject, field), field


# -- ids, construction, decoding ---------------------------------------------------------------

def test_order_ids_auto_assign(market):
    assert market.buy("AAPL", 1, "1.00")[0].order_id == 1
    assert market.buy("AAPL", 1, "1.00")[0].order_id == 2
    assert market.buy("AAPL", 1, "1.00", order_id=100)[0].order_id == 100
    assert market.buy("AAPL", 1, "1.00")[0].order_id == 101
    assert market.buy("NOPE", 1, "1.00")[0].order_id == 102  # edge rejects use an id too
    assert market.buy("AAPL", 1, "1.00")[0].order_id == 103


def test_symbol_or_side_given_as_enum_or_id(market):
    ev = market.submit(1, Side.SELL, 5, "10.00")
    assert ev[0].symbol == "AAPL" and ev[0].side == "SELL"
    with pytest.raises(ValueError, match="side"):
        market.submit("AAPL", "short", 5, "10.00")


def test_construction_from_a_set_a_config_or_the_default(make_core):
    for source in (InstrumentSet.load(EXAMPLE), load_config(EXAMPLE), str(EXAMPLE), EXAMPLE):
        m = Market(source, core_factory=make_core)
        assert m.instruments.digest() == InstrumentSet.load(EXAMPLE).digest()
        assert m.core.instruments() == m.instruments.ids
    m = Market(core_factory=make_core)
    assert m.instruments == InstrumentSet.default()
    with pytest.raises(TypeError):
        Market(42, core_factory=make_core)  # type: ignore[arg-type]


def test_clock_stamps_events(make_core):
    m = Market(EXAMPLE, core_factory=make_core, clock=lambda: 1_700_000_000_000_000_000)
    ev = m.buy("AAPL", 1, "1.00")
    assert ev[0].ts_ns == 1_700_000_000_000_000_000 and ev[0].seq == 1


def test_decode_events_matches_the_core_array(market):
    core, iset = market.core, market.instruments
    aapl = iset["AAPL"]
    core.submit(900, aapl.id, int(Side.SELL), aapl.price_to_ticks("189.50"), 10)
    core.submit(901, aapl.id, int(Side.BUY), aapl.price_to_ticks("189.50"), 4)
    events = decode_events(core.drain_events(), iset)
    assert types(events) == ["ACCEPTED", "ACCEPTED", "TRADE"]
    assert events[2].price == Decimal("189.50") and events[2].other_leaves == Decimal(6)
    assert decode_events(np.zeros(0, dtype=EVENT_DTYPE), iset) == []
    with pytest.raises(ValueError):
        decode_events(np.zeros(1, dtype="<i8"), iset)


def test_book_of_unknown_symbol_raises(market):
    with pytest.raises(KeyError):
        market.book("NOPE")


def test_default_core_is_the_compiled_one():
    core = load_core_class()
    m = Market(EXAMPLE)
    assert isinstance(m.core, core)
    ev = m.buy("AAPL", 10, "189.50")
    assert types(ev) == ["ACCEPTED"] and m.book("AAPL").bids[0].price == Decimal("189.50")
