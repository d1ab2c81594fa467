"""The sequencer: gap-free numbers, one non-decreasing timestamp per batch, injectable clock."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

from engine.journal import sequencer as sequencer_mod
from engine.journal.sequencer import Sequencer
from engine.schema import COMMAND_DTYPE


def test_numbers_are_gap_free_across_batches() -> None:
    s = Sequencer(next_seq=10, clock_ns=lambda: 5)
    a, b = np.zeros(3, COMMAND_DTYPE), np.zeros(4, COMMAND_DTYPE)
    assert s.stamp(a) == 12 and s.stamp(np.zeros(0, COMMAND_DTYPE)) == 12 and s.stamp(b) == 16
    assert a["seq"].tolist() + b["seq"].tolist() == list(range(10, 17))
    assert s.next_seq == 17


def test_a_clock_that_steps_back_is_held() -> None:
    ticks = iter([100, 50, 100, 130])
    s = Sequencer(clock_ns=lambda: next(ticks))
    seen = []
    for _ in range(4):
        c = np.zeros(2, COMMAND_DTYPE)
        s.stamp(c)
        seen.append(c["ts_ns"].tolist())
    assert seen == [[100, 100], [100, 100], [100, 100], [130, 130]]
    assert s.last_ts_ns == 130


def test_resuming_never_goes_back_in_time() -> None:
    s = Sequencer(next_seq=5, last_ts_ns=1_000, clock_ns=lambda: 10)
    c = np.zeros(1, COMMAND_DTYPE)
    s.stamp(c)
    assert (int(c["seq"][0]), int(c["ts_ns"][0])) == (5, 1_000)


def test_rewind_takes_back_unused_numbers_only() -> None:
    s = Sequencer(clock_ns=lambda: 1)
    s.stamp(np.zeros(5, COMMAND_DTYPE))
    s.rewind(3)
    assert s.next_seq == 3
    with pytest.raises(ValueError):
        s.rewind(4)
    with pytest.raises(ValueError):
        s.rewind(0)


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        Sequencer(next_seq=0)
    with pytest.raises(TypeError):
        Sequencer().stamp(np.zeros(3, np.int64))


def test_docstring_example() -> None:
    assert doctest.testmod(sequencer_mod).failed == 0
