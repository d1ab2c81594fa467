"""The gateway benchmark: `engine bench gateway`.

Measures the TCP gateway end to end: acknowledged orders per second and the round trip of
each order (NewOrder sent -> its first ExecutionReport received), over real loopback TCP
connections, into an HDR histogram. In the same run it measures the physical limit of this
stack: the same client, frames, window and rate against a minimal uvloop server that only
echoes frames, so the report can say what share of that limit the engine reaches.

    1. servers    the engine (``engine.gateway.server.serve``, durability ``write`` by default,
                  a temporary journal) and the echo server each run in a process of their own,
                  started afresh for every repeat, so each has its own core as in production
    2. orders     every connection cycles through 65,536 orders encoded before timing from a
                  fixed seed; only the 4-byte cl_ord_id (a msgpack uint32 at a fixed offset) is
                  written at send time, so ids stay unique for any run length
    3. load       one client process (uvloop, asyncio.Protocol), N logged-on connections:
                  ``--rate max`` keeps ``--window`` orders outstanding per connection;
                  ``--rate R`` sends R orders/s in all on a schedule, and measures each round
                  trip from the order's *intended* send time (coordinated omission corrected)
    4. window     a warm-up, then ``--duration`` seconds measured; then sending stops and every
                  outstanding order must still be acknowledged (``missing`` counts those never)

It measures; it never changes what the gateway or the engine does (the bench's config only lifts
the per-connection rate limit, so the limiter does not cap what is measured). Every file it writes
is in a temporary directory that it removes.

Profiling the server: with ``ENGINE_BENCH_PROFILE=/tmp/gw`` set (and py-spy installed), each
engine server process is sampled by ``py-spy record --pid`` and its collapsed stacks are
written to ``/tmp/gw-<run>.txt`` (flamegraph input; the load generator is not sampled).
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

    from .config import EngineConfig

__all__ = ["TARGETS", "BenchArgumentError", "OrderPool", "make_orders", "pool_commands",
           "parse_rate", "bench_config", "bench_key", "hdr_from_ns", "run_gateway_bench",
           "format_report", "main"]

# The targets from the issue, for this machine: figure -> (">=" or "<=", value, when it applies).
TARGETS: dict[str, tuple[str, float, str]] = {
    "acked_per_s": (">=", 100_000, "max"),     # one pipelined connection, durability write
    "engine_share": (">=", 0.5, "max"),
    "p99_us": ("<=", 250, "paced"),            # at 5,000 orders/s
}

POOL = 65_536                  # distinct orders per connection; the run cycles through them
ID_BASE = 1 << 16              # the smallest id msgpack encodes as a uint32 (0xce + 4 bytes)
INSTRUMENT = 1                 # AAPL in the default config: tick 0.01, lots of 1
MID = 15_000                   # ticks: $150.00
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 10.0
SPIN_S = 0.002                 # paced: closer than this to the next send, poll instead of sleeping

_HEADER = struct.Struct(">I")
_ID = struct.Struct(">I")
_FOUR = np.arange(4, dtype=np.int64)


class BenchArgumentError(ValueError):
    """An argument the benchmark cannot run with (the CLI prints it and exits 2)."""


def parse_rate(text: str | float | int | None) -> float | None:
    """``"max"`` (or None) -> None: pipelined; otherwise a positive number of orders/s."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "max"):
        return None
    try:
        rate = float(text)
    except (TypeError, ValueError):
        raise BenchArgumentError(f"--rate must be 'max' or a positive number of orders/s,"
                                 f" got {text!r}") from None
    if not rate > 0 or rate == float("inf"):
        raise BenchArgumentError(f"--rate must be 'max' or a positive number of orders/s,"
                                 f" got {text!r}")
    return rate


# -- the orders -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderPool:
    """A connection's pre-encoded NewOrder frames, back to back in ``data``: frame j is
    ``data[offsets[j]:offsets[j + 1]]`` and its cl_ord_id's 4 big-endian bytes start at
    ``id_at[j]``."""

    data: bytes
    offsets: np.ndarray
    id_at: np.ndarray
    kinds: dict[str, int]

    def __len__(self) -> int:
        return len(self.offsets) - 1


