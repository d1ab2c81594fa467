"""docs/RULES.md, rule by rule: matching, instructions, CANCEL and REPLACE, with exact events.

Every test runs against the reference model and the compiled core (``make_core``), and every
command is followed by ``check_integrity()`` (the ``Checked`` wrapper).
"""
from __future__ import annotations

from engine.schema import CancelCause, CommandType, EventType, Flags, OrdType, OrderStatus
from engine.schema import Reason, Side, TimeInForce
from tests.conftest import (
    accepted,
    cancelled,
    commands,
    ev,
    raw_cmd,
    records,
    rejected,
    replaced,
    trade,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrdType.LIMIT, OrdType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
POST_ONLY = Flags.POST_ONLY
INSTR = 7


def rest(core, *orders, account=0):
    """Submit GTC limit orders ``(order_id, side, price, qty)`` that must rest untouched."""
    for order_id, side, price, qty in orders:
        core.submit(order_id, INSTR, side, price, qty, account=account)
        assert ev(core.drain_events()) == [accepted(order_id, price, qty)]


def drained(core):
    return ev(core.drain_events())


# -- resting and matching ---------------------------------------------------------------------

def test_limit_order_with_nothing_to_match_rests_with_only_an_accepted_event(make_core):
    core = make_core(INSTR)
    assert core.submit(1, INSTR, BUY, 100, 5) == 1
    assert drained(core) == [accepted(1, 100, 5)]
    assert core.best_bid(INSTR) == (100, 5)
    assert core.best_ask(INSTR) is None
    assert core.level_orders(INSTR, BUY, 100) == [(1, 5)]
    assert core.open_orders == 1


def test_gtc_order_rests_at_the_back_of_an_existing_level(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 5), (2, BUY, 100, 3), (3, BUY, 100, 1))
    assert core.level_orders(INSTR, BUY, 100) == [(1, 5), (2, 3), (3, 1)]
    assert core.best_bid(INSTR) == (100, 9)


def test_fifo_at_a_level_the_oldest_order_trades_first(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 5), (2, SELL, 100, 5), (3, SELL, 100, 5))
    assert core.submit(4, INSTR, BUY, 100, 7) == 3
    assert drained(core) == [
        accepted(4, 100, 7),
        trade(4, 1, 100, 5, 2, 0),
        trade(4, 2, 100, 2, 0, 3),
    ]
    assert core.level_orders(INSTR, SELL, 100) == [(2, 3), (3, 5)]
    assert core.best_ask(INSTR) == (100, 8)
    assert core.best_bid(INSTR) is None


def test_price_before_time_the_better_price_trades_first_even_if_younger(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 101, 5), (2, SELL, 100, 5))
    core.submit(3, INSTR, BUY, 101, 2)
    assert drained(core) == [accepted(3, 101, 2), trade(3, 2, 100, 2, 0, 3)]
    rest(core, (4, BUY, 90, 5), (5, BUY, 95, 5))
    core.submit(6, INSTR, SELL, 90, 2)
    assert drained(core) == [accepted(6, 90, 2), trade(6, 5, 95, 2, 0, 3)]


def test_trade_price_is_the_makers_price(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 5))
    core.submit(2, INSTR, BUY, 105, 5)
    assert drained(core) == [accepted(2, 105, 5), trade(2, 1, 100, 5, 0, 0)]
    rest(core, (3, BUY, 100, 5))
    core.submit(4, INSTR, SELL, 95, 5)
    assert drained(core) == [accepted(4, 95, 5), trade(4, 3, 100, 5, 0, 0)]


def test_buy_walks_ask_levels_from_lowest_up_to_its_limit_and_rests_the_rest(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 2), (2, SELL, 101, 3), (3, SELL, 102, 4))
    assert core.submit(4, INSTR, BUY, 101, 10) == 3
    assert drained(core) == [
        accepted(4, 101, 10),
        trade(4, 1, 100, 2, 8, 0),
        trade(4, 2, 101, 3, 5, 0),
    ]
    assert core.depth(INSTR) == ([(101, 5, 1)], [(102, 4, 1)])
    assert core.level_orders(INSTR, BUY, 101) == [(4, 5)]


