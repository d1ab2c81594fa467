"""PyBook (engine/pybook.py), the pure-Python benchmark baseline, against the reference model and
the compiled core: seeded command streams through the per-call API must give byte-identical
events, equal digests, depth, best prices, open orders and order() states; the benchmark
workload must give the core's events exactly."""
from __future__ import annotations

import numpy as np
import pytest

from engine.bench import WorkloadSpec, as_rows, make_workload
from engine.pybook import PyBook
from engine.reference import ReferenceCore
from engine.schema import COMMAND_DTYPE, EVENT_DTYPE, INT64_MAX, EventType
from tests.conftest import ROUTING_EVENTS, load_core_class, records

# (id, min_qty, max_qty); instrument 9 is never registered
INSTRUMENTS = [(1, 1, 40), (2, 3, 20), (3, 1, INT64_MAX)]
UNKNOWN_INSTRUMENT = 9
HISTORY = 64  # small, so that order() sees evictions
CHECK_EVERY = 250


def make(cls: type):
    engine = cls(history=HISTORY)
    for spec in INSTRUMENTS:
        engine.add_instrument(*spec)
    return engine


# -- seeded streams ---------------------------------------------------------------------------

def stream(seed: int, n: int, huge: bool = False) -> list[tuple]:
    """``n`` per-call commands as (method, args, kwargs). Narrow price bands so that orders cross
    often; every order type, tif and POST_ONLY; cancels and replaces mostly of recent GTC orders
    (live, or filled meanwhile), some of unknown ids or from other accounts, some with bad
    fields; about one NEW in ten carries a bad field. With ``huge``, about a third of the
    quantities on instrument 3 and of the replaces sit near 2**63 - 1."""
    rng = np.random.default_rng(seed)
    out: list[tuple] = []
    ids: list[int] = []  # submitted ids, newest last
    owner: dict[int, int] = {}
    resting: list[int] = []  # GTC limit orders not cancelled by the stream: often still live

    def target() -> int:
        if resting and rng.random() < 0.85:
            return resting[-1 - int(rng.integers(0, min(len(resting), 40)))]
        return ids[-1 - int(rng.integers(0, min(len(ids), 60)))]

    next_id = 1
    for k in range(n):
        seq, ts = k + 1, 1_000 * (k + 1) + seed
        u = rng.random()
        if ids and u < 0.22:  # cancel
            oid = target()
            account = owner[oid]
            if oid in resting and rng.random() < 0.9:
                resting.remove(oid)
            v = rng.random()
            if v < 0.06:
                oid = int(rng.integers(10 ** 6, 10 ** 7))  # never used
            elif v < 0.12:
                oid = int(rng.choice([0, -1]))
            elif v < 0.2:
                account = account % 3 + 1  # someone else's order
            out.append(("cancel", (oid,), dict(account=account, seq=seq, ts_ns=ts)))
            continue
        if ids and u < 0.36:  # replace
            oid = target()
            account = owner[oid]
            price = 95 + int(rng.integers(0, 11))
            qty = 1 + int(rng.integers(0, 14))
            v = rng.random()
            if v < 0.04:
                oid = int(rng.integers(10 ** 6, 10 ** 7))
            elif v < 0.08:
                account = account % 3 + 1
            elif v < 0.12:
                qty = int(rng.choice([0, -3, 41, 10 ** 6]))
            elif v < 0.15:
                price = int(rng.choice([0, -1]))
            elif v < 0.5:
                price = None  # same price: the replace looks the price up below
            if huge and rng.random() < 0.3:
                qty = INT64_MAX - int(rng.integers(0, 40))
            out.append(("replace", (oid, price, qty), dict(account=account, seq=seq, ts_ns=ts)))
            continue
        # NEW
        instrument = int(rng.choice([1, 1, 2, 3]))
        side = int(rng.integers(1, 3))
        # mostly passive (1..6 ticks away from 100), one in four at or through it: the book
        # stays a few levels deep on both sides and crossing is common
        offset = int(rng.integers(-6, 0)) if rng.random() < 0.75 else int(rng.integers(0, 3))
        price = 100 + offset if side == 1 else 100 - offset
        qty = 1 + int(rng.integers(0, 12))
        ord_type = 2 if rng.random() < 0.1 else 1
        tif = int(rng.choice([1, 1, 1, 1, 2, 3]))
        flags = 1 if (ord_type == 1 and tif == 1 and rng.random() < 0.12) else 0
        account = int(rng.integers(1, 4))
        oid = next_id
        v = rng.random()
        if ids and v < 0.05:
            oid = ids[-1 - int(rng.integers(0, min(len(ids), 20)))]  # live (duplicate) or finished
        else:
            next_id += 1
        if huge and instrument == 3 and rng.random() < 0.35:
            qty = INT64_MAX - int(rng.integers(0, 60))
        if v > 0.9:  # one bad field
            field, value = [
                ("oid", 0), ("oid", -7), ("instrument", UNKNOWN_INSTRUMENT), ("side", 0),
                ("side", 3), ("ord_type", 0), ("ord_type", 3), ("tif", 0), ("tif", 4),
                ("flags", 2), ("flags", 3), ("flags", 0x8000), ("flags", 1), ("qty", 0),
                ("qty", -4), ("qty", 41), ("qty", 2), ("price", 0), ("price", -2),
            ][int(rng.integers(0, 19))]
            if field == "oid":
                oid = value
            elif field == "instrument":
                instrument = value
            elif field == "side":
                side = value
            elif field == "ord_type":
                ord_type = value
            elif field == "tif":
                tif = value
            elif field == "flags":
                flags = value
                if value == 1:  # POST_ONLY on a MARKET or IOC/FOK order
                    ord_type, tif = (2, 1) if rng.random() < 0.5 else (1, int(rng.integers(2, 4)))
            elif field == "qty":
                qty = value
            else:
                price = value
        if ord_type == 2 and rng.random() < 0.7:
            price = 0  # market orders usually carry no price; sometimes a stray one
        if oid > 0 and oid not in owner:
            ids.append(oid)
            owner[oid] = account
            if ord_type == 1 and tif == 1 and v <= 0.9:
                resting.append(oid)
        out.append(("submit", (oid, instrument, side, price, qty),
                    dict(account=account, ord_type=ord_type, tif=tif, flags=flags, seq=seq,
                         ts_ns=ts)))
    return out