def make_orders(n: int = POOL, seed: int = 42, stream: int = 0) -> OrderPool:
    """``n`` NewOrder frames on one instrument around a fixed mid, alternating buy and sell:

    - 48% passive GTC limits 1-10 ticks away from the mid (they rest);
    - 27% limit IOCs and 25% GTC limits 11-15 ticks through the mid, past every passive
      level: they trade, the IOCs' remainder is cancelled, the GTCs' rests where the next
      order on the other side takes it.

    Slightly more aggressive than passive flow keeps the book small and bounded (a few to a
    few hundred resting orders, however long the run), and about half the orders trade on
    arrival: about 3 reports per order (new, trades as taker and maker). Quantities 1-100 lots.
    Same seed and stream, same frames.
    """
    from .gateway.protocol import NewOrder, frame

    rng = np.random.default_rng([seed, stream])
    kind = rng.random(n)
    away = rng.integers(1, 11, n)
    through = rng.integers(11, 16, n)
    qty = rng.integers(1, 101, n)
    frames: list[bytes] = []
    kinds = {"passive": 0, "ioc": 0, "aggressive_gtc": 0}
    for i in range(n):
        buy = i % 2 == 0
        sign = 1 if buy else -1
        k = kind[i]
        if k < 0.48:
            price, tif, name = MID - sign * int(away[i]), "gtc", "passive"
        elif k < 0.75:
            price, tif, name = MID + sign * int(through[i]), "ioc", "ioc"
        else:
            price, tif, name = MID + sign * int(through[i]), "gtc", "aggressive_gtc"
        kinds[name] += 1
        frames.append(frame(NewOrder(cl_ord_id=ID_BASE, instrument=INSTRUMENT,
                                     side="buy" if buy else "sell", qty=int(qty[i]),
                                     price=price, ord_type="limit", tif=tif)))
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(f) for f in frames])
    marker = b"\xa9cl_ord_id\xce"          # the key, then the uint32 type byte
    id_at = offsets[:-1] + np.array([f.index(marker) + len(marker) for f in frames],
                                    dtype=np.int64)
    return OrderPool(b"".join(frames), offsets, id_at, kinds)


def pool_commands(pool: OrderPool, account: int = 1) -> np.ndarray:
    """The pool's orders as the engine's COMMAND_DTYPE records, as the gateway makes them from
    NewOrder messages (cl_ord_id k + 1 for frame k), unstamped: for measuring the server's
    pieces without sockets (benchmarks/bench_gateway.py)."""
    from .gateway.protocol import decode_client
    from .gateway.reports import order_id_for
    from .schema import COMMAND_DTYPE, CommandType, OrdType, Side, TimeInForce

    out = np.zeros(len(pool), dtype=COMMAND_DTYPE)
    for k in range(len(pool)):
        m = decode_client(pool.data[int(pool.offsets[k]) + 4:int(pool.offsets[k + 1])])
        r = out[k]
        r["cmd"] = CommandType.NEW
        r["order_id"] = order_id_for(account, k + 1)
        r["instrument"] = m.instrument
        r["account"] = account
        r["side"] = Side.BUY if m.side == "buy" else Side.SELL
        r["price"] = m.price
        r["qty"] = m.qty
        r["ord_type"] = OrdType.LIMIT if m.ord_type == "limit" else OrdType.MARKET
        r["tif"] = TimeInForce.GTC if m.tif == "gtc" else TimeInForce.IOC
    return out


# -- the engine's config for the bench ------------------------------------------------------------

def bench_key(account: int) -> str:
    return f"bench-key-{account}"


def bench_config(n_accounts: int) -> EngineConfig:
    """The default config (pre-trade risk on) with one trader account per connection (ids
    1..n, keys ``bench_key(id)``), each with the cash and short allowance to buy and sell the
    bench instrument without end, and the per-connection rate limit lifted."""
    from .config import AccountConfig, AccountInstrumentConfig, CashConfig, default_config
    from .gateway.auth import hash_key

    base = default_config()
    symbol = next(i.symbol for i in base.instruments if i.id == INSTRUMENT)
    accounts = tuple(AccountConfig(
        id=i, name=f"bench{i}", api_key_hash=hash_key(bench_key(i)), base_currency="USD",
        cash=(CashConfig(currency="USD", amount=Decimal(10**12)),),
        instruments=(AccountInstrumentConfig(symbol=symbol, short_limit=Decimal(10**12)),))
        for i in range(1, n_accounts + 1))
    gateway = msgspec.structs.replace(base.gateway, max_msgs_per_s=10**9, msg_burst=10**9,
                                      max_sessions=max(base.gateway.max_sessions,
                                                       n_accounts + 1))
    return msgspec.structs.replace(base, accounts=accounts, gateway=gateway)


# -- the servers (each in its own process) --------------------------------------------------------

class _Echo(asyncio.Protocol):
    """Writes every whole frame back unchanged: one write per read, as little as the framing
    allows."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses (duck-typed)
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        if buf:
            buf += data
            data = buf                 # type: ignore[assignment]
        pos, end = 0, len(data)
        unpack = _HEADER.unpack_from
        while end - pos >= 4:
            stop = pos + 4 + unpack(data, pos)[0]
            if stop > end:
                break
            pos = stop
        assert self.transport is not None
        if data is buf:
            if pos:
                self.transport.write(buf[:pos])
                del buf[:pos]
        else:                          # the common case: nothing left over from the last read
            if pos:
                self.transport.write(data if pos == end else data[:pos])
            if pos < end:
                self.buf = bytearray(data[pos:])


def _stop_with_parent() -> None:
    """Stop this server (as SIGTERM would) when the bench's end of stdin closes: a bench that
    dies must not leave a server running."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            os.kill(os.getpid(), signal.SIGTERM)

    loop.add_reader(fd, readable)


def _serve_echo() -> int:
    from .gateway.server import install_uvloop

    install_uvloop()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Echo, HOST, 0)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        _stop_with_parent()
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(run())
    print(json.dumps({}), flush=True)
    return 0


