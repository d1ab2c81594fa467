"""Differential tests with pre-trade risk on (docs/RISK.md): random risk tables and random
command streams (orders, cancels, replaces, market orders that risk protects, and the risk
admin commands SET_RISK / KILL_SWITCH / RESTRICT with good and bad fields) through the
reference model and the compiled core, per call and via process(); events must be identical
byte for byte and the digests (which hash the risk tables) equal after every chunk.

The tables are small on purpose: cash, limits, bands and order rates near what the orders
use, so that every check both passes and fails often.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.reference import ReferenceCore
from engine.schema import (
    RISK_TABLES,
    UNLIMITED,
    CommandType,
    EventType,
    Flags,
    Reason,
)
from tests.core.test_differential import (
    FUZZ,
    HISTORY,
    INSTRUMENTS,
    N_IDS,
    Item,
    Runner,
    cancel_items,
    draw_fault,
    new_items,
    replace_items,
    resolve,
    run,
)
from tests.conftest import load_core_class

CORE = load_core_class()
ACCOUNTS = (1, 2, 3)   # the accounts account_of() gives; 4 is never a risk account
N_CCY = 2


@st.composite
def tables(draw) -> dict[str, np.ndarray]:
    ni, na = len(INSTRUMENTS), len(ACCOUNTS)
    t = {k: np.zeros(n, dtype=d) for (k, d), n in zip(
        RISK_TABLES.items(), [na, na * ni, na * N_CCY, ni, N_CCY, 1])}
    inst = t["instruments"]
    inst["instrument"] = [i for i, _, _ in INSTRUMENTS]
    for i in range(ni):
        inst[i]["ccy"] = draw(st.integers(0, N_CCY - 1))
        inst[i]["k"] = draw(st.sampled_from([1, 1, 50, 1000]))
        inst[i]["band_bps"] = draw(st.sampled_from([0, 0, 100, 300, 2000]))
        inst[i]["ref_price"] = draw(st.sampled_from([0, 100, 100, 98]))
        inst[i]["fee_ppm"] = draw(st.sampled_from([0, 0, 250, 10_000]))
        inst[i]["restricted"] = draw(st.sampled_from([0, 0, 0, 0, 1]))
    t["currencies"]["fx"] = [draw(st.sampled_from([1000, 1100, 7])) for _ in range(N_CCY)]
    acct = t["accounts"]
    acct["account"] = ACCOUNTS
    for a in range(na):
        acct[a]["base_ccy"] = draw(st.integers(0, N_CCY - 1))
        acct[a]["kill"] = draw(st.sampled_from([0, 0, 0, 0, 1, 2]))
        acct[a]["max_open_orders"] = draw(st.sampled_from([UNLIMITED, UNLIMITED, 0, 2, 5]))
        if draw(st.booleans()):
            burst = draw(st.integers(1, 3))
            acct[a]["rate_per_s"] = draw(st.sampled_from([100_000, 500_000, 1_000_000]))
            acct[a]["rate_burst"] = burst
            acct[a]["tokens_nano"] = draw(st.integers(0, burst)) * 10**9
        for c in range(N_CCY):
            row = t["cash"][a * N_CCY + c]
            row["cash"] = draw(st.sampled_from([0, 500, 5_000, 200_000, 10**12]))
            row["credit"] = draw(st.sampled_from([0, 0, 300]))
        for i in range(ni):
            p = t["positions"][a * ni + i]
            p["position"] = draw(st.sampled_from([0, 0, 3, -3, 6]))
            p["cost"] = abs(int(p["position"])) * draw(st.sampled_from([97, 100, 103])) \
                * int(inst[i]["k"])
            p["realized"] = draw(st.sampled_from([0, -50, 70]))
            p["max_order_qty"] = draw(st.sampled_from([UNLIMITED, 3, 5]))
            p["max_order_notional"] = draw(st.sampled_from([UNLIMITED, UNLIMITED, 400, 3_000]))
            p["position_limit"] = draw(st.sampled_from([UNLIMITED, 4, 8]))
            p["short_limit"] = draw(st.sampled_from([0, 3, 10, UNLIMITED]))
            p["restricted"] = draw(st.sampled_from([0, 0, 0, 0, 0, 1]))
    t["global"]["kill"] = draw(st.sampled_from([0, 0, 0, 0, 0, 1, 2]))
    return t


# -- the risk admin commands, with bad fields now and then ----------------------------------

@st.composite
def set_risk_items(draw) -> Item:
    kind = draw(st.integers(0, 13))
    return Item(dict(cmd=CommandType.SET_RISK, ord_type=kind,
                     instrument=draw(st.sampled_from([0, 1, 2, 3, 9, 1])),
                     qty=draw(st.sampled_from([0, 1, 3, 5, 100, 500, 2_000, -1, UNLIMITED])),
                     price=draw(st.sampled_from([0, 1, 2, 3]))),
                draw_fault(draw, [("flags", 1), ("flags", 4), ("account", 4), ("account", 0),
                                  ("instrument", 7), ("qty", -5)]), None)


@st.composite
def kill_items(draw) -> Item:
    return Item(dict(cmd=CommandType.KILL_SWITCH, side=draw(st.sampled_from([0, 0, 0, 1, 2])),
                     flags=draw(st.sampled_from([0, 0, 0, int(Flags.ALL_ACCOUNTS)]))),
                draw_fault(draw, [("side", 3), ("account", 4), ("flags", 1)]), None)


@st.composite
def restrict_items(draw) -> Item:
    return Item(dict(cmd=CommandType.RESTRICT, side=draw(st.sampled_from([0, 0, 1])),
                     instrument=draw(st.sampled_from([1, 2, 3])),
                     flags=draw(st.sampled_from([0, 0, int(Flags.ALL_ACCOUNTS)]))),
                draw_fault(draw, [("side", 2), ("instrument", 9), ("instrument", 0),
                                  ("account", 4), ("flags", 1)]), None)


WEIGHTS = (["new"] * 20 + ["cancel"] * 5 + ["replace"] * 8 + ["set_risk"] * 3 + ["kill"] * 1
           + ["restrict"] * 1)


@st.composite
def risk_items(draw) -> Item:
    kind = draw(st.sampled_from(WEIGHTS))
    return draw(dict(new=new_items(), cancel=cancel_items(), replace=replace_items(),
                     set_risk=set_risk_items(), kill=kill_items(),
                     restrict=restrict_items())[kind])


def resolve_risk(stream: list[Item]) -> list[tuple]:
    rows = resolve(stream)
    # admin rows keep the account the fault gave them (resolve sets account_of(order_id) = 1
    # for order id 0); spread them over the accounts by position instead
    out = []
    for n, r in enumerate(rows):
        if r[7] in (CommandType.SET_RISK, CommandType.KILL_SWITCH, CommandType.RESTRICT) \
                and r[6] == 1:
            r = r[:6] + (n % 3 + 1,) + r[7:]
        out.append(r)
    return out


risk_streams = st.lists(risk_items(), min_size=20, max_size=150).map(resolve_risk)
chunkings = st.lists(st.integers(1, 24), min_size=1, max_size=6)


class RiskRunner(Runner):
    def __init__(self, name: str, cls: type, mode: str, risk: dict) -> None:
        self.name, self.mode = name, mode
        self.engine = cls(history=HISTORY)
        for spec in INSTRUMENTS:
            self.engine.add_instrument(*spec)
        self.engine.enable_risk({k: v.copy() for k, v in risk.items()})


def runners(risk: dict, classes) -> list[RiskRunner]:
    return [RiskRunner(f"{name}-{mode}", cls, mode, risk)
            for name, cls in classes for mode in ("batch", "per_call")]


def final_states_agree(rs: list[RiskRunner]) -> None:
    states = [r.engine.risk_state() for r in rs]
    for r, s in zip(rs[1:], states[1:]):
        for k in RISK_TABLES:
            assert s[k].tobytes() == states[0][k].tobytes(), (r.name, k)


@FUZZ
@given(risk=tables(), rows=risk_streams, chunk_sizes=chunkings)
def test_core_matches_the_reference_with_risk_on(risk, rows, chunk_sizes):
    rs = runners(risk, [("reference", ReferenceCore), ("core", CORE)])
    run(rows, chunk_sizes, rs)
    final_states_agree(rs)


def test_the_random_streams_reach_every_risk_reason_and_event():
    """The generator is worth its salt: over a fixed set of draws, the core's events include
    every risk reject reason that orders can get, RISK events and kill-switch cancels."""
    from hypothesis import HealthCheck, settings

    seen_reasons: set[int] = set()
    seen_types: set[int] = set()
    causes: set[int] = set()

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(risk=tables(), rows=risk_streams)
    def collect(risk, rows):
        core = RiskRunner("core", CORE, "batch", risk)
        from tests.conftest import commands
        ev = core.engine.process(commands(rows))
        seen_types.update(ev["type"].tolist())
        seen_reasons.update(ev["reason"][ev["type"] == EventType.REJECTED].tolist())
        causes.update(ev["reason"][ev["type"] == EventType.CANCELLED].tolist())

    collect()
    order_reasons = {r for r in Reason if r.name.startswith("RISK_")} - {
        Reason.RISK_DISABLED, Reason.RISK_NO_REFERENCE_PRICE}
    missing = {r.name for r in order_reasons if r not in seen_reasons}
    assert not missing, missing
    assert EventType.RISK in seen_types
    assert 7 in causes  # KILL_SWITCH
