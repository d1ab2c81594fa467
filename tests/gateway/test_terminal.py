"""`engine client`: command parsing, exact decimal conversion, report/book text, and real
sessions against an in-process gateway on 127.0.0.1."""
from __future__ import annotations

import asyncio
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest

from engine.cli import main
from engine.gateway.protocol import (
    BookSnapshot,
    BookUpdate,
    ConsolidatedBook,
    ExecutionReport,
    InstrumentInfo,
    InstrumentStatus,
    LogonAck,
    MassCancelReport,
    NewOrder,
    Reject,
    Replace,
    ServerLogout,
    Trade,
)
from engine.gateway.terminal import (
    HELP,
    CancelAllCmd,
    CancelCmd,
    Catalog,
    OpenOrder,
    OrderCmd,
    ReplaceCmd,
    SimpleCmd,
    SymbolCmd,
    Terminal,
    UsageError,
    first_cl_ord_id,
    format_avg_price,
    format_book,
    format_book_update,
    format_consolidated,
    format_consolidated_update,
    format_instruments,
    format_logout,
    format_mass_cancel,
    format_orders,
    format_reject,
    format_report,
    format_status,
    format_trade,
    order_message,
    parse_command,
    replace_message,
    run_terminal,
    split_commands,
)
from engine.instruments import InstrumentSet

AAPL, ES, EURUSD, UST, BTC = 1, 3, 5, 6, 8


def infos() -> list[InstrumentInfo]:
    """The instrument list a LogonAck carries for the default config (as the server builds it)."""
    return [InstrumentInfo(id=i.id, symbol=i.symbol, asset_class=i.config.asset_class,
                           tick_size=str(i.tick_size), lot_size=str(i.lot_size),
                           multiplier=str(i.config.multiplier), currency=i.config.currency,
                           min_qty=i.min_lots, max_qty=i.max_lots)
            for i in InstrumentSet.default()]


def ack(next_report_seq: int = 1, resent: int = 0, lost_before: int = 0) -> LogonAck:
    return LogonAck(account=1, role="trader", next_report_seq=next_report_seq, heartbeat_s=5.0,
                    idle_timeout_s=30.0, cancel_on_disconnect=False, instruments=infos(),
                    resent=resent, lost_before=lost_before)


CAT = Catalog(infos())


def parse(line: str):
    return parse_command(line, CAT)


def refused(line: str) -> str:
    with pytest.raises(UsageError) as e:
        parse(line)
    return str(e.value)


def report(**kw) -> ExecutionReport:
    base = dict(report_seq=1, seq=1, ts_ns=0, request="new", cl_ord_id=12, instrument=AAPL,
                side="buy")
    base.update(kw)
    return ExecutionReport(**base)


# -- parsing ---------------------------------------------------------------------------------------

def test_orders_parse_to_exact_ticks_and_lots():
    assert parse("buy AAPL 10 @ 150.25") == OrderCmd("buy", AAPL, 10, 15025)
    assert parse("sell aapl 10 @150.25 ioc") == OrderCmd("sell", AAPL, 10, 15025, "ioc")
    assert parse("BUY AAPL 10 @ 150 FOK") == OrderCmd("buy", AAPL, 10, 15000, "fok")
    assert parse("sell AAPL 7 @ 151.00 post") == OrderCmd("sell", AAPL, 7, 15100, "gtc", True)
    assert parse("buy AAPL 10") == OrderCmd("buy", AAPL, 10, None)            # market
    assert parse("sell AAPL 10 ioc") == OrderCmd("sell", AAPL, 10, None, "ioc")
    assert parse("buy EURUSD 25000 @ 1.08505") == OrderCmd("buy", EURUSD, 25, 108505)
    assert parse("sell UST-10Y 1000000 @ 99.96875") == OrderCmd("sell", UST, 1000, 3199)
    assert parse("buy BTC-USD 0.0001 @ 65000.01") == OrderCmd("buy", BTC, 1, 6500001)
    assert parse("buy ES 2 @ 4500.25") == OrderCmd("buy", ES, 2, 18001)


def test_the_wire_messages_of_commands():
    assert order_message(parse("buy AAPL 10 @ 150.25 post"), 7) == NewOrder(
        cl_ord_id=7, instrument=AAPL, side="buy", qty=10, price=15025, post_only=True)
    assert order_message(parse("sell ES 3 fok"), 8) == NewOrder(
        cl_ord_id=8, instrument=ES, side="sell", qty=3, price=0, ord_type="market", tif="fok")
    orders = {5: OpenOrder(5, EURUSD, "buy", 108500, 25, 0, 25)}
    assert replace_message(parse("replace 5 30000 @ 1.08510"), CAT, orders) == Replace(
        cl_ord_id=5, price=108510, qty=30)