def test_sell_walks_bid_levels_from_highest_down_to_its_limit(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 2), (2, BUY, 99, 3), (3, BUY, 99, 1), (4, BUY, 98, 4))
    core.submit(5, INSTR, SELL, 99, 10)
    assert drained(core) == [
        accepted(5, 99, 10),
        trade(5, 1, 100, 2, 8, 0),
        trade(5, 2, 99, 3, 5, 0),
        trade(5, 3, 99, 1, 4, 0),
    ]
    assert core.depth(INSTR) == ([(98, 4, 1)], [(99, 4, 1)])


def test_partial_fill_keeps_the_makers_place_in_the_queue(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 5), (2, SELL, 100, 5))
    core.submit(3, INSTR, BUY, 100, 2)
    assert drained(core) == [accepted(3, 100, 2), trade(3, 1, 100, 2, 0, 3)]
    assert core.level_orders(INSTR, SELL, 100) == [(1, 3), (2, 5)]
    core.submit(4, INSTR, BUY, 100, 4)
    assert drained(core) == [
        accepted(4, 100, 4),
        trade(4, 1, 100, 3, 1, 0),
        trade(4, 2, 100, 1, 0, 4),
    ]
    assert core.level_orders(INSTR, SELL, 100) == [(2, 4)]


def test_filled_makers_leave_the_book_and_emptied_levels_are_removed(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 1), (2, SELL, 101, 1), (3, SELL, 102, 1))
    core.submit(4, INSTR, BUY, 101, 2)
    drained(core)
    assert core.depth(INSTR) == ([], [(102, 1, 1)])
    assert core.level_orders(INSTR, SELL, 100) == []
    assert core.level_orders(INSTR, SELL, 101) == []
    assert core.open_orders == 1
    assert core.order(1)["status"] == OrderStatus.FILLED
    assert core.order(4)["status"] == OrderStatus.FILLED


def test_an_order_may_trade_with_an_order_of_the_same_account(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 5), account=9)
    core.submit(2, INSTR, BUY, 100, 5, account=9)
    assert drained(core) == [accepted(2, 100, 5), trade(2, 1, 100, 5, 0, 0)]


def test_trade_event_describes_the_taker_and_the_maker_as_other(make_core):
    core = make_core(INSTR)
    core.submit(1, INSTR, SELL, 100, 5, account=11, seq=1, ts_ns=10)
    core.drain_events()
    core.submit(2, INSTR, BUY, 101, 3, account=22, seq=2, ts_ns=20)
    assert records(core.drain_events()) == [
        dict(seq=2, ts_ns=20, order_id=2, other_id=0, price=101, qty=3, leaves=3, other_leaves=0,
             instrument=INSTR, account=22, other_account=0, reason=0,
             type=EventType.ACCEPTED, side=BUY, cmd=CommandType.NEW),
        dict(seq=2, ts_ns=20, order_id=2, other_id=1, price=100, qty=3, leaves=0, other_leaves=2,
             instrument=INSTR, account=22, other_account=11, reason=0,
             type=EventType.TRADE, side=BUY, cmd=CommandType.NEW),
    ]


# -- MARKET -----------------------------------------------------------------------------------

def test_market_order_filled_completely_has_no_remainder_event(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 2), (2, SELL, 105, 3))
    assert core.submit(3, INSTR, BUY, 0, 5, ord_type=MARKET) == 3
    assert drained(core) == [
        accepted(3, 0, 5),
        trade(3, 1, 100, 2, 3, 0),
        trade(3, 2, 105, 3, 0, 0),
    ]
    assert core.order(3)["status"] == OrderStatus.FILLED
    assert core.order(3)["price"] == 0
    assert core.open_orders == 0


def test_market_order_remainder_is_cancelled_with_price_zero(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 2), (2, BUY, 90, 1))
    core.submit(3, INSTR, SELL, 0, 5, ord_type=MARKET)
    assert drained(core) == [
        accepted(3, 0, 5),
        trade(3, 1, 100, 2, 3, 0),
        trade(3, 2, 90, 1, 2, 0),
        cancelled(3, 0, 2, CancelCause.MARKET_REMAINDER),
    ]
    assert core.depth(INSTR) == ([], [])
    assert core.order(3) == dict(order_id=3, instrument=INSTR, account=0, side=SELL,
                                 ord_type=MARKET, tif=GTC, flags=0, price=0, qty=5, filled=3,
                                 leaves=0, status=OrderStatus.CANCELLED, venue=0)


