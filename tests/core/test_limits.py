"""Quantities near the top of int64: a level's open total never overflows, FOK sums never
overflow, and an order that would overflow its level ends with LEVEL_QUANTITY_LIMIT."""
from engine.schema import INT64_MAX, CancelCause, OrderStatus, Side, TimeInForce
from tests.conftest import accepted, cancelled, ev, replaced, trade

BUY, SELL = Side.BUY, Side.SELL
INSTR = 3
BIG = INT64_MAX - 10


def test_resting_past_the_level_limit_is_cancelled_and_the_level_is_unchanged(make_core):
    core = make_core(INSTR)
    core.submit(1, INSTR, BUY, 100, BIG)
    core.submit(2, INSTR, BUY, 100, 10)          # exactly at the limit: rests
    core.submit(3, INSTR, BUY, 100, 1)           # one over: cancelled
    assert ev(core.drain_events()) == [
        accepted(1, 100, BIG), accepted(2, 100, 10), accepted(3, 100, 1),
        cancelled(3, 100, 1, CancelCause.LEVEL_QUANTITY_LIMIT)]
    assert core.best_bid(INSTR) == (100, INT64_MAX)
    assert core.level_orders(INSTR, BUY, 100) == [(1, BIG), (2, 10)]
    assert core.order(3)["status"] == OrderStatus.CANCELLED
    core.submit(4, INSTR, BUY, 99, 1)            # another level is unaffected
    assert core.best_bid(INSTR) == (100, INT64_MAX)


def test_replace_onto_a_full_level_ends_the_order(make_core):
    core = make_core(INSTR)
    core.submit(1, INSTR, SELL, 200, BIG)
    core.submit(2, INSTR, SELL, 201, 20)
    core.drain_events()
    core.replace(2, 200, 20)
    assert ev(core.drain_events()) == [
        replaced(2, 200, 20, 20), cancelled(2, 200, 20, CancelCause.LEVEL_QUANTITY_LIMIT)]
    assert core.open_orders == 1
    assert core.depth(INSTR, 5) == ([], [(200, BIG, 1)])


def test_fok_against_levels_summing_past_int64_fills(make_core):
    core = make_core(INSTR)
    core.submit(1, INSTR, SELL, 200, BIG)
    core.submit(2, INSTR, SELL, 201, BIG)
    core.drain_events()
    core.submit(3, INSTR, BUY, 201, INT64_MAX, tif=TimeInForce.FOK)
    assert ev(core.drain_events()) == [
        accepted(3, 201, INT64_MAX), trade(3, 1, 200, BIG, 10, 0), trade(3, 2, 201, 10, 0, BIG - 10)]
