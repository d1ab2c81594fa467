"""`engine replay`: one journal replay run, paced, with its events written out and summarised.

Owns what the command adds around ``engine.journal.Replay``: argument checks, pacing, the
output file, the progress bar and the summary. Must never replay by itself (``Replay`` does,
exactly as recovery would) and never leave a half-written file under the output's name.
"""
from __future__ import annotations

import math
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..schema import EVENT_DTYPE
from .format import snapshot_name
from .reader import Journal
from .replay import Replay, events_to_arrow

__all__ = ["OUTPUT_FORMATS", "ReplayArgumentError", "Pacer", "Progress", "EventSink",
           "ReplaySummary", "parse_speed", "parse_seq", "output_format", "open_sink",
           "run_replay"]

# --out file extension -> format name
OUTPUT_FORMATS = {".parquet": "parquet", ".csv": "csv"}

# Pacing never waits inside a chunk: one chunk covers at most this much journal time.
CHUNK_NS = 1_000_000

# Events are buffered up to this many rows before a write: one Parquet row group per write,
# and memory stays bounded (88 bytes per row) however long the journal is.
SINK_ROWS = 1 << 17

_SPEED = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*[xX]\s*$")


class ReplayArgumentError(ValueError):
    """An argument of ``engine replay`` that cannot be used; the message is one line."""


def parse_speed(text: str) -> float | None:
    """``max`` -> None (no pacing), ``realtime`` -> 1.0, ``Nx`` -> N (a positive multiple).

    >>> parse_speed("max"), parse_speed("realtime"), parse_speed("10x"), parse_speed("0.5x")
    (None, 1.0, 10.0, 0.5)
    """
    t = text.strip().lower()
    if t == "max":
        return None
    if t == "realtime":
        return 1.0
    m = _SPEED.match(t)
    if m:
        n = float(m.group(1))
        if n > 0 and math.isfinite(n):
            return n
    raise ReplayArgumentError(
        f"--speed: expected max, realtime or a positive multiple like 10x, got {text!r}")


def parse_seq(option: str, text: str | None) -> int | None:
    """A sequence-number option (``--from``/``--to``): a non-negative integer, or None."""
    if text is None:
        return None
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ReplayArgumentError(
            f"{option}: expected a non-negative sequence number, got {text!r}")
    return value