def test_market_order_without_liquidity_is_cancelled_entirely(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 2))
    core.submit(2, INSTR, BUY, 0, 5, ord_type=MARKET)
    assert drained(core) == [accepted(2, 0, 5), cancelled(2, 0, 5, CancelCause.MARKET_REMAINDER)]
    assert core.depth(INSTR) == ([(100, 2, 1)], [])


def test_market_order_ignores_its_price_field_even_if_not_positive(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 2))
    core.submit(2, INSTR, BUY, -7, 1, ord_type=MARKET)
    assert drained(core) == [accepted(2, 0, 1), trade(2, 1, 100, 1, 0, 1)]
    core.submit(3, INSTR, BUY, 50, 1, ord_type=MARKET)  # a "limit" below the ask is ignored
    assert drained(core) == [accepted(3, 0, 1), trade(3, 1, 100, 1, 0, 0)]


def test_market_ioc_remainder_is_reported_as_market_remainder(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 1))
    core.submit(2, INSTR, BUY, 0, 3, ord_type=MARKET, tif=IOC)
    assert drained(core) == [
        accepted(2, 0, 3),
        trade(2, 1, 100, 1, 2, 0),
        cancelled(2, 0, 2, CancelCause.MARKET_REMAINDER),
    ]


# -- IOC --------------------------------------------------------------------------------------

def test_ioc_trades_what_it_can_then_cancels_the_remainder(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 2), (2, SELL, 102, 5))
    core.submit(3, INSTR, BUY, 101, 5, tif=IOC)
    assert drained(core) == [
        accepted(3, 101, 5),
        trade(3, 1, 100, 2, 3, 0),
        cancelled(3, 101, 3, CancelCause.IOC_REMAINDER),
    ]
    assert core.depth(INSTR) == ([], [(102, 5, 1)])
    assert core.order(3)["status"] == OrderStatus.CANCELLED
    assert core.order(3)["filled"] == 2


def test_ioc_filled_completely_has_no_remainder_event(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 5))
    core.submit(2, INSTR, BUY, 100, 5, tif=IOC)
    assert drained(core) == [accepted(2, 100, 5), trade(2, 1, 100, 5, 0, 0)]
    assert core.order(2)["status"] == OrderStatus.FILLED


def test_ioc_without_a_match_is_cancelled_and_never_rests(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 101, 5))
    core.submit(2, INSTR, BUY, 100, 5, tif=IOC)
    assert drained(core) == [accepted(2, 100, 5), cancelled(2, 100, 5, CancelCause.IOC_REMAINDER)]
    assert core.depth(INSTR) == ([], [(101, 5, 1)])
    assert core.open_orders == 1


# -- FOK --------------------------------------------------------------------------------------

def test_fok_fillable_across_levels_fills_completely(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 2), (2, SELL, 101, 2), (3, SELL, 101, 2))
    core.submit(4, INSTR, BUY, 101, 5, tif=FOK)
    assert drained(core) == [
        accepted(4, 101, 5),
        trade(4, 1, 100, 2, 3, 0),
        trade(4, 2, 101, 2, 1, 0),
        trade(4, 3, 101, 1, 0, 1),
    ]
    assert core.order(4)["status"] == OrderStatus.FILLED


def test_fok_with_exactly_enough_quantity_fills(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 3))
    core.submit(2, INSTR, SELL, 100, 3, tif=FOK)
    assert drained(core) == [accepted(2, 100, 3), trade(2, 1, 100, 3, 0, 0)]


def test_fok_unfillable_is_cancelled_and_leaves_the_book_untouched(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 2), (2, SELL, 101, 2))
    before = core.state_digest()
    core.submit(3, INSTR, BUY, 101, 5, tif=FOK)
    assert drained(core) == [accepted(3, 101, 5), cancelled(3, 101, 5, CancelCause.FOK_UNFILLABLE)]
    assert core.state_digest() == before
    assert core.level_orders(INSTR, SELL, 100) == [(1, 2)]
    assert core.order(3) == dict(order_id=3, instrument=INSTR, account=0, side=BUY,
                                 ord_type=LIMIT, tif=FOK, flags=0, price=101, qty=5, filled=0,
                                 leaves=0, status=OrderStatus.CANCELLED, venue=0)


