"""Crash and recovery through the gateway: a real ``engine serve`` process is loaded by two
clients over TCP, killed with SIGKILL at random moments, and restarted on the same journal.

Acknowledged means the client received the execution report. After every restart each client
reconnects with the last report it saw and must receive exactly the ones it missed; at the end,
every report ever received must equal, byte for byte, the report the journal regenerates, and
the server's state digest must equal a replay of the journal from scratch.
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.gateway.protocol import Cancel, ExecutionReport, NewOrder, Replace, frame
from engine.gateway.reports import ReportBuilder
from engine.journal import Replay, replay
from engine.journal.reader import Journal

from .conftest import AAPL, ADMIN, ALICE, BOB, logon, run

REPO = Path(__file__).resolve().parents[2]


class EngineProcess:
    """``engine serve`` in a subprocess on a free port."""

    def __init__(self, jdir: Path, durability: str, log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.log = log
        self._err = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--journal", str(jdir),
             "--durability", durability], cwd=jdir.parent, env=env, stdout=subprocess.PIPE,
            stderr=self._err, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m is None:
            self.close()
            raise AssertionError(f"no port in {line!r}; log: {log.read_text()}")
        self.port = int(m[1])

    def close(self) -> None:
        """Kill it if it still runs and release the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        self._err.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


class Trader:
    """One account's view: every report received, in order, and its live orders."""

    def __init__(self, who: tuple[int, str], rng: random.Random) -> None:
        self.who = who
        self.rng = rng
        self.received: list[ExecutionReport] = []
        self.live: set[int] = set()
        self.next_id = 1
        self.client = None
        self.resent = 0

    def take(self, r: ExecutionReport) -> None:
        assert r.report_seq == len(self.received) + 1, "a gap or a duplicate in the reports"
        self.received.append(r)
        if r.exec_type == "new":
            self.live.add(r.cl_ord_id)
        elif r.status in ("filled", "cancelled"):
            self.live.discard(r.cl_ord_id)

    async def connect(self, port: int) -> None:
        c = await logon(port, self.who, last_report_seq=len(self.received),
                        cancel_on_disconnect=False)
        assert c.logon_ack.lost_before == 0
        self.resent += c.logon_ack.resent
        assert c.logon_ack.next_report_seq == len(self.received) + c.logon_ack.resent + 1
        self.client = c

    def drain(self) -> None:
        q = self.client.reports
        while not q.empty():
            self.take(q.get_nowait())

    async def load(self, stop: asyncio.Event) -> None:
        c, rng = self.client, self.rng
        try:
            while not stop.is_set():
                for _ in range(rng.randint(1, 40)):
                    roll = rng.random()
                    if roll < 0.65 or not self.live:
                        c.send(NewOrder(cl_ord_id=self.next_id, instrument=AAPL,
                                        side=rng.choice(["buy", "sell"]), qty=rng.randint(1, 20),
                                        price=15_000 + rng.randint(-10, 10),
                                        tif="ioc" if rng.random() < 0.1 else "gtc"))
                        self.next_id += 1
                    elif roll < 0.85:
                        c.send(Cancel(cl_ord_id=rng.choice(sorted(self.live))))
                    else:
                        c.send(Replace(cl_ord_id=rng.choice(sorted(self.live)),
                                       price=15_000 + rng.randint(-10, 10),
                                       qty=rng.randint(1, 25)))
                await c.drain()
                await asyncio.sleep(rng.random() * 0.01)
                self.drain()
        except (ConnectionError, OSError, Exception):
            return                                    # the server was killed under us


def regenerate(jdir: Path) -> dict[int, list[bytes]]:
    """Every account's reports as the journal alone produces them (its manifest names the
    venues the reports name)."""
    builder = ReportBuilder(venues={v.id: v.name for v in Journal(jdir).manifest.venue_set()})
    out: dict[int, list[bytes]] = {}
    for cmds, events in Replay(jdir):
        builder.on_batch(cmds, events, True)
        for account, _, data in builder.take():
            out.setdefault(account, []).append(data[4:])
    return out


