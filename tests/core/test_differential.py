"""Differential tests: random command streams through the reference model and the compiled core,
per call and via process() in random chunks; events, digests, depth, instrument states and
order() must agree. The streams carry every command type: orders, and the admin commands
(mass cancel, halt, resume, set limits) at a low rate, so that books still build up.

``ENGINE_FUZZ_EXAMPLES`` sets the number of hypothesis examples (``make fuzz`` raises it).
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.reference import ReferenceCore
from engine.schema import EVENT_DTYPE, CommandType, Flags
from tests.conftest import commands, load_core_class, per_call_expressible, records, send

CORE = load_core_class()

# Instruments: (id, min_qty, max_qty). Instrument 9 is never registered.
INSTRUMENTS = [(1, 1, 10), (2, 1, 2 ** 63 - 1), (3, 2, 8)]
UNKNOWN_INSTRUMENT = 9
HISTORY = 16  # small, so that eviction happens
N_IDS = 24  # order ids 1..N_IDS, so that duplicates and reuse of finished ids happen
PRICES = range(97, 104)  # a narrow band: orders cross often


def account_of(order_id: int) -> int:
    """The account that normally owns an id; cancels and replaces usually use it."""
    return order_id % 3 + 1


FIELDS = ("seq", "ts_ns", "order_id", "price", "qty", "instrument", "account", "cmd", "side",
          "ord_type", "tif", "flags", "venue")


def row(**fields: int) -> tuple:
    return tuple(int(fields.get(name, 0)) for name in FIELDS)


def stamp(rows: list[tuple]) -> list[tuple]:
    return [(i + 1, 1_000 * (i + 1)) + r[2:] for i, r in enumerate(rows)]


# -- engines ----------------------------------------------------------------------------------

def make_engine(cls: type):
    engine = cls(history=HISTORY)
    for spec in INSTRUMENTS:
        engine.add_instrument(*spec)
    return engine


class Runner:
    """One engine fed chunk by chunk in one of three ways; ``feed`` returns the chunk's events.

    batch:    process(chunk)
    per_call: submit/cancel/replace/mass_cancel/halt/resume/set_limits per row (a one-row
              process() for rows the per-call API cannot express), then drain_events()
    mixed:    the first half per call and left pending, the second half through process(),
              which must not touch the pending events
    """

    def __init__(self, name: str, cls: type, mode: str) -> None:
        self.name, self.mode = name, mode
        self.engine = make_engine(cls)

    def _per_call(self, rows: list[tuple]) -> list[np.ndarray]:
        parts = []
        for r in rows:
            if per_call_expressible(r):
                send(self.engine, r)
            else:
                own = self.engine.process(commands([r]))
                parts.append(self.engine.drain_events())  # the earlier, still pending events
                parts.append(own)
        parts.append(self.engine.drain_events())
        return parts

    def feed(self, rows: list[tuple]) -> np.ndarray:
        if self.mode == "batch":
            out = self.engine.process(commands(rows))
            assert self.engine.pending_events == 0
            return out
        if self.mode == "per_call":
            return np.concatenate(self._per_call(rows))
        half = len(rows) // 2
        for r in rows[:half]:
            assert per_call_expressible(r), "the mixed runner takes per-call expressible rows"
            send(self.engine, r)
        pending = self.engine.pending_events
        own = self.engine.process(commands(rows[half:]))
        assert self.engine.pending_events == pending, "process() touched pending events"
        return np.concatenate([self.engine.drain_events(), own])


def snapshot(engine) -> dict:
    """Everything observable about an engine's state."""
    return dict(
        digest=engine.state_digest(),
        depth={i: engine.depth(i, 100) for i, _, _ in INSTRUMENTS},
        best={i: (engine.best_bid(i), engine.best_ask(i)) for i, _, _ in INSTRUMENTS},
        open_orders=engine.open_orders,
        pending=engine.pending_events,
        instruments={i: engine.instrument_state(i) for i in (0, 1, 2, 3, UNKNOWN_INSTRUMENT)},
        orders={oid: engine.order(oid) for oid in range(-1, N_IDS + 2)},
    )


def differences(a: dict, b: dict) -> dict:
    """The entries (one level down) in which two snapshots differ, as (a, b) pairs."""
    out = {}
    for key in a:
        if isinstance(a[key], dict):
            out.update({(key, k): (a[key][k], b[key].get(k)) for k in a[key]
                        if a[key][k] != b[key].get(k)})
        elif a[key] != b[key]:
            out[key] = (a[key], b[key])
    return out


