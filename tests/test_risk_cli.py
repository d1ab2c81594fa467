"""`engine risk`: accounts' risk from a journal (a replay) and from a live server (RiskQuery),
the same view from both, and one line on stderr with exit 2 for every input it cannot use."""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from engine.cli import main
from engine.config import default_config
from engine.gateway.client import SyncClient
from engine.gateway.server import Server
from engine.instruments import InstrumentSet
from engine.pipeline import Engine

KEYS = {1: "demo-alice-key", 2: "demo-bob-key", 9: "demo-admin-key"}
AAPL, SPY, BTC = 1, 2, 8


@contextlib.contextmanager
def server_thread(journal: Path | None, **kw: Any) -> Iterator[tuple[Server, int]]:
    """A gateway on 127.0.0.1 (a free port), journaling into ``journal`` (durability write;
    none without one), on its own event loop in a thread, for blocking clients."""
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = Server(default_config(), journal_dir=None if journal is None else str(journal),
                    durability="none" if journal is None else "write", **kw)
    port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(10)
    try:
        yield server, port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def connect(port: int, account: int) -> SyncClient:
    return SyncClient("127.0.0.1", port, account, KEYS[account])


def trade_a_little(port: int) -> None:
    """Fees, fills in two instruments, resting orders on both sides, a limit, a kill switch
    that cancels, and a deposit: every part of the view moves."""
    adm, alice, bob = connect(port, 9), connect(port, 1), connect(port, 2)
    try:
        adm.set_risk("fee", "100", symbol="AAPL")
        adm.set_risk("max_order_qty", "500", account=2, symbol="SPY")
        alice.new_order(1, AAPL, "sell", 10, 15_050)
        alice.new_order(2, AAPL, "sell", 5, 15_200)                 # rests
        alice.new_order(3, BTC, "buy", 5_000, 6_000_000)            # 0.5 BTC @ 60000.00
        alice.reports_until(lambda r: r.cl_ord_id == 3)
        bob.new_order(1, AAPL, "buy", 10, 15_050)
        bob.new_order(2, BTC, "sell", 5_000, 6_000_000)
        bob.new_order(3, SPY, "buy", 2, 49_500)                     # rests, then killed
        bob.reports_until(lambda r: r.cl_ord_id == 3)
        assert adm.kill_switch("reduce_only", 2).cancelled == 1
        adm.set_risk("cash_adjust", "1000.25", account=1, currency="EUR")
        alice.reports_until(lambda r: r.cl_ord_id == 3 and r.status == "filled")
    finally:
        for c in (adm, alice, bob):
            c.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["risk", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("snapshot_every", [0, 4])
def test_journal_and_live_server_show_the_same(tmp_path: Path, capsys,
                                               snapshot_every: int) -> None:
    journal = tmp_path / "journal"
    with server_thread(journal, snapshot_every=snapshot_every) as (server, port):
        trade_a_little(port)
        live = {}
        for fmt in ("--json", None):
            rc, out, err = cli(capsys, "--port", str(port), "--account", "9", "--key", KEYS[9],
                               "--query", "1", "--query", "2", *([fmt] if fmt else []))
            assert (rc, err) == (0, "")
            live[fmt] = out
        rc, out, err = cli(capsys, "--host", "127.0.0.1", "--port", str(port), "--account", "1",
                           "--key", KEYS[1], "--json")
        assert (rc, err) == (0, "")
        own = json.loads(out)
        last_seq = server.engine.last_seq
    if snapshot_every:
        assert list(journal.rglob("snapshot-*.snap")), \
            "the run was meant to leave snapshots"
    got = json.loads(live["--json"])
    # the live answer, checked against numbers worked out by hand
    alice, bob = (e["risk"] for e in got["accounts"])
    assert [e["seq"] for e in got["accounts"]] == [last_seq, last_seq]
    cash = {c["currency"]: c for c in alice["cash"]}
    # +1505.00 for 10 AAPL, -0.1204 fee (as the maker on LIT: the instrument's 100 ppm plus
    # LIT's -20 ppm maker rebate), -30000.00 for 0.5 BTC, +0.60 (LIT's maker rebate, 20 ppm);
    # EUR +1000.25
    assert (cash["USD"]["cash"], cash["EUR"]["cash"]) == ("9971505.479600", "10001000.25")
    aapl = next(p for p in alice["positions"] if p["symbol"] == "AAPL")
    assert (aapl["position"], aapl["avg_price"], aapl["realized"], aapl["fees"],
            aapl["open_sell_qty"]) == ("990", "150.000000", "5.000000", "0.120400", "5")
    btc = next(p for p in alice["positions"] if p["symbol"] == "BTC-USD")
    assert (btc["position"], btc["avg_price"], btc["cost"]) == \
        ("0.5000", "60000.000000", "30000.000000")
    assert alice["open_orders"] == 1 and bob["kill_switch"] == "reduce_only"
    spy = next(p for p in bob["positions"] if p["symbol"] == "SPY")
    assert (spy["max_order_qty"], spy["open_buy_qty"]) == ("500", "0")
    assert got["accounts"][0]["orders"] == [
        {"cl_ord_id": 2, "symbol": "AAPL", "side": "sell", "price": "152.00", "qty": "5",
         "leaves_qty": "5", "cum_qty": "0"}]
    assert got["accounts"][1]["orders"] == []
    assert own == {"accounts": [got["accounts"][0]]}
    # the journal, replayed after the server stopped: the same, in JSON and in text
    rc, out, err = cli(capsys, "--journal", str(journal), "--account", "1", "--account", "2",
                       "--json")
    assert (rc, err) == (0, "")
    assert json.loads(out) == got
    rc, out, err = cli(capsys, "--journal", str(journal), "--account", "1", "--account", "2")
    assert (rc, err) == (0, "")
    assert out == live[None]
    assert out.startswith(f"as of command seq {last_seq}\naccount 1  base USD  kill switch"
                          " active (global active)\n")
    assert "    #2 AAPL sell 5 @ 152.00" in out
    # every account by default, ascending
    rc, out, _ = cli(capsys, "--journal", str(journal), "--json")
    assert rc == 0
    assert [e["risk"]["account"] for e in json.loads(out)["accounts"]] == [1, 2, 9]


def one_line_exit_2(rc: int, out: str, err: str, *pieces: str) -> None:
    assert (rc, out) == (2, "")
    assert err.startswith("engine risk: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for p in pieces:
        assert p in err, (p, err)


def test_bad_journals_and_accounts_exit_2(tmp_path: Path, capsys) -> None:
    rc, out, err = cli(capsys, "--journal", str(tmp_path / "nope"))
    one_line_exit_2(rc, out, err, "no such journal directory")
    (tmp_path / "empty").mkdir()
    rc, out, err = cli(capsys, "--journal", str(tmp_path / "empty"))
    one_line_exit_2(rc, out, err, "not a journal")
    (tmp_path / "file").write_text("x")
    rc, out, err = cli(capsys, "--journal", str(tmp_path / "file"))
    one_line_exit_2(rc, out, err, "not a directory")
    # a journal written without pre-trade risk
    Engine(InstrumentSet.default(), tmp_path / "norisk", durability="write").close()
    rc, out, err = cli(capsys, "--journal", str(tmp_path / "norisk"))
    one_line_exit_2(rc, out, err, "without pre-trade risk")
    # a journal with risk, and an account it does not know
    with server_thread(tmp_path / "j"):
        pass
    rc, out, err = cli(capsys, "--journal", str(tmp_path / "j"), "--account", "77")
    one_line_exit_2(rc, out, err, "account 77 has no risk record", "accounts: 1, 2, 9")
    rc, out, err = cli(capsys, "--journal", str(tmp_path / "j"), "--account", "2")
    assert (rc, err) == (0, "") and out.startswith("as of command seq 0\naccount 2 ")
    rc, out, err = cli(capsys, "--journal", str(tmp_path / "j"), "--query", "2")
    one_line_exit_2(rc, out, err, "--query")


def test_bad_arguments_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("ENGINE_API_KEY", raising=False)
    one_line_exit_2(*cli(capsys), "give --journal DIR")
    one_line_exit_2(*cli(capsys, "--journal", str(tmp_path), "--port", "7001"), "not both")
    one_line_exit_2(*cli(capsys, "--port", "7001", "--key", "k"), "--account N")
    one_line_exit_2(*cli(capsys, "--port", "7001", "--account", "1", "--account", "2",
                         "--key", "k"), "once")
    one_line_exit_2(*cli(capsys, "--port", "7001", "--account", "1"), "no API key")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_cannot_answer_exits_2(capsys) -> None:
    port = free_port()                                      # nobody listens there
    one_line_exit_2(*cli(capsys, "--port", str(port), "--account", "1", "--key", KEYS[1]),
                    f"cannot connect to 127.0.0.1:{port}")
    with server_thread(None) as (_, port):
        one_line_exit_2(*cli(capsys, "--port", str(port), "--account", "1", "--key", "wrong"),
                        "refused: GATEWAY_AUTH_FAILED")
        one_line_exit_2(*cli(capsys, "--port", str(port), "--account", "77", "--key", "x"),
                        "GATEWAY_AUTH_FAILED")
        one_line_exit_2(*cli(capsys, "--port", str(port), "--account", "1", "--key", KEYS[1],
                             "--query", "2"), "account 2: GATEWAY_NOT_AUTHORIZED")
        one_line_exit_2(*cli(capsys, "--port", str(port), "--account", "9", "--key", KEYS[9],
                             "--query", "77"), "account 77: RISK_UNKNOWN_ACCOUNT")
        # a trader's own view works
        rc, out, err = cli(capsys, "--port", str(port), "--account", "2", "--key", KEYS[2])
        assert (rc, err) == (0, "") and "account 2  base USD" in out
    with server_thread(None, risk=None) as (_, port):
        one_line_exit_2(*cli(capsys, "--port", str(port), "--account", "1", "--key", KEYS[1]),
                        "account 1: RISK_DISABLED")
