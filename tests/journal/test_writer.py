"""Appending: segments, durability, group commit, torn tails, corruption, bad directories."""
from __future__ import annotations

import errno
import logging
import os
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.config import parse_config
from engine.instruments import InstrumentSet
from engine.journal import writer as writer_mod
from engine.journal.format import (
    HEADER_SIZE,
    MANIFEST,
    RECORD_SIZE,
    JournalCorrupt,
    JournalError,
    JournalMismatch,
    SegmentHeader,
    list_segments,
    segment_name,
)
from engine.journal.reader import Journal
from engine.journal.sequencer import Sequencer
from engine.journal.writer import JournalWriter

from .conftest import INSTRUMENTS, counting_clock, workload, write_journal


def _stamp(w: JournalWriter, cmds: np.ndarray) -> np.ndarray:
    cmds = cmds.copy()
    Sequencer(w.next_seq, clock_ns=counting_clock()).stamp(cmds)
    return cmds


# -- creating and appending ------------------------------------------------------------------

def test_a_new_journal_has_a_manifest_and_a_first_segment(jdir: Path) -> None:
    with JournalWriter(jdir, INSTRUMENTS, durability="write") as w:
        assert (w.next_seq, w.last_seq, w.durable_seq) == (1, 0, 0)
    assert (jdir / MANIFEST).exists()
    [(first, seg)] = list_segments(jdir)
    assert first == 1 and seg.name == "00000000000000000001.seg"
    raw = seg.read_bytes()
    assert len(raw) == HEADER_SIZE
    h = SegmentHeader.unpack(raw, seg)
    assert (h.format_version, h.first_seq) == (1, 1)
    assert h.instruments_digest16 == bytes.fromhex(INSTRUMENTS.digest())[:16]


def test_appended_commands_read_back_identically(jdir: Path) -> None:
    stamped = write_journal(jdir, workload(5000), batch=333)
    j = Journal(jdir)
    assert (j.first_seq, j.last_seq, j.count) == (1, 5000, 5000)
    assert j.commands().tobytes() == stamped.tobytes()
    assert j.commands(100, 199).tobytes() == stamped[99:199].tobytes()
    parts = list(j.iter_batches(batch=700))
    assert [len(p) for p in parts][:2] == [700, 700]
    assert np.concatenate(parts).tobytes() == stamped.tobytes()


def test_segments_roll_over_at_the_configured_size_and_sort_by_name(jdir: Path) -> None:
    size = HEADER_SIZE + 100 * RECORD_SIZE
    stamped = write_journal(jdir, workload(1050), batch=64, segment_bytes=size)
    segs = list_segments(jdir)
    assert [first for first, _ in segs] == [1 + 100 * k for k in range(11)]
    assert all(p.stat().st_size == size for _, p in segs[:-1])
    assert segs[-1][1].stat().st_size == HEADER_SIZE + 50 * RECORD_SIZE
    j = Journal(jdir)
    assert j.commands().tobytes() == stamped.tobytes()
    recs = j.records(3)
    assert recs["seq"][0] == 301 and len(recs) == 100


def test_reopening_continues_the_sequence(jdir: Path) -> None:
    first = write_journal(jdir, workload(300)[:150])
    second = write_journal(jdir, workload(300)[150:])
    assert int(second["seq"][0]) == 151
    assert Journal(jdir).commands().tobytes() == np.concatenate([first, second]).tobytes()


def test_append_refuses_gaps_and_wrong_arrays_and_writes_nothing(jdir: Path) -> None:
    with JournalWriter(jdir, INSTRUMENTS, durability="write") as w:
        cmds = _stamp(w, workload(10))
        bad = cmds.copy()
        bad["seq"] += 1
        with pytest.raises(ValueError, match="gap-free"):
            w.append(bad)
        gap = cmds.copy()
        gap["seq"][5:] += 1
        with pytest.raises(ValueError, match="gap-free"):
            w.append(gap)
        with pytest.raises(TypeError):
            w.append(np.zeros(3, dtype=np.int64))
        with pytest.raises(TypeError):
            w.append([1, 2, 3])  # type: ignore[arg-type]
        assert w.last_seq == 0
        assert w.append(cmds[:0]) == 0
        assert w.append(cmds) == 10
    assert Journal(jdir).count == 10


