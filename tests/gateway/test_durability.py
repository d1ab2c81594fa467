"""The gateway on a real journal: outputs only once durable, restarts that keep report
numbers, prices and resends, and a journal failure that stops intake without acknowledging."""
from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from engine.gateway.protocol import NewOrder
from engine.gateway.reports import CL_ORD_ID_MASK
from engine.journal import Journal, replay
from engine.journal.format import list_snapshots
from engine.schema import CommandType, Reason

from .conftest import AAPL, ADMIN, ALICE, BOB, logon, run, serving, settle


@pytest.mark.parametrize("snapshot_every", [0, 7], ids=["replay-from-scratch", "from-snapshot"])
def test_a_restart_keeps_numbering_prices_and_resends(tmp_path: Path, snapshot_every: int) -> None:
    jdir = tmp_path / "journal"

    async def first_life() -> tuple[int, str]:
        async with serving(journal_dir=jdir, durability="fsync",
                           snapshot_every=snapshot_every) as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB, cancel_on_disconnect=False)
            for i in range(1, 6):
                await a.new_order(i, AAPL, "buy", 1, 14_000 + i)
                await a.next_report()
            await a.new_order(100, AAPL, "sell", 10, 15_000)
            await a.next_report()
            await b.new_order(1, AAPL, "buy", 4, 15_000)
            await b.reports_until(lambda r: r.status == "filled")
            r = await a.next_report()
            assert (r.report_seq, r.cum_qty, r.leaves_qty) == (7, 4, 6)
            await a.logout_and_close()
            await settle(server)
            # alice is away; bob's second fill happens, and she will need it resent
            await b.new_order(2, AAPL, "buy", 1, 15_000)
            await b.reports_until(lambda r: r.status == "filled")
            await b.close()
            await settle(server)
            return server.engine.last_seq, server.engine.state_digest()

    last_seq, digest = run(first_life)
    if snapshot_every:
        assert list_snapshots(jdir)

    async def second_life() -> None:
        async with serving(journal_dir=jdir, durability="fsync",
                           snapshot_every=snapshot_every) as (server, port):
            assert (server.engine.last_seq, server.engine.state_digest()) == (last_seq, digest)
            if snapshot_every:
                assert server.engine.recovery.snapshot_seq > 0
            a = await logon(port, ALICE, last_report_seq=7)
            ack = a.logon_ack
            assert (ack.next_report_seq, ack.resent, ack.lost_before) == (9, 1, 0)
            r = await a.next_report()
            assert (r.report_seq, r.cl_ord_id, r.last_qty, r.cum_qty, r.leaves_qty) == \
                (8, 100, 1, 5, 5)
            b = await logon(port, BOB, cancel_on_disconnect=False)
            await b.new_order(3, AAPL, "buy", 5, 15_000)
            await b.reports_until(lambda r: r.status == "filled")
            r = await a.next_report()
            # the average price runs on across the restart, from the fills before it
            assert (r.report_seq, r.status, r.cum_qty, r.cum_notional) == \
                (9, "filled", 10, 15_000 * 10)
            adm = await logon(port, ADMIN)
            st = await adm.status()
            assert st.last_seq == st.durable_seq == server.engine.last_seq
            assert st.digest == server.engine.state_digest()
            for c in (a, b, adm):
                await c.close()

    run(second_life)
    # the journal alone rebuilds the same state
    assert replay(jdir).digest() == _final_digest(jdir)


def _final_digest(jdir: Path) -> str:
    async def body() -> str:
        async with serving(journal_dir=jdir, durability="write") as (server, port):
            return server.engine.state_digest()
    return run(body)


def test_every_acknowledged_order_is_in_the_journal_under_load(tmp_path: Path) -> None:
    jdir = tmp_path / "journal"
    n = 1500

    async def body() -> dict[int, set[int]]:
        async with serving(journal_dir=jdir, durability="fsync") as (server, port):
            clients = {1: await logon(port, ALICE), 2: await logon(port, BOB)}
            acked: dict[int, set[int]] = {1: set(), 2: set()}

            async def drive(acct: int) -> None:
                c = clients[acct]
                for i in range(1, n + 1):
                    side = "buy" if (i + acct) % 2 else "sell"
                    c.send(NewOrder(
                        cl_ord_id=i, instrument=AAPL, side=side, qty=1 + i % 3,
                        price=15_000 + (i % 7) - 3, tif="ioc" if i % 5 == 0 else "gtc"))
                    if i % 100 == 0:
                        await c.drain()
                await c.drain()
                while len(acked[acct]) < n:
                    r = await c.next_report(timeout=30)
                    if r.exec_type in ("new", "rejected"):
                        acked[acct].add(r.cl_ord_id)

            await asyncio.gather(drive(1), drive(2))
            assert server.engine.durable_seq == server.engine.last_seq
            for c in clients.values():
                await c.close()
            return acked

    acked = run(body, timeout=120)
    cmds = Journal(jdir).commands()
    news = cmds[cmds["cmd"] == CommandType.NEW]
    for acct in (1, 2):
        mine = news[news["account"] == acct]
        ids = (mine["order_id"] & CL_ORD_ID_MASK).tolist()
        assert len(ids) == len(set(ids)) == n                  # each once, none lost
        assert set(ids) == acked[acct]


def test_a_failing_journal_stops_intake_without_acknowledging(tmp_path: Path,
                                                              monkeypatch) -> None:
    jdir = tmp_path / "journal"

    async def body() -> None:
        async with serving(journal_dir=jdir, durability="write") as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await a.new_order(1, AAPL, "buy", 1, 15_000)
            assert (await a.next_report()).exec_type == "new"
            durable = server.engine.durable_seq
            real_write = os.write

            def full_disk(fd: int, data) -> int:
                if fd == server.engine.journal._fd:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_write(fd, data)

            monkeypatch.setattr(os, "write", full_disk)
            await a.new_order(2, AAPL, "buy", 1, 15_000)
            await asyncio.wait_for(a.closed.wait(), 5)
            await asyncio.wait_for(b.closed.wait(), 5)
            assert a.logout.reason == Reason.GATEWAY_ENGINE_STOPPED
            assert "disk is full" in a.logout.text
            assert a.reports.empty()                          # order 2 was never acknowledged
            assert server.engine.durable_seq == durable
            assert server.engine.core.open_orders == 1
            monkeypatch.setattr(os, "write", real_write)
            from engine.gateway.client import ClientError
            with pytest.raises(ClientError) as e:
                await logon(port, ALICE)
            assert e.value.reason == Reason.GATEWAY_ENGINE_STOPPED

    run(body)
