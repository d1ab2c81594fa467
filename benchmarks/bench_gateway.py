"""pytest-benchmark suite for the gateway's per-order pieces, without sockets: the pieces that
`engine bench gateway`'s server profile shows on top (docs/benchmarks.md, "Gateway"), on that
bench's order flow (seed 42, one connection's first 20,000 orders, batches of 256 as a busy
server forms them).

- ReportBuilder.on_batch (the Python reference) and FastReportBuilder (the compiled one the
  server runs): the core's events -> numbered ExecutionReport frames;
- decode_client (msgspec, the slow path) and _wire.scan (the fast path): NewOrder bodies ->
  what the server's intake makes of them;
- the load generator's ack decoding: the few fields it reads vs a whole ExecutionReport.

Run: .venv/bin/python -m pytest benchmarks/bench_gateway.py --benchmark-only
The end-to-end figures (TCP, processes, echo baseline) come from `engine bench gateway`.
"""
import time

import pytest

from engine.bench_gateway import _decode_fields, make_orders, pool_commands
from engine.config import default_config
from engine.gateway.protocol import ExecutionReport, decode_client, decode_server, frame
from engine.gateway import _wire
from engine.gateway._reports import FastReportBuilder
from engine.gateway.reports import ReportBuilder
from engine.pipeline import Engine

N = 20_000
BATCH = 256


@pytest.fixture(scope="module")
def pool():
    return make_orders(N, seed=42, stream=0)


@pytest.fixture(scope="module")
def batches(pool):
    """(commands, events) per batch, from one pass through an engine without a journal."""
    cmds = pool_commands(pool)
    eng = Engine.from_config(default_config(), durability="none")
    out = []
    for s in range(0, len(cmds), BATCH):
        part = cmds[s:s + BATCH].copy()
        out.append((part, eng.process(part)))
    eng.close()
    return out


@pytest.mark.parametrize("builder", [ReportBuilder, FastReportBuilder],
                         ids=["python", "compiled"])
def test_report_builder(benchmark, batches, builder):
    events = sum(len(e) for _, e in batches)
    benchmark.extra_info.update(orders=N, events=events)

    def build():
        rb = builder()
        n = 0
        for c, e in batches:
            rb.on_batch(c, e, True)
            n += len(rb.take())
        return n

    reports = benchmark.pedantic(build, rounds=7, warmup_rounds=1)
    benchmark.extra_info["reports"] = reports


def test_decode_new_order(benchmark, pool):
    bodies = [pool.data[int(pool.offsets[k]) + 4:int(pool.offsets[k + 1])] for k in range(N)]
    benchmark.extra_info["messages"] = N
    benchmark.pedantic(lambda: [decode_client(b) for b in bodies], rounds=7, warmup_rounds=1)


def test_scan_new_orders(benchmark, pool):
    data = bytes(pool.data[:int(pool.offsets[N])])
    benchmark.extra_info["messages"] = N

    def scan():
        out = bytearray()
        _, taken, _ = _wire.scan(data, 0, len(data), 1, out, 1 << 16, N)
        return taken

    assert benchmark.pedantic(scan, rounds=7, warmup_rounds=1) == N


_TRADE = frame(ExecutionReport(
    report_seq=5, seq=100, ts_ns=time.time_ns(), exec_type="trade", request="new",
    cl_ord_id=70_000, instrument=1, side="buy", status="partially_filled", qty=50, leaves_qty=20,
    cum_qty=30, cum_notional=450_000, avg_price=15_000.0, last_price=15_000, last_qty=30,
    liquidity="taker"))[4:]


@pytest.mark.parametrize("decoder", ["ack_fields", "decode_server"])
def test_client_ack_decode(benchmark, decoder):
    fn = _decode_fields if decoder == "ack_fields" else decode_server
    bodies = [_TRADE] * 10_000
    benchmark.extra_info["messages"] = len(bodies)
    benchmark.pedantic(lambda: [fn(b) for b in bodies], rounds=7, warmup_rounds=1)