def send(engine, method: str, args: tuple, kwargs: dict, prices: dict) -> int:
    if method == "replace" and args[1] is None:  # same price as now (or 100 if not live)
        args = (args[0], prices.get(args[0], 100), args[2])
    return getattr(engine, method)(*args, **kwargs)


def observe(engine) -> dict:
    return dict(
        digest=engine.state_digest(),
        depth=[engine.depth(i, 1000) for i, _, _ in INSTRUMENTS],
        best=[(engine.best_bid(i), engine.best_ask(i)) for i, _, _ in INSTRUMENTS],
        open_orders=engine.open_orders,
        pending=engine.pending_events,
    )


def assert_same_events(ours: np.ndarray, theirs: np.ndarray, where: str) -> None:
    assert ours.dtype == EVENT_DTYPE
    if ours.tobytes() != theirs.tobytes():
        assert records(ours) == records(theirs), where
        raise AssertionError(f"{where}: event bytes differ")


def run_stream(cmds: list[tuple]) -> np.ndarray:
    """Drive PyBook and the reference model call by call; compare after every CHECK_EVERY.
    Returns all events (to let the caller check what the stream exercised)."""
    ours, ref = make(PyBook), make(ReferenceCore)
    prices: dict[int, int] = {}  # live order id -> price, for same-price replaces
    drained = []
    for k, (method, args, kwargs) in enumerate(cmds, 1):
        n_ours = send(ours, method, args, kwargs, prices)
        n_ref = send(ref, method, args, kwargs, prices)
        assert n_ours == n_ref, (k, method, args, kwargs)
        if method == "submit" and args[0] > 0:
            prices[args[0]] = args[3]
        elif method == "replace" and args[1] is not None and args[1] > 0:
            prices[args[0]] = args[1]
        if k % CHECK_EVERY == 0 or k == len(cmds):
            assert observe(ours) == observe(ref), f"after command {k}"
            a, b = ours.drain_events(), ref.drain_events()
            assert_same_events(a, b, f"commands up to {k}")
            drained.append(b)
            ours.check_integrity()
            recent = {abs(c[1][0]) for c in cmds[max(0, k - 100):k]} | {0, 10 ** 6 + 1}
            for oid in sorted(recent):
                assert ours.order(oid) == ref.order(oid), (k, oid)
    return np.concatenate(drained)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_streams_match_the_reference(seed):
    events = run_stream(stream(seed, 3_000))
    types = set(events["type"].tolist())
    assert types == {int(t) for t in EventType} - {EventType.INSTRUMENT_STATE,
                                                          EventType.RISK, *ROUTING_EVENTS}
    reasons = set(events["reason"][events["type"] == EventType.REJECTED].tolist())
    assert len(reasons) >= 12, sorted(reasons)  # most reject reasons were exercised
    causes = set(events["reason"][events["type"] == EventType.CANCELLED].tolist())
    assert {1, 2, 3, 4} <= causes