def test_fok_counts_only_quantity_at_acceptable_prices(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 3), (2, BUY, 98, 10))
    before = core.state_digest()
    core.submit(3, INSTR, SELL, 99, 4, tif=FOK)
    assert drained(core) == [accepted(3, 99, 4), cancelled(3, 99, 4, CancelCause.FOK_UNFILLABLE)]
    assert core.state_digest() == before


def test_fok_market_counts_every_level(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 1), (2, SELL, 200, 1))
    before = core.state_digest()
    core.submit(3, INSTR, BUY, 0, 3, ord_type=MARKET, tif=FOK)
    assert drained(core) == [accepted(3, 0, 3), cancelled(3, 0, 3, CancelCause.FOK_UNFILLABLE)]
    assert core.state_digest() == before
    core.submit(4, INSTR, BUY, 0, 2, ord_type=MARKET, tif=FOK)
    assert drained(core) == [
        accepted(4, 0, 2),
        trade(4, 1, 100, 1, 1, 0),
        trade(4, 2, 200, 1, 0, 0),
    ]


def test_fok_on_an_empty_side_is_cancelled(make_core):
    core = make_core(INSTR)
    core.submit(1, INSTR, SELL, 100, 1, tif=FOK)
    assert drained(core) == [accepted(1, 100, 1), cancelled(1, 100, 1, CancelCause.FOK_UNFILLABLE)]
    assert core.open_orders == 0


# -- POST_ONLY --------------------------------------------------------------------------------

def test_post_only_that_does_not_cross_rests(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 101, 5), (2, BUY, 99, 5))
    core.submit(3, INSTR, BUY, 100, 5, flags=POST_ONLY)
    core.submit(4, INSTR, SELL, 101, 5, flags=POST_ONLY)  # joins the ask at 101
    assert drained(core) == [accepted(3, 100, 5), accepted(4, 101, 5)]
    assert core.level_orders(INSTR, BUY, 100) == [(3, 5)]
    assert core.level_orders(INSTR, SELL, 101) == [(1, 5), (4, 5)]
    assert core.order(3)["flags"] == POST_ONLY


def test_post_only_with_an_empty_opposite_side_rests(make_core):
    core = make_core(INSTR)
    core.submit(1, INSTR, BUY, 100, 5, flags=POST_ONLY)
    core.submit(2, INSTR, SELL, 101, 5, flags=POST_ONLY)
    assert drained(core) == [accepted(1, 100, 5), accepted(2, 101, 5)]


def test_post_only_buy_at_or_above_the_best_ask_is_rejected_and_changes_nothing(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 101, 5))
    before = core.state_digest()
    for order_id, price in ((2, 101), (3, 105)):
        assert core.submit(order_id, INSTR, BUY, price, 5, flags=POST_ONLY) == 1
        assert drained(core) == [rejected(order_id, price, 5, Reason.BOOK_POST_ONLY_WOULD_TAKE)]
        assert core.state_digest() == before


def test_post_only_sell_at_or_below_the_best_bid_is_rejected_and_changes_nothing(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 99, 5))
    before = core.state_digest()
    for order_id, price in ((2, 99), (3, 50)):
        core.submit(order_id, INSTR, SELL, price, 5, flags=POST_ONLY)
        assert drained(core) == [rejected(order_id, price, 5, Reason.BOOK_POST_ONLY_WOULD_TAKE)]
        assert core.state_digest() == before


# -- CANCEL -----------------------------------------------------------------------------------

