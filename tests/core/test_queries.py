"""Queries (best_bid/best_ask, depth, level_orders, order, open_orders), finished-order history,
instruments and multi-instrument isolation, state_digest and check_integrity."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engine.reference import ReferenceCore
from engine.schema import INT64_MAX, CancelCause, Flags, OrderStatus, OrdType, Reason, Side
from engine.schema import TimeInForce
from tests.conftest import accepted, cancelled, ev, trade

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrdType.LIMIT, OrdType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
POST_ONLY = Flags.POST_ONLY


def order_dict(order_id, price, qty, filled, leaves, status, *, instrument=1, account=0,
               side=BUY, ord_type=LIMIT, tif=GTC, flags=0):
    return dict(order_id=order_id, instrument=instrument, account=account, side=side,
                ord_type=ord_type, tif=tif, flags=flags, price=price, qty=qty, filled=filled,
                leaves=leaves, status=status, venue=0)


# -- instruments ------------------------------------------------------------------------------

def test_instruments_are_listed_in_ascending_order(make_core):
    core = make_core(7, 0, 2 ** 32 - 1, 3)
    assert core.instruments() == [0, 3, 7, 2 ** 32 - 1]
    assert make_core().instruments() == []


@pytest.mark.parametrize("args", [(5,), (-1,), (2 ** 32,), (6, 0), (6, -1), (6, 5, 4),
                                  (6, 1, INT64_MAX + 1)],
                         ids=["duplicate", "negative id", "id above u32", "min_qty 0",
                              "min_qty negative", "max below min", "max above int64"])
def test_add_instrument_refuses_bad_arguments(make_core, args):
    core = make_core(5)
    with pytest.raises(ValueError):
        core.add_instrument(*args)
    assert core.instruments() == [5]


def test_add_instrument_accepts_min_equal_to_max(make_core):
    core = make_core((1, 3, 3))
    core.submit(1, 1, BUY, 100, 3)
    core.submit(2, 1, BUY, 100, 4)
    assert [e.type for e in ev(core.drain_events())] == [1, 2]


@pytest.mark.parametrize("query", [
    lambda c: c.best_bid(9), lambda c: c.best_ask(9), lambda c: c.depth(9),
    lambda c: c.level_orders(9, BUY, 100), lambda c: c.best_bid(-1),
    lambda c: c.best_bid(2 ** 40)],
    ids=["best_bid", "best_ask", "depth", "level_orders", "negative id", "huge id"])
def test_queries_on_an_unknown_instrument_raise_key_error(make_core, query):
    core = make_core(1)
    with pytest.raises(KeyError):
        query(core)


# -- best_bid / best_ask / depth / level_orders -----------------------------------------------

def test_best_bid_and_ask_are_none_on_an_empty_book(make_core):
    core = make_core(1)
    assert core.best_bid(1) is None
    assert core.best_ask(1) is None
    assert core.depth(1) == ([], [])


def test_best_levels_report_price_and_total_open_quantity(make_core):
    core = make_core(1)
    for oid, side, price, qty in [(1, BUY, 99, 2), (2, BUY, 99, 3), (3, BUY, 98, 7),
                                  (4, SELL, 101, 1), (5, SELL, 102, 4), (6, SELL, 101, 6)]:
        core.submit(oid, 1, side, price, qty)
    core.submit(7, 1, SELL, 99, 1)  # takes 1 from order 1
    assert core.best_bid(1) == (99, 4)
    assert core.best_ask(1) == (101, 7)


def test_depth_lists_levels_best_first_with_totals_and_counts_up_to_n(make_core):
    core = make_core(1)
    oid = 0
    for price in (95, 96, 97, 98, 99):
        for _ in range(price - 94):
            oid += 1
            core.submit(oid, 1, BUY, price, 2)
    for price in (105, 103, 101):
        oid += 1
        core.submit(oid, 1, SELL, price, price - 100)
    bids, asks = core.depth(1)
    assert bids == [(99, 10, 5), (98, 8, 4), (97, 6, 3), (96, 4, 2), (95, 2, 1)]
    assert asks == [(101, 1, 1), (103, 3, 1), (105, 5, 1)]
    assert core.depth(1, 2) == ([(99, 10, 5), (98, 8, 4)], [(101, 1, 1), (103, 3, 1)])
    assert core.depth(1, 0) == ([], [])
    assert core.depth(1, 100) == (bids, asks)
    with pytest.raises(ValueError):
        core.depth(1, -1)


def test_depth_default_is_ten_levels(make_core):
    core = make_core(1)
    for i in range(1, 13):
        core.submit(i, 1, SELL, 100 + i, 1)
    assert [level[0] for level in core.depth(1)[1]] == list(range(101, 111))


def test_level_orders_lists_order_ids_and_open_quantity_in_queue_order(make_core):
    core = make_core(1)
    core.submit(1, 1, SELL, 100, 5)
    core.submit(2, 1, SELL, 100, 3)
    core.submit(3, 1, SELL, 100, 4)
    core.submit(4, 1, BUY, 100, 6)
    assert core.level_orders(1, SELL, 100) == [(2, 2), (3, 4)]
    assert core.level_orders(1, SELL, 101) == []
    assert core.level_orders(1, BUY, 100) == []
    with pytest.raises(ValueError):
        core.level_orders(1, 3, 100)


# -- order() and history ----------------------------------------------------------------------

def test_order_reports_every_state_of_an_order(make_core):
    core = make_core(1)
    core.submit(1, 1, SELL, 100, 10, account=4)
    assert core.order(1) == order_dict(1, 100, 10, 0, 10, OrderStatus.NEW, account=4, side=SELL)
    core.submit(2, 1, BUY, 100, 3, account=5)
    assert core.order(1) == order_dict(1, 100, 10, 3, 7, OrderStatus.PARTIALLY_FILLED,
                                       account=4, side=SELL)
    assert core.order(2) == order_dict(2, 100, 3, 3, 0, OrderStatus.FILLED, account=5)
    core.submit(3, 1, BUY, 100, 7, account=5)
    assert core.order(1) == order_dict(1, 100, 10, 10, 0, OrderStatus.FILLED, account=4,
                                       side=SELL)
    core.submit(4, 1, BUY, 90, 5, account=5, flags=POST_ONLY)
    core.cancel(4, account=5)
    assert core.order(4) == order_dict(4, 90, 5, 0, 0, OrderStatus.CANCELLED, account=5,
                                       flags=POST_ONLY)
    core.submit(5, 1, BUY, 0, 5, account=5, ord_type=MARKET, tif=IOC)
    assert core.order(5) == order_dict(5, 0, 5, 0, 0, OrderStatus.CANCELLED, account=5,
                                       ord_type=MARKET, tif=IOC)
    core.submit(6, 1, 7, 100, 5, account=5, ord_type=MARKET, tif=FOK)
    assert core.order(6) == order_dict(6, 100, 5, 0, 0, OrderStatus.REJECTED, account=5, side=7,
                                       ord_type=MARKET, tif=FOK)
    assert core.order(7) is None


def test_order_of_a_live_order_shows_the_replaced_price_and_total(make_core):
    core = make_core(1)
    core.submit(1, 1, BUY, 100, 10)
    core.submit(2, 1, SELL, 100, 4)
    core.replace(1, 99, 12)
    assert core.order(1) == order_dict(1, 99, 12, 4, 8, OrderStatus.PARTIALLY_FILLED)


def test_a_finished_id_reused_reports_the_live_order_then_its_latest_finish(make_core):
    core = make_core(1)
    core.submit(1, 1, BUY, 100, 5)
    core.cancel(1)
    core.submit(1, 1, SELL, 200, 2)
    assert core.order(1) == order_dict(1, 200, 2, 0, 2, OrderStatus.NEW, side=SELL)
    core.submit(2, 1, BUY, 200, 2)
    assert core.order(1) == order_dict(1, 200, 2, 2, 0, OrderStatus.FILLED, side=SELL)


def test_history_keeps_only_the_last_n_finished_orders(make_core):
    core = make_core(1, history=3)
    for oid in range(1, 6):
        core.submit(oid, 1, BUY, 100, 1, tif=IOC)  # each finishes at once (cancelled)
    assert [core.order(oid) is not None for oid in range(1, 6)] == [False, False, True, True, True]
    assert core.order(3)["status"] == OrderStatus.CANCELLED


def test_history_never_evicts_live_orders(make_core):
    core = make_core(1, history=1)
    core.submit(1, 1, BUY, 90, 1)
    for oid in range(2, 6):
        core.submit(oid, 1, BUY, 100, 1, tif=IOC)
    assert core.order(1)["status"] == OrderStatus.NEW
    assert core.order(4) is None
    assert core.order(5)["status"] == OrderStatus.CANCELLED


def test_history_records_filled_makers_in_trade_order_before_the_taker(make_core):
    core = make_core(1, history=2)
    core.submit(1, 1, SELL, 100, 1)
    core.submit(2, 1, SELL, 101, 1)
    core.submit(3, 1, SELL, 102, 1)
    core.submit(4, 1, BUY, 102, 3)  # finishes 1, 2, 3, then 4
    assert [core.order(oid) is not None for oid in (1, 2, 3, 4)] == [False, False, True, True]


def test_a_rejected_new_takes_a_history_slot(make_core):
    core = make_core(1, history=2)
    core.submit(1, 1, BUY, 100, 1, tif=IOC)
    core.submit(2, 1, BUY, 0, 1)  # rejected: price
    core.submit(3, 1, BUY, 100, 0)  # rejected: quantity
    assert core.order(1) is None
    assert core.order(2)["status"] == OrderStatus.REJECTED
    assert core.order(3)["status"] == OrderStatus.REJECTED


def test_with_history_zero_nothing_finished_is_remembered(make_core):
    core = make_core(1, history=0)
    core.submit(1, 1, BUY, 100, 1, tif=IOC)
    core.submit(2, 1, BUY, 0, 1)
    core.submit(3, 1, BUY, 100, 1)
    assert core.order(1) is None
    assert core.order(2) is None
    assert core.order(3)["status"] == OrderStatus.NEW


def test_history_size_must_not_be_negative(make_core):
    with pytest.raises(ValueError):
        make_core(history=-1)


def test_open_orders_counts_resting_orders_across_instruments(make_core):
    core = make_core(1, 2)
    assert core.open_orders == 0
    core.submit(1, 1, BUY, 100, 1)
    core.submit(2, 2, BUY, 100, 1)
    core.submit(3, 2, SELL, 101, 1)
    assert core.open_orders == 3
    core.submit(4, 2, BUY, 101, 1)
    core.cancel(1)
    assert core.open_orders == 1


# -- multi-instrument isolation ---------------------------------------------------------------

def test_instruments_have_separate_books(make_core):
    core = make_core(1, 2)
    core.submit(1, 1, SELL, 100, 5)
    core.submit(2, 2, BUY, 100, 5)  # same price, other instrument: no trade
    core.submit(3, 2, BUY, 0, 1, ord_type=MARKET)
    assert ev(core.drain_events()) == [
        accepted(1, 100, 5), accepted(2, 100, 5), accepted(3, 0, 1),
        cancelled(3, 0, 1, CancelCause.MARKET_REMAINDER)]
    assert core.depth(1) == ([], [(100, 5, 1)])
    assert core.depth(2) == ([(100, 5, 1)], [])
    core.submit(4, 1, BUY, 100, 2)
    assert ev(core.drain_events()) == [accepted(4, 100, 2), trade(4, 1, 100, 2, 0, 3)]
    assert core.depth(2) == ([(100, 5, 1)], [])


def test_order_ids_are_unique_across_instruments_and_cancel_needs_no_instrument(make_core):
    core = make_core(1, 2)
    core.submit(1, 2, BUY, 100, 5)
    core.submit(1, 1, BUY, 100, 5)
    assert ev(core.drain_events()) == [
        accepted(1, 100, 5), (2, 1, 0, 100, 5, 0, 0, Reason.BOOK_DUPLICATE_ORDER_ID)]
    core.cancel(1)
    assert ev(core.drain_events()) == [cancelled(1, 100, 5, CancelCause.USER)]
    assert core.depth(2) == ([], [])


def test_instrument_limits_are_per_instrument(make_core):
    core = make_core((1, 1, 5), (2, 10, 20))
    core.submit(1, 1, BUY, 100, 5)
    core.submit(2, 2, BUY, 100, 5)
    core.submit(3, 2, BUY, 100, 10)
    core.submit(4, 1, BUY, 100, 10)
    assert [e.reason for e in ev(core.drain_events())] == [
        0, Reason.BOOK_QUANTITY_BELOW_MIN, 0, Reason.BOOK_QUANTITY_ABOVE_MAX]


# -- state_digest -----------------------------------------------------------------------------

def test_state_digest_follows_the_documented_layout(make_core):
    core = make_core(3, 1, 2)
    core.submit(10, 1, BUY, 99, 5, account=7)
    core.submit(11, 1, BUY, 99, 4, account=8, flags=POST_ONLY)
    core.submit(12, 1, BUY, 98, 3, account=7)
    core.submit(13, 1, SELL, 101, 6, account=9)
    core.submit(14, 1, SELL, 102, 1, account=9)
    core.submit(15, 1, SELL, 99, 2, account=1)  # fills 2 of order 10
    core.submit(16, 3, SELL, 50, 1, account=2)
    core.halt(2)
    core.set_limits(3, 2, 9)  # the resting order 16 (qty 1) stays as it is
    values = [
        1, 0, 1, 1, INT64_MAX, 2, 2,
        99, 2, 10, 7, 5, 2, 0, 11, 8, 4, 0, int(POST_ONLY),
        98, 1, 12, 7, 3, 0, 0,
        101, 1, 13, 9, 6, 0, 0,
        102, 1, 14, 9, 1, 0, 0,
        2, 0, 2, 1, INT64_MAX, 0, 0,
        3, 0, 1, 2, 9, 0, 1,
        50, 1, 16, 2, 1, 0, 0,
        0, 0,  # no child ever created, no live parent (docs/ROUTING.md, "State digest")
    ]
    expected = hashlib.blake2b(np.array(values, dtype="<i8").tobytes(), digest_size=32)
    assert core.state_digest() == expected.hexdigest()


def test_state_digest_of_no_instruments_is_the_digest_of_two_zero_counts(make_core):
    # no book; then the router's counts: children ever created, live parents
    expected = hashlib.blake2b(np.zeros(2, "<i8").tobytes(), digest_size=32).hexdigest()
    assert make_core().state_digest() == expected


def test_state_digest_sees_queue_order_and_ignores_history(make_core):
    a, b = make_core(1), make_core(1)
    a.submit(1, 1, BUY, 100, 1)
    a.submit(2, 1, BUY, 100, 1)
    b.submit(2, 1, BUY, 100, 1)
    b.submit(1, 1, BUY, 100, 1)
    assert a.state_digest() != b.state_digest()
    b.cancel(2)
    b.submit(2, 1, BUY, 100, 1)
    b.submit(3, 1, BUY, 0, 1)  # rejected, recorded in history only
    b.submit(4, 1, BUY, 90, 1, tif=IOC)  # finished, recorded in history only
    assert a.state_digest() == b.state_digest()


# -- check_integrity --------------------------------------------------------------------------

def test_check_integrity_passes_on_a_busy_book(make_core):
    core = make_core(1, 2, checked=False)
    for i in range(1, 200):
        core.submit(i, 1 + i % 2, BUY if i % 3 else SELL, 95 + i % 11, 1 + i % 4)
        if i % 7 == 0:
            core.cancel(i - 3)
        if i % 5 == 0:
            core.replace(i - 1, 96 + i % 9, 2 + i % 5)
    core.check_integrity()
    assert core.open_orders > 0


@pytest.mark.parametrize("corrupt, message", [
    (lambda book: setattr(book.bids.peekitem(-1)[1], "total", 99), "total"),
    (lambda book: book.asks.peekitem(0)[1].orders.clear(), "empty level"),
    (lambda book: setattr(book.asks.peekitem(0)[1].orders[0], "price", 1), "wrong level"),
])
def test_reference_check_integrity_catches_a_corrupted_book(corrupt, message):
    core = ReferenceCore()
    core.add_instrument(1)
    core.submit(1, 1, BUY, 100, 5)
    core.submit(2, 1, SELL, 101, 5)
    core.check_integrity()
    corrupt(core._books[1])
    with pytest.raises(AssertionError, match=message):
        core.check_integrity()


def test_reference_check_integrity_catches_a_crossed_book_and_a_stale_index():
    core = ReferenceCore()
    core.add_instrument(1)
    core.submit(1, 1, BUY, 100, 5)
    core.submit(2, 1, SELL, 101, 5)
    bid = core._books[1].bids.pop(100)
    bid.price = 102
    bid.orders[0].price = 102
    core._books[1].bids[102] = bid
    with pytest.raises(AssertionError, match="crossed"):
        core.check_integrity()
    core = ReferenceCore()
    core.add_instrument(1)
    core.submit(1, 1, BUY, 100, 5)
    del core._live[1]
    with pytest.raises(AssertionError, match="index"):
        core.check_integrity()
