"""The byte-level codec: CRC32C, record layout, verification, decoding (docs/JOURNAL.md)."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from engine.journal import _codec
from engine.journal.format import PAYLOAD_OFFSET, RECORD_DTYPE, RECORD_SIZE, REC_COMMAND
from engine.schema import COMMAND_DTYPE

from .conftest import workload


def crc32c_bitwise(data: bytes) -> int:
    """CRC32C written from its definition, as an independent reader would."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def stamped(n: int) -> np.ndarray:
    cmds = workload(n)
    cmds["seq"] = np.arange(1, n + 1)
    cmds["ts_ns"] = np.arange(1, n + 1) * 10
    return cmds


def test_crc32c_check_value() -> None:
    assert _codec.crc32c(b"123456789") == 0xE3069283 == crc32c_bitwise(b"123456789")
    assert _codec.crc32c(b"") == 0


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 60, 63, 64, 1000, 4099])
def test_crc32c_fast_path_equals_table_path_and_definition(size: int) -> None:
    data = os.urandom(size + 3)
    for start in range(3):  # unaligned starts too
        chunk = data[start:start + size]
        assert _codec.crc32c(chunk) == _codec._crc32c_software(chunk) == crc32c_bitwise(chunk)


def test_crc32c_continues_a_previous_result() -> None:
    data = os.urandom(777)
    assert _codec.crc32c(data[300:], _codec.crc32c(data[:300])) == _codec.crc32c(data)


def test_record_layout_matches_the_spec() -> None:
    cmds = stamped(5)
    raw = _codec.encode(cmds).tobytes()
    assert len(raw) == 5 * RECORD_SIZE
    for i in range(5):
        rec = raw[i * RECORD_SIZE:(i + 1) * RECORD_SIZE]
        length, rtype, crc = struct.unpack_from("<HHI", rec)
        assert (length, rtype) == (RECORD_SIZE, REC_COMMAND)
        assert crc == crc32c_bitwise(rec[:4] + rec[8:])
        assert rec[PAYLOAD_OFFSET:] == cmds[i:i + 1].tobytes()
        seq, ts = struct.unpack_from("<qq", rec, PAYLOAD_OFFSET)
        assert (seq, ts) == (i + 1, (i + 1) * 10)
    as_records = np.frombuffer(raw, dtype=RECORD_DTYPE)
    for name in COMMAND_DTYPE.names:
        assert np.array_equal(as_records[name], cmds[name])


def test_encode_reuses_a_large_enough_buffer() -> None:
    buf = np.empty(10 * RECORD_SIZE, dtype=np.uint8)
    out = _codec.encode(stamped(3), buf)
    assert len(out) == 3 * RECORD_SIZE and out.base is buf or np.shares_memory(out, buf)


def test_encode_refuses_other_arrays() -> None:
    with pytest.raises(TypeError):
        _codec.encode(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError):
        _codec.encode(np.zeros((2, 2), dtype=COMMAND_DTYPE))


def test_decode_round_trips() -> None:
    cmds = stamped(1000)
    raw = _codec.encode(cmds)
    assert _codec.decode(raw, 0, 1000).tobytes() == cmds.tobytes()
    assert _codec.decode(raw, 10 * RECORD_SIZE, 5).tobytes() == cmds[10:15].tobytes()
    out = np.empty(20, dtype=COMMAND_DTYPE)
    assert _codec.decode(raw, 0, 20, out).tobytes() == cmds[:20].tobytes()
    with pytest.raises(ValueError):
        _codec.decode(raw, 0, 1001)
    with pytest.raises(ValueError):
        _codec.decode(raw, -64, 1)
    with pytest.raises(ValueError):
        _codec.decode(raw, 0, 30, out)


def test_scan_accepts_a_clean_run() -> None:
    raw = _codec.encode(stamped(100)).tobytes()
    assert _codec.scan(raw, 0, 1) == (100, _codec.OK)
    assert _codec.scan(b"", 0, 1) == (0, _codec.OK)
    assert _codec.scan(raw, 64, 2) == (99, _codec.OK)


def _damaged(offset: int, value: bytes) -> bytes:
    raw = bytearray(_codec.encode(stamped(100)).tobytes())
    raw[offset:offset + len(value)] = value
    return bytes(raw)


@pytest.mark.parametrize("where,value,status", [
    (10 * 64 + 0, b"\x40\x01", _codec.BAD_LENGTH),          # length 0x0140
    (10 * 64 + 2, b"\x07\x00", _codec.BAD_TYPE),
    (10 * 64 + 40, b"\xff", _codec.BAD_CRC),                # a payload byte
    (10 * 64 + 5, b"\x00\x00", _codec.BAD_CRC),             # the CRC itself
])
def test_scan_stops_at_the_first_bad_record(where: int, value: bytes, status: int) -> None:
    assert _codec.scan(_damaged(where, value), 0, 1) == (10, status)


def test_scan_reports_a_sequence_gap() -> None:
    cmds = stamped(20)
    cmds["seq"][12:] += 1
    assert _codec.scan(_codec.encode(cmds), 0, 1) == (12, _codec.BAD_SEQ)


def test_scan_reports_a_partial_record_at_the_end() -> None:
    raw = _codec.encode(stamped(10)).tobytes()
    assert _codec.scan(raw[:-1], 0, 1) == (9, _codec.SHORT)
    assert _codec.scan(raw + b"\0" * 5, 0, 1) == (10, _codec.SHORT)


def test_valid_record_after_finds_good_records_past_damage() -> None:
    raw = _damaged(10 * 64 + 40, b"\xff")
    assert _codec.valid_record_after(raw, 10 * 64) == 11 * 64
    zeros = _codec.encode(stamped(3)).tobytes() + b"\0" * 640
    assert _codec.valid_record_after(zeros, 3 * 64) == -1
    assert _codec.valid_record_after(b"", 0) == -1
