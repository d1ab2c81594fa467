"""The `engine` command line: `engine demo`, `engine bench core|journal|gateway|route`,
`engine replay`,
`engine serve`, `engine client`, `engine risk`, `engine report best-execution`, `engine keygen`.

Only arranges calls into the library; every behaviour it shows lives in a module of its own.
"""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.target not in ("core", "journal", "gateway", "route"):
        print(f"engine bench: unknown target {args.target!r} (known: core, journal, gateway,"
              " route)", file=sys.stderr)
        return 2
    progress = None if args.json else (lambda m: print(f"  .. {m}", file=sys.stderr, flush=True))
    if args.target == "route":
        from .bench_route import format_report, run_route_bench

        if not 1 <= args.venues <= 64:
            print("engine bench route: --venues must be in 1..64", file=sys.stderr)
            return 2
        r = run_route_bench(1_000_000 if args.commands is None else args.commands,
                            5 if args.repeat is None else args.repeat, n_venues=args.venues,
                            seed=args.seed, progress=progress)
    elif args.target == "gateway":
        from .bench_gateway import BenchArgumentError, format_report, parse_rate, \
            run_gateway_bench

        try:
            r = run_gateway_bench(args.connections, parse_rate(args.rate), args.duration,
                                  window=args.window, durability=args.durability,
                                  repeat=3 if args.repeat is None else args.repeat,
                                  warmup_s=args.warmup, seed=args.seed, directory=args.dir,
                                  progress=progress)
        except BenchArgumentError as e:
            print(f"engine bench gateway: {e}", file=sys.stderr)
            return 2
    elif args.target == "journal":
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