def run(rows: list[tuple], chunk_sizes: list[int], runners: list[Runner]) -> int:
    """Feed ``rows`` in chunks to every runner and require identical results after each chunk.
    Returns the number of events produced (to let callers check the stream did something)."""
    total, start, k = 0, 0, 0
    while start < len(rows):
        size = chunk_sizes[k % len(chunk_sizes)] if chunk_sizes else len(rows)
        chunk, start, k = rows[start:start + size], start + size, k + 1
        outputs = [r.feed(chunk) for r in runners]
        first = runners[0]
        for runner, out in zip(runners[1:], outputs[1:]):
            assert out.dtype == EVENT_DTYPE
            if out.tobytes() != outputs[0].tobytes():
                assert records(out) == records(outputs[0]), (runner.name, first.name, chunk)
                raise AssertionError(f"{runner.name}: event bytes differ (padding?)")
        states = []
        for runner in runners:
            runner.engine.check_integrity()
            states.append(snapshot(runner.engine))
        for runner, state in zip(runners[1:], states[1:]):
            assert differences(state, states[0]) == {}, (runner.name, first.name, chunk)
        total += len(outputs[0])
    return total


def runners_for(*classes: tuple[str, type], mixed: bool) -> list[Runner]:
    modes = ["batch", "per_call"] + (["mixed"] if mixed else [])
    return [Runner(f"{name}-{mode}", cls, mode) for name, cls in classes for mode in modes]


# -- random streams: hypothesis ---------------------------------------------------------------
# Mostly valid commands over a narrow price band (so that they trade), with about one row in
# eight carrying a fault: one bad field, a wrong account, or garbage in the ignored fields.
# Most cancels and replaces aim at one of the last few ids submitted (``target``), resolved
# after drawing, so that they hit live orders often; the rest pick any id.

NEW_FAULTS = [
    ("order_id", 0), ("order_id", -1), ("instrument", UNKNOWN_INSTRUMENT), ("side", 0),
    ("side", 3), ("ord_type", 0), ("ord_type", 3), ("tif", 0), ("tif", 4), ("flags", 2),
    ("flags", 0x8000), ("qty", 0), ("qty", -2), ("qty", 9), ("qty", 11), ("qty", 50),
    ("price", 0), ("price", -1), ("account", 0),
]
REPLACE_FAULTS = [
    ("order_id", 0), ("order_id", 10 ** 6), ("account", 0), ("qty", 0), ("qty", -1),
    ("qty", 11), ("qty", 50), ("price", 0), ("price", -1), ("instrument", 2), ("side", 2),
    ("ord_type", 2), ("tif", 3), ("flags", 1),
]
CANCEL_FAULTS = [
    ("order_id", 0), ("order_id", -1), ("account", 0), ("instrument", 2), ("side", 1),
    ("price", 100), ("qty", 3), ("flags", 1),
]
MASS_CANCEL_FAULTS = [
    ("instrument", UNKNOWN_INSTRUMENT), ("side", 3), ("side", 255), ("flags", 1),
    ("flags", 0x8000), ("flags", 3), ("account", 0), ("order_id", 0), ("price", 100),
    ("qty", 3), ("ord_type", 1), ("tif", 2),
]
STATE_FAULTS = [  # HALT and RESUME
    ("instrument", UNKNOWN_INSTRUMENT), ("instrument", 0), ("order_id", 5), ("side", 1),
    ("price", 100), ("qty", 3), ("flags", 2), ("tif", 1),
]
SET_LIMITS_FAULTS = [
    ("instrument", UNKNOWN_INSTRUMENT), ("instrument", 0), ("price", 0), ("price", -1),
    ("price", 13), ("qty", 0), ("qty", -5), ("order_id", 5), ("side", 2), ("flags", 1),
]


class Item(NamedTuple):
    fields: dict
    fault: tuple | None  # (field, value) applied last
    target: int | None  # k: aim at the k-th most recently submitted id


# The simplest draws (what hypothesis shrinks towards) mean "no fault" and "the latest id".

def draw_fault(draw, faults: list) -> tuple | None:
    return draw(st.sampled_from(faults)) if draw(st.integers(0, 7)) == 7 else None


def draw_target(draw) -> int | None:
    return None if draw(st.integers(0, 4)) == 4 else draw(st.integers(0, 5))


@st.composite
def new_items(draw) -> Item:
    return Item(dict(
        cmd=CommandType.NEW, order_id=draw(st.integers(1, N_IDS)),
        instrument=draw(st.sampled_from([1, 1, 1, 1, 2, 2, 3])),
        side=draw(st.sampled_from([1, 2])),
        ord_type=draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2])),
        tif=draw(st.sampled_from([1, 1, 1, 1, 1, 2, 3])),
        flags=draw(st.sampled_from([0, 0, 0, 1])),
        price=draw(st.sampled_from(PRICES)),
        qty=draw(st.integers(1, 6))), draw_fault(draw, NEW_FAULTS), None)