class _GcPauses:
    """The server's garbage-collector pauses (gc.callbacks), reported with its statistics:
    a full collection over a large heap stalls every session at once."""

    def __init__(self) -> None:
        self.started = 0
        self.pauses_ns: list[tuple[int, int]] = []       # (generation, ns)
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter_ns()
        elif self.started:
            self.pauses_ns.append((info["generation"], time.perf_counter_ns() - self.started))

    def summary(self) -> dict[str, Any]:
        ns = [p for _, p in self.pauses_ns]
        return {"collections": len(ns),
                "full": sum(1 for g, _ in self.pauses_ns if g == 2),
                "max_ms": round(max(ns) / 1e6, 3) if ns else 0.0,
                "total_ms": round(sum(ns) / 1e6, 3)}


def _serve_engine(accounts: int, journal: str | None, durability: str) -> int:
    from .gateway.server import serve

    held: list[Any] = []
    pauses = _GcPauses()

    def ready(server: Any, port: int) -> None:
        held.append(server)
        pauses.pauses_ns.clear()      # count the pauses under load, not those of start-up
        _stop_with_parent()
        print(f"port {port}", flush=True)

    serve(bench_config(accounts), host=HOST, port=0, journal_dir=journal,
          durability=durability, ready=ready)
    stats: dict[str, Any] = {}
    if held:
        s = held[0]
        stats = dict(s.stats)
        stats["open_orders"] = int(s.engine.core.open_orders)
        stats["last_seq"] = int(s.engine.last_seq)
        stats["gc"] = pauses.summary()
    print(json.dumps(stats), flush=True)
    return 0


