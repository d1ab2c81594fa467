"""The core benchmark: a seeded order-flow workload and `engine bench core`.

Owns the workload generator (shared with benchmarks/) and the timing harness. It measures;
it never changes what the core does. Same seed, same commands, on every machine.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from .schema import (
    COMMAND_DTYPE,
    RISK_TABLES,
    CommandType,
    EventType,
    OrdType,
    Side,
    TimeInForce,
)

__all__ = ["WorkloadSpec", "make_workload", "make_marked_workload", "risk_tables", "as_rows", "run_calls",
           "run_core_bench", "main"]


@dataclass(frozen=True)
class WorkloadSpec:
    """Shape of the mixed workload. Shares are of all commands."""

    n_commands: int = 1_000_000
    n_instruments: int = 4
    seed: int = 42
    share_cancel: float = 0.30
    share_aggressive: float = 0.10   # marketable limit IOC / GTC and market orders
    share_replace: float = 0.05      # the rest are passive limit adds
    depth_ticks: int = 50            # passive orders land 1..depth ticks from the mid
    mid_start: int = 10_000
    max_qty: int = 100
    target_resting: int = 5_000      # cancels pick live orders; above this, cancel more
    n_accounts: int = 16             # order i belongs to account 1 + i % n_accounts


def make_workload(spec: WorkloadSpec = WorkloadSpec()) -> np.ndarray:
    """Generate the command array: passive adds around a random-walk mid per instrument,
    cancels and replaces of live orders, and a share of aggressive orders.

    The generator learns which orders filled by feeding each chunk through a scratch core, so
    cancels and replaces mostly hit live orders, as real flow does (a few race with fills
    and are rejected, as real ones are too).
    """
    return make_marked_workload(spec)[0]


def make_marked_workload(spec: WorkloadSpec = WorkloadSpec()) -> tuple[np.ndarray, np.ndarray]:
    """``make_workload``'s commands and a mask of its aggressive NEWs (the ones that may take
    liquidity: market, marketable IOC and marketable GTC limits), for `engine bench route`."""
    from ._core import Core

    rng = np.random.default_rng(spec.seed)
    out = np.zeros(spec.n_commands, dtype=COMMAND_DTYPE)
    aggressive = np.zeros(spec.n_commands, dtype=bool)
    scratch = Core(history=0)
    for i in range(spec.n_instruments):
        scratch.add_instrument(i)
    mids = [spec.mid_start] * spec.n_instruments
    live_ids: list[int] = []
    live_pos: dict[int, int] = {}
    live_info: dict[int, tuple[int, int, int]] = {}  # id -> (instrument, side, price)
    next_id = 1
    chunk = 4096

    def forget(oid: int) -> None:
        pos = live_pos.pop(oid, None)
        if pos is None:
            return
        last = live_ids.pop()
        if last != oid:
            live_ids[pos] = last
            live_pos[last] = pos
        live_info.pop(oid, None)

    for start in range(0, spec.n_commands, chunk):
        n = min(chunk, spec.n_commands - start)
        u = rng.random(n)
        steps = rng.integers(-1, 2, size=n)
        insts = rng.integers(0, spec.n_instruments, size=n)
        sides = rng.integers(1, 3, size=n)
        offs = rng.integers(1, spec.depth_ticks + 1, size=n)
        qtys = rng.integers(1, spec.max_qty + 1, size=n)
        picks = rng.random(n)
        kinds = rng.random(n)
        for k in range(n):
            r = out[start + k]
            inst = int(insts[k])
            mids[inst] = max(spec.depth_ticks * 2, mids[inst] + int(steps[k]))
            mid = mids[inst]
            x = u[k]
            over = len(live_ids) > spec.target_resting
            share_cancel = spec.share_cancel * (1.5 if over else 0.5)
            if live_ids and x < share_cancel:
                oid = live_ids[int(picks[k] * len(live_ids))]
                r["cmd"] = CommandType.CANCEL
                r["order_id"] = oid
                r["account"] = 1 + oid % spec.n_accounts
                forget(oid)
                continue
            if live_ids and x < share_cancel + spec.share_replace:
                oid = live_ids[int(picks[k] * len(live_ids))]
                inst0, side0, price0 = live_info[oid]
                r["cmd"] = CommandType.REPLACE
                r["order_id"] = oid
                r["account"] = 1 + oid % spec.n_accounts
                r["instrument"] = inst0
                # half shrink in place, half move one tick away from the mid (passive)
                if kinds[k] < 0.5:
                    r["price"] = price0
                    r["qty"] = 1
                else:
                    r["price"] = price0 - 1 if side0 == Side.BUY else price0 + 1
                    r["qty"] = int(qtys[k])
                    live_info[oid] = (inst0, side0, int(r["price"]))
                continue
            side = int(sides[k])
            r["cmd"] = CommandType.NEW
            r["order_id"] = next_id
            r["account"] = 1 + next_id % spec.n_accounts
            r["instrument"] = inst
            r["side"] = side
            r["qty"] = int(qtys[k])
            r["ord_type"] = OrdType.LIMIT
            r["tif"] = TimeInForce.GTC
            if x < share_cancel + spec.share_replace + spec.share_aggressive:
                aggressive[start + k] = True
                kind = kinds[k]
                through = int(offs[k]) % 5
                price = mid + through if side == Side.BUY else mid - through
                if kind < 0.2:
                    r["ord_type"] = OrdType.MARKET
                    r["tif"] = TimeInForce.IOC
                elif kind < 0.6:
                    r["tif"] = TimeInForce.IOC
                    r["price"] = price
                else:
                    r["price"] = price
                    live_ids.append(next_id)
                    live_pos[next_id] = len(live_ids) - 1
                    live_info[next_id] = (inst, side, price)
            else:
                price = mid - int(offs[k]) if side == Side.BUY else mid + int(offs[k])
                r["price"] = price
                live_ids.append(next_id)
                live_pos[next_id] = len(live_ids) - 1
                live_info[next_id] = (inst, side, price)
            next_id += 1
        block = out[start:start + n]
        block["seq"] = np.arange(start + 1, start + n + 1)
        block["ts_ns"] = block["seq"] * 1000
        ev = scratch.process(block)
        done = ev[(ev["type"] == EventType.TRADE) & (ev["other_leaves"] == 0)]["other_id"]
        for oid in done.tolist():
            forget(oid)
        gone = ev[(ev["type"] == EventType.TRADE) & (ev["leaves"] == 0)]["order_id"]
        for oid in gone.tolist():
            forget(oid)
    return out, aggressive


def risk_tables(spec: WorkloadSpec = WorkloadSpec()) -> dict[str, np.ndarray]:
    """Risk tables under which the workload runs with every check computed and (almost)
    nothing refused: every limit set but generous, a price band of 50% around a reference at
    the starting mid (market orders are then protected), an order rate far above the
    workload's, a fee, and two currencies with every account based in the other one (so each
    notional check converts)."""
    na, ni = spec.n_accounts, spec.n_instruments
    t = {k: np.zeros(n, dtype=d) for (k, d), n in zip(
        RISK_TABLES.items(), [na, na * ni, na * 2, ni, 2, 1])}
    acct = t["accounts"]
    acct["account"] = np.arange(1, na + 1)
    acct["base_ccy"] = 1
    acct["max_open_orders"] = 1_000_000
    acct["rate_per_s"] = 10**9
    acct["rate_burst"] = 10**9
    acct["tokens_nano"] = 10**18
    pos = t["positions"]
    pos["max_order_qty"] = 1_000_000
    pos["max_order_notional"] = 10**15
    pos["position_limit"] = 10**12
    pos["short_limit"] = 10**12
    t["cash"]["cash"] = 10**16
    inst = t["instruments"]
    inst["instrument"] = np.arange(ni)
    inst["k"] = 1
    inst["band_bps"] = 5_000
    inst["ref_price"] = spec.mid_start
    inst["fee_ppm"] = 100
    t["currencies"]["fx"] = [10**16, 9 * 10**15]
    return t


def _fresh(core_cls, n_instruments: int, risk: dict | None = None):
    core = core_cls()
    for i in range(n_instruments):
        core.add_instrument(i)
    if risk is not None:
        core.enable_risk(risk)
    return core


def time_batch(core_cls, cmds: np.ndarray, n_instruments: int, chunk: int = 65536,
               risk: dict | None = None) -> float:
    """Seconds to run every command through the batch API, in chunks (as a replay would);
    with ``risk`` tables, with pre-trade risk on."""
    core = _fresh(core_cls, n_instruments, risk)
    gc.collect()
    t0 = time.perf_counter()
    for s in range(0, len(cmds), chunk):
        core.process(cmds[s:s + chunk])
    return time.perf_counter() - t0


def as_rows(cmds: np.ndarray) -> list[tuple]:
    """The command array as plain Python tuples, as a user's own loop would hold them."""
    return list(zip(*(cmds[f].tolist() for f in (
        "cmd", "order_id", "instrument", "side", "price", "qty", "account", "ord_type", "tif",
        "flags", "seq", "ts_ns"))))


