"""`engine bench journal`: the JSON it reports, on tiny sizes. No timing thresholds: this checks
that every figure is there, that the counts add up and that the rates are sane."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.bench_journal import TARGETS, format_report, run_journal_bench, tile_workload
from engine.cli import main
from engine.schema import CommandType

from .conftest import workload

KEYS = ("append_none_per_s", "append_write_per_s", "append_fsync_per_s",
        "append_fsync_window_per_s", "replay_per_s", "core_batch_per_s", "replay_vs_core",
        "recover_scratch_s", "recover_snapshot_s", "commands", "batch", "journal_bytes",
        "segments", "fsyncs", "machine", "targets")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    where = tmp_path_factory.mktemp("bench")
    r = run_journal_bench(20_000, 1, batch=500, fsync_window=2_000, snapshot_lag=1_000,
                          base_commands=10_000, directory=where)
    return r, where


def test_every_figure_is_reported(report) -> None:
    r, _ = report
    r = json.loads(json.dumps(r))            # plain JSON all the way down
    for key in KEYS:
        assert key in r, key
    assert set(r["targets"]) == set(TARGETS)
    for key, t in r["targets"].items():
        assert t["target"] == TARGETS[key][1] and isinstance(t["met"], bool)
    assert {"python", "platform", "cpus"} <= set(r["machine"])


def test_counts_add_up(report) -> None:
    r, _ = report
    assert (r["commands"], r["generated_commands"], r["append_commands"]) == (20_000, 10_000,
                                                                              20_000)
    assert r["journal_bytes"] == 64 + 20_000 * 64 and r["segments"] == 1
    scratch, snap = r["recovery"]["scratch"], r["recovery"]["snapshot"]
    assert (scratch["snapshot_seq"], scratch["replayed"], scratch["last_seq"]) == (0, 20_000,
                                                                                  20_000)
    assert (snap["snapshot_seq"], snap["replayed"], snap["last_seq"]) == (19_000, 1_000, 20_000)
    assert r["snapshot"]["seq"] == 19_000 and r["snapshot"]["bytes"] > 0
    assert r["digests_match"]
    # group commit: at least one fsync, never more than one per append
    assert 1 <= r["fsyncs"] <= 20_000 // 500 + 1
    assert 1 <= r["fsyncs_window"] <= 20_000 // 500 + 1


def test_rates_are_positive_and_consistent(report) -> None:
    r, _ = report
    for key in ("append_none_per_s", "append_write_per_s", "append_fsync_per_s",
                "append_fsync_window_per_s", "replay_per_s", "core_batch_per_s",
                "journal_write_per_s"):
        assert r[key] > 0, key
    assert r["recover_scratch_s"] > 0 and r["recover_snapshot_s"] > 0
    assert r["replay_vs_core"] == pytest.approx(r["replay_per_s"] / r["core_batch_per_s"],
                                                rel=1e-2)
    assert all(len(v) == 1 for v in r["append_runs_per_s"].values())


def test_the_report_shows_targets_and_cleans_up(report) -> None:
    r, where = report
    text = format_report(r)
    assert "append, durability write" in text and ">= 1,000,000 /s" in text
    assert "recovery from a snapshot" in text and "<= 1 s" in text
    assert "replay / core batch" in text
    assert list(where.iterdir()) == []       # the temporary journals are gone


def test_tiling_keeps_order_ids_unique() -> None:
    base = workload(3_000)
    tiled = tile_workload(base, 7_500)
    assert len(tiled) == 7_500
    step = int(base["order_id"].max()) + 1
    assert np.array_equal(tiled["order_id"][3_000:6_000], base["order_id"] + step)
    assert np.array_equal(tiled["order_id"][6_000:], base["order_id"][:1_500] + 2 * step)
    new = tiled["order_id"][tiled["cmd"] == CommandType.NEW]
    assert len(np.unique(new)) == len(new)


def test_cli_bench_journal_json(tmp_path, capsys) -> None:
    rc = main(["bench", "journal", "--json", "--commands", "4000", "--repeat", "1",
               "--batch", "250", "--snapshot-lag", "100", "--dir", str(tmp_path)])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["commands"] == 4_000 and r["batch"] == 250 and r["replay_per_s"] > 0
    assert r["recovery"]["snapshot"]["replayed"] == 100
