"""The journal benchmark: `engine bench journal`.

Measures the journal and the pipeline around it, on the seeded workload of `engine bench core`:

- append: Sequencer + JournalWriter in batches, with durability ``none``, ``write`` and
  ``fsync`` (group commit: a producer appending as fast as it can, timed until its last
  command is durable; and a producer allowed at most ``fsync_window`` commands not yet
  durable, closer to clients waiting for their acks);
- replay: ``engine.journal.replay.replay(path, keep_events=False)`` over the whole journal, end
  to end (open + verify + decode + core), beside ``Core.process`` over the same commands;
- recovery: ``engine.pipeline.Engine`` opening the journal with no snapshot, then with a
  snapshot taken ``snapshot_lag`` commands before the end.

It measures; it never changes what the journal or the core does. Every file it writes is in a
temporary directory that it removes.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench import WorkloadSpec, make_workload
from .schema import COMMAND_DTYPE, CommandType

__all__ = ["TARGETS", "journal_workload", "run_journal_bench", "format_report", "main"]

# The targets for this machine (2 cores, a noisy VM): figure -> (">=" or "<=", value).
TARGETS: dict[str, tuple[str, float]] = {
    "append_write_per_s": (">=", 1_000_000),
    "append_fsync_per_s": (">=", 200_000),
    "replay_per_s": (">=", 3_000_000),
    "recover_scratch_s": ("<=", 5.0),
    "recover_snapshot_s": ("<=", 1.0),
}

CORE_CHUNK = 65536


# -- the workload ---------------------------------------------------------------------------------

def tile_workload(base: np.ndarray, n_commands: int) -> np.ndarray:
    """``base`` repeated up to ``n_commands``; tile k adds k * (max order id + 1) to every
    command's order id (new, cancel and replace alike), so ids stay unique and each tile's
    cancels and replaces still name that tile's orders."""
    if len(base) == 0:
        raise ValueError("the base workload is empty")
    step = int(base["order_id"].max()) + 1
    reps = -(-n_commands // len(base))
    out = np.empty(reps * len(base), dtype=COMMAND_DTYPE)
    for k in range(reps):
        part = out[k * len(base):(k + 1) * len(base)]
        part[:] = base
        part["order_id"] += k * step
    return out[:n_commands]


def journal_workload(n_commands: int, base_commands: int = 1_000_000, seed: int = 42
                     ) -> np.ndarray:
    """``n_commands`` of the core benchmark's workload on the journal's instruments (1..4 of
    ``InstrumentSet.default()``), unstamped: ``min(n_commands, base_commands)`` generated, then
    tiled (make_workload is slow in Python)."""
    base = make_workload(WorkloadSpec(n_commands=min(n_commands, base_commands), seed=seed))
    base["instrument"] += 1          # the generator numbers instruments 0..n-1; ours are 1..8
    base["seq"] = 0
    base["ts_ns"] = 0
    return base if len(base) == n_commands else tile_workload(base, n_commands)


# -- measurements ----------------------------------------------------------------------------------

def _dir_bytes(path: Path) -> tuple[int, int]:
    """(bytes in segment files, number of segment files)."""
    segs = [p for p in path.iterdir() if p.suffix == ".seg"]
    return sum(p.stat().st_size for p in segs), len(segs)


def append_all(writer, sequencer, cmds: np.ndarray, batch: int = 1000,
               window: int | None = None) -> int:
    """The producer: stamp and append ``cmds`` in batches, then wait until the last one is
    durable. With ``window``, it also waits whenever more than ``window`` of its commands are
    not yet durable. Returns the last sequence number."""
    stamp, append = sequencer.stamp, writer.append
    n = len(cmds)
    last = writer.last_seq
    if window is None:
        for i in range(0, n, batch):
            part = cmds[i:i + batch]
            stamp(part)
            last = append(part)
    else:
        for i in range(0, n, batch):
            part = cmds[i:i + batch]
            stamp(part)
            last = append(part)
            if last - writer.durable_seq > window:
                writer.wait_durable(last - window)
    writer.wait_durable(last)
    return last


def time_append(cmds: np.ndarray, instruments, durability: str, path: Path | None, *,
                batch: int = 1000, window: int | None = None) -> dict:
    """Stamp and append ``cmds`` in batches of ``batch`` into a new journal at ``path``.

    Returns seconds (until the last command is durable under the policy), the number of
    durability advances (with ``fsync``: the fdatasyncs that made commands durable, i.e. the
    group commits), the journal's bytes and segments. With ``window``, the producer waits
    whenever more than ``window`` of its commands are not yet durable."""
    from .journal.sequencer import Sequencer
    from .journal.writer import JournalWriter

    commits = [0]
    w = JournalWriter(path, instruments, durability=durability)  # type: ignore[arg-type]
    try:
        w.add_listener(lambda seq: commits.__setitem__(0, commits[0] + 1))
        seqr = Sequencer(w.next_seq)
        gc.collect()
        t0 = time.perf_counter()
        append_all(w, seqr, cmds, batch, window)
        seconds = time.perf_counter() - t0
        assert w.durable_seq == len(cmds), (w.durable_seq, len(cmds))
    finally:
        w.close()
    nbytes, segments = _dir_bytes(path) if path is not None else (0, 0)
    return {"seconds": seconds, "commits": commits[0], "bytes": nbytes, "segments": segments}


def fdatasync_latency_us(directory: Path, n: int = 50) -> dict:
    """The disk's own pace: microseconds for one 4 KiB append + fdatasync, ``n`` times."""
    sync = getattr(os, "fdatasync", os.fsync)
    p = directory / "fsync-probe"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"\0" * 4096
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            os.write(fd, block)
            sync(fd)
            out.append((time.perf_counter_ns() - t0) / 1000)
    finally:
        os.close(fd)
        os.unlink(p)
    return {"p50": round(statistics.median(out), 1), "max": round(max(out), 1), "n": n}


def time_replay(path: Path) -> tuple[float, int, str]:
    """Seconds for ``replay(path, keep_events=False)``: open, verify, decode, core."""
    from .journal.replay import replay

    gc.collect()
    t0 = time.perf_counter()
    r = replay(path, keep_events=False)
    seconds = time.perf_counter() - t0
    return seconds, r.stats.commands, r.digest()


def time_replay_parts(path: Path) -> dict:
    """Where a replay's time goes: opening (manifest + CRC scan of every segment), decoding
    every record into COMMAND_DTYPE batches, and (measured separately) the core."""
    from .journal.reader import Journal
    from .journal.replay import DEFAULT_BATCH

    gc.collect()
    t0 = time.perf_counter()
    j = Journal(path)
    t1 = time.perf_counter()
    n = 0
    for part in j.iter_batches(batch=DEFAULT_BATCH):
        n += len(part)
    t2 = time.perf_counter()
    return {"open_verify_s": t1 - t0, "decode_s": t2 - t1, "commands": n}


def time_core(cmds: np.ndarray, instruments) -> tuple[float, str]:
    """Seconds for ``Core.process`` over ``cmds`` in chunks of 65,536 (a fresh core)."""
    from .journal.replay import new_core

    core = new_core(instruments)
    gc.collect()
    t0 = time.perf_counter()
    for s in range(0, len(cmds), CORE_CHUNK):
        core.process(cmds[s:s + CORE_CHUNK])
    seconds = time.perf_counter() - t0
    return seconds, core.state_digest()


def time_recover(path: Path, instruments) -> dict:
    """Open ``Engine(instruments, path, durability="write")`` (recovery), then close it."""
    from .pipeline import Engine

    gc.collect()
    t0 = time.perf_counter()
    eng = Engine(instruments, path, durability="write")
    seconds = time.perf_counter() - t0
    try:
        rec = eng.recovery
        digest = eng.state_digest()
    finally:
        eng.close()
    return {"seconds": seconds, "recovery_seconds": rec.seconds, "snapshot_seq": rec.snapshot_seq,
            "replayed": rec.replayed, "last_seq": rec.last_seq, "describe": rec.describe(),
            "digest": digest}


def take_snapshot(path: Path, instruments, seq: int) -> dict:
    """Write a snapshot of the state after ``seq`` into the journal ``path`` (replaying up to
    it); returns the export and write times and the file's size."""
    from .journal.replay import replay
    from .journal.snapshot import write_snapshot

    core = replay(path, stop=seq, keep_events=False).core
    t0 = time.perf_counter()
    state = core.export_state()
    t1 = time.perf_counter()
    out = write_snapshot(path, seq, state, instruments.digest())
    t2 = time.perf_counter()
    return {"seq": seq, "export_s": t1 - t0, "write_s": t2 - t1, "bytes": out.stat().st_size,
            "orders": len(state["orders"])}


# -- the whole benchmark ---------------------------------------------------------------------------

def _rate(n: int, seconds: list[float]) -> int:
    return round(n / statistics.median(seconds))


def _met(key: str, value: float) -> bool:
    op, target = TARGETS[key]
    return value >= target if op == ">=" else value <= target


def run_journal_bench(n_commands: int = 5_000_000, repeat: int = 3, *, batch: int = 1000,
                      append_commands: int | None = None, fsync_window: int = 10_000,
                      snapshot_lag: int = 100_000, base_commands: int = 1_000_000,
                      directory: str | os.PathLike[str] | None = None, seed: int = 42,
                      progress=None) -> dict:
    """Run every journal measurement ``repeat`` times; figures are medians."""
    from .instruments import InstrumentSet

    if n_commands < 1 or repeat < 1 or batch < 1 or fsync_window < 1:
        raise ValueError("commands, repeat, batch and fsync_window must be >= 1")
    say = progress or (lambda msg: None)
    instruments = InstrumentSet.default()
    n_append = n_commands if append_commands is None else min(append_commands, n_commands)
    lag = max(0, min(snapshot_lag, n_commands - 1))
    parent = Path(directory) if directory is not None else Path.cwd()
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".engine-bench-journal-", dir=parent))
    try:
        generated = min(n_commands, base_commands)
        say(f"generating {generated:,} commands (seed {seed})"
            + (f", tiled to {n_commands:,}" if generated < n_commands else ""))
        cmds = journal_workload(n_commands, base_commands, seed)
        new_ids = cmds["order_id"][cmds["cmd"] == CommandType.NEW]
        fsync_us = fdatasync_latency_us(root)

        runs: dict[str, list[dict]] = {"none": [], "write": [], "fsync": [], "fsync_window": []}
        plan = [("none", None), ("write", None), ("fsync", None), ("fsync_window", fsync_window)]
        for name, window in plan:
            durability = "fsync" if name.startswith("fsync") else name
            what = f"append {n_append:,} commands, durability {durability}"
            if window:
                what += f", at most {window:,} not durable"
            say(f"{what} x{repeat}")
            for r in range(repeat):
                p = None if durability == "none" else root / f"append-{name}-{r}"
                runs[name].append(time_append(cmds[:n_append], instruments, durability, p,
                                              batch=batch, window=window))
                if p is not None:
                    shutil.rmtree(p)

        jpath = root / "journal"
        say(f"writing the replay journal: {n_commands:,} commands, durability write")
        full = time_append(cmds, instruments, "write", jpath, batch=batch)
        # cmds now holds exactly what the journal holds (stamped)

        say(f"replay x{repeat}")
        replays = [time_replay(jpath) for _ in range(repeat)]
        assert all(n == n_commands for _, n, _ in replays)
        parts = [time_replay_parts(jpath) for _ in range(repeat)]
        say(f"core batch x{repeat}")
        cores = [time_core(cmds, instruments) for _ in range(repeat)]

        say(f"recovery from scratch x{repeat}")
        scratch = [time_recover(jpath, instruments) for _ in range(repeat)]
        snap_seq = n_commands - lag
        say(f"snapshot at seq {snap_seq:,}")
        snap = take_snapshot(jpath, instruments, snap_seq)
        say(f"recovery from the snapshot x{repeat}")
        fromsnap = [time_recover(jpath, instruments) for _ in range(repeat)]
        jbytes, jsegs = _dir_bytes(jpath)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    digests = {d for _, _, d in replays} | {d for _, d in cores} \
        | {r["digest"] for r in scratch} | {r["digest"] for r in fromsnap}
    replay_per_s = _rate(n_commands, [s for s, _, _ in replays])
    core_per_s = _rate(n_commands, [s for s, _ in cores])

    def append_rates(name: str) -> list[int]:
        return [round(n_append / r["seconds"]) for r in runs[name]]

    def recovery(rs: list[dict]) -> dict:
        mid = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
        return {"seconds": round(med(r["seconds"] for r in rs), 4),
                "recovery_seconds": round(med(r["recovery_seconds"] for r in rs), 4),
                "runs_s": [round(r["seconds"], 4) for r in rs],
                "snapshot_seq": mid["snapshot_seq"], "replayed": mid["replayed"],
                "last_seq": mid["last_seq"], "describe": mid["describe"]}

    r = {
        "commands": n_commands,
        "generated_commands": generated,
        "append_commands": n_append,
        "batch": batch,
        "repeats": repeat,
        "seed": seed,
        "instruments": 4,
        "orders": int(len(new_ids)),
        "append_none_per_s": round(med(append_rates("none"))),
        "append_write_per_s": round(med(append_rates("write"))),
        "append_fsync_per_s": round(med(append_rates("fsync"))),
        "append_fsync_window_per_s": round(med(append_rates("fsync_window"))),
        "fsync_window": fsync_window,
        "fsyncs": round(med(r["commits"] for r in runs["fsync"])),
        "fsyncs_window": round(med(r["commits"] for r in runs["fsync_window"])),
        "append_runs_per_s": {k: append_rates(k) for k in runs},
        "disk_fdatasync_us": fsync_us,
        "journal_write_per_s": round(n_commands / full["seconds"]),
        "replay_per_s": replay_per_s,
        "core_batch_per_s": core_per_s,
        "replay_vs_core": round(replay_per_s / core_per_s, 3),
        "replay_runs_per_s": [round(n_commands / s) for s, _, _ in replays],
        "core_batch_runs_per_s": [round(n_commands / s) for s, _ in cores],
        "replay_parts_s": {
            "open_verify": round(med(p["open_verify_s"] for p in parts), 4),
            "decode": round(med(p["decode_s"] for p in parts), 4),
            "core": round(n_commands / core_per_s, 4),
            "total": round(n_commands / replay_per_s, 4),
        },
        "recover_scratch_s": None,
        "recover_snapshot_s": None,
        "recovery": {"scratch": recovery(scratch), "snapshot": recovery(fromsnap)},
        "snapshot": {"seq": snap["seq"], "lag": lag, "bytes": snap["bytes"],
                     "orders": snap["orders"], "export_s": round(snap["export_s"], 4),
                     "write_s": round(snap["write_s"], 4)},
        "journal_bytes": jbytes,
        "segments": jsegs,
        "segments_append_write": runs["write"][0]["segments"],
        "digests_match": len(digests) == 1,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "directory": str(parent.resolve())},
    }
    r["recover_scratch_s"] = r["recovery"]["scratch"]["seconds"]
    r["recover_snapshot_s"] = r["recovery"]["snapshot"]["seconds"]
    r["targets"] = {k: {"op": op, "target": t, "met": _met(k, r[k])}
                    for k, (op, t) in TARGETS.items()}
    return r