@st.composite
def cancel_items(draw) -> Item:
    return Item(dict(cmd=CommandType.CANCEL, order_id=draw(st.integers(1, N_IDS))),
                draw_fault(draw, CANCEL_FAULTS), draw_target(draw))


@st.composite
def replace_items(draw) -> Item:
    return Item(dict(cmd=CommandType.REPLACE, order_id=draw(st.integers(1, N_IDS)),
                     price=draw(st.sampled_from(PRICES)), qty=draw(st.integers(1, 8))),
                draw_fault(draw, REPLACE_FAULTS), draw_target(draw))


@st.composite
def unknown_command_items(draw) -> Item:
    return Item(dict(cmd=draw(st.sampled_from([0, 12, 255])), order_id=draw(st.integers(1, N_IDS)),
                     instrument=1, side=1, ord_type=1, tif=1, price=100, qty=1), None, None)


@st.composite
def mass_cancel_items(draw) -> Item:
    # the account follows the (otherwise ignored) order id, as for cancels: 1, 2 or 3
    return Item(dict(cmd=CommandType.MASS_CANCEL, order_id=draw(st.integers(1, N_IDS)),
                     instrument=draw(st.sampled_from([0, 0, 1, 1, 2, 3])),
                     side=draw(st.sampled_from([0, 0, 1, 2])),
                     flags=draw(st.sampled_from([0, 0, 0, int(Flags.ALL_ACCOUNTS)]))),
                draw_fault(draw, MASS_CANCEL_FAULTS), None)


@st.composite
def state_items(draw) -> Item:
    # resumes twice as often as halts: an instrument is halted about a third of the time
    cmd = draw(st.sampled_from([CommandType.RESUME, CommandType.RESUME, CommandType.HALT]))
    return Item(dict(cmd=cmd, instrument=draw(st.sampled_from([1, 1, 2, 3]))),
                draw_fault(draw, STATE_FAULTS), None)


@st.composite
def set_limits_items(draw) -> Item:
    min_qty = draw(st.integers(1, 3))
    max_qty = draw(st.sampled_from([min_qty, 4, 6, 8, 10, 12, 2 ** 63 - 1]))
    return Item(dict(cmd=CommandType.SET_LIMITS, instrument=draw(st.sampled_from([1, 2, 3])),
                     price=min_qty, qty=max(min_qty, max_qty)),
                draw_fault(draw, SET_LIMITS_FAULTS), None)


ITEM_WEIGHTS = (["new"] * 20 + ["cancel"] * 6 + ["replace"] * 8 + ["unknown"] * 2
                + ["mass_cancel"] * 1 + ["state"] * 2 + ["set_limits"] * 1)


@st.composite
def items(draw) -> Item:
    kind = draw(st.sampled_from(ITEM_WEIGHTS))
    return draw(dict(new=new_items(), cancel=cancel_items(), replace=replace_items(),
                     unknown=unknown_command_items(), mass_cancel=mass_cancel_items(),
                     state=state_items(), set_limits=set_limits_items())[kind])


def resolve(stream: list[Item]) -> list[tuple]:
    """Command rows from drawn items: targets become recent ids, accounts follow the id, every
    other NEW has its side flipped, then the fault is applied; rows get their own seq/ts_ns."""
    recent: list[int] = []
    rows = []
    for index, item in enumerate(stream):
        fields = dict(item.fields)
        if item.target is not None and recent:
            fields["order_id"] = recent[-1 - item.target % len(recent)]
        fields["account"] = account_of(fields.get("order_id", 0))
        if fields["cmd"] == CommandType.NEW:
            recent = (recent + [fields["order_id"]])[-6:]
            if index % 2:  # runs of identical draws (which hypothesis likes) still cross
                fields["side"] = 3 - fields["side"]
        if item.fault is not None:
            name, value = item.fault
            fields[name] = value
        rows.append(row(**fields))
    return stamp(rows)


streams = st.lists(items(), min_size=20, max_size=150).map(resolve)
chunkings = st.lists(st.integers(1, 24), min_size=1, max_size=6)

