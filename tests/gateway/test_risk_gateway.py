"""Risk through the gateway (docs/PROTOCOL.md, "Risk"): SetRisk, KillSwitch, Restrict and
RiskQuery end to end on a real server, with the default config's funded demo accounts (risk on,
AAPL referenced at 150.00 with a 10% band: 135.00 .. 165.00)."""
from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from engine.gateway._reports import FastReportBuilder
from engine.gateway.client import Client, ClientError
from engine.gateway.protocol import (
    HEADER,
    AccountRisk,
    KillSwitchMode,
    RiskKindName,
    RiskReport,
    RiskUpdate,
    decode_server,
)
from engine.gateway.reports import ReportBuilder
from engine.gateway.terminal import (
    Catalog,
    KillCmd,
    RestrictCmd,
    RiskCmd,
    SetRiskCmd,
    UsageError,
    format_risk_update,
    parse_command,
    run_terminal,
)
from engine.instruments import InstrumentSet
from engine.risk.report import CashLine, PositionLine, account_risk
from engine.schema import (
    EVENT_DTYPE,
    UNLIMITED,
    CancelCause,
    CommandType,
    EventType,
    KillSwitch,
    Reason,
    RiskKind,
)

from .conftest import AAPL, ADMIN, ALICE, BOB, logon, run, serving, settle

SPY, EURUSD, BTC = 2, 5, 8
USD, EUR = 0, 1
A_ALICE, A_BOB = 0, 1              # rows of the risk tables' accounts (1, 2, 9)
N_INST, N_CCY = 8, 2
DOCS = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


# -- helpers ---------------------------------------------------------------------------------------

def raw(c: Client, msg: dict[str, Any]) -> None:
    """Any map as a frame: for messages the typed Structs would not let us build."""
    body = msgspec.msgpack.encode(msg)
    c.send_raw(HEADER.pack(len(body)) + body)


async def digest(adm: Client) -> tuple[str, int]:
    s = await adm.status()
    return s.digest, s.last_seq


def tables(server: Any) -> dict[str, np.ndarray]:
    return server.engine.core.risk_state()


def pos(server: Any, row: int, inst: int) -> np.void:
    return tables(server)["positions"][row * N_INST + inst - 1]


def cash(server: Any, row: int, ccy: int) -> np.void:
    return tables(server)["cash"][row * N_CCY + ccy]


async def expect_reject(c: Client, reason: int, ref_type: str) -> str:
    rej = await c.next_reject()
    assert (rej.reason, rej.ref_type) == (reason, ref_type), rej
    return rej.text


# -- the vocabulary --------------------------------------------------------------------------------

def test_the_wire_names_are_the_enums_names() -> None:
    assert typing.get_args(RiskKindName) == tuple(k.name.lower() for k in RiskKind)
    assert typing.get_args(KillSwitchMode) == tuple(m.name.lower() for m in KillSwitch)


def test_protocol_md_documents_every_risk_field() -> None:
    text = DOCS.read_text()
    for struct in (AccountRisk, CashLine, PositionLine, RiskUpdate, RiskReport):
        for field in msgspec.structs.fields(struct):
            assert f"`{field.name}`" in text, (struct.__name__, field.name)
    for name in ("SetRisk", "KillSwitch", "Restrict", "RiskQuery", "RiskUpdate", "RiskReport",
                 *typing.get_args(RiskKindName)):
        assert f"`{name}`" in text, name
    for r in Reason:
        if 2001 <= r <= 2017:
            assert f"`{r.name}`" in text, r.name


# -- SetRisk ---------------------------------------------------------------------------------------

