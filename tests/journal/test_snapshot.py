"""Snapshot files: layout, verification, choice of the newest valid one, retention."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from engine.journal import _codec
from engine.journal.format import JournalCorrupt, JournalMismatch, segment_name, snapshot_name
from engine.journal.replay import new_core
from engine.journal.snapshot import (
    apply_retention,
    core_state,
    decode_snapshot,
    encode_snapshot,
    newest_snapshot,
    read_snapshot,
    write_snapshot,
)
from engine.schema import INSTRUMENT_STATE_DTYPE, ORDER_STATE_DTYPE, PARENT_STATE_DTYPE

from .conftest import INSTRUMENTS, workload

DIGEST = INSTRUMENTS.digest()


@pytest.fixture(scope="module")
def state() -> dict:
    core = new_core(INSTRUMENTS)
    cmds = workload(20_000, seed=4)
    cmds["seq"] = np.arange(1, len(cmds) + 1)
    core.process(cmds)
    return core.export_state()


def same_state(a: dict, b: dict) -> bool:
    return all(a[k].tobytes() == b[k].tobytes() for k in ("instruments", "orders", "history")) \
        and a["history_total"] == b["history_total"]


def test_round_trip(state: dict, tmp_path: Path) -> None:
    assert len(state["orders"]) > 100 and len(state["history"]) > 100
    path = write_snapshot(tmp_path, 20_000, state, DIGEST)
    assert path.name == snapshot_name(20_000) == "snapshot-00000000000000020000.snap"
    seq, back = read_snapshot(path, DIGEST)
    assert seq == 20_000 and same_state(state, back)
    assert back["parts"] == {}
    core = new_core(INSTRUMENTS.__class__([]))
    core.load_state(core_state(back))
    assert core.export_state()["orders"].tobytes() == state["orders"].tobytes()
    assert not list(tmp_path.glob("*.tmp"))


PART = {"gw.accounts": np.dtype([("account", "<u4"), ("_pad", "<u4"), ("n", "<i8")])}


def test_part_sections_round_trip_and_are_skipped_by_readers_without_the_part(state: dict
                                                                                ) -> None:
    arr = np.array([(1, 0, 7), (9, 0, 3)], dtype=PART["gw.accounts"])
    raw = encode_snapshot(42, {**state, "parts": {"gw.accounts": arr}}, DIGEST)
    seq, back = decode_snapshot(raw, Path("x"), DIGEST, PART)
    assert seq == 42 and back["parts"]["gw.accounts"].tobytes() == arr.tobytes()
    assert same_state(state, back)
    # a backtester that knows nothing of the gateway reads the core's state all the same
    _, plain = decode_snapshot(raw, Path("x"), DIGEST)
    assert plain["parts"] == {} and same_state(state, plain)


def test_a_snapshot_without_a_needed_part_or_with_another_layout_is_not_used(state: dict
                                                                            ) -> None:
    raw = encode_snapshot(42, state, DIGEST)
    with pytest.raises(JournalMismatch, match="no gw.accounts section"):
        decode_snapshot(raw, Path("x"), DIGEST, PART)
    other = np.zeros(2, dtype=[("account", "<u4"), ("n", "<i8")])          # 12-byte items
    raw = encode_snapshot(42, {**state, "parts": {"gw.accounts": other}}, DIGEST)
    with pytest.raises(JournalMismatch, match="items of 12 bytes"):
        decode_snapshot(raw, Path("x"), DIGEST, PART)
    with pytest.raises(ValueError, match="part section names"):
        encode_snapshot(42, {**state, "parts": {"nodot": other}}, DIGEST)


def test_layout_matches_the_spec(state: dict) -> None:
    raw = encode_snapshot(42, state, DIGEST, created_ns=7)
    magic, version, count, _, seq, created = struct.unpack_from("<8sHHIqq", raw, 0)
    assert (magic, version, count, seq, created) == (b"ENGSNAP\n", 1, 6, 42, 7)
    assert raw[32:48] == bytes.fromhex(DIGEST)[:16]
    pos, names = 64, []
    for _ in range(count):
        name, itemsize, _, items = struct.unpack_from("<16sIIQ", raw, pos)
        names.append((name.rstrip(b"\0").decode(), itemsize, items))
        pos += 32 + items * itemsize + (-(items * itemsize) % 8)
    assert names == [("instruments", INSTRUMENT_STATE_DTYPE.itemsize, 8),
                     ("orders", ORDER_STATE_DTYPE.itemsize, len(state["orders"])),
                     ("history", ORDER_STATE_DTYPE.itemsize, len(state["history"])),
                     ("history_total", 8, 1),
                     ("parents", PARENT_STATE_DTYPE.itemsize, len(state.get("parents", ()))),
                     ("children", 8, 1)]
    tmagic, crc, _ = struct.unpack_from("<8sII", raw, pos)
    assert pos + 16 == len(raw) and tmagic == b"SNAPEND\n"
    assert crc == _codec.crc32c(raw[:pos])


@pytest.mark.parametrize("damage,error,message", [
    (lambda r: r[:-1], JournalCorrupt, "trailer"),
    (lambda r: r[:len(r) // 2], JournalCorrupt, "trailer"),
    (lambda r: r[:10], JournalCorrupt, "too short"),
    (lambda r: b"XXXXXXXX" + r[8:], JournalCorrupt, "bad magic"),
    (lambda r: r[:200] + bytes([r[200] ^ 1]) + r[201:], JournalCorrupt, "CRC32C"),
])
def test_damage_is_detected(state: dict, damage, error, message) -> None:
    raw = encode_snapshot(5, state, DIGEST)
    with pytest.raises(error, match=message):
        decode_snapshot(damage(raw), Path("x.snap"), DIGEST)


def _resealed(raw: bytes, offset: int, value: bytes) -> bytes:
    body = bytearray(raw[:-16])
    body[offset:offset + len(value)] = value
    return bytes(body) + struct.pack("<8sII", b"SNAPEND\n", _codec.crc32c(bytes(body)), 0)


def test_other_versions_instruments_and_sections_are_refused(state: dict) -> None:
    raw = encode_snapshot(5, state, DIGEST)
    with pytest.raises(JournalMismatch, match="another instrument set"):
        decode_snapshot(raw, Path("x"), "00" * 32)
    with pytest.raises(JournalMismatch, match="version 3"):
        decode_snapshot(_resealed(raw, 8, struct.pack("<H", 3)), Path("x"), DIGEST)
    with pytest.raises(JournalCorrupt, match="unknown section 'widgets'"):
        decode_snapshot(_resealed(raw, 64, b"widgets".ljust(16, b"\0")), Path("x"), DIGEST)
    with pytest.raises(JournalCorrupt, match="runs past the end"):
        decode_snapshot(_resealed(raw, 64 + 24, struct.pack("<Q", 10**9)), Path("x"), DIGEST)


def test_newest_valid_snapshot_is_chosen(state: dict, tmp_path: Path) -> None:
    for seq in (100, 200, 300):
        write_snapshot(tmp_path, seq, state, DIGEST)
    assert newest_snapshot(tmp_path, DIGEST, 1000)[0] == 300
    assert newest_snapshot(tmp_path, DIGEST, 250)[0] == 200     # never past the journal
    (tmp_path / snapshot_name(300)).write_bytes(b"garbage" * 20)
    assert newest_snapshot(tmp_path, DIGEST, 1000)[0] == 200
    (tmp_path / snapshot_name(200)).rename(tmp_path / snapshot_name(250))   # misnamed
    assert newest_snapshot(tmp_path, DIGEST, 1000)[0] == 100
    assert newest_snapshot(tmp_path, DIGEST, 50) is None


@pytest.mark.parametrize("policy", ["keep", "archive", "delete"])
def test_retention(state: dict, tmp_path: Path, policy: str) -> None:
    for first in (1, 101, 201, 301):
        (tmp_path / segment_name(first)).write_bytes(b"")
    for seq in (150, 250):
        write_snapshot(tmp_path, seq, state, DIGEST)
    done = apply_retention(tmp_path, 250, policy, keep_snapshots=1)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    if policy == "keep":
        assert done == [] and len(names) == 6
        return
    # segments 1..100 and 101..200 are covered; 201..300 holds 251..300; 301.. is active
    assert sorted(p.name for p in done) == [segment_name(1), segment_name(101),
                                            snapshot_name(150)]
    assert names == [segment_name(201), segment_name(301), snapshot_name(250)]
    archived = sorted(p.name for p in (tmp_path / "archive").iterdir()) \
        if policy == "archive" else []
    assert archived == ([segment_name(1), segment_name(101), snapshot_name(150)]
                        if policy == "archive" else [])
    with pytest.raises(ValueError, match="retention"):
        apply_retention(tmp_path, 250, "shred")