def output_format(path: str | os.PathLike[str]) -> str:
    """The format for ``--out path`` ("parquet" or "csv"), checked before any replay."""
    p = Path(path)
    fmt = OUTPUT_FORMATS.get(p.suffix.lower())
    if fmt is None:
        what = f"unknown extension {p.suffix!r}" if p.suffix else "no extension"
        raise ReplayArgumentError(
            f"--out {p}: {what}; expected {' or '.join(OUTPUT_FORMATS)}")
    if p.is_dir():
        raise ReplayArgumentError(f"--out {p}: is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ReplayArgumentError(f"--out {p}: directory {parent} does not exist")
    return fmt


# -- pacing ---------------------------------------------------------------------------------------

class Pacer:
    """Releases replayed commands at ``speed`` times the pace of their ``ts_ns`` stamps.

    The first command released sets both origins; a chunk is released once the wall clock has
    advanced by its first command's journal-time offset divided by ``speed``. Chunks are cut on
    a ``chunk_ns`` grid of journal time, so a chunk spans less than ``chunk_ns`` and waiting
    costs one clock read per chunk. ``speed=None`` passes batches through untouched (no
    splitting, no clock reads). ``clock`` (seconds) and ``sleep`` are injectable for tests.

    The core runs a whole replay batch at once (that is what makes replay fast); pacing holds
    back the release of its chunks (events to the file, the progress bar) until they are due.
    """

    def __init__(self, speed: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, chunk_ns: int = CHUNK_NS) -> None:
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive number or None, got {speed!r}")
        if chunk_ns < 1:
            raise ValueError("chunk_ns must be >= 1")
        self.speed = speed
        self.chunk_ns = chunk_ns
        self._clock = clock
        self._sleep = sleep
        self._ts0: int | None = None
        self._wall0 = 0.0
        self.slept = 0.0     # seconds asked of ``sleep`` in total

    def chunks(self, commands: np.ndarray, events: np.ndarray
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Split one replayed batch into ``(commands, events)`` chunks, each yielded when due.

        ``events`` are those of ``commands`` (ordered by seq, as the core emits them)."""
        if self.speed is None or not len(commands):
            yield commands, events
            return
        ts = commands["ts_ns"]
        if self._ts0 is None:
            self._ts0 = int(ts[0])
            self._wall0 = self._clock()
        bucket = (ts - self._ts0) // self.chunk_ns
        cuts = np.flatnonzero(bucket[1:] != bucket[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(commands)]))
        # events carry their command's seq, so a chunk's events start at its first seq
        e_starts = np.searchsorted(events["seq"], commands["seq"][starts], side="left")
        e_ends = np.append(e_starts[1:], len(events))
        for a, b, ea, eb in zip(starts.tolist(), ends.tolist(), e_starts.tolist(),
                                e_ends.tolist()):
            self.wait_for(int(ts[a]))
            yield commands[a:b], events[ea:eb]

    def wait_for(self, ts_ns: int) -> None:
        """Sleep until the wall clock reaches ``ts_ns``'s offset (scaled by the speed)."""
        if self.speed is None:
            return
        if self._ts0 is None:
            self._ts0, self._wall0 = ts_ns, self._clock()
            return
        due = (ts_ns - self._ts0) / 1e9 / self.speed
        delay = due - (self._clock() - self._wall0)
        if delay > 1e-6:    # below a microsecond it is float rounding, and no sleep is that exact
            self.slept += delay
            self._sleep(delay)


# -- progress -------------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _rate(per_s: float) -> str:
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f} M"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.1f} k"
    return f"{per_s:.0f}"


class Progress:
    """A one-line progress bar (percentage of the seq range, commands/s, ETA) on ``stream``,
    redrawn at most once per ``interval`` seconds, with a final redraw and newline at the end."""

    def __init__(self, first_seq: int, last_seq: int, stream: TextIO | None = None, *,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.1,
                 width: int = 30) -> None:
        self.first_seq, self.last_seq = first_seq, last_seq
        self.stream = sys.stderr if stream is None else stream
        self._clock = clock
        self.interval = interval
        self.width = width
        self._t0 = clock()
        self._next_draw = self._t0
        self._shown = 0     # length of the last line drawn, to blank what a shorter one leaves
        self.draws = 0
        self.commands = 0
        self.seq = first_seq - 1

    def update(self, last_seq: int, commands: int, force: bool = False) -> None:
        self.seq, self.commands = last_seq, commands
        now = self._clock()
        if force or now >= self._next_draw:
            self._next_draw = now + self.interval
            self._draw(now)

    def _draw(self, now: float) -> None:
        total = max(1, self.last_seq - self.first_seq + 1)
        done = min(total, max(0, self.seq - self.first_seq + 1))
        frac = done / total
        elapsed = now - self._t0
        rate = self.commands / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else math.inf
        fill = int(frac * self.width)
        line = (f"[{'#' * fill}{'.' * (self.width - fill)}] {frac * 100:5.1f}%"
                f"  seq {self.seq:,}/{self.last_seq:,}  {_rate(rate)} commands/s"
                f"  ETA {_duration(eta) if done < total else '0:00:00'}")
        self.stream.write("\r" + line + " " * max(0, self._shown - len(line)))
        self.stream.flush()
        self._shown = len(line)
        self.draws += 1

    def finish(self) -> None:
        """The final state, then a newline so whatever follows starts a line of its own."""
        if not (self.draws or self.commands):
            return
        self._draw(self._clock())
        self.stream.write("\n")
        self.stream.flush()


# -- writing events -------------------------------------------------------------------------------

def _parquet_writer(tmp: Path, schema: Any) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetWriter(str(tmp), schema)


def _csv_writer(tmp: Path, schema: Any) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.CSVWriter(str(tmp), schema)


# format name -> a pyarrow writer of that format on a file
_WRITERS = {"parquet": _parquet_writer, "csv": _csv_writer}


class EventSink:
    """Events written incrementally to a temporary file beside ``path``; ``commit()`` renames it
    to ``path``, ``abort()`` removes it. Buffers at most ``rows`` events between writes. The
    format follows the extension (``output_format``)."""

    def __init__(self, path: str | os.PathLike[str], rows: int | None = None) -> None:
        self.format = output_format(path)
        self.path = Path(path)
        self.rows = SINK_ROWS if rows is None else rows
        self.written = 0
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        # not tempfile.mkstemp: its 0600 mode would survive the rename; this honours the umask
        self.tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        try:
            self._writer = _WRITERS[self.format](self.tmp, events_to_arrow(
                np.empty(0, dtype=EVENT_DTYPE)).schema)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def write(self, events: np.ndarray) -> None:
        if not len(events):
            return
        self._pending.append(events)
        self._pending_rows += len(events)
        if self._pending_rows >= self.rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        events = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        self._writer.write_table(events_to_arrow(events))
        self.written += len(events)

    def commit(self) -> None:
        try:
            self._flush()
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:   # the file is being thrown away; its writer's state no longer matters
            pass
        self.tmp.unlink(missing_ok=True)


def open_sink(path: str | os.PathLike[str], rows: int | None = None) -> EventSink:
    """A sink for ``path`` by its extension (ReplayArgumentError for any other)."""
    return EventSink(path, rows)


# -- the run --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplaySummary:
    """What one ``engine replay`` did. ``as_json()`` is the ``--json`` object."""

    journal: str
    journal_first_seq: int
    journal_last_seq: int
    asked_stop: int | None
    commands: int
    events: int
    trades: int
    volume: int
    rejects: int
    first_seq: int
    last_seq: int
    snapshot_seq: int
    snapshot: str | None
    digest: str
    seconds: float
    out: str | None
    out_format: str | None
    speed: str

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"commands": self.commands, "events": self.events, "trades": self.trades,
                "volume": self.volume, "rejects": self.rejects, "first_seq": self.first_seq,
                "last_seq": self.last_seq, "snapshot_seq": self.snapshot_seq,
                "digest": self.digest, "seconds": round(self.seconds, 6),
                "commands_per_s": round(self.commands_per_s), "out": self.out}

    def format(self) -> str:
        whole = (self.first_seq, self.last_seq) == (self.journal_first_seq, self.journal_last_seq)
        rng = f"seq {self.first_seq:,}..{self.last_seq:,}"
        rng += (" (the whole journal)" if whole else
                f" of {self.journal_first_seq:,}..{self.journal_last_seq:,}")
        if self.asked_stop is not None and self.asked_stop > self.journal_last_seq:
            rng += f"; --to {self.asked_stop:,} is past its end"
        snap = (f"{self.snapshot} (the state after seq {self.snapshot_seq:,})" if self.snapshot
                else f"none (state rebuilt from seq {self.journal_first_seq:,})")
        lines = [
            f"replayed {self.journal}: {rng}",
            f"  snapshot   {snap}",
            f"  commands   {self.commands:,}",
            f"  events     {self.events:,}",
            f"  trades     {self.trades:,}",
            f"  volume     {self.volume:,} lots",
            f"  rejects    {self.rejects:,}",
            f"  digest     {self.digest}",
            f"  time       {self.seconds:.3f} s, {self.commands_per_s:,.0f} commands/s"
            + ("" if self.speed == "max" else f" (paced: --speed {self.speed})"),
        ]
        if self.out:
            lines.append(f"  events to  {self.out} ({self.out_format}, {self.events:,} rows)")
        return "\n".join(lines) + "\n"