def test_other_commands_parse():
    assert parse("cancel 12") == CancelCmd(12)
    assert parse("cancel #12") == CancelCmd(12)
    assert parse("replace 12 5 @ 150.10") == ReplaceCmd(12, "5", "150.10")
    assert parse("cancel-all") == CancelAllCmd(0, None)
    assert parse("cancel-all AAPL") == CancelAllCmd(AAPL, None)
    assert parse("cancel-all es sell") == CancelAllCmd(ES, "sell")
    assert parse("cancel-all buy") == CancelAllCmd(0, "buy")
    assert parse("book AAPL") == SymbolCmd("book", AAPL)
    assert parse("watch ES") == SymbolCmd("watch", ES)
    assert parse("halt AAPL") == SymbolCmd("halt", AAPL)
    assert parse("resume AAPL") == SymbolCmd("resume", AAPL)
    for word in ("orders", "instruments", "help", "quit"):
        assert parse(f"  {word} ") == SimpleCmd(word)
    assert parse("exit") == SimpleCmd("quit") and parse("?") == SimpleCmd("help")
    assert parse("") is None and parse("   ") is None and parse("# a comment") is None


def test_bad_commands_are_refused_with_the_reason():
    assert refused("buy MSFT 10 @ 1") == (
        "unknown symbol 'MSFT' (known: AAPL, SPY, ES, AAPL261218C00200000, EURUSD, UST-10Y,"
        " XS-CORP-2034, BTC-USD)")
    assert refused("buy AAPL 10 @ 150.001") == (
        "price 150.001 is not a multiple of the tick size 0.01 of AAPL (nearest: 150.00 and"
        " 150.01); prices are never rounded")
    assert refused("buy AAPL 10 @ 150.00999999999999999999999999999999") == (
        "price 150.00999999999999999999999999999999 is not a multiple of the tick size 0.01 of"
        " AAPL (nearest: 150.00 and 150.01); prices are never rounded")
    assert refused("sell ES 1 @ 4500.1") == (
        "price 4500.1 is not a multiple of the tick size 0.25 of ES (nearest: 4500.00 and"
        " 4500.25); prices are never rounded")
    assert refused("buy AAPL ten @ 150") == "quantity 'ten' is not a decimal number"
    assert refused("buy AAPL 0 @ 150") == "quantity 0 must be positive"
    assert refused("buy AAPL -5 @ 150") == "quantity -5 must be positive"
    assert refused("buy AAPL 10 @ 0") == "price 0 must be positive"
    assert refused("buy AAPL 10 @ NaN") == "price 'NaN' is not a finite number"
    assert refused("buy AAPL 10 @") == (
        "buy: missing price after '@' (usage: buy SYMBOL QTY [@ PRICE] [ioc|fok|post])")
    assert refused("buy AAPL @ 150") == (
        "buy: missing quantity (usage: buy SYMBOL QTY [@ PRICE] [ioc|fok|post])")
    assert refused("sell") == (
        "sell: missing symbol (usage: sell SYMBOL QTY [@ PRICE] [ioc|fok|post])")
    assert refused("buy AAPL 10 150") == "buy: a price needs '@' (buy AAPL 10 @ 150)"
    assert refused("buy AAPL 10 @ 150 gtd") == (
        "buy: unexpected 'gtd' (expected ioc, fok or post;"
        " usage: buy SYMBOL QTY [@ PRICE] [ioc|fok|post])")
    assert refused("buy AAPL 10 @ 150 ioc now") == (
        "buy: unexpected 'now' after 'ioc' (usage: buy SYMBOL QTY [@ PRICE] [ioc|fok|post])")
    usage = ("usage: replace ID QTY @ PRICE (the new total quantity, filled part included, and"
             " the new price: both are required)")
    assert refused("replace 12 5") == f"replace: missing '@ PRICE' ({usage})"
    assert refused("replace 12 5 @") == f"replace: expected ID QTY @ PRICE ({usage})"
    assert refused("replace") == f"replace: missing order id ({usage})"
    assert refused("replace x 5 @ 1") == (
        f"bad order id 'x': expected a number from 1 to 4294967295 ({usage})")
    assert refused("replace 12 five @ 1") == "replace: quantity 'five' is not a decimal number"
    assert refused("cancel") == "cancel: expected one order id (usage: cancel ID)"
    assert refused("cancel 0") == (
        "bad order id '0': expected a number from 1 to 4294967295 (usage: cancel ID)")
    assert refused("cancel 4294967296") == (
        "bad order id '4294967296': expected a number from 1 to 4294967295 (usage: cancel ID)")
    assert refused("cancel-all AAPL ES") == (
        "cancel-all: unexpected 'ES' (usage: cancel-all [SYMBOL] [buy|sell])")
    assert refused("book") == "book: expected a symbol (usage: book SYMBOL [venue=VENUE|all])"
    assert refused("halt FOO").startswith("unknown symbol 'FOO' (known: AAPL,")
    assert refused("orders now") == "orders: takes no arguments"
    assert refused("purchase AAPL 10") == "unknown command 'purchase' (type 'help' for the list)"


def test_quantity_off_the_lot_grid_is_refused_not_rounded():
    assert refused("buy AAPL 1.5 @ 150") == (
        "quantity 1.5 is not a multiple of the lot size 1 of AAPL (nearest: 1 and 2);"
        " quantities are never rounded")
    assert refused("buy EURUSD 1500 @ 1.1") == (
        "quantity 1500 is not a multiple of the lot size 1000 of EURUSD (nearest: 1000 and"
        " 2000); quantities are never rounded")