def test_cancel_removes_the_order_and_reports_its_open_quantity(make_core):
    core = make_core(INSTR)
    core.submit(1, INSTR, SELL, 100, 5, account=3)
    core.submit(2, INSTR, SELL, 100, 4, account=3)
    core.drain_events()
    assert core.cancel(1, account=3, seq=9, ts_ns=99) == 1
    assert records(core.drain_events()) == [
        dict(seq=9, ts_ns=99, order_id=1, other_id=0, price=100, qty=5, leaves=0, other_leaves=0,
             instrument=INSTR, account=3, other_account=0, reason=CancelCause.USER,
             type=EventType.CANCELLED, side=SELL, cmd=CommandType.CANCEL),
    ]
    assert core.level_orders(INSTR, SELL, 100) == [(2, 4)]
    assert core.best_ask(INSTR) == (100, 4)
    assert core.order(1)["status"] == OrderStatus.CANCELLED


def test_cancel_of_a_partially_filled_order_cancels_only_the_open_quantity(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 10))
    core.submit(2, INSTR, SELL, 100, 4)
    drained(core)
    core.cancel(1)
    assert drained(core) == [cancelled(1, 100, 6, CancelCause.USER)]
    assert core.order(1) == dict(order_id=1, instrument=INSTR, account=0, side=BUY,
                                 ord_type=LIMIT, tif=GTC, flags=0, price=100, qty=10, filled=4,
                                 leaves=0, status=OrderStatus.CANCELLED, venue=0)


def test_cancel_of_the_last_order_removes_the_level(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 1), (2, BUY, 99, 1))
    core.cancel(1)
    drained(core)
    assert core.depth(INSTR) == ([(99, 1, 1)], [])
    assert core.best_bid(INSTR) == (99, 1)


def test_cancel_of_an_unknown_order_is_rejected_with_the_command_fields(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 1))
    before = core.state_digest()
    assert core.cancel(42, account=5, seq=3, ts_ns=4) == 1
    assert records(core.drain_events()) == [
        dict(seq=3, ts_ns=4, order_id=42, other_id=0, price=0, qty=0, leaves=0, other_leaves=0,
             instrument=0, account=5, other_account=0, reason=Reason.BOOK_UNKNOWN_ORDER,
             type=EventType.REJECTED, side=0, cmd=CommandType.CANCEL),
    ]
    assert core.state_digest() == before
    assert core.order(42) is None  # a rejected cancel is not recorded


def test_cancel_of_a_finished_order_is_rejected(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 1), (2, BUY, 100, 1))
    core.submit(3, INSTR, SELL, 100, 1)  # fills 1
    core.cancel(2)
    drained(core)
    before = core.state_digest()
    core.cancel(1)  # filled
    core.cancel(2)  # already cancelled
    core.cancel(3)  # the filled taker
    assert drained(core) == [
        rejected(1, 0, 0, Reason.BOOK_UNKNOWN_ORDER),
        rejected(2, 0, 0, Reason.BOOK_UNKNOWN_ORDER),
        rejected(3, 0, 0, Reason.BOOK_UNKNOWN_ORDER),
    ]
    assert core.state_digest() == before
    assert core.order(2)["status"] == OrderStatus.CANCELLED


def test_cancel_of_another_accounts_order_is_rejected_as_unknown(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 5), account=1)
    before = core.state_digest()
    core.cancel(1, account=2)
    unknown = core.drain_events()
    core.cancel(99, account=2)
    assert ev(unknown) == [rejected(1, 0, 0, Reason.BOOK_UNKNOWN_ORDER)]
    assert records(unknown)[0]["account"] == 2
    assert ev(core.drain_events())[0].reason == ev(unknown)[0].reason
    assert core.state_digest() == before
    assert core.order(1)["status"] == OrderStatus.NEW


# -- REPLACE ----------------------------------------------------------------------------------

def test_replace_decreasing_quantity_at_the_same_price_keeps_queue_position(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 5), (2, SELL, 100, 5))
    assert core.replace(1, 100, 3) == 1
    assert drained(core) == [replaced(1, 100, 3, 3)]
    assert core.level_orders(INSTR, SELL, 100) == [(1, 3), (2, 5)]
    assert core.best_ask(INSTR) == (100, 8)
    core.submit(3, INSTR, BUY, 100, 4)
    assert drained(core) == [
        accepted(3, 100, 4),
        trade(3, 1, 100, 3, 1, 0),
        trade(3, 2, 100, 1, 0, 4),
    ]