def test_durability_none_writes_nothing() -> None:
    w = JournalWriter(None, INSTRUMENTS, durability="none")
    cmds = _stamp(w, workload(100))
    assert w.append(cmds) == 100 and w.durable_seq == 100
    w.close()


def test_bad_settings_are_refused(jdir: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        JournalWriter(jdir, INSTRUMENTS, durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="segment_bytes"):
        JournalWriter(jdir, INSTRUMENTS, segment_bytes=100)
    with pytest.raises(ValueError, match="needs a journal directory"):
        JournalWriter(None, INSTRUMENTS, durability="write")


def test_a_second_writer_on_the_same_directory_is_refused(jdir: Path) -> None:
    with JournalWriter(jdir, INSTRUMENTS, durability="write"):
        with pytest.raises(JournalError, match="in use by another process"):
            JournalWriter(jdir, INSTRUMENTS, durability="write")
    JournalWriter(jdir, INSTRUMENTS, durability="write").close()  # released on close


# -- durability ------------------------------------------------------------------------------

def test_write_durability_reports_each_append_to_listeners(jdir: Path) -> None:
    seen: list[int] = []
    with JournalWriter(jdir, INSTRUMENTS, durability="write") as w:
        w.add_listener(seen.append)
        cmds = _stamp(w, workload(30))
        w.append(cmds[:10])
        w.append(cmds[10:])
        assert w.durable_seq == 30
    assert seen == [10, 30]


def test_fsync_group_commit_covers_many_appends_per_fsync(jdir: Path, monkeypatch) -> None:
    calls: list[int] = []
    gate = threading.Event()
    real = writer_mod._sync

    def slow_sync(fd: int) -> None:
        gate.wait(5)        # hold the first fsync until every append has been written
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(writer_mod, "_sync", slow_sync)
    seen: list[int] = []
    w = JournalWriter(jdir, INSTRUMENTS, durability="fsync")
    try:
        w.add_listener(seen.append)
        cmds = _stamp(w, workload(2000))
        for i in range(0, 2000, 10):
            w.append(cmds[i:i + 10])
        assert w.durable_seq < 2000          # nothing acknowledged before an fsync returned
        gate.set()
        assert w.wait_durable(2000, timeout=10)
        assert len(calls) <= 3               # 200 appends, a couple of fsyncs
        assert seen == sorted(seen) and seen[-1] == 2000
    finally:
        gate.set()
        w.close()
    assert Journal(jdir).count == 2000


def test_wait_durable_times_out_without_an_fsync(jdir: Path, monkeypatch) -> None:
    gate = threading.Event()
    monkeypatch.setattr(writer_mod, "_sync", lambda fd: gate.wait(5))
    w = JournalWriter(jdir, INSTRUMENTS, durability="fsync")
    try:
        w.append(_stamp(w, workload(5)))
        assert w.wait_durable(5, timeout=0.05) is False
        gate.set()
        assert w.wait_durable(5, timeout=5) is True
    finally:
        gate.set()
        w.close()


def test_a_failed_fsync_stops_the_writer(jdir: Path, monkeypatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(writer_mod, "_sync", broken)
    w = JournalWriter(jdir, INSTRUMENTS, durability="fsync")
    try:
        cmds = _stamp(w, workload(20))
        w.append(cmds[:10])
        with pytest.raises(JournalError, match="fsync failed"):
            w.wait_durable(10, timeout=5)
        assert w.durable_seq == 0 and w.failed is not None
        with pytest.raises(JournalError, match="intake stopped"):
            w.append(cmds[10:])
    finally:
        w.close()


def test_a_full_disk_stops_intake_without_acknowledging(tmp_path: Path) -> None:
    # A real write failure: the kernel refuses to grow the file past RLIMIT_FSIZE (EFBIG).
    jdir = tmp_path / "journal"
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent.parent.parent)!r})
        from tests.journal.conftest import INSTRUMENTS, workload, counting_clock
        from engine.journal.writer import JournalWriter
        from engine.journal.sequencer import Sequencer
        from engine.journal.format import JournalError
        w = JournalWriter({str(jdir)!r}, INSTRUMENTS, durability="write")
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 + 64 * 250 + 10, resource.RLIM_INFINITY))
        cmds = workload(1000)
        Sequencer(1, clock_ns=counting_clock()).stamp(cmds)
        acked = 0
        try:
            for i in range(0, 1000, 100):
                w.append(cmds[i:i + 100])
                acked = w.durable_seq
        except JournalError as e:
            print("ERROR", e)
        try:
            w.append(cmds[900:])
        except JournalError as e:
            print("AGAIN", e)
        print("ACKED", acked, w.durable_seq)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert "file size limit" in lines["ERROR"] and "intake stopped" in lines["ERROR"]
    assert "intake stopped" in lines["AGAIN"]
    assert lines["ACKED"] == "200 200"
    # the partial batch left a torn tail; reopening keeps every acknowledged command
    with JournalWriter(jdir, INSTRUMENTS, durability="write") as w:
        assert w.last_seq >= 200
    j = Journal(jdir)
    assert j.torn is None and j.count >= 200


