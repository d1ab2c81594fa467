"""The journal's on-disk layout: file names, the segment header, the record, the manifest.

Owns every byte offset that docs/JOURNAL.md specifies, and the errors a bad journal raises.
Must never hold state or open files for writing: the writer and the reader do that.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
import sys
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import msgspec
import numpy as np

from ..config import InstrumentConfig
from ..instruments import InstrumentSet
from ..venues import VenueSet
from ..schema import COMMAND_DTYPE, RISK_TABLES
from . import _codec

if sys.byteorder != "little":  # pragma: no cover - the record layouts are little-endian
    raise ImportError("the journal format needs a little-endian machine")

FORMAT_VERSION = 1

# -- segment files ---------------------------------------------------------------------------
SEGMENT_MAGIC = b"ENGJRNL\n"
SEGMENT_SUFFIX = ".seg"
HEADER_SIZE = 64
# magic, format version, header size, record size, reserved, first seq, created ns,
# instrument-set digest (first 16 bytes), engine version (ASCII, NUL-padded), header CRC32C
_HEADER = struct.Struct("<8sHHHHqq16s12sI")
assert _HEADER.size == HEADER_SIZE

# -- records ---------------------------------------------------------------------------------
RECORD_SIZE = 64
PAYLOAD_OFFSET = 8
REC_COMMAND = 1
# The record as numpy sees it: a memory-mapped segment body is an array of this.
RECORD_DTYPE = np.dtype({
    "names": ["length", "type", "crc"] + list(COMMAND_DTYPE.names),
    "formats": ["<u2", "<u2", "<u4"] + [COMMAND_DTYPE.fields[n][0] for n in COMMAND_DTYPE.names],
    "offsets": [0, 2, 4] + [PAYLOAD_OFFSET + COMMAND_DTYPE.fields[n][1]
                            for n in COMMAND_DTYPE.names],
    "itemsize": RECORD_SIZE,
})
assert COMMAND_DTYPE.itemsize == RECORD_SIZE - PAYLOAD_OFFSET

# -- snapshots and the manifest ---------------------------------------------------------------
MANIFEST = "journal.json"
LOCK_FILE = "lock"
SNAPSHOT_PREFIX = "snapshot-"
SNAPSHOT_SUFFIX = ".snap"
ARCHIVE_DIR = "archive"

_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")
_SNAPSHOT_NAME = re.compile(r"^snapshot-(\d{20})\.snap$")

SCAN_PROBLEMS = {
    _codec.SHORT: "a partial record (fewer than 64 bytes) at the end",
    _codec.BAD_LENGTH: "a record whose length field is not 64",
    _codec.BAD_TYPE: "a record of an unknown type",
    _codec.BAD_CRC: "a record whose CRC32C does not match",
    _codec.BAD_SEQ: "a record out of sequence",
}


class JournalError(Exception):
    """A journal that cannot be used as asked: missing, not a journal, wrong version, a write
    that failed. The message names the file (and offset) where it applies."""


class JournalCorrupt(JournalError):
    """Damage that recovery must not skip: a bad record that is not the torn tail."""

    def __init__(self, path: str | os.PathLike[str], offset: int, detail: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.detail = detail
        super().__init__(f"{self.path}: offset {offset}: {detail}")


class JournalMismatch(JournalError):
    """A journal written for another format version or another instrument set."""


def segment_name(first_seq: int) -> str:
    """Names sort in sequence order: the first sequence number, 20 digits."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def snapshot_name(seq: int) -> str:
    return f"{SNAPSHOT_PREFIX}{seq:020d}{SNAPSHOT_SUFFIX}"


def list_segments(path: Path) -> list[tuple[int, Path]]:
    """(first seq from the name, path) of every segment file, in order."""
    out = []
    for p in path.iterdir():
        m = _SEGMENT_NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def list_snapshots(path: Path) -> list[tuple[int, Path]]:
    """(seq, path) of every snapshot file, newest first."""
    out = []
    for p in path.iterdir():
        m = _SNAPSHOT_NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out, reverse=True)


def digest16(instruments_digest: str) -> bytes:
    return bytes.fromhex(instruments_digest)[:16]


@dataclass(frozen=True)
class SegmentHeader:
    format_version: int
    first_seq: int
    created_ns: int
    instruments_digest16: bytes
    engine_version: str

    def pack(self) -> bytes:
        body = _HEADER.pack(SEGMENT_MAGIC, self.format_version, HEADER_SIZE, RECORD_SIZE, 0,
                            self.first_seq, self.created_ns, self.instruments_digest16,
                            self.engine_version.encode("ascii")[:12], 0)
        return body[:-4] + struct.pack("<I", _codec.crc32c(body[:-4]))

    @classmethod
    def unpack(cls, raw: bytes, path: Path) -> SegmentHeader:
        """Raises JournalCorrupt (bad bytes) or JournalMismatch (another format version)."""
        if len(raw) < HEADER_SIZE:
            raise JournalCorrupt(path, 0, f"segment header is {len(raw)} bytes, expected 64")
        magic, version, hsize, rsize, _, first, created, dig, ver, crc = _HEADER.unpack(
            raw[:HEADER_SIZE])
        if magic != SEGMENT_MAGIC:
            raise JournalCorrupt(path, 0, "not a journal segment (bad magic)")
        if crc != _codec.crc32c(raw[:HEADER_SIZE - 4]):
            raise JournalCorrupt(path, 0, "segment header CRC32C does not match")
        if version != FORMAT_VERSION or hsize != HEADER_SIZE or rsize != RECORD_SIZE:
            raise JournalMismatch(
                f"{path}: journal format version {version} (header {hsize} B, records {rsize} B);"
                f" this engine reads version {FORMAT_VERSION} only")
        return cls(version, first, created, dig, ver.rstrip(b"\0").decode("ascii", "replace"))


