"""Books with thousands of price levels: the two-tier level store (blocks of levels plus a
directory of blocks) splits and empties blocks at the top, in the middle and at the far end,
and the core must still agree with the reference model event for event."""
import numpy as np
import pytest

from engine.reference import ReferenceCore
from engine.schema import COMMAND_DTYPE, CommandType, OrdType, Side, TimeInForce
from tests.conftest import load_core_class


def _stream(seed: int, n: int, spread: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    cmds["seq"] = np.arange(1, n + 1)
    cmds["ts_ns"] = cmds["seq"] * 10
    live: list[int] = []
    for i in range(n):
        r = cmds[i]
        x = rng.random()
        if live and x < 0.25:
            r["cmd"] = CommandType.CANCEL
            r["order_id"] = live.pop(int(rng.integers(len(live))))
        elif live and x < 0.32:
            r["cmd"] = CommandType.REPLACE
            r["order_id"] = live[int(rng.integers(len(live)))]
            r["price"] = 100_000 + int(rng.integers(-spread, spread))
            r["qty"] = int(rng.integers(1, 20))
        else:
            side = int(rng.integers(1, 3))
            # most orders passive and spread over `spread` ticks, a few deep into the other side
            off = int(rng.integers(1, spread))
            price = 100_000 - off if side == Side.BUY else 100_000 + off
            if x > 0.97:
                price = 100_000 + off // 8 if side == Side.BUY else 100_000 - off // 8
            r["cmd"] = CommandType.NEW
            r["order_id"] = i + 1
            r["side"] = side
            r["price"] = price
            r["qty"] = int(rng.integers(1, 20))
            r["ord_type"] = OrdType.LIMIT
            r["tif"] = TimeInForce.GTC
            live.append(i + 1)
    return cmds


@pytest.mark.parametrize("seed,spread", [(1, 3_000), (2, 300), (3, 20_000)])
def test_core_matches_reference_with_thousands_of_levels(seed, spread):
    core_cls = load_core_class()
    assert core_cls is not None, "the compiled core is not built"
    cmds = _stream(seed, 12_000, spread)
    core, ref = core_cls(), ReferenceCore()
    core.add_instrument(1)
    ref.add_instrument(1)
    cmds["instrument"] = 1
    deepest = 0
    for start in range(0, len(cmds), 1_000):
        chunk = cmds[start:start + 1_000]
        ev_core, ev_ref = core.process(chunk), ref.process(chunk)
        assert ev_core.tobytes() == ev_ref.tobytes(), f"events differ in chunk at {start}"
        core.check_integrity()
        assert core.state_digest() == ref.state_digest()
        assert core.depth(1, 10_000) == ref.depth(1, 10_000)
        deepest = max(deepest, *(len(side) for side in core.depth(1, 100_000)))
    # the stream really built deep books (several blocks of levels per side)
    assert deepest > 200


def test_sweeping_thousands_of_levels_in_one_order():
    core_cls = load_core_class()
    core = core_cls()
    core.add_instrument(1)
    n = 5_000
    for i in range(n):
        core.submit(i + 1, 1, Side.SELL, 1_000 + 2 * i, 1)      # 5,000 one-lot asks, 2 ticks apart
    core.check_integrity()
    assert len(core.depth(1, n)[1]) == n
    core.drain_events()
    # a deep insert in the middle, then a buy that takes every level below it
    core.submit(n + 1, 1, Side.SELL, 1_000 + 2 * 2_500 + 1, 7)
    core.submit(n + 2, 1, Side.BUY, 1_000 + 2 * 2_500 + 1, 2_501 + 7)
    ev = core.drain_events()
    trades = ev[ev["type"] == 3]
    assert len(trades) == 2_502
    assert trades["price"].tolist() == [1_000 + 2 * i for i in range(2_501)] + [6_001]
    assert trades["other_id"][-1] == n + 1 and trades["leaves"][-1] == 0
    core.check_integrity()
    assert core.best_ask(1) == (1_000 + 2 * 2_501, 1)
    assert len(core.depth(1, n)[1]) == n - 2_501
    assert core.best_bid(1) is None


@pytest.mark.parametrize("seed,spread", [(4, 3_000), (5, 20_000)])
def test_mass_cancel_across_thousands_of_levels(seed, spread):
    """MASS_CANCEL walks each side from the best level down while it removes levels and empties
    whole blocks (accounts own runs of about 100 adjacent prices, longer than a block)."""
    core_cls = load_core_class()
    cmds = _stream(seed, 12_000, spread)
    cmds["instrument"] = 1
    rng = np.random.default_rng(seed)
    runs = 1 + (np.abs(cmds["price"] - 100_000) // 100) % 3
    cmds["account"] = np.where(rng.random(len(cmds)) < 0.98, runs, rng.integers(1, 4, len(cmds)))
    cmds["cmd"][cmds["cmd"] != CommandType.NEW] = CommandType.NEW  # build up: no cancels
    cmds["order_id"] = np.arange(1, len(cmds) + 1)
    cmds["side"] = np.where(cmds["side"] == 0, 1, cmds["side"])
    cmds["ord_type"], cmds["tif"] = OrdType.LIMIT, TimeInForce.GTC
    cmds["qty"] = np.maximum(cmds["qty"], 1)
    core, ref = core_cls(), ReferenceCore()
    for engine in (core, ref):
        engine.add_instrument(5)
        engine.add_instrument(1)
    assert core.process(cmds).tobytes() == ref.process(cmds).tobytes()
    assert min(len(side) for side in core.depth(1, 100_000)) > 500
    admin = np.zeros(5, dtype=COMMAND_DTYPE)
    admin["seq"] = np.arange(len(cmds) + 1, len(cmds) + 6)
    admin["cmd"] = CommandType.MASS_CANCEL
    admin["account"] = [2, 3, 1, 0, 0]
    admin["instrument"] = [1, 0, 1, 1, 0]
    admin["side"] = [0, Side.SELL, Side.BUY, 0, 0]
    admin["flags"] = [0, 0, 0, 0, 2]     # the last: every account's orders (a kill switch)
    for i in range(len(admin)):
        ev_core, ev_ref = core.process(admin[i:i + 1]), ref.process(admin[i:i + 1])
        assert ev_core.tobytes() == ev_ref.tobytes(), f"events differ at mass cancel {i}"
        core.check_integrity()
        assert core.state_digest() == ref.state_digest()
        assert core.depth(1, 100_000) == ref.depth(1, 100_000)
        assert (ev_core["reason"] == 6).all() and (ev_core["cmd"] == CommandType.MASS_CANCEL).all()
    assert len(ev_core) > 0 and core.open_orders == 0
