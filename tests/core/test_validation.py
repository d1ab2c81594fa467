"""docs/RULES.md validation tables: each check rejects with exactly one REJECTED event that
copies the command's fields verbatim, in table order, and changes nothing else."""
from __future__ import annotations

import pytest

from engine.schema import INT64_MAX, CommandType, EventType, Flags, OrderStatus, OrdType
from engine.schema import Reason, Side, TimeInForce
from tests.conftest import accepted, commands, ev, new_cmd, raw_cmd, records, replace_cmd

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrdType.LIMIT, OrdType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
POST_ONLY = Flags.POST_ONLY
INSTR, MIN_QTY, MAX_QTY = 5, 2, 100
UNKNOWN_INSTR = 6


@pytest.fixture
def core(make_core):
    """Instrument 5 (qty 2..100) with a bid 99 x 10 (order 50, account 1) and an ask 101 x 10
    (order 51, account 1); order 50 is partially filled (4 of 10)."""
    core = make_core((INSTR, MIN_QTY, MAX_QTY), 9)
    core.submit(50, INSTR, BUY, 99, 10, account=1)
    core.submit(49, INSTR, SELL, 99, 4, account=1)
    core.submit(51, INSTR, SELL, 101, 10, account=1)
    core.drain_events()
    assert core.depth(INSTR) == ([(99, 6, 1)], [(101, 10, 1)])
    return core


def halt_if(core, changes: dict) -> dict:
    """Halt the instrument if ``changes`` asks for it (``halted=True``); the other changes."""
    changes = dict(changes)
    if changes.pop("halted", False):
        core.halt(INSTR)
        core.drain_events()
    return changes


def good_new(**changes):
    fields = dict(cmd=CommandType.NEW, seq=77, ts_ns=88, order_id=1, instrument=INSTR, account=3,
                  side=BUY, ord_type=LIMIT, tif=GTC, flags=0, price=100, qty=5)
    fields.update(changes)
    return raw_cmd(**fields)