def test_replace_with_the_same_price_and_quantity_is_a_no_op_that_keeps_priority(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 5), (2, BUY, 100, 5))
    before = core.state_digest()
    core.replace(1, 100, 5)
    assert drained(core) == [replaced(1, 100, 5, 5)]
    assert core.state_digest() == before
    assert core.level_orders(INSTR, BUY, 100) == [(1, 5), (2, 5)]


def test_replace_quantity_is_the_new_total_including_the_filled_part(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 10), (2, SELL, 100, 1))
    core.submit(3, INSTR, BUY, 100, 4)
    drained(core)
    core.replace(1, 100, 6)  # 4 filled: 2 remain open, and 1 keeps its place
    assert drained(core) == [replaced(1, 100, 6, 2)]
    assert core.level_orders(INSTR, SELL, 100) == [(1, 2), (2, 1)]
    assert core.order(1)["qty"] == 6
    assert core.order(1)["filled"] == 4
    assert core.order(1)["leaves"] == 2
    assert core.order(1)["status"] == OrderStatus.PARTIALLY_FILLED


def test_replace_increasing_quantity_loses_priority(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 5), (2, SELL, 100, 5))
    core.replace(1, 100, 8)
    assert drained(core) == [replaced(1, 100, 8, 8)]
    assert core.level_orders(INSTR, SELL, 100) == [(2, 5), (1, 8)]
    assert core.best_ask(INSTR) == (100, 13)


def test_replace_increasing_the_only_order_of_a_level_keeps_the_level(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 5), (2, BUY, 99, 5))
    core.replace(1, 100, 6)
    assert drained(core) == [replaced(1, 100, 6, 6)]
    assert core.depth(INSTR) == ([(100, 6, 1), (99, 5, 1)], [])


def test_replace_to_a_new_price_goes_to_the_back_of_the_new_level(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 5), (2, BUY, 99, 5), (3, BUY, 99, 1))
    core.replace(1, 99, 2)  # a price change loses priority even though the quantity shrinks
    assert drained(core) == [replaced(1, 99, 2, 2)]
    assert core.depth(INSTR) == ([(99, 8, 3)], [])
    assert core.level_orders(INSTR, BUY, 99) == [(2, 5), (3, 1), (1, 2)]
    assert core.level_orders(INSTR, BUY, 100) == []
    assert core.order(1)["price"] == 99


def test_replace_to_a_marketable_price_trades_then_rests_the_remainder(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 99, 2), (2, BUY, 98, 2), (3, SELL, 101, 5))
    core.replace(3, 99, 5, seq=7, ts_ns=70)
    events = core.drain_events()
    assert ev(events) == [
        replaced(3, 99, 5, 5),
        trade(3, 1, 99, 2, 3, 0),
    ]
    assert {(r["cmd"], r["seq"], r["ts_ns"], r["side"]) for r in records(events)} == {
        (CommandType.REPLACE, 7, 70, SELL)}
    assert core.depth(INSTR) == ([(98, 2, 1)], [(99, 3, 1)])
    assert core.order(3)["filled"] == 2
    assert core.order(3)["status"] == OrderStatus.PARTIALLY_FILLED


def test_replace_that_trades_completely_finishes_the_order(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 99, 2), (2, BUY, 98, 2), (3, SELL, 101, 3))
    core.replace(3, 98, 4)
    assert drained(core) == [
        replaced(3, 98, 4, 4),
        trade(3, 1, 99, 2, 2, 0),
        trade(3, 2, 98, 2, 0, 0),
    ]
    assert core.depth(INSTR) == ([], [])
    assert core.open_orders == 0
    assert core.order(3)["status"] == OrderStatus.FILLED
    assert core.order(3)["qty"] == 4


def test_replace_quantity_at_or_below_filled_is_rejected_and_the_order_stays(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 100, 10))
    core.submit(2, INSTR, BUY, 100, 4)
    drained(core)
    before = core.state_digest()
    core.replace(1, 100, 4)
    core.replace(1, 101, 3)
    assert drained(core) == [
        rejected(1, 100, 4, Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED),
        rejected(1, 101, 3, Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED),
    ]
    assert core.state_digest() == before
    assert core.order(1)["status"] == OrderStatus.PARTIALLY_FILLED
    assert core.order(1)["leaves"] == 6


