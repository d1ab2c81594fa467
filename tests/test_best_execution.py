"""`engine report best-execution` (engine/analytics/best_execution.py): a journal written through
the pipeline on three venues with different fees (resting liquidity on each, sweep and
sweep_post parents, a passive fill of a resting child, a parent cancel, a FOK that cannot fill,
a market parent reusing a finished parent's id after a risk fee change), reported row by row
and summed up, every figure worked out by hand below; the CLI's text, JSON, CSV and Parquet;
bad input; a journal without routed orders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.analytics import (
    COLUMN_NAMES,
    BestExecutionReport,
    best_execution,
    read_rows,
    run_best_execution,
)
from engine.analytics.best_execution import fee_units
from engine.cli import main
from engine.config import parse_config
from engine.journal import replay
from engine.pipeline import Engine
from engine.schema import (
    COMMAND_DTYPE,
    CommandType,
    EventType,
    Flags,
    OrdType,
    RiskKind,
    Side,
    TimeInForce,
)

# alice's demo key hash (README); any valid stored hash does
KEY_HASH = ("sha256$26e7f6c9d6e7540b1bf2ea8be6b9e219$"
            "157e6244ce5cb19b18dc6e049caed203cf382916f6ddaf8b35452ffa01211c39")

LIT, ALT, CROSS = 1, 2, 3   # LIT is AAPL's primary venue (the first listing it)


def config_text(risk: bool) -> str:
    """AAPL (0.01 tick, lot 1) on three venues: LIT maker -20 / taker 30 ppm, ALT 0 / 10,
    CROSS 0 / 0. With risk: USD cash units of 0.01 (k = 1), a 5 ppm fee on each side of a
    fill, a 10% band around 150.00; accounts 1..3 may buy and sell."""
    text = """
[[instruments]]
id = 1
symbol = "AAPL"
asset_class = "equity"
tick_size = "0.01"
lot_size = "1"
currency = "USD"
max_qty = "1000000"

[[venues]]
id = 1
name = "LIT"
maker_fee = -20
taker_fee = 30
priority = 0
instruments = ["AAPL"]

[[venues]]
id = 2
name = "ALT"
maker_fee = 0
taker_fee = 10
priority = 1
instruments = ["AAPL"]

[[venues]]
id = 3
name = "CROSS"
maker_fee = 0
taker_fee = 0
priority = 2
instruments = ["AAPL"]
"""
    if risk:
        text += """
[risk]
enabled = true

[[risk.currencies]]
code = "USD"
rate = "1"
decimals = 2

[[risk.instruments]]
symbol = "AAPL"
reference_price = "150.00"
price_band_bps = 1000
fee_ppm = 5
"""
    for a in (1, 2, 3):
        text += f"""
[[accounts]]
id = {a}
name = "trader{a}"
api_key_hash = "{KEY_HASH}"
"""
        if risk:
            text += """base_currency = "USD"