def _cpu_seconds(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process so far (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick
    except (OSError, ValueError, IndexError):
        return None


class _ServerProcess:
    """A server child (``python -m engine.bench_gateway --serve ...``): it prints
    ``port N`` when listening and one JSON line of statistics when stopped by SIGTERM, and
    stops by itself if its stdin (a pipe from here) closes."""

    def __init__(self, kind: str, *, accounts: int = 1, journal: str | None = None,
                 durability: str = "write", profile: str | None = None) -> None:
        cmd = [sys.executable, "-m", "engine.bench_gateway", "--serve", kind,
               "--accounts", str(accounts), "--durability", durability]
        if journal is not None:
            cmd += ["--journal", journal]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.pid = self.proc.pid
        self.profiler: subprocess.Popen | None = None
        self.port = self._read_port()
        if profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            self.profiler = subprocess.Popen(
                [spy, "record", "--pid", str(self.pid), "--rate", "1000", "--format", "raw",
                 "--output", profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)           # let it attach before the load starts

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError("the benchmark's server process did not start")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("port "):
                    return int(line.split()[1])
                if not line:
                    continue

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the statistics line (empty if the process died without it)."""
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.send_signal(signal.SIGINT)      # py-spy writes its file on SIGINT
            try:
                self.profiler.wait(30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            return {}
        for line in reversed((out or "").splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return {}

    def kill(self) -> None:
        for p in (self.profiler, self.proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                f.close()


# -- the load generator ---------------------------------------------------------------------------

class _Ack(msgspec.Struct, gc=False):
    """The few fields the client reads from any server frame (the rest are skipped unread):
    decoding this is cheaper than decoding a whole ExecutionReport (see docs/benchmarks.md)."""

    type: str = ""
    cl_ord_id: int = 0
    exec_type: str = ""
    text: str = ""


_decode_fields = msgspec.msgpack.Decoder(_Ack).decode


def _decode_ack(body: bytes | bytearray) -> _Ack:
    """The fields of ``_Ack`` from any server frame; through the protocol's own decoder if the
    body is not a map with those keys (should the wire format change)."""
    try:
        return _decode_fields(body)
    except msgspec.ValidationError:
        from .gateway.protocol import decode_server

        m = decode_server(bytes(body))
        return _Ack(type=type(m).__struct_config__.tag, cl_ord_id=getattr(m, "cl_ord_id", 0),
                    exec_type=getattr(m, "exec_type", ""), text=getattr(m, "text", ""))


class _Client(asyncio.Protocol):
    """One logged-on connection of the load generator.

    Sends pre-encoded orders (stamping each cl_ord_id), and matches each order's first report
    by cl_ord_id: ``pending`` holds the ids not yet answered. The send and acknowledgement
    logs are arrays, joined with numpy after the run."""

    def __init__(self, pool: OrderPool, window: int) -> None:
        self.pool = pool
        self.data = memoryview(pool.data)
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.logon: asyncio.Future[_Ack] = asyncio.get_running_loop().create_future()
        self.logged_on = False
        self.sending = False          # max mode: refill the window on every read
        self.j = 0                    # next frame of the pool
        self.next_id = ID_BASE
        self.pending: set[int] = set()
        self.sent_ns = array("q")     # actual send time of id ID_BASE + k at index k
        self.intended_ns = array("q")  # paced: the schedule's time for it
        self.ack_ids = array("q")
        self.ack_ns = array("q")
        self.rejected = 0
        self.refused = 0              # gateway Rejects (not ExecutionReports)
        self.lost: str | None = None

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses (duck-typed)
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = f"connection lost: {exc}" if exc else "connection closed by the server"
        if not self.logon.done():
            self.logon.set_exception(ConnectionError(self.lost))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()   # when the bytes arrived: one time for the whole read
        buf = self.buf
        if buf:
            buf += data
            data = buf                 # type: ignore[assignment]
        pos, end = 0, len(data)
        if not self.logged_on:
            if end - pos >= 4 and end - pos - 4 >= _HEADER.unpack_from(data, pos)[0]:
                n = _HEADER.unpack_from(data, pos)[0]
                msg = _decode_ack(data[pos + 4:pos + 4 + n])
                pos += 4 + n
                self.logged_on = True
                if not self.logon.done():
                    self.logon.set_result(msg)
        unpack, decode = _HEADER.unpack_from, _decode_fields
        pending, ack_ids, ack_ns = self.pending, self.ack_ids, self.ack_ns
        while end - pos >= 4:
            stop = pos + 4 + unpack(data, pos)[0]
            if stop > end:
                break
            try:
                m = decode(data[pos + 4:stop])
            except msgspec.ValidationError:
                m = _decode_ack(data[pos + 4:stop])
            pos = stop
            cid = m.cl_ord_id
            if cid in pending:         # its first report: the order is acknowledged
                pending.discard(cid)
                e = m.exec_type
                if e:
                    if e == "rejected":
                        self.rejected += 1
                elif m.type == "Reject":
                    self.refused += 1
                    continue
                ack_ids.append(cid)
                ack_ns.append(now)
            elif m.type == "Logout":
                self.lost = f"logged out by the server: {m.text}"
        if pos:
            if data is buf:
                del buf[:pos]
            else:
                self.buf = bytearray(data[pos:])
        elif data is not buf:
            self.buf = bytearray(data)
        if self.sending:
            k = self.window - len(pending)
            if k > 0:
                self.send(k, now)

    # -- sending

    def send(self, k: int, now: int, intended: list[int] | None = None) -> None:
        """Send the next ``k`` orders in one write, each with a fresh cl_ord_id."""
        pool, offsets, id_at = self.pool, self.pool.offsets, self.pool.id_at
        n = len(pool)
        chunks = []
        first_id = self.next_id
        while k:
            j = self.j
            take = min(k, n - j)
            a = int(offsets[j])
            chunk = bytearray(self.data[a:int(offsets[j + take])])
            id0 = self.next_id
            if take <= 8:
                for x in range(take):
                    _ID.pack_into(chunk, int(id_at[j + x]) - a, id0 + x)
            else:
                view = np.frombuffer(chunk, dtype=np.uint8)
                at = id_at[j:j + take] - a
                ids = np.arange(id0, id0 + take, dtype=">u4").view(np.uint8).reshape(take, 4)
                view[at[:, None] + _FOUR] = ids
                del view
            chunks.append(chunk)
            self.next_id = id0 + take
            self.j = (j + take) % n
            k -= take
        count = self.next_id - first_id
        assert self.transport is not None
        self.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        self.pending.update(range(first_id, self.next_id))
        self.sent_ns.extend(array("q", (now,)) * count)
        if intended is not None:
            self.intended_ns.extend(intended)

    def logout(self) -> None:
        from .gateway.protocol import Logout, frame

        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(Logout()))
            self.transport.close()


@dataclass
class _Outcome:
    """One load run against one server, as arrays (latencies in ns)."""

    latency_ns: np.ndarray            # of the orders sent in the window: from the schedule
    raw_ns: np.ndarray                # the same, from the actual send time
    lag_ns: np.ndarray                # paced: actual - intended send time
    orders: int                       # sent (scheduled) in the window
    acked: int                        # first reports received in the window
    rejected: int = 0
    refused: int = 0
    missing: int = 0
    sent_total: int = 0
    acked_total: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float | None = None  # share of one core over the run
    server_sys: float | None = None  # the part of it in the kernel (sockets, journal writes)
    errors: list[str] = field(default_factory=list)


async def _drive(port: int, pools: list[OrderPool], *, engine: bool, rate: float | None,
                 window: int, warmup_s: float, duration_s: float,
                 server_pid: int | None) -> _Outcome:
    """Connect and log on every connection, run the warm-up and the measured window, stop
    sending, wait for the outstanding orders, log out."""
    from .gateway.protocol import Logon, frame

    loop = asyncio.get_running_loop()
    clients: list[_Client] = []
    for c, pool in enumerate(pools):
        client = _Client(pool, window)
        await loop.create_connection(lambda cl=client: cl, HOST, port)  # type: ignore[misc]
        account = c + 1
        assert client.transport is not None
        client.transport.write(frame(Logon(account=account, api_key=bench_key(account))))
        reply = await asyncio.wait_for(client.logon, START_TIMEOUT_S)
        expected = "LogonAck" if engine else "Logon"
        if reply.type != expected:
            raise RuntimeError(f"logon of account {account} refused: {reply.type} {reply.text}")
        clients.append(client)

    gc.collect()
    gc.freeze()                        # the pools and logs are long-lived: keep them out of GC
    cpu0 = time.process_time()
    srv0 = _cpu_seconds(server_pid) if server_pid else None
    t0 = time.perf_counter_ns()
    t_start = t0 + int(warmup_s * 1e9)
    t_end = t_start + int(duration_s * 1e9)

    if rate is None:
        for client in clients:
            client.sending = True
            client.send(window, time.perf_counter_ns())
        await asyncio.sleep(max(0.0, (t_end - time.perf_counter_ns()) / 1e9))
        for client in clients:
            client.sending = False
    else:
        await _pace(clients, rate, t0, t_end)
    srv1 = _cpu_seconds(server_pid) if server_pid else None
    cpu1 = time.process_time()

    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while any(c.pending for c in clients) and time.monotonic() < deadline \
            and not any(c.lost for c in clients):
        await asyncio.sleep(0.01)
    for client in clients:
        client.logout()
    await asyncio.sleep(0)
    gc.unfreeze()
    return _collect(clients, t_start, t_end, paced=rate is not None,
                    seconds=(t_end - t_start) / 1e9, client_cpu=cpu1 - cpu0,
                    server_cpu=None if srv0 is None or srv1 is None
                    else (srv1[0] - srv0[0], srv1[1] - srv0[1]),
                    elapsed=(t_end - t0) / 1e9)


async def _pace(clients: list[_Client], rate: float, t0: int, t_end: int) -> None:
    """Send order g (over all connections, round robin) at t0 + g / rate, until t_end.

    The loop's timers tick in milliseconds, coarser than 1 / rate, so within 2 ms of the next
    order this callback re-queues itself with call_soon: the loop still polls the sockets
    between two calls (acks are timestamped as they arrive) and sends leave on time."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    n = len(clients)
    step = 1e9 / rate
    state = {"g": 0}
    due: list[list[int]] = [[] for _ in clients]

    def tick() -> None:
        now = time.perf_counter_ns()
        g = state["g"]
        t = t0 + int(g * step)
        while t <= now and t < t_end:
            due[g % n].append(t)
            g += 1
            t = t0 + int(g * step)
        state["g"] = g
        for c, times in enumerate(due):
            if times:
                clients[c].send(len(times), now, times)
                due[c] = []
        if t >= t_end:
            done.set_result(None)
            return
        wait = (t - time.perf_counter_ns()) / 1e9
        if wait > SPIN_S:
            loop.call_later(wait - SPIN_S * 0.75, tick)
        else:
            loop.call_soon(tick)

    loop.call_soon(tick)
    await done


def _int64s(a: array) -> np.ndarray:
    return np.frombuffer(a, dtype=np.int64) if len(a) else np.zeros(0, dtype=np.int64)


def _collect(clients: list[_Client], t_start: int, t_end: int, *, paced: bool, seconds: float,
             client_cpu: float, server_cpu: tuple[float, float] | None,
             elapsed: float) -> _Outcome:
    lat, raw, lag = [], [], []
    orders = acked = sent_total = acked_total = 0
    out = _Outcome(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0,
                   seconds=seconds, client_cpu=client_cpu / elapsed,
                   server_cpu=None if server_cpu is None else sum(server_cpu) / elapsed,
                   server_sys=None if server_cpu is None else server_cpu[1] / elapsed)
    for c in clients:
        sent = _int64s(c.sent_ns)
        intended = _int64s(c.intended_ns) if paced else sent
        ids, at = _int64s(c.ack_ids), _int64s(c.ack_ns)
        k = ids - ID_BASE                  # cl_ord_id ID_BASE + k was the k-th order sent
        due_at = intended[k]
        in_window = (due_at >= t_start) & (due_at < t_end)
        lat.append((at - due_at)[in_window])
        raw.append((at - sent[k])[in_window])
        if paced:
            scheduled = (intended >= t_start) & (intended < t_end)
            lag.append((sent - intended)[scheduled])
        orders += int(np.count_nonzero((intended >= t_start) & (intended < t_end)))
        acked += int(np.count_nonzero((at >= t_start) & (at < t_end)))
        sent_total += len(sent)
        acked_total += len(ids)
        out.rejected += c.rejected
        out.refused += c.refused
        out.missing += len(c.pending)
        if c.lost and c.pending:
            out.errors.append(c.lost)
    out.latency_ns = np.concatenate(lat)
    out.raw_ns = np.concatenate(raw)
    out.lag_ns = np.concatenate(lag) if lag else np.zeros(0, np.int64)
    out.orders, out.acked = orders, acked
    out.sent_total, out.acked_total = sent_total, acked_total
    return out


def _run_loop(coro: Any) -> Any:
    """Run ``coro`` on a fresh uvloop loop (without changing the process's loop policy)."""
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:                # pragma: no cover - Windows
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# -- the histogram --------------------------------------------------------------------------------

def hdr_from_ns(values: np.ndarray) -> HdrHistogram:
    """An HdrHistogram (1 ns .. 1 h, 3 significant digits) of ``values`` (ns).

    With 3 significant digits a value v >= 2048 shares its bucket with every value equal to
    it in its top 11 bits; collapsing each value to its bucket's lowest first (numpy) leaves a
    few thousand distinct values to record, one Python call each, instead of one per sample."""
    from hdrh.histogram import HdrHistogram

    hist = HdrHistogram(1, 3_600 * 10**9, 3)
    v = np.maximum(np.asarray(values, dtype=np.int64), 1)
    if len(v):
        shift = np.maximum(0, np.floor(np.log2(v)).astype(np.int64) - 10)
        v = (v >> shift) << shift
        uniq, counts = np.unique(v, return_counts=True)
        for x, n in zip(uniq.tolist(), counts.tolist(), strict=True):
            hist.record_value(x, n)
    return hist


def _percentiles_us(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"p50": None, "p99": None, "p999": None, "max": None}
    h = hdr_from_ns(values)
    return {"p50": round(h.get_value_at_percentile(50) / 1000, 1),
            "p99": round(h.get_value_at_percentile(99) / 1000, 1),
            "p999": round(h.get_value_at_percentile(99.9) / 1000, 1),
            "max": round(h.get_max_value() / 1000, 1)}


# -- the whole benchmark --------------------------------------------------------------------------

def _one_run(kind: str, pools: list[OrderPool], *, rate: float | None, window: int,
             warmup_s: float, duration_s: float, durability: str, root: Path,
             index: int) -> tuple[_Outcome, dict[str, Any]]:
    journal = None
    if kind == "engine" and durability != "none":
        journal = str(root / f"journal-{index}")
    profile = os.environ.get("ENGINE_BENCH_PROFILE") if kind == "engine" else None
    server = _ServerProcess(kind, accounts=len(pools), journal=journal, durability=durability,
                            profile=f"{profile}-{index}.txt" if profile else None)
    try:
        out = _run_loop(_drive(server.port, pools, engine=kind == "engine", rate=rate,
                               window=window, warmup_s=warmup_s, duration_s=duration_s,
                               server_pid=server.pid))
        stats = server.stop()
    finally:
        server.kill()
        if journal is not None:
            shutil.rmtree(journal, ignore_errors=True)
    return out, stats


def _check(connections: int, rate: float | None, duration_s: float, window: int,
           durability: str, repeat: int, warmup_s: float) -> None:
    if not 1 <= connections <= 1000:
        raise BenchArgumentError(f"--connections must be 1..1000, got {connections}")
    if rate is not None and not rate > 0:
        raise BenchArgumentError(f"--rate must be 'max' or a positive number, got {rate}")
    if not duration_s > 0:
        raise BenchArgumentError(f"--duration must be a positive number of seconds,"
                                 f" got {duration_s}")
    if not warmup_s >= 0:
        raise BenchArgumentError(f"--warmup must be >= 0 seconds, got {warmup_s}")
    if window < 1:
        raise BenchArgumentError(f"--window must be >= 1, got {window}")
    if repeat < 1:
        raise BenchArgumentError(f"--repeat must be >= 1, got {repeat}")
    if durability not in ("write", "fsync", "none"):
        raise BenchArgumentError(f"--durability must be write, fsync or none, got"
                                 f" {durability!r}")


def run_gateway_bench(connections: int = 1, rate: float | None = None, duration_s: float = 5.0,
                      *, window: int = 500, durability: str = "write", repeat: int = 3,
                      warmup_s: float = 1.0, seed: int = 42,
                      directory: str | os.PathLike[str] | None = None,
                      progress: Any = None) -> dict[str, Any]:
    """Measure the engine's gateway and the echo baseline ``repeat`` times each (alternating,
    so drift on the host touches both alike); figures are medians over the repeats.

    ``rate`` None: pipelined, ``window`` orders outstanding per connection; otherwise orders/s
    over all connections, paced, latency from each order's intended send time."""
    _check(connections, rate, duration_s, window, durability, repeat, warmup_s)
    say = progress or (lambda msg: None)
    say(f"encoding {POOL:,} orders for each of {connections} connection"
        f"{'' if connections == 1 else 's'} (seed {seed})")
    pools = [make_orders(POOL, seed, c) for c in range(connections)]
    parent = Path(directory) if directory is not None else Path.cwd()
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".engine-bench-gateway-", dir=parent))
    mode = "max" if rate is None else f"{rate:,.0f} orders/s"
    runs: dict[str, list[tuple[_Outcome, dict[str, Any]]]] = {"engine": [], "echo": []}
    # other work on the host takes cores from the servers and the client: say how busy it was
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    try:
        for r in range(repeat):
            for kind in ("engine", "echo"):
                say(f"run {r + 1}/{repeat}: {kind} server, {connections} connection"
                    f"{'' if connections == 1 else 's'}, rate {mode}, warm-up {warmup_s:g} s +"
                    f" {duration_s:g} s")
                runs[kind].append(_one_run(kind, pools, rate=rate, window=window,
                                           warmup_s=warmup_s, duration_s=duration_s,
                                           durability=durability, root=root, index=r))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return _summarize(runs, connections=connections, rate=rate, window=window,
                      durability=durability, duration_s=duration_s, warmup_s=warmup_s,
                      repeat=repeat, seed=seed, pools=pools, directory=parent,
                      load=(load_before, load_after))


def _median(xs: list[Any], digits: int | None = None) -> Any:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    m = statistics.median(xs)
    return m if digits is None else round(m, digits)


def _summarize(runs: dict[str, list[tuple[_Outcome, dict[str, Any]]]], *, connections: int,
               rate: float | None, window: int, durability: str, duration_s: float,
               warmup_s: float, repeat: int, seed: int, pools: list[OrderPool],
               directory: Path, load: tuple[float | None, float | None]) -> dict[str, Any]:
    eng = [o for o, _ in runs["engine"]]
    echo = [o for o, _ in runs["echo"]]
    stats = [s for _, s in runs["engine"]]
    eng_rates = [o.acked / o.seconds for o in eng]
    echo_rates = [o.acked / o.seconds for o in echo]
    eng_p = [_percentiles_us(o.latency_ns) for o in eng]
    raw_p = [_percentiles_us(o.raw_ns) for o in eng]
    lag_p = [_percentiles_us(o.lag_ns) for o in eng]
    echo_p = [_percentiles_us(o.latency_ns) for o in echo]

    def med_p(ps: list[dict[str, float | None]]) -> dict[str, float | None]:
        return {k: _median([p[k] for p in ps]) for k in ("p50", "p99", "p999", "max")}

    lat, echo_lat = med_p(eng_p), med_p(echo_p)
    acked_per_s = round(statistics.median(eng_rates))
    echo_per_s = round(statistics.median(echo_rates))
    batches = sum(s.get("batches", 0) for s in stats)
    commands = sum(s.get("commands", 0) for s in stats)
    kinds: dict[str, int] = {}
    for p in pools:
        for k, v in p.kinds.items():
            kinds[k] = kinds.get(k, 0) + v
    r: dict[str, Any] = {
        "acked_per_s": acked_per_s,
        "echo_per_s": echo_per_s,
        "engine_share": round(acked_per_s / echo_per_s, 3) if echo_per_s else None,
        "p50_us": lat["p50"],
        "p99_us": lat["p99"],
        "p999_us": lat["p999"],
        "max_us": lat["max"],
        "latency_from": "send time" if rate is None
                        else "intended send time (coordinated omission corrected)",
        "connections": connections,
        "rate": "max" if rate is None else rate,
        "window": window if rate is None else None,
        "durability": durability,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "repeats": repeat,
        "seed": seed,
        "orders": sum(o.orders for o in eng),
        "acked": sum(o.acked for o in eng),
        "rejected": sum(o.rejected for o in eng),
        "refused": sum(o.refused for o in eng),
        "missing": sum(o.missing for o in eng),
        "sent_total": sum(o.sent_total for o in eng),
        "echo_missing": sum(o.missing for o in echo),
        "errors": [e for o in eng + echo for e in o.errors],
        "echo_latency_us": echo_lat,
        "uncorrected_latency_us": med_p(raw_p) if rate is not None else None,
        "send_lag_us": med_p(lag_p) if rate is not None else None,
        "runs": {
            "acked_per_s": [round(x) for x in eng_rates],
            "echo_per_s": [round(x) for x in echo_rates],
            "engine_share": [round(a / b, 3) if b else None
                             for a, b in zip(eng_rates, echo_rates, strict=True)],
            "p99_us": [p["p99"] for p in eng_p],
        },
        "cpu": {"server": _median([o.server_cpu for o in eng], 3),
                "server_sys": _median([o.server_sys for o in eng], 3),
                "client": _median([o.client_cpu for o in eng], 3),
                "echo_server": _median([o.server_cpu for o in echo], 3),
                "echo_client": _median([o.client_cpu for o in echo], 3)},
        "server": {"batches": batches, "commands": commands,
                   "commands_per_batch": round(commands / batches, 1) if batches else None,
                   "open_orders_at_end": [s.get("open_orders") for s in stats],
                   "gc_pauses": [s.get("gc") for s in stats]},
        "workload": {"instrument": INSTRUMENT, "mid_ticks": MID, "pool": POOL,
                     "kinds": {k: round(v / (POOL * connections), 3) for k, v in kinds.items()}},
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "directory": str(directory.resolve()),
                    "loadavg_1min": {"before": load[0], "after": load[1]}},
    }
    mode = "max" if rate is None else "paced"
    r["targets"] = {}
    for key, (op, target, when) in TARGETS.items():
        value = r[key]
        if when != mode or value is None:
            continue
        r["targets"][key] = {"op": op, "target": target,
                             "met": value >= target if op == ">=" else value <= target}
    return r