def run_replay(journal_dir: str | os.PathLike[str], *, start: int | None = None,
               stop: int | None = None, speed: str = "max",
               out: str | os.PathLike[str] | None = None,
               progress: bool | TextIO = False, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep,
               batch: int | None = None) -> ReplaySummary:
    """Replay ``journal_dir`` (commands ``start..stop``), write the events to ``out``.

    Every argument is checked before the replay starts. Raises ReplayArgumentError for a bad
    argument and JournalError (JournalCorrupt, JournalMismatch) for a journal that cannot be
    replayed as asked; then, and on any failure during the run, nothing exists at ``out``
    that this call wrote. ``progress`` is True (stderr) or a stream; ``clock``/``sleep`` drive
    the pacing (``speed``: max, realtime or Nx).
    """
    pace = parse_speed(speed)
    for name, value in (("--from", start), ("--to", stop)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ReplayArgumentError(
                f"{name}: expected a non-negative sequence number, got {value!r}")
    if start is not None and stop is not None and start > stop:
        raise ReplayArgumentError(f"--from {start} is after --to {stop}")
    fmt = output_format(out) if out is not None else None

    t0 = time.perf_counter()
    journal = Journal(Path(journal_dir))
    journal.require_commands()
    if start is not None and start > journal.last_seq:
        raise ReplayArgumentError(f"--from {start} is past the end of {journal.path}"
                                  f" (its last seq is {journal.last_seq})")
    if start is not None and start < journal.first_seq and journal.first_seq > 1:
        journal._range(start, stop)     # raises the reader's own message for this case
    if stop is not None and stop < journal.first_seq:
        raise ReplayArgumentError(f"--to {stop} is before the first command of {journal.path}"
                                  f" (seq {journal.first_seq})")
    kwargs = {} if batch is None else {"batch": batch}
    run = Replay(journal, start=start, stop=stop, **kwargs)
    lo = max(journal.first_seq, start if start is not None else 0)
    hi = min(journal.last_seq, stop if stop is not None else journal.last_seq)
    pacer = Pacer(pace, clock=clock, sleep=sleep)
    bar = None
    if progress:
        bar = Progress(lo, hi, None if progress is True else progress)  # type: ignore[arg-type]
    sink = open_sink(out) if out is not None else None
    try:
        done = 0
        for cmds, events in run:
            for c, e in pacer.chunks(cmds, events):
                if sink is not None:
                    sink.write(e)
                done += len(c)
                if bar is not None:
                    bar.update(int(c["seq"][-1]), done)
        if sink is not None:
            sink.commit()
            sink = None
    finally:
        if sink is not None:
            sink.abort()
        if bar is not None:
            bar.finish()
    seconds = time.perf_counter() - t0
    s = run.stats
    snap = str(journal.path / snapshot_name(s.snapshot_seq)) if s.snapshot_seq else None
    return ReplaySummary(
        journal=str(journal.path), journal_first_seq=journal.first_seq,
        journal_last_seq=journal.last_seq, asked_stop=stop, commands=s.commands,
        events=s.events, trades=s.trades, volume=s.volume, rejects=s.rejects,
        first_seq=s.first_seq, last_seq=s.last_seq, snapshot_seq=s.snapshot_seq, snapshot=snap,
        digest=run.core.state_digest(), seconds=seconds, out=None if out is None else str(out),
        out_format=fmt, speed=speed.strip().lower())