def test_replace_needs_an_order_the_session_knows():
    orders = {5: OpenOrder(5, AAPL, "buy", 15000, 10, 0, 10)}
    with pytest.raises(UsageError, match=r"^replace: no open order #6 in this session's view"):
        replace_message(parse("replace 6 5 @ 150"), CAT, orders)
    with pytest.raises(UsageError, match=r"^price 150.005 is not a multiple of the tick size"):
        replace_message(parse("replace 5 5 @ 150.005"), CAT, orders)


def test_split_commands():
    assert split_commands(["sell", "AAPL", "10", "@", "150.00"]) == ["sell AAPL 10 @ 150.00"]
    assert split_commands(["sell", "AAPL", "10", "@", "150,", "buy", "ES", "1", ";", "orders"]) \
        == ["sell AAPL 10 @ 150", "buy ES 1", "orders"]
    assert split_commands(["book AAPL; orders"]) == ["book AAPL", "orders"]
    assert split_commands([]) == []


def test_first_client_order_id():
    assert first_cl_ord_id(1) == 1 and first_cl_ord_id(0) == 1
    assert first_cl_ord_id(57) == 57
    assert first_cl_ord_id(2**32 - 1) == 2**32 - 1 and first_cl_ord_id(2**32) == 1


# -- formatting ------------------------------------------------------------------------------------

def test_report_lines():
    assert format_report(report(exec_type="new", status="new", price=15000, qty=10,
                                leaves_qty=10), CAT) == "#12 NEW     buy 10 AAPL @ 150.00"
    assert format_report(report(exec_type="new", status="new", price=0, qty=10, leaves_qty=10),
                         CAT) == "#12 NEW     buy 10 AAPL @ market"
    fill = report(exec_type="trade", status="filled", price=15000, qty=10, leaves_qty=0,
                  cum_qty=10, cum_notional=150000, last_price=15000, last_qty=10,
                  liquidity="taker")
    assert format_report(fill, CAT) == (
        "#12 FILLED  buy 10 AAPL @ 150.00 (last 10 @ 150.00, cum 10, leaves 0, avg 150.00)")
    part = report(exec_type="trade", status="partially_filled", cl_ord_id=3, side="sell",
                  instrument=EURUSD, price=0, qty=30, leaves_qty=20, cum_qty=10,
                  cum_notional=1085050, last_price=108505, last_qty=10)
    # the report leaves the limit price out: the tool's view of the order supplies it
    assert format_report(part, CAT) == ("#3 PARTIAL sell 30000 EURUSD (last 10000 @ 1.08505,"
                                        " cum 10000, leaves 20000, avg 1.08505)")
    view = {3: OpenOrder(3, EURUSD, "sell", 108500, 30, 0, 30)}
    assert format_report(part, CAT, view) == (
        "#3 PARTIAL sell 30000 EURUSD @ 1.08500 (last 10000 @ 1.08505, cum 10000,"
        " leaves 20000, avg 1.08505)")
    assert format_report(report(exec_type="cancelled", status="cancelled", price=15000, qty=10,
                                cum_qty=4, reason=2), CAT) == (
        "#12 CANCELLED buy 10 AAPL @ 150.00 (cum 4, cancelled 6: IOC_REMAINDER)")
    assert format_report(report(exec_type="replaced", request="replace", status="new",
                                price=15010, qty=5, leaves_qty=5), CAT) == (
        "#12 REPLACED buy 5 AAPL @ 150.10 (cum 0, leaves 5)")


def test_reject_lines_name_the_reason():
    assert format_report(report(exec_type="rejected", status="rejected", price=15000, qty=10,
                                reason=1016), CAT) == (
        "#12 REJECTED new buy 10 AAPL @ 150.00: BOOK_INSTRUMENT_HALTED"
        " (trading in the instrument is halted)")
    assert format_report(report(exec_type="rejected", request="cancel", cl_ord_id=99,
                                instrument=0, side="", reason=1014), CAT) == (
        "#99 REJECTED cancel: BOOK_UNKNOWN_ORDER (no open order with this id)")
    assert format_report(report(exec_type="rejected", status="rejected", instrument=EURUSD,
                                price=108500, qty=0 + 100000, reason=1010), CAT) == (
        "#12 REJECTED new buy 100000000 EURUSD @ 1.08500: BOOK_QUANTITY_ABOVE_MAX"
        " (the maximum quantity of EURUSD is 100000000)")
    rej = report(exec_type="rejected", request="replace", instrument=0, side="", price=14990,
                 qty=3, reason=1015)
    assert format_report(rej, CAT, {12: OpenOrder(12, AAPL, "buy", 15000, 10, 4, 6)}) == (
        "#12 REJECTED replace to 3 AAPL @ 149.90: BOOK_REPLACE_QTY_NOT_ABOVE_FILLED"
        " (the new total quantity must be above the quantity already filled)")
    assert format_reject(Reject(reason=3008, text="Halt is an admin action",
                                ref_type="Halt")) == (
        "REJECTED Halt: GATEWAY_NOT_AUTHORIZED: Halt is an admin action")
    assert format_reject(Reject(reason=3003, text="Expected `int` >= 1", ref_type="NewOrder",
                                cl_ord_id=4)) == (
        "#4 REJECTED NewOrder: GATEWAY_INVALID_FIELD: Expected `int` >= 1")
    assert format_reject(Reject(reason=9999, text="?")) == "REJECTED: reason 9999: ?"


