"""Pre-trade risk through the write path: the manifest records the initial risk tables, replay
and recovery (from scratch and from a snapshot) reproduce every risk reject and the same digest,
and a journal opened with another risk setup is refused."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from engine._core import Core
from engine.bench import WorkloadSpec, risk_tables
from engine.journal.format import (
    MANIFEST,
    JournalCorrupt,
    JournalMismatch,
    RiskManifest,
    list_snapshots,
    read_manifest,
)
from engine.journal.reader import Journal
from engine.journal.replay import replay
from engine.pipeline import Engine
from engine.schema import (
    COMMAND_DTYPE,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    KillSwitch,
    Reason,
    RiskKind,
)

from .conftest import INSTRUMENTS, counting_clock, workload

N = 20_000


def tables() -> dict[str, np.ndarray]:
    """Risk on for the workload's 16 accounts on instruments 1..8, with a few limits tight
    enough that the workload meets them."""
    spec = WorkloadSpec(n_instruments=len(INSTRUMENTS))
    t = risk_tables(spec)
    t["instruments"]["instrument"] = INSTRUMENTS.ids
    n_inst = len(INSTRUMENTS)
    for a in (0, 1, 2):                     # accounts 1..3: small orders only
        t["positions"]["max_order_qty"][a * n_inst:(a + 1) * n_inst] = 40
    t["accounts"]["max_open_orders"][3] = 20    # account 4
    t["cash"]["cash"][4 * 2] = 3_000_000         # account 5: little cash in currency 0
    return t


def risk_manifest(t: dict | None = None) -> RiskManifest:
    return RiskManifest.build(t if t is not None else tables(), ("USD", "EUR"), (2, 2))


def with_admin(cmds: np.ndarray) -> np.ndarray:
    """The workload with risk admin commands spliced in: a kill switch on account 7 and off
    again, reduce-only for account 8, a restriction, a tighter limit and an FX update."""
    admin = np.zeros(6, dtype=COMMAND_DTYPE)
    admin[0] = (0, 0, 0, 0, 0, 0, 7, CommandType.KILL_SWITCH, KillSwitch.KILLED, 0, 0, 0, 0)
    admin[1] = (0, 0, 0, 0, 0, 0, 8, CommandType.KILL_SWITCH, KillSwitch.REDUCE_ONLY, 0, 0, 0, 0)
    admin[2] = (0, 0, 0, 0, 0, 2, 9, CommandType.RESTRICT, 1, 0, 0, 0, 0)
    admin[3] = (0, 0, 0, 0, 10, 0, 10, CommandType.SET_RISK, 0, RiskKind.MAX_ORDER_QTY, 0, 0, 0)
    admin[4] = (0, 0, 0, 0, 8 * 10**15, 1, 0, CommandType.SET_RISK, 0, RiskKind.FX_RATE, 0, 0, 0)
    admin[5] = (0, 0, 0, 0, 0, 0, 7, CommandType.KILL_SWITCH, KillSwitch.ACTIVE, 0, 0, 0, 0)
    at = np.linspace(len(cmds) // 8, len(cmds) * 7 // 8, len(admin)).astype(int)
    return np.insert(cmds, at, admin)


def run_engine(path: Path, cmds: np.ndarray, **kw) -> tuple[np.ndarray, str]:
    with Engine(INSTRUMENTS, path, durability="write", clock_ns=counting_clock(),
                risk=kw.pop("risk", risk_manifest()), **kw) as eng:
        events = np.concatenate([eng.process(cmds[i:i + 997].copy())
                                 for i in range(0, len(cmds), 997)])
        return events, eng.state_digest()


def test_replay_reproduces_every_risk_reject_and_the_digest(tmp_path):
    cmds = with_admin(workload(N, seed=3))
    live, digest = run_engine(tmp_path / "j", cmds)
    reasons = set(live["reason"][live["type"] == EventType.REJECTED].tolist())
    for r in (Reason.RISK_MAX_ORDER_QTY, Reason.RISK_MAX_OPEN_ORDERS,
              Reason.RISK_INSUFFICIENT_CASH, Reason.RISK_KILL_SWITCH, Reason.RISK_REDUCE_ONLY,
              Reason.RISK_RESTRICTED):
        assert r in reasons, r.name
    assert (live["type"] == EventType.RISK).sum() == 6
    assert CancelCause.KILL_SWITCH in live["reason"][live["type"] == EventType.CANCELLED]
    r = replay(tmp_path / "j")
    assert r.core.risk_enabled
    assert r.events.tobytes() == live.tobytes()
    assert r.digest() == digest


def test_recovery_from_a_snapshot_holds_the_risk_tables(tmp_path):
    cmds = with_admin(workload(N, seed=4))
    half = len(cmds) // 2
    run_engine(tmp_path / "b", cmds[:half], snapshot_every=3_000)
    assert list_snapshots(tmp_path / "b")
    with Engine(INSTRUMENTS, tmp_path / "b", durability="write",
                clock_ns=counting_clock(start=10**12), risk=risk_manifest()) as eng:
        assert eng.recovery.snapshot_seq > 0
        rest = np.concatenate([eng.process(cmds[i:i + 997].copy())
                               for i in range(half, len(cmds), 997)])
        digest = eng.state_digest()
        tables_now = eng.core.risk_state()
    # the journal replayed from its first command gives the same events and state
    whole = replay(tmp_path / "b")
    assert whole.stats.snapshot_seq == 0
    assert whole.events[-len(rest):].tobytes() == rest.tobytes()
    assert whole.digest() == digest
    # and so does a backtest that starts from a snapshot
    r = replay(tmp_path / "b", start=half + 100)
    assert r.stats.snapshot_seq > 0
    assert r.digest() == digest
    for k, v in r.core.risk_state().items():
        assert v.tobytes() == tables_now[k].tobytes(), k


def test_a_journal_opened_with_another_risk_setup_is_refused(tmp_path):
    run_engine(tmp_path / "j", workload(500))
    other = tables()
    other["cash"]["cash"][0] += 1
    for risk, words in ((risk_manifest(other), "other initial risk tables"),
                        (None, "with pre-trade risk, the config has it off")):
        with pytest.raises(JournalMismatch, match=words):
            Engine(INSTRUMENTS, tmp_path / "j", durability="write", risk=risk)
    run_engine(tmp_path / "plain", workload(500), risk=None)
    with pytest.raises(JournalMismatch, match="without pre-trade risk"):
        Engine(INSTRUMENTS, tmp_path / "plain", durability="write", risk=risk_manifest())


def test_a_damaged_risk_manifest_is_corrupt(tmp_path):
    run_engine(tmp_path / "j", workload(200))
    m = tmp_path / "j" / MANIFEST
    raw = json.loads(m.read_text())
    cash = bytearray(base64.b64decode(raw["risk"]["tables"]["cash"]))
    cash[0] ^= 1
    raw["risk"]["tables"]["cash"] = base64.b64encode(bytes(cash)).decode()
    m.write_text(json.dumps(raw))
    with pytest.raises(JournalCorrupt, match="risk digest does not match"):
        read_manifest(tmp_path / "j")
    raw["risk"]["tables"]["cash"] = "***"
    m.write_text(json.dumps(raw))
    with pytest.raises(JournalCorrupt, match="not valid base64"):
        Journal(tmp_path / "j")


def test_load_state_refuses_risk_tables_that_disagree_with_the_orders():
    core = Core()
    for inst in INSTRUMENTS:
        core.add_instrument(inst.id)
    core.enable_risk(tables())
    core.submit(1, 1, 1, 10_000, 5, account=6)
    state = core.export_state()
    fresh = Core()
    for inst in INSTRUMENTS:
        fresh.add_instrument(inst.id)
    fresh.load_state(state)
    assert fresh.state_digest() == core.state_digest()
    state["risk"]["accounts"]["open_orders"][5] = 0
    again = Core()
    for inst in INSTRUMENTS:
        again.add_instrument(inst.id)
    with pytest.raises(ValueError, match="open_orders is 0, the resting orders add up to 1"):
        again.load_state(state)
    assert not again.risk_enabled and again.open_orders == 0