def test_seeded_stream_with_quantities_near_int64_max_matches_the_reference():
    events = run_stream(stream(7, 3_000, huge=True))
    cancelled = events["reason"][events["type"] == EventType.CANCELLED].tolist()
    assert 5 in cancelled  # LEVEL_QUANTITY_LIMIT
    assert int(events["qty"].max()) > INT64_MAX - 100


def test_level_quantity_limit_at_the_exact_boundary_matches_the_reference():
    big = INT64_MAX - 10
    cmds = [
        ("submit", (1, 3, 1, 100, big), {}),
        ("submit", (2, 3, 1, 100, 10), {}),         # the level at exactly 2**63 - 1: rests
        ("submit", (3, 3, 1, 100, 1), {}),          # one over: LEVEL_QUANTITY_LIMIT
        ("submit", (4, 3, 1, 99, 11), {}),
        ("replace", (4, 100, 11), {}),              # moving onto the full level: cancelled
        ("submit", (5, 3, 2, 100, 4), {}),          # takes 4 from order 1
        ("submit", (6, 3, 1, 100, 4), {}),          # exactly fills the room again
        ("replace", (2, 100, 11), {}),              # one more lot at the back: cancelled
        ("submit", (7, 3, 2, 101, big), {}),
        ("submit", (8, 3, 2, 102, 10), {}),
        ("submit", (9, 3, 1, 102, INT64_MAX), dict(tif=3)),  # FOK: sums past int64, fills
        ("submit", (10, 3, 2, 100, INT64_MAX), dict(ord_type=2)),
    ]
    ours, ref = make(PyBook), make(ReferenceCore)
    for method, args, kwargs in cmds:
        assert send(ours, method, args, kwargs, {}) == send(ref, method, args, kwargs, {})
        assert observe(ours) == observe(ref), (method, args)
        ours.check_integrity()
    events = ref.drain_events()
    assert_same_events(ours.drain_events(), events, "level limit")
    assert (events["reason"][events["type"] == EventType.CANCELLED] == 5).sum() == 3
    for oid in range(1, 11):
        assert ours.order(oid) == ref.order(oid)


def test_long_queues_with_many_cancels_and_moves_match_the_reference():
    """PyBook deletes from a level lazily and compacts it when dead entries pile up: queue
    order, totals, counts and matching must not show it."""
    rng = np.random.default_rng(5)
    ours, ref = make(PyBook), make(ReferenceCore)
    cmds = [("submit", (1, 3, 2, 101, 5), dict(account=1))]  # the head that never leaves
    live: list[int] = []
    for oid in range(2, 400):
        cmds.append(("submit", (oid, 3, 2, 101 + int(rng.integers(0, 2)), 3), dict(account=1)))
        live.append(oid)
        if rng.random() < 0.8:  # cancel or move one of the live ones, usually
            victim = live.pop(int(rng.integers(0, len(live))))
            if rng.random() < 0.3:  # requeue: same price with more, or the other level
                cmds.append(("replace", (victim, 101 + int(rng.integers(0, 2)), 4),
                             dict(account=1)))
                live.append(victim)
            else:
                cmds.append(("cancel", (victim,), dict(account=1)))
    cmds.append(("replace", (1, 101, 4), dict(account=1)))  # shrink in place: keeps its place
    cmds.append(("submit", (1_000, 3, 1, 101, 30), dict(account=2, tif=2)))  # IOC into the queue
    cmds.append(("submit", (1_001, 3, 1, 0, 10 ** 4), dict(account=2, ord_type=2)))  # sweep
    prices: dict[int, int] = {}
    for k, (method, args, kwargs) in enumerate(cmds):
        assert send(ours, method, args, kwargs, prices) == send(ref, method, args, kwargs, prices)
        if k % 40 == 0 or k > len(cmds) - 4:
            assert observe(ours) == observe(ref), k
            for price in (101, 102):
                assert ours.level_orders(3, 2, price) == ref.level_orders(3, 2, price), k
            ours.check_integrity()
    assert_same_events(ours.drain_events(), ref.drain_events(), "long queues")
    assert ours.open_orders == 0