def test_average_price_is_exact_or_marked():
    assert format_avg_price(CAT, AAPL, 15000 * 3 + 15001, 4) == "150.0025"
    assert format_avg_price(CAT, AAPL, 15000 * 2 + 15001, 3) == "~150.003333"
    assert format_avg_price(CAT, UST, 3199 * 2, 2) == "99.96875"


def test_market_data_and_reply_lines():
    assert format_trade(Trade(instrument=AAPL, md_seq=3, seq=9, ts_ns=0, price=15000, qty=10,
                              aggressor="buy"), CAT) == "AAPL trade 10 @ 150.00 (buy aggressor)"
    assert format_status(InstrumentStatus(instrument=AAPL, md_seq=1, trading_state="halted",
                                          min_qty=1, max_qty=1000000, seq=4), CAT) == (
        "AAPL trading halted (quantity 1 to 1000000)")
    assert format_mass_cancel(MassCancelReport(seq=5, cancelled=1, instrument=AAPL,
                                               account=1), CAT) == (
        "cancel-all (AAPL): 1 order cancelled")
    assert format_mass_cancel(MassCancelReport(seq=5, cancelled=3, side="buy", account=1),
                              CAT) == "cancel-all (every instrument, buy side): 3 orders cancelled"
    assert format_logout(ServerLogout(reason=3012, text="nothing received for 30 s")) == (
        "the server ended the session: GATEWAY_IDLE_TIMEOUT: nothing received for 30 s")
    upd = BookUpdate(instrument=AAPL, md_seq=4, bids=[(15000, 10, 1)], asks=[(15001, 0, 0)])
    assert format_book_update(upd, CAT) == "AAPL book: bid 150.00 10 (1 order), ask 150.01 gone"
    assert format_book_update(upd, CAT, ([(15000, 10, 1)], [(15002, 30, 2)])) == (
        "AAPL book: bid 150.00 10 (1 order), ask 150.01 gone;"
        " best bid 150.00 x 10, ask 150.02 x 30")


def test_book_lines_asks_above_bids():
    assert format_book(CAT, AAPL, [(15000, 5, 1), (14995, 120, 3)],
                       [(15001, 10, 1), (15002, 30, 2)]) == [
        "AAPL",
        "  side   price  qty  orders",
        "  ask   150.02   30       2",
        "  ask   150.01   10       1",
        "  ----  ------  spread 0.01",
        "  bid   150.00    5       1",
        "  bid   149.95  120       3",
    ]
    assert format_book(CAT, EURUSD, [(108500, 25, 1)], []) == [
        "EURUSD",
        "  side    price    qty  orders",
        "  (no asks)",
        "  bid   1.08500  25000       1",
    ]
    assert format_book(CAT, ES, [], []) == ["ES: the book is empty"]


def test_orders_and_instruments_lines():
    assert format_orders({}, CAT) == ["no open orders"]
    assert format_orders({7: OpenOrder(7, ES, "sell", 18001, 3, 1, 2),
                          2: OpenOrder(2, AAPL, "buy", 0, 5, 0, 5)}, CAT) == [
        "open orders (2):",
        "  #2 buy 5 AAPL @ market (cum 0, leaves 5)",
        "  #7 sell 3 ES @ 4500.25 (cum 1, leaves 2)",
    ]
    lines = format_instruments(CAT)
    assert lines[0] == ("id  symbol               class    tick     lot     multiplier  ccy"
                        "  quantity")
    assert lines[1] == ("1   AAPL                 equity   0.01     1       1           USD"
                        "  1..1000000")
    assert lines[8] == ("8   BTC-USD              crypto   0.01     0.0001  1           USD"
                        "  0.0001..1000.0000")
    assert "replace ID QTY @ PRICE" in HELP


# -- the session's state --------------------------------------------------------------------------

def test_resent_reports_rebuild_the_view_silently_and_ids_skip_open_orders():
    t = Terminal(ack(next_report_seq=4, resent=3))
    old = [report(report_seq=1, cl_ord_id=4, exec_type="new", price=15000, qty=10, leaves_qty=10),
           report(report_seq=2, cl_ord_id=5, exec_type="new", price=15000, qty=1, leaves_qty=1),
           report(report_seq=3, cl_ord_id=5, exec_type="cancelled", price=15000, qty=1,
                  reason=1)]
    for r in old:
        assert t.on_message(r) == []
    assert t.resend_done and list(t.orders) == [4]
    assert t.summary() == ["3 earlier reports received; 1 open order (type 'orders')"]
    assert [t.new_cl_ord_id() for _ in range(2)] == [5, 6]     # 4 is open: skipped
    assert t.on_message(old[0]) == []                           # a duplicate: dropped
    t.sent("new", 5, "#5 buy 10 AAPL @ 150.00")
    assert t.describe_pending() == ["no answer yet from the server to: #5 buy 10 AAPL @ 150.00"]
    fill = report(report_seq=4, cl_ord_id=4, exec_type="trade", status="filled", qty=10,
                  cum_qty=10, cum_notional=150000, last_price=15000, last_qty=10)
    assert t.on_message(fill) == [
        "#4 FILLED  buy 10 AAPL @ 150.00 (last 10 @ 150.00, cum 10, leaves 0, avg 150.00)"]
    assert t.orders == {} and not t.rejected and t.expect
    rej = report(report_seq=5, cl_ord_id=5, exec_type="rejected", price=15000, qty=10,
                 reason=1016)
    assert t.on_message(rej)[0].startswith("#5 REJECTED new buy 10 AAPL")
    assert t.rejected and t.expect == []
    assert Terminal(ack(lost_before=40)).summary() == [
        "note: reports up to #40 are no longer kept by the server; 'orders' asks the server"
        " for every open order"]


