"""`engine bench gateway`: short runs through the real server processes. No timing thresholds:
this checks that every figure is there, that the counts add up, that every order is
acknowledged, and that bad arguments are refused before anything starts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.bench_gateway import (
    ID_BASE,
    TARGETS,
    format_report,
    hdr_from_ns,
    make_orders,
    run_gateway_bench,
)
from engine.cli import main
from engine.gateway.protocol import HEADER, NewOrder, decode_client

KEYS = ("acked_per_s", "echo_per_s", "p50_us", "p99_us", "p999_us", "max_us", "connections",
        "rate", "engine_share", "durability", "orders", "acked", "rejected", "missing",
        "machine", "targets", "runs", "echo_latency_us")


@pytest.fixture(scope="module")
def pipelined(tmp_path_factory):
    where = tmp_path_factory.mktemp("bench-gateway")
    r = run_gateway_bench(2, None, 1.0, window=32, repeat=1, warmup_s=0.2, directory=where)
    return r, where


def test_a_pipelined_run_reports_every_figure_with_sane_values(pipelined) -> None:
    r, _ = pipelined
    r = json.loads(json.dumps(r))            # plain JSON all the way down
    for key in KEYS:
        assert key in r, key
    assert r["connections"] == 2 and r["rate"] == "max" and r["window"] == 32
    assert r["durability"] == "write"
    assert r["acked_per_s"] > 0 and r["echo_per_s"] > 0
    assert r["engine_share"] == pytest.approx(r["acked_per_s"] / r["echo_per_s"], abs=1e-3)
    assert r["missing"] == 0 and r["echo_missing"] == 0 and r["refused"] == 0
    assert r["errors"] == []
    assert 0 < r["acked"] <= r["sent_total"]
    assert r["p50_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"]
    e = r["echo_latency_us"]
    assert e["p50"] <= e["p99"] <= e["p999"] <= e["max"]
    assert set(r["targets"]) == {k for k, t in TARGETS.items() if t[2] == "max"}
    assert all(isinstance(t["met"], bool) for t in r["targets"].values())
    # the server ran every order it acknowledged, in batches, and its book stayed bounded
    assert r["server"]["commands"] >= r["acked"] and r["server"]["batches"] > 0
    assert all(0 <= n < 5_000 for n in r["server"]["open_orders_at_end"])
    assert {"python", "platform", "cpus"} <= set(r["machine"])


def test_the_temporary_journals_are_removed(pipelined) -> None:
    _, where = pipelined
    assert list(where.iterdir()) == []


def test_the_report_shows_both_servers_and_whether_every_order_was_acknowledged(
        pipelined) -> None:
    text = format_report(pipelined[0])
    assert "engine (acknowledged)" in text and "echo baseline" in text
    assert "engine / echo" in text and "missing 0 (every order acknowledged)" in text


def test_a_paced_run_acknowledges_about_rate_times_duration(tmp_path, capsys) -> None:
    rc = main(["bench", "gateway", "--json", "--rate", "200", "--duration", "1", "--warmup",
               "0.2", "--repeat", "1", "--dir", str(tmp_path)])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["rate"] == 200 and r["window"] is None
    assert r["orders"] == 200               # scheduled in the measured second, exactly
    assert abs(r["acked"] - 200) <= 20      # acknowledged within it (a few cross its edges)
    assert abs(r["acked_per_s"] - 200) <= 20 and abs(r["echo_per_s"] - 200) <= 20
    assert r["missing"] == 0
    assert "intended" in r["latency_from"]
    assert r["p50_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"]
    assert set(r["uncorrected_latency_us"]) == {"p50", "p99", "p999", "max"}
    assert set(r["targets"]) == {"p99_us"}


@pytest.mark.parametrize("args, needle", [
    (["--rate", "0"], "--rate"),
    (["--rate", "abc"], "--rate"),
    (["--rate", "-5"], "--rate"),
    (["--connections", "0"], "--connections"),
    (["--duration", "0"], "--duration"),
    (["--window", "0"], "--window"),
])
def test_bad_arguments_are_refused_with_exit_2(args, needle, capsys) -> None:
    assert main(["bench", "gateway", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("engine bench gateway: ") and needle in captured.err


def test_orders_are_seeded_and_each_id_is_stamped_where_the_pool_says() -> None:
    a, b = make_orders(2_000, seed=7, stream=1), make_orders(2_000, seed=7, stream=1)
    assert a.data == b.data and make_orders(2_000, seed=7, stream=2).data != a.data
    buf = bytearray(a.data)
    for j in range(len(a)):
        buf[a.id_at[j]:a.id_at[j] + 4] = (ID_BASE + 1_000_000 + j).to_bytes(4, "big")
    sides, tifs = set(), set()
    for j in range(len(a)):
        start, stop = int(a.offsets[j]), int(a.offsets[j + 1])
        assert HEADER.unpack_from(buf, start)[0] == stop - start - 4
        msg = decode_client(bytes(buf[start + 4:stop]))
        assert isinstance(msg, NewOrder) and msg.cl_ord_id == ID_BASE + 1_000_000 + j
        assert msg.side == ("buy" if j % 2 == 0 else "sell") and 1 <= msg.qty <= 100
        assert abs(msg.price - 15_000) <= 15
        sides.add(msg.side)
        tifs.add(msg.tif)
    assert tifs == {"gtc", "ioc"}
    assert sum(a.kinds.values()) == len(a)


def test_hdr_from_ns_gives_the_percentiles_of_recording_every_value() -> None:
    from hdrh.histogram import HdrHistogram

    rng = np.random.default_rng(3)
    values = np.concatenate([rng.integers(1, 3_000, 2_000),
                             rng.lognormal(11, 1.5, 20_000).astype(np.int64) + 1])
    direct = HdrHistogram(1, 3_600 * 10**9, 3)
    for v in values.tolist():
        direct.record_value(v)
    fast = hdr_from_ns(values)
    for p in (0, 1, 50, 90, 99, 99.9, 100):
        assert fast.get_value_at_percentile(p) == direct.get_value_at_percentile(p), p
    assert fast.get_max_value() == direct.get_max_value()
    assert fast.get_total_count() == len(values)