# -- process() ------------------------------------------------------------------------------

def test_process_matches_the_reference_on_raw_rows():
    """Rows the per-call API cannot express (unknown cmd, garbage in ignored fields), with
    events pending from per-call commands that process() must leave alone. No admin commands
    (4..7): PyBook rejects them as unknown where the reference carries them out."""
    rng = np.random.default_rng(11)
    rows = np.zeros(2_000, dtype=COMMAND_DTYPE)
    rows["seq"] = np.arange(1, len(rows) + 1)
    rows["ts_ns"] = rows["seq"] * 7
    rows["order_id"] = rng.integers(-1, 60, len(rows))
    rows["price"] = rng.integers(96, 105, len(rows))
    rows["qty"] = rng.integers(0, 14, len(rows))
    rows["instrument"] = rng.choice([1, 2, 3, 9], len(rows))
    rows["account"] = rng.integers(0, 3, len(rows))
    rows["cmd"] = rng.choice([0, 1, 1, 1, 1, 2, 2, 3, 3, 12], len(rows))
    rows["side"] = rng.choice([0, 1, 2, 2, 1], len(rows))
    rows["ord_type"] = rng.choice([1, 1, 1, 2, 3], len(rows))
    rows["tif"] = rng.choice([1, 1, 2, 3, 0], len(rows))
    rows["flags"] = rng.choice([0, 0, 0, 1, 2], len(rows))
    ours, ref = make(PyBook), make(ReferenceCore)
    for engine in (ours, ref):
        engine.submit(1_000, 1, 1, 90, 5, account=1)
        engine.cancel(5_000)
    for start in range(0, len(rows), 300):
        a, b = ours.process(rows[start:start + 300]), ref.process(rows[start:start + 300])
        assert_same_events(a, b, f"chunk at {start}")
        assert observe(ours) == observe(ref)
        for oid in range(-1, 61):
            assert ours.order(oid) == ref.order(oid), oid
    assert_same_events(ours.drain_events(), ref.drain_events(), "pending")


# -- the benchmark workload against the compiled core ------------------------------------------

def run_calls_collecting(engine, rows: list[tuple]) -> tuple[np.ndarray, list[int]]:
    """engine.bench.run_calls, keeping each drain and every call's return value."""
    submit, cancel, replace = engine.submit, engine.cancel, engine.replace
    drains, counts = [], []
    for i, (cmd, oid, inst, side, price, qty, acct, ot, tif, flags, seq, ts) in enumerate(rows, 1):
        if cmd == 1:
            counts.append(submit(oid, inst, side, price, qty, acct, ot, tif, flags, seq, ts))
        elif cmd == 2:
            counts.append(cancel(oid, acct, seq, ts))
        else:
            counts.append(replace(oid, price, qty, acct, seq, ts))
        if i & 4095 == 0:
            drains.append(engine.drain_events())
    drains.append(engine.drain_events())
    return np.concatenate(drains), counts


def test_benchmark_workload_matches_the_compiled_core():
    spec = WorkloadSpec(n_commands=20_000)
    rows = as_rows(make_workload(spec))
    engines = []
    for cls in (PyBook, load_core_class()):
        engine = cls()
        for i in range(spec.n_instruments):
            engine.add_instrument(i)
        engines.append(engine)
    (ours, our_counts), (core, core_counts) = (run_calls_collecting(e, rows) for e in engines)
    assert our_counts == core_counts
    assert_same_events(ours, core, "benchmark workload")
    assert len(core) > len(rows)
    assert engines[0].state_digest() == engines[1].state_digest()
    assert engines[0].open_orders == engines[1].open_orders
    for i in range(spec.n_instruments):
        assert engines[0].depth(i, 1000) == engines[1].depth(i, 1000)
    engines[0].check_integrity()