# (message fields, the RiskUpdate's echo, where the core holds the value, the value there)
VALID = [
    (dict(kind="max_order_qty", value="0.0005", account=2, symbol="BTC-USD"),
     dict(account=2, symbol="BTC-USD", value="0.0005"),
     lambda s: pos(s, A_BOB, BTC)["max_order_qty"], 5),
    (dict(kind="max_order_qty", value="unlimited", account=1, symbol="AAPL"),
     dict(account=1, symbol="AAPL", value="unlimited"),
     lambda s: pos(s, A_ALICE, AAPL)["max_order_qty"], UNLIMITED),
    (dict(kind="max_order_notional", value="2500.25", account=1),
     dict(account=1, symbol="", value="2500.250000"),
     lambda s: tables(s)["positions"][:N_INST]["max_order_notional"].tolist(),
     [2_500_250_000] * N_INST),
    (dict(kind="position_limit", value="3000", account=1, symbol="EURUSD"),
     dict(account=1, symbol="EURUSD", value="3000"),
     lambda s: pos(s, A_ALICE, EURUSD)["position_limit"], 3),
    (dict(kind="short_limit", value="0", account=2),
     dict(account=2, symbol="", value="0"),
     lambda s: tables(s)["positions"][N_INST:2 * N_INST]["short_limit"].tolist(), [0] * N_INST),
    (dict(kind="max_open_orders", value="7", account=1), dict(account=1, value="7"),
     lambda s: tables(s)["accounts"][A_ALICE]["max_open_orders"], 7),
    (dict(kind="rate", value="50", account=1, burst=80), dict(account=1, value="50", burst=80),
     lambda s: tuple(tables(s)["accounts"][A_ALICE][["rate_per_s", "rate_burst"]].tolist()),
     (50, 80)),
    (dict(kind="rate", value="0", account=2), dict(account=2, value="0", burst=1),
     lambda s: tuple(tables(s)["accounts"][A_BOB][["rate_per_s", "rate_burst"]].tolist()),
     (0, 1)),
    (dict(kind="credit", value="1234.56", account=2, currency="EUR"),
     dict(account=2, currency="EUR", value="1234.56"),
     lambda s: cash(s, A_BOB, EUR)["credit"], 123_456),
    (dict(kind="cash_adjust", value="-100.5", account=1, currency="USD"),
     dict(account=1, currency="USD", value="-100.500000"),
     lambda s: cash(s, A_ALICE, USD)["cash"], 10_000_000_000_000 - 100_500_000),
    (dict(kind="price_band", value="250", symbol="AAPL"), dict(symbol="AAPL", value="250"),
     lambda s: tables(s)["instruments"][AAPL - 1]["band_bps"], 250),
    (dict(kind="reference_price", value="149.5", symbol="AAPL"),
     dict(symbol="AAPL", value="149.50"),
     lambda s: tables(s)["instruments"][AAPL - 1]["ref_price"], 14_950),
    (dict(kind="fee", value="75", symbol="SPY"), dict(symbol="SPY", value="75"),
     lambda s: tables(s)["instruments"][SPY - 1]["fee_ppm"], 75),
    (dict(kind="fx_rate", value="1.0825", currency="EUR"), dict(currency="EUR", value="1.0825"),
     lambda s: tables(s)["currencies"][EUR]["fx"], 10_825_000_000_000_000),
]


@pytest.mark.parametrize("fields, echo, where, expected", VALID,
                         ids=[f"{v[0]['kind']}-{v[0]['value']}" for v in VALID])
def test_set_risk_converts_exactly_and_echoes_what_was_applied(fields, echo, where,
                                                               expected) -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            u = await adm.set_risk(**fields)
            assert isinstance(u, RiskUpdate)
            assert (u.request, u.kind, u.seq) == ("set_risk", fields["kind"],
                                                  server.engine.last_seq)
            for k, v in echo.items():
                assert getattr(u, k) == v, k
            got = where(server)
            assert (got.tolist() if isinstance(got, np.generic) else got) == expected
            await adm.close()
    run(body)


def test_an_order_beyond_a_limit_set_via_set_risk_is_rejected_with_the_risk_code() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            await adm.set_risk("max_order_qty", 100, account=1, symbol="AAPL")
            await a.new_order(1, AAPL, "buy", 101, 15_000)
            r = await a.next_report()
            assert (r.exec_type, r.status, r.cl_ord_id, r.qty, r.reason) == \
                ("rejected", "rejected", 1, 101, Reason.RISK_MAX_ORDER_QTY)
            await a.new_order(2, AAPL, "buy", 100, 15_000)
            assert (await a.next_report()).exec_type == "new"
            # a replace past the limit: the same code, the order unchanged
            await a.replace(2, 15_000, 150)
            r = await a.next_report()
            assert (r.exec_type, r.request, r.reason) == \
                ("rejected", "replace", Reason.RISK_MAX_ORDER_QTY)
            await adm.close()
            await a.close()
    run(body)


@pytest.mark.parametrize("who, side, qty, price, reason", [
    (ALICE, "buy", 1, 17_000, Reason.RISK_PRICE_BAND),         # above 165.00
    (ALICE, "sell", 1, 13_000, Reason.RISK_PRICE_BAND),        # below 135.00
    (ADMIN, "buy", 1, 15_000, Reason.RISK_INSUFFICIENT_CASH),  # ops has no cash
    (ADMIN, "sell", 1, 15_000, Reason.RISK_INSUFFICIENT_POSITION),
])
def test_orders_rejected_by_risk_carry_its_code(who, side, qty, price, reason) -> None:
    async def body() -> None:
        async with serving() as (server, port):
            c = await logon(port, who)
            await c.new_order(3, AAPL, side, qty, price)
            r = await c.next_report()
            assert (r.exec_type, r.status, r.reason, r.price) == \
                ("rejected", "rejected", reason, price)
            await c.close()
    run(body)


