"""docs/RULES.md, "Admin commands": MASS_CANCEL, HALT, RESUME and SET_LIMITS, with exact events.

Every test runs against the reference model and the compiled core (``make_core``), and every
command is followed by ``check_integrity()`` (the ``Checked`` wrapper); the snapshot tests at
the end are the core's alone (only it has ``export_state``/``load_state``), checked against the
reference model's digest.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.reference import ReferenceCore
from engine.schema import (
    INT64_MAX,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    OrderStatus,
    Reason,
    Side,
    TradingState,
)
from tests.conftest import (
    ROUTING_EVENTS,
    accepted,
    cancelled,
    commands,
    ev,
    halt_cmd,
    instrument_state,
    load_core_class,
    mass_cancel_cmd,
    new_cmd,
    raw_cmd,
    records,
    rejected,
    replaced,
    resume_cmd,
    send,
    set_limits_cmd,
    trade,
)

BUY, SELL = Side.BUY, Side.SELL
OPEN, HALTED = TradingState.OPEN, TradingState.HALTED
MASS = CancelCause.MASS_CANCEL
# Registered 8 first, then 7: "registration order" is not ascending id order.
A, B = 8, 7


def drained(core):
    return ev(core.drain_events())


def mass(order_id, price, qty):
    return cancelled(order_id, price, qty, MASS)


@pytest.fixture
def book(make_core):
    """Instruments 8 then 7 (qty 1..100), each with orders of accounts 1 and 2 on both sides:

    instrument 8: bids 100: [1 (acct 1) x5, 2 (acct 2) x6], 99: [3 (acct 1) x7]
                  asks 102: [4 (acct 2) x8, 5 (acct 1) x9], 103: [6 (acct 1) x10]
    instrument 7: bids  50: [11 (acct 1) x1]
                  asks  60: [12 (acct 2) x2, 13 (acct 1) x3]
    """
    core = make_core((A, 1, 100), (B, 1, 100))
    for oid, inst, side, price, qty, account in [
        (3, A, BUY, 99, 7, 1), (1, A, BUY, 100, 5, 1), (2, A, BUY, 100, 6, 2),
        (6, A, SELL, 103, 10, 1), (4, A, SELL, 102, 8, 2), (5, A, SELL, 102, 9, 1),
        (11, B, BUY, 50, 1, 1), (12, B, SELL, 60, 2, 2), (13, B, SELL, 60, 3, 1),
    ]:
        core.submit(oid, inst, side, price, qty, account=account)
    assert [e.type for e in drained(core)] == [EventType.ACCEPTED] * 9
    return core


# -- MASS_CANCEL --------------------------------------------------------------------------------

def test_mass_cancel_by_account_cancels_its_orders_in_the_documented_order(book):
    # instruments in registration order (8, then 7); bids best first, then asks best first;
    # each level in queue order
    assert book.mass_cancel(account=1, seq=4, ts_ns=40) == 6
    events = book.drain_events()
    assert ev(events) == [
        mass(1, 100, 5), mass(3, 99, 7), mass(5, 102, 9), mass(6, 103, 10),
        mass(11, 50, 1), mass(13, 60, 3),
    ]
    assert records(events)[2] == dict(
        seq=4, ts_ns=40, order_id=5, other_id=0, price=102, qty=9, leaves=0, other_leaves=0,
        instrument=A, account=1, other_account=0, reason=CancelCause.MASS_CANCEL,
        type=EventType.CANCELLED, side=SELL, cmd=CommandType.MASS_CANCEL)
    assert [(r["instrument"], r["account"], r["side"]) for r in records(events)] == [
        (A, 1, BUY), (A, 1, BUY), (A, 1, SELL), (A, 1, SELL), (B, 1, BUY), (B, 1, SELL)]
    assert book.depth(A) == ([(100, 6, 1)], [(102, 8, 1)])
    assert book.depth(B) == ([], [(60, 2, 1)])
    assert book.open_orders == 3
    assert book.order(5)["status"] == OrderStatus.CANCELLED


def test_mass_cancel_by_instrument_touches_only_that_instrument(book):
    assert book.mass_cancel(account=1, instrument=B) == 2
    assert drained(book) == [mass(11, 50, 1), mass(13, 60, 3)]
    assert book.depth(A) == ([(100, 11, 2), (99, 7, 1)], [(102, 17, 2), (103, 10, 1)])
    assert book.depth(B) == ([], [(60, 2, 1)])


def test_mass_cancel_by_side_touches_only_that_side(book):
    assert book.mass_cancel(account=1, side=SELL) == 3
    assert drained(book) == [mass(5, 102, 9), mass(6, 103, 10), mass(13, 60, 3)]
    book.mass_cancel(account=2, instrument=A, side=BUY)
    assert drained(book) == [mass(2, 100, 6)]
    assert book.depth(A) == ([(100, 5, 1), (99, 7, 1)], [(102, 8, 1)])


def test_mass_cancel_of_all_accounts_empties_every_book_in_order(book):
    assert book.mass_cancel(all_accounts=True) == 9
    assert drained(book) == [
        mass(1, 100, 5), mass(2, 100, 6), mass(3, 99, 7), mass(4, 102, 8), mass(5, 102, 9),
        mass(6, 103, 10), mass(11, 50, 1), mass(12, 60, 2), mass(13, 60, 3),
    ]
    assert book.open_orders == 0
    assert book.depth(A) == ([], []) and book.depth(B) == ([], [])


def test_mass_cancel_of_all_accounts_with_instrument_and_side(book):
    book.mass_cancel(all_accounts=True, instrument=A, side=SELL)
    assert drained(book) == [mass(4, 102, 8), mass(5, 102, 9), mass(6, 103, 10)]


def test_mass_cancel_touches_another_accounts_orders_only_with_all_accounts(book):
    before = book.state_digest()
    assert book.mass_cancel(account=3) == 0  # account 3 has no order
    assert drained(book) == []
    assert book.state_digest() == before
    book.mass_cancel(account=3, instrument=B, all_accounts=True)  # the account is ignored
    assert drained(book) == [mass(11, 50, 1), mass(12, 60, 2), mass(13, 60, 3)]


def test_mass_cancel_with_nothing_to_cancel_produces_no_event(make_core):
    core = make_core(A)
    assert core.mass_cancel(all_accounts=True) == 0
    assert core.mass_cancel(account=1, instrument=A, side=BUY) == 0
    assert core.pending_events == 0


def test_mass_cancel_reports_the_open_quantity_of_a_partially_filled_order(book):
    book.submit(20, A, SELL, 100, 3, account=2)  # fills 3 of order 1
    drained(book)
    book.mass_cancel(account=1, instrument=A, side=BUY)
    assert drained(book) == [mass(1, 100, 2), mass(3, 99, 7)]
    assert book.order(1) == dict(order_id=1, instrument=A, account=1, side=BUY, ord_type=1,
                                 tif=1, flags=0, price=100, qty=5, filled=3, leaves=0,
                                 status=OrderStatus.CANCELLED, venue=0)


def test_mass_cancel_ignores_order_id_price_qty_type_and_tif(book):
    out = book.process(commands([raw_cmd(
        cmd=CommandType.MASS_CANCEL, order_id=77, account=2, instrument=B, price=5, qty=9,
        ord_type=2, tif=3, seq=3)]))
    assert ev(out) == [mass(12, 60, 2)]
    assert book.order(77) is None


def test_an_order_cancelled_by_mass_cancel_is_finished(book):
    book.mass_cancel(account=2)
    drained(book)
    book.cancel(2, account=2)
    book.replace(4, 102, 5, account=2)
    assert drained(book) == [rejected(2, 0, 0, Reason.BOOK_UNKNOWN_ORDER),
                             rejected(4, 102, 5, Reason.BOOK_UNKNOWN_ORDER)]
    book.submit(2, A, BUY, 90, 1, account=2)  # the id may be used again
    assert drained(book) == [accepted(2, 90, 1)]


# -- HALT and RESUME ----------------------------------------------------------------------------

def test_halt_and_resume_emit_the_instrument_state(make_core):
    core = make_core((A, 2, 40), B)
    assert core.instrument_state(A) == dict(trading_state=OPEN, min_qty=2, max_qty=40)
    assert core.halt(A, account=9, seq=5, ts_ns=50) == 1
    assert records(core.drain_events()) == [dict(
        seq=5, ts_ns=50, order_id=0, other_id=0, price=2, qty=40, leaves=0, other_leaves=0,
        instrument=A, account=9, other_account=0, reason=TradingState.HALTED,
        type=EventType.INSTRUMENT_STATE, side=0, cmd=CommandType.HALT)]
    assert core.instrument_state(A) == dict(trading_state=HALTED, min_qty=2, max_qty=40)
    assert core.instrument_state(B) == dict(trading_state=OPEN, min_qty=1, max_qty=INT64_MAX)
    assert core.resume(A, seq=6) == 1
    assert drained(core) == [instrument_state(OPEN, 2, 40)]
    assert core.instrument_state(A)["trading_state"] == OPEN


def test_halt_and_resume_are_idempotent_and_report_each_time(make_core):
    core = make_core(A)
    before = core.state_digest()
    core.resume(A)  # already open
    core.halt(A)
    halted = core.state_digest()
    core.halt(A)  # already halted
    assert drained(core) == [instrument_state(OPEN, 1, INT64_MAX),
                             instrument_state(HALTED, 1, INT64_MAX),
                             instrument_state(HALTED, 1, INT64_MAX)]
    assert core.state_digest() == halted != before
    core.resume(A)
    assert core.state_digest() == before


def test_an_admin_event_copies_order_id_and_account_of_the_command(make_core):
    core = make_core(A)
    out = core.process(commands([
        raw_cmd(cmd=CommandType.HALT, instrument=A, order_id=31, account=4, side=2, price=9,
                qty=9, ord_type=2, tif=3, flags=1),
        raw_cmd(cmd=CommandType.SET_LIMITS, instrument=A, order_id=32, account=5, price=3,
                qty=30, side=1, flags=2),
    ]))
    assert [(r["type"], r["order_id"], r["account"], r["side"], r["reason"], r["price"], r["qty"])
            for r in records(out)] == [
        (EventType.INSTRUMENT_STATE, 31, 4, 0, HALTED, 1, INT64_MAX),
        (EventType.INSTRUMENT_STATE, 32, 5, 0, HALTED, 3, 30),
    ]


def test_a_halt_rejects_new_and_replace_while_cancels_still_work(make_core):
    core = make_core(A, B)
    core.submit(1, A, BUY, 100, 5, account=1)
    core.submit(2, A, BUY, 99, 5, account=1)
    core.submit(3, A, SELL, 105, 5, account=2)
    core.submit(4, B, BUY, 100, 5, account=1)
    drained(core)
    core.halt(A)
    drained(core)
    halted = core.state_digest()
    core.submit(10, A, SELL, 100, 5, account=2)  # would trade with 1
    core.replace(1, 101, 5, account=1)
    core.replace(2, 99, 4, account=1)  # even a decrease in place
    assert drained(core) == [
        rejected(10, 100, 5, Reason.BOOK_INSTRUMENT_HALTED),
        rejected(1, 101, 5, Reason.BOOK_INSTRUMENT_HALTED),
        rejected(2, 99, 4, Reason.BOOK_INSTRUMENT_HALTED),
    ]
    assert core.state_digest() == halted
    assert core.order(10)["status"] == OrderStatus.REJECTED  # like any rejected NEW
    # another instrument trades on
    core.submit(11, B, SELL, 100, 2, account=2)
    assert drained(core) == [accepted(11, 100, 2), trade(11, 4, 100, 2, 0, 3)]
    # cancels and mass cancels work on the halted instrument
    core.cancel(2, account=1)
    core.mass_cancel(account=2, instrument=A)
    assert drained(core) == [cancelled(2, 99, 5, CancelCause.USER), mass(3, 105, 5)]
    core.resume(A)
    core.submit(12, A, SELL, 100, 2, account=2)
    core.replace(1, 100, 4, account=1)
    assert drained(core) == [
        instrument_state(OPEN, 1, INT64_MAX),
        accepted(12, 100, 2),
        trade(12, 1, 100, 2, 0, 3),
        replaced(1, 100, 4, 2),
    ]


def test_the_halt_check_comes_after_the_instrument_check_and_before_the_others(make_core):
    core = make_core((A, 2, 10))
    core.submit(1, A, BUY, 100, 5)
    drained(core)
    core.halt(A)
    drained(core)
    before = core.state_digest()
    core.submit(0, A, BUY, 100, 5)  # order id: checked first
    core.submit(2, 9, BUY, 100, 5)  # unknown instrument
    core.submit(3, A, 0, 0, 0, ord_type=0, tif=0, flags=0x8000)  # every other field bad
    core.submit(1, A, BUY, 100, 5)  # a duplicate of the live order 1
    core.replace(99, 100, 5)  # unknown order: checked before the halt
    core.replace(1, 0, 0)  # bad price and qty: the halt first
    core.replace(1, 100, 50)  # above max: the halt first
    assert [e.reason for e in drained(core)] == [
        Reason.BOOK_INVALID_ORDER_ID, Reason.BOOK_UNKNOWN_INSTRUMENT,
        Reason.BOOK_INSTRUMENT_HALTED, Reason.BOOK_INSTRUMENT_HALTED,
        Reason.BOOK_UNKNOWN_ORDER, Reason.BOOK_INSTRUMENT_HALTED,
        Reason.BOOK_INSTRUMENT_HALTED,
    ]
    assert core.state_digest() == before


# -- SET_LIMITS ---------------------------------------------------------------------------------

def test_set_limits_bounds_new_and_replace_at_exactly_the_new_min_and_max(make_core):
    core = make_core(A)
    core.submit(1, A, BUY, 90, 50)
    drained(core)
    assert core.set_limits(A, 3, 10, account=7, seq=2, ts_ns=20) == 1
    assert records(core.drain_events()) == [dict(
        seq=2, ts_ns=20, order_id=0, other_id=0, price=3, qty=10, leaves=0, other_leaves=0,
        instrument=A, account=7, other_account=0, reason=TradingState.OPEN,
        type=EventType.INSTRUMENT_STATE, side=0, cmd=CommandType.SET_LIMITS)]
    assert core.instrument_state(A) == dict(trading_state=OPEN, min_qty=3, max_qty=10)
    core.submit(2, A, BUY, 91, 10)
    core.submit(3, A, BUY, 91, 11)
    core.submit(4, A, BUY, 91, 3)
    core.submit(5, A, BUY, 91, 2)
    core.replace(2, 92, 11)
    core.replace(2, 92, 2)
    core.replace(4, 91, 10)
    assert drained(core) == [
        accepted(2, 91, 10),
        rejected(3, 91, 11, Reason.BOOK_QUANTITY_ABOVE_MAX),
        accepted(4, 91, 3),
        rejected(5, 91, 2, Reason.BOOK_QUANTITY_BELOW_MIN),
        rejected(2, 92, 11, Reason.BOOK_QUANTITY_ABOVE_MAX),
        rejected(2, 92, 2, Reason.BOOK_QUANTITY_BELOW_MIN),
        replaced(4, 91, 10, 10),
    ]


def test_set_limits_leaves_resting_orders_as_they_are(make_core):
    core = make_core(A)
    core.submit(1, A, SELL, 100, 50)
    core.submit(2, A, SELL, 101, 1)
    drained(core)
    before = core.level_orders(A, SELL, 100), core.level_orders(A, SELL, 101)
    core.set_limits(A, 5, 10)
    drained(core)
    assert (core.level_orders(A, SELL, 100), core.level_orders(A, SELL, 101)) == before
    assert core.order(1)["qty"] == 50
    core.submit(3, A, BUY, 100, 10)  # trades with the oversized order
    assert drained(core) == [accepted(3, 100, 10), trade(3, 1, 100, 10, 0, 40)]
    core.replace(1, 100, 45)  # a decrease, but above the new max
    core.replace(2, 101, 1)  # unchanged, but below the new min
    assert [e.reason for e in drained(core)] == [Reason.BOOK_QUANTITY_ABOVE_MAX,
                                                 Reason.BOOK_QUANTITY_BELOW_MIN]
    core.cancel(1)
    assert drained(core) == [cancelled(1, 100, 40, CancelCause.USER)]


def test_set_limits_with_min_equal_to_max_and_up_to_int64_max(make_core):
    core = make_core((A, 1, 5))
    core.set_limits(A, 7, 7)
    core.submit(1, A, BUY, 90, 7)
    core.set_limits(A, 1, INT64_MAX)
    core.submit(2, A, BUY, 90, INT64_MAX - 7)
    assert drained(core) == [instrument_state(OPEN, 7, 7), accepted(1, 90, 7),
                             instrument_state(OPEN, 1, INT64_MAX),
                             accepted(2, 90, INT64_MAX - 7)]


def test_set_limits_keeps_a_halt_and_a_halt_keeps_the_limits(make_core):
    core = make_core(A)
    core.halt(A)
    core.set_limits(A, 2, 4)
    core.resume(A)
    assert drained(core) == [instrument_state(HALTED, 1, INT64_MAX),
                             instrument_state(HALTED, 2, 4), instrument_state(OPEN, 2, 4)]


# -- rejects: nothing changes, nothing is recorded ---------------------------------------------

ADMIN_REJECTS = [
    ("mass cancel: unknown instrument",
     dict(cmd=CommandType.MASS_CANCEL, instrument=9), Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("mass cancel: side 3", dict(cmd=CommandType.MASS_CANCEL, side=3), Reason.BOOK_INVALID_SIDE),
    ("mass cancel: side 255", dict(cmd=CommandType.MASS_CANCEL, instrument=A, side=255),
     Reason.BOOK_INVALID_SIDE),
    ("mass cancel: post-only flag", dict(cmd=CommandType.MASS_CANCEL, flags=Flags.POST_ONLY),
     Reason.BOOK_INVALID_INSTRUCTIONS),
    ("mass cancel: unknown flag with all accounts",
     dict(cmd=CommandType.MASS_CANCEL, flags=Flags.ALL_ACCOUNTS | 0x8000),
     Reason.BOOK_INVALID_INSTRUCTIONS),
    ("mass cancel: instrument before side",
     dict(cmd=CommandType.MASS_CANCEL, instrument=9, side=3, flags=1),
     Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("mass cancel: side before flags", dict(cmd=CommandType.MASS_CANCEL, side=3, flags=1),
     Reason.BOOK_INVALID_SIDE),
    ("halt: unknown instrument", dict(cmd=CommandType.HALT, instrument=9),
     Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("halt: instrument 0 is not 'every instrument'", dict(cmd=CommandType.HALT, instrument=0),
     Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("resume: unknown instrument", dict(cmd=CommandType.RESUME, instrument=9),
     Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("set limits: unknown instrument",
     dict(cmd=CommandType.SET_LIMITS, instrument=9, price=1, qty=5),
     Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("set limits: unknown instrument before bad bounds",
     dict(cmd=CommandType.SET_LIMITS, instrument=9, price=0, qty=0),
     Reason.BOOK_UNKNOWN_INSTRUMENT),
    ("set limits: min 0", dict(cmd=CommandType.SET_LIMITS, instrument=A, price=0, qty=5),
     Reason.BOOK_INVALID_QUANTITY),
    ("set limits: min negative", dict(cmd=CommandType.SET_LIMITS, instrument=A, price=-1, qty=5),
     Reason.BOOK_INVALID_QUANTITY),
    ("set limits: min above max", dict(cmd=CommandType.SET_LIMITS, instrument=A, price=6, qty=5),
     Reason.BOOK_INVALID_QUANTITY),
    ("set limits: max negative",
     dict(cmd=CommandType.SET_LIMITS, instrument=A, price=1, qty=-(2 ** 63)),
     Reason.BOOK_INVALID_QUANTITY),
]


@pytest.mark.parametrize("fields, reason", [c[1:] for c in ADMIN_REJECTS],
                         ids=[c[0] for c in ADMIN_REJECTS])
def test_admin_command_failing_a_check_is_rejected_verbatim_and_changes_nothing(
        book, fields, reason):
    book.halt(B)
    book.drain_events()
    row = raw_cmd(seq=7, ts_ns=70, order_id=55, account=1, **fields)
    before = book.state_digest()
    states = book.instrument_state(A), book.instrument_state(B)
    out = book.process(commands([row]))
    c = dict(zip(("seq", "ts_ns", "order_id", "price", "qty", "instrument", "account", "cmd",
                  "side", "ord_type", "tif", "flags"), row))
    assert records(out) == [dict(
        seq=7, ts_ns=70, order_id=55, other_id=0, price=c["price"], qty=c["qty"], leaves=0,
        other_leaves=0, instrument=c["instrument"], account=1, other_account=0, reason=reason,
        type=EventType.REJECTED, side=c["side"], cmd=c["cmd"])]
    assert book.state_digest() == before
    assert (book.instrument_state(A), book.instrument_state(B)) == states
    assert book.open_orders == 9
    assert book.order(55) is None  # unlike a rejected NEW, not recorded


def test_admin_rejects_through_the_per_call_api(make_core):
    core = make_core(A)
    before = core.state_digest()
    assert core.mass_cancel(account=1, instrument=9) == 1
    assert core.mass_cancel(side=3) == 1
    assert core.halt(9) == 1
    assert core.resume(9) == 1
    assert core.set_limits(A, 0, 5) == 1
    assert core.set_limits(A, 5, 4) == 1
    assert core.set_limits(9, 1, 5) == 1
    assert drained(core) == [
        rejected(0, 0, 0, Reason.BOOK_UNKNOWN_INSTRUMENT),
        rejected(0, 0, 0, Reason.BOOK_INVALID_SIDE),
        rejected(0, 0, 0, Reason.BOOK_UNKNOWN_INSTRUMENT),
        rejected(0, 0, 0, Reason.BOOK_UNKNOWN_INSTRUMENT),
        rejected(0, 0, 5, Reason.BOOK_INVALID_QUANTITY),
        rejected(0, 5, 4, Reason.BOOK_INVALID_QUANTITY),
        rejected(0, 1, 5, Reason.BOOK_UNKNOWN_INSTRUMENT),
    ]
    assert core.state_digest() == before
    assert core.instrument_state(A) == dict(trading_state=OPEN, min_qty=1, max_qty=INT64_MAX)


def test_per_call_admin_arguments_out_of_their_field_range_raise_and_do_nothing(make_core):
    core = make_core(A)
    for call in (lambda: core.halt(-1), lambda: core.halt(2 ** 32),
                 lambda: core.mass_cancel(account=-1), lambda: core.mass_cancel(side=256),
                 lambda: core.set_limits(A, 1, 2 ** 63)):
        with pytest.raises(OverflowError):
            call()
    assert core.pending_events == 0


def test_instrument_state_of_an_unregistered_instrument_is_none(make_core):
    core = make_core(A)
    assert core.instrument_state(A) == dict(trading_state=OPEN, min_qty=1, max_qty=INT64_MAX)
    for instrument in (0, 9, -1, 2 ** 32):
        assert core.instrument_state(instrument) is None


def test_process_and_the_per_call_api_agree_on_admin_commands(make_core):
    rows = [new_cmd(1, A, BUY, 100, 5, account=1), new_cmd(2, A, SELL, 101, 5, account=2),
            halt_cmd(A, account=9), new_cmd(3, A, BUY, 100, 1), resume_cmd(A),
            set_limits_cmd(A, 2, 3), new_cmd(4, A, BUY, 99, 3, account=1),
            mass_cancel_cmd(account=1), mass_cancel_cmd(all_accounts=True, instrument=A),
            mass_cancel_cmd(side=4), halt_cmd(9), set_limits_cmd(A, 4, 3)]
    rows = [(i + 1, 10 * (i + 1)) + r[2:] for i, r in enumerate(rows)]
    per_call, batch = make_core(A), make_core(A)
    counts = [send(per_call, r) for r in rows]
    events, out = per_call.drain_events(), batch.process(commands(rows))
    assert out.tobytes() == events.tobytes()
    assert sum(counts) == len(out)
    assert per_call.state_digest() == batch.state_digest()
    assert {e.type for e in ev(out)} == set(EventType) - {EventType.TRADE, EventType.REPLACED,
                                                EventType.RISK, *ROUTING_EVENTS}  # RISK: tests/core/test_risk*


# -- state: digest, export_state / load_state (the core's) -------------------------------------

def script(engine):
    """Halts, limits and resting orders outside the new limits, on three instruments."""
    engine.submit(1, A, BUY, 100, 50, account=1)
    engine.submit(2, A, SELL, 105, 2, account=2)
    engine.submit(3, B, BUY, 10, 4, account=1)
    engine.submit(4, 9, SELL, 20, 6, account=3)
    engine.set_limits(A, 3, 10)  # order 1 (50) and order 2 (2) now lie outside them
    engine.halt(B)
    engine.halt(9)
    engine.resume(9)
    engine.set_limits(9, 5, 6)
    engine.mass_cancel(account=3, instrument=B)  # nothing of account 3 there
    engine.drain_events()


def scripted(cls):
    engine = cls(history=16)
    for spec in ((A, 1, 100), (B, 1, 100), (9, 1, INT64_MAX)):
        engine.add_instrument(*spec)
    script(engine)
    return engine


def test_the_reference_and_the_core_agree_on_the_state_after_admin_commands():
    core, ref = scripted(load_core_class()), scripted(ReferenceCore)
    assert core.state_digest() == ref.state_digest()
    for i in (A, B, 9, 0):
        assert core.instrument_state(i) == ref.instrument_state(i)


def test_export_and_load_state_keep_halts_and_limits():
    Core = load_core_class()
    core = scripted(Core)
    state = core.export_state()
    insts = state["instruments"]
    assert list(zip(*(insts[name].tolist() for name in (
        "instrument", "trading_state", "min_qty", "max_qty")))) == [
        (A, OPEN, 3, 10), (B, HALTED, 1, 100), (9, OPEN, 5, 6)]
    assert not insts["_pad"].any()
    fresh = Core(history=16)
    fresh.load_state(state)
    fresh.check_integrity()
    assert fresh.state_digest() == core.state_digest() == scripted(ReferenceCore).state_digest()
    for i in (A, B, 9):
        assert fresh.instrument_state(i) == core.instrument_state(i)
    assert fresh.export_state()["instruments"].tobytes() == state["instruments"].tobytes()
    # and it behaves as the exported core does
    for engine in (core, fresh):
        engine.submit(10, B, BUY, 10, 1)
        engine.submit(11, A, BUY, 100, 11)
        engine.replace(1, 100, 10, account=1)
        engine.resume(B)
        engine.submit(12, B, SELL, 10, 1)
    assert fresh.drain_events().tobytes() == core.drain_events().tobytes()
    assert fresh.state_digest() == core.state_digest()


def test_load_state_takes_the_states_limits_over_the_registered_ones():
    # a journal's recovery registers the configured bounds, then loads a snapshot taken after
    # SET_LIMITS changed them: the snapshot's bounds (and trading states) are the ones in force
    Core = load_core_class()
    core = scripted(Core)
    recovering = Core(history=16)
    for spec in ((A, 1, 100), (B, 1, 100), (9, 1, INT64_MAX)):
        recovering.add_instrument(*spec)
    recovering.load_state(core.export_state())
    assert recovering.state_digest() == core.state_digest()
    assert recovering.instrument_state(A) == dict(trading_state=OPEN, min_qty=3, max_qty=10)
    other_ids = Core()
    other_ids.add_instrument(B)
    other_ids.add_instrument(A)
    other_ids.add_instrument(9)
    with pytest.raises(ValueError, match="same instruments and venues in the same order"):
        other_ids.load_state(core.export_state())


@pytest.mark.parametrize("bad", [0, 3, 255])
def test_load_state_refuses_a_bad_trading_state_and_changes_nothing(bad):
    Core = load_core_class()
    state = scripted(Core).export_state()
    state["instruments"]["trading_state"][1] = bad
    fresh = Core(history=16)
    fresh.add_instrument(A)
    fresh.add_instrument(B, 1, 100)
    fresh.add_instrument(9)
    before = fresh.state_digest(), fresh.instrument_state(B)
    with pytest.raises(ValueError, match=rf"instruments\[1\] \(instrument {B}\): trading_state "
                                         rf"must be 1 \(OPEN\) or 2 \(HALTED\), got {bad}"):
        fresh.load_state(state)
    assert (fresh.state_digest(), fresh.instrument_state(B)) == before
    assert fresh.open_orders == 0
    fresh.check_integrity()
    state["instruments"]["trading_state"][1] = HALTED
    fresh.load_state(state)  # still fresh: the good state loads
    assert fresh.instrument_state(B)["trading_state"] == HALTED


def test_the_instrument_record_keeps_its_24_byte_layout():
    from engine.schema import INSTRUMENT_STATE_DTYPE

    assert INSTRUMENT_STATE_DTYPE.itemsize == 24
    assert [(n, INSTRUMENT_STATE_DTYPE.fields[n][1]) for n in INSTRUMENT_STATE_DTYPE.names] == [
        ("instrument", 0), ("trading_state", 4), ("_pad", 5), ("venue", 6), ("min_qty", 8),
        ("max_qty", 16)]
    assert np.zeros(1, INSTRUMENT_STATE_DTYPE)["trading_state"].dtype == np.uint8