def _cmd_replay(args: argparse.Namespace) -> int:
    from .journal.format import JournalError
    from .journal.replay_run import ReplayArgumentError, parse_seq, run_replay

    try:
        summary = run_replay(args.journal, start=parse_seq("--from", args.start),
                             stop=parse_seq("--to", args.stop), speed=args.speed, out=args.out,
                             progress=args.progress)
    except (JournalError, ReplayArgumentError) as e:
        print(f"engine replay: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # an output file that cannot be written, a segment that cannot be read
        where = f"{e.filename}: " if e.filename else ""
        print(f"engine replay: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(summary.as_json()) + "\n" if args.json else summary.format())
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from .config import ConfigError, default_config, load_config
    from .gateway.server import serve
    from .journal.format import JournalError

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as e:
        print(f"engine serve: {e}", file=sys.stderr)
        return 2

    def ready(server, port: int) -> None:  # type: ignore[no-untyped-def]
        host = args.host or config.gateway.host
        eng = server.engine
        where = eng.journal.path or "nowhere (durability none)"
        print(f"engine: listening on {host}:{port}; journal {where}, durability"
              f" {eng.journal.durability}; {eng.recovery.describe()}", flush=True)
        first = next(iter(config.accounts), None)
        if first is not None:
            print(f"engine: connect with `engine client --port {port} --account {first.id}"
                  " --key <its API key>`; stop with Ctrl-C", flush=True)

    try:
        return serve(config, host=args.host, port=args.port, journal_dir=args.journal,
                     durability=args.durability, ready=ready)
    except (JournalError, OSError) as e:
        print(f"engine serve: {e}", file=sys.stderr)
        return 2


def _cmd_keygen(args: argparse.Namespace) -> int:
    from .gateway.auth import hash_key, new_key

    for _ in range(args.count):
        key = new_key()
        print(f"api key: {key}\napi_key_hash = \"{hash_key(key)}\"")
    return 0


def _cmd_client(args: argparse.Namespace) -> int:
    from .gateway.terminal import main as terminal_main

    return terminal_main(args)


def _cmd_risk(args: argparse.Namespace) -> int:
    import os

    from .gateway.risk import (RiskViewError, format_views, risk_from_journal, risk_from_server,
                               views_json)

    def fail(text: str) -> int:
        print(f"engine risk: {text}", file=sys.stderr)
        return 2

    live = args.host is not None or args.port is not None
    if args.journal is not None and live:
        return fail("give --journal DIR or --host/--port of a server, not both")
    try:
        if args.journal is not None:
            if args.query:
                return fail("--query is for a live server; with --journal, name the accounts"
                            " with --account")
            entries = risk_from_journal(args.journal, args.account)
        elif live:
            if not args.account or len(args.account) != 1:
                return fail("with --host/--port, give the account to log on as, once:"
                            " --account N (--query M asks an admin's question about M)")
            key = args.key or os.environ.get("ENGINE_API_KEY")
            if not key:
                return fail("no API key: pass --key KEY (or set ENGINE_API_KEY)")
            entries = risk_from_server(args.host or "127.0.0.1", args.port or 7001,
                                       args.account[0], key, args.query, timeout=args.timeout)
        else:
            return fail("nothing to read: give --journal DIR, or --host/--port (and --account,"
                        " --key) of a running server")
    except RiskViewError as e:
        return fail(str(e))
    sys.stdout.write(views_json(entries).decode() if args.json else format_views(entries))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .analytics import ReportArgumentError, run_best_execution
    from .journal.format import JournalError

    name = f"engine report {args.report}"
    try:
        report = run_best_execution(args.journal, out=args.out)
    except (JournalError, ReportArgumentError) as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # an output file that cannot be written, a segment that cannot be read
        where = f"{e.filename}: " if e.filename else ""
        print(f"{name}: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(report.as_json()) + "\n" if args.json else report.format())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine", description="An in-memory order engine.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="run a benchmark (target: core, journal, gateway or route)")
    b.add_argument("target", help="what to benchmark: core, journal, gateway or route")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--commands", type=int, default=None,
                   help="workload size (default: 1,000,000 for core, 5,000,000 for journal)")
    b.add_argument("--repeat", type=int, default=None,
                   help="runs per figure; the median is shown (default: 5 for core, 3 for"
                        " journal and gateway)")
    b.add_argument("--ref-commands", type=int, default=200_000,
                   help="commands run through the (slow) reference model")
    b.add_argument("--memory-orders", type=int, default=1_000_000,
                   help="resting orders for the memory measurement")
    b.add_argument("--seed", type=int, default=42)
    rt = b.add_argument_group("route")
    rt.add_argument("--venues", type=int, default=3,
                    help="venues the routed run spreads liquidity over (default: 3)")
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
    g = b.add_argument_group("gateway")
    g.add_argument("--connections", type=int, default=1,
                   help="TCP connections, one trader account each (default: 1)")
    g.add_argument("--rate", default="max", metavar="R|max",
                   help="max (default): pipelined, --window orders outstanding per connection;"
                        " R: orders/s over all connections, paced, latency from each order's"
                        " intended send time")
    g.add_argument("--duration", type=float, default=5.0,
                   help="seconds measured per run, after the warm-up (default: 5)")
    g.add_argument("--warmup", type=float, default=1.0,
                   help="seconds of load before the measured window (default: 1)")
    g.add_argument("--window", type=int, default=500,
                   help="with --rate max: orders outstanding per connection (default: 500)")
    g.add_argument("--durability", choices=("write", "fsync", "none"), default="write",
                   help="the engine server's journal policy (default: write); the journal is"
                        " a temporary directory under --dir")
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

    r = sub.add_parser(
        "replay", help="rebuild the state from a journal and write its events",
        description="Replay a journal through a fresh core: print a summary (commands, trades,"
                    " volume, final state digest, commands/s) and optionally write every event."
                    " Exit 2, with one line on stderr, if the journal or an argument cannot be"
                    " used.")
    r.add_argument("journal", metavar="JOURNAL_DIR", help="the journal directory")
    r.add_argument("--from", dest="start", metavar="SEQ",
                   help="first command to replay (default: the first; the state before it is"
                        " rebuilt, from the newest snapshot before it if there is one)")
    r.add_argument("--to", dest="stop", metavar="SEQ",
                   help="last command to replay (default: the last)")
    r.add_argument("--speed", default="max", metavar="max|realtime|Nx",
                   help="max (default: no waiting), realtime (at the pace of the commands'"
                        " timestamps) or N times realtime, e.g. 10x or 0.5x")
    r.add_argument("--out", metavar="FILE",
                   help="write the events to FILE.parquet or FILE.csv (written to a temporary"
                        " file beside it, renamed when the replay succeeds)")
    r.add_argument("--progress", action="store_true",
                   help="draw a progress bar on stderr")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.set_defaults(func=_cmd_replay)

    v = sub.add_parser("serve", help="run the TCP gateway on the engine (docs/PROTOCOL.md)",
                       description="Recover the engine from its journal, then serve clients"
                                   " over TCP until SIGINT/SIGTERM. Without --config it runs on"
                                   " the embedded default config (demo accounts, journal under"
                                   " var/).")
    v.add_argument("--config", help="TOML config file (default: the embedded config)")
    v.add_argument("--host", help="address to listen on (default: the config's, 127.0.0.1)")
    v.add_argument("--port", type=int, help="TCP port (default: the config's, 7001; 0: any)")
    v.add_argument("--journal", metavar="DIR", help="journal directory (default: the config's)")
    v.add_argument("--durability", choices=("fsync", "write", "none"),
                   help="when a command is acknowledged (default: the config's)")
    v.set_defaults(func=_cmd_serve)

    k = sub.add_parser("keygen", help="make an API key and the hash the config stores")
    k.add_argument("--count", type=int, default=1)
    k.set_defaults(func=_cmd_keygen)

    c = sub.add_parser(
        "client", help="a terminal client for the gateway: orders in decimals, books, reports",
        description="Log on to a gateway and send commands in decimals and symbols (`help` lists"
                    " them). With COMMANDs (separated by ';' or ','), run them, wait --wait"
                    " seconds for the reports, print them and exit; without, read commands"
                    " line by line. Exit 0; 1 if the server rejected something; 2 for a usage"
                    " error or a refused logon.")
    c.add_argument("--host", default="127.0.0.1",
                   help="the gateway's address (default: %(default)s)")
    c.add_argument("--port", type=int, default=7001,
                   help="the gateway's port (default: %(default)s)")
    c.add_argument("--account", type=int, required=True, help="the account id")
    c.add_argument("--key", help="the account's API key (default: $ENGINE_API_KEY)")
    c.add_argument("--wait", type=float, default=0.5, metavar="SECONDS",
                   help="with COMMANDs: how long to wait for the reports (default: %(default)s)")
    c.add_argument("commands", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                   help="e.g. buy AAPL 10 @ 150.25 ioc, cancel 12, book AAPL")
    c.set_defaults(func=_cmd_client)

    rk = sub.add_parser(
        "risk", help="accounts' risk: cash, positions, P&L, limits and open orders",
        description="Show accounts' pre-trade risk (docs/RISK.md) in decimals: cash per"
                    " currency, positions with average price and P&L, limits and their headroom,"
                    " kill switches, and the open orders. Either replay a journal (--journal DIR:"
                    " the state after its last command, every account unless --account names"
                    " some) or ask a running server (--host/--port, logged on as --account with"
                    " --key: that account's risk, or with an admin account those of --query)."
                    " Exit 2, with one line on stderr, if the journal, the server or an account"
                    " cannot be used.",
        epilog="examples: engine risk --journal var/journal --account 1 --json;"
               " engine risk --port 7001 --account 1 --key demo-alice-key;"
               " engine risk --port 7001 --account 9 --key demo-admin-key --query 1 --query 2")
    rk.add_argument("--journal", metavar="DIR", help="replay this journal directory")
    rk.add_argument("--host", help="a running server's address (default with --port: 127.0.0.1)")
    rk.add_argument("--port", type=int, help="a running server's port (default with --host: 7001)")
    rk.add_argument("--account", type=int, action="append", metavar="N",
                    help="--journal: an account to show (repeat for more; default: every one);"
                         " server: the account to log on as")
    rk.add_argument("--key", help="server: the account's API key (default: $ENGINE_API_KEY)")
    rk.add_argument("--query", type=int, action="append", metavar="M",
                    help="server: an account to ask about instead of the logged-on one (repeat"
                         " for more; another account's needs an admin account)")
    rk.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                    help="server: how long to wait to connect and for each answer (default:"
                         " %(default)s)")
    rk.add_argument("--json", action="store_true",
                    help='print {"accounts": [{"seq", "risk", "orders"}, ...]} as one JSON'
                         " object (the same from a journal and from the server)")
    rk.set_defaults(func=_cmd_risk)

    rp = sub.add_parser("report", help="reports over a journal (best-execution)")
    reports = rp.add_subparsers(dest="report", required=True, metavar="REPORT")
    bx = reports.add_parser(
        "best-execution", help="execution quality of every routed (parent) order",
        description="Replay a journal and report every routed (parent) order: quantity, limit,"
                    " final status, filled quantity, average price, fees, the consolidated"
                    " best bid and offer at arrival, slippage against the arrival mid (bps,"
                    " positive = worse) and the venues used; then a summary (share filled at"
                    " or better than the arrival best price, total fees, fees saved against"
                    " routing every fill to the primary venue). Exit 2, with one line on"
                    " stderr, if the journal or an argument cannot be used.")
    bx.add_argument("journal", metavar="JOURNAL_DIR", help="the journal directory")
    bx.add_argument("--out", metavar="FILE",
                    help="write one row per parent to FILE.csv or FILE.parquet (written to a"
                         " temporary file beside it, renamed on success)")
    bx.add_argument("--json", action="store_true",
                    help='print {"rows": [...], "summary": {...}} as one JSON object')
    bx.set_defaults(func=_cmd_report)
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