@pytest.mark.parametrize("durability,lives,seed", [("fsync", 4, 1), ("write", 3, 2)])
def test_kill_9_through_the_gateway_loses_no_acknowledged_report(tmp_path: Path, durability: str,
                                                                 lives: int, seed: int) -> None:
    jdir = tmp_path / "journal"
    rng = random.Random(seed)
    traders = [Trader(ALICE, random.Random(seed * 10 + 1)), Trader(BOB, random.Random(seed * 10 + 2))]
    kills = 0

    async def one_life(proc: EngineProcess, kill: bool) -> str | None:
        for t in traders:
            await t.connect(proc.port)
        await asyncio.sleep(0.05)                     # the resends arrive
        for t in traders:
            t.drain()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(t.load(stop)) for t in traders]
        await asyncio.sleep(0.1 + rng.random() * 0.4)
        digest = None
        if kill:
            proc.kill()
        else:
            stop.set()
            await asyncio.gather(*tasks)
            await asyncio.sleep(0.3)
            adm = await logon(proc.port, ADMIN)
            digest = (await adm.status()).digest
            await adm.close()
        stop.set()
        await asyncio.gather(*tasks)
        for t in traders:
            await asyncio.sleep(0.05)
            t.drain()
            await t.client.close()
        return digest

    for life in range(lives):
        proc = EngineProcess(jdir, durability, tmp_path / f"server-{life}.log")
        try:
            run(lambda: one_life(proc, kill=True))
            kills += 1
        finally:
            proc.close()
    proc = EngineProcess(jdir, durability, tmp_path / "server-final.log")
    try:
        digest = run(lambda: one_life(proc, kill=False))
        assert proc.stop() == 0, proc.log.read_text()
    finally:
        proc.close()

    assert kills == lives
    assert digest == replay(jdir).digest()
    again = regenerate(jdir)
    enc = msgspec.msgpack.Encoder()
    for t in traders:
        assert len(t.received) > 20
        mine = again[t.who[0]]
        assert len(mine) == len(t.received)           # the last life received everything
        for got, want in zip(t.received, mine):
            assert enc.encode(got) == want
        news = [r.cl_ord_id for r in t.received if r.request == "new" and
                r.exec_type in ("new", "rejected")]
        assert len(news) == len(set(news))            # no order acknowledged twice
    assert np.all(np.diff(np.array([r.report_seq for r in traders[0].received])) == 1)
    print(f"\n[gateway crash {durability}] kills {kills}, reports received"
          f" {[len(t.received) for t in traders]}, resent after restarts"
          f" {[t.resent for t in traders]}")


def test_a_journal_that_fails_ends_the_server_and_acknowledges_nothing_more(tmp_path: Path
                                                                            ) -> None:
    """The file size limit stands in for a full disk: the write fails part-way through a
    record, every session is told why, and `engine serve` exits with status 1. A restart then
    finds every acknowledged order (the torn tail is truncated)."""
    import resource

    jdir = tmp_path / "journal"
    proc = EngineProcess(jdir, "fsync", tmp_path / "server.log")
    limit = 64 + 300 * 64 + 40                      # header, 300 records, part of another
    resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
    acked: list[int] = []

    async def body() -> None:
        c = await logon(proc.port, ALICE, cancel_on_disconnect=False)
        orders = [frame(NewOrder(cl_ord_id=i, instrument=AAPL, side="buy", qty=1,
                                 price=14_000 + i)) for i in range(1, 1001)]
        c.send_raw(b"".join(orders[:200]))           # these fit under the limit
        await c.drain()
        for _ in range(200):
            acked.append((await c.next_report()).cl_ord_id)
        c.send_raw(b"".join(orders[200:]))           # these do not, whole or in part
        try:
            await c.drain()
        except (ConnectionError, OSError):
            pass                                    # the server may close before we are done
        await asyncio.wait_for(c.closed.wait(), 20)
        while not c.reports.empty():
            acked.append(c.reports.get_nowait().cl_ord_id)
        assert c.logout is not None and c.logout.reason == 3017      # GATEWAY_ENGINE_STOPPED
        assert "file size limit" in c.logout.text
        await c.close()

    try:
        run(body)
        assert proc.proc.wait(20) == 1
        assert "intake stopped" in proc.log.read_text()
    finally:
        proc.close()
    assert 200 <= len(acked) <= 300 and acked == list(range(1, len(acked) + 1))
    proc = EngineProcess(jdir, "fsync", tmp_path / "server-2.log")
    try:
        async def again() -> None:
            c = await logon(proc.port, ALICE, cancel_on_disconnect=False)
            assert c.logon_ack.next_report_seq > len(acked)
            adm = await logon(proc.port, ADMIN)
            st = await adm.status()
            assert st.open_orders >= len(acked)
            for x in (c, adm):
                await x.close()
        run(again)
        assert proc.stop() == 0
    finally:
        proc.close()
    assert "torn tail" in (tmp_path / "server-2.log").read_text()