# -- the report ----------------------------------------------------------------------------------

def _target_cell(r: dict, key: str) -> tuple[str, str]:
    t = r["targets"].get(key)
    if t is None:
        return "", ""
    op, target, value = t["op"], t["target"], r[key]
    if op == ">=":
        shown = f">= {target:,.0f} /s"
        ratio = value / target
    else:
        shown = f"<= {target:g} s"
        ratio = target / value if value > 0 else float("inf")
    return shown, f"{'met' if t['met'] else 'MISSED'} ({ratio:.2f}x)"


def format_report(r: dict) -> str:
    gen = r["generated_commands"]
    tiled = f", {gen:,} generated and tiled" if gen < r["commands"] else ""
    rows = [
        ("append, durability none", "append_none_per_s", "/s"),
        ("append, durability write", "append_write_per_s", "/s"),
        ("append, fsync, group commit", "append_fsync_per_s", "/s"),
        (f"append, fsync, <= {r['fsync_window']:,} not durable", "append_fsync_window_per_s",
         "/s"),
        ("replay into the core, end to end", "replay_per_s", "/s"),
        ("core batch, same commands", "core_batch_per_s", "/s"),
        ("recovery from scratch", "recover_scratch_s", "s"),
        ("recovery from a snapshot", "recover_snapshot_s", "s"),
    ]
    lines = [
        f"engine bench journal — {r['commands']:,} commands{tiled}, seed {r['seed']},"
        f" {r['instruments']} instruments, append batches of {r['batch']:,}, median of"
        f" {r['repeats']} runs",
        f"  append runs: {r['append_commands']:,} commands each; journal for replay and"
        f" recovery: {r['journal_bytes']:,} bytes in {r['segments']} segment"
        f"{'' if r['segments'] == 1 else 's'}",
        "",
        f"  {'figure':<38}{'measured':>16}   {'target':<18}{'':<16}",
    ]
    for label, key, unit in rows:
        v = r[key]
        shown = f"{v:,} /s" if unit == "/s" else f"{v:.3f} s"
        target, verdict = _target_cell(r, key)
        lines.append(f"  {label:<38}{shown:>16}   {target:<18}{verdict}")
    rec = r["recovery"]
    parts = r["replay_parts_s"]
    s = r["snapshot"]
    lines += [
        "",
        f"  replay / core batch: {r['replay_vs_core']:.2f}x  (replay {parts['total']:.3f} s ="
        f" open+verify {parts['open_verify']:.3f} s, decode {parts['decode']:.3f} s,"
        f" core {parts['core']:.3f} s, rest"
        f" {parts['total'] - parts['open_verify'] - parts['decode'] - parts['core']:.3f} s)",
        f"  fsync group commits: {r['fsyncs']:,} for {r['append_commands']:,} commands"
        f" ({r['append_commands'] / max(1, r['fsyncs']):,.0f} per fsync); with the window:"
        f" {r['fsyncs_window']:,}",
        f"  this disk: one 4 KiB write + fdatasync takes {r['disk_fdatasync_us']['p50']:,.0f} us"
        f" (median of {r['disk_fdatasync_us']['n']}, max {r['disk_fdatasync_us']['max']:,.0f} us)",
        f"  writing the {r['commands']:,}-command journal (write): {r['journal_write_per_s']:,} /s",
        f"  scratch:  {rec['scratch']['describe']} (wall {rec['scratch']['seconds']:.3f} s)",
        f"  snapshot: {rec['snapshot']['describe']} (wall {rec['snapshot']['seconds']:.3f} s);"
        f" snapshot of {s['orders']:,} orders, {s['bytes']:,} bytes, export {s['export_s']:.3f} s,"
        f" write {s['write_s']:.3f} s",
        f"  state digests of replay, core and both recoveries match: {r['digests_match']}",
        f"  {r['machine']['python']} on {r['machine']['platform']}, {r['machine']['cpus']} cpus;"
        f" files under {r['machine']['directory']}",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:  # pragma: no cover - thin CLI
    import argparse

    p = argparse.ArgumentParser(prog="engine bench journal")
    p.add_argument("--commands", type=int, default=5_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--append-commands", type=int, default=None)
    p.add_argument("--fsync-window", type=int, default=10_000)
    p.add_argument("--dir", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = run_journal_bench(args.commands, args.repeat, batch=args.batch,
                          append_commands=args.append_commands, fsync_window=args.fsync_window,
                          directory=args.dir)
    print(json.dumps(r) if args.json else format_report(r))
    return 0
