"""pytest-benchmark suite for the journal: appending with each durability, replaying a journal
into the core, and recovering an Engine from scratch and from a snapshot (the figures of
`engine bench journal`, on a smaller workload).

Run: .venv/bin/python -m pytest benchmarks/bench_journal.py --benchmark-only
Fixed seed; pytest-benchmark does the rounds and min/median/percentiles. Journals are written
under pytest's tmp_path (usually /tmp): see docs/benchmarks.md for the page-cache caveat.
"""
import shutil

import pytest

from engine.bench_journal import append_all, journal_workload, take_snapshot, time_append
from engine.instruments import InstrumentSet
from engine.journal.replay import new_core, replay
from engine.journal.sequencer import Sequencer
from engine.journal.writer import JournalWriter
from engine.pipeline import Engine

N = 1_000_000           # 200,000 generated, tiled x5
APPEND = 200_000
BATCH = 1000
INSTRUMENTS = InstrumentSet.default()


@pytest.fixture(scope="module")
def cmds():
    return journal_workload(N, base_commands=200_000, seed=7)


@pytest.fixture(scope="module")
def journal(cmds, tmp_path_factory):
    """A journal of N commands written with durability 'write'; cmds is stamped to match."""
    path = tmp_path_factory.mktemp("bench-journal") / "journal"
    time_append(cmds, INSTRUMENTS, "write", path, batch=BATCH)
    return path


def _bench_append(benchmark, cmds, tmp_path, durability, window=None):
    """Time the producer only (stamp + append + wait until durable); a fresh writer in a fresh
    directory each round, opened and closed outside the timing."""
    part = cmds[:APPEND].copy()
    runs = iter(range(1000))

    def setup():
        path = None if durability == "none" else tmp_path / f"j{next(runs)}"
        w = JournalWriter(path, INSTRUMENTS, durability=durability)
        return (w, Sequencer(w.next_seq), part, BATCH, window), {}

    def teardown(w, *rest):
        w.close()
        if w.path is not None:
            shutil.rmtree(w.path)

    benchmark.extra_info.update(commands=APPEND, batch=BATCH, window=window)
    benchmark.pedantic(append_all, setup=setup, teardown=teardown, rounds=5)


@pytest.mark.parametrize("durability", ["none", "write", "fsync"])
def test_append(benchmark, cmds, tmp_path, durability):
    _bench_append(benchmark, cmds, tmp_path, durability)


def test_append_fsync_window(benchmark, cmds, tmp_path):
    """fsync with a producer that waits when more than 10,000 commands are not yet durable."""
    _bench_append(benchmark, cmds, tmp_path, "fsync", window=10_000)


def test_replay(benchmark, journal):
    benchmark.extra_info["commands"] = N
    r = benchmark.pedantic(replay, args=(journal,), kwargs={"keep_events": False}, rounds=5,
                           warmup_rounds=1)
    assert r.stats.commands == N


def test_core_batch_same_commands(benchmark, cmds, journal):
    """The core alone on the journal's commands, in 64k chunks: replay's ceiling."""
    def run():
        core = new_core(INSTRUMENTS)
        for s in range(0, len(cmds), 65536):
            core.process(cmds[s:s + 65536])

    benchmark.extra_info["commands"] = N
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


def _recover(path):
    eng = Engine(INSTRUMENTS, path, durability="write")
    eng.close()
    return eng.recovery


def test_recover_from_scratch(benchmark, journal, tmp_path):
    path = tmp_path / "journal"
    shutil.copytree(journal, path)
    benchmark.extra_info["commands"] = N
    rec = benchmark.pedantic(_recover, args=(path,), rounds=3, warmup_rounds=1)
    assert rec.snapshot_seq == 0 and rec.replayed == N


def test_recover_from_snapshot(benchmark, journal, tmp_path):
    path = tmp_path / "journal"
    shutil.copytree(journal, path)
    take_snapshot(path, INSTRUMENTS, N - 100_000)
    benchmark.extra_info.update(commands=N, replayed_after_snapshot=100_000)
    rec = benchmark.pedantic(_recover, args=(path,), rounds=3, warmup_rounds=1)
    assert rec.snapshot_seq == N - 100_000 and rec.replayed == 100_000
