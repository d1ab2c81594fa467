"""The command/event API: return counts, pending events, seq/ts stamping, and process() versus
the per-call API (the same commands must give byte-identical events)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.schema import COMMAND_DTYPE, EVENT_DTYPE, CommandType, EventType, Flags, OrdType
from engine.schema import Side, TimeInForce
from tests.conftest import (
    ROUTING_EVENTS,
    accepted,
    cancel_cmd,
    commands,
    ev,
    halt_cmd,
    mass_cancel_cmd,
    new_cmd,
    records,
    replace_cmd,
    resume_cmd,
    send,
    set_limits_cmd,
    trade,
)

BUY, SELL = Side.BUY, Side.SELL
MARKET = OrdType.MARKET
IOC, FOK = TimeInForce.IOC, TimeInForce.FOK
POST_ONLY = Flags.POST_ONLY

# A script touching every command and outcome, on instruments 1 (qty 1..50) and 2 (qty 2..10).
SCRIPT = [
    new_cmd(1, 1, SELL, 101, 5, account=1),
    new_cmd(2, 1, SELL, 101, 3, account=2),
    new_cmd(3, 1, SELL, 103, 4, account=1),
    new_cmd(4, 1, BUY, 99, 6, account=3),
    new_cmd(5, 1, BUY, 102, 7, account=3),             # trades 5 with 1 and 2 with 2
    new_cmd(6, 1, BUY, 0, 2, account=3, ord_type=MARKET),  # trades with 2 @101 and 3 @103
    new_cmd(7, 1, SELL, 90, 20, account=2, tif=IOC),   # trades 6 with 4, 14 cancelled
    new_cmd(8, 1, BUY, 103, 10, account=1, tif=FOK),   # unfillable: only 3 on offer
    new_cmd(9, 1, BUY, 98, 3, account=1, flags=POST_ONLY),
    new_cmd(10, 1, SELL, 98, 3, account=1, flags=POST_ONLY),  # rejected: would take
    new_cmd(11, 2, BUY, 50, 1, account=1),             # rejected: below min
    new_cmd(12, 2, BUY, 50, 5, account=1),
    new_cmd(12, 1, BUY, 50, 5, account=1),             # rejected: duplicate across instruments
    replace_cmd(9, 97, 3, account=1),                  # new price: back of level 97
    replace_cmd(9, 97, 2, account=1),                  # shrinks in place
    replace_cmd(3, 98, 6, account=1),                  # 103 -> 98: rests, the best bid is 97
    replace_cmd(3, 97, 6, account=1),                  # trades 2 with 9 at 97, rests 3
    cancel_cmd(12, account=2),                         # wrong account
    cancel_cmd(12, account=1),
    cancel_cmd(12, account=1),                         # now finished
    new_cmd(13, 9, BUY, 50, 5),                        # unknown instrument
    new_cmd(14, 1, 3, 50, 5),                          # bad side
    new_cmd(15, 2, SELL, 60, 4, account=2),
    halt_cmd(2, account=9),                            # INSTRUMENT_STATE
    new_cmd(16, 2, SELL, 60, 4, account=2),            # rejected: halted
    replace_cmd(15, 61, 4, account=2),                 # rejected: halted
    resume_cmd(2, account=9),
    set_limits_cmd(2, 1, 4, account=9),
    set_limits_cmd(2, 5, 4, account=9),                # rejected: min above max
    mass_cancel_cmd(account=2, side=SELL),             # cancels 15
    mass_cancel_cmd(all_accounts=True, instrument=1),  # whatever still rests on 1
    mass_cancel_cmd(instrument=9),                     # rejected: unknown instrument
]


def stamped(rows):
    """Give every row its own seq and ts_ns."""
    return [(i + 1, 1000 * (i + 1)) + tuple(row[2:]) for i, row in enumerate(rows)]


def test_process_gives_the_same_events_as_the_same_commands_sent_per_call(make_core):
    rows = stamped(SCRIPT)
    per_call, batch = make_core((1, 1, 50), (2, 2, 10)), make_core((1, 1, 50), (2, 2, 10))
    counts = [send(per_call, row) for row in rows]
    events = per_call.drain_events()
    out = batch.process(commands(rows))
    assert records(out) == records(events)
    assert out.tobytes() == events.tobytes()
    assert sum(counts) == len(events)
    assert per_call.state_digest() == batch.state_digest()
    # the script covers every event type of a core without risk (tests/core/test_risk* has RISK)
    assert {e.type for e in ev(out)} == set(EventType) - {EventType.RISK, *ROUTING_EVENTS}


def test_process_in_chunks_gives_the_same_events_as_one_batch(make_core):
    rows = stamped(SCRIPT)
    whole, chunked = make_core((1, 1, 50), (2, 2, 10)), make_core((1, 1, 50), (2, 2, 10))
    out = whole.process(commands(rows))
    parts = [chunked.process(commands(rows[i:i + 3])) for i in range(0, len(rows), 3)]
    assert np.concatenate(parts).tobytes() == out.tobytes()


def test_seq_and_ts_are_copied_onto_every_event_of_the_command(make_core):
    rows = stamped(SCRIPT)
    core = make_core((1, 1, 50), (2, 2, 10))
    for row in rows:
        send(core, row)
        got = {(r["seq"], r["ts_ns"]) for r in records(core.drain_events())}
        assert got == {(row[0], row[1])}


def test_negative_and_extreme_seq_and_ts_are_copied_verbatim(make_core):
    core = make_core(1)
    core.submit(1, 1, BUY, 100, 5, seq=-1, ts_ns=-(2 ** 63))
    core.submit(2, 1, SELL, 100, 5, seq=2 ** 63 - 1, ts_ns=0)
    assert [(r["seq"], r["ts_ns"]) for r in records(core.drain_events())] == [
        (-1, -(2 ** 63)), (2 ** 63 - 1, 0), (2 ** 63 - 1, 0)]


def test_the_cmd_field_names_the_command_that_produced_the_event(make_core):
    rows = stamped(SCRIPT)
    core = make_core((1, 1, 50), (2, 2, 10))
    out = core.process(commands(rows))
    by_seq = {row[0]: row[7] for row in rows}
    assert all(r["cmd"] == by_seq[r["seq"]] for r in records(out))


def test_each_command_returns_the_number_of_events_it_appended(make_core):
    core = make_core(1)
    assert core.submit(1, 1, SELL, 100, 2) == 1
    assert core.submit(2, 1, SELL, 101, 2) == 1
    assert core.pending_events == 2
    assert core.submit(3, 1, BUY, 101, 5, tif=IOC) == 4
    assert core.pending_events == 6
    assert core.cancel(3) == 1
    assert core.replace(4, 100, 1) == 1
    assert core.pending_events == 8
    assert len(core.drain_events()) == 8


def test_drain_returns_the_pending_events_once(make_core):
    core = make_core(1)
    empty = core.drain_events()
    assert empty.dtype == EVENT_DTYPE and len(empty) == 0
    core.submit(1, 1, SELL, 100, 2)
    first = core.drain_events()
    assert first.dtype == EVENT_DTYPE
    assert ev(first) == [accepted(1, 100, 2)]
    assert core.pending_events == 0
    assert len(core.drain_events()) == 0


def test_process_returns_only_its_own_events_and_leaves_earlier_ones_pending(make_core):
    core = make_core(1)
    core.submit(1, 1, SELL, 100, 2, seq=1)
    out = core.process(commands([new_cmd(2, 1, BUY, 100, 1, seq=2)]))
    assert ev(out) == [accepted(2, 100, 1), trade(2, 1, 100, 1, 0, 1)]
    assert core.pending_events == 1
    assert ev(core.drain_events()) == [accepted(1, 100, 2)]


def test_process_of_an_empty_array_returns_an_empty_event_array(make_core):
    core = make_core(1)
    out = core.process(np.zeros(0, dtype=COMMAND_DTYPE))
    assert out.dtype == EVENT_DTYPE and len(out) == 0


def test_process_accepts_a_strided_view(make_core):
    core = make_core(1)
    rows = commands([new_cmd(i, 1, BUY, 100 - i, 1) for i in range(1, 7)])
    out = core.process(rows[::2])
    assert ev(out) == [accepted(1, 99, 1), accepted(3, 97, 1), accepted(5, 95, 1)]


def test_process_refuses_anything_but_a_one_dimensional_command_array(make_core):
    core = make_core(1)
    with pytest.raises(TypeError):
        core.process(np.zeros(2, dtype=EVENT_DTYPE))
    with pytest.raises(TypeError):
        core.process([new_cmd(1, 1, BUY, 100, 1)])
    with pytest.raises(ValueError):
        core.process(np.zeros((2, 2), dtype=COMMAND_DTYPE))
    assert core.pending_events == 0


def test_per_call_arguments_out_of_their_field_range_raise_and_do_nothing(make_core):
    core = make_core(1)
    before = core.state_digest()
    for kwargs in (dict(side=256), dict(account=-1), dict(instrument=2 ** 32),
                   dict(order_id=2 ** 63), dict(flags=1 << 16), dict(qty=-(2 ** 63) - 1)):
        args = dict(order_id=1, instrument=1, side=BUY, price=100, qty=1)
        args.update(kwargs)
        with pytest.raises(OverflowError):
            core.submit(**args)
    with pytest.raises(OverflowError):
        core.cancel(1, account=2 ** 32)
    with pytest.raises(OverflowError):
        core.replace(1, 2 ** 63, 1)
    assert core.pending_events == 0
    assert core.state_digest() == before


def test_per_call_defaults_are_account_0_limit_gtc_no_flags_seq_0(make_core):
    core = make_core(1)
    core.submit(1, 1, BUY, 100, 1)
    assert records(core.drain_events()) == [dict(
        seq=0, ts_ns=0, order_id=1, other_id=0, price=100, qty=1, leaves=1, other_leaves=0,
        instrument=1, account=0, other_account=0, reason=0, type=EventType.ACCEPTED, side=BUY,
        cmd=CommandType.NEW)]
    assert core.order(1)["ord_type"] == OrdType.LIMIT
    assert core.order(1)["tif"] == TimeInForce.GTC
    assert core.order(1)["flags"] == 0


def test_events_of_a_large_batch_are_all_returned(make_core):
    core = make_core(1)
    rows = [new_cmd(i, 1, BUY if i % 2 else SELL, 100, 1) for i in range(1, 5001)]
    out = core.process(commands(rows))
    assert len(out) == 5000 + 2500  # every sell trades with the buy before it
    assert core.open_orders == 0
    assert [e.type for e in ev(out[:5])] == [
        EventType.ACCEPTED, EventType.ACCEPTED, EventType.TRADE, EventType.ACCEPTED,
        EventType.ACCEPTED]
    records(out)  # asserts the padding of every event is zero


def test_another_thread_cannot_touch_a_core_while_process_runs_without_the_gil():
    import threading

    import numpy as np

    from engine._core import Core
    from engine.schema import COMMAND_DTYPE

    n = 400_000
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    cmds["cmd"], cmds["instrument"], cmds["ord_type"], cmds["tif"], cmds["qty"] = 1, 1, 1, 1, 1
    cmds["order_id"] = np.arange(1, n + 1)
    cmds["side"] = 1 + (cmds["order_id"] % 2)
    cmds["price"] = np.where(cmds["side"] == 1, 100 - cmds["order_id"] % 50,
                             200 + cmds["order_id"] % 50)
    refused: list[str] = []
    for _attempt in range(5):  # the other thread is all but certain to run inside the first one
        core = Core()
        core.add_instrument(1)
        started = threading.Event()

        def batch():
            started.set()
            core.process(cmds)

        def poke():
            started.wait()
            while worker.is_alive():
                try:
                    core.best_bid(1)
                except RuntimeError as e:
                    refused.append(str(e))
                    return

        worker = threading.Thread(target=batch)
        other = threading.Thread(target=poke)
        other.start()
        worker.start()
        worker.join()
        other.join()
        core.check_integrity()
        assert core.open_orders == n
        if refused:
            break
    assert refused and "another thread" in refused[0]
    assert core.submit(n + 1, 1, 1, 100, 1) == 1   # usable again once process() returned
