"""Logon, trading between accounts, execution reports, rights, reconnect with gap fill."""
from __future__ import annotations

import asyncio

import pytest

from engine.gateway.client import ClientError
from engine.gateway.protocol import LogonAck
from engine.schema import Reason

from .conftest import AAPL, ADMIN, ALICE, BOB, config, logon, run, serving, settle


def test_logon_gives_the_account_its_role_and_the_instruments() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            ack = a.logon_ack
            assert isinstance(ack, LogonAck)
            assert (ack.account, ack.role, ack.next_report_seq, ack.resent, ack.lost_before) == \
                (1, "trader", 1, 0, 0)
            assert ack.cancel_on_disconnect is False
            aapl = next(i for i in ack.instruments if i.id == AAPL)
            assert (aapl.symbol, aapl.tick_size, aapl.lot_size) == ("AAPL", "0.01", "1")
            assert len(ack.instruments) == len(server.instruments)
            adm = await logon(port, ADMIN)
            assert adm.logon_ack.role == "admin"
            await a.close()
            await adm.close()
    run(body)


@pytest.mark.parametrize("who", [(1, "wrong-key"), (77, "demo-alice-key"), (2, "demo-alice-key")])
def test_a_wrong_key_or_unknown_account_is_refused_alike(who) -> None:
    async def body() -> None:
        async with serving() as (server, port):
            with pytest.raises(ClientError) as e:
                await logon(port, who)
            assert e.value.reason == Reason.GATEWAY_AUTH_FAILED
            assert str(e.value) == "unknown account or wrong API key"
            assert server.by_account == {}
    run(body)


def test_an_account_logs_on_once_at_a_time() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            with pytest.raises(ClientError) as e:
                await logon(port, ALICE)
            assert e.value.reason == Reason.GATEWAY_ACCOUNT_IN_USE
            from engine.gateway.protocol import Logon
            a.send(Logon(account=2, api_key="demo-bob-key"))      # a second logon: refused
            rej = await a.next_reject()
            assert (rej.reason, rej.ref_type) == (Reason.GATEWAY_ALREADY_LOGGED_ON, "Logon")
            assert server.by_account[1] is not None and 2 not in server.by_account
            await a.logout_and_close()
            await settle(server)
            again = await logon(port, ALICE)
            assert again.logon_ack.account == 1
            await again.close()
    run(body)


def test_two_accounts_trade_and_each_sees_its_own_reports() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await a.new_order(11, AAPL, "sell", 10, 15_000)
            r = await a.next_report()
            assert (r.report_seq, r.exec_type, r.status, r.cl_ord_id, r.side, r.price, r.qty,
                    r.leaves_qty, r.cum_qty) == (1, "new", "new", 11, "sell", 15_000, 10, 10, 0)
            await b.new_order(5, AAPL, "buy", 4, 15_010)
            b1, b2 = await b.next_report(), await b.next_report()
            assert (b1.exec_type, b1.report_seq, b1.cl_ord_id, b1.leaves_qty) == ("new", 1, 5, 4)
            assert (b2.exec_type, b2.status, b2.last_price, b2.last_qty, b2.cum_qty,
                    b2.leaves_qty, b2.avg_price, b2.liquidity, b2.report_seq) == \
                ("trade", "filled", 15_000, 4, 4, 0, 15_000.0, "taker", 2)
            a2 = await a.next_report()
            assert (a2.exec_type, a2.status, a2.cl_ord_id, a2.last_qty, a2.cum_qty,
                    a2.leaves_qty, a2.liquidity, a2.seq) == \
                ("trade", "partially_filled", 11, 4, 4, 6, "maker", b2.seq)
            # a second fill at another price: the average follows the notional exactly
            await a.new_order(12, AAPL, "sell", 2, 15_004)
            await a.next_report()
            await b.new_order(6, AAPL, "buy", 8, 15_004)
            got = await b.reports_until(lambda r: r.status == "filled")
            fills = [(r.last_price, r.last_qty) for r in got if r.exec_type == "trade"]
            assert fills == [(15_000, 6), (15_004, 2)]
            last = got[-1]
            assert (last.cum_qty, last.cum_notional) == (8, 15_000 * 6 + 15_004 * 2)
            assert last.avg_price == pytest.approx((15_000 * 6 + 15_004 * 2) / 8)
            assert b.rejects.empty() and a.rejects.empty()
            assert server.engine.core.best_ask(AAPL) is None
            await a.close()
            await b.close()
    run(body)


def test_cancel_and_replace_report_the_order_state() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            await a.new_order(1, AAPL, "buy", 10, 14_900)
            await a.next_report()
            await a.replace(1, 14_950, 7)
            r = await a.next_report()
            assert (r.exec_type, r.status, r.price, r.qty, r.leaves_qty, r.request) == \
                ("replaced", "new", 14_950, 7, 7, "replace")
            await a.cancel(1)
            r = await a.next_report()
            assert (r.exec_type, r.status, r.qty, r.leaves_qty, r.request, r.reason) == \
                ("cancelled", "cancelled", 7, 0, "cancel", 1)
            await a.cancel(1)
            r = await a.next_report()
            assert (r.exec_type, r.request, r.reason) == \
                ("rejected", "cancel", Reason.BOOK_UNKNOWN_ORDER)
            await a.new_order(2, AAPL, "buy", 0, 14_900)
            r = await a.next_report()
            assert (r.exec_type, r.status, r.reason) == \
                ("rejected", "rejected", Reason.BOOK_INVALID_QUANTITY)
            assert [x.report_seq for x in (r,)] == [5]
            await a.close()
    run(body)


