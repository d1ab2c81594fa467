"""Helpers for the journal tests: a default instrument set, workloads on it, journals on disk."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from engine.bench import WorkloadSpec, make_workload
from engine.instruments import InstrumentSet
from engine.journal.sequencer import Sequencer
from engine.journal.writer import JournalWriter

INSTRUMENTS = InstrumentSet.default()


@functools.lru_cache(maxsize=8)
def _workload(n: int, seed: int) -> np.ndarray:
    cmds = make_workload(WorkloadSpec(n_commands=n, n_instruments=4, seed=seed,
                                      target_resting=2000))
    cmds["instrument"] += 1          # the generator numbers instruments 0..3; ours are 1..8
    cmds["seq"] = 0
    cmds["ts_ns"] = 0
    return cmds


def workload(n: int, seed: int = 1) -> np.ndarray:
    """A seeded mixed command stream on instruments 1..4, unstamped (a fresh copy)."""
    return _workload(n, seed).copy()


def counting_clock(start: int = 1_000_000_000, step: int = 1000):
    """A deterministic clock: start, start + step, ..."""
    state = [start - step]

    def clock() -> int:
        state[0] += step
        return state[0]

    return clock


def write_journal(path: Path, cmds: np.ndarray, *, batch: int = 1000,
                  durability: str = "write", segment_bytes: int = 1 << 20) -> np.ndarray:
    """Stamp and append ``cmds`` in batches; returns the stamped copy."""
    stamped = cmds.copy()
    with JournalWriter(path, INSTRUMENTS, durability=durability,  # type: ignore[arg-type]
                       segment_bytes=segment_bytes) as w:
        seq = Sequencer(w.next_seq, clock_ns=counting_clock())
        for i in range(0, len(stamped), batch):
            part = stamped[i:i + batch]
            seq.stamp(part)
            w.append(part)
    return stamped


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    return tmp_path / "journal"
