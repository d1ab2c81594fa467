"""Venues and routing through the write path (docs/ROUTING.md, docs/JOURNAL.md): the manifest
records the venues and books, replay reproduces every routing decision byte for byte with the
same digest, recovery from a snapshot that holds live parents continues exactly as an engine
that never stopped, and a journal opened with other venues, or with its venues tampered with,
is refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.config import default_config, parse_config
from engine.journal.format import MANIFEST, JournalCorrupt, JournalMismatch, list_snapshots, \
    read_manifest
from engine.journal.replay import replay
from engine.pipeline import Engine
from engine.schema import COMMAND_DTYPE, CommandType, EventType, Flags, Reason
from engine.venues import VenueSet

from .conftest import counting_clock

AAPL, SPY = 1, 2
MID = {AAPL: 15_000, SPY: 50_000}   # 150.00 and 500.00 in ticks of 0.01
ALICE, BOB = 1, 2                   # the embedded config's funded demo accounts


def stream(n: int, seed: int) -> np.ndarray:
    """Direct orders on LIT, ALT and CROSS, sweep and sweep_post parents, cancels and replaces
    of recent ids (parents among them), around each instrument's mid."""
    rng = np.random.default_rng(seed)
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    recent: list[tuple[int, int]] = []          # (order id, account)
    for k in range(n):
        r = cmds[k]
        x = rng.random()
        if recent and x < 0.15:
            oid, account = recent[int(rng.integers(len(recent)))]
            r["cmd"], r["order_id"], r["account"] = CommandType.CANCEL, oid, account
            continue
        if recent and x < 0.22:
            oid, account = recent[int(rng.integers(len(recent)))]
            r["cmd"], r["order_id"], r["account"] = CommandType.REPLACE, oid, account
            r["price"] = 0                      # filled in below from the order's own price
            r["qty"] = int(rng.integers(1, 20))
            continue
        inst = AAPL if rng.random() < 0.7 else SPY
        side = int(rng.integers(1, 3))
        account = ALICE if k % 2 else BOB
        oid = k + 1
        r["order_id"], r["account"], r["instrument"], r["side"] = oid, account, inst, side
        r["qty"] = int(rng.integers(1, 40))
        r["ord_type"], r["tif"] = 1, 1
        off = int(rng.integers(-6, 7))
        r["price"] = MID[inst] + (off if side == 1 else -off)
        if x < 0.72:
            r["cmd"] = CommandType.NEW
            r["venue"] = int(rng.integers(1, 4))
            r["price"] = MID[inst] - int(rng.integers(1, 8)) if side == 1 else \
                MID[inst] + int(rng.integers(1, 8))
        else:
            r["cmd"] = CommandType.ROUTE
            if rng.random() < 0.4:
                r["flags"] = Flags.POST_REMAINDER
            else:
                r["tif"] = 2 if rng.random() < 0.8 else 3
        recent = (recent + [(oid, account)])[-12:]
    prices = {int(c["order_id"]): int(c["price"]) for c in cmds
              if c["cmd"] in (CommandType.NEW, CommandType.ROUTE)}
    rep = cmds["cmd"] == CommandType.REPLACE
    cmds["price"][rep] = [prices.get(int(i), 1) for i in cmds["order_id"][rep]]
    return cmds


def run_live(eng: Engine, cmds: np.ndarray, batch: int = 97) -> np.ndarray:
    out = [eng.process(cmds[s:s + batch].copy()) for s in range(0, len(cmds), batch)]
    return np.concatenate(out)


def open_engine(jdir: Path, config=None, **kwargs) -> Engine:
    kwargs.setdefault("clock_ns", counting_clock())
    return Engine.from_config(config or default_config(), journal_dir=jdir, durability="write",
                              **kwargs)