def test_market_data_prints_only_while_watching_and_status_once():
    t = Terminal(ack())
    trade = Trade(instrument=AAPL, md_seq=1, seq=2, ts_ns=0, price=15000, qty=1, aggressor="sell")
    assert t.on_message(trade) == []
    t.watching = AAPL
    assert t.on_message(trade) == ["AAPL trade 1 @ 150.00 (sell aggressor)"]
    st = InstrumentStatus(instrument=AAPL, md_seq=2, trading_state="open", min_qty=1,
                          max_qty=1000000, seq=7)
    assert t.on_message(st) == ["AAPL trading open (quantity 1 to 1000000)"]
    assert t.on_message(st) == []          # the same change as reply and as market data
    assert t.on_message(BookSnapshot(instrument=AAPL, md_seq=0, depth=10, bids=[], asks=[])) == []


# -- real sessions --------------------------------------------------------------------------------

KEYS = {1: "demo-alice-key", 2: "demo-bob-key", 9: "demo-admin-key"}


def client(capsys, port: int, account: int, *words: str, key: str | None = None,
           wait: str = "0.2") -> tuple[int, list[str], str]:
    """`engine client ... WORDS` in a thread: (exit status, stdout lines, stderr)."""
    argv = ["client", "--port", str(port), "--account", str(account),
            "--key", key or KEYS[account], "--wait", wait, *words]
    with ThreadPoolExecutor(1) as ex:
        rc = ex.submit(main, argv).result(30)
    cap = capsys.readouterr()
    return rc, cap.out.splitlines(), cap.err


def test_a_sell_and_a_buy_trade(port, capsys):
    rc, out, err = client(capsys, port, 1, "sell", "AAPL", "10", "@", "150.00")
    assert (rc, out, err) == (0, ["#1 NEW     sell 10 AAPL @ 150.00"], "")
    rc, out, err = client(capsys, port, 2, "buy", "AAPL", "10", "@", "150.00")
    assert (rc, err) == (0, "")
    assert out == ["#1 NEW     buy 10 AAPL @ 150.00",
                   "#1 FILLED  buy 10 AAPL @ 150.00 (last 10 @ 150.00, cum 10, leaves 0,"
                   " avg 150.00)"]
    # alice again: her fill came while she was away (resent, so her view is current), her
    # ids continue past the ones she used, and cancelling the filled order is a server reject
    rc, out, err = client(capsys, port, 1, "orders,", "sell", "AAPL", "5", "@", "150.10,",
                          "cancel", "1,", "orders")
    assert rc == 1
    assert out == ["no open orders",
                   "#3 NEW     sell 5 AAPL @ 150.10",
                   "#1 REJECTED cancel: BOOK_UNKNOWN_ORDER (no open order with this id)",
                   "open orders (1):",
                   "  #3 sell 5 AAPL @ 150.10 (cum 0, leaves 5)"]
    rc, out, _ = client(capsys, port, 2, "book", "AAPL", ";", "buy", "AAPL", "2", "ioc")
    assert rc == 0
    assert out == ["AAPL",
                   "  side   price  qty  orders",
                   "  ask   150.10    5       1",
                   "  (no bids)",
                   "#3 NEW     buy 2 AAPL @ market",
                   "#3 FILLED  buy 2 AAPL @ market (last 2 @ 150.10, cum 2, leaves 0,"
                   " avg 150.10)"]


def test_refusals_exit_2_and_send_nothing(port, capsys):
    rc, out, err = client(capsys, port, 1, "sell", "AAPL", "10", "@", "150.00", key="wrong")
    assert (rc, out) == (2, [])
    assert err == ("engine client: logon refused: GATEWAY_AUTH_FAILED: unknown account or wrong"
                   " API key\n")
    rc, out, err = client(capsys, port, 1, "sell", "AAPL", "1", "@", "150,", "buy", "AAPL", "1",
                          "@", "150.001")
    assert (rc, out) == (2, [])
    assert err == ("engine client: price 150.001 is not a multiple of the tick size 0.01 of AAPL"
                   " (nearest: 150.00 and 150.01); prices are never rounded\n")
    rc, out, err = client(capsys, port, 1, "replace", "1", "5", "@", "150")
    assert (rc, out) == (2, [])
    assert err.startswith("engine client: replace 1 5 @ 150: replace: no open order #1 in")
    rc, out, _ = client(capsys, port, 1, "book", "AAPL")        # the first sell never went
    assert (rc, out) == (0, ["AAPL: the book is empty"])