FUZZ = settings(
    max_examples=int(os.environ.get("ENGINE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(rows=streams, chunk_sizes=chunkings)
def test_reference_per_call_and_process_agree_on_random_streams(rows, chunk_sizes):
    run(rows, chunk_sizes, runners_for(("reference", ReferenceCore), mixed=False))


@FUZZ
@given(rows=streams, chunk_sizes=chunkings)
def test_core_matches_the_reference_on_random_streams(rows, chunk_sizes):
    run(rows, chunk_sizes,
        runners_for(("reference", ReferenceCore), ("core", CORE), mixed=False))


# -- a long seeded stream ---------------------------------------------------------------------

def seeded_stream(seed: int, n: int, n_ids: int) -> list[tuple]:
    """``n`` commands from a fixed numpy seed: the same distribution as the hypothesis streams,
    but over ``n_ids`` ids so that books grow deeper, and one admin command in about 33. Only
    per-call expressible rows, so that the "mixed" runner can be used."""
    rng = np.random.RandomState(seed)

    def pick(options, p=None):
        return options[rng.choice(len(options), p=p)]

    def some_id():
        return int(rng.randint(1, n_ids + 1)) if rng.rand() < 0.97 else pick([0, -1, 10 ** 6])

    def some_price():
        return int(rng.randint(PRICES.start, PRICES.stop)) if rng.rand() < 0.97 \
            else pick([0, -1, 10 ** 9])

    def some_qty():
        return int(rng.randint(1, 7)) if rng.rand() < 0.93 else pick([0, -2, 9, 11, 50])

    def some_account(order_id):
        return account_of(order_id) if rng.rand() < 0.9 else int(rng.randint(0, 4))

    rows = []
    for _ in range(n):
        kind = rng.rand()
        order_id = some_id()
        if kind < 0.55:
            rows.append(row(
                cmd=CommandType.NEW, order_id=order_id, account=some_account(order_id),
                instrument=pick([1, 2, 3, UNKNOWN_INSTRUMENT], [0.4, 0.35, 0.2, 0.05]),
                side=pick([1, 2, 0, 3], [0.485, 0.485, 0.015, 0.015]),
                ord_type=pick([1, 2, 0, 3], [0.8, 0.17, 0.015, 0.015]),
                tif=pick([1, 2, 3, 0, 4], [0.7, 0.13, 0.13, 0.02, 0.02]),
                flags=pick([0, 1, 2, 0x8000], [0.8, 0.16, 0.02, 0.02]),
                price=some_price(), qty=some_qty()))
        elif kind < 0.75:
            rows.append(row(cmd=CommandType.CANCEL, order_id=order_id,
                            account=some_account(order_id)))
        elif kind < 0.97:
            rows.append(row(cmd=CommandType.REPLACE, order_id=order_id,
                            account=some_account(order_id), price=some_price(),
                            qty=int(rng.randint(0, 13))))
        elif kind < 0.98:
            rows.append(row(
                cmd=CommandType.MASS_CANCEL, order_id=order_id, account=some_account(order_id),
                instrument=pick([0, 1, 2, 3, UNKNOWN_INSTRUMENT], [0.3, 0.3, 0.2, 0.15, 0.05]),
                side=pick([0, 1, 2, 3], [0.5, 0.24, 0.24, 0.02]),
                flags=pick([0, int(Flags.ALL_ACCOUNTS)], [0.75, 0.25])))
        elif kind < 0.99:
            # resumes twice as often as halts, so that instruments are mostly open
            rows.append(row(cmd=pick([CommandType.HALT, CommandType.RESUME], [1 / 3, 2 / 3]),
                            account=int(rng.randint(0, 4)),
                            instrument=pick([1, 2, 3, UNKNOWN_INSTRUMENT], [0.4, 0.3, 0.25, 0.05])))
        else:
            min_qty = int(rng.randint(0, 4))  # 0: rejected
            rows.append(row(cmd=CommandType.SET_LIMITS, account=int(rng.randint(0, 4)),
                            instrument=pick([1, 2, 3, UNKNOWN_INSTRUMENT], [0.4, 0.3, 0.25, 0.05]),
                            price=min_qty, qty=pick([min_qty - 1, 6, 10, 12, 2 ** 63 - 1])))
    return stamp(rows)


def seeded_chunks(seed: int) -> list[int]:
    return [int(x) for x in np.random.RandomState(seed).randint(1, 64, size=50)]


def test_reference_per_call_process_and_mixed_agree_on_a_long_seeded_stream():
    rows = seeded_stream(seed=20240601, n=3000, n_ids=150)
    produced = run(rows, seeded_chunks(7), runners_for(("reference", ReferenceCore), mixed=True))
    assert produced > len(rows)  # trades happened


@pytest.mark.parametrize("seed", [1, 20240601])
def test_core_matches_the_reference_on_a_long_seeded_stream(seed):
    rows = seeded_stream(seed=seed, n=4000, n_ids=150)
    produced = run(rows, seeded_chunks(seed),
                   runners_for(("reference", ReferenceCore), ("core", CORE), mixed=True))
    assert produced > len(rows)
