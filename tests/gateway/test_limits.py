"""Per-connection limits: message rate, session count, heartbeats, idle timeout, slow
consumers. Each refusal says why; none of them disturbs other sessions."""
from __future__ import annotations

import asyncio
import socket

from engine.gateway.protocol import HEADER, Logon, NewOrder, Subscribe, decode_server, frame
from engine.schema import Reason

from .conftest import AAPL, ADMIN, ALICE, BOB, config, logon, run, serving, settle


def test_messages_over_the_rate_are_refused() -> None:
    async def body() -> None:
        async with serving(config(max_msgs_per_s=1, msg_burst=4)) as (server, port):
            a = await logon(port, ALICE)                       # the Logon took one token
            for i in range(1, 6):
                a.send_raw(frame(NewOrder(
                    cl_ord_id=i, instrument=AAPL, side="buy", qty=1, price=14_000 + i)))
            await a.drain()
            got = [await a.next_report() for _ in range(3)]
            assert [r.cl_ord_id for r in got] == [1, 2, 3]
            rejects = [await a.next_reject(), await a.next_reject()]
            assert [(r.reason, r.cl_ord_id) for r in rejects] == \
                [(Reason.GATEWAY_RATE_LIMITED, 4), (Reason.GATEWAY_RATE_LIMITED, 5)]
            await settle(server)
            assert server.engine.last_seq == 3
            await a.close()
    run(body)


def test_sessions_past_the_limit_are_turned_away() -> None:
    async def body() -> None:
        async with serving(config(max_sessions=1)) as (server, port):
            a = await logon(port, ALICE)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            (n,) = HEADER.unpack(await asyncio.wait_for(reader.readexactly(4), 5))
            msg = decode_server(await reader.readexactly(n))
            assert (type(msg).__name__, msg.reason) == ("ServerLogout", Reason.GATEWAY_TOO_MANY_SESSIONS)
            assert await reader.read() == b""
            writer.close()
            await a.new_order(1, AAPL, "buy", 1, 15_000)
            assert (await a.next_report()).exec_type == "new"
            await a.close()
    run(body)


def test_heartbeats_flow_and_a_silent_client_is_logged_out() -> None:
    async def body() -> None:
        async with serving(config(heartbeat_ms=40, idle_timeout_ms=400)) as (server, port):
            a = await logon(port, ALICE, keep_all=True, auto_heartbeat=False)
            await asyncio.wait_for(a.closed.wait(), 5)
            kinds = []
            while not a.messages.empty():
                kinds.append(type(a.messages.get_nowait()).__name__)
            assert kinds.count("ServerHeartbeat") >= 3
            assert a.logout is not None and a.logout.reason == Reason.GATEWAY_IDLE_TIMEOUT
            # a client that sends heartbeats stays (by hand, and by the client's own timer)
            b = await logon(port, BOB, auto_heartbeat=False)
            for _ in range(8):
                await b.heartbeat()
                await asyncio.sleep(0.1)
            assert not b.closed.is_set()
            c = await logon(port, ADMIN)
            await asyncio.sleep(0.8)
            assert not c.closed.is_set()
            await c.close()
            await b.close()
    run(body)


def test_a_slow_consumer_is_disconnected_and_others_go_on() -> None:
    async def body() -> None:
        async with serving(config(send_buffer_bytes=4096, max_msgs_per_s=10**6,
                                  msg_burst=10**6)) as (server, port):
            # a subscriber that never reads, with the smallest receive buffer the kernel allows
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.connect(("127.0.0.1", port))
            sock.sendall(frame(Logon(account=1, api_key="demo-alice-key")))
            sock.sendall(frame(Subscribe(instrument=AAPL)))
            await settle(server)
            assert 1 in server.by_account
            # and a thin pipe: the server's side of the connection may buffer little as well
            server.by_account[1].transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            b = await logon(port, BOB)
            for i in range(1, 3001):
                b.send_raw(frame(NewOrder(
                    cl_ord_id=i, instrument=AAPL, side="buy" if i % 2 else "sell", qty=1,
                    price=14_000 + (i % 200) * 10)))   # inside AAPL's price band
                if i % 200 == 0:
                    await b.drain()
                    await asyncio.sleep(0.005)
                if 1 not in server.by_account:
                    break
            await settle(server)
            assert 1 not in server.by_account                  # alice's session is gone
            await b.new_order(9999, AAPL, "buy", 1, 14_500)
            got = await b.reports_until(lambda r: r.cl_ord_id == 9999, timeout=20)
            assert got[-1].exec_type == "new"
            sock.close()
            await b.close()
    run(body)
