"""The engine's one write path, wired here and nowhere else.

    1. sequencer  stamps a gap-free sequence number and the timestamp onto a batch of commands
    2. journal    appends the batch (write-ahead): nothing reaches the core unjournaled
    3. core       processes the batch deterministically and returns its events
    4. parts      each part (the gateway's session reports, later risk) sees the batch and its
                  events, live and during recovery alike, so its state is a function of the
                  journal too
    5. snapshot   every N commands the core's and the parts' state is exported here and written
                  to disk by a background thread, so intake pauses only for the in-memory copy

Outputs (execution reports, market data) belong to whoever called ``process``; they must be
released only once ``durable_seq`` covers the batch (see ``wait_durable`` / ``on_durable``).
One thread calls ``process``: the pipeline is the single writer of engine state.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .config import EngineConfig
from .instruments import InstrumentSet
from .venues import VenueSet
from .journal.format import JournalError, RiskManifest
from .journal.reader import Journal
from .journal.replay import new_core
from .journal.sequencer import Sequencer
from .journal.snapshot import apply_retention, core_state, newest_snapshot, write_snapshot
from .journal.writer import DEFAULT_SEGMENT_BYTES, Durability, JournalWriter
from .schema import COMMAND_DTYPE, EVENT_DTYPE, INT64_MAX, CommandType, OrdType, TimeInForce

log = logging.getLogger("engine.pipeline")


class Part(Protocol):
    """State that follows the core deterministically (a function of the commands and events)
    and must therefore be snapshotted with it and rebuilt by recovery.

    ``sections`` names its snapshot sections (``"<part>.<name>"``, at most 16 ASCII bytes)
    and their item dtypes. ``on_batch`` is called after the core ran each batch, with
    ``live=False`` while recovery replays the journal (nothing must leave the process then).
    """

    sections: dict[str, np.dtype]

    def on_batch(self, commands: np.ndarray, events: np.ndarray, live: bool) -> None: ...

    def export_state(self) -> dict[str, np.ndarray]: ...

    def load_state(self, state: dict[str, np.ndarray]) -> None: ...


@dataclass(frozen=True)
class Recovery:
    """How the engine got its state back at start-up."""

    snapshot_seq: int       # the snapshot loaded (0: none, replayed from the first command)
    snapshot_path: str | None
    replayed: int           # journal commands run after the snapshot
    last_seq: int
    seconds: float

    def describe(self) -> str:
        base = (f"snapshot at seq {self.snapshot_seq}" if self.snapshot_seq
                else "no snapshot")
        return (f"recovered to seq {self.last_seq}: {base}, {self.replayed} commands replayed"
                f" in {self.seconds:.3f} s")


def risk_manifest(config: EngineConfig, instruments: InstrumentSet) -> RiskManifest | None:
    """The config's ``[risk]`` as the initial tables a journal records, or None if it is off."""
    from .risk.setup import RiskSetup

    setup = RiskSetup(config, instruments)
    if not setup.enabled:
        return None
    return RiskManifest.build(setup.tables(), setup.currencies, setup.decimals)


