"""pytest-benchmark suite for the core: the mixed workload of `engine bench core` through the
batch API, the per-call API and the reference model, plus level-structure micro-benchmarks
(inserts near the top vs. deep in a book with many levels).

Run: make bench   (or: .venv/bin/python -m pytest benchmarks --benchmark-only)
Fixed seed; pytest-benchmark does the warm-up, rounds, and min/median/percentiles.
"""
import numpy as np
import pytest

from engine._core import Core
from engine.bench import WorkloadSpec, _fresh, as_rows, make_workload, run_calls
from engine.reference import ReferenceCore
from engine.schema import COMMAND_DTYPE, CommandType, OrdType, Side, TimeInForce

N = 200_000
SPEC = WorkloadSpec(n_commands=N, seed=7)


@pytest.fixture(scope="module")
def cmds():
    return make_workload(SPEC)


@pytest.fixture(scope="module")
def rows(cmds):
    return as_rows(cmds)


def _run_batch(core_cls, cmds):
    core = _fresh(core_cls, SPEC.n_instruments)
    core.process(cmds)
    return core


def test_batch_api(benchmark, cmds):
    benchmark.extra_info["commands"] = N
    benchmark.pedantic(_run_batch, args=(Core, cmds), rounds=7, warmup_rounds=1)


def test_per_call_api(benchmark, rows):
    benchmark.extra_info["commands"] = N
    benchmark.pedantic(lambda: run_calls(_fresh(Core, SPEC.n_instruments), rows),
                       rounds=5, warmup_rounds=1)


def test_reference_model(benchmark, cmds):
    benchmark.extra_info["commands"] = 50_000
    benchmark.pedantic(_run_batch, args=(ReferenceCore, cmds[:50_000]), rounds=2)


def _ladder(n_levels: int, deep: bool) -> np.ndarray:
    """n_levels one-lot bids on distinct prices, then 10,000 adds: at new prices above the
    best (near the top: cheap moves) or below the worst (deep: moves every level)."""
    base = np.zeros(n_levels + 10_000, dtype=COMMAND_DTYPE)
    base["cmd"] = CommandType.NEW
    base["side"] = Side.BUY
    base["ord_type"] = OrdType.LIMIT
    base["tif"] = TimeInForce.GTC
    base["qty"] = 1
    base["order_id"] = np.arange(1, len(base) + 1)
    base["price"][:n_levels] = np.arange(1_000_000, 1_000_000 + n_levels) * 2
    extra = np.arange(10_000)
    base["price"][n_levels:] = (1 + extra * 2) if deep else (2_000_000 + 2 * n_levels + extra)
    return base


@pytest.mark.parametrize("n_levels", [100, 10_000, 100_000])
@pytest.mark.parametrize("where", ["top", "deep"])
def test_level_insert(benchmark, n_levels, where):
    cmds = _ladder(n_levels, where == "deep")
    pre, adds = cmds[:n_levels], cmds[n_levels:]

    def setup():
        core = _fresh(Core, 1)
        core.process(pre)
        return (core,), {}

    benchmark.extra_info["adds"] = len(adds)
    benchmark.pedantic(lambda core: core.process(adds), setup=setup, rounds=5)
