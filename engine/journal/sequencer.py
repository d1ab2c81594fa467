"""The sequencer: the one place where commands get their sequence number and timestamp.

Owns the engine's notion of time. Everything after it (journal, core, risk) reads time only
from the commands it stamped, so a replay sees exactly the same clock. Must never be skipped
or run twice for a command.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..schema import COMMAND_DTYPE


class Sequencer:
    """Stamps gap-free sequence numbers and non-decreasing timestamps onto commands.

    ``clock_ns`` is injectable (a test or a backtest passes its own); a clock that steps
    backwards is held at its last value so timestamps never decrease.

    >>> s = Sequencer(next_seq=1, clock_ns=iter([100, 90, 120]).__next__)
    >>> cmds = np.zeros(2, dtype=COMMAND_DTYPE)
    >>> s.stamp(cmds)
    2
    >>> cmds["seq"].tolist(), cmds["ts_ns"].tolist()
    ([1, 2], [100, 100])
    >>> s.stamp(cmds[:1]), int(cmds["ts_ns"][0])
    (3, 100)
    """

    __slots__ = ("_next", "_last_ts", "_clock")

    def __init__(self, next_seq: int = 1, last_ts_ns: int = 0,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        if next_seq < 1:
            raise ValueError("next_seq must be >= 1")
        self._next = next_seq
        self._last_ts = last_ts_ns
        self._clock = clock_ns

    @property
    def next_seq(self) -> int:
        return self._next

    @property
    def last_ts_ns(self) -> int:
        return self._last_ts

    def stamp(self, commands: np.ndarray) -> int:
        """Stamp an array of COMMAND_DTYPE in place (one timestamp for the whole batch: it
        arrived together). Returns the last sequence number stamped. O(n)."""
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise TypeError("stamp() takes an array of COMMAND_DTYPE")
        n = len(commands)
        if n == 0:
            return self._next - 1
        ts = self._clock()
        if ts < self._last_ts:
            ts = self._last_ts
        self._last_ts = ts
        commands["seq"] = np.arange(self._next, self._next + n, dtype=np.int64)
        commands["ts_ns"] = ts
        self._next += n
        return self._next - 1

    def rewind(self, next_seq: int) -> None:
        """Take back numbers stamped on a batch that never made it into the journal."""
        if not 1 <= next_seq <= self._next:
            raise ValueError(f"cannot rewind to {next_seq} (next is {self._next})")
        self._next = next_seq