def test_an_account_cannot_touch_another_accounts_orders() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await b.new_order(42, AAPL, "sell", 5, 15_100)
            await b.next_report()
            digest = server.engine.state_digest()
            # the same client order id in alice's session names alice's (absent) order
            await a.cancel(42)
            r = await a.next_report()
            assert (r.exec_type, r.reason) == ("rejected", Reason.BOOK_UNKNOWN_ORDER)
            await a.replace(42, 15_000, 1)
            r = await a.next_report()
            assert (r.exec_type, r.reason) == ("rejected", Reason.BOOK_UNKNOWN_ORDER)
            # a trader may not mass-cancel others, halt or change limits
            await a.mass_cancel(account=2)
            rej = await a.next_reject()
            assert (rej.reason, rej.ref_type) == (Reason.GATEWAY_NOT_AUTHORIZED, "MassCancel")
            await a.mass_cancel(all_accounts=True)
            assert (await a.next_reject()).reason == Reason.GATEWAY_NOT_AUTHORIZED
            await a.halt(AAPL)
            assert (await a.next_reject()).reason == Reason.GATEWAY_NOT_AUTHORIZED
            await a.set_limits(AAPL, 1, 5)
            assert (await a.next_reject()).reason == Reason.GATEWAY_NOT_AUTHORIZED
            await settle(server)
            # only the two rejected order commands reached the engine, and they changed nothing
            assert server.engine.state_digest() == digest
            assert server.engine.core.best_ask(AAPL) == (15_100, 5)
            assert b.reports.empty()
            await a.close()
            await b.close()
    run(body)


def test_reconnect_resends_exactly_the_missed_reports() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await a.new_order(1, AAPL, "sell", 10, 15_000)
            await a.new_order(2, AAPL, "sell", 10, 15_001)
            seen = [await a.next_report(), await a.next_report()]
            await a.logout_and_close()
            await settle(server)
            # alice is away: bob takes both orders
            await b.new_order(1, AAPL, "buy", 15, 15_001)
            await b.reports_until(lambda r: r.status == "filled")
            a.books.clear()
            ack = await a.reconnect()
            assert (ack.resent, ack.lost_before, ack.next_report_seq) == (2, 0, 5)
            missed = [await a.next_report(), await a.next_report()]
            assert [(r.report_seq, r.cl_ord_id, r.last_qty, r.status) for r in missed] == \
                [(3, 1, 10, "filled"), (4, 2, 5, "partially_filled")]
            assert [r.report_seq for r in seen] == [1, 2]
            # live reports continue the numbering
            await a.cancel(2)
            r = await a.next_report()
            assert (r.report_seq, r.exec_type) == (5, "cancelled")
            await a.close()
            await b.close()
    run(body)


def test_reports_older_than_the_store_are_reported_lost() -> None:
    async def body() -> None:
        async with serving(config(report_store=2)) as (server, port):
            a = await logon(port, ALICE)
            for i in range(1, 6):
                await a.new_order(i, AAPL, "buy", 1, 14_000 + i)
            for _ in range(5):
                await a.next_report()
            await a.close()
            await settle(server)
            a.last_report_seq = 1
            ack = await a.reconnect()
            assert (ack.resent, ack.lost_before, ack.next_report_seq) == (2, 3, 6)
            got = [await a.next_report(), await a.next_report()]
            assert [r.report_seq for r in got] == [4, 5]
            await a.close()
    run(body)


def test_cancel_on_disconnect_cancels_resting_orders_unless_logged_out() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            b = await logon(port, BOB)                       # cancel_on_disconnect by config
            assert b.logon_ack.cancel_on_disconnect is True
            await b.new_order(1, AAPL, "sell", 3, 15_500)
            await b.new_order(2, AAPL, "buy", 3, 14_500)
            await b.next_report()
            await b.next_report()
            await b.close()                                  # dropped, no Logout
            await settle(server)
            assert server.engine.core.open_orders == 0
            ack = await b.reconnect()
            assert ack.resent == 2
            got = [await b.next_report(), await b.next_report()]
            assert {(r.cl_ord_id, r.exec_type, r.request) for r in got} == \
                {(1, "cancelled", "mass_cancel"), (2, "cancelled", "mass_cancel")}
            # a Logout keeps the orders; so does a session that turned it off at logon
            await b.new_order(3, AAPL, "sell", 3, 15_500)
            await b.next_report()
            await b.logout_and_close()
            await settle(server)
            assert server.engine.core.open_orders == 1
            a = await logon(port, ALICE, cancel_on_disconnect=True)
            await a.new_order(1, AAPL, "sell", 1, 15_600)
            await a.next_report()
            await a.close()
            await settle(server)
            assert server.engine.core.open_orders == 1
    run(body)