def test_admin_halt_and_resume(port, capsys):
    rc, out, _ = client(capsys, port, 1, "halt", "AAPL")
    assert (rc, out) == (1, ["REJECTED Halt: GATEWAY_NOT_AUTHORIZED: Halt is an admin action"])
    rc, out, _ = client(capsys, port, 9, "halt", "AAPL")
    assert (rc, out) == (0, ["AAPL trading halted (quantity 1 to 1000000)"])
    rc, out, _ = client(capsys, port, 1, "buy", "AAPL", "1", "@", "150")
    assert (rc, out) == (1, ["#1 REJECTED new buy 1 AAPL @ 150.00: BOOK_INSTRUMENT_HALTED"
                             " (trading in the instrument is halted)"])
    rc, out, _ = client(capsys, port, 9, "resume", "AAPL")
    assert (rc, out) == (0, ["AAPL trading open (quantity 1 to 1000000)"])
    rc, out, _ = client(capsys, port, 1, "buy", "AAPL", "1", "@", "150", ",", "cancel-all")
    assert (rc, out) == (0, ["#2 NEW     buy 1 AAPL @ 150.00",
                             "#2 CANCELLED buy 1 AAPL @ 150.00 (cum 0, cancelled 1: MASS_CANCEL)",
                             "cancel-all (every instrument): 1 order cancelled"])


def test_interactive_session_reads_lines_and_prints_market_data(port, capsys):
    """Commands from a pipe (no prompt), a watch that prints what another account does."""
    r, w = os.pipe()
    out, err = io.StringIO(), io.StringIO()
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(asyncio.run, run_terminal("127.0.0.1", port, 1, KEYS[1], wait=0.2,
                                                  out=out, err=err, stdin_fd=r))
        os.write(w, b"sell ES 3 @ 5800.25\nsell ES 1 @ 5800.10\nbogus\nwatch ES\n")
        end = time.monotonic() + 10
        while "(no bids)" not in out.getvalue() and time.monotonic() < end:
            time.sleep(0.01)
        rc, lines, _ = client(capsys, port, 2, "buy", "ES", "2", "@", "5800.25")
        assert rc == 0 and lines[1].startswith("#1 FILLED  buy 2 ES @ 5800.25 (last 2 @ 5800.25")
        time.sleep(0.1)
        os.write(w, b"orders\n")
        os.close(w)
        assert fut.result(20) == 0
    os.close(r)
    assert out.getvalue().splitlines() == [
        "logged on to 127.0.0.1:%d as account 1 (trader); 8 instruments;"
        " type 'help' for the commands" % port,
        "#1 NEW     sell 3 ES @ 5800.25",
        "ES",
        "  side    price  qty  orders",
        "  ask   5800.25    3       1",
        "  (no bids)",
        "#1 PARTIAL sell 3 ES @ 5800.25 (last 2 @ 5800.25, cum 2, leaves 1, avg 5800.25)",
        "ES trade 2 @ 5800.25 (buy aggressor)",
        "ES book: ask 5800.25 1 (1 order); best bid -, ask 5800.25 x 1",
        "open orders (1):",
        "  #1 sell 3 ES @ 5800.25 (cum 2, leaves 1)",
    ]
    assert err.getvalue().splitlines() == [
        "error: price 5800.10 is not a multiple of the tick size 0.25 of ES (nearest: 5800.00"
        " and 5800.25); prices are never rounded",
        "error: unknown command 'bogus' (type 'help' for the list)",
    ]


def test_ctrl_c_ends_a_watch_then_the_next_commands_run(port):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "client", "--port", str(port), "--account", "1",
         "--key", KEYS[1], "--wait", "0.1", "watch", "SPY,", "orders"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "SPY: the book is empty\n"
        assert proc.stderr.readline() == "watching SPY: Ctrl-C to stop\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (0, "no open orders\n", "")


def test_no_server_is_exit_2(capsys):
    import socket

    with socket.socket() as s:            # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    rc, out, err = client(capsys, free, 1, "orders")
    assert (rc, out) == (2, [])
    assert err.startswith(f"engine client: cannot connect to 127.0.0.1:{free}: ")


# -- venues: book and watch of a venue's book and of the consolidated book ------------------------

LISTED = {"AAPL": ["LIT", "ALT", "CROSS"], "SPY": ["LIT", "ALT", "CROSS"], "ES": ["LIT"],
          "EURUSD": ["LIT"], "BTC-USD": ["LIT"]}       # the default config's venues
VCAT = Catalog([msgspec.structs.replace(i, venues=LISTED.get(i.symbol, []))
                for i in infos()], ["LIT", "ALT", "CROSS"])