class RiskManifest(msgspec.Struct, forbid_unknown_fields=True):
    """The risk a journal was written with (docs/RISK.md): the initial tables the core took
    (each table's raw little-endian bytes, base64) and the currencies' codes and decimals,
    so a reader can replay it and print money. ``digest`` is BLAKE2b-256 of the codes,
    decimals and table bytes."""

    currencies: tuple[str, ...]
    decimals: tuple[int, ...]
    tables: dict[str, str]
    digest: str

    @classmethod
    def build(cls, tables: dict[str, np.ndarray], currencies: tuple[str, ...] | list[str],
              decimals: tuple[int, ...] | list[int]) -> RiskManifest:
        raw = {k: np.ascontiguousarray(tables[k], dtype=d).tobytes()
               for k, d in RISK_TABLES.items()}
        return cls(tuple(currencies), tuple(int(d) for d in decimals),
                   {k: base64.b64encode(v).decode("ascii") for k, v in raw.items()},
                   _risk_digest(tuple(currencies), tuple(decimals), raw))

    def arrays(self) -> dict[str, np.ndarray]:
        """The initial tables as numpy arrays; ValueError if the manifest is damaged."""
        if set(self.tables) != set(RISK_TABLES):
            raise ValueError(f"risk tables must be {', '.join(RISK_TABLES)}")
        raw = {}
        for k, d in RISK_TABLES.items():
            try:
                raw[k] = base64.b64decode(self.tables[k], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"risk table {k!r} is not valid base64") from None
            if len(raw[k]) % d.itemsize:
                raise ValueError(f"risk table {k!r} is {len(raw[k])} bytes, not a whole"
                                 f" number of {d.itemsize}-byte rows")
        if _risk_digest(self.currencies, self.decimals, raw) != self.digest:
            raise ValueError("risk digest does not match the tables listed")
        if len(self.currencies) != len(self.decimals) or \
                len(raw["currencies"]) // RISK_TABLES["currencies"].itemsize != len(self.currencies):
            raise ValueError("risk currencies, decimals and the currency table differ in length")
        return {k: np.frombuffer(raw[k], dtype=d).copy() for k, d in RISK_TABLES.items()}


def _risk_digest(currencies: tuple[str, ...], decimals: tuple[int, ...],
                 raw: dict[str, bytes]) -> str:
    h = hashlib.blake2b(b"engine.risk.v1\n", digest_size=32)
    h.update(msgspec.json.encode([list(currencies), list(decimals)]))
    for k in RISK_TABLES:
        h.update(len(raw[k]).to_bytes(8, "little"))
        h.update(raw[k])
    return h.hexdigest()


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    """``journal.json``: what the journal was written for. Written once, atomically."""

    format_version: int
    engine_version: str
    created_ns: int
    instruments_digest: str
    instruments: tuple[InstrumentConfig, ...]
    risk: RiskManifest | None = None   # None: the core ran without pre-trade risk
    venues: dict[str, Any] | None = None   # VenueSet.definition(); None: no venues
    venues_digest: str | None = None       # VenueSet.digest() of ``venues``

    def instrument_set(self) -> InstrumentSet:
        return InstrumentSet(self.instruments)

    def venue_set(self) -> VenueSet:
        """The venues and books the core ran with (docs/ROUTING.md); empty without venues."""
        return VenueSet.empty() if self.venues is None else VenueSet.from_definition(self.venues)

    def risk_tables(self) -> dict[str, np.ndarray] | None:
        """The initial risk tables, or None when the journal ran without risk."""
        return None if self.risk is None else self.risk.arrays()


def encode_manifest(m: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(m), indent=2) + b"\n"


def read_manifest(path: Path) -> Manifest:
    """The manifest of the journal directory ``path``; JournalError if it is not a journal."""
    if not path.exists():
        raise JournalError(f"{path}: no such journal directory")
    if not path.is_dir():
        raise JournalError(f"{path}: not a directory")
    mpath = path / MANIFEST
    if not mpath.exists():
        raise JournalError(f"{path}: not a journal (no {MANIFEST})")
    try:
        raw = msgspec.json.decode(mpath.read_bytes())
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if isinstance(version, int) and version != FORMAT_VERSION:
            raise JournalMismatch(f"{mpath}: journal format version {version};"
                                  f" this engine reads version {FORMAT_VERSION} only")
        m = msgspec.convert(raw, Manifest)
        actual = m.instrument_set().digest()
    except JournalError:
        raise
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
        raise JournalError(f"{mpath}: not a valid journal manifest: {e}") from None
    if actual != m.instruments_digest:
        raise JournalCorrupt(mpath, 0, "instruments_digest does not match the instruments listed")
    if m.risk is not None:
        try:
            m.risk.arrays()
        except ValueError as e:
            raise JournalCorrupt(mpath, 0, f"risk: {e}") from None
    if (m.venues is None) != (m.venues_digest is None):
        raise JournalCorrupt(mpath, 0, "venues and venues_digest come together")
    if m.venues is not None:
        try:
            venues = m.venue_set()
        except (ValueError, TypeError) as e:
            raise JournalCorrupt(mpath, 0, f"venues: {e}") from None
        if venues.digest() != m.venues_digest:
            raise JournalCorrupt(mpath, 0, "venues_digest does not match the venues listed")
    return m


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file so that a crash leaves either the old state or the new file: a
    temporary file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
