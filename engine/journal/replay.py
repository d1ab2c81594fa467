"""Replay: feed a journal (or any command array) through a fresh core, in batches.

Owns the backtester's view of the engine: commands in, events out as numpy or Arrow.
Must never stamp or renumber a command: replay sees exactly what the sequencer wrote.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..instruments import InstrumentSet
from ..venues import VenueSet
from ..schema import COMMAND_DTYPE, EVENT_DTYPE, EventType
from .format import JournalError
from .reader import Journal
from .snapshot import core_state, newest_snapshot

Source = Journal | str | os.PathLike | np.ndarray

DEFAULT_BATCH = 65536


def new_core(instruments: InstrumentSet, core_factory: Callable[..., Any] | None = None,
             risk: dict[str, np.ndarray] | None = None, venues: VenueSet | None = None,
             **kwargs: Any) -> Any:
    """A fresh core with every instrument registered, quantity bounds in lots, with ``venues``
    its venues and books (docs/ROUTING.md), and with ``risk`` tables (docs/RISK.md) pre-trade
    risk on. Each instrument's ``k`` (fees) is the risk tables' (1 with risk off)."""
    if core_factory is None:
        from .._core import Core as core_factory
    core = core_factory(**kwargs)
    if venues:
        k = None if risk is None else {int(r["instrument"]): int(r["k"])
                                       for r in risk["instruments"]}
        venues.register(core, instruments, k=k)
    else:
        for inst in instruments:
            core.add_instrument(inst.id, inst.min_lots, inst.max_lots)
    if risk is not None:
        core.enable_risk(risk)
    return core


@dataclass
class ReplayStats:
    """What a replay did: counts over the commands run and the events kept."""

    commands: int = 0
    events: int = 0
    trades: int = 0
    volume: int = 0          # lots traded
    rejects: int = 0
    first_seq: int = 0
    last_seq: int = 0
    seconds: float = 0.0
    snapshot_seq: int = 0    # the snapshot replay started from (0: from scratch)

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0

    def add(self, commands: np.ndarray, events: np.ndarray) -> None:
        if len(commands):
            if not self.first_seq:
                self.first_seq = int(commands["seq"][0])
            self.last_seq = int(commands["seq"][-1])
        self.commands += len(commands)
        self.events += len(events)
        types = events["type"]
        trades = types == EventType.TRADE
        self.trades += int(np.count_nonzero(trades))
        self.volume += int(events["qty"][trades].sum())
        self.rejects += int(np.count_nonzero(types == EventType.REJECTED))


@dataclass
class ReplayResult:
    core: Any
    events: np.ndarray | None
    stats: ReplayStats = field(default_factory=ReplayStats)

    def digest(self) -> str:
        return self.core.state_digest()


def _open(source: Source) -> Journal | np.ndarray:
    if isinstance(source, (Journal, np.ndarray)):
        if isinstance(source, np.ndarray) and (source.dtype != COMMAND_DTYPE or source.ndim != 1):
            raise TypeError("a command array must be one-dimensional COMMAND_DTYPE")
        return source
    if isinstance(source, (str, os.PathLike)):
        return Journal(Path(source))
    raise TypeError(f"replay takes a Journal, a journal directory or a COMMAND_DTYPE array,"
                    f" not {type(source).__name__}")


class Replay:
    """A core replaying ``source``; iterate it for ``(commands, events)`` batch by batch.

    State is always rebuilt from the beginning (or, for a journal, from the newest snapshot
    before ``start`` when ``use_snapshot``); only commands with sequence numbers in
    ``start..stop`` are yielded, with their events. ``core`` and ``stats`` are live while it
    runs. Setting up (opening the journal, loading a snapshot) happens here, not at the first
    iteration, so errors surface at once.
    """

    def __init__(self, source: Source, instruments: InstrumentSet | None = None, *,
                 start: int | None = None, stop: int | None = None,
                 batch: int = DEFAULT_BATCH, core: Any = None, use_snapshot: bool = True,
                 risk: dict[str, np.ndarray] | None = None,
                 venues: VenueSet | None = None) -> None:
        src = _open(source)
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.start, self.stop, self.stats = start, stop, ReplayStats()
        begin = None
        if isinstance(src, Journal):
            if instruments is not None and instruments != src.instruments:
                raise JournalError(
                    f"{src.path}: the journal was written for another instrument set")
            instruments = src.instruments
            risk = src.manifest.risk_tables()
            venues = src.manifest.venue_set()
        elif instruments is None and core is None:
            raise ValueError("replaying a command array needs its instruments (or a core)")
        if core is None:
            core = new_core(instruments, risk=risk, venues=venues)  # type: ignore[arg-type]
            if isinstance(src, Journal) and use_snapshot and src.count and start is not None \
                    and start > 1:
                snap = newest_snapshot(src.path, src.manifest.instruments_digest,
                                       min(start - 1, src.last_seq))
                if snap is not None and snap[0] >= src.first_seq - 1:
                    core.load_state(core_state(snap[1]))
                    self.stats.snapshot_seq = begin = snap[0]
        self.core = core
        if isinstance(src, Journal):
            if begin is None and src.first_seq > 1:
                raise JournalError(
                    f"{src.path}: the journal starts at seq {src.first_seq} (older segments were"
                    " archived) and no usable snapshot covers what came before")
            self._parts: Iterator[np.ndarray] = src.iter_batches(
                (begin + 1) if begin is not None else None, stop, batch)
        else:
            self._parts = (src[i:i + batch] for i in range(0, len(src), batch))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        lo = self.start if self.start is not None else -(1 << 63)
        hi = self.stop if self.stop is not None else (1 << 63) - 1
        t0 = time.perf_counter()
        try:
            for cmds in self._parts:
                if len(cmds) and cmds["seq"][0] > hi:
                    break
                events = self.core.process(cmds)
                if len(cmds) and (cmds["seq"][0] < lo or cmds["seq"][-1] > hi):
                    keep = (cmds["seq"] >= lo) & (cmds["seq"] <= hi)
                    cmds = cmds[keep]
                    events = events[(events["seq"] >= lo) & (events["seq"] <= hi)]
                    if not len(cmds):
                        continue
                self.stats.add(cmds, events)
                yield cmds, events
        finally:
            self.stats.seconds += time.perf_counter() - t0


def replay(source: Source, instruments: InstrumentSet | None = None, *,
           start: int | None = None, stop: int | None = None, batch: int = DEFAULT_BATCH,
           core: Any = None, keep_events: bool = True, use_snapshot: bool = True,
           risk: dict[str, np.ndarray] | None = None,
           venues: VenueSet | None = None) -> ReplayResult:
    """Replay ``source`` and return the core, the events (EVENT_DTYPE) and the statistics.

    ``source`` is a Journal, a journal directory, or a COMMAND_DTYPE array (then pass its
    ``instruments`` and, for risk on, its initial ``risk`` tables, for venues its ``venues``,
    or a ready ``core``). A journal brings its own instruments, risk tables and venues (its
    manifest).

    >>> from engine.journal import replay                 # doctest: +SKIP
    >>> r = replay("var/journal")                         # doctest: +SKIP
    >>> r.stats.commands, r.digest()                      # doctest: +SKIP
    """
    run = Replay(source, instruments, start=start, stop=stop, batch=batch, core=core,
                 use_snapshot=use_snapshot, risk=risk, venues=venues)
    chunks = [events for _, events in run] if keep_events else [None for _ in run]
    events_out = None
    if keep_events:
        events_out = np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_DTYPE)
    return ReplayResult(run.core, events_out, run.stats)


_EVENT_COLUMNS = [n for n in EVENT_DTYPE.names if not n.startswith("_")]


def events_to_arrow(events: np.ndarray) -> Any:
    """An EVENT_DTYPE array as a pyarrow Table (one column per field, padding dropped);
    ``.to_pandas()`` or ``polars.from_arrow()`` from there. O(n), one copy per column."""
    import pyarrow as pa

    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise TypeError("events_to_arrow() takes an array of EVENT_DTYPE")
    return pa.table({name: np.ascontiguousarray(events[name]) for name in _EVENT_COLUMNS})


def commands_to_arrow(commands: np.ndarray) -> Any:
    """A COMMAND_DTYPE array as a pyarrow Table (padding dropped)."""
    import pyarrow as pa

    if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
        raise TypeError("commands_to_arrow() takes an array of COMMAND_DTYPE")
    return pa.table({name: np.ascontiguousarray(commands[name])
                     for name in COMMAND_DTYPE.names if not name.startswith("_")})
