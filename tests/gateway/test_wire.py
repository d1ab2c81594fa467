"""The inbound fast path (engine/gateway/_wire.pyx) against msgspec: whatever it takes, msgspec
takes too and reads the same; the frames real clients send, it takes."""
from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.gateway import _wire
from engine.gateway.protocol import Cancel, NewOrder, Replace, decode_client, frame
from engine.gateway.server import order_record

ACCOUNT = 77


def slow(body: bytes) -> bytes | None:
    """What the slow path makes of a body: the record, or None if it is not an order."""
    try:
        msg = decode_client(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if type(msg) not in (NewOrder, Cancel, Replace):
        return None
    return order_record(msg, ACCOUNT)


def check(body: bytes) -> bytes | None:
    fast = _wire.parse_one(body, ACCOUNT)
    if fast is not None:
        assert slow(body) == fast, body
    return fast


ints = st.one_of(st.integers(-(1 << 63), (1 << 64) - 1), st.integers(-40, 300),
                 st.sampled_from([0, 1, -1, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, -(1 << 63)]))
values = st.one_of(ints, st.sampled_from(["buy", "sell", "limit", "market", "gtc", "ioc", "fok",
                                          "NewOrder", "Cancel", "Replace", "Logon", "", "x"]),
                   st.booleans(), st.none(), st.floats(allow_nan=False), st.binary(max_size=3))
keys = st.sampled_from(["type", "cl_ord_id", "instrument", "side", "qty", "price", "ord_type",
                        "tif", "post_only", "account", "colour"])


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(keys, values, max_size=10))
def test_random_maps_are_taken_only_as_msgspec_reads_them(d) -> None:
    check(msgspec.msgpack.encode(d))


def plain_orders():
    side = st.sampled_from(["buy", "sell"])
    i64 = st.integers(-(1 << 63), (1 << 63) - 1)
    new = st.builds(NewOrder, cl_ord_id=st.integers(1, (1 << 32) - 1),
                    instrument=st.integers(0, (1 << 32) - 1), side=side, qty=i64, price=i64,
                    ord_type=st.sampled_from(["limit", "market"]),
                    tif=st.sampled_from(["gtc", "ioc", "fok"]), post_only=st.booleans())
    cancel = st.builds(Cancel, cl_ord_id=st.integers(1, (1 << 32) - 1))
    replace = st.builds(Replace, cl_ord_id=st.integers(1, (1 << 32) - 1), price=i64, qty=i64)
    return st.one_of(new, cancel, replace)


@settings(max_examples=1000, deadline=None)
@given(plain_orders())
def test_every_order_a_client_encodes_is_taken_and_read_exactly(msg) -> None:
    body = frame(msg)[4:]
    assert check(body) == order_record(msg, ACCOUNT)


@settings(max_examples=500, deadline=None)
@given(plain_orders(), st.data())
def test_a_damaged_order_is_never_taken_wrongly(msg, data) -> None:
    body = bytearray(frame(msg)[4:])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    check(bytes(body[:cut]))
    check(bytes(body))
    check(bytes(body) + b"\x00")


def test_encodings_the_fast_path_leaves_to_msgspec() -> None:
    # str8 keys and wide ints are taken; map16 and duplicate keys are left to the slow path
    body = (b"\x82\xd9\x04type\xa6Cancel\xa9cl_ord_id\xcf" + struct.pack(">Q", 5))
    assert check(body) is not None
    dup = b"\x83\xa4type\xa6Cancel\xa9cl_ord_id\x01\xa9cl_ord_id\x02"
    assert _wire.parse_one(dup, ACCOUNT) is None and slow(dup) is not None
    map16 = b"\xde\x00\x02\xa4type\xa6Cancel\xa9cl_ord_id\x01"
    assert _wire.parse_one(map16, ACCOUNT) is None and slow(map16) is not None


def test_scan_stops_where_the_slow_path_must_take_over() -> None:
    orders = [frame(Cancel(cl_ord_id=i)) for i in (1, 2)]
    body = msgspec.msgpack.encode({"type": "Heartbeat"})
    beat = struct.pack(">I", len(body)) + body
    buf = b"".join(orders) + beat + orders[0] + b"\x00\x00"
    out = bytearray()
    pos, taken, status = _wire.scan(buf, 0, len(buf), ACCOUNT, out, 1 << 16, 100)
    assert (pos, taken, status) == (len(orders[0]) * 2, 2, _wire.SLOW)
    assert len(out) == 2 * 56
    pos, taken, status = _wire.scan(buf, pos + len(beat), len(buf), ACCOUNT, out, 1 << 16, 100)
    assert (pos, taken, status) == (len(buf) - 2, 1, _wire.DONE)     # an incomplete frame left
    pos, taken, status = _wire.scan(buf, 0, len(buf), ACCOUNT, out, 1 << 16, 1)
    assert (taken, status) == (1, _wire.LIMIT)
    big = struct.pack(">I", 1 << 20) + b"\0" * 8
    assert _wire.scan(big, 0, len(big), ACCOUNT, out, 1 << 16, 100) == (0, 0, _wire.TOO_LARGE)


@pytest.mark.parametrize("account", [1, (1 << 31) - 1])
def test_the_account_owns_the_order_id(account: int) -> None:
    rec = _wire.parse_one(frame(Cancel(cl_ord_id=(1 << 32) - 1))[4:], account)
    oid, acct = struct.unpack_from("<q", rec, 16)[0], struct.unpack_from("<I", rec, 44)[0]
    assert (oid, acct) == ((account << 32) | ((1 << 32) - 1), account)