def test_replace_of_a_post_only_order_to_a_crossing_price_is_rejected(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 101, 5))
    core.submit(2, INSTR, BUY, 99, 5, flags=POST_ONLY)
    drained(core)
    before = core.state_digest()
    core.replace(2, 101, 5)
    assert drained(core) == [rejected(2, 101, 5, Reason.BOOK_POST_ONLY_WOULD_TAKE)]
    assert core.state_digest() == before
    core.replace(2, 100, 6)  # not crossing: accepted, and the order stays POST_ONLY
    assert drained(core) == [replaced(2, 100, 6, 6)]
    assert core.order(2)["flags"] == POST_ONLY


def test_replace_of_a_plain_order_to_a_crossing_price_is_not_a_post_only_reject(make_core):
    core = make_core(INSTR)
    rest(core, (1, SELL, 101, 5), (2, BUY, 99, 5))
    core.replace(2, 101, 5)
    assert drained(core) == [replaced(2, 101, 5, 5), trade(2, 1, 101, 5, 0, 0)]


def test_replace_of_an_unknown_finished_or_other_accounts_order_is_rejected(make_core):
    core = make_core(INSTR)
    rest(core, (1, BUY, 100, 5), account=1)
    core.submit(2, INSTR, BUY, 100, 5, account=1)
    core.cancel(2, account=1)
    drained(core)
    before = core.state_digest()
    core.replace(99, 100, 5, account=1)  # unknown
    core.replace(2, 100, 5, account=1)  # cancelled
    core.replace(1, 100, 3, account=2, seq=5, ts_ns=6)  # another account's
    events = core.drain_events()
    assert ev(events) == [
        rejected(99, 100, 5, Reason.BOOK_UNKNOWN_ORDER),
        rejected(2, 100, 5, Reason.BOOK_UNKNOWN_ORDER),
        rejected(1, 100, 3, Reason.BOOK_UNKNOWN_ORDER),
    ]
    assert records(events)[2] == dict(
        seq=5, ts_ns=6, order_id=1, other_id=0, price=100, qty=3, leaves=0, other_leaves=0,
        instrument=0, account=2, other_account=0, reason=Reason.BOOK_UNKNOWN_ORDER,
        type=EventType.REJECTED, side=0, cmd=CommandType.REPLACE)
    assert core.state_digest() == before
    assert core.order(1)["qty"] == 5
    assert core.order(99) is None


def test_replace_ignores_side_instrument_type_tif_and_flags_of_the_command(make_core):
    core = make_core(INSTR, 8)
    rest(core, (1, BUY, 100, 5), account=4)
    out = core.process(commands([raw_cmd(
        cmd=CommandType.REPLACE, order_id=1, account=4, price=100, qty=3, instrument=8,
        side=SELL, ord_type=MARKET, tif=FOK, flags=POST_ONLY)]))
    assert records(out) == [dict(
        seq=0, ts_ns=0, order_id=1, other_id=0, price=100, qty=3, leaves=3, other_leaves=0,
        instrument=INSTR, account=4, other_account=0, reason=0, type=EventType.REPLACED,
        side=BUY, cmd=CommandType.REPLACE)]
    assert core.order(1) == dict(order_id=1, instrument=INSTR, account=4, side=BUY,
                                 ord_type=LIMIT, tif=GTC, flags=0, price=100, qty=3, filled=0,
                                 leaves=3, status=OrderStatus.NEW, venue=0)
    assert core.depth(8) == ([], [])


def test_cancel_ignores_every_field_but_order_id_and_account(make_core):
    core = make_core(INSTR, 8)
    rest(core, (1, BUY, 100, 5), account=4)
    out = core.process(commands([raw_cmd(
        cmd=CommandType.CANCEL, order_id=1, account=4, price=1, qty=1, instrument=8, side=SELL,
        ord_type=MARKET, tif=FOK, flags=POST_ONLY)]))
    assert ev(out) == [cancelled(1, 100, 5, CancelCause.USER)]
    assert records(out)[0]["instrument"] == INSTR
    assert records(out)[0]["side"] == BUY
