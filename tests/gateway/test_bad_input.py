"""Bad bytes and bad messages: each gets a Reject (and a disconnect where going on is unsafe),
changes nothing, and the server keeps serving everyone else."""
from __future__ import annotations

import asyncio
import struct

import msgspec
import pytest

from engine.gateway.protocol import HEADER, decode_server
from engine.schema import Reason

from .conftest import AAPL, ALICE, BOB, config, logon, run, serving, settle

pack = msgspec.msgpack.encode


def framed(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


ORDER = {"type": "NewOrder", "cl_ord_id": 1, "instrument": AAPL, "side": "buy", "qty": 1,
         "price": 15_000}

CASES = [
    # (what, body, reason, ref_type)
    ("not msgpack", b"\xc1\xc1\xc1", Reason.GATEWAY_MALFORMED, ""),
    ("truncated msgpack", pack(ORDER)[:-3], Reason.GATEWAY_MALFORMED, ""),
    ("not a map", pack([1, 2, 3]), Reason.GATEWAY_MALFORMED, ""),
    ("a map without type", pack({"cl_ord_id": 1}), Reason.GATEWAY_MALFORMED, ""),
    ("unknown type", pack({"type": "Teleport"}), Reason.GATEWAY_UNKNOWN_MESSAGE, "Teleport"),
    ("wrong field type", pack({**ORDER, "qty": "ten"}), Reason.GATEWAY_INVALID_FIELD, "NewOrder"),
    ("missing field", pack({k: v for k, v in ORDER.items() if k != "side"}),
     Reason.GATEWAY_INVALID_FIELD, "NewOrder"),
    ("unknown field", pack({**ORDER, "colour": "red"}), Reason.GATEWAY_INVALID_FIELD, "NewOrder"),
    ("unknown side", pack({**ORDER, "side": "up"}), Reason.GATEWAY_INVALID_FIELD, "NewOrder"),
    ("cl_ord_id zero", pack({**ORDER, "cl_ord_id": 0}), Reason.GATEWAY_INVALID_FIELD, "NewOrder"),
    ("cl_ord_id too big", pack({**ORDER, "cl_ord_id": 1 << 32}), Reason.GATEWAY_INVALID_FIELD,
     "NewOrder"),
    ("price past int64", pack({**ORDER, "price": 1 << 63}), Reason.GATEWAY_INVALID_FIELD,
     "NewOrder"),
    ("negative instrument", pack({**ORDER, "instrument": -1}), Reason.GATEWAY_INVALID_FIELD,
     "NewOrder"),
    ("empty body", b"", Reason.GATEWAY_MALFORMED, ""),
]


async def read_msg(reader: asyncio.StreamReader):
    (n,) = HEADER.unpack(await asyncio.wait_for(reader.readexactly(4), 5))
    return decode_server(await reader.readexactly(n))


@pytest.mark.parametrize("what,body,reason,ref", CASES, ids=[c[0] for c in CASES])
def test_a_bad_message_gets_a_reject_and_changes_nothing(what, body, reason, ref) -> None:
    async def body_() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            await b.new_order(1, AAPL, "sell", 5, 15_000)
            await b.next_report()
            digest, last = server.engine.state_digest(), server.engine.last_seq
            a.send_raw(framed(body))
            rej = await a.next_reject()
            assert (rej.reason, rej.ref_type) == (reason, ref)
            assert rej.text
            await settle(server)
            assert (server.engine.state_digest(), server.engine.last_seq) == (digest, last)
            # the session goes on, and so does everyone else's
            await a.new_order(2, AAPL, "buy", 1, 15_000)
            r = await a.reports_until(lambda r: r.exec_type == "trade")
            assert r[-1].last_qty == 1
            assert (await b.next_report()).exec_type == "trade"
            await a.close()
            await b.close()
    run(body_)


def test_an_oversized_frame_is_refused_and_the_connection_closed() -> None:
    async def body() -> None:
        async with serving(config(max_frame_bytes=1024)) as (server, port):
            a = await logon(port, ALICE)
            b = await logon(port, BOB)
            a.send_raw(struct.pack(">I", 1025) + b"\0" * 1025)
            await asyncio.wait_for(a.closed.wait(), 5)
            assert a.logout is not None
            assert a.logout.reason == Reason.GATEWAY_FRAME_TOO_LARGE
            assert "1025" in a.logout.text and "1024" in a.logout.text
            assert server.engine.last_seq == 0
            await b.new_order(1, AAPL, "buy", 1, 15_000)
            assert (await b.next_report()).exec_type == "new"
            await a.close()
            await b.close()
    run(body)


def test_a_frame_cut_short_by_the_peer_changes_nothing() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body_ = pack({"type": "Logon", "account": 1, "api_key": "demo-alice-key"})
            writer.write(framed(body_)[:-4])
            await writer.drain()
            writer.close()
            await settle(server)
            assert server.by_account == {} and server.sessions == set()
            assert server.engine.last_seq == 0
    run(body)


def test_garbage_before_logon_is_refused_and_logon_still_works() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(framed(b"\xff\x00garbage"))
            msg = await read_msg(reader)
            assert (type(msg).__name__, msg.reason) == ("Reject", Reason.GATEWAY_MALFORMED)
            writer.write(framed(pack({"type": "Logon", "account": 1, "api_key": 5})))
            msg = await read_msg(reader)
            assert (msg.reason, msg.ref_type) == (Reason.GATEWAY_INVALID_FIELD, "Logon")
            writer.write(framed(pack({"type": "Logon", "account": 1,
                                      "api_key": "demo-alice-key"})))
            msg = await read_msg(reader)
            assert type(msg).__name__ == "LogonAck"
            writer.close()
    run(body)


def test_subscribing_to_an_unknown_instrument_is_refused() -> None:
    async def body() -> None:
        async with serving() as (server, port):
            a = await logon(port, ALICE)
            from engine.gateway.protocol import Subscribe
            a.send(Subscribe(instrument=4242))
            rej = await a.next_reject()
            assert (rej.reason, rej.ref_type) == (Reason.GATEWAY_UNKNOWN_INSTRUMENT, "Subscribe")
            assert server.subscribers == {}
            await a.close()
    run(body)