def run_calls(core, rows: list[tuple]) -> None:
    """A plain Python loop over the per-call API, as a user would write it, draining the
    events every 4,096 commands."""
    submit, cancel, replace, drain = core.submit, core.cancel, core.replace, core.drain_events
    i = 0
    for cmd, oid, inst, side, price, qty, acct, ot, tif, flags, seq, ts in rows:
        if cmd == 1:
            submit(oid, inst, side, price, qty, acct, ot, tif, flags, seq, ts)
        elif cmd == 2:
            cancel(oid, acct, seq, ts)
        else:
            replace(oid, price, qty, acct, seq, ts)
        i += 1
        if i & 4095 == 0:
            drain()
    drain()


def time_calls(core_cls, rows: list[tuple], n_instruments: int) -> float:
    """Seconds for `run_calls` over every command."""
    core = _fresh(core_cls, n_instruments)
    gc.collect()
    t0 = time.perf_counter()
    run_calls(core, rows)
    return time.perf_counter() - t0


def call_latencies(core_cls, rows: list[tuple], n_instruments: int):
    """Per-call latency (ns) of each command in a Python loop, into an HDR histogram."""
    from hdrh.histogram import HdrHistogram

    hist = HdrHistogram(1, 10_000_000_000, 3)
    core = _fresh(core_cls, n_instruments)
    submit, cancel, replace, drain = core.submit, core.cancel, core.replace, core.drain_events
    clock = time.perf_counter_ns
    overhead = min(-clock() + clock() for _ in range(1000))
    record = hist.record_value
    i = 0
    for cmd, oid, inst, side, price, qty, acct, ot, tif, flags, seq, ts in rows:
        if cmd == 1:
            t0 = clock()
            submit(oid, inst, side, price, qty, acct, ot, tif, flags, seq, ts)
            t1 = clock()
        elif cmd == 2:
            t0 = clock()
            cancel(oid, acct, seq, ts)
            t1 = clock()
        else:
            t0 = clock()
            replace(oid, price, qty, acct, seq, ts)
            t1 = clock()
        record(max(1, t1 - t0 - overhead))
        i += 1
        if i & 4095 == 0:
            drain()
    return hist


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bytes_per_resting_order(core_cls, n_orders: int = 1_000_000, n_levels: int = 2_000) -> tuple[float, float]:
    """RSS growth per order with n_orders resting (none crossing), and the core's own count."""
    core = _fresh(core_cls, 1)
    chunk = 65536
    block = np.zeros(chunk, dtype=COMMAND_DTYPE)
    block["cmd"] = CommandType.NEW
    block["ord_type"] = OrdType.LIMIT
    block["tif"] = TimeInForce.GTC
    block["qty"] = 10
    gc.collect()
    before = _rss_bytes()
    mem_before = core.memory_bytes() if hasattr(core, "memory_bytes") else 0
    for s in range(0, n_orders, chunk):
        n = min(chunk, n_orders - s)
        ids = np.arange(s + 1, s + n + 1)
        b = block[:n]
        b["order_id"] = ids
        b["side"] = np.where(ids % 2 == 0, Side.BUY, Side.SELL)
        lvl = ids % (n_levels // 2)
        b["price"] = np.where(ids % 2 == 0, 100_000 - 1 - lvl, 100_000 + 1 + lvl)
        core.process(b)
    assert core.open_orders == n_orders
    after = _rss_bytes()
    mem = (core.memory_bytes() - mem_before) if hasattr(core, "memory_bytes") else 0
    del core
    return (after - before) / n_orders, mem / n_orders


def run_core_bench(n_commands: int = 1_000_000, repeat: int = 5, ref_commands: int = 200_000,
                   memory_orders: int = 1_000_000, seed: int = 42, progress=None) -> dict:
    """Run the workload through the batch API, the per-call API and the reference model."""
    from ._core import Core
    from .reference import ReferenceCore

    say = progress or (lambda msg: None)
    spec = WorkloadSpec(n_commands=n_commands, seed=seed)
    say(f"generating {n_commands:,} commands (seed {seed})")
    cmds = make_workload(spec)
    rows = as_rows(cmds)
    ninst = spec.n_instruments

    # what the workload does, from one run of the core
    probe = _fresh(Core, ninst)
    ev = probe.process(cmds)
    counts = {t.name.lower(): int((ev["type"] == t).sum()) for t in EventType}
    resting_end = probe.open_orders
    tables = risk_tables(spec)
    probe = _fresh(Core, ninst, tables)
    ev = probe.process(cmds)
    risk_counts = {t.name.lower(): int((ev["type"] == t).sum()) for t in EventType}
    del probe, ev

    say(f"batch API, risk off and on, alternating x{repeat}")
    batch, risk_batch = [], []
    for _ in range(repeat):
        batch.append(time_batch(Core, cmds, ninst))
        risk_batch.append(time_batch(Core, cmds, ninst, risk=tables))
    say(f"per-call API x{repeat}")
    calls = [time_calls(Core, rows, ninst) for _ in range(repeat)]
    nref = min(ref_commands, n_commands)
    say(f"reference model on the first {nref:,} commands")
    ref = [time_batch(ReferenceCore, cmds[:nref], ninst) for _ in range(max(1, repeat // 2))]
    # the core on the same prefix, for a like-for-like ratio
    batch_prefix = [time_batch(Core, cmds[:nref], ninst) for _ in range(repeat)]
    say("per-call latency")
    hist = call_latencies(Core, rows, ninst)
    say(f"memory with {memory_orders:,} resting orders")
    rss_per, core_per = bytes_per_resting_order(Core, memory_orders)

    med = statistics.median
    batch_ops = n_commands / med(batch)
    risk_ops = n_commands / med(risk_batch)
    call_ops = n_commands / med(calls)
    ref_ops = nref / med(ref)
    batch_prefix_ops = nref / med(batch_prefix)
    return {
        "workload": {"commands": n_commands, "seed": seed, "instruments": ninst,
                     "events": counts, "resting_at_end": resting_end, "repeats": repeat},
        "batch_ops_per_s": round(batch_ops),
        "batch_ns_per_op": round(1e9 / batch_ops, 1),
        "risk_batch_ops_per_s": round(risk_ops),
        "risk_batch_ns_per_op": round(1e9 / risk_ops, 1),
        "risk_vs_batch": round(risk_ops / batch_ops, 3),
        "risk_events": risk_counts,
        "risk_batch_runs_ops_per_s": [round(n_commands / t) for t in risk_batch],
        "call_ops_per_s": round(call_ops),
        "call_ns_per_op": round(1e9 / call_ops, 1),
        "call_latency_ns": {"p50": hist.get_value_at_percentile(50),
                            "p99": hist.get_value_at_percentile(99),
                            "p99.9": hist.get_value_at_percentile(99.9),
                            "max": hist.get_max_value()},
        "reference_ops_per_s": round(ref_ops),
        "reference_commands": nref,
        "batch_vs_reference": round(batch_prefix_ops / ref_ops, 1),
        "call_vs_reference": round(call_ops / ref_ops, 1),
        "batch_runs_ops_per_s": [round(n_commands / t) for t in batch],
        "call_runs_ops_per_s": [round(n_commands / t) for t in calls],
        "bytes_per_resting_order": round(rss_per, 1),
        "core_bytes_per_resting_order": round(core_per, 1),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
    }


def format_report(r: dict) -> str:
    lat = r["call_latency_ns"]
    w = r["workload"]
    lines = [
        f"engine bench core — {w['commands']:,} commands, seed {w['seed']}, "
        f"{w['instruments']} instruments, median of {w['repeats']} runs",
        f"  events: {', '.join(f'{k} {v:,}' for k, v in w['events'].items())}",
        "",
        f"  {'path':<22}{'ops/s':>14}{'ns/op':>10}{'vs reference':>15}",
        f"  {'batch API':<22}{r['batch_ops_per_s']:>14,}{r['batch_ns_per_op']:>10}"
        f"{r['batch_vs_reference']:>14}x",
        f"  {'batch API, risk on':<22}{r['risk_batch_ops_per_s']:>14,}"
        f"{r['risk_batch_ns_per_op']:>10}{'':>15}  ({r['risk_vs_batch']} of risk off)",
        f"  {'per-call API':<22}{r['call_ops_per_s']:>14,}{r['call_ns_per_op']:>10}"
        f"{r['call_vs_reference']:>14}x",
        f"  {'reference model':<22}{r['reference_ops_per_s']:>14,}"
        f"{round(1e9 / r['reference_ops_per_s'], 1):>10}{'1.0':>14}x",
        "",
        f"  per-call latency ns: p50 {lat['p50']}  p99 {lat['p99']}  p99.9 {lat['p99.9']}"
        f"  max {lat['max']}",
        f"  memory per resting order: {r['bytes_per_resting_order']} bytes RSS "
        f"({r['core_bytes_per_resting_order']} bytes in the core's arrays)",
        f"  {r['machine']['python']} on {r['machine']['platform']}, {r['machine']['cpus']} cpus",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:  # pragma: no cover - thin CLI
    import argparse

    p = argparse.ArgumentParser(prog="engine bench core")
    p.add_argument("--commands", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = run_core_bench(args.commands, args.repeat)
    print(json.dumps(r) if args.json else format_report(r))
    return 0
