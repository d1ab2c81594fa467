"""Market data: a BookSnapshot plus every later BookUpdate equals the core's book, trades
match the fills, and halts reach subscribers."""
from __future__ import annotations

import asyncio
import random

from .conftest import AAPL, ADMIN, ALICE, BOB, config, logon, run, serving, settle

SPY = 2


def test_snapshot_plus_updates_equals_the_book_through_random_trading() -> None:
    async def body() -> None:
        async with serving(config(book_depth=5)) as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB, cancel_on_disconnect=False)
            watcher = await logon(port, (9, "demo-admin-key"))
            rng = random.Random(7)
            # some book before the subscription: the snapshot must carry it
            for i in range(1, 21):
                await a.new_order(i, AAPL, "buy" if i % 2 else "sell", rng.randint(1, 9),
                                  15_000 + (-1 if i % 2 else 1) * rng.randint(1, 12))
            await settle(server)
            book = await watcher.subscribe(AAPL)
            assert book.levels() == server.engine.core.depth(AAPL, 5)
            other = await watcher.subscribe(SPY)
            live = {1: set(range(1, 21)), 2: set()}
            next_id = {1: 21, 2: 1}
            for step in range(400):
                who, c = (1, a) if rng.random() < 0.5 else (2, b)
                roll = rng.random()
                if roll < 0.6 or not live[who]:
                    cid = next_id[who]
                    next_id[who] += 1
                    live[who].add(cid)
                    await c.new_order(cid, AAPL, rng.choice(["buy", "sell"]), rng.randint(1, 9),
                                      15_000 + rng.randint(-15, 15))
                elif roll < 0.8:
                    cid = rng.choice(sorted(live[who]))
                    await c.cancel(cid)
                    live[who].discard(cid)
                else:
                    await c.replace(rng.choice(sorted(live[who])), 15_000 + rng.randint(-15, 15),
                                    rng.randint(1, 12))
                if step % 50 == 49:
                    await settle(server)
                    assert book.levels() == server.engine.core.depth(AAPL, 5)
            await settle(server)
            assert book.levels() == server.engine.core.depth(AAPL, 5)
            assert other.levels() == ([], [])               # nothing traded there
            # every fill was published once, in sequence
            trades = []
            while not watcher.trades.empty():
                trades.append(watcher.trades.get_nowait())
            taker_fills = []
            for c in (a, b):
                while not c.reports.empty():
                    r = c.reports.get_nowait()
                    if r.exec_type == "trade" and r.liquidity == "taker":
                        taker_fills.append((r.seq, r.last_price, r.last_qty))
            assert sorted((t.seq, t.price, t.qty) for t in trades) == sorted(taker_fills)
            assert len(trades) > 10
            seqs = [t.md_seq for t in trades]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            for c in (a, b, watcher):
                await c.close()
    run(body)


def test_subscribers_see_halts_and_unsubscribe_stops_updates() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            adm = await logon(port, ADMIN)
            w = await logon(port, ALICE, keep_all=True)
            book = await w.subscribe(AAPL)
            snap_seq = book.md_seq
            await adm.halt(AAPL)
            await adm.next_reply()
            await settle(server)
            kinds = []
            while not w.messages.empty():
                kinds.append(w.messages.get_nowait())
            status = [m for m in kinds if type(m).__name__ == "InstrumentStatus"]
            assert [(s.instrument, s.trading_state) for s in status] == [(AAPL, "halted")]
            assert status[0].md_seq == snap_seq + 1
            await adm.resume(AAPL)
            await adm.next_reply()
            await w.unsubscribe(AAPL)
            await settle(server)
            while not w.messages.empty():
                w.messages.get_nowait()
            b = await logon(port, BOB)
            await b.new_order(1, AAPL, "buy", 1, 15_000)
            await b.next_report()
            await settle(server)
            assert all(type(m).__name__ not in ("BookUpdate", "Trade", "InstrumentStatus")
                       for m in list(w.messages._queue))           # type: ignore[attr-defined]
            assert AAPL not in server.subscribers
            for c in (adm, w, b):
                await c.close()
    run(body)


def test_a_late_subscriber_gets_the_current_book() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            await a.new_order(1, AAPL, "buy", 5, 14_990)
            await a.new_order(2, AAPL, "buy", 3, 14_990)
            await a.new_order(3, AAPL, "sell", 2, 15_010)
            book = await a.subscribe(AAPL)
            assert book.levels() == ([(14_990, 8, 2)], [(15_010, 2, 1)])
            await asyncio.sleep(0)
            await a.close()
    run(body)
