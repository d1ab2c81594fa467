"""`engine replay`: the summary, ranges, Parquet/CSV output, pacing, progress and bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from engine.cli import main
from engine.journal import JournalWriter, Sequencer, events_to_arrow, new_core, replay
from engine.journal import replay_run
from engine.journal.replay_run import Pacer, Progress, parse_speed, run_replay
from engine.journal.snapshot import write_snapshot
from engine.schema import EVENT_DTYPE

from .conftest import INSTRUMENTS, workload, write_journal

JSON_KEYS = {"commands", "events", "trades", "volume", "rejects", "first_seq", "last_seq",
             "snapshot_seq", "digest", "seconds", "commands_per_s", "out"}


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """20,000 commands in 7 segments of up to 3,000 records."""
    path = tmp_path_factory.mktemp("replay-cli") / "journal"
    stamped = write_journal(path, workload(20_000, seed=9), segment_bytes=64 + 3000 * 64)
    return path, stamped


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["replay", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def summary_json(capsys, *args: str) -> dict:
    rc, out, err = run_cli(capsys, *args, "--json")
    assert (rc, err) == (0, "")
    return json.loads(out)


# -- the summary ---------------------------------------------------------------------------------

def test_the_summary_equals_the_library_replay(journal, capsys) -> None:
    path, _ = journal
    ref = replay(path)
    s = ref.stats
    rc, out, err = run_cli(capsys, path)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"replayed {path}: seq 1..20,000 (the whole journal)"
    assert lines[1] == "  snapshot   none (state rebuilt from seq 1)"
    assert lines[2:8] == [f"  commands   {s.commands:,}", f"  events     {s.events:,}",
                          f"  trades     {s.trades:,}", f"  volume     {s.volume:,} lots",
                          f"  rejects    {s.rejects:,}", f"  digest     {ref.digest()}"]
    assert lines[8].startswith("  time       ") and lines[8].endswith(" commands/s")
    assert len(lines) == 9
    assert s.commands == 20_000 and s.trades > 1000 and s.volume > s.trades


def test_json_summary(journal, capsys) -> None:
    path, _ = journal
    ref = replay(path)
    r = summary_json(capsys, path)
    assert set(r) == JSON_KEYS
    s = ref.stats
    assert {k: r[k] for k in ("commands", "events", "trades", "volume", "rejects", "first_seq",
                              "last_seq", "snapshot_seq", "digest", "out")} == {
        "commands": 20_000, "events": s.events, "trades": s.trades, "volume": s.volume,
        "rejects": s.rejects, "first_seq": 1, "last_seq": 20_000, "snapshot_seq": 0,
        "digest": ref.digest(), "out": None}
    assert r["seconds"] > 0
    assert r["commands_per_s"] == pytest.approx(20_000 / r["seconds"], rel=1e-3)  # s rounded to us


def test_from_to_replays_only_that_range_and_ends_in_the_state_after_to(journal, capsys) -> None:
    path, stamped = journal
    r = summary_json(capsys, path, "--from", "5001", "--to", "7000")
    ref = replay(path, start=5001, stop=7000)
    assert (r["commands"], r["first_seq"], r["last_seq"]) == (2000, 5001, 7000)
    assert (r["events"], r["trades"], r["volume"], r["rejects"]) == (
        ref.stats.events, ref.stats.trades, ref.stats.volume, ref.stats.rejects)
    assert r["digest"] == replay(stamped[:7000], INSTRUMENTS).digest()
    assert r["digest"] != replay(path).digest()
    # a --to past the end replays to the end and says so
    rc, out, _ = run_cli(capsys, path, "--from", "19001", "--to", "99999")
    assert rc == 0
    assert out.splitlines()[0] == (f"replayed {path}: seq 19,001..20,000 of 1..20,000;"
                                   " --to 99,999 is past its end")


def test_from_starts_at_the_newest_snapshot_before_it(journal, tmp_path, capsys) -> None:
    path, stamped = journal
    copy = tmp_path / "journal"
    shutil.copytree(path, copy)
    core = new_core(INSTRUMENTS)
    core.process(stamped[:4000])
    snap = write_snapshot(copy, 4000, core.export_state(), INSTRUMENTS.digest())
    r = summary_json(capsys, copy, "--from", "6001", "--to", "8000")
    assert (r["snapshot_seq"], r["commands"], r["first_seq"]) == (4000, 2000, 6001)
    assert r["digest"] == replay(stamped[:8000], INSTRUMENTS).digest()
    rc, out, _ = run_cli(capsys, copy, "--from", "6001", "--to", "8000")
    assert out.splitlines()[1] == f"  snapshot   {snap} (the state after seq 4,000)"


# -- output files --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_output_file_holds_the_replayed_events(journal, tmp_path, capsys, monkeypatch,
                                                   fmt: str) -> None:
    path, _ = journal
    # small writes, so the file is built in several pieces as a long replay would build it
    monkeypatch.setattr(replay_run, "SINK_ROWS", 5000)
    out = tmp_path / f"events.{fmt}"
    r = summary_json(capsys, path, "--from", "2001", "--to", "17000", "--out", out)
    events = replay(path, start=2001, stop=17000).events
    assert r["out"] == str(out) and r["events"] == len(events) > 15_000
    want = events_to_arrow(events)
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.schema == want.schema
        groups = pq.ParquetFile(out).metadata
        assert groups.num_row_groups > 2
        assert all(groups.row_group(i).num_rows >= 5000 for i in range(groups.num_row_groups - 1))
    else:
        table = pacsv.read_csv(out)
    assert table.column_names == [n for n in EVENT_DTYPE.names if not n.startswith("_")]
    assert table.num_rows == len(events)
    for name in table.column_names:
        assert np.array_equal(table.column(name).to_numpy(), events[name]), name
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]   # no temporary file left


def test_a_journal_of_rejects_only(tmp_path, capsys) -> None:
    path = tmp_path / "journal"
    cmds = workload(10, seed=3)
    cmds["cmd"], cmds["order_id"] = 2, 10**9      # cancels of an unknown order: rejects only
    write_journal(path, cmds)
    out = tmp_path / "e.parquet"
    r = summary_json(capsys, path, "--out", out)
    assert (r["commands"], r["events"], r["rejects"], r["trades"]) == (10, 10, 10, 0)
    assert pq.read_table(out).column("type").to_pylist() == [2] * 10


def test_a_failed_run_leaves_no_file_and_keeps_an_old_one(paced_journal, tmp_path) -> None:
    out = tmp_path / "events.parquet"
    out.write_bytes(b"the previous run")
    calls = []

    def interrupted(seconds: float) -> None:
        calls.append(seconds)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):    # Ctrl-C while waiting for the second chunk
        run_replay(paced_journal, speed="realtime", out=out, clock=lambda: 0.0,
                   sleep=interrupted)
    assert len(calls) == 1
    assert out.read_bytes() == b"the previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


# -- pacing --------------------------------------------------------------------------------------

class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# journal-time offsets (ns) of six batches of 10 commands
OFFSETS = [0, 400_000, 2_000_000, 2_200_000, 7_000_000, 1_007_000_000]


@pytest.fixture(scope="module")
def paced_journal(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("paced") / "journal"
    cmds = workload(60, seed=4)
    stamps = iter([1_000_000_000 + o for o in OFFSETS]).__next__
    with JournalWriter(path, INSTRUMENTS, durability="write") as w:
        seq = Sequencer(w.next_seq, clock_ns=stamps)
        for i in range(0, 60, 10):
            seq.stamp(cmds[i:i + 10])
            w.append(cmds[i:i + 10])
    return path


@pytest.mark.parametrize("speed, factor", [("realtime", 1.0), ("1x", 1.0), ("10x", 10.0),
                                           ("0.5x", 0.5)])
@pytest.mark.parametrize("batch", [None, 25])
def test_pacing_sleeps_the_timestamp_gaps_divided_by_the_speed(paced_journal, speed: str,
                                                               factor: float, batch) -> None:
    t = FakeTime()
    s = run_replay(paced_journal, speed=speed, clock=t.clock, sleep=t.sleep, batch=batch)
    # commands less than 1 ms apart go together; a batch boundary (25) adds no wait
    assert t.sleeps == pytest.approx([0.002 / factor, 0.005 / factor, 1.0 / factor])
    assert s.commands == 60 and s.digest == replay(paced_journal).digest()


def test_max_speed_never_reads_the_clock(paced_journal) -> None:
    def no(*_: object) -> float:
        raise AssertionError("max speed must not wait")

    s = run_replay(paced_journal, speed="max", clock=no, sleep=no)
    assert s.commands == 60


def test_pacer_chunks_span_under_a_millisecond_and_keep_every_event(journal) -> None:
    path, stamped = journal
    cmds = stamped[:5000].copy()
    cmds["ts_ns"] = 10**9 + np.arange(5000) * 7_000       # 7 us apart: 143 per ms
    events = new_core(INSTRUMENTS).process(cmds)
    t = FakeTime()
    chunks = list(Pacer(2.0, clock=t.clock, sleep=t.sleep).chunks(cmds, events))
    assert len(chunks) == 35                               # 5000 * 7 us = 35 ms
    assert all(int(c["ts_ns"][-1] - c["ts_ns"][0]) < 1_000_000 for c, _ in chunks)
    assert np.concatenate([c for c, _ in chunks]).tobytes() == cmds.tobytes()
    assert np.concatenate([e for _, e in chunks]).tobytes() == events.tobytes()
    for c, e in chunks:
        assert set(e["seq"].tolist()) <= set(c["seq"].tolist())
    starts = np.array([int(c["ts_ns"][0]) for c, _ in chunks])
    assert t.sleeps == pytest.approx((np.diff(starts) / 2e9).tolist())   # at speed 2


def test_speed_strings() -> None:
    assert [parse_speed(s) for s in ("max", "MAX", "realtime", "10x", "0.5x", "2.5X", "1e3x")] \
        == [None, None, 1.0, 10.0, 0.5, 2.5, 1000.0]
    for bad in ("abc", "0x", "-1x", "x", "10", "fast", "infx", "nanx", ""):
        with pytest.raises(ValueError, match="--speed: expected max, realtime or a positive"
                                             " multiple like 10x, got"):
            parse_speed(bad)


# -- progress ------------------------------------------------------------------------------------

def test_progress_goes_to_stderr_only(journal, tmp_path, capsys) -> None:
    path, _ = journal
    rc, out, err = run_cli(capsys, path, "--progress", "--json", "--out", tmp_path / "e.csv")
    assert rc == 0
    assert json.loads(out)["commands"] == 20_000               # stdout: the JSON object alone
    assert err.startswith("\r[") and err.endswith("\n") and err.count("\n") == 1
    last = err.rstrip("\n").split("\r")[-1]
    assert "100.0%" in last and "seq 20,000/20,000" in last and "commands/s" in last
    assert "ETA 0:00:00" in last


def test_progress_redraws_at_most_ten_times_a_second() -> None:
    import io

    now = [0.0]
    buf = io.StringIO()
    bar = Progress(1, 10_000, buf, clock=lambda: now[0])
    for k in range(1, 10_001):
        now[0] = k * 0.0001                                   # 10,000 updates over 1 s
        bar.update(k, k)
    bar.finish()
    assert 10 <= bar.draws <= 12
    lines = buf.getvalue().split("\r")[1:]
    assert len(lines) == bar.draws
    assert lines[-1].startswith("[" + "#" * 30 + "] 100.0%") and lines[-1].endswith("\n")


# -- bad input -----------------------------------------------------------------------------------

def expect_error(capsys, tmp_path: Path, *args: object) -> str:
    out = tmp_path / "events.parquet"
    before = set(tmp_path.iterdir())
    rc, stdout, err = run_cli(capsys, *args, "--out", out)
    assert rc == 2 and stdout == ""
    assert err.startswith("engine replay: ") and err.endswith("\n") and err.count("\n") == 1
    assert "Traceback" not in err
    assert set(tmp_path.iterdir()) == before                 # no output, no temporary file
    return err.rstrip("\n")


def test_a_missing_directory(tmp_path, capsys) -> None:
    err = expect_error(capsys, tmp_path, tmp_path / "nothing")
    assert err == f"engine replay: {tmp_path / 'nothing'}: no such journal directory"


def test_a_directory_that_is_not_a_journal(tmp_path, capsys) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"x")
    err = expect_error(capsys, tmp_path, d)
    assert err == f"engine replay: {d}: not a journal (no journal.json)"


def test_an_empty_journal(tmp_path, capsys) -> None:
    d = tmp_path / "journal"
    JournalWriter(d, INSTRUMENTS, durability="write").close()
    err = expect_error(capsys, tmp_path, d)
    assert err == f"engine replay: {d}: the journal is empty (no commands)"


def test_a_journal_of_another_format_version(journal, tmp_path, capsys) -> None:
    d = tmp_path / "journal"
    shutil.copytree(journal[0], d)
    manifest = json.loads((d / "journal.json").read_text())
    manifest["format_version"] = 2
    (d / "journal.json").write_text(json.dumps(manifest))
    err = expect_error(capsys, tmp_path, d)
    assert err == (f"engine replay: {d / 'journal.json'}: journal format version 2;"
                   " this engine reads version 1 only")


def test_a_corrupt_record_inside_the_journal(journal, tmp_path, capsys) -> None:
    d = tmp_path / "journal"
    shutil.copytree(journal[0], d)
    seg = d / "00000000000000003001.seg"                     # the 2nd of 7 segments
    offset = 64 + 10 * 64                                    # its 11th record (seq 3011)
    raw = bytearray(seg.read_bytes())
    raw[offset + 30] ^= 0x40                                 # a bit of the order id
    seg.write_bytes(bytes(raw))
    err = expect_error(capsys, tmp_path, d)
    assert err == (f"engine replay: {seg}: offset {offset}: a record whose CRC32C does not"
                   " match")


def test_commands_no_longer_in_the_journal(journal, tmp_path, capsys) -> None:
    d = tmp_path / "journal"
    shutil.copytree(journal[0], d)
    (d / "archive").mkdir()
    shutil.move(d / "00000000000000000001.seg", d / "archive")
    err = expect_error(capsys, tmp_path, d, "--from", "5")
    assert err == (f"engine replay: {d}: commands before seq 3001 are no longer in the journal"
                   " (asked from 5)")
    err = expect_error(capsys, tmp_path, d)
    assert "the journal starts at seq 3001" in err and "no usable snapshot" in err


@pytest.mark.parametrize("args, message", [
    (["--speed", "abc"],
     "--speed: expected max, realtime or a positive multiple like 10x, got 'abc'"),
    (["--from", "7", "--to", "5"], "--from 7 is after --to 5"),
    (["--from", "-1"], "--from: expected a non-negative sequence number, got '-1'"),
    (["--to", "ten"], "--to: expected a non-negative sequence number, got 'ten'"),
])
def test_bad_arguments(journal, tmp_path, capsys, args, message) -> None:
    assert expect_error(capsys, tmp_path, journal[0], *args) == f"engine replay: {message}"


def test_a_from_past_the_end(journal, tmp_path, capsys) -> None:
    err = expect_error(capsys, tmp_path, journal[0], "--from", "20001")
    assert err == (f"engine replay: --from 20001 is past the end of {journal[0]}"
                   " (its last seq is 20000)")


def test_bad_output_paths(journal, tmp_path, capsys) -> None:
    path = journal[0]
    for target, message in [
        (tmp_path / "events.json", "unknown extension '.json'; expected .parquet or .csv"),
        (tmp_path / "events", "no extension; expected .parquet or .csv"),
        (tmp_path / "no" / "e.csv", f"directory {tmp_path / 'no'} does not exist"),
    ]:
        rc, out, err = run_cli(capsys, path, "--out", target)
        assert (rc, out) == (2, "")
        assert err == f"engine replay: --out {target}: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_the_console_command_exits_2_without_a_traceback(tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == f"engine replay: {tmp_path / 'x'}: no such journal directory\n"


def test_a_demo_journal_replays_to_the_demo_digest(tmp_path, capsys) -> None:
    j = tmp_path / "demo"
    assert main(["demo", "--orders", "300", "--seed", "5", "--journal", str(j)]) == 0
    digest = capsys.readouterr().out.split("state digest ")[1][:16]
    r = summary_json(capsys, j, "--out", tmp_path / "e.parquet")
    assert r["digest"][:16] == digest and r["commands"] >= 300
    assert pq.read_table(tmp_path / "e.parquet").num_rows == r["events"]