# -- torn tails and corruption -------------------------------------------------------------

def _last_segment(jdir: Path) -> Path:
    return list_segments(jdir)[-1][1]


@pytest.mark.parametrize("damage", ["cut_mid_record", "garbage", "zeros", "bad_crc_last"])
def test_a_torn_tail_is_truncated_and_logged(jdir: Path, damage: str, caplog) -> None:
    stamped = write_journal(jdir, workload(500))
    seg = _last_segment(jdir)
    size = seg.stat().st_size
    keep = 500
    with open(seg, "r+b") as f:
        if damage == "cut_mid_record":
            f.truncate(size - 20)
            keep = 499
        elif damage == "garbage":
            f.seek(0, 2)
            f.write(os.urandom(64 * 3 + 17))
        elif damage == "zeros":
            f.seek(0, 2)
            f.write(b"\0" * 64 * 8)
        else:
            f.seek(size - 30)
            f.write(b"\xAA")
            keep = 499
    with caplog.at_level(logging.WARNING, logger="engine.journal"):
        assert Journal(jdir).torn is not None          # a reader reports it and leaves it
        with JournalWriter(jdir, INSTRUMENTS, durability="write") as w:
            assert w.last_seq == keep
    assert "torn tail" in caplog.text and "truncated" in caplog.text
    assert seg.stat().st_size == HEADER_SIZE + keep * RECORD_SIZE
    j = Journal(jdir)
    assert j.torn is None and j.commands().tobytes() == stamped[:keep].tobytes()


def test_a_torn_segment_header_is_removed(jdir: Path, caplog) -> None:
    write_journal(jdir, workload(50))
    (jdir / segment_name(51)).write_bytes(b"ENGJRNL\n\x01")   # a new segment, header cut
    with caplog.at_level(logging.WARNING, logger="engine.journal"):
        with JournalWriter(jdir, INSTRUMENTS, durability="write") as w:
            assert w.last_seq == 50
            w.append(_stamp(w, workload(5)))
    assert "incomplete segment header" in caplog.text
    assert Journal(jdir).count == 55


def test_damage_inside_the_journal_stops_with_file_and_offset(jdir: Path) -> None:
    write_journal(jdir, workload(500))
    seg = _last_segment(jdir)
    offset = HEADER_SIZE + 100 * RECORD_SIZE
    with open(seg, "r+b") as f:
        f.seek(offset + 30)
        f.write(b"\x99")
    for opener in (lambda: Journal(jdir),
                   lambda: JournalWriter(jdir, INSTRUMENTS, durability="write")):
        with pytest.raises(JournalCorrupt) as info:
            opener()
        assert info.value.path == str(seg) and info.value.offset == offset
        assert "CRC32C" in str(info.value) and f"offset {offset}" in str(info.value)
    assert seg.stat().st_size == HEADER_SIZE + 500 * RECORD_SIZE   # nothing was truncated