def test_admin_halts_resumes_and_mass_cancels() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            a = await logon(port, ALICE)
            await a.new_order(1, AAPL, "sell", 3, 15_500)
            await a.next_report()
            await adm.halt(AAPL)
            st = await adm.next_reply()
            assert (type(st).__name__, st.instrument, st.trading_state) == \
                ("InstrumentStatus", AAPL, "halted")
            await a.new_order(2, AAPL, "buy", 3, 15_500)
            r = await a.next_report()
            assert (r.exec_type, r.reason) == ("rejected", Reason.BOOK_INSTRUMENT_HALTED)
            await adm.resume(AAPL)
            assert (await adm.next_reply()).trading_state == "open"
            await adm.set_limits(AAPL, 1, 2)
            st = await adm.next_reply()
            assert (st.min_qty, st.max_qty) == (1, 2)
            await a.new_order(3, AAPL, "buy", 3, 15_000)
            r = await a.next_report()
            assert (r.exec_type, r.reason) == ("rejected", Reason.BOOK_QUANTITY_ABOVE_MAX)
            await adm.mass_cancel(account=1)
            rep = await adm.next_reply()
            assert (type(rep).__name__, rep.cancelled, rep.account) == ("MassCancelReport", 1, 1)
            r = await a.next_report()
            assert (r.cl_ord_id, r.exec_type, r.request) == (1, "cancelled", "mass_cancel")
            await adm.halt(999)
            rej = await adm.next_reject()
            assert (rej.reason, rej.ref_type) == (Reason.BOOK_UNKNOWN_INSTRUMENT, "Halt")
            await a.close()
            await adm.close()
    run(body)


def test_messages_before_logon_are_refused() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            from engine.gateway.protocol import HEADER, NewOrder, decode_server, frame

            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame(NewOrder(cl_ord_id=1, instrument=AAPL, side="buy", qty=1,
                                        price=15_000)))
            (n,) = HEADER.unpack(await reader.readexactly(4))
            msg = decode_server(await reader.readexactly(n))
            assert (type(msg).__name__, msg.reason, msg.ref_type, msg.cl_ord_id) == \
                ("Reject", Reason.GATEWAY_NOT_LOGGED_ON, "NewOrder", 1)
            assert server.engine.last_seq == 0
            writer.close()
    run(body)



def test_the_blocking_client_trades_and_reconnects(port: int) -> None:
    from engine.gateway import SyncClient

    with SyncClient("127.0.0.1", port, *ALICE) as a, SyncClient("127.0.0.1", port, *BOB) as b:
        a.new_order(1, AAPL, "sell", 5, 15_000)
        assert a.next_report().exec_type == "new"
        b.new_order(1, AAPL, "buy", 2, 15_000)
        assert [r.exec_type for r in (b.next_report(), b.next_report())] == ["new", "trade"]
        fill = a.next_report()
        assert (fill.exec_type, fill.cum_qty, fill.leaves_qty) == ("trade", 2, 3)
    with pytest.raises(ClientError) as e:
        SyncClient("127.0.0.1", port, 1, "nope")
    assert e.value.reason == Reason.GATEWAY_AUTH_FAILED
    with SyncClient("127.0.0.1", port, *ALICE, last_report_seq=1) as again:
        assert again.logon_ack.resent == 1
        assert again.next_report().report_seq == 2


def test_an_account_can_ask_for_its_orders_and_only_its_own() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await a.new_order(1, AAPL, "sell", 10, 15_000)
            await a.new_order(2, AAPL, "buy", 3, 14_000, post_only=True)
            await a.new_order(3, AAPL, "buy", 1, 14_500, tif="ioc")   # nothing to take
            await b.new_order(1, AAPL, "buy", 4, 15_000)
            await b.reports_until(lambda r: r.status == "filled")
            got = await a.orders()
            assert [(o.cl_ord_id, o.side, o.status, o.price, o.qty, o.leaves_qty, o.cum_qty,
                     o.post_only) for o in sorted(got.orders, key=lambda o: o.cl_ord_id)] == \
                [(1, "sell", "partially_filled", 15_000, 10, 6, 4, False),
                 (2, "buy", "new", 14_000, 3, 3, 0, True)]
            assert got.seq == server.engine.last_seq and got.cl_ord_id == 0
            one = await a.orders(3)                      # finished: from the core's history
            assert [(o.cl_ord_id, o.status, o.tif, o.leaves_qty) for o in one.orders] == \
                [(3, "cancelled", "ioc", 0)]
            assert (await a.orders(99)).orders == []
            # bob's order 1 is filled; alice's order 1 is hers: each sees only their own
            mine = await b.orders(1)
            assert [(o.side, o.status) for o in mine.orders] == [("buy", "filled")]
            assert (await b.orders()).orders == []
            await a.close()
            await b.close()
    run(body)