# Each NEW fails exactly the named check and passes every check before it
# (``halted=True``: sent after a HALT of the instrument).
NEW_REJECTS = [
    ("1 unknown command 0", dict(cmd=0), Reason.BOOK_UNKNOWN_COMMAND),
    ("1 unknown command 12", dict(cmd=12), Reason.BOOK_UNKNOWN_COMMAND),
    ("1 unknown command 255", dict(cmd=255), Reason.BOOK_UNKNOWN_COMMAND),
    ("2 order id 0", dict(order_id=0), Reason.BOOK_INVALID_ORDER_ID),
    ("2 order id negative", dict(order_id=-5), Reason.BOOK_INVALID_ORDER_ID),
    ("3 unknown instrument", dict(instrument=UNKNOWN_INSTR), Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("4 instrument halted", dict(halted=True), Reason.BOOK_INSTRUMENT_HALTED),
    ("5 side 0", dict(side=0), Reason.BOOK_INVALID_SIDE),
    ("5 side 3", dict(side=3), Reason.BOOK_INVALID_SIDE),
    ("6 ord_type 0", dict(ord_type=0), Reason.BOOK_INVALID_ORDER_TYPE),
    ("6 ord_type 3", dict(ord_type=3), Reason.BOOK_INVALID_ORDER_TYPE),
    ("7 tif 0", dict(tif=0), Reason.BOOK_INVALID_TIME_IN_FORCE),
    ("7 tif 4", dict(tif=4), Reason.BOOK_INVALID_TIME_IN_FORCE),
    ("8 unknown flag bit", dict(flags=2), Reason.BOOK_INVALID_INSTRUCTIONS),
    ("8 unknown flag bit with post-only", dict(flags=POST_ONLY | 0x8000),
     Reason.BOOK_INVALID_INSTRUCTIONS),
    ("8 post-only market", dict(flags=POST_ONLY, ord_type=MARKET), Reason.BOOK_INVALID_INSTRUCTIONS),
    ("8 post-only ioc", dict(flags=POST_ONLY, tif=IOC), Reason.BOOK_INVALID_INSTRUCTIONS),
    ("8 post-only fok", dict(flags=POST_ONLY, tif=FOK), Reason.BOOK_INVALID_INSTRUCTIONS),
    ("9 qty 0", dict(qty=0), Reason.BOOK_INVALID_QUANTITY),
    ("9 qty negative", dict(qty=-3), Reason.BOOK_INVALID_QUANTITY),
    ("10 qty below min", dict(qty=MIN_QTY - 1), Reason.BOOK_QUANTITY_BELOW_MIN),
    ("11 qty above max", dict(qty=MAX_QTY + 1), Reason.BOOK_QUANTITY_ABOVE_MAX),
    ("11 qty int64 max", dict(qty=INT64_MAX), Reason.BOOK_QUANTITY_ABOVE_MAX),
    ("12 limit price 0", dict(price=0), Reason.BOOK_INVALID_PRICE),
    ("12 limit price negative", dict(price=-100), Reason.BOOK_INVALID_PRICE),
    ("13 duplicate of a live order", dict(order_id=50), Reason.BOOK_DUPLICATE_ORDER_ID),
    ("13 duplicate of a live order on another side", dict(order_id=51, side=BUY, price=90),
     Reason.BOOK_DUPLICATE_ORDER_ID),
    ("14 post-only buy at the ask", dict(flags=POST_ONLY, price=101),
     Reason.BOOK_POST_ONLY_WOULD_TAKE),
    ("14 post-only sell at the bid", dict(flags=POST_ONLY, side=SELL, price=99),
     Reason.BOOK_POST_ONLY_WOULD_TAKE),
    # the first failing check wins
    ("2 before 3", dict(order_id=0, instrument=UNKNOWN_INSTR), Reason.BOOK_INVALID_ORDER_ID),
    ("2 before 4", dict(halted=True, order_id=0), Reason.BOOK_INVALID_ORDER_ID),
    ("3 before 5", dict(instrument=UNKNOWN_INSTR, side=0), Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("4 before 5", dict(halted=True, side=0), Reason.BOOK_INSTRUMENT_HALTED),
    ("4 before 9", dict(halted=True, qty=0), Reason.BOOK_INSTRUMENT_HALTED),
    ("4 before 13", dict(halted=True, order_id=50), Reason.BOOK_INSTRUMENT_HALTED),
    ("5 before 6", dict(side=0, ord_type=0), Reason.BOOK_INVALID_SIDE),
    ("6 before 7", dict(ord_type=0, tif=0), Reason.BOOK_INVALID_ORDER_TYPE),
    ("7 before 8", dict(tif=0, flags=2), Reason.BOOK_INVALID_TIME_IN_FORCE),
    ("8 before 9", dict(flags=2, qty=0), Reason.BOOK_INVALID_INSTRUCTIONS),
    ("9 before 10", dict(qty=0, price=0), Reason.BOOK_INVALID_QUANTITY),
    ("10 before 12", dict(qty=1, price=0), Reason.BOOK_QUANTITY_BELOW_MIN),
    ("11 before 12", dict(qty=MAX_QTY + 1, price=0), Reason.BOOK_QUANTITY_ABOVE_MAX),
    ("12 before 13", dict(order_id=50, price=0), Reason.BOOK_INVALID_PRICE),
    ("13 before 14", dict(order_id=50, flags=POST_ONLY, price=101),
     Reason.BOOK_DUPLICATE_ORDER_ID),
]


@pytest.mark.parametrize("changes, reason", [c[1:] for c in NEW_REJECTS],
                         ids=[c[0] for c in NEW_REJECTS])
def test_new_failing_a_check_is_rejected_verbatim_and_changes_nothing(core, changes, reason):
    row = good_new(**halt_if(core, changes))
    before = core.state_digest()
    out = core.process(commands([row]))
    c = dict(zip(("seq", "ts_ns", "order_id", "price", "qty", "instrument", "account", "cmd",
                  "side", "ord_type", "tif", "flags"), row))
    assert records(out) == [dict(
        seq=77, ts_ns=88, order_id=c["order_id"], other_id=0, price=c["price"], qty=c["qty"],
        leaves=0, other_leaves=0, instrument=c["instrument"], account=3, other_account=0,
        reason=reason, type=EventType.REJECTED, side=c["side"], cmd=c["cmd"])]
    assert core.state_digest() == before
    assert core.open_orders == 3 - 1  # 50 and 51 (49 filled)
    assert core.pending_events == 0


@pytest.mark.parametrize("changes, reason", [c[1:] for c in NEW_REJECTS if c[1].get("cmd") is None
                                             and c[1].get("order_id") not in (50, 51)],
                         ids=[c[0] for c in NEW_REJECTS if c[1].get("cmd") is None
                              and c[1].get("order_id") not in (50, 51)])
def test_a_rejected_new_is_recorded_with_the_command_fields(core, changes, reason):
    row = good_new(**halt_if(core, changes))
    core.process(commands([row]))
    c = dict(zip(("seq", "ts_ns", "order_id", "price", "qty", "instrument", "account", "cmd",
                  "side", "ord_type", "tif", "flags", "venue"), row))
    assert core.order(c["order_id"]) == dict(
        order_id=c["order_id"], instrument=c["instrument"], account=c["account"],
        side=c["side"], ord_type=c["ord_type"], tif=c["tif"], flags=c["flags"],
        price=c["price"], qty=c["qty"], filled=0, leaves=0, status=OrderStatus.REJECTED,
        venue=c["venue"])


def test_a_rejected_duplicate_does_not_hide_the_live_order(core):
    core.submit(50, INSTR, SELL, 200, 3, account=9)
    assert ev(core.drain_events())[0].reason == Reason.BOOK_DUPLICATE_ORDER_ID
    assert core.order(50)["status"] == OrderStatus.PARTIALLY_FILLED
    assert core.order(50)["account"] == 1


def test_an_unknown_command_is_not_recorded_as_an_order(core):
    core.process(commands([good_new(cmd=9, order_id=12345)]))
    assert core.order(12345) is None


def test_the_duplicate_check_spans_instruments(core):
    core.submit(50, 9, BUY, 99, 5, account=1)
    assert [e.reason for e in ev(core.drain_events())] == [Reason.BOOK_DUPLICATE_ORDER_ID]
    assert core.depth(9) == ([], [])


def test_a_finished_order_id_may_be_used_again(core):
    core.submit(49, INSTR, BUY, 90, 5, account=3)  # 49 filled in the fixture
    assert ev(core.drain_events()) == [accepted(49, 90, 5)]
    assert core.order(49)["status"] == OrderStatus.NEW


def test_qty_at_the_instrument_min_and_max_is_accepted(core):
    core.submit(1, INSTR, BUY, 90, MIN_QTY)
    core.submit(2, INSTR, BUY, 90, MAX_QTY)
    assert ev(core.drain_events()) == [accepted(1, 90, MIN_QTY), accepted(2, 90, MAX_QTY)]


def test_post_only_just_inside_the_spread_is_accepted(core):
    core.submit(1, INSTR, BUY, 100, 5, flags=POST_ONLY)
    core.submit(2, INSTR, SELL, 100, 5, flags=POST_ONLY)  # 1 is now the best bid at 100
    core.submit(3, INSTR, SELL, 101, 5, flags=POST_ONLY)
    assert [e.type for e in ev(core.drain_events())] == [
        EventType.ACCEPTED, EventType.REJECTED, EventType.ACCEPTED]


# REPLACE of order 50 (account 1, buy 99, qty 10, filled 4; instrument qty 2..100);
# ``halted=True``: sent after a HALT of the instrument.
REPLACE_REJECTS = [
    ("1 unknown order", dict(order_id=777), Reason.BOOK_UNKNOWN_ORDER),
    ("1 other account", dict(account=2), Reason.BOOK_UNKNOWN_ORDER),
    ("1 finished order", dict(order_id=49), Reason.BOOK_UNKNOWN_ORDER),
    ("1 order id 0", dict(order_id=0), Reason.BOOK_UNKNOWN_ORDER),
    ("2 instrument halted", dict(halted=True), Reason.BOOK_INSTRUMENT_HALTED),
    ("3 qty 0", dict(qty=0), Reason.BOOK_INVALID_QUANTITY),
    ("3 qty negative", dict(qty=-1), Reason.BOOK_INVALID_QUANTITY),
    ("4 price 0", dict(price=0), Reason.BOOK_INVALID_PRICE),
    ("4 price negative", dict(price=-99), Reason.BOOK_INVALID_PRICE),
    ("5 qty below min", dict(qty=MIN_QTY - 1), Reason.BOOK_QUANTITY_BELOW_MIN),
    ("6 qty above max", dict(qty=MAX_QTY + 1), Reason.BOOK_QUANTITY_ABOVE_MAX),
    ("7 qty equal to filled", dict(qty=4), Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED),
    ("7 qty below filled", dict(qty=3), Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED),
    # the first failing check wins
    ("1 before 2", dict(halted=True, account=2), Reason.BOOK_UNKNOWN_ORDER),
    ("1 before 3", dict(account=2, qty=0), Reason.BOOK_UNKNOWN_ORDER),
    ("2 before 3", dict(halted=True, qty=0), Reason.BOOK_INSTRUMENT_HALTED),
    ("2 before 7", dict(halted=True, qty=4), Reason.BOOK_INSTRUMENT_HALTED),
    ("3 before 4", dict(qty=0, price=0), Reason.BOOK_INVALID_QUANTITY),
    ("4 before 5", dict(price=0, qty=1), Reason.BOOK_INVALID_PRICE),
    ("5 before 7", dict(qty=1), Reason.BOOK_QUANTITY_BELOW_MIN),
]


@pytest.mark.parametrize("changes, reason", [c[1:] for c in REPLACE_REJECTS],
                         ids=[c[0] for c in REPLACE_REJECTS])
def test_replace_failing_a_check_is_rejected_verbatim_and_changes_nothing(core, changes, reason):
    args = dict(order_id=50, price=98, qty=8, account=1, seq=5, ts_ns=6)
    args.update(halt_if(core, changes))
    before_digest, before_order = core.state_digest(), core.order(50)
    before_target = core.order(args["order_id"])
    assert core.replace(args["order_id"], args["price"], args["qty"], account=args["account"],
                        seq=5, ts_ns=6) == 1
    assert records(core.drain_events()) == [dict(
        seq=5, ts_ns=6, order_id=args["order_id"], other_id=0, price=args["price"],
        qty=args["qty"], leaves=0, other_leaves=0, instrument=0, account=args["account"],
        other_account=0, reason=reason, type=EventType.REJECTED, side=0,
        cmd=CommandType.REPLACE)]
    assert core.state_digest() == before_digest
    assert core.order(50) == before_order
    assert core.order(args["order_id"]) == before_target  # a rejected replace is not recorded


def test_replace_of_a_post_only_order_that_would_cross_is_rejected_last(make_core):
    core = make_core((INSTR, MIN_QTY, MAX_QTY))
    core.submit(1, INSTR, SELL, 101, 10)
    core.submit(2, INSTR, BUY, 99, 10, flags=POST_ONLY)
    core.drain_events()
    before = core.state_digest()
    out = core.process(commands([replace_cmd(2, 101, 1), replace_cmd(2, 101, 8)]))
    assert [e.reason for e in ev(out)] == [
        Reason.BOOK_QUANTITY_BELOW_MIN,  # check 5 comes before check 8
        Reason.BOOK_POST_ONLY_WOULD_TAKE,
    ]
    assert core.state_digest() == before


def test_replace_checks_against_the_orders_own_instrument_limits(make_core):
    core = make_core((1, 1, 10), (2, 5, 20))
    core.submit(1, 1, BUY, 99, 10)
    core.submit(2, 2, BUY, 99, 10)
    core.drain_events()
    core.replace(1, 99, 12)
    core.replace(2, 99, 12)
    core.replace(2, 99, 4)
    assert [(e.type, e.reason) for e in ev(core.drain_events())] == [
        (EventType.REJECTED, Reason.BOOK_QUANTITY_ABOVE_MAX),
        (EventType.REPLACED, 0),
        (EventType.REJECTED, Reason.BOOK_QUANTITY_BELOW_MIN),
    ]


def test_unknown_command_is_rejected_for_any_command_type_value(make_core):
    core = make_core(INSTR)
    rows = [raw_cmd(cmd=value, order_id=3, seq=value) for value in (0, 12, 100, 255)]
    out = core.process(commands(rows))
    assert [(r["cmd"], r["reason"], r["seq"]) for r in records(out)] == [
        (value, Reason.BOOK_UNKNOWN_COMMAND, value) for value in (0, 12, 100, 255)]


def test_new_through_the_per_call_api_rejects_like_the_batch_api(make_core):
    core = make_core((INSTR, MIN_QTY, MAX_QTY))
    core.submit(1, INSTR, BUY, 100, 1, account=3, seq=1, ts_ns=2)
    per_call = core.drain_events()
    batch = core.process(commands([new_cmd(1, INSTR, BUY, 100, 1, account=3, seq=1, ts_ns=2)]))
    assert ev(per_call) == [(EventType.REJECTED, 1, 0, 100, 1, 0, 0,
                             Reason.BOOK_QUANTITY_BELOW_MIN)]
    assert per_call.tobytes() == batch.tobytes()