# -- the report -----------------------------------------------------------------------------------

def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def format_report(r: dict[str, Any]) -> str:
    paced = r["rate"] != "max"
    how = (f"paced at {r['rate']:,.0f} orders/s" if paced
           else f"pipelined, {r['window']:,} outstanding per connection")
    lat_note = ("from each order's intended send time (coordinated omission corrected)"
                if paced else "from the actual send time (with a full window, mostly queueing:"
                " about window / rate)")
    conns = f"{r['connections']} connection{'' if r['connections'] == 1 else 's'}"
    lines = [
        f"engine bench gateway — {conns}, {how}, durability {r['durability']},"
        f" {r['duration_s']:g} s after {r['warmup_s']:g} s warm-up, median of {r['repeats']}"
        f" run{'' if r['repeats'] == 1 else 's'}",
        "",
        f"  {'server':<28}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}{'p99.9 us':>10}"
        f"{'max us':>10}",
        f"  {'engine (acknowledged)':<28}{r['acked_per_s']:>12,}{_us(r['p50_us']):>10}"
        f"{_us(r['p99_us']):>10}{_us(r['p999_us']):>10}{_us(r['max_us']):>10}",
    ]
    e = r["echo_latency_us"]
    lines.append(f"  {'echo baseline':<28}{r['echo_per_s']:>12,}{_us(e['p50']):>10}"
                 f"{_us(e['p99']):>10}{_us(e['p999']):>10}{_us(e['max']):>10}")
    if paced and r["uncorrected_latency_us"]:
        u = r["uncorrected_latency_us"]
        lines.append(f"  {'engine, from actual send':<28}{'':>12}{_us(u['p50']):>10}"
                     f"{_us(u['p99']):>10}{_us(u['p999']):>10}{_us(u['max']):>10}")
    share, share_runs = r["engine_share"], r["runs"]["engine_share"]
    every = "every order acknowledged" if r["missing"] == 0 else "NOT every order acknowledged"
    lines += [
        "",
        f"  engine / echo: {'-' if share is None else f'{share:.2f}'}"
        f"  (runs: {', '.join('-' if x is None else f'{x:.2f}' for x in share_runs)})"
        + ("; paced, both keep the rate: compare the latencies" if paced else ""),
        f"  latency {lat_note}",
        f"  orders in the window {r['orders']:,}, acknowledged {r['acked']:,} (rejected"
        f" {r['rejected']:,}), gateway refusals {r['refused']:,}, missing {r['missing']:,}"
        f" ({every})",
    ]
    if paced and r["send_lag_us"]:
        lag = r["send_lag_us"]
        lines.append(f"  the generator's own lateness: p50 {_us(lag['p50'])} us, p99"
                     f" {_us(lag['p99'])} us, max {_us(lag['max'])} us")
    s, cpu = r["server"], r["cpu"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    lines += [
        f"  engine server: {s['commands']:,} commands in {s['batches']:,} batches"
        f" ({s['commands_per_batch'] or 0:,.1f} per batch), resting orders at the end"
        f" {', '.join(str(n) for n in s['open_orders_at_end'])}",
        "  engine server GC pauses: " + "; ".join(
            f"{g['collections']:,} ({g['full']} full), longest {g['max_ms']:.1f} ms"
            for g in s["gc_pauses"] if g),
        f"  CPU (share of one core): engine server {pct(cpu['server'])} (kernel"
        f" {pct(cpu['server_sys'])}), client"
        f" {pct(cpu['client'])}; echo server {pct(cpu['echo_server'])}, client"
        f" {pct(cpu['echo_client'])}",
    ]
    for key, t in r["targets"].items():
        lines.append(f"  target {key} {t['op']} {t['target']:,}: "
                     f"{'met' if t['met'] else 'MISSED'} ({r[key]:,})")
    for err in r["errors"][:5]:
        lines.append(f"  error: {err}")
    m = r["machine"]
    load = m.get("loadavg_1min") or {}
    lines.append(f"  {m['python']} on {m['platform']}, {m['cpus']} cpus"
                 + ("" if load.get("before") is None else
                    f", 1-min load average {load['before']:.2f} before the runs,"
                    f" {load['after']:.2f} after (the bench's own processes add 1-2)"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="engine bench gateway")
    p.add_argument("--serve", choices=("engine", "echo"), help=argparse.SUPPRESS)
    p.add_argument("--accounts", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--journal", default=None, help=argparse.SUPPRESS)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--rate", default="max")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--window", type=int, default=500)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--durability", choices=("write", "fsync", "none"), default="write")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dir", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.serve == "echo":
        return _serve_echo()
    if args.serve == "engine":
        return _serve_engine(args.accounts, args.journal, args.durability)
    progress = None if args.json else (lambda m: print(f"  .. {m}", file=sys.stderr, flush=True))
    try:
        r = run_gateway_bench(args.connections, parse_rate(args.rate), args.duration,
                              window=args.window, durability=args.durability,
                              repeat=args.repeat, warmup_s=args.warmup, seed=args.seed,
                              directory=args.dir, progress=progress)
    except BenchArgumentError as e:
        print(f"engine bench gateway: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r) if args.json else format_report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