BAD_SET_RISK = [
    # (the message, the reason, a piece of the text)
    (dict(kind="max_qty", value="1", account=1), Reason.GATEWAY_INVALID_FIELD, "$.kind"),
    (dict(value="1", account=1), Reason.GATEWAY_INVALID_FIELD, "kind"),
    (dict(kind="max_order_qty", account=1, symbol="AAPL"), Reason.GATEWAY_INVALID_FIELD, "value"),
    (dict(kind="max_order_qty", value=1.5, account=1, symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "$.value"),
    (dict(kind="max_order_qty", value=100, account=1, symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "Expected `str`"),
    (dict(kind="max_order_qty", value="1", account=1, symbol="AAPL", extra=1),
     Reason.GATEWAY_INVALID_FIELD, "extra"),
    (dict(kind="max_order_qty", value="10", account=1, symbol="NOPE"),
     Reason.GATEWAY_UNKNOWN_INSTRUMENT, "unknown symbol 'NOPE'"),
    (dict(kind="max_order_qty", value="10", account=1, symbol="aapl"),
     Reason.GATEWAY_UNKNOWN_INSTRUMENT, "unknown symbol"),
    (dict(kind="credit", value="10", account=1, currency="XXX"),
     Reason.GATEWAY_INVALID_FIELD, "unknown currency 'XXX'"),
    (dict(kind="fx_rate", value="1.1", currency="GBP"), Reason.GATEWAY_INVALID_FIELD,
     "unknown currency"),
    (dict(kind="max_order_qty", value="1.5", account=1, symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "not a multiple of the lot size 1 of AAPL"),
    (dict(kind="position_limit", value="1500", account=1, symbol="EURUSD"),
     Reason.GATEWAY_INVALID_FIELD, "lot size 1000"),
    (dict(kind="reference_price", value="150.001", symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "tick size 0.01"),
    (dict(kind="credit", value="0.001", account=1, currency="EUR"),
     Reason.GATEWAY_INVALID_FIELD, "cash units of EUR"),
    (dict(kind="max_order_notional", value="0.0000001", account=1),
     Reason.GATEWAY_INVALID_FIELD, "cash units of USD"),
    (dict(kind="fx_rate", value="1.00000000000000001", currency="EUR"),
     Reason.GATEWAY_INVALID_FIELD, "$.value"),
    (dict(kind="max_order_qty", value="-1", account=1, symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "must be >= 0"),
    (dict(kind="max_open_orders", value="-1", account=1), Reason.GATEWAY_INVALID_FIELD, "0.."),
    (dict(kind="credit", value="-5", account=1, currency="USD"),
     Reason.GATEWAY_INVALID_FIELD, "must be >= 0"),
    (dict(kind="fx_rate", value="0", currency="EUR"), Reason.GATEWAY_INVALID_FIELD, "> 0"),
    (dict(kind="price_band", value="1000001", symbol="AAPL"), Reason.GATEWAY_INVALID_FIELD,
     "0..1000000"),
    (dict(kind="rate", value="1000000001", account=1), Reason.GATEWAY_INVALID_FIELD,
     "0..1000000000"),
    (dict(kind="rate", value="5", account=1, burst=0), Reason.GATEWAY_INVALID_FIELD, "$.burst"),
    (dict(kind="fee", value="1.5", symbol="AAPL"), Reason.GATEWAY_INVALID_FIELD, "whole number"),
    (dict(kind="max_open_orders", value="abc", account=1), Reason.GATEWAY_INVALID_FIELD,
     "not a decimal number"),
    (dict(kind="max_open_orders", value="NaN", account=1), Reason.GATEWAY_INVALID_FIELD,
     "not a finite number"),
    (dict(kind="max_open_orders", value="", account=1), Reason.GATEWAY_INVALID_FIELD, "$.value"),
    (dict(kind="credit", value="unlimited", account=1, currency="USD"),
     Reason.GATEWAY_INVALID_FIELD, "cannot be 'unlimited'"),
    (dict(kind="max_order_qty", value="10", account=1), Reason.GATEWAY_INVALID_FIELD,
     "name a symbol"),
    (dict(kind="cash_adjust", value="0", account=1, currency="USD"),
     Reason.GATEWAY_INVALID_FIELD, "must not be 0"),
    (dict(kind="max_order_qty", value="10", symbol="AAPL"), Reason.GATEWAY_INVALID_FIELD,
     "needs an account"),
    (dict(kind="price_band", value="10", account=1, symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "not an account"),
    (dict(kind="price_band", value="10"), Reason.GATEWAY_INVALID_FIELD, "needs a symbol"),
    (dict(kind="credit", value="10", account=1), Reason.GATEWAY_INVALID_FIELD, "needs a currency"),
    (dict(kind="max_open_orders", value="10", account=1, symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "takes no symbol"),
    (dict(kind="max_order_qty", value="10", account=1, symbol="AAPL", currency="USD"),
     Reason.GATEWAY_INVALID_FIELD, "takes no currency"),
    (dict(kind="fee", value="10", symbol="AAPL", burst=3), Reason.GATEWAY_INVALID_FIELD,
     "takes no burst"),
    (dict(kind="max_order_qty", value="10", account=77, symbol="AAPL"),
     Reason.RISK_UNKNOWN_ACCOUNT, "account 77 has no risk record"),
    (dict(kind="max_order_qty", value="10", account=-1, symbol="AAPL"),
     Reason.GATEWAY_INVALID_FIELD, "$.account"),
]


def test_bad_set_risk_is_rejected_and_changes_nothing() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            before = await digest(adm)
            tables_before = {k: v.tobytes() for k, v in tables(server).items()}
            for msg, reason, text in BAD_SET_RISK:
                raw(adm, {"type": "SetRisk", **msg})
                got = await expect_reject(adm, reason, "SetRisk")
                assert text in got, (msg, got)
            # nothing reached the engine: no command sequenced, no table changed
            assert await digest(adm) == before
            assert {k: v.tobytes() for k, v in tables(server).items()} == tables_before
            await adm.close()
    run(body)


def test_a_value_the_core_refuses_is_a_reject_with_its_risk_code() -> None:
    """cash_adjust past the int64 range of the balance: only the core knows the balance, so the
    command is journaled and refused with RISK_INVALID_VALUE; the state does not change."""
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            dig, seq = await digest(adm)
            with pytest.raises(ClientError) as e:
                await adm.set_risk("cash_adjust", "9223372036854", account=1, currency="USD")
            assert e.value.reason == Reason.RISK_INVALID_VALUE
            assert "RISK_INVALID_VALUE" in str(e.value)
            assert await digest(adm) == (dig, seq + 1)
            assert cash(server, A_ALICE, USD)["cash"] == 10_000_000_000_000
            await adm.close()
    run(body)


# -- rights ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("msg", [
    {"type": "SetRisk", "kind": "max_order_qty", "value": "1000000", "account": 1,
     "symbol": "AAPL"},
    {"type": "KillSwitch", "mode": "active", "account": 1},
    {"type": "KillSwitch", "mode": "killed", "all_accounts": True},
    {"type": "Restrict", "symbol": "AAPL", "restricted": False, "account": 1},
    {"type": "RiskQuery", "account": 2},
], ids=lambda m: m["type"])
def test_a_trader_cannot_change_risk_nor_see_another_account(msg) -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            before = await digest(adm)
            raw(a, msg)
            text = await expect_reject(a, Reason.GATEWAY_NOT_AUTHORIZED, msg["type"])
            assert "admin" in text
            assert await digest(adm) == before
            # her own account she may see, by number or by default
            for acct in (1, None):
                rep = await a.risk(acct)
                assert rep.risk.account == 1
            await adm.close()
            await a.close()
    run(body)


def test_risk_messages_with_risk_off_get_risk_disabled() -> None:
    async def body() -> None:
        async with serving(risk=None) as (server, port):
            assert server.risk is None and not server.engine.core.risk_enabled
            adm = await logon(port, ADMIN)
            before = await digest(adm)
            for call, ref in ((adm.risk(1), "RiskQuery"),
                              (adm.set_risk("fee", "1", symbol="AAPL"), "SetRisk"),
                              (adm.kill_switch("killed", all_accounts=True), "KillSwitch"),
                              (adm.restrict("AAPL", account=1), "Restrict")):
                with pytest.raises(ClientError) as e:
                    await call
                assert e.value.reason == Reason.RISK_DISABLED, ref
                assert str(e.value).startswith(f"{ref} rejected: ")
            assert await digest(adm) == before
            await adm.close()
    run(body)


# -- KillSwitch ------------------------------------------------------------------------------------

def test_a_kill_switch_cancels_the_accounts_resting_orders_and_they_hear_of_it() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await a.new_order(1, AAPL, "buy", 10, 14_900)
            await a.new_order(2, AAPL, "sell", 5, 15_100)
            await a.new_order(3, SPY, "buy", 1, 49_000)
            await b.new_order(1, AAPL, "buy", 3, 14_800)
            for c, n in ((a, 3), (b, 1)):
                for _ in range(n):
                    assert (await c.next_report()).exec_type == "new"
            u = await adm.kill_switch("killed", 1)
            assert (u.request, u.account, u.all_accounts, u.mode, u.cancelled) == \
                ("kill_switch", 1, False, "killed", 3)
            got = [await a.next_report() for _ in range(3)]
            # mass-cancel order: books in registration order, bids best first, then asks
            assert [(r.exec_type, r.request, r.cl_ord_id, r.reason, r.status, r.qty)
                    for r in got] == [
                ("cancelled", "kill_switch", 1, CancelCause.KILL_SWITCH, "cancelled", 10),
                ("cancelled", "kill_switch", 2, CancelCause.KILL_SWITCH, "cancelled", 5),
                ("cancelled", "kill_switch", 3, CancelCause.KILL_SWITCH, "cancelled", 1)]
            assert tables(server)["accounts"][A_ALICE]["kill"] == KillSwitch.KILLED
            assert tables(server)["accounts"][A_ALICE]["open_orders"] == 0
            assert pos(server, A_ALICE, AAPL)["open_buy_qty"] == 0
            await settle(server)
            assert b.reports.empty()                  # bob's order stays
            assert server.engine.core.open_orders == 1
            await a.new_order(4, AAPL, "sell", 1, 15_000)
            r = await a.next_report()
            assert (r.exec_type, r.reason) == ("rejected", Reason.RISK_KILL_SWITCH)
            # the global switch, reduce-only: bob's order goes too; bob's buy would add to 0
            u = await adm.kill_switch("reduce_only", all_accounts=True)
            assert (u.account, u.all_accounts, u.mode, u.cancelled) == (0, True, "reduce_only", 1)
            r = await b.next_report()
            assert (r.exec_type, r.request, r.cl_ord_id, r.reason) == \
                ("cancelled", "kill_switch", 1, CancelCause.KILL_SWITCH)
            await b.new_order(2, AAPL, "buy", 1, 15_000)
            r = await b.next_report()
            assert (r.exec_type, r.reason) == ("rejected", Reason.RISK_REDUCE_ONLY)
            await b.new_order(3, SPY, "sell", 1, 50_000)     # bob is long 500 SPY: reduces
            assert (await b.next_report()).exec_type == "new"
            # back to active: alice's own switch still holds her
            u = await adm.kill_switch("active", all_accounts=True)
            assert (u.mode, u.cancelled) == ("active", 0)
            await a.new_order(5, AAPL, "buy", 1, 15_000)
            assert (await a.next_report()).reason == Reason.RISK_KILL_SWITCH
            await adm.kill_switch("active", 1)
            await a.new_order(6, AAPL, "buy", 1, 15_000)
            assert (await a.next_report()).exec_type == "new"
            for c in (adm, a, b):
                await c.close()
    run(body)


def test_kill_switch_cancels_reach_an_account_that_was_away() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            await a.new_order(1, AAPL, "buy", 10, 14_900)
            await a.next_report()
            await a.logout_and_close()
            u = await adm.kill_switch("reduce_only", 1)
            assert u.cancelled == 1
            a = await logon(port, ALICE, last_report_seq=1)
            assert a.logon_ack.resent == 1
            r = await a.next_report()
            assert (r.report_seq, r.exec_type, r.request, r.reason) == \
                (2, "cancelled", "kill_switch", CancelCause.KILL_SWITCH)
            await adm.close()
            await a.close()
    run(body)


@pytest.mark.parametrize("msg, reason, text", [
    ({"mode": "killed"}, Reason.GATEWAY_INVALID_FIELD, "name an account"),
    ({"mode": "killed", "account": 1, "all_accounts": True}, Reason.GATEWAY_INVALID_FIELD,
     "not both"),
    ({"mode": "off", "account": 1}, Reason.GATEWAY_INVALID_FIELD, "$.mode"),
    ({"account": 1}, Reason.GATEWAY_INVALID_FIELD, "mode"),
    ({"mode": 2, "account": 1}, Reason.GATEWAY_INVALID_FIELD, "$.mode"),
    ({"mode": "killed", "account": 77}, Reason.RISK_UNKNOWN_ACCOUNT, "account 77"),
    ({"mode": "killed", "account": 0}, Reason.GATEWAY_INVALID_FIELD, "$.account"),
])
def test_bad_kill_switch_is_rejected_and_changes_nothing(msg, reason, text) -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            await a.new_order(1, AAPL, "buy", 10, 14_900)
            await a.next_report()
            before = await digest(adm)
            raw(adm, {"type": "KillSwitch", **msg})
            assert text in await expect_reject(adm, reason, "KillSwitch")
            assert await digest(adm) == before
            await settle(server)
            assert a.reports.empty()
            await adm.close()
            await a.close()
    run(body)


# -- Restrict --------------------------------------------------------------------------------------

def test_restrict_an_account_then_everyone_then_lift() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            u = await adm.restrict("AAPL", True, 1)
            assert (u.request, u.symbol, u.account, u.restricted, u.all_accounts) == \
                ("restrict", "AAPL", 1, True, False)
            assert pos(server, A_ALICE, AAPL)["restricted"] == 1
            await a.new_order(1, AAPL, "buy", 1, 15_000)
            assert (await a.next_report()).reason == Reason.RISK_RESTRICTED
            await b.new_order(1, AAPL, "buy", 1, 15_000)
            assert (await b.next_report()).exec_type == "new"
            u = await adm.restrict("AAPL", True, all_accounts=True)
            assert (u.account, u.all_accounts, u.restricted) == (0, True, True)
            await b.new_order(2, AAPL, "buy", 1, 15_000)
            assert (await b.next_report()).reason == Reason.RISK_RESTRICTED_GLOBAL
            # resting orders stay on the book (docs/RISK.md)
            assert server.engine.core.open_orders == 1
            await adm.restrict("AAPL", False, all_accounts=True)
            u = await adm.restrict("AAPL", False, 1)
            assert (u.restricted, u.account) == (False, 1)
            await a.new_order(2, AAPL, "buy", 1, 15_000)
            assert (await a.next_report()).exec_type == "new"
            for c in (adm, a, b):
                await c.close()
    run(body)


@pytest.mark.parametrize("msg, reason, text", [
    ({"symbol": "NOPE", "restricted": True, "account": 1}, Reason.GATEWAY_UNKNOWN_INSTRUMENT,
     "unknown symbol 'NOPE'"),
    ({"symbol": "AAPL", "account": 1}, Reason.GATEWAY_INVALID_FIELD, "restricted"),
    ({"restricted": True, "account": 1}, Reason.GATEWAY_INVALID_FIELD, "symbol"),
    ({"symbol": "AAPL", "restricted": "yes", "account": 1}, Reason.GATEWAY_INVALID_FIELD,
     "$.restricted"),
    ({"symbol": "AAPL", "restricted": True}, Reason.GATEWAY_INVALID_FIELD, "name an account"),
    ({"symbol": "AAPL", "restricted": True, "account": 77}, Reason.RISK_UNKNOWN_ACCOUNT,
     "account 77"),
])
def test_bad_restrict_is_rejected_and_changes_nothing(msg, reason, text) -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            before = await digest(adm)
            raw(adm, {"type": "Restrict", **msg})
            assert text in await expect_reject(adm, reason, "Restrict")
            assert await digest(adm) == before
            await adm.close()
    run(body)


# -- RiskQuery -------------------------------------------------------------------------------------

def test_risk_query_is_what_the_core_holds_after_fills() -> None:
    """alice (long 1000 AAPL at 150.00) sells 10 to bob at 150.50 with a 100 ppm fee: cash,
    positions, average prices, realized P&L and fees as exact decimals. (Without the default
    config's venues, whose fees would add to the 100 ppm.)"""
    from engine.config import default_config

    async def body() -> None:
        async with serving(msgspec.structs.replace(default_config(), venues=())) as (server,
                                                                                     port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await adm.set_risk("fee", "100", symbol="AAPL")
            await a.new_order(1, AAPL, "sell", 10, 15_050)
            await a.new_order(2, AAPL, "sell", 5, 15_200)          # stays open
            await b.new_order(1, AAPL, "buy", 10, 15_050)
            await b.reports_until(lambda r: r.status == "filled")
            await a.reports_until(lambda r: r.status == "filled")
            # notional 1505.00 USD; fee ceil(1505 * 100 / 10**6) = 0.1505 USD each side
            ra = (await a.risk()).risk
            usd = next(c for c in ra.cash if c.currency == "USD")
            assert (usd.cash, usd.open_buy, usd.free) == \
                ("10001504.849500", "0.000000", "10001504.849500")
            p = next(p for p in ra.positions if p.symbol == "AAPL")
            assert (p.position, p.avg_price, p.cost, p.realized, p.fees, p.mark,
                    p.open_sell_qty, p.unrealized) == \
                ("990", "150.000000", "148500.000000", "5.000000", "0.150500", "150.50",
                 "5", "495.000000")
            assert (ra.open_orders, ra.realized_base, ra.fees_base) == (1, "5.000000", "0.150500")
            rep = await adm.risk(2)
            rb = rep.risk
            p = next(p for p in rb.positions if p.symbol == "AAPL")
            assert (p.position, p.avg_price, p.cost, p.realized, p.fees) == \
                ("10", "150.500000", "1505.000000", "0.000000", "0.150500")
            usd = next(c for c in rb.cash if c.currency == "USD")
            assert usd.cash == "9998494.849500"
            # the whole view is the one engine/risk/report.py builds from the core's tables
            eng = server.engine
            for acct, view in ((1, ra), (2, rb)):
                want = account_risk(eng.core.risk_state(), server.instruments,
                                    eng.risk.currencies, eng.risk.decimals, acct)
                assert msgspec.to_builtins(view) == msgspec.to_builtins(want)
            assert rep.seq == eng.last_seq and rep.orders == []
            # the open orders come with the view
            own = await a.risk()
            assert [(o.cl_ord_id, o.side, o.price, o.leaves_qty) for o in own.orders] == \
                [(2, "sell", 15_200, 5)]
            for c in (adm, a, b):
                await c.close()
    run(body)


def test_risk_query_of_an_unknown_account() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            with pytest.raises(ClientError) as e:
                await adm.risk(77)
            assert e.value.reason == Reason.RISK_UNKNOWN_ACCOUNT
            raw(adm, {"type": "RiskQuery", "account": 0})
            assert "$.account" in await expect_reject(adm, Reason.GATEWAY_INVALID_FIELD,
                                                      "RiskQuery")
            raw(adm, {"type": "RiskQuery", "account": "1"})
            await expect_reject(adm, Reason.GATEWAY_INVALID_FIELD, "RiskQuery")
            await adm.close()
    run(body)


# -- the report encoders ---------------------------------------------------------------------------

def test_kill_switch_cancels_are_the_same_bytes_from_both_report_encoders() -> None:
    ev = np.zeros(5, dtype=EVENT_DTYPE)
    for i, (typ, cmd, reason) in enumerate([
            (EventType.ACCEPTED, CommandType.NEW, 0),
            (EventType.CANCELLED, CommandType.KILL_SWITCH, CancelCause.KILL_SWITCH),
            (EventType.RISK, CommandType.KILL_SWITCH, KillSwitch.KILLED),
            (EventType.REJECTED, CommandType.SET_RISK, Reason.RISK_INVALID_VALUE),
            (EventType.RISK, CommandType.SET_RISK, RiskKind.FEE)]):
        # EVENT_DTYPE's fields in order (fee, other_fee, parent_id and venue 0)
        ev[i] = (i + 1, 5, (7 << 32) | 3, 0, 15_000, 4, 0, 0, 0, 0, 0, 1, 7, 0, reason, 0, typ,
                 1, cmd, 0)
    py, fast = ReportBuilder(), FastReportBuilder()
    py.on_batch(None, ev, True)
    fast.on_batch(None, ev, True)
    a, b = py.take(), fast.take()
    assert a == b and len(a) == 2          # RISK events and admin rejects make no report
    cancel = decode_server(a[1][2][4:])
    assert (cancel.exec_type, cancel.request, cancel.reason) == \
        ("cancelled", "kill_switch", CancelCause.KILL_SWITCH)


# -- the terminal client ---------------------------------------------------------------------------

CAT = Catalog(InstrumentSet.default())


def test_terminal_risk_commands_parse() -> None:
    assert parse_command("risk", CAT) == RiskCmd(None)
    assert parse_command("risk 2", CAT) == RiskCmd(2)
    assert parse_command("kill killed 1", CAT) == KillCmd("killed", 1)
    assert parse_command("kill reduce-only all", CAT) == KillCmd("reduce_only", None, True)
    assert parse_command("kill active", CAT) == KillCmd("active")
    assert parse_command("restrict aapl 2", CAT) == RestrictCmd("AAPL", True, 2)
    assert parse_command("unrestrict AAPL all", CAT) == RestrictCmd("AAPL", False, None, True)
    assert parse_command("set-risk max_order_qty 500 account=1 symbol=aapl", CAT) == \
        SetRiskCmd("max_order_qty", "500", account=1, symbol="AAPL")
    assert parse_command("set-risk fx_rate 1.09 currency=eur", CAT) == \
        SetRiskCmd("fx_rate", "1.09", currency="EUR")
    assert parse_command("set-risk rate 10 account=1 burst=20", CAT) == \
        SetRiskCmd("rate", "10", account=1, burst=20)
    assert parse_command("set-risk position_limit Unlimited account=1", CAT) == \
        SetRiskCmd("position_limit", "unlimited", account=1)
    for bad, why in [("kill", "expected a mode"), ("kill off 1", "unknown mode"),
                     ("kill killed x", "bad account"), ("risk 1 2", "at most one"),
                     ("restrict NOPE", "unknown symbol"), ("set-risk max_qty 1", "unknown kind"),
                     ("set-risk fee", "missing value"), ("set-risk fee x symbol=AAPL", "not a"),
                     ("set-risk fee 1 sym=AAPL", "unexpected"),
                     ("set-risk rate 1 account=1 burst=0", "bad burst")]:
        with pytest.raises(UsageError, match=re.escape(why)):
            parse_command(bad, CAT)


def test_terminal_risk_update_lines() -> None:
    lines = [format_risk_update(u) for u in (
        RiskUpdate(seq=1, request="set_risk", kind="max_order_qty", account=1, symbol="AAPL",
                   value="500"),
        RiskUpdate(seq=2, request="set_risk", kind="max_order_notional", account=1,
                   value="unlimited"),
        RiskUpdate(seq=3, request="set_risk", kind="fx_rate", currency="EUR", value="1.09"),
        RiskUpdate(seq=4, request="set_risk", kind="rate", account=2, value="10", burst=20),
        RiskUpdate(seq=5, request="kill_switch", account=1, mode="killed", cancelled=3),
        RiskUpdate(seq=6, request="kill_switch", all_accounts=True, mode="active"),
        RiskUpdate(seq=7, request="restrict", account=1, symbol="AAPL", restricted=True),
        RiskUpdate(seq=8, request="restrict", all_accounts=True, symbol="SPY"))]
    assert lines == ["risk: max_order_qty of account 1 on AAPL set to 500",
                     "risk: max_order_notional of account 1 on every instrument set to unlimited",
                     "risk: fx_rate in EUR set to 1.09",
                     "risk: rate of account 2 set to 10, burst 20",
                     "kill switch of account 1: killed (3 orders cancelled)",
                     "global kill switch: active",
                     "AAPL restricted for account 1",
                     "SPY no longer restricted for every account"]


def test_terminal_client_risk_commands_end_to_end() -> None:
    import io

    async def term(port: int, who: tuple[int, str], *commands: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        rc = await run_terminal("127.0.0.1", port, who[0], who[1], list(commands), wait=0.3,
                                out=out, err=err)
        return rc, out.getvalue(), err.getvalue()

    async def body() -> None:
        async with serving() as (server, port):
            rc, out, err = await term(port, ALICE, "buy AAPL 3 @ 149.00", "risk")
            assert (rc, err) == (0, "")
            lines = out.splitlines()
            assert lines[0] == "#1 NEW     buy 3 AAPL @ 149.00"
            assert lines[1].startswith("account 1  base USD  kill switch active (global active)")
            assert "  open orders (1):" in lines
            assert "    #1 AAPL buy 3 @ 149.00" in lines
            rc, out, _ = await term(port, ALICE, "kill killed")
            assert (rc, out) == (1, "REJECTED KillSwitch: GATEWAY_NOT_AUTHORIZED: KillSwitch is"
                                    " an admin action\n")
            rc, out, err = await term(port, ADMIN, "set-risk max_order_qty 2 account=1"
                                                   " symbol=AAPL", "kill killed 1",
                                      "restrict SPY all", "risk 1")
            assert (rc, err) == (0, "")
            lines = out.splitlines()
            assert lines[:3] == ["risk: max_order_qty of account 1 on AAPL set to 2",
                                 "kill switch of account 1: killed (1 order cancelled)",
                                 "SPY restricted for every account"]
            assert lines[3].startswith("account 1  base USD  kill switch killed")
            rc, out, _ = await term(port, ALICE, "buy AAPL 3 @ 149.00")
            assert rc == 1 and "RISK_MAX_ORDER_QTY (above the account's maximum order" \
                " quantity)" in out
            await settle(server)
    run(body)
