"""Reading a journal: verify every segment, find a torn tail, hand out commands as numpy.

Owns the rule that separates a torn tail from corruption (docs/JOURNAL.md, "Recovery").
Must never write: truncating a torn tail is the writer's job, at start-up.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..instruments import InstrumentSet
from ..schema import COMMAND_DTYPE
from . import _codec
from .format import (
    HEADER_SIZE,
    PAYLOAD_OFFSET,
    RECORD_DTYPE,
    RECORD_SIZE,
    SCAN_PROBLEMS,
    JournalCorrupt,
    JournalError,
    JournalMismatch,
    Manifest,
    SegmentHeader,
    digest16,
    list_segments,
    read_manifest,
)

log = logging.getLogger("engine.journal")


@dataclass(frozen=True)
class Segment:
    """One verified segment file: records ``first_seq .. first_seq + count - 1``."""

    path: Path
    first_seq: int
    count: int
    size: int          # bytes on disk, torn tail included
    header: SegmentHeader | None   # None only for a torn (incomplete) header

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1

    @property
    def end(self) -> int:
        """Byte offset just after the last good record."""
        return HEADER_SIZE + self.count * RECORD_SIZE if self.header else 0


@dataclass(frozen=True)
class TornTail:
    """Bytes at the end of the last segment that never became a whole, valid record."""

    path: Path
    offset: int
    length: int
    detail: str

    def describe(self) -> str:
        return f"{self.path}: torn tail at offset {self.offset} ({self.length} bytes: {self.detail})"


def _map(path: Path, size: int) -> np.ndarray:
    if size == 0:
        return np.empty(0, dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(size,))


def _scan_segment(path: Path, name_seq: int, expect_seq: int, digest: bytes,
                  last: bool) -> tuple[Segment, TornTail | None]:
    size = path.stat().st_size
    if size < HEADER_SIZE:
        if last:
            return (Segment(path, expect_seq, 0, size, None),
                    TornTail(path, 0, size, "an incomplete segment header"))
        raise JournalCorrupt(path, 0, f"segment is {size} bytes, shorter than its header")
    buf = _map(path, size)
    try:
        header = SegmentHeader.unpack(bytes(buf[:HEADER_SIZE]), path)
    except JournalCorrupt:
        if last and size == HEADER_SIZE:
            return (Segment(path, expect_seq, 0, size, None),
                    TornTail(path, 0, size, "an incomplete segment header"))
        raise
    if header.instruments_digest16 != digest:
        raise JournalMismatch(f"{path}: segment written for another instrument set"
                              " than the journal's manifest")
    if header.first_seq != name_seq:
        raise JournalCorrupt(path, 16, f"header says first seq {header.first_seq},"
                                       f" the file name says {name_seq}")
    if header.first_seq != expect_seq:
        raise JournalCorrupt(path, 16, f"first seq {header.first_seq}, expected {expect_seq}"
                                       " (a segment is missing or out of order)")
    count, status = _codec.scan(buf, HEADER_SIZE, header.first_seq)
    seg = Segment(path, header.first_seq, count, size, header)
    if status == _codec.OK:
        return seg, None
    bad = HEADER_SIZE + count * RECORD_SIZE
    detail = SCAN_PROBLEMS[status]
    if status == _codec.BAD_SEQ:
        found = int(np.frombuffer(buf[bad + PAYLOAD_OFFSET:bad + PAYLOAD_OFFSET + 8], "<i8")[0])
        raise JournalCorrupt(path, bad, f"{detail}: seq {found}, expected"
                                        f" {header.first_seq + count}")
    if not last:
        raise JournalCorrupt(path, bad, detail)
    after = _codec.valid_record_after(buf, bad + RECORD_SIZE) if status != _codec.SHORT else -1
    if after >= 0:
        raise JournalCorrupt(path, bad, f"{detail}, followed by a valid record at offset {after}"
                                        " (damage inside the journal, not a torn tail)")
    return seg, TornTail(path, bad, size - bad, detail)


def scan_journal(path: Path, manifest: Manifest) -> tuple[list[Segment], TornTail | None]:
    """Verify every segment in order (headers, CRCs, gap-free sequence numbers).

    Returns the segments and the torn tail, if any. Raises JournalCorrupt for damage anywhere
    but the end, JournalMismatch for a segment of another version or instrument set.
    """
    digest = digest16(manifest.instruments_digest)
    files = list_segments(path)
    segments: list[Segment] = []
    torn = None
    expect = files[0][0] if files else 1
    for i, (name_seq, p) in enumerate(files):
        seg, torn = _scan_segment(p, name_seq, expect, digest, last=i == len(files) - 1)
        segments.append(seg)
        expect = seg.first_seq + seg.count
    return segments, torn


class Journal:
    """A journal directory opened for reading: verified on open, then read as numpy.

    >>> j = Journal("var/journal")                      # doctest: +SKIP
    >>> j.first_seq, j.last_seq                         # doctest: +SKIP
    (1, 5000000)
    >>> cmds = j.commands(1000, 1999)                   # COMMAND_DTYPE, 1000 records  # doctest: +SKIP

    A torn tail (a crash in the middle of a write) is reported in ``torn`` and left out;
    corruption anywhere else raises JournalCorrupt naming the file and the offset.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.segments, self.torn = scan_journal(self.path, self.manifest)
        if self.torn is not None:
            log.warning("journal %s", self.torn.describe())
        self.segments = [s for s in self.segments if s.count > 0]
        self.first_seq = self.segments[0].first_seq if self.segments else 0
        self.last_seq = self.segments[-1].last_seq if self.segments else 0

    @property
    def instruments(self) -> InstrumentSet:
        return self.manifest.instrument_set()

    @property
    def count(self) -> int:
        """Commands held (first_seq .. last_seq)."""
        return sum(s.count for s in self.segments)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, seq {self.first_seq}..{self.last_seq})"

    def _range(self, start: int | None, stop: int | None) -> tuple[int, int]:
        if not self.count:
            return 1, 0
        lo = self.first_seq if start is None else max(start, self.first_seq)
        hi = self.last_seq if stop is None else min(stop, self.last_seq)
        if start is not None and start < self.first_seq:
            raise JournalError(f"{self.path}: commands before seq {self.first_seq} are no longer"
                               f" in the journal (asked from {start})")
        return lo, hi

    def records(self, segment: int = 0) -> np.ndarray:
        """The verified records of one segment, memory-mapped (RECORD_DTYPE, read-only)."""
        s = self.segments[segment]
        return np.memmap(s.path, dtype=RECORD_DTYPE, mode="r", offset=HEADER_SIZE,
                         shape=(s.count,))

    def iter_batches(self, start: int | None = None, stop: int | None = None,
                     batch: int = 65536) -> Iterator[np.ndarray]:
        """Commands ``start..stop`` (inclusive sequence numbers) in arrays of up to ``batch``.

        Each array is fresh (the caller may keep it). Runtime: O(records), a 56-byte copy each.
        """
        if batch < 1:
            raise ValueError("batch must be >= 1")
        lo, hi = self._range(start, stop)
        for s in self.segments:
            if s.last_seq < lo or s.first_seq > hi:
                continue
            buf = _map(s.path, s.end)
            a, b = max(lo, s.first_seq), min(hi, s.last_seq)
            while a <= b:
                n = min(batch, b - a + 1)
                yield _codec.decode(buf, HEADER_SIZE + (a - s.first_seq) * RECORD_SIZE, n)
                a += n

    def commands(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Commands ``start..stop`` (inclusive sequence numbers) as one COMMAND_DTYPE array."""
        lo, hi = self._range(start, stop)
        out = np.empty(max(0, hi - lo + 1), dtype=COMMAND_DTYPE)
        pos = 0
        for part in self.iter_batches(lo, hi, batch=1 << 20):
            out[pos:pos + len(part)] = part
            pos += len(part)
        return out

    def require_commands(self) -> None:
        """JournalError unless the journal holds at least one command."""
        if not self.count:
            raise JournalError(f"{self.path}: the journal is empty (no commands)")