class Engine:
    """Sequencer, journal and core behind one ``process(commands) -> events`` call.

    Opening an existing journal directory recovers: the newest valid snapshot, then every
    command after it. ``durability`` is ``"fsync"``, ``"write"`` or ``"none"`` (then
    ``journal_dir`` may be None and nothing is written).

    >>> from engine.instruments import InstrumentSet
    >>> eng = Engine(InstrumentSet.default(), None, durability="none", clock_ns=lambda: 7)
    >>> cmds = np.zeros(1, dtype=COMMAND_DTYPE)
    >>> cmds[0] = (0, 0, 1, 15000, 10, 1, 42, 1, 2, 1, 1, 0, 0)   # sell 10 AAPL @ 150.00
    >>> ev = eng.process(cmds)
    >>> int(ev["seq"][0]), int(ev["ts_ns"][0]), int(ev["type"][0])   # stamped, ACCEPTED
    (1, 7, 1)
    """

    def __init__(self, instruments: InstrumentSet, journal_dir: str | os.PathLike[str] | None,
                 *, durability: Durability = "fsync",
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES, snapshot_every: int = 0,
                 retention: str = "keep", keep_snapshots: int = 2,
                 clock_ns: Callable[[], int] = time.time_ns,
                 core_factory: Callable[..., Any] | None = None,
                 parts: tuple[Part, ...] = (), risk: RiskManifest | None = None,
                 venues: VenueSet | None = None) -> None:
        if snapshot_every < 0:
            raise ValueError("snapshot_every must be >= 0 (0: no automatic snapshots)")
        self.instruments = instruments
        self.retention = retention
        self.keep_snapshots = keep_snapshots
        self.snapshot_every = snapshot_every
        self.parts = tuple(parts)
        self.risk = risk
        self.venues = venues if venues is not None else VenueSet.empty()
        self._part_sections: dict[str, np.dtype] = {}
        for part in self.parts:
            self._part_sections.update(part.sections)
        self._snapshots = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        self._last_snapshot: Future | None = None
        self._since_snapshot = 0
        self._closed = False
        self.journal = JournalWriter(journal_dir, instruments, durability=durability,
                                     segment_bytes=segment_bytes, risk=risk,
                                     venues=self.venues)
        try:
            self.core, self.recovery, last_ts = self._recover(core_factory)
        except BaseException:
            self.journal.close()
            raise
        self.sequencer = Sequencer(self.journal.next_seq, last_ts, clock_ns)

    @classmethod
    def from_config(cls, config: EngineConfig, *, journal_dir: str | os.PathLike[str] | None = None,
                    durability: Durability | None = None, **kwargs: Any) -> Engine:
        """An engine on a validated config's instruments and ``[journal]`` table; the keyword
        arguments override the table (as ``engine serve --journal/--durability`` do)."""
        j = config.journal
        durability = durability or j.durability
        path = journal_dir if journal_dir is not None else j.dir
        settings: dict[str, Any] = dict(segment_bytes=j.segment_bytes,
                                        snapshot_every=j.snapshot_every, retention=j.retention,
                                        keep_snapshots=j.keep_snapshots)
        settings.update(kwargs)
        instruments = InstrumentSet.from_config(config)
        settings.setdefault("risk", risk_manifest(config, instruments))
        settings.setdefault("venues", VenueSet.from_config(config, instruments))
        return cls(instruments, None if durability == "none" else path, durability=durability,
                   **settings)

    # -- start-up ---------------------------------------------------------------------------------

    def _recover(self, core_factory: Callable[..., Any] | None) -> tuple[Any, Recovery, int]:
        t0 = time.perf_counter()
        core = new_core(self.instruments, core_factory,
                        risk=None if self.risk is None else self.risk.arrays(),
                        venues=self.venues)
        last = self.journal.last_seq
        if self.journal.path is None or last == 0:
            return core, Recovery(0, None, 0, last, time.perf_counter() - t0), 0
        path = self.journal.path
        journal = Journal(path)
        snap = newest_snapshot(path, self.instruments.digest(), last, self._part_sections)
        snap_seq, snap_path = 0, None
        if snap is not None and snap[0] >= journal.first_seq - 1:
            snap_seq, state, p = snap
            core.load_state(core_state(state))
            for part in self.parts:
                part.load_state({k: state["parts"][k] for k in part.sections})
            snap_path = str(p)
        elif journal.first_seq > 1:
            raise JournalError(f"{path}: the journal starts at seq {journal.first_seq} and no"
                               " valid snapshot covers the commands before it; cannot recover")
        replayed = 0
        last_ts = 0
        for cmds in journal.iter_batches(snap_seq + 1, last, batch=1 << 16):
            events = core.process(cmds)
            for part in self.parts:
                part.on_batch(cmds, events, False)
            replayed += len(cmds)
            last_ts = int(cmds["ts_ns"][-1])
        if not replayed:
            tail = journal.commands(last, last)
            last_ts = int(tail["ts_ns"][0]) if len(tail) else 0
        rec = Recovery(snap_seq, snap_path, replayed, last, time.perf_counter() - t0)
        log.info("journal %s: %s", path, rec.describe())
        return core, rec, last_ts

    # -- the write path ---------------------------------------------------------------------------

    def process(self, commands: np.ndarray) -> np.ndarray:
        """Stamp, journal and run a batch of commands; return their events (EVENT_DTYPE).

        The commands array is stamped in place (``seq``, ``ts_ns``). If the journal cannot take
        the batch, JournalError is raised and the core has not seen it."""
        if self._closed:
            raise JournalError("the engine is closed")
        if self.journal.failed is not None:
            raise self.journal.failed
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE \
                or commands.ndim != 1:
            raise TypeError("process() takes a one-dimensional array of COMMAND_DTYPE")
        if not commands.flags["C_CONTIGUOUS"] or not commands.flags["WRITEABLE"]:
            commands = commands.copy()
        self.sequencer.stamp(commands)                           # 1. sequence + time
        try:
            self.journal.append(commands)                        # 2. write-ahead
        except BaseException:
            # the numbers were not used: the next batch must carry them again
            self.sequencer.rewind(self.journal.next_seq)
            raise
        events = self.core.process(commands)                     # 3. match
        for part in self.parts:
            part.on_batch(commands, events, True)                # 4. parts
        self._since_snapshot += len(commands)
        if self.snapshot_every and self._since_snapshot >= self.snapshot_every \
                and self.journal.path is not None:
            self.snapshot()                                      # 5. snapshot, in background
        return events

    @property
    def last_seq(self) -> int:
        return self.journal.last_seq

    @property
    def durable_seq(self) -> int:
        return self.journal.durable_seq

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        return self.journal.wait_durable(seq, timeout)

    def on_durable(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(durable_seq)`` as durability advances (possibly from another thread)."""
        self.journal.add_listener(fn)

    def state_digest(self) -> str:
        return self.core.state_digest()

    # -- snapshots --------------------------------------------------------------------------------

    def snapshot(self) -> Future:
        """Export the core's state now and write it in the background; returns a Future of the
        snapshot's path. Only one is written at a time; an export asked for while one is being
        written waits for it (so snapshots never pile up in memory)."""
        if self.journal.path is None:
            raise JournalError("snapshots need a journal directory (durability 'none' keeps none)")
        if self._last_snapshot is not None and not self._last_snapshot.done():
            self._last_snapshot.result()
        seq = self.journal.last_seq
        state = self.core.export_state()
        state["parts"] = {}
        for part in self.parts:
            state["parts"].update(part.export_state())
        self._since_snapshot = 0
        self._last_snapshot = self._snapshots.submit(self._write_snapshot, seq, state)
        return self._last_snapshot

    def _write_snapshot(self, seq: int, state: dict) -> Path:
        path = self.journal.path
        assert path is not None
        # the snapshot must never be ahead of what the journal holds durably
        self.journal.wait_durable(seq)
        out = write_snapshot(path, seq, state, self.instruments.digest())
        removed = apply_retention(path, seq, self.retention, self.keep_snapshots)
        if removed:
            log.info("retention (%s): %d files before seq %d", self.retention, len(removed), seq)
        return out

    # -- shutting down ----------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for a snapshot in progress, make the journal durable and release it."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._last_snapshot is not None:
                try:
                    self._last_snapshot.result()
                except Exception as e:  # reported, but the journal must still be closed
                    log.error("snapshot failed: %s", e)
            self._snapshots.shutdown(wait=True)
        finally:
            self.journal.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class EngineCore:
    """The core's per-call API (``submit``/``cancel``/``replace``/``drain_events`` and every
    query) on top of an Engine: each call is a one-command batch, sequenced and journaled
    before it is matched. For tools and demos (``Market(core_factory=...)``); a gateway sends
    whole batches to ``Engine.process`` instead. The caller's ``seq``/``ts_ns`` are ignored:
    the sequencer stamps its own.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pending: list[np.ndarray] = []
        self._one = np.zeros(1, dtype=COMMAND_DTYPE)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine.core, name)

    def add_instrument(self, instrument_id: int, min_qty: int = 1,
                       max_qty: int = INT64_MAX) -> None:
        """Instruments are fixed by the engine's journal: accepted only if already there, with
        the same bounds."""
        inst = self.engine.instruments.get(instrument_id)
        if inst is None or (inst.min_lots, inst.max_lots) != (min_qty, max_qty):
            raise ValueError(f"instrument {instrument_id} with bounds {min_qty}..{max_qty} is not"
                             " one of the engine's instruments (they are fixed by its journal)")

    def _run(self, **fields: int) -> int:
        rec = self._one
        rec[0] = 0
        for k, v in fields.items():
            rec[k] = v
        events = self.engine.process(rec.copy())
        self._pending.append(events)
        return len(events)

    def submit(self, order_id: int, instrument: int, side: int, price: int, qty: int,
               account: int = 0, ord_type: int = OrdType.LIMIT, tif: int = TimeInForce.GTC,
               flags: int = 0, seq: int = 0, ts_ns: int = 0) -> int:
        return self._run(cmd=CommandType.NEW, order_id=order_id, instrument=instrument,
                         side=side, price=price, qty=qty, account=account, ord_type=ord_type,
                         tif=tif, flags=flags)

    def cancel(self, order_id: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> int:
        return self._run(cmd=CommandType.CANCEL, order_id=order_id, account=account)

    def replace(self, order_id: int, price: int, qty: int, account: int = 0, seq: int = 0,
                ts_ns: int = 0) -> int:
        return self._run(cmd=CommandType.REPLACE, order_id=order_id, price=price, qty=qty,
                         account=account)

    def drain_events(self) -> np.ndarray:
        out = np.concatenate(self._pending) if self._pending else np.empty(0, EVENT_DTYPE)
        self._pending.clear()
        return out