def test_book_and_watch_parse_a_venue_or_all():
    p = lambda line: parse_command(line, VCAT)  # noqa: E731
    assert p("book AAPL") == SymbolCmd("book", AAPL)
    assert p("book AAPL venue=alt") == SymbolCmd("book", AAPL, "ALT")
    assert p("watch aapl VENUE=LIT") == SymbolCmd("watch", AAPL, "LIT")
    assert p("book AAPL all") == p("book AAPL consolidated") == SymbolCmd("book", AAPL, None, True)
    assert p("watch ES ALL") == SymbolCmd("watch", ES, None, True)
    usage = "usage: book SYMBOL [venue=VENUE|all]"
    for line, why in [
            ("book AAPL venue=NOPE", "unknown venue 'NOPE' (venues: LIT, ALT, CROSS)"),
            ("book AAPL venue=SMART", "unknown venue 'SMART' (venues: LIT, ALT, CROSS)"),
            ("book AAPL venue=", f"book: venue= needs a venue's name ({usage})"),
            ("book AAPL LIT", f"book: unexpected 'LIT' (expected venue=VENUE or all; {usage})"),
            ("book AAPL all now", f"book: unexpected 'now' after 'all' ({usage})"),
            ("book ES venue=ALT", "book: ES is not listed on ALT (its venues: LIT)"),
            ("watch UST-10Y all", "watch: UST-10Y is listed on no venue: it has one book"
                                  " (watch UST-10Y)"),
            ("book UST-10Y venue=LIT", "book: UST-10Y is listed on no venue: it has one book"
                                       " (book UST-10Y)")]:
        with pytest.raises(UsageError) as e:
            p(line)
        assert str(e.value) == why
    # a server without venues: one book per instrument
    assert refused("book AAPL all") == (
        "book: AAPL is listed on no venue: it has one book (book AAPL)")
    assert refused("book AAPL venue=LIT") == (
        "unknown venue 'LIT' (the server has no venues: book AAPL shows the only book)")
    assert "book SYMBOL [venue=VENUE|all]" in HELP and "watch SYMBOL [venue=VENUE|all]" in HELP


def test_venue_and_consolidated_book_lines():
    assert format_book(VCAT, AAPL, [(14999, 30, 1)], [(15001, 100, 2)], venue="ALT") == [
        "AAPL on ALT",
        "  side   price  qty  orders",
        "  ask   150.01  100       2",
        "  ----  ------  spread 0.02",
        "  bid   149.99   30       1",
    ]
    assert format_book(VCAT, AAPL, [], [], venue="CROSS") == ["AAPL on CROSS: the book is empty"]
    book = ConsolidatedBook(instrument=AAPL, md_seq=3, depth=10,
                            bids=[(15000, 20, [("LIT", 20)]), (14999, 1030, [("ALT", 30),
                                                                              ("CROSS", 1000)])],
                            asks=[(15001, 200, [("LIT", 100), ("ALT", 100)])])
    assert format_consolidated(VCAT, book) == [
        "AAPL on all venues",
        "  side   price   qty  venues",
        "  ask   150.01   200  LIT 100  ALT 100",
        "  ----  ------  spread 0.01",
        "  bid   150.00    20  LIT 20",
        "  bid   149.99  1030  ALT 30  CROSS 1000",
    ]
    # apart books: the consolidated sides may lock or cross
    crossed = msgspec.structs.replace(book, asks=[(14999, 5, [("CROSS", 5)])], bids=[
        (15000, 20, [("LIT", 20)])])
    assert format_consolidated(VCAT, crossed)[3] == "  ----  ------  spread -0.01 (crossed)"
    locked = msgspec.structs.replace(crossed, asks=[(15000, 5, [("CROSS", 5)])])
    assert format_consolidated(VCAT, locked)[3] == "  ----  ------  spread 0.00 (locked)"
    assert format_consolidated(VCAT, msgspec.structs.replace(book, bids=[]))[-1] == "  (no bids)"
    assert format_consolidated(VCAT, msgspec.structs.replace(book, bids=[], asks=[])) == [
        "AAPL on all venues: the book is empty"]
    later = msgspec.structs.replace(book, md_seq=4, bids=book.bids[:1],
                                    asks=[(15001, 170, [("LIT", 100), ("ALT", 70)])])
    assert format_consolidated_update(later, VCAT, book) == (
        "AAPL on all venues: bid 149.99 gone, ask 150.01 170 (LIT 100, ALT 70);"
        " best bid 150.00 x 20, ask 150.01 x 170")
    assert format_consolidated_update(later, VCAT, later) == (
        "AAPL on all venues: no change; best bid 150.00 x 20, ask 150.01 x 170")
    # a venue subscription's messages name the venue; the primary book's are as before
    assert format_trade(Trade(instrument=AAPL, md_seq=3, seq=9, ts_ns=0, price=15001, qty=30,
                              aggressor="buy", venue="ALT"), VCAT) == (
        "AAPL trade 30 @ 150.01 on ALT (buy aggressor)")
    upd = BookUpdate(instrument=AAPL, md_seq=4, bids=[], asks=[(15001, 70, 1)], venue="ALT")
    assert format_book_update(upd, VCAT, ([], [(15001, 70, 1)])) == (
        "AAPL book on ALT: ask 150.01 70 (1 order); best bid -, ask 150.01 x 70")


def test_watch_follows_only_the_view_watched():
    t = Terminal(ack())
    trade = lambda venue: Trade(instrument=AAPL, md_seq=1, seq=2, ts_ns=0,  # noqa: E731
                                price=15000, qty=1, aggressor="sell", venue=venue)
    t.watching = AAPL
    assert [t.watched(trade(v)) for v in ("", "LIT", "ALT")] == [True, False, False]
    t.watch_venue = "ALT"
    assert [t.watched(trade(v)) for v in ("", "LIT", "ALT")] == [False, False, True]
    assert t.on_message(trade("ALT")) == ["AAPL trade 1 @ 150.00 on ALT (sell aggressor)"]
    t.watch_venue, t.watch_all = "", True          # every venue's book's trades, once each
    assert [t.watched(trade(v)) for v in ("", "LIT", "ALT")] == [False, True, True]


