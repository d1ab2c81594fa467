"""The `engine` command line: `engine demo`, `engine bench core`.

Only arranges calls into the library; every behaviour it shows lives in a module of its own.
"""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.target not in ("core", "journal"):
        print(f"engine bench: unknown target {args.target!r} (known: core, journal)",
              file=sys.stderr)
        return 2
    progress = None if args.json else (lambda m: print(f"  .. {m}", file=sys.stderr, flush=True))
    if args.target == "journal":
        from .bench_journal import format_report, run_journal_bench

        r = run_journal_bench(5_000_000 if args.commands is None else args.commands,
                              3 if args.repeat is None else args.repeat, batch=args.batch,
                              append_commands=args.append_commands,
                              fsync_window=args.fsync_window, snapshot_lag=args.snapshot_lag,
                              directory=args.dir, seed=args.seed, progress=progress)
    else:
        from .bench import format_report, run_core_bench

        r = run_core_bench(1_000_000 if args.commands is None else args.commands,
                           5 if args.repeat is None else args.repeat,
                           ref_commands=args.ref_commands, memory_orders=args.memory_orders,
                           seed=args.seed, progress=progress)
    print(json.dumps(r) if args.json else format_report(r))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(config_path=args.config, n_orders=args.orders, seed=args.seed,
                    journal=args.journal, durability=args.durability)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine", description="An in-memory order engine.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="run a benchmark (target: core or journal)")
    b.add_argument("target", help="what to benchmark: core or journal")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--commands", type=int, default=None,
                   help="workload size (default: 1,000,000 for core, 5,000,000 for journal)")
    b.add_argument("--repeat", type=int, default=None,
                   help="runs per figure; the median is shown (default: 5 for core, 3 for journal)")
    b.add_argument("--ref-commands", type=int, default=200_000,
                   help="commands run through the (slow) reference model")
    b.add_argument("--memory-orders", type=int, default=1_000_000,
                   help="resting orders for the memory measurement")
    b.add_argument("--seed", type=int, default=42)
    j = b.add_argument_group("journal")
    j.add_argument("--batch", type=int, default=1000, help="commands per journal append")
    j.add_argument("--append-commands", type=int, default=None,
                   help="commands per append run (default: all of --commands)")
    j.add_argument("--fsync-window", type=int, default=10_000,
                   help="fsync run with a producer at most this many commands ahead of"
                        " durability")
    j.add_argument("--snapshot-lag", type=int, default=100_000,
                   help="the recovery snapshot is taken this many commands before the end")
    j.add_argument("--dir", default=None,
                   help="where the temporary journals go (default: the current directory)")
    b.set_defaults(func=_cmd_bench)

    d = sub.add_parser("demo", help="a short demo: several instruments, a book and a trade tape")
    d.add_argument("--config", help="instruments file (default: the embedded config)")
    d.add_argument("--orders", type=int, default=3000, help="orders to send")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--journal", metavar="DIR",
                   help="journal every command into this (new) directory, for `engine replay`")
    d.add_argument("--durability", choices=("fsync", "write"), default="write",
                   help="with --journal: when a command counts as written (default: write)")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