def test_damage_at_the_end_of_an_earlier_segment_is_corruption(jdir: Path) -> None:
    write_journal(jdir, workload(300), segment_bytes=HEADER_SIZE + 100 * RECORD_SIZE)
    first = list_segments(jdir)[0][1]
    with open(first, "r+b") as f:
        f.seek(HEADER_SIZE + 99 * RECORD_SIZE + 50)
        f.write(b"\x01")
    with pytest.raises(JournalCorrupt, match=str(first)):
        Journal(jdir)


def test_a_missing_segment_is_corruption(jdir: Path) -> None:
    write_journal(jdir, workload(300), segment_bytes=HEADER_SIZE + 100 * RECORD_SIZE)
    list_segments(jdir)[1][1].unlink()
    with pytest.raises(JournalCorrupt, match="missing or out of order"):
        Journal(jdir)


def test_a_duplicated_record_is_corruption(jdir: Path) -> None:
    write_journal(jdir, workload(100))
    seg = _last_segment(jdir)
    raw = seg.read_bytes()
    with open(seg, "ab") as f:
        f.write(raw[HEADER_SIZE:HEADER_SIZE + RECORD_SIZE])   # a valid record, seq 1 again
    with pytest.raises(JournalCorrupt, match="out of sequence: seq 1, expected 101"):
        Journal(jdir)


# -- journals from elsewhere -------------------------------------------------------------------

def test_another_instrument_set_is_refused_with_the_ids_that_differ(jdir: Path) -> None:
    write_journal(jdir, workload(10))
    text = (Path(__file__).parents[2] / "engine" / "default_config.toml").read_text()
    other = InstrumentSet.from_config(parse_config(text.replace('max_qty = "3000"',
                                                                'max_qty = "4000"')))
    with pytest.raises(JournalMismatch, match=r"another instrument set.*ids that differ: 3"):
        JournalWriter(jdir, other, durability="write")


def _rewrite_header(seg: Path, **fields: int) -> None:
    raw = bytearray(seg.read_bytes())
    if "version" in fields:
        struct.pack_into("<H", raw, 8, fields["version"])
    from engine.journal import _codec
    struct.pack_into("<I", raw, 60, _codec.crc32c(bytes(raw[:60])))
    seg.write_bytes(bytes(raw))


def test_another_format_version_is_refused(jdir: Path) -> None:
    write_journal(jdir, workload(10))
    _rewrite_header(_last_segment(jdir), version=2)
    with pytest.raises(JournalMismatch, match="format version 2"):
        Journal(jdir)
    m = jdir / MANIFEST
    m.write_text(m.read_text().replace('"format_version": 1', '"format_version": 9'))
    with pytest.raises(JournalMismatch, match="format version 9"):
        Journal(jdir)


@pytest.mark.parametrize("setup,message", [
    ("missing", "no such journal directory"),
    ("file", "not a directory"),
    ("empty_dir", "not a journal"),
    ("other_files", "not a journal"),
    ("bad_manifest", "not a valid journal manifest"),
    ("tampered_manifest", "instruments_digest does not match"),
])
def test_a_directory_that_is_not_a_journal_is_refused(tmp_path: Path, setup: str,
                                                       message: str) -> None:
    p = tmp_path / "j"
    if setup == "file":
        p.write_text("x")
    elif setup == "empty_dir":
        p.mkdir()
    elif setup == "other_files":
        p.mkdir()
        (p / "notes.txt").write_text("hello")
    elif setup in ("bad_manifest", "tampered_manifest"):
        write_journal(p, workload(3))
        m = p / MANIFEST
        m.write_text("{not json" if setup == "bad_manifest"
                     else m.read_text().replace('"3000"', '"3001"'))
    with pytest.raises(JournalError, match=message):
        Journal(p)
    if setup == "other_files":
        with pytest.raises(JournalError, match="refusing to write"):
            JournalWriter(p, INSTRUMENTS, durability="write")


def test_an_empty_journal_reads_as_empty_and_says_so(jdir: Path) -> None:
    JournalWriter(jdir, INSTRUMENTS, durability="write").close()
    j = Journal(jdir)
    assert (j.count, j.first_seq, j.last_seq, len(j.commands())) == (0, 0, 0, 0)
    with pytest.raises(JournalError, match="empty"):
        j.require_commands()
