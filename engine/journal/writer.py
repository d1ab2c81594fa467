"""Appending to a journal: segments that roll over, durability policies, group commit.

Owns the journal's files while the engine runs (one writer per directory, held by a lock
file) and the answer to "is sequence number N durable yet?". Must never reorder, renumber or
skip a command, and never report durable what the chosen policy has not made so.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from .. import __version__
from ..instruments import InstrumentSet
from ..venues import VenueSet
from ..schema import COMMAND_DTYPE
from . import _codec
from .format import (
    FORMAT_VERSION,
    HEADER_SIZE,
    LOCK_FILE,
    MANIFEST,
    RECORD_SIZE,
    JournalError,
    JournalMismatch,
    Manifest,
    RiskManifest,
    SegmentHeader,
    digest16,
    encode_manifest,
    fsync_dir,
    read_manifest,
    segment_name,
    write_atomic,
)
from .reader import Segment, scan_journal

log = logging.getLogger("engine.journal")

Durability = Literal["fsync", "write", "none"]
DURABILITIES: tuple[str, ...] = ("fsync", "write", "none")
DEFAULT_SEGMENT_BYTES = 64 << 20

_sync = getattr(os, "fdatasync", os.fsync)


def check_instruments(manifest: Manifest, instruments: InstrumentSet, where: Path) -> None:
    """JournalMismatch unless the journal was written for exactly these instruments."""
    if manifest.instruments_digest == instruments.digest():
        return
    theirs = {i.id: i for i in manifest.instrument_set()}
    ours = {i.id: i for i in instruments}
    diff = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    shown = ", ".join(str(k) for k in diff[:8]) + (" ..." if len(diff) > 8 else "")
    raise JournalMismatch(
        f"{where}: the journal was written for another instrument set (digest"
        f" {manifest.instruments_digest[:16]}..., the config's is {instruments.digest()[:16]}...;"
        f" instrument ids that differ: {shown}). Use the config it was written with,"
        " or start a new journal directory.")


def check_risk(manifest: Manifest, risk: RiskManifest | None, where: Path) -> None:
    """JournalMismatch unless the journal was written with exactly this risk setup."""
    theirs = None if manifest.risk is None else manifest.risk.digest
    ours = None if risk is None else risk.digest
    if theirs == ours:
        return
    if theirs is None or ours is None:
        what = ("without pre-trade risk, the config has it on" if theirs is None
                else "with pre-trade risk, the config has it off")
    else:
        what = (f"with other initial risk tables (digest {theirs[:16]}..., the config's is"
                f" {ours[:16]}...)")
    raise JournalMismatch(
        f"{where}: the journal was written {what}. Balances, positions and limits start from"
        " the journal's first run; change them at runtime with the risk admin commands, or"
        " start a new journal directory.")


def check_venues(manifest: Manifest, venues: VenueSet, where: Path) -> None:
    """JournalMismatch unless the journal was written for exactly these venues and books."""
    theirs = manifest.venues_digest
    ours = venues.digest() if venues else None
    if theirs == ours:
        return
    what = ("without venues, the config has them" if theirs is None
            else "with venues, the config has none" if ours is None
            else f"for other venues or books (digest {theirs[:16]}..., the config's is"
                 f" {ours[:16]}...)")
    raise JournalMismatch(
        f"{where}: the journal was written {what}. Use the config it was written with, or"
        " start a new journal directory.")


class JournalWriter:
    """Appends commands already stamped by the sequencer, gap-free, and tracks durability.

    ``durability``:

    - ``"fsync"``: a command is durable once an fdatasync that covers it has returned. A
      background thread runs one fsync at a time; everything appended while it runs is
      covered by the next one (group commit), so throughput is not capped by fsyncs/s.
    - ``"write"``: durable once ``write()`` has handed it to the operating system (survives
      the process being killed, not the machine losing power).
    - ``"none"``: nothing is written; for benchmarks and backtests (``path`` may be None).

    Opening an existing journal verifies it, truncates a torn tail (logged) and continues
    after its last record. A write or fsync that fails stops the writer: every later append
    raises JournalError and nothing after the last durable command is reported durable.
    """

    def __init__(self, path: str | os.PathLike[str] | None, instruments: InstrumentSet, *,
                 durability: Durability = "fsync", segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 clock_ns: Callable[[], int] = time.time_ns,
                 risk: RiskManifest | None = None, venues: VenueSet | None = None) -> None:
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITIES)},"
                             f" got {durability!r}")
        if segment_bytes < HEADER_SIZE + RECORD_SIZE:
            raise ValueError(f"segment_bytes must be at least {HEADER_SIZE + RECORD_SIZE}")
        self.durability = durability
        self.risk = risk
        self.venues = venues if venues is not None else VenueSet.empty()
        self.instruments = instruments
        self.segment_bytes = segment_bytes
        self._clock_ns = clock_ns
        self._digest16 = digest16(instruments.digest())
        self._listeners: list[Callable[[int], None]] = []
        self._cond = threading.Condition()
        self._fd_lock = threading.Lock()
        self._error: JournalError | None = None
        self._closed = False
        self._fd = -1
        self._lock_fd = -1
        self._seg_first = 0
        self._seg_size = 0
        self._seg_path: Path | None = None
        self._buf = np.empty(0, dtype=np.uint8)
        self._flusher: threading.Thread | None = None
        self.path = None if path is None else Path(path)
        self.segments_closed = 0
        last = 0
        if durability != "none":
            if self.path is None:
                raise ValueError(f"durability {durability!r} needs a journal directory")
            last = self._open_dir()
        self._next = last + 1
        self._written = last     # handed to the OS (or, with "none", accepted)
        self._durable = last     # covered by the durability policy
        if durability == "fsync":
            self._flusher = threading.Thread(target=self._flush_loop, name="journal-fsync",
                                             daemon=True)
            self._flusher.start()

    # -- opening -------------------------------------------------------------------------------

    def _open_dir(self) -> int:
        path = self.path
        assert path is not None
        if path.exists() and not path.is_dir():
            raise JournalError(f"{path}: exists and is not a directory")
        fresh = not (path / MANIFEST).exists()
        if fresh and path.exists() and any(p.name != LOCK_FILE for p in path.iterdir()):
            raise JournalError(f"{path}: not a journal (no {MANIFEST}) and not empty;"
                               " refusing to write into it")
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise JournalError(f"{path}: cannot open the journal directory: {e.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise JournalError(f"{path}: the journal is in use by another process") from None
        try:
            if fresh:
                manifest = Manifest(FORMAT_VERSION, __version__, self._clock_ns(),
                                    self.instruments.digest(),
                                    tuple(i.config for i in self.instruments), self.risk,
                                    self.venues.definition() if self.venues else None,
                                    self.venues.digest() if self.venues else None)
                write_atomic(path / MANIFEST, encode_manifest(manifest))
            manifest = read_manifest(path)
            check_instruments(manifest, self.instruments, path)
            check_risk(manifest, self.risk, path)
            check_venues(manifest, self.venues, path)
            segments, torn = scan_journal(path, manifest)
            if torn is not None:
                self._truncate(torn.path, torn.offset)
                log.warning("journal %s: truncated to %d bytes", torn.describe(), torn.offset)
                if torn.offset == 0:
                    segments.pop()
            if segments:
                last_seg = segments[-1]
                self._resume(last_seg)
                return last_seg.last_seq
            self._new_segment(1)
            return 0
        except BaseException:
            self._release()
            raise

    def _truncate(self, path: Path, offset: int) -> None:
        if offset == 0:
            path.unlink()
            fsync_dir(path.parent)
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _resume(self, seg: Segment) -> None:
        try:
            self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        except OSError as e:
            raise JournalError(f"{seg.path}: cannot open for appending: {e.strerror}") from None
        self._seg_path = seg.path
        self._seg_first = seg.first_seq
        self._seg_size = seg.end

    def _new_segment(self, first_seq: int) -> None:
        # the header is made durable before any record can be acknowledged from this file
        assert self.path is not None
        p = self.path / segment_name(first_seq)
        header = SegmentHeader(FORMAT_VERSION, first_seq, self._clock_ns(), self._digest16,
                               __version__).pack()
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            self._write_all(fd, memoryview(header), p)
            if self.durability == "fsync":
                os.fsync(fd)
                fsync_dir(self.path)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._seg_path = p
        self._seg_first = first_seq
        self._seg_size = HEADER_SIZE

    def _roll(self, first_seq: int) -> None:
        with self._fd_lock:
            old = self._fd
            if self.durability == "fsync":
                _sync(old)
            os.close(old)
            self._fd = -1
            self.segments_closed += 1
            if self.durability == "fsync":
                with self._cond:
                    self._set_durable(self._written)
            self._new_segment(first_seq)

    @staticmethod
    def _write_all(fd: int, view: memoryview, path: Path | None) -> None:
        while view:
            n = os.write(fd, view)
            view = view[n:]

    # -- appending -------------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended command must carry."""
        return self._next

    @property
    def last_seq(self) -> int:
        """The last sequence number appended (0 if none)."""
        return self._next - 1

    @property
    def durable_seq(self) -> int:
        """Every command up to this sequence number is durable under the policy."""
        return self._durable

    @property
    def failed(self) -> JournalError | None:
        """The error that stopped the writer, or None."""
        return self._error

    def add_listener(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(durable_seq)`` whenever durability advances (from the fsync thread with
        ``"fsync"``, from the appending thread otherwise)."""
        self._listeners.append(fn)

    def append(self, commands: np.ndarray) -> int:
        """Write stamped commands (COMMAND_DTYPE, seq ``next_seq``, ``next_seq + 1``, ...).

        Returns the last sequence number. With ``"write"`` and ``"none"`` they are durable on
        return; with ``"fsync"`` see ``durable_seq`` / ``wait_durable``. Raises JournalError if
        the writer has failed or fails now (then nothing of this call is durable).
        """
        if self._error is not None:
            raise self._error
        if self._closed:
            raise JournalError("the journal writer is closed")
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE \
                or commands.ndim != 1:
            raise TypeError("append() takes a one-dimensional array of COMMAND_DTYPE")
        n = len(commands)
        if n == 0:
            return self._next - 1
        first = int(commands["seq"][0])
        if first != self._next or int(commands["seq"][-1]) != self._next + n - 1 or (
                n > 1 and not bool(np.all(np.diff(commands["seq"]) == 1))):
            raise ValueError(f"commands must carry gap-free sequence numbers from {self._next}")
        if len(self._buf) < n * RECORD_SIZE:
            self._buf = np.empty(max(n * RECORD_SIZE, 1 << 16), dtype=np.uint8)
        data = _codec.encode(commands, self._buf)
        last = self._next + n - 1
        if self.durability != "none":
            self._write_records(data, first)
        self._next = last + 1
        if self.durability == "fsync":
            with self._cond:
                self._written = last
                self._cond.notify_all()
        else:
            self._written = last
            self._set_durable(last)
        return last

    def _write_records(self, data: np.ndarray, first: int) -> None:
        view = memoryview(data)
        seq = first
        try:
            while view:
                room = (self.segment_bytes - self._seg_size) // RECORD_SIZE
                if room <= 0:
                    self._roll(seq)
                    continue
                part = view[:room * RECORD_SIZE]
                self._write_all(self._fd, part, self._seg_path)
                self._seg_size += len(part)
                seq += len(part) // RECORD_SIZE
                view = view[len(part):]
        except OSError as e:
            self._fail(e, "write")
            raise self._error from None

    def _fail(self, e: OSError, what: str) -> None:
        reason = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file size limit was hit",
                  errno.EROFS: "the file system is read-only", errno.EDQUOT: "the quota is"
                  " exceeded"}.get(e.errno or 0, e.strerror or str(e))
        err = JournalError(f"{self._seg_path}: journal {what} failed ({reason}); intake stopped,"
                           f" commands after seq {self._durable} were not acknowledged")
        with self._cond:
            if self._error is None:
                self._error = err
            self._cond.notify_all()
        log.error("%s", err)

    def _set_durable(self, seq: int) -> None:
        if seq <= self._durable:
            return
        self._durable = seq
        for fn in self._listeners:
            fn(seq)

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while self._written <= self._durable and not self._closed and self._error is None:
                    self._cond.wait()
                if self._error is not None or (self._closed and self._written <= self._durable):
                    return
            with self._fd_lock:
                with self._cond:
                    target = self._written
                if target <= self._durable:
                    continue
                try:
                    _sync(self._fd)
                except OSError as e:
                    self._fail(e, "fsync")
                    return
            with self._cond:
                self._set_durable(target)
                self._cond.notify_all()

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``seq`` is durable (True) or ``timeout`` passes (False).

        Raises JournalError if the writer fails before then."""
        with self._cond:
            self._cond.wait_for(lambda: self._durable >= seq or self._error is not None,
                                     timeout)
            if self._durable >= seq:
                return True
            if self._error is not None:
                raise self._error
            return False

    def sync(self) -> int:
        """Make everything appended durable now, whatever the policy; returns its seq."""
        if self.durability == "fsync":
            self.wait_durable(self.last_seq)
        elif self.durability == "write" and self._fd >= 0:
            try:
                _sync(self._fd)
            except OSError as e:
                self._fail(e, "fsync")
                raise self._error from None
        return self.last_seq

    def close(self) -> None:
        """Finish pending fsyncs, close the files and release the directory."""
        if self._closed:
            return
        if self.durability == "fsync" and self._error is None:
            try:
                self.wait_durable(self.last_seq)
            except JournalError:
                pass
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._flusher is not None:
            self._flusher.join()
        self._release()

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = -1

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