cash = [{ currency = "USD", amount = "10000000" }]
instruments = [
    { symbol = "AAPL", position = "10000", avg_price = "150.00", short_limit = "1000000" },
]
"""
    return text


def clock():
    t = [1_000_000_000]

    def now() -> int:
        t[0] += 1000
        return t[0]
    return now


def command(**fields: int) -> np.ndarray:
    c = np.zeros(1, dtype=COMMAND_DTYPE)
    c["instrument"], c["ord_type"], c["tif"] = 1, OrdType.LIMIT, TimeInForce.GTC
    for k, v in fields.items():
        c[k] = v
    return c


def new(order_id: int, account: int, side: int, price: int, qty: int, venue: int,
        tif: int = TimeInForce.GTC) -> np.ndarray:
    return command(cmd=CommandType.NEW, order_id=order_id, account=account, side=side,
                   price=price, qty=qty, venue=venue, tif=tif)


def route(order_id: int, account: int, side: int, price: int, qty: int, *, tif: int,
          post: bool = False, venue: int = 0, market: bool = False) -> np.ndarray:
    return command(cmd=CommandType.ROUTE, order_id=order_id, account=account, side=side,
                   price=price, qty=qty, tif=tif, venue=venue,
                   flags=Flags.POST_REMAINDER if post else 0,
                   ord_type=OrdType.MARKET if market else OrdType.LIMIT)


B, S = Side.BUY, Side.SELL

# The session. Prices in ticks of 0.01.
RESTING = [
    new(1, 1, S, 15000, 50, LIT),     # asks: 150.00 x 50 on LIT, 150.00 x 30 on ALT,
    new(2, 1, S, 15000, 30, ALT),     #       150.01 x 45 on CROSS, 150.05 x 100 on ALT
    new(3, 1, S, 15001, 45, CROSS),
    new(4, 1, S, 15005, 100, ALT),
    new(5, 1, B, 14998, 20, LIT),     # bids: 149.99 x 10 on CROSS, 149.98 x 20 on LIT
    new(6, 1, B, 14999, 10, CROSS),
]
SESSION = RESTING + [
    # seq 7, parent 100: sweep buy 125 @ 150.01 IOC. Fee-adjusted asks: ALT 15000 x 1000010 <
    # LIT 15000 x 1000030 < CROSS 15001 x 1000000: ALT 30, LIT 50, CROSS 45 @ 150.01
    route(100, 2, B, 15001, 125, tif=TimeInForce.IOC),
    # seq 8, parent 200: sweep_post sell 40 @ 149.98 posting on ALT: CROSS 10 @ 149.99, LIT 20 @
    # 149.98, the other 10 rest on ALT @ 149.98
    route(200, 2, S, 14998, 40, tif=TimeInForce.GTC, post=True, venue=ALT),
    # seq 9: account 3 takes 6 of the resting child (the child is the maker)
    new(7, 3, B, 14998, 6, ALT, tif=TimeInForce.IOC),
    # seq 10: parent 200 cancelled (its child's 4 left)
    command(cmd=CommandType.CANCEL, order_id=200, account=2),
    # seq 11, parent 300: sweep_post buy 20 @ 149.90: nothing to take, rests on LIT (the lowest
    # maker fee) and is still open at the end
    route(300, 3, B, 14990, 20, tif=TimeInForce.GTC, post=True),
    # seq 12, parent 400: FOK sell 1000 @ 149.00: only 20 bid (parent 300's child): cancelled
    route(400, 2, S, 14900, 1000, tif=TimeInForce.FOK),
    # seq 13: a rejected ROUTE (a sweep must be IOC or FOK): not a parent
    route(500, 3, B, 15000, 5, tif=TimeInForce.GTC),
    # seq 14: the risk fee becomes 1000 ppm
    command(cmd=CommandType.SET_RISK, ord_type=RiskKind.FEE, qty=1000),
    # seq 15, parent 400 again (the id is free once the FOK ended): market buy 5, IOC: 5 @
    # 150.05 on ALT
    route(400, 3, B, 0, 5, tif=TimeInForce.IOC, market=True),
]


def write_session(path: Path, risk: bool = True, cmds: list[np.ndarray] | None = None) -> Path:
    eng = Engine.from_config(parse_config(config_text(risk)), journal_dir=path,
                             durability="write", snapshot_every=0, clock_ns=clock())
    try:
        for c in SESSION if cmds is None else cmds:
            eng.process(c.copy())
    finally:
        eng.close()
    return path


@pytest.fixture(scope="module")
def jdir(tmp_path_factory) -> Path:
    return write_session(tmp_path_factory.mktemp("best-ex") / "journal")


@pytest.fixture(scope="module")
def report(jdir) -> BestExecutionReport:
    return best_execution(jdir)


def fee(n: int, ppm: int) -> int:
    """docs/ROUTING.md by hand: a fee rounds up, a rebate toward zero."""
    return -(-n * ppm // 10**6) if ppm >= 0 else -(n * -ppm // 10**6)


F = 5   # the risk fee until seq 14


# -- what each parent paid, and would have paid on LIT (the primary), by hand --------------------
# parent 100: taker fills. ALT 30 @ 15000: n = 450000; LIT 50 @ 15000: n = 750000;
# CROSS 45 @ 15001: n = 675045.
P100_FEES = fee(450000, 10 + F) + fee(750000, 30 + F) + fee(675045, 0 + F)          # 7 + 27 + 4
P100_PRIMARY = fee(450000, 30 + F) + fee(750000, 30 + F) + fee(675045, 30 + F)      # 16 + 27 + 24
# parent 200: taker CROSS 10 @ 14999 (n = 149990), taker LIT 20 @ 14998 (n = 299960), then its
# resting child on ALT is the maker of 6 @ 14998 (n = 89988): ALT's maker fee 0 + F, on LIT the
# maker rebate -20 + F
P200_FEES = fee(149990, 0 + F) + fee(299960, 30 + F) + fee(89988, 0 + F)             # 1 + 11 + 1
P200_PRIMARY = fee(149990, 30 + F) + fee(299960, 30 + F) + fee(89988, -20 + F)       # 6 + 11 - 1
# the second parent 400: taker ALT 5 @ 15005 (n = 75025) at the new risk fee of 1000 ppm
P400_FEES = fee(75025, 10 + 1000)                                                    # 76
P400_PRIMARY = fee(75025, 30 + 1000)                                                 # 78


def test_the_hand_figures() -> None:
    assert (P100_FEES, P100_PRIMARY) == (38, 67)
    assert (P200_FEES, P200_PRIMARY) == (13, 16)
    assert (P400_FEES, P400_PRIMARY) == (76, 78)
    # the module's rounding is the same
    for n, ppm in ((89988, -15), (89988, 5), (450000, 15), (1, -1), (999_999, 1), (0, 30)):
        assert fee_units(n, ppm) == fee(n, ppm)


def test_the_fees_are_those_of_the_parent_events(jdir, report) -> None:
    """The report's fees and fills are the PARENT_FILLs' (and match the PARENT_DONEs)."""
    ev = replay(jdir).events
    done = ev[ev["type"] == EventType.PARENT_DONE]
    by_seq = {p.seq: p for p in report.parents}
    # PARENT_DONE of parent 100 (seq 7), 200 (cancelled at seq 10), 400 (seq 12 and seq 15)
    assert [(int(d["order_id"]), int(d["seq"]), int(d["other_leaves"]), int(d["other_fee"]))
            for d in done] == [(100, 7, 125, P100_FEES), (200, 10, 36, P200_FEES),
                               (400, 12, 0, 0), (400, 15, 5, P400_FEES)]
    assert [by_seq[s].fees for s in (7, 8, 12, 15)] == [P100_FEES, P200_FEES, 0, P400_FEES]


EXPECTED_ROWS = [
    dict(parent_id=100, seq=7, account=2, instrument=1, symbol="AAPL", side="buy",
         strategy="sweep", tif="IOC", quantity="125", limit_price="150.01", status="filled",
         filled_qty="125",
         # (80 x 15000 + 45 x 15001) / 125 = 15000.36 ticks
         avg_price="150.0036", fees="0.38", fee_currency="USD", fees_saved="0.29",
         arrival_bid="149.99", arrival_bid_qty="10", arrival_ask="150.00", arrival_ask_qty="80",
         arrival_mid="149.995",
         # (150.0036 - 149.995) / 149.995 x 10_000 = 0.5733...
         slippage_bps=0.57, at_or_better=False, venues="ALT:30 LIT:50 CROSS:45"),
    dict(parent_id=200, seq=8, account=2, instrument=1, symbol="AAPL", side="sell",
         strategy="sweep_post", tif="GTC", quantity="40", limit_price="149.98",
         status="cancelled", filled_qty="36",
         # (10 x 14999 + 26 x 14998) / 36 = 14998.2777... ticks: rounded to 8 places
         avg_price="149.98277778", fees="0.13", fee_currency="USD", fees_saved="0.03",
         arrival_bid="149.99", arrival_bid_qty="10", arrival_ask="150.05",
         arrival_ask_qty="100", arrival_mid="150.02",
         # (150.02 - 149.982777...) / 150.02 x 10_000 = 2.4811...
         slippage_bps=2.48, at_or_better=False, venues="CROSS:10 LIT:20 ALT:6"),
    dict(parent_id=300, seq=11, account=3, instrument=1, symbol="AAPL", side="buy",
         strategy="sweep_post", tif="GTC", quantity="20", limit_price="149.90", status="open",
         filled_qty="0", avg_price=None, fees="0.00", fee_currency="USD", fees_saved="0.00",
         arrival_bid=None, arrival_bid_qty=None, arrival_ask="150.05", arrival_ask_qty="100",
         arrival_mid=None, slippage_bps=None, at_or_better=None, venues=""),
    dict(parent_id=400, seq=12, account=2, instrument=1, symbol="AAPL", side="sell",
         strategy="sweep", tif="FOK", quantity="1000", limit_price="149.00",
         status="cancelled", filled_qty="0", avg_price=None, fees="0.00", fee_currency="USD",
         fees_saved="0.00", arrival_bid="149.90", arrival_bid_qty="20", arrival_ask="150.05",
         arrival_ask_qty="100", arrival_mid="149.975", slippage_bps=None, at_or_better=None,
         venues=""),
    dict(parent_id=400, seq=15, account=3, instrument=1, symbol="AAPL", side="buy",
         strategy="sweep", tif="IOC", quantity="5", limit_price="market", status="filled",
         filled_qty="5", avg_price="150.05", fees="0.76", fee_currency="USD", fees_saved="0.02",
         arrival_bid="149.90", arrival_bid_qty="20", arrival_ask="150.05",
         arrival_ask_qty="100", arrival_mid="149.975",
         # (150.05 - 149.975) / 149.975 x 10_000 = 5.0008...
         slippage_bps=5.0, at_or_better=True, venues="ALT:5"),
]

EXPECTED_SUMMARY = {
    "parents": 5, "filled": 2, "cancelled": 2, "open": 1,
    "filled_qty": "166",                                  # 125 + 36 + 5
    "at_or_better": 1, "at_or_better_of": 3,              # only the market buy (150.05 <= 150.05)
    "at_or_better_pct": 33.33,
    "fees": {"USD": "1.27"},                              # 38 + 13 + 76 cents
    "fees_saved": {"USD": "0.34"},                        # (67 - 38) + (16 - 13) + (78 - 76)
    "fee_units": "cash", "ignored_fills": 0,
}


def test_every_row_exactly(report) -> None:
    rows = report.rows()
    assert [r["seq"] for r in rows] == [7, 8, 11, 12, 15]     # the rejected ROUTE (13) is not one
    for got, want in zip(rows, EXPECTED_ROWS):
        assert set(got) == set(COLUMN_NAMES)
        assert {k: got[k] for k in want} == want
    assert rows[0]["ts_ns"] == 1_000_000_000 + 7 * 1000       # the ROUTE's stamp


def test_the_summary(report) -> None:
    assert report.summary() == EXPECTED_SUMMARY
    s = EXPECTED_SUMMARY
    assert int(s["fees"]["USD"].replace(".", "")) == P100_FEES + P200_FEES + P400_FEES
    assert int(s["fees_saved"]["USD"].replace(".", "")) == (
        P100_PRIMARY - P100_FEES + P200_PRIMARY - P200_FEES + P400_PRIMARY - P400_FEES)


def test_the_arrival_market_is_the_state_just_before_the_route(jdir, report) -> None:
    for p in report.parents:
        bbo = replay(jdir, stop=p.seq - 1, keep_events=False).core.consolidated_bbo(1)
        for side, got in (("bid", p.bid), ("ask", p.ask)):
            want = bbo[side]
            assert got == (None if want is None else (want[0], sum(q for _, q in want[1])))


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 1000])
def test_batches_do_not_change_the_report(jdir, report, batch) -> None:
    assert best_execution(jdir, batch=batch).as_json() == report.as_json()


# -- the CLI --------------------------------------------------------------------------------------

def cli(capsys, *args: object) -> tuple[int, str, str]:
    rc = main(["report", "best-execution", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_json(jdir, report, capsys) -> None:
    rc, out, err = cli(capsys, jdir, "--json")
    assert (rc, err) == (0, "")
    got = json.loads(out)
    assert got == json.loads(json.dumps(report.as_json()))
    assert got["summary"] == EXPECTED_SUMMARY
    assert [{k: r[k] for k in want} for r, want in zip(got["rows"], EXPECTED_ROWS)] \
        == EXPECTED_ROWS
    assert (got["first_seq"], got["last_seq"], got["commands"]) == (1, 15, 15)


def test_cli_text(jdir, capsys) -> None:
    rc, out, err = cli(capsys, jdir)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"best execution: {jdir}, seq 1..15 (15 commands)"
    assert "risk currency decimals" in lines[1]
    table = lines[lines.index("") + 1:]
    assert table[0].split()[:4] == ["parent", "seq", "acct", "symbol"]
    assert table[1].split() == ["100", "7", "2", "AAPL", "buy", "sweep", "125", "150.01",
                                "filled", "125", "150.0036", "0.38", "0.29", "USD", "149.99",
                                "150.00", "149.995", "0.57", "no", "ALT:30", "LIT:50",
                                "CROSS:45"]
    assert table[3].split() == ["300", "11", "3", "AAPL", "buy", "sweep_post", "20", "149.90",
                                "open", "0", "-", "0.00", "0.00", "USD", "-", "150.05", "-",
                                "-", "-"]
    assert "  parents       5 (2 filled, 2 cancelled, 1 open)" in lines
    assert "  filled qty    166" in lines
    assert any(x.startswith("  at or better  1 of 3 (33.33%") for x in lines)
    assert "  fees          1.27 USD" in lines
    assert any(x.startswith("  fees saved    0.34 USD") for x in lines)


def test_cli_out_csv_and_parquet_are_equal(jdir, report, tmp_path, capsys) -> None:
    tables = {}
    for ext in ("csv", "parquet"):
        path = tmp_path / f"bx.{ext}"
        rc, out, err = cli(capsys, jdir, "--out", path)
        assert (rc, err) == (0, "") and out.startswith("best execution:")
        tables[ext] = read_rows(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bx.csv", "bx.parquet"]  # no .tmp
    assert tables["csv"].equals(tables["parquet"])
    assert tables["parquet"].equals(report.to_arrow())
    assert pq.read_table(tmp_path / "bx.parquet").column_names == list(COLUMN_NAMES)
    assert tables["parquet"].to_pylist() == report.rows()
    # the CSV itself holds the decimals as written, exactly
    text = (tmp_path / "bx.csv").read_text().splitlines()
    assert len(text) == 1 + 5
    assert '"149.98277778"' in text[2] and '"0.13"' in text[2] and ",2.48," in text[2]


# -- bad input ------------------------------------------------------------------------------------

def expect_error(capsys, tmp_path: Path, *args: object) -> str:
    before = set(tmp_path.iterdir())
    rc, out, err = cli(capsys, *args)
    assert rc == 2 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert set(tmp_path.iterdir()) == before           # nothing written
    return err.rstrip("\n")


def test_a_missing_directory(tmp_path, capsys) -> None:
    err = expect_error(capsys, tmp_path, tmp_path / "nothing")
    assert err == f"engine report best-execution: {tmp_path / 'nothing'}: no such journal directory"


def test_a_directory_that_is_not_a_journal(tmp_path, capsys) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"x")
    err = expect_error(capsys, tmp_path, d)
    assert err == f"engine report best-execution: {d}: not a journal (no journal.json)"


def test_bad_output_paths(jdir, tmp_path, capsys) -> None:
    err = expect_error(capsys, tmp_path, jdir, "--out", tmp_path / "bx.txt")
    assert err == (f"engine report best-execution: --out {tmp_path / 'bx.txt'}: unknown"
                   " extension '.txt'; expected .parquet or .csv")
    err = expect_error(capsys, tmp_path, jdir, "--out", tmp_path / "no" / "bx.csv")
    assert err.endswith(f"directory {tmp_path / 'no'} does not exist")
    # checked before the journal is read
    err = expect_error(capsys, tmp_path, tmp_path / "nothing", "--out", tmp_path / "bx")
    assert err.endswith("no extension; expected .parquet or .csv")


# -- no routed orders; no risk --------------------------------------------------------------------

def test_a_journal_without_routed_orders(tmp_path, capsys) -> None:
    unknown = route(9, 2, B, 15000, 10, tif=TimeInForce.IOC)
    unknown["instrument"] = 99                          # rejected: BOOK_UNKNOWN_INSTRUMENT
    d = write_session(tmp_path / "journal",
                      cmds=RESTING + [new(8, 2, B, 15000, 10, LIT), unknown])
    r = run_best_execution(d, out=tmp_path / "empty.parquet")
    assert r.parents == [] and r.commands == 8
    assert r.summary() == {"parents": 0, "filled": 0, "cancelled": 0, "open": 0,
                           "filled_qty": "0", "at_or_better": 0, "at_or_better_of": 0,
                           "at_or_better_pct": None, "fees": {}, "fees_saved": {},
                           "fee_units": "cash", "ignored_fills": 0}
    assert read_rows(tmp_path / "empty.parquet").num_rows == 0
    assert read_rows(tmp_path / "empty.parquet").column_names == list(COLUMN_NAMES)
    rc, out, err = cli(capsys, d)
    assert (rc, err) == (0, "")
    assert out.splitlines()[-1] == ("no routed orders: the journal holds no ROUTE command the"
                                    " core accepted")
    rc, out, err = cli(capsys, d, "--json", "--out", tmp_path / "empty.csv")
    assert (rc, err) == (0, "")
    got = json.loads(out)
    assert got["rows"] == [] and got["summary"]["parents"] == 0
    assert read_rows(tmp_path / "empty.csv").num_rows == 0


def test_a_journal_without_commands(tmp_path, capsys) -> None:
    d = write_session(tmp_path / "journal", cmds=[])
    rc, out, err = cli(capsys, d)
    assert (rc, err) == (0, "")
    assert out.splitlines()[0] == f"best execution: {d} (no commands)"
    assert "no routed orders" in out


def test_without_risk_the_fees_are_raw_units(tmp_path, capsys) -> None:
    """Risk off: k = 1, no risk fee; fees are integer units of price ticks x lots."""
    d = write_session(tmp_path / "journal", risk=False, cmds=RESTING + SESSION[6:7])
    r = best_execution(d)
    (row,) = r.rows()
    paid = fee(450000, 10) + fee(750000, 30) + fee(675045, 0)        # 5 + 23 + 0
    primary = fee(450000, 30) + fee(750000, 30) + fee(675045, 30)    # 14 + 23 + 21
    assert (paid, primary) == (28, 58)
    assert {k: row[k] for k in ("fees", "fee_currency", "fees_saved", "avg_price", "venues")} \
        == {"fees": "28", "fee_currency": "units", "fees_saved": "30", "avg_price": "150.0036",
            "venues": "ALT:30 LIT:50 CROSS:45"}
    s = r.summary()
    assert (s["fees"], s["fees_saved"], s["fee_units"]) == ({"units": "28"}, {"units": "30"},
                                                            "raw")
    rc, out, err = cli(capsys, d)
    assert (rc, err) == (0, "")
    assert out.splitlines()[1] == ("fees: raw integer cash units (the journal ran without risk:"
                                   " no currency decimals)")


def test_a_journal_whose_older_segments_are_gone(tmp_path, capsys) -> None:
    """Replay starts from the oldest usable snapshot; the fill of a parent routed before it
    is counted as ignored, the parents after it are reported as usual."""
    d = tmp_path / "journal"
    eng = Engine.from_config(parse_config(config_text(True)), journal_dir=d, durability="write",
                             snapshot_every=0, clock_ns=clock(), segment_bytes=64 + 4 * 64,
                             retention="delete", keep_snapshots=1)
    try:
        for i, c in enumerate(SESSION):
            eng.process(c.copy())
            if i == 7:      # after seq 8: parent 200's child rests on ALT
                eng.snapshot().result()
    finally:
        eng.close()
    r = best_execution(d)
    # segment 1..4 deleted, 5..8 kept (it was the active one), but no state before seq 5 is left
    assert (r.first_seq, r.snapshot_seq, r.ignored_fills) == (5, 8, 1)   # the fill at seq 9
    assert [row["seq"] for row in r.rows()] == [11, 12, 15]
    assert r.rows()[2] == {**r.rows()[2], **EXPECTED_ROWS[4]}
    rc, out, err = cli(capsys, d)
    assert (rc, err) == (0, "")
    assert out.splitlines()[1].startswith("state: from the snapshot after seq 8")
    assert "  ignored       1 fills of parents routed before the snapshot the replay started" \
           " from" in out