def without_venues(text: str) -> str:
    """A config's text with its [[venues]] tables taken out."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.strip() == "[[venues]]"
        if not skipping:
            out.append(line)
    return "".join(out)


def test_replay_reproduces_every_routing_decision_and_the_digest(tmp_path: Path) -> None:
    cmds = stream(6_000, seed=3)
    with open_engine(tmp_path / "j") as eng:
        live = run_live(eng, cmds)
        digest = eng.state_digest()
        venues = eng.venues
    assert len(venues) == 3
    types = set(live["type"].tolist())
    assert {EventType.PARENT_FILL, EventType.PARENT_DONE, EventType.TRADE} <= types
    trades = live[live["type"] == EventType.TRADE]
    assert set(trades["venue"].tolist()) == {1, 2, 3}
    assert (trades["fee"] > 0).any() and (trades["other_fee"] < 0).any()  # LIT: fee, rebate
    assert (live["parent_id"] != 0).sum() > 100
    manifest = read_manifest(tmp_path / "j")
    assert manifest.venue_set() == venues and manifest.venues_digest == venues.digest()
    result = replay(tmp_path / "j")
    assert result.events.tobytes() == live.tobytes()
    assert result.digest() == digest


def test_recovery_from_a_snapshot_with_live_parents_continues_as_if_never_stopped(
        tmp_path: Path) -> None:
    cmds = stream(4_000, seed=8)
    first, rest = cmds[:3_000], cmds[3_000:]
    with open_engine(tmp_path / "ref") as eng:
        run_live(eng, first)
        expected = run_live(eng, rest)
        expected_digest = eng.state_digest()
    clock = counting_clock()         # one clock across the restart: the same stamps
    with open_engine(tmp_path / "j", snapshot_every=500, clock_ns=clock) as eng:
        run_live(eng, first)
        parents = eng.core.export_state()["parents"]
        assert len(parents) > 0, "the stream was meant to leave parents resting"
    assert list_snapshots(tmp_path / "j")
    with open_engine(tmp_path / "j", snapshot_every=500, clock_ns=clock) as eng:
        assert eng.recovery.snapshot_seq > 0
        got = run_live(eng, rest)
        assert eng.state_digest() == expected_digest
    assert got.tobytes() == expected.tobytes()


OTHER_VENUES = """
[[venues]]
id = 1
name = "LIT"
maker_fee = -10
taker_fee = 30
instruments = ["AAPL", "SPY"]
"""


def test_a_journal_opened_with_other_venues_is_refused(tmp_path: Path) -> None:
    with open_engine(tmp_path / "j") as eng:
        run_live(eng, stream(200, seed=1))
    base = default_config()
    text = (Path(__file__).resolve().parents[2] / "engine" / "default_config.toml").read_text()
    other = parse_config(without_venues(text) + OTHER_VENUES)
    assert VenueSet.from_config(other).digest() != VenueSet.from_config(base).digest()
    with pytest.raises(JournalMismatch, match="other venues"):
        open_engine(tmp_path / "j", other)
    no_venues = parse_config(without_venues(text))
    with pytest.raises(JournalMismatch, match="with venues, the config has none"):
        open_engine(tmp_path / "j", no_venues)


def test_tampered_venues_in_the_manifest_are_detected(tmp_path: Path) -> None:
    with open_engine(tmp_path / "j") as eng:
        run_live(eng, stream(100, seed=2))
    path = tmp_path / "j" / MANIFEST
    raw = json.loads(path.read_text())
    raw["venues"]["venues"][0]["taker_fee"] += 1
    path.write_text(json.dumps(raw))
    with pytest.raises(JournalCorrupt, match="venues_digest"):
        read_manifest(tmp_path / "j")
    raw["venues_digest"] = None
    path.write_text(json.dumps(raw))
    with pytest.raises(JournalCorrupt, match="come together"):
        read_manifest(tmp_path / "j")


def test_a_direct_cancel_of_a_child_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with open_engine(tmp_path / "j") as eng:
        rest = np.zeros(2, dtype=COMMAND_DTYPE)
        rest[0] = (0, 0, 1, 15_010, 5, AAPL, BOB, CommandType.NEW, 2, 1, 1, 0, 2)
        # a sweep_post buy for 20: takes the 5 on ALT, rests 15 on LIT (the best maker fee)
        rest[1] = (0, 0, 2, 15_010, 20, AAPL, ALICE, CommandType.ROUTE, 1, 1, 1,
                   Flags.POST_REMAINDER, 0)
        ev = eng.process(rest)
        child = int(ev[(ev["type"] == EventType.ACCEPTED) & (ev["order_id"] < 0)
                       & (ev["venue"] == 1)]["order_id"][0])
        before = eng.state_digest()
        bad = np.zeros(2, dtype=COMMAND_DTYPE)
        bad[0] = (0, 0, child, 0, 0, 0, ALICE, CommandType.CANCEL, 0, 0, 0, 0, 0)
        bad[1] = (0, 0, child, 15_010, 10, 0, ALICE, CommandType.REPLACE, 0, 0, 0, 0, 0)
        ev = eng.process(bad)
        assert ev["type"].tolist() == [EventType.REJECTED] * 2
        assert ev["reason"].tolist() == [Reason.BOOK_CHILD_ORDER] * 2
        assert eng.state_digest() == before
