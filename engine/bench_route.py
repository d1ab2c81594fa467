"""`engine bench route`: the core workload with its liquidity spread over venues and its
aggressive orders routed, against the same workload on one venue with direct orders.

Owns the routed variant of the workload and its timing; the workload itself is
engine/bench.py's. It measures; it never changes what the core does.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from .bench import WorkloadSpec, make_marked_workload
from .schema import CommandType, EventType, Flags, OrdType, TimeInForce

__all__ = ["venue_fees", "routed_workload", "route_core", "run_route_bench", "format_report",
           "main"]


def venue_fees(n_venues: int) -> list[tuple[int, int, int, int]]:
    """``(venue, maker_fee, taker_fee, priority)`` of the benchmark's venues: a lit venue with
    a taker fee and a maker rebate, a cheaper one, a zero-fee crossing venue, then more with
    fees in between (ppm)."""
    base = [(-20, 30), (0, 10), (0, 0)]
    out = []
    for v in range(1, n_venues + 1):
        maker, taker = base[v - 1] if v <= 3 else (-(v % 5) * 2, 5 + (v * 7) % 25)
        out.append((v, maker, taker, v - 1))
    return out


def routed_workload(cmds: np.ndarray, aggressive: np.ndarray, n_venues: int) -> np.ndarray:
    """The routed variant of a workload: each passive NEW goes to venue ``1 + id % n_venues``;
    each aggressive NEW becomes a ROUTE parent (a GTC limit: sweep_post, the rest resting on
    the best maker venue; IOC or market: sweep). Cancels and replaces are unchanged (by id);
    a replace of a routed parent that moves its price is refused (docs/ROUTING.md)."""
    out = cmds.copy()
    new = out["cmd"] == CommandType.NEW
    passive = new & ~aggressive
    out["venue"][passive] = 1 + out["order_id"][passive] % n_venues
    routed = new & aggressive
    out["cmd"][routed] = CommandType.ROUTE
    post = routed & (out["tif"] == TimeInForce.GTC) & (out["ord_type"] == OrdType.LIMIT)
    out["flags"][post] = Flags.POST_REMAINDER
    return out


def route_core(core_cls, n_instruments: int, n_venues: int):
    """A core with ``n_venues`` venues (venue_fees) listing every instrument."""
    core = core_cls()
    for v, maker, taker, prio in venue_fees(n_venues):
        core.add_venue(v, maker_fee=maker, taker_fee=taker, priority=prio)
    for i in range(n_instruments):
        for v in range(1, n_venues + 1):
            core.add_instrument(i, venue=v)
    return core


def _direct_core(core_cls, n_instruments: int):
    core = core_cls()
    for i in range(n_instruments):
        core.add_instrument(i)
    return core


def _time(core, cmds: np.ndarray, chunk: int = 65536) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for s in range(0, len(cmds), chunk):
        core.process(cmds[s:s + chunk])
    return time.perf_counter() - t0


def _counts(events: np.ndarray) -> dict[str, int]:
    return {t.name.lower(): int((events["type"] == t).sum()) for t in EventType}


def run_route_bench(n_commands: int = 1_000_000, repeat: int = 5, n_venues: int = 3,
                    seed: int = 42, progress=None) -> dict:
    """Time the routed workload and the direct one, alternating, through the batch API."""
    from ._core import Core

    if n_venues < 1 or n_venues > 64:
        raise ValueError("--venues must be in 1..64")
    say = progress or (lambda msg: None)
    spec = WorkloadSpec(n_commands=n_commands, seed=seed)
    say(f"generating {n_commands:,} commands (seed {seed})")
    direct, aggressive = make_marked_workload(spec)
    routed = routed_workload(direct, aggressive, n_venues)
    ninst = spec.n_instruments

    probe = route_core(Core, ninst, n_venues)
    ev = probe.process(routed)
    routed_counts = _counts(ev)
    parents = int((routed["cmd"] == CommandType.ROUTE).sum())
    children = int(((ev["type"] == EventType.ACCEPTED) & (ev["order_id"] < 0)).sum())
    probe.check_integrity()
    probe = _direct_core(Core, ninst)
    direct_counts = _counts(probe.process(direct))
    del probe, ev

    say(f"batch API, routed over {n_venues} venues and direct on one, alternating x{repeat}")
    r_runs, d_runs = [], []
    for _ in range(repeat):
        r_runs.append(_time(route_core(Core, ninst, n_venues), routed))
        d_runs.append(_time(_direct_core(Core, ninst), direct))
    med = statistics.median
    r_ops = n_commands / med(r_runs)
    d_ops = n_commands / med(d_runs)
    return {
        "workload": {"commands": n_commands, "seed": seed, "instruments": ninst,
                     "repeats": repeat, "parents": parents, "children": children,
                     "routed_events": routed_counts, "direct_events": direct_counts},
        "venues": n_venues,
        "venue_fees": [dict(zip(("venue", "maker_fee", "taker_fee", "priority"), v))
                       for v in venue_fees(n_venues)],
        "routed_batch_ops_per_s": round(r_ops),
        "routed_batch_ns_per_op": round(1e9 / r_ops, 1),
        "direct_batch_ops_per_s": round(d_ops),
        "direct_batch_ns_per_op": round(1e9 / d_ops, 1),
        "routed_vs_direct": round(r_ops / d_ops, 3),
        "routed_runs_ops_per_s": [round(n_commands / t) for t in r_runs],
        "direct_runs_ops_per_s": [round(n_commands / t) for t in d_runs],
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
    }


def format_report(r: dict) -> str:
    w = r["workload"]
    return "\n".join([
        f"engine bench route — {w['commands']:,} commands, seed {w['seed']}, "
        f"{w['instruments']} instruments, {r['venues']} venues, median of {w['repeats']} runs",
        f"  routed: {w['parents']:,} parents, {w['children']:,} children; events "
        + ", ".join(f"{k} {v:,}" for k, v in w["routed_events"].items() if v),
        "  venues: " + "; ".join(f"{v['venue']} maker {v['maker_fee']} taker {v['taker_fee']}"
                                 f" ppm" for v in r["venue_fees"]),
        "",
        f"  {'path':<34}{'ops/s':>14}{'ns/op':>10}",
        f"  {'batch API, routed over venues':<34}{r['routed_batch_ops_per_s']:>14,}"
        f"{r['routed_batch_ns_per_op']:>10}",
        f"  {'batch API, direct on one venue':<34}{r['direct_batch_ops_per_s']:>14,}"
        f"{r['direct_batch_ns_per_op']:>10}",
        f"  routed / direct: {r['routed_vs_direct']}",
        f"  {r['machine']['python']} on {r['machine']['platform']}, {r['machine']['cpus']} cpus",
    ])


def main(argv=None) -> int:  # pragma: no cover - thin CLI
    import argparse

    p = argparse.ArgumentParser(prog="engine bench route")
    p.add_argument("--commands", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--venues", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = run_route_bench(args.commands, args.repeat, args.venues)
    print(json.dumps(r) if args.json else format_report(r))
    return 0
