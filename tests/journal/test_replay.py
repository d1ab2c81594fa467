"""The replay API: journals and arrays through a fresh core, ranges, numpy and Arrow out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from engine.journal import Journal, Replay, commands_to_arrow, events_to_arrow, new_core, replay
from engine.journal.format import RECORD_DTYPE
from engine.schema import COMMAND_DTYPE, EVENT_DTYPE

from .conftest import INSTRUMENTS, workload, write_journal


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    path = tmp_path_factory.mktemp("replay") / "journal"
    stamped = write_journal(path, workload(20_000, seed=9), segment_bytes=64 + 3000 * 64)
    core = new_core(INSTRUMENTS)
    return path, stamped, core.process(stamped)


def test_replaying_a_journal_gives_the_events_of_its_commands(journal) -> None:
    path, stamped, events = journal
    r = replay(path)
    assert r.events.tobytes() == events.tobytes()
    s = r.stats
    assert (s.commands, s.events, s.first_seq, s.last_seq) == (20_000, len(events), 1, 20_000)
    trades = events[events["type"] == 3]
    assert (s.trades, s.volume) == (len(trades), int(trades["qty"].sum()))
    assert s.commands_per_s > 0 and s.snapshot_seq == 0


def test_a_command_array_replays_like_its_journal(journal) -> None:
    path, stamped, events = journal
    r = replay(stamped, INSTRUMENTS, batch=1234)
    assert r.events.tobytes() == events.tobytes() and r.digest() == replay(path).digest()
    core = new_core(INSTRUMENTS)
    assert replay(stamped, core=core).core is core


def test_a_range_yields_only_its_commands_and_events(journal) -> None:
    path, stamped, events = journal
    r = replay(path, start=5_001, stop=7_000, batch=999)
    assert (r.stats.commands, r.stats.first_seq, r.stats.last_seq) == (2000, 5001, 7000)
    want = events[(events["seq"] >= 5001) & (events["seq"] <= 7000)]
    assert r.events.tobytes() == want.tobytes()
    # the state is that after seq 7000
    assert r.digest() == replay(stamped[:7000], INSTRUMENTS).digest()


def test_iterating_a_replay_streams_batches(journal) -> None:
    path, stamped, events = journal
    run = Replay(path, batch=4096)
    seen = [(len(c), len(e)) for c, e in run]
    assert sum(c for c, _ in seen) == 20_000 and sum(e for _, e in seen) == len(events)
    assert max(c for c, _ in seen) <= 3000      # up to `batch`, never across a segment (3000)
    assert len(seen) == 7
    assert run.stats.commands == 20_000


def test_journal_numpy_views(journal) -> None:
    path, stamped, _ = journal
    j = Journal(path)
    assert len(j.segments) == 7 and j.count == 20_000
    recs = j.records(1)
    assert recs.dtype == RECORD_DTYPE and isinstance(recs, np.memmap)
    assert recs["seq"][0] == 3001 and bool((recs["length"] == 64).all())
    for name in COMMAND_DTYPE.names:
        assert np.array_equal(recs[name], stamped[name][3000:6000])
    assert j.commands(2999, 3002).tobytes() == stamped[2998:3002].tobytes()
    assert "seq 1..20000" in repr(j)


def test_arrow_tables(journal) -> None:
    _, stamped, events = journal
    t = events_to_arrow(events)
    assert isinstance(t, pa.Table) and t.num_rows == len(events)
    assert t.column_names == [n for n in EVENT_DTYPE.names if not n.startswith("_")]
    assert t.column("order_id").to_numpy().tolist() == events["order_id"].tolist()
    assert t.schema.field("price").type == pa.int64()
    assert t.schema.field("type").type == pa.uint8()
    c = commands_to_arrow(stamped)
    assert c.num_rows == 20_000 and "_pad" not in c.column_names
    with pytest.raises(TypeError):
        events_to_arrow(stamped)
    with pytest.raises(TypeError):
        commands_to_arrow(events)


def test_bad_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="replay takes"):
        replay(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="COMMAND_DTYPE"):
        replay(np.zeros(3, dtype=EVENT_DTYPE), INSTRUMENTS)
    with pytest.raises(ValueError, match="needs its instruments"):
        replay(np.zeros(3, dtype=COMMAND_DTYPE))
    with pytest.raises(ValueError, match="batch"):
        replay(np.zeros(3, dtype=COMMAND_DTYPE), INSTRUMENTS, batch=0)
    from engine.journal import JournalError
    with pytest.raises(JournalError, match="no such journal directory"):
        replay(tmp_path / "nothing")