def _rest_on_three_venues(capsys, port: int) -> None:
    rc, out, err = client(capsys, port, 1, "sell AAPL 100 @ 150.01 venue=LIT,"
                          " sell AAPL 100 @ 150.01 venue=ALT, sell AAPL 50 @ 150.02 venue=CROSS,"
                          " buy AAPL 30 @ 149.99 venue=ALT, buy AAPL 20 @ 150.00")
    assert (rc, err) == (0, "")
    assert out == ["#1 NEW     sell 100 AAPL @ 150.01",             # LIT: AAPL's primary venue
                   "#2 NEW     sell 100 AAPL @ 150.01 on ALT",
                   "#3 NEW     sell 50 AAPL @ 150.02 on CROSS",
                   "#4 NEW     buy 30 AAPL @ 149.99 on ALT",
                   "#5 NEW     buy 20 AAPL @ 150.00"]


def test_book_of_the_primary_a_venue_and_all_venues(port, capsys):
    _rest_on_three_venues(capsys, port)
    rc, out, err = client(capsys, port, 2, "book AAPL; book AAPL venue=alt; book AAPL all;"
                          " book SPY all")
    assert (rc, err) == (0, "")
    assert out == ["AAPL",                                   # the primary (LIT) book, as before
                   "  side   price  qty  orders",
                   "  ask   150.01  100       1",
                   "  ----  ------  spread 0.01",
                   "  bid   150.00   20       1",
                   "AAPL on ALT",
                   "  side   price  qty  orders",
                   "  ask   150.01  100       1",
                   "  ----  ------  spread 0.02",
                   "  bid   149.99   30       1",
                   "AAPL on all venues",
                   "  side   price  qty  venues",
                   "  ask   150.02   50  CROSS 50",
                   "  ask   150.01  200  LIT 100  ALT 100",
                   "  ----  ------  spread 0.01",
                   "  bid   150.00   20  LIT 20",
                   "  bid   149.99   30  ALT 30",
                   "SPY on all venues: the book is empty"]
    rc, out, err = client(capsys, port, 2, "book AAPL; book AAPL venue=NOPE")
    assert (rc, out) == (2, [])                              # refused: nothing sent
    assert err == "engine client: unknown venue 'NOPE' (venues: LIT, ALT, CROSS)\n"
    rc, out, err = client(capsys, port, 2, "book UST-10Y all")
    assert (rc, out) == (2, [])
    assert err == ("engine client: book: UST-10Y is listed on no venue: it has one book"
                   " (book UST-10Y)\n")


def test_watch_all_venues_then_one_venue(port, capsys):
    """A live consolidated view with every venue's trades, then ALT's book alone."""
    _rest_on_three_venues(capsys, port)
    r, w = os.pipe()
    out, err = io.StringIO(), io.StringIO()

    def until(text: str) -> None:
        end = time.monotonic() + 10
        while text not in out.getvalue() and time.monotonic() < end:
            time.sleep(0.01)
        assert text in out.getvalue(), (out.getvalue(), err.getvalue())

    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(asyncio.run, run_terminal("127.0.0.1", port, 9, KEYS[9], wait=0.2,
                                                  out=out, err=err, stdin_fd=r))
        try:
            os.write(w, b"watch AAPL all\n")
            until("  bid   149.99   30  ALT 30\n")
            rc, lines, _ = client(capsys, port, 2, "buy AAPL 30 @ 150.01 venue=ALT")
            assert rc == 0 and lines[1].startswith("#1 FILLED  buy 30 AAPL @ 150.01 (last 30")
            until("best bid 150.00 x 20, ask 150.01 x 170\n")
            os.write(w, b"watch AAPL venue=ALT\n")
            until("  bid   149.99   30       1\n")
            rc, lines, _ = client(capsys, port, 2, "sell AAPL 10 @ 149.99 venue=ALT")
            assert rc == 0 and lines[1].startswith("#3 FILLED  sell 10 AAPL @ 149.99 (last 10")
            until("best bid 149.99 x 20, ask 150.01 x 70\n")
        finally:
            os.close(w)                    # end of input: the session logs out, even on failure
        assert fut.result(20) == 0
    os.close(r)
    assert out.getvalue().splitlines()[1:] == [
        "AAPL on all venues",
        "  side   price  qty  venues",
        "  ask   150.02   50  CROSS 50",
        "  ask   150.01  200  LIT 100  ALT 100",
        "  ----  ------  spread 0.01",
        "  bid   150.00   20  LIT 20",
        "  bid   149.99   30  ALT 30",
        "AAPL trade 30 @ 150.01 on ALT (buy aggressor)",
        "AAPL on all venues: ask 150.01 170 (LIT 100, ALT 70);"
        " best bid 150.00 x 20, ask 150.01 x 170",
        "AAPL on ALT",
        "  side   price  qty  orders",
        "  ask   150.01   70       1",
        "  ----  ------  spread 0.02",
        "  bid   149.99   30       1",
        "AAPL trade 10 @ 149.99 on ALT (sell aggressor)",
        "AAPL book on ALT: bid 149.99 20 (1 order); best bid 149.99 x 20, ask 150.01 x 70",
    ]
    assert err.getvalue() == ""
