"""The write path (sequencer -> journal -> core), recovery, snapshots and determinism."""
from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pytest

from engine.config import default_config
from engine.journal import writer as writer_mod
from engine.journal.format import JournalError, JournalMismatch, list_segments, list_snapshots
from engine.journal.reader import Journal
from engine.journal.replay import replay
from engine.pipeline import Engine
from engine.schema import CommandType, EventType, Flags, OrdType, Reason, TimeInForce

from tests.conftest import ROUTING_EVENTS

from .conftest import INSTRUMENTS, counting_clock, workload


def every_kind(n: int, seed: int = 7) -> np.ndarray:
    """A long random session with every command type and instruction, and some bad commands."""
    cmds = workload(n, seed)
    rng = np.random.default_rng(seed)
    new = np.flatnonzero(cmds["cmd"] == CommandType.NEW)
    limit_gtc = new[(cmds["ord_type"][new] == OrdType.LIMIT) & (cmds["tif"][new] == TimeInForce.GTC)]
    fok = rng.choice(new, size=len(new) // 20, replace=False)
    cmds["tif"][fok] = TimeInForce.FOK
    post = rng.choice(limit_gtc, size=len(limit_gtc) // 20, replace=False)
    post = post[cmds["tif"][post] == TimeInForce.GTC]
    cmds["flags"][post] = Flags.POST_ONLY
    bad = rng.choice(len(cmds), size=n // 100, replace=False)
    kinds = rng.integers(0, 4, size=len(bad))
    cmds["instrument"][bad[kinds == 0]] = 99          # unknown instrument
    cmds["qty"][bad[kinds == 1]] = 0                   # invalid quantity
    cmds["cmd"][bad[kinds == 2]] = 12                  # unknown command
    cmds["account"][bad[kinds == 3]] = 5               # someone else's order (cancel/replace)
    # admin commands: halts resumed 40 commands later, limit changes, mass cancels
    admin = rng.choice(len(cmds) - 40, size=max(n // 1000, 4), replace=False)
    for k, i in enumerate(admin.tolist()):
        kind = k % 4
        if kind == 0:
            cmds["cmd"][i], cmds["cmd"][i + 40] = CommandType.HALT, CommandType.RESUME
            cmds["instrument"][i + 40] = cmds["instrument"][i]
        elif kind == 1:
            cmds["cmd"][i] = CommandType.SET_LIMITS
            cmds["price"][i], cmds["qty"][i] = 1 + k % 3, 60 + k % 50   # min, max (lots)
        else:
            cmds["cmd"][i] = CommandType.MASS_CANCEL
            cmds["instrument"][i] *= k % 2                   # 0: every instrument
            cmds["side"][i] = k % 3                          # 0: both sides
            cmds["flags"][i] = Flags.ALL_ACCOUNTS if k % 5 == 0 else 0
    return cmds


def run_live(engine: Engine, cmds: np.ndarray, seed: int = 3) -> np.ndarray:
    """Feed ``cmds`` in random batch sizes; return every event, in order."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(cmds):
        k = int(rng.integers(1, 400))
        out.append(engine.process(cmds[i:i + k].copy()))
        i += k
    return np.concatenate(out)


def test_process_stamps_journals_then_matches(jdir: Path) -> None:
    with Engine(INSTRUMENTS, jdir, durability="write", clock_ns=counting_clock(500, 1)) as eng:
        cmds = workload(10)
        ev = eng.process(cmds)
        assert cmds["seq"].tolist() == list(range(1, 11))       # stamped in place
        assert set(cmds["ts_ns"].tolist()) == {500}             # one timestamp per batch
        assert ev["seq"].min() == 1 and ev["seq"].max() == 10
        assert eng.last_seq == eng.durable_seq == 10
        ev2 = eng.process(workload(20)[10:])
        assert int(ev2["ts_ns"][0]) == 501
    assert Journal(jdir).commands()["seq"].tolist() == list(range(1, 21))


def test_live_events_equal_replayed_events_byte_for_byte(jdir: Path) -> None:
    cmds = every_kind(60_000)
    with Engine(INSTRUMENTS, jdir, durability="fsync", clock_ns=counting_clock(),
                segment_bytes=1 << 20) as eng:
        live = run_live(eng, cmds)
        live_digest = eng.state_digest()
        assert eng.wait_durable(eng.last_seq, timeout=30)
    types = set(live["type"].tolist())
    # every event type of a core without risk or routing happened (test_risk_journal.py has
    # RISK, test_routing_journal.py the parent events)
    assert types == {int(t) for t in EventType} - {EventType.RISK, *ROUTING_EVENTS}
    reasons = set(live["reason"][live["type"] == EventType.REJECTED].tolist())
    assert {Reason.BOOK_UNKNOWN_INSTRUMENT, Reason.BOOK_INVALID_QUANTITY,
            Reason.BOOK_UNKNOWN_COMMAND, Reason.BOOK_UNKNOWN_ORDER,
            Reason.BOOK_POST_ONLY_WOULD_TAKE} <= reasons
    assert len(list_segments(jdir)) > 1
    result = replay(jdir)
    assert result.events.tobytes() == live.tobytes()
    assert result.digest() == live_digest
    again = replay(jdir, batch=777)                              # batch size does not matter
    assert again.events.tobytes() == live.tobytes()


def test_restart_recovers_the_same_state_and_continues(jdir: Path) -> None:
    cmds = every_kind(20_000, seed=11)
    with Engine(INSTRUMENTS, jdir, durability="write", clock_ns=counting_clock()) as eng:
        run_live(eng, cmds[:12_000])
        digest, sample = eng.state_digest(), [eng.core.order(i) for i in range(1, 3000, 7)]
    with Engine(INSTRUMENTS, jdir, durability="write", clock_ns=counting_clock()) as eng:
        assert eng.recovery.replayed == 12_000 and eng.recovery.snapshot_seq == 0
        assert eng.state_digest() == digest
        assert [eng.core.order(i) for i in range(1, 3000, 7)] == sample
        ev = eng.process(cmds[12_000:12_010].copy())
        assert int(ev["seq"][0]) == 12_001
        assert int(ev["ts_ns"][0]) > 12_000                     # the clock never went back
    assert replay(jdir).stats.commands == 12_010


def test_recovery_from_a_snapshot_equals_recovery_from_scratch(jdir: Path, caplog) -> None:
    cmds = every_kind(30_000, seed=5)
    with Engine(INSTRUMENTS, jdir, durability="write", snapshot_every=7_000,
                clock_ns=counting_clock()) as eng:
        run_live(eng, cmds)
        digest = eng.state_digest()
        orders = [eng.core.order(i) for i in range(1, 20_000, 13)]
    snaps = list_snapshots(jdir)
    assert len(snaps) >= 4
    with Engine(INSTRUMENTS, jdir, durability="write") as eng:
        rec = eng.recovery
        assert rec.snapshot_seq == snaps[0][0] and rec.replayed == 30_000 - rec.snapshot_seq
        assert eng.state_digest() == digest
        assert [eng.core.order(i) for i in range(1, 20_000, 13)] == orders
        eng.core.check_integrity()
    # a damaged newest snapshot is passed over, logged, for the one before it
    newest = snaps[0][1]
    raw = bytearray(newest.read_bytes())
    raw[100] ^= 0xFF
    newest.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="engine.journal"):
        with Engine(INSTRUMENTS, jdir, durability="write") as eng:
            assert eng.recovery.snapshot_seq == snaps[1][0]
            assert eng.state_digest() == digest
    assert "snapshot not used" in caplog.text and "CRC32C" in caplog.text


def test_a_snapshot_is_never_ahead_of_the_durable_journal(jdir: Path) -> None:
    with Engine(INSTRUMENTS, jdir, durability="fsync", clock_ns=counting_clock()) as eng:
        eng.process(workload(5000))
        path = eng.snapshot().result(timeout=30)
        assert eng.durable_seq >= 5000
    assert path.name == "snapshot-00000000000000005000.snap"


@pytest.mark.parametrize("policy", ["archive", "delete"])
def test_retention_removes_segments_a_snapshot_covers(jdir: Path, policy: str) -> None:
    cmds = workload(30_000, seed=2)
    seg = 64 + 2000 * 64
    with Engine(INSTRUMENTS, jdir, durability="write", snapshot_every=10_000,
                segment_bytes=seg, retention=policy, keep_snapshots=1,
                clock_ns=counting_clock()) as eng:
        run_live(eng, cmds)
        digest = eng.state_digest()
    first = list_segments(jdir)[0][0]
    assert first > 1
    assert len(list_snapshots(jdir)) == 1
    archived = sorted((jdir / "archive").iterdir()) if policy == "archive" else []
    assert (len(archived) > 0) == (policy == "archive")
    with Engine(INSTRUMENTS, jdir, durability="write") as eng:
        assert eng.state_digest() == digest and eng.recovery.snapshot_seq >= first - 1
    with pytest.raises(JournalError, match="archived"):
        replay(jdir)                              # from scratch is no longer possible
    tail = replay(jdir, start=eng.recovery.snapshot_seq + 1)   # through the snapshot it is
    assert tail.digest() == digest


def test_a_failed_journal_write_leaves_the_core_untouched(jdir: Path, monkeypatch) -> None:
    with Engine(INSTRUMENTS, jdir, durability="write", clock_ns=counting_clock()) as eng:
        eng.process(workload(100)[:50])
        digest = eng.state_digest()

        def full(fd: int, view: memoryview, path: Path | None) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(writer_mod.JournalWriter, "_write_all", staticmethod(full))
        with pytest.raises(JournalError, match="the disk is full"):
            eng.process(workload(100)[50:])
        assert eng.state_digest() == digest and eng.core.pending_events == 0
        assert eng.last_seq == 50 and eng.sequencer.next_seq == 51
        with pytest.raises(JournalError, match="intake stopped"):
            eng.process(workload(100)[50:])
    assert Journal(jdir).count == 50


def test_bad_input_to_process_is_refused_before_the_journal(jdir: Path) -> None:
    with Engine(INSTRUMENTS, jdir, durability="write") as eng:
        with pytest.raises(TypeError):
            eng.process(np.zeros(3, dtype=np.int64))
        with pytest.raises(TypeError):
            eng.process([1, 2])  # type: ignore[arg-type]
        assert eng.last_seq == 0
    with pytest.raises(ValueError, match="snapshot_every"):
        Engine(INSTRUMENTS, None, durability="none", snapshot_every=-1)


def test_another_instrument_set_is_refused(jdir: Path) -> None:
    from engine.instruments import InstrumentSet

    Engine(INSTRUMENTS, jdir, durability="write").close()
    fewer = InstrumentSet(list(INSTRUMENTS)[:3])
    with pytest.raises(JournalMismatch, match="another instrument set"):
        Engine(fewer, jdir, durability="write")
    Engine(INSTRUMENTS, jdir, durability="write").close()          # and it released the lock


def test_from_config_follows_the_journal_table(tmp_path: Path) -> None:
    cfg = default_config()
    with Engine.from_config(cfg, journal_dir=tmp_path / "j", durability="write") as eng:
        assert eng.journal.durability == "write" and eng.snapshot_every == 1_000_000
        eng.process(workload(10))
    assert Journal(tmp_path / "j").count == 10
    with Engine.from_config(cfg, durability="none") as eng:
        eng.process(workload(10))
        assert eng.journal.path is None
        with pytest.raises(JournalError, match="need a journal directory"):
            eng.snapshot()


def test_engine_core_gives_the_per_call_api_a_journal(jdir: Path) -> None:
    from engine.market import Market
    from engine.pipeline import EngineCore

    with Engine(INSTRUMENTS, jdir, durability="write", clock_ns=counting_clock()) as eng:
        m = Market(INSTRUMENTS, core_factory=lambda: EngineCore(eng))
        m.sell("ES", 3, "5800.25")
        fills = m.buy("ES", 2, "5800.50")
        assert [e.type for e in fills] == ["ACCEPTED", "TRADE"]
        assert m.buy("ES", 1, "5800.30")[0].reason == "EDGE_PRICE_OFF_GRID"   # never journaled
        m.cancel(1)
        assert m.core.open_orders == 0 and eng.last_seq == 3
        digest = eng.state_digest()
        with pytest.raises(ValueError, match="fixed by its journal"):
            EngineCore(eng).add_instrument(99)
    r = replay(jdir)
    assert r.stats.commands == 3 and r.stats.trades == 1 and r.digest() == digest
