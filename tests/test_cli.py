"""The `engine` command line: the demo, `engine bench core --json`, and bad input."""
import json
import subprocess
import sys

import pytest

from engine.cli import main


def test_bench_core_json_reports_every_figure(capsys):
    rc = main(["bench", "core", "--json", "--commands", "20000", "--repeat", "1",
               "--ref-commands", "3000", "--memory-orders", "20000"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("batch_ops_per_s", "call_ops_per_s", "reference_ops_per_s",
                "bytes_per_resting_order", "batch_vs_reference", "call_latency_ns"):
        assert key in r, key
    assert r["batch_ops_per_s"] > 0 and r["call_ops_per_s"] > 0 and r["reference_ops_per_s"] > 0
    assert set(r["call_latency_ns"]) >= {"p50", "p99", "p99.9"}
    events = r["workload"]["events"]
    assert events["trade"] > 0 and events["cancelled"] > 0 and events["replaced"] > 0
    assert events["accepted"] + events["rejected"] >= 20000 * 0.6


def test_bench_unknown_target_is_an_error(capsys):
    assert main(["bench", "nothing"]) == 2
    assert "unknown target" in capsys.readouterr().err


def test_demo_prints_books_and_a_tape(capsys):
    assert main(["demo", "--orders", "800", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "800 orders over 8 instruments" in out
    assert "ES (future, tick 0.25" in out and "EURUSD (fx_spot" in out
    assert "last trades" in out and "state digest" in out


def test_demo_is_deterministic_for_a_seed(capsys):
    main(["demo", "--orders", "500", "--seed", "9"])
    first = capsys.readouterr().out
    main(["demo", "--orders", "500", "--seed", "9"])
    assert capsys.readouterr().out == first


def test_demo_with_a_bad_config_names_the_file_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[instruments]]\nid = 1\nsymbol = "X"\nasset_class = "equity"\n'
                   'tick_size = "-0.01"\nlot_size = "1"\ncurrency = "USD"\n')
    assert main(["demo", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.toml" in err and "tick_size" in err


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "engine.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "bench" in out and "demo" in out


def test_missing_subcommand_exits_with_usage():
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_demo_with_a_journal_replays_to_the_same_digest(tmp_path, capsys):
    from engine.journal import replay

    journal = tmp_path / "demo"
    assert main(["demo", "--orders", "400", "--seed", "2", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    assert f"journal {journal}: seq 1..4" in out and "engine replay" in out
    digest = out.split("state digest ")[1][:16]
    assert replay(journal).digest()[:16] == digest
    # the same session without a journal ends in the same state
    main(["demo", "--orders", "400", "--seed", "2"])
    assert capsys.readouterr().out.split("state digest ")[1][:16] == digest
    # a journal that already holds commands is not reused
    assert main(["demo", "--orders", "10", "--journal", str(journal)]) == 1
    assert "already holds" in capsys.readouterr().err
