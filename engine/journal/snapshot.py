"""Snapshots: the whole engine state at a sequence number, in one checksummed file.

Owns the snapshot file layout (docs/JOURNAL.md, "Snapshots") and the retention of old
segments and snapshots. Must never write a snapshot in place: a crash leaves either the old
set of files or the new, complete one.
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..schema import INSTRUMENT_STATE_DTYPE, ORDER_STATE_DTYPE, PARENT_STATE_DTYPE, RISK_TABLES
from . import _codec
from .format import (
    ARCHIVE_DIR,
    FORMAT_VERSION,
    JournalCorrupt,
    JournalMismatch,
    digest16,
    fsync_dir,
    list_segments,
    list_snapshots,
    snapshot_name,
    write_atomic,
)

log = logging.getLogger("engine.journal")

SNAPSHOT_MAGIC = b"ENGSNAP\n"
TRAILER_MAGIC = b"SNAPEND\n"
# magic, format version, section count, reserved, seq, created ns, instrument digest (16 B),
# engine version (12 B ASCII), reserved
_HEADER = struct.Struct("<8sHHIqq16s12sI")
# name (16 B ASCII, NUL-padded), item size, reserved, item count
_SECTION = struct.Struct("<16sIIQ")
# trailer magic, CRC32C of every byte before the trailer, reserved
_TRAILER = struct.Struct("<8sII")
assert _HEADER.size == 64 and _SECTION.size == 32 and _TRAILER.size == 16

# Every section a snapshot of this format version may hold, and the layout of its items.
SECTIONS: dict[str, np.dtype] = {
    "instruments": INSTRUMENT_STATE_DTYPE,
    "orders": ORDER_STATE_DTYPE,
    "history": ORDER_STATE_DTYPE,
    "history_total": np.dtype("<i8"),
}

# The router's state (docs/ROUTING.md): live parents and the count of children ever created.
# Always written; a snapshot without them (older engines) has none and 0.
ROUTING_SECTIONS: dict[str, np.dtype] = {
    "parents": PARENT_STATE_DTYPE,
    "children": np.dtype("<i8"),
}

# The risk tables of a core with risk on (docs/RISK.md): all of them, or none.
RISK_PREFIX = "risk_"
RISK_SECTIONS: dict[str, np.dtype] = {RISK_PREFIX + k: d for k, d in RISK_TABLES.items()}

RETENTION = ("keep", "archive", "delete")


PART_SEPARATOR = "."   # "gw.accounts": section "accounts" of the part "gw"
MAX_SECTION_NAME = 16


def _state_sections(state: dict) -> list[tuple[str, np.ndarray]]:
    core = [
        ("instruments", state["instruments"]),
        ("orders", state["orders"]),
        ("history", state["history"]),
        ("history_total", np.array([state["history_total"]], dtype="<i8")),
        ("parents", state.get("parents", np.zeros(0, PARENT_STATE_DTYPE))),
        ("children", np.array([state.get("children", 0)], dtype="<i8")),
    ]
    risk = state.get("risk")
    if risk is not None:
        core += [(RISK_PREFIX + k, risk[k]) for k in RISK_TABLES]
    parts = sorted(state.get("parts", {}).items())
    for name, arr in parts:
        if PART_SEPARATOR not in name or len(name.encode("ascii")) > MAX_SECTION_NAME:
            raise ValueError(f"part section names are '<part>.<name>', at most"
                             f" {MAX_SECTION_NAME} ASCII bytes: {name!r}")
        if not isinstance(arr, np.ndarray) or arr.ndim != 1:
            raise ValueError(f"part section {name!r} must be a one-dimensional numpy array")
    return core + parts


def encode_snapshot(seq: int, state: dict, instruments_digest: str,
                    created_ns: int | None = None) -> bytes:
    """The bytes of a snapshot file for ``state`` (as ``Core.export_state()`` returns it)."""
    sections = _state_sections(state)
    parts = [_HEADER.pack(SNAPSHOT_MAGIC, FORMAT_VERSION, len(sections), 0, seq,
                          time.time_ns() if created_ns is None else created_ns,
                          digest16(instruments_digest), __version__.encode("ascii")[:12], 0)]
    for name, arr in sections:
        arr = np.ascontiguousarray(arr, dtype=SECTIONS.get(name, RISK_SECTIONS.get(name, arr.dtype)))
        raw = arr.tobytes()
        parts.append(_SECTION.pack(name.encode("ascii"), arr.dtype.itemsize, 0, len(arr)))
        parts.append(raw)
        parts.append(b"\0" * (-len(raw) % 8))
    body = b"".join(parts)
    return body + _TRAILER.pack(TRAILER_MAGIC, _codec.crc32c(body), 0)


def decode_snapshot(data: bytes | memoryview, path: Path, instruments_digest: str,
                    parts: dict[str, np.dtype] | None = None) -> tuple[int, dict]:
    """(seq, state) from a snapshot file's bytes. JournalCorrupt if damaged, JournalMismatch
    if written by another format version or for another instrument set.

    ``parts`` names the part sections the caller needs (``"gw.accounts"`` -> item dtype):
    each must be present with that item size, else JournalMismatch (the snapshot was taken by
    an engine without that part). Part sections the caller does not name are skipped, so a
    backtester replays a gateway's journal without knowing the gateway. ``state["parts"]``
    holds the named ones."""
    parts = parts or {}
    n = len(data)
    if n < _HEADER.size + _TRAILER.size:
        raise JournalCorrupt(path, 0, f"snapshot is {n} bytes, too short")
    magic, version, count, _, seq, _, dig, _, _ = _HEADER.unpack_from(data, 0)
    if magic != SNAPSHOT_MAGIC:
        raise JournalCorrupt(path, 0, "not a snapshot (bad magic)")
    tmagic, crc, _ = _TRAILER.unpack_from(data, n - _TRAILER.size)
    if tmagic != TRAILER_MAGIC:
        raise JournalCorrupt(path, n - _TRAILER.size, "snapshot trailer missing (incomplete file)")
    if crc != _codec.crc32c(memoryview(data)[:n - _TRAILER.size]):
        raise JournalCorrupt(path, n - _TRAILER.size, "snapshot CRC32C does not match")
    if version != FORMAT_VERSION:
        raise JournalMismatch(f"{path}: snapshot format version {version}; this engine reads"
                              f" version {FORMAT_VERSION} only")
    if dig != digest16(instruments_digest):
        raise JournalMismatch(f"{path}: snapshot taken with another instrument set")
    pos = _HEADER.size
    arrays: dict[str, np.ndarray] = {}
    for _ in range(count):
        if pos + _SECTION.size > n - _TRAILER.size:
            raise JournalCorrupt(path, pos, "section header runs past the end")
        raw_name, itemsize, _, items = _SECTION.unpack_from(data, pos)
        name = raw_name.rstrip(b"\0").decode("ascii", "replace")
        is_part = PART_SEPARATOR in name
        dtype = parts.get(name) if is_part else SECTIONS.get(
            name, RISK_SECTIONS.get(name, ROUTING_SECTIONS.get(name)))
        if not is_part and (dtype is None or dtype.itemsize != itemsize):
            raise JournalCorrupt(path, pos, f"unknown section {name!r} (item size {itemsize})")
        if dtype is not None and dtype.itemsize != itemsize:
            raise JournalMismatch(f"{path}: section {name!r} has items of {itemsize} bytes,"
                                  f" this engine's are {dtype.itemsize}")
        pos += _SECTION.size
        size = items * itemsize
        if pos + size > n - _TRAILER.size:
            raise JournalCorrupt(path, pos, f"section {name!r} runs past the end")
        if dtype is not None:
            arrays[name] = np.frombuffer(data, dtype=dtype, count=items, offset=pos).copy()
        pos += size + (-size % 8)
    missing = set(SECTIONS) - set(arrays)
    if missing:
        raise JournalCorrupt(path, pos, f"sections missing: {', '.join(sorted(missing))}")
    if "children" in arrays and len(arrays["children"]) != 1:
        raise JournalCorrupt(path, pos, "section 'children' must hold one item")
    risk_present = set(RISK_SECTIONS) & set(arrays)
    if risk_present and risk_present != set(RISK_SECTIONS):
        raise JournalCorrupt(path, pos, "risk sections missing: "
                             + ", ".join(sorted(set(RISK_SECTIONS) - risk_present)))
    absent = set(parts) - set(arrays)
    if absent:
        raise JournalMismatch(f"{path}: snapshot has no {', '.join(sorted(absent))} section"
                              " (taken by an engine without that part)")
    state = {"instruments": arrays["instruments"], "orders": arrays["orders"],
             "history": arrays["history"], "history_total": int(arrays["history_total"][0]),
             "risk": ({k: arrays[RISK_PREFIX + k] for k in RISK_TABLES} if risk_present
                      else None),
             "parents": arrays.get("parents", np.zeros(0, PARENT_STATE_DTYPE)),
             "children": int(arrays["children"][0]) if "children" in arrays else 0,
             "parts": {k: arrays[k] for k in parts}}
    return seq, state


def core_state(state: dict) -> dict:
    """The part of a decoded snapshot that ``Core.load_state`` takes (parts' sections apart)."""
    return {k: v for k, v in state.items() if k != "parts"}


def write_snapshot(directory: Path, seq: int, state: dict, instruments_digest: str) -> Path:
    """Write ``snapshot-<seq>.snap`` atomically (temporary file, fsync, rename)."""
    path = directory / snapshot_name(seq)
    write_atomic(path, encode_snapshot(seq, state, instruments_digest))
    return path


def read_snapshot(path: Path, instruments_digest: str,
                  parts: dict[str, np.dtype] | None = None) -> tuple[int, dict]:
    return decode_snapshot(path.read_bytes(), path, instruments_digest, parts)


def newest_snapshot(directory: Path, instruments_digest: str, max_seq: int,
                    parts: dict[str, np.dtype] | None = None
                    ) -> tuple[int, dict, Path] | None:
    """The newest snapshot that verifies and does not run past ``max_seq``; None if none.

    A snapshot that fails to verify is logged and passed over for an older one (the journal
    still holds what it covered unless retention removed it; recovery checks that)."""
    for seq, path in list_snapshots(directory):
        if seq > max_seq:
            log.warning("snapshot %s is past the journal's end (seq %d); not used", path, max_seq)
            continue
        try:
            got, state = read_snapshot(path, instruments_digest, parts)
        except (JournalCorrupt, JournalMismatch) as e:
            log.warning("snapshot not used: %s", e)
            continue
        if got != seq:
            log.warning("snapshot not used: %s: holds seq %d, named %d", path, got, seq)
            continue
        return seq, state, path
    return None


def apply_retention(directory: Path, snapshot_seq: int, policy: str, keep_snapshots: int = 2
                    ) -> list[Path]:
    """After a good snapshot at ``snapshot_seq``: archive or delete the segments it makes
    unnecessary (every record <= snapshot_seq; never the last, active segment) and all but the
    newest ``keep_snapshots`` snapshots. Returns the files moved or removed."""
    if policy not in RETENTION:
        raise ValueError(f"retention must be one of {', '.join(RETENTION)}, got {policy!r}")
    if policy == "keep":
        return []
    done: list[Path] = []
    segments = list_segments(directory)
    for (first, path), (next_first, _) in zip(segments, segments[1:]):
        if next_first - 1 <= snapshot_seq:
            done.append(path)
    snapshots = [p for s, p in list_snapshots(directory) if s <= snapshot_seq]
    done += snapshots[max(keep_snapshots, 1):]
    if not done:
        return []
    if policy == "archive":
        archive = directory / ARCHIVE_DIR
        archive.mkdir(exist_ok=True)
        for p in done:
            shutil.move(str(p), archive / p.name)
        fsync_dir(archive)
    else:
        for p in done:
            os.unlink(p)
    fsync_dir(directory)
    return done
