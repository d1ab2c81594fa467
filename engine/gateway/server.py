"""The TCP server: sessions on asyncio (uvloop), batches into the engine, outputs released when
durable.

Owns connections, logon and rights, per-connection limits, the release queue and the
per-account store of sent reports. Every command goes through ``engine.pipeline.Engine``
(sequencer -> journal -> core -> parts); this module never changes engine state any other way,
never sends an output before the journal's durability policy covers its command, and never
dies of a client's bytes.

    1. read       frames from every connection that had data in this turn of the event loop
    2. check      decode (msgspec), logon, rights, rate limit; refusals get a Reject at once
    3. batch      the turn's commands, from all connections, as one COMMAND_DTYPE array
    4. engine     Engine.process: stamp, journal, match; ReportBuilder numbers the reports
    5. outputs    reports, market data and replies join the release queue behind the batch's
                  last sequence number, and go out once the journal says it is durable
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from ..config import AccountConfig, EngineConfig
from ..instruments import InstrumentSet
from ..journal.format import JournalError
from ..pipeline import Engine
from ..schema import COMMAND_DTYPE, CommandType, EventType, Flags, Reason
from ..venues import VenueSet
from . import _wire, auth
from .marketdata import MarketData, instrument_status
from .routing import CONSOLIDATED, RouteRequestError, VenueNames, fee_unit
from .protocol import (
    CLIENT_TYPES,
    HEADER,
    Cancel,
    decode_client,
    frame,
    Halt,
    Heartbeat,
    InstrumentInfo,
    KillSwitch,
    Logon,
    LogonAck,
    LogonReject,
    Logout,
    MassCancel,
    MassCancelReport,
    message_type,
    NewOrder,
    OrderQuery,
    Orders,
    OrderState,
    Reject,
    Replace,
    Restrict,
    Resume,
    RiskQuery,
    RiskReport,
    ServerHeartbeat,
    ServerLogout,
    SetLimits,
    SetRisk,
    Status,
    StatusReport,
    Subscribe,
    Unsubscribe,
)
from ._reports import FastReportBuilder
from .reports import CL_ORD_ID_MASK, order_id_for, order_states
from .risk import RiskGateway, RiskRequestError

log = logging.getLogger("engine.gateway")

# one command record, as COMMAND_DTYPE lays it out (seq and ts_ns are stamped by the sequencer)
_CMD = struct.Struct("<qqqqqIIBBBBHH")
assert _CMD.size == COMMAND_DTYPE.itemsize

_SIDE = {"buy": 1, "sell": 2}
_ORD_TYPE = {"limit": 1, "market": 2}
_TIF = {"gtc": 1, "ioc": 2, "fok": 3}

# release-queue targets
_TO_ACCOUNT, _TO_SESSION, _TO_SUBSCRIBERS = 0, 1, 2


_NO_VENUES = VenueNames()


def order_record(msg: NewOrder | Cancel | Replace, account: int,
                 venues: VenueNames | None = None) -> bytes:
    """The COMMAND_DTYPE record of an order message (the fast path in ``_wire`` writes the same
    bytes for the messages it takes). A NewOrder naming a venue (or SMART: a ROUTE) needs the
    engine's ``venues``; RouteRequestError if the gateway refuses it."""
    oid = order_id_for(account, msg.cl_ord_id)
    if type(msg) is NewOrder:
        if not (msg.venue or msg.strategy or msg.post_venue):     # absent or nil: as before
            return _CMD.pack(0, 0, oid, msg.price, msg.qty, msg.instrument, account,
                             CommandType.NEW, _SIDE[msg.side], _ORD_TYPE[msg.ord_type],
                             _TIF[msg.tif], int(msg.post_only), 0)
        cmd, venue, flags = (venues or _NO_VENUES).command(msg)
        return _CMD.pack(0, 0, oid, msg.price, msg.qty, msg.instrument, account, cmd,
                         _SIDE[msg.side], _ORD_TYPE[msg.ord_type], _TIF[msg.tif], flags, venue)
    if type(msg) is Cancel:
        return _CMD.pack(0, 0, oid, 0, 0, 0, account, CommandType.CANCEL, 0, 0, 0, 0, 0)
    return _CMD.pack(0, 0, oid, msg.price, msg.qty, 0, account, CommandType.REPLACE, 0, 0, 0, 0,
                     0)


def _skip(frames: bytes, n: int) -> int:
    """The offset of the frame after the first ``n`` in a run of frames."""
    pos = 0
    for _ in range(n):
        pos += 4 + HEADER.unpack_from(frames, pos)[0]
    return pos


class ReportStore:
    """The execution reports released to each account, the newest ``capacity`` kept for
    resends.

    Reports are kept as runs: one bytes object per account per batch (the frames back to back)
    with the report numbers it spans, so a busy account costs a few objects per batch, not one
    per report (fewer objects for the garbage collector to walk, one write per run).
    ``released[account]`` is the last report_seq handed out; after a restart it starts from the
    recovered numbering, with only what recovery regenerated kept before it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # account -> deque of (first report_seq, last report_seq, frames joined)
        self.kept: dict[int, deque[tuple[int, int, bytes]]] = {}
        self.count: dict[int, int] = {}
        self.released: dict[int, int] = {}

    def add(self, account: int, report_seq: int, data: bytes) -> None:
        """One report (recovery hands them over one by one)."""
        self.add_run(account, report_seq, report_seq, data)

    def add_run(self, account: int, first: int, last: int, data: bytes) -> None:
        self.released[account] = last
        if not self.capacity:
            return
        q = self.kept.get(account)
        if q is None:
            q = self.kept[account] = deque()
            self.count[account] = 0
        if q and q[-1][1] == first - 1 and q[-1][1] - q[-1][0] + last - first < 63:
            # small runs (one report each, as recovery or a quiet account makes them) are
            # merged, up to 64 reports, so that the count of objects stays low
            f, _, d = q.pop()
            q.append((f, last, d + data))
        else:
            q.append((first, last, data))
        n = self.count[account] + last - first + 1
        while n > self.capacity:
            f, l, d = q.popleft()
            if n - (l - f + 1) >= self.capacity:
                n -= l - f + 1
                continue
            drop = n - self.capacity      # the oldest run straddles the bound: trim it
            q.appendleft((f + drop, l, d[_skip(d, drop):]))
            n -= drop
        self.count[account] = n

    def since(self, account: int, last_seen: int) -> tuple[list[bytes], int, int]:
        """The kept frames after ``last_seen`` (runs of frames), how many reports they hold, and
        the last report_seq that can no longer be resent (0: nothing missing)."""
        top = self.released.get(account, 0)
        if last_seen >= top:
            return [], 0, 0
        q = self.kept.get(account) or deque()
        first = q[0][0] if q else top + 1
        lost = first - 1 if last_seen + 1 < first else 0
        out: list[bytes] = []
        for f, l, data in q:
            if l <= last_seen:
                continue
            if f > last_seen:
                out.append(data)
                continue
            out.append(data[_skip(data, last_seen - f + 1):])   # straddles last_seen
        return out, top - max(last_seen, first - 1), lost


class Session(asyncio.Protocol):
    """One TCP connection. Reads frames, answers what it can at once, hands commands to the
    server's batch."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.account: AccountConfig | None = None
        self.cancel_on_disconnect = False
        self.logged_out = False
        self.closing = False
        self.subscriptions: set[int] = set()   # market-data views (MarketData keys)
        self._buf = bytearray()
        self._tokens = float(server.gw.msg_burst)
        self._refill = time.monotonic()
        self.last_recv = self.last_sent = time.monotonic()

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  (uvloop's is not a subclass)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.server.admit(self):
            self.close(Reason.GATEWAY_TOO_MANY_SESSIONS,
                       f"the server has {self.server.gw.max_sessions} sessions already")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        now = time.monotonic()
        self.last_recv = now
        buf = self._buf
        buf += data
        server = self.server
        gw = server.gw
        limit = gw.max_frame_bytes
        self._tokens = min(float(gw.msg_burst),
                           self._tokens + (now - self._refill) * gw.max_msgs_per_s)
        self._refill = now
        pos, end = 0, len(buf)
        while end - pos >= 4:
            if self.account is not None and server.stopped is None:
                # the fast path takes the run of plain order frames straight into the batch
                pos, taken, status = _wire.scan(buf, pos, end, self.account.id, server._batch,
                                                limit, int(self._tokens), server.venue_table)
                if taken:
                    self._tokens -= taken
                    server.schedule_flush()
                if status == _wire.DONE:
                    break
            (n,) = HEADER.unpack_from(buf, pos)
            if n > limit:
                self.close(Reason.GATEWAY_FRAME_TOO_LARGE,
                           f"frame of {n} bytes; the limit is {limit}")
                return
            if end - pos - 4 < n:
                break
            body = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            self.handle(body)
            if self.closing:
                return
        if pos:
            del buf[:pos]

    # -- messages -----------------------------------------------------------------------------

    def handle(self, body: bytes) -> None:
        try:
            msg = decode_client(body)
        except msgspec.ValidationError as e:
            t = message_type(body)
            if t is None:
                self.reject(Reason.GATEWAY_MALFORMED, f"not a message (a map with a 'type'): {e}")
            elif t not in CLIENT_TYPES:
                self.reject(Reason.GATEWAY_UNKNOWN_MESSAGE, f"unknown message type {t!r}", t)
            else:
                self.reject(Reason.GATEWAY_INVALID_FIELD, str(e), t)
            return
        except msgspec.DecodeError as e:
            self.reject(Reason.GATEWAY_MALFORMED, f"not MessagePack: {e}")
            return
        if self._tokens < 1.0:
            self.reject(Reason.GATEWAY_RATE_LIMITED,
                        f"more than {self.server.gw.max_msgs_per_s} messages/s",
                        type(msg).__name__, getattr(msg, "cl_ord_id", 0))
            return
        self._tokens -= 1.0
        if self.account is None:
            if isinstance(msg, Logon):
                self.server.logon(self, msg)
            else:
                self.reject(Reason.GATEWAY_NOT_LOGGED_ON, "send Logon first",
                            type(msg).__name__, getattr(msg, "cl_ord_id", 0))
            return
        self.server.on_message(self, msg)

    def reject(self, reason: int, text: str, ref_type: str = "", cl_ord_id: int = 0) -> None:
        self.send(frame(Reject(reason=int(reason), text=text, ref_type=ref_type,
                               cl_ord_id=cl_ord_id)))

    def send(self, data: bytes) -> None:
        t = self.transport
        if t is None or self.closing:
            return
        t.write(data)
        self.last_sent = time.monotonic()
        if t.get_write_buffer_size() > self.server.gw.send_buffer_bytes:
            self.close(Reason.GATEWAY_SLOW_CONSUMER,
                       f"more than {self.server.gw.send_buffer_bytes} bytes unread")

    def close(self, reason: int, text: str) -> None:
        """Say why in a Logout frame, then close (abort if the peer does not read it)."""
        t = self.transport
        if t is None or self.closing:
            return
        t.write(frame(ServerLogout(reason=int(reason), text=text)))
        self.closing = True
        log.info("session %s (%s): closed: %s", self.peer,
                 self.account.name if self.account else "not logged on", text)
        t.close()
        self.server.loop.call_later(5.0, t.abort)
        self.server.forget(self)      # gone for routing now, even while the Logout drains


class Server:
    """The gateway: one Engine, many sessions, one event loop.

    >>> server = Server(default_config(), journal_dir="var/journal")   # doctest: +SKIP
    >>> port = await server.start("127.0.0.1", 0)                      # doctest: +SKIP
    """

    def __init__(self, config: EngineConfig, *, journal_dir: str | os.PathLike[str] | None = None,
                 durability: str | None = None, clock_ns: Callable[[], int] = time.time_ns,
                 **engine_kwargs: Any) -> None:
        self.config = config
        self.gw = config.gateway
        self.instruments = InstrumentSet.from_config(config)
        self.accounts = {a.id: a for a in config.accounts}
        # venue names on the wire (docs/PROTOCOL.md, "Venues and smart order routing")
        self.venues = VenueNames(VenueSet.from_config(config, self.instruments))
        self.venue_table = self.venues.wire_table
        # recovery regenerates the reports since the snapshot it starts from, byte for byte, so
        # that a client who missed them before a crash has them resent
        self.store = ReportStore(self.gw.report_store)
        self.reports = FastReportBuilder(recovered=self.store.add_run, runs=True,
                                         venues=self.venues.names)
        self.engine = Engine.from_config(config, journal_dir=journal_dir,
                                         durability=durability,  # type: ignore[arg-type]
                                         clock_ns=clock_ns, parts=(self.reports,),
                                         **engine_kwargs)
        self.reports.recovered = None
        self.store.released.update(self.reports.last)
        # risk messages (SetRisk, KillSwitch, Restrict, RiskQuery): None when risk is off
        self.risk: RiskGateway | None = None
        if self.engine.risk is not None:
            from ..risk.setup import RiskSetup

            self.risk = RiskGateway(RiskSetup(config, self.instruments), self.engine.risk,
                                    self.instruments)
        self.md = MarketData(self.engine.core, self.gw.book_depth, self.venues)
        self.instrument_info = [self.venues.with_venues(InstrumentInfo(
            id=i.id, symbol=i.symbol, asset_class=i.config.asset_class,
            tick_size=str(i.tick_size), lot_size=str(i.lot_size),
            multiplier=str(i.config.multiplier), currency=i.config.currency,
            min_qty=i.min_lots, max_qty=i.max_lots), fee_unit(i, self.engine.risk))
            for i in self.instruments]
        self.venue_info = self.venues.venue_info(self.instruments)
        self.sessions: set[Session] = set()
        self.by_account: dict[int, Session] = {}
        self.subscribers: dict[int, set[Session]] = {}
        self._batch = bytearray()
        self._replies: list[tuple[int, Session, Any]] = []   # (index in batch, requester, msg)
        self._flush_scheduled = False
        self._outq: deque[tuple[int, int, Any, bytes]] = deque()
        self._durable = self.engine.durable_seq
        self._loop_thread = 0
        self.stopped: JournalError | None = None
        self.stopping = False
        # called once if the journal fails (`engine serve` then exits with status 1)
        self.on_engine_stopped: Callable[[JournalError], None] | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.base_events.Server | None = None
        self._ticker: asyncio.Task | None = None
        self.stats = {"batches": 0, "commands": 0}

    # -- starting and stopping -----------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen; returns the port (pass 0 for a free one)."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.engine.on_durable(self._durable_from_thread)
        # what recovery built lives as long as the server: keep it out of the collector's scans
        gc.collect()
        gc.freeze()
        self._server = await self.loop.create_server(
            lambda: Session(self), self.gw.host if host is None else host,
            self.gw.port if port is None else port, reuse_address=True)
        self._ticker = self.loop.create_task(self._tick())
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, log every session out, release what is durable, close the journal.

        Resting orders stay as they are, as across any restart: cancel-on-disconnect is for a
        client that goes away, not for the server stopping."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._batch:
            self._flush()
        if self.stopped is None:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, self.engine.wait_durable, self.engine.last_seq, 30.0)
            except JournalError:
                pass
            self._durable = max(self._durable, self.engine.durable_seq)
            self._release()
        for s in list(self.sessions):
            s.close(Reason.GATEWAY_SHUTTING_DOWN, "the server is shutting down")
        await asyncio.sleep(0)        # let the transports flush their Logout frames
        self.engine.close()
        log.info("stopped: %d commands journaled, durable to seq %d", self.engine.last_seq,
                 self.engine.durable_seq)

    def admit(self, session: Session) -> bool:
        if len(self.sessions) >= self.gw.max_sessions:
            return False
        self.sessions.add(session)
        return True

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)
        for key in session.subscriptions:
            subs = self.subscribers.get(key)
            if subs is not None:
                subs.discard(session)
                if not subs:
                    del self.subscribers[key]
                    self.md.unwatch(key)
        acct = session.account
        if acct is not None and self.by_account.get(acct.id) is session:
            del self.by_account[acct.id]
            log.info("session %s (%s): ended", session.peer, acct.name)
            if session.cancel_on_disconnect and not session.logged_out and self.stopped is None \
                    and not self.stopping:
                self._add(_CMD.pack(0, 0, 0, 0, 0, 0, acct.id, CommandType.MASS_CANCEL, 0, 0, 0, 0,
                                    0))

    # -- logon and messages ----------------------------------------------------------------------

    def logon(self, s: Session, msg: Logon) -> None:
        acct = self.accounts.get(msg.account)
        ok = auth.verify(msg.api_key, acct.api_key_hash if acct else auth.DUMMY_STORED)
        if acct is None or not ok:
            log.warning("session %s: logon refused for account %d", s.peer, msg.account)
            s.send(frame(LogonReject(reason=Reason.GATEWAY_AUTH_FAILED,
                                     text="unknown account or wrong API key")))
            return
        if acct.id in self.by_account:
            s.send(frame(LogonReject(reason=Reason.GATEWAY_ACCOUNT_IN_USE,
                                     text=f"account {acct.id} is logged on on another"
                                          " connection")))
            return
        if self.stopped is not None:
            s.send(frame(LogonReject(reason=Reason.GATEWAY_ENGINE_STOPPED, text=str(self.stopped))))
            return
        s.account = acct
        s.cancel_on_disconnect = (acct.cancel_on_disconnect if msg.cancel_on_disconnect is None
                                  else msg.cancel_on_disconnect)
        self.by_account[acct.id] = s
        resend, resent, lost = self.store.since(acct.id, msg.last_report_seq)
        s.send(frame(LogonAck(
            account=acct.id, role=acct.role,
            next_report_seq=self.store.released.get(acct.id, 0) + 1,
            heartbeat_s=self.gw.heartbeat_ms / 1000, idle_timeout_s=self.gw.idle_timeout_ms / 1000,
            cancel_on_disconnect=s.cancel_on_disconnect, instruments=self.instrument_info,
            resent=resent, lost_before=lost, venues=self.venue_info)))
        for data in resend:
            s.send(data)
        log.info("session %s: %s (account %d) logged on, %d reports resent", s.peer, acct.name,
                 acct.id, resent)

    def on_message(self, s: Session, msg: Any) -> None:
        acct = s.account
        assert acct is not None
        if self.stopped is not None and not isinstance(msg, (Heartbeat, Logout)):
            s.reject(Reason.GATEWAY_ENGINE_STOPPED, str(self.stopped), type(msg).__name__,
                     getattr(msg, "cl_ord_id", 0))
            return
        t = type(msg)
        if t is NewOrder:
            try:
                self._add(order_record(msg, acct.id, self.venues))
            except RouteRequestError as e:
                s.reject(e.reason, e.text, "NewOrder", msg.cl_ord_id)
        elif t is Cancel or t is Replace:
            self._add(order_record(msg, acct.id))
        elif t is MassCancel:
            if (msg.account not in (None, acct.id) or msg.all_accounts) and acct.role != "admin":
                s.reject(Reason.GATEWAY_NOT_AUTHORIZED,
                         "only an admin may mass-cancel other accounts' orders", "MassCancel")
                return
            target = acct.id if msg.account is None else msg.account
            self._replies.append((len(self._batch) // _CMD.size, s, msg))
            self._add(_CMD.pack(0, 0, 0, 0, 0, msg.instrument, target, CommandType.MASS_CANCEL,
                                _SIDE.get(msg.side or "", 0), 0, 0,
                                Flags.ALL_ACCOUNTS if msg.all_accounts else 0, 0))
        elif t in (Halt, Resume, SetLimits):
            if acct.role != "admin":
                s.reject(Reason.GATEWAY_NOT_AUTHORIZED, f"{t.__name__} is an admin action",
                         t.__name__)
                return
            self._replies.append((len(self._batch) // _CMD.size, s, msg))
            if t is SetLimits:
                self._add(_CMD.pack(0, 0, 0, msg.min_qty, msg.max_qty, msg.instrument, acct.id,
                                    CommandType.SET_LIMITS, 0, 0, 0, 0, 0))
            else:
                self._add(_CMD.pack(0, 0, 0, 0, 0, msg.instrument, acct.id,
                                    CommandType.HALT if t is Halt else CommandType.RESUME,
                                    0, 0, 0, 0, 0))
        elif t is SetRisk or t is KillSwitch or t is Restrict:
            self._risk_command(s, msg)
        elif t is RiskQuery:
            self._risk_query(s, msg)
        elif t is Subscribe:
            if msg.instrument not in self.instruments:
                s.reject(Reason.GATEWAY_UNKNOWN_INSTRUMENT,
                         f"no instrument {msg.instrument}", "Subscribe")
                return
            try:
                key = self._md_key(msg)
            except RouteRequestError as e:
                s.reject(e.reason, e.text, "Subscribe")
                return
            if key not in s.subscriptions:
                self._flush()         # the snapshot must follow every earlier command
                s.subscriptions.add(key)
                self.subscribers.setdefault(key, set()).add(s)
                self._queue(_TO_SESSION, s, self.md.snapshot(key))
        elif t is Unsubscribe:
            try:
                key = self._md_key(msg)
            except RouteRequestError:
                return                # nothing by that name is subscribed
            if key in s.subscriptions:
                s.subscriptions.discard(key)
                subs = self.subscribers.get(key)
                if subs is not None:
                    subs.discard(s)
                    if not subs:
                        del self.subscribers[key]
                        self.md.unwatch(key)
        elif t is OrderQuery:
            self._flush()             # the answer covers every command received before it
            self._queue(_TO_SESSION, s, frame(Orders(
                seq=self.engine.last_seq, cl_ord_id=msg.cl_ord_id or 0,
                orders=self._orders(acct.id, msg.cl_ord_id))))
        elif t is Status:
            if acct.role != "admin":
                s.reject(Reason.GATEWAY_NOT_AUTHORIZED, "Status is an admin action", "Status")
                return
            self._flush()             # the answer covers every command received before it
            eng = self.engine
            self._queue(_TO_SESSION, s, frame(StatusReport(
                last_seq=eng.last_seq, durable_seq=eng.durable_seq, digest=eng.state_digest(),
                open_orders=eng.core.open_orders, sessions=len(self.by_account),
                recovery=eng.recovery.describe())))
        elif t is Logon:
            s.reject(Reason.GATEWAY_ALREADY_LOGGED_ON, "this connection is logged on already",
                     "Logon")
        elif t is Logout:
            s.logged_out = True
            s.close(Reason.GATEWAY_LOGOUT, "logged out")
        # Heartbeat: receiving it already counted as activity

    def _md_key(self, msg: Subscribe | Unsubscribe) -> int:
        """The market-data view a (Un)Subscribe names (engine.gateway.marketdata.view_key):
        the primary book, a venue's book, or the consolidated book."""
        if msg.consolidated:
            if msg.venue:
                raise RouteRequestError(Reason.GATEWAY_INVALID_FIELD,
                                        "consolidated is every venue's book: no venue with it"
                                        " - at $.venue")
            return msg.instrument | (CONSOLIDATED << 32)
        if not msg.venue:
            return msg.instrument
        return msg.instrument | (self.venues.book_venue(msg.instrument, msg.venue) << 32)

    def _risk_command(self, s: Session, msg: SetRisk | KillSwitch | Restrict) -> None:
        """SetRisk, KillSwitch, Restrict: admin only; converted exactly into the core's command
        (or refused with nothing sent), then sequenced and journaled like any command."""
        name = type(msg).__name__
        if s.account.role != "admin":  # type: ignore[union-attr]
            s.reject(Reason.GATEWAY_NOT_AUTHORIZED, f"{name} is an admin action", name)
            return
        if self.risk is None:
            s.reject(Reason.RISK_DISABLED, "pre-trade risk is off in this engine", name)
            return
        try:
            if type(msg) is SetRisk:
                record = self.risk.set_risk(msg)
            elif type(msg) is KillSwitch:
                record = self.risk.kill_switch(msg)
            else:
                record = self.risk.restrict(msg)
        except RiskRequestError as e:
            s.reject(e.reason, e.text, name)
            return
        self._replies.append((len(self._batch) // _CMD.size, s, msg))
        self._add(record)

    def _risk_query(self, s: Session, msg: RiskQuery) -> None:
        acct = s.account
        assert acct is not None
        account = acct.id if msg.account is None else msg.account
        if account != acct.id and acct.role != "admin":
            s.reject(Reason.GATEWAY_NOT_AUTHORIZED,
                     "only an admin may query another account's risk", "RiskQuery")
            return
        if self.risk is None:
            s.reject(Reason.RISK_DISABLED, "pre-trade risk is off in this engine", "RiskQuery")
            return
        self._flush()                 # the answer covers every command received before it
        try:
            view = self.risk.view(self.engine.core.risk_state(), account)
        except RiskRequestError as e:
            s.reject(e.reason, e.text, "RiskQuery")
            return
        self._queue(_TO_SESSION, s, frame(RiskReport(seq=self.engine.last_seq, risk=view,
                                                     orders=self._orders(account, None))))

    def _orders(self, account: int, cl_ord_id: int | None) -> list[OrderState]:
        return order_states(self.engine.core, account, cl_ord_id, self.venues.name)

    # -- the batch -------------------------------------------------------------------------------

    def _add(self, record: bytes) -> None:
        self._batch += record
        self.schedule_flush()

    def schedule_flush(self) -> None:
        """Run the batch at the end of this turn of the event loop, with whatever every
        connection added to it meanwhile."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._batch:
            return
        # the array keeps the old bytearray alive; the next commands go to a new one
        cmds = np.frombuffer(self._batch, dtype=COMMAND_DTYPE)
        replies, self._replies = self._replies, []
        self._batch = bytearray()
        try:
            events = self.engine.process(cmds)
        except JournalError as e:
            self._engine_stopped(e)
            return
        self.stats["batches"] += 1
        self.stats["commands"] += len(cmds)
        release = int(cmds["seq"][-1])
        q = self._outq
        for account, first, last, data in self.reports.take():
            q.append((release, _TO_ACCOUNT, (account, first, last), data))
        if replies:
            self._answer(cmds, events, replies, release)
        for inst, data in self.md.on_batch(events):
            subs = self.subscribers.get(inst)
            if subs:
                q.append((release, _TO_SUBSCRIBERS, tuple(subs), data))
        self._release()

    def _answer(self, cmds: np.ndarray, events: np.ndarray,
                replies: list[tuple[int, Session, Any]], release: int) -> None:
        """Replies to mass cancels and admin actions: what happened to the requester's command."""
        seqs = events["seq"]
        for index, s, msg in replies:
            seq = int(cmds["seq"][index])
            mine = events[seqs == seq]
            rejected = mine[mine["type"] == EventType.REJECTED]
            if len(rejected):
                self._queue(_TO_SESSION, s, frame(Reject(
                    reason=int(rejected["reason"][0]), text=Reason(int(rejected["reason"][0])).name,
                    ref_type=type(msg).__name__)), release)
            elif isinstance(msg, (SetRisk, KillSwitch, Restrict)):
                risk = mine[mine["type"] == EventType.RISK]
                if len(risk) and self.risk is not None:
                    cancelled = int(np.count_nonzero(mine["type"] == EventType.CANCELLED))
                    self._queue(_TO_SESSION, s, frame(self.risk.update(msg, seq, risk[0],
                                                                       cancelled)), release)
            elif isinstance(msg, MassCancel):
                self._queue(_TO_SESSION, s, frame(MassCancelReport(
                    seq=seq, cancelled=int(np.count_nonzero(mine["type"] == EventType.CANCELLED)),
                    instrument=msg.instrument, side=msg.side or "",
                    account=int(cmds["account"][index]), all_accounts=msg.all_accounts)), release)
            elif len(mine):
                e = mine[0]
                inst = int(e["instrument"])
                self._queue(_TO_SESSION, s, frame(instrument_status(
                    inst, seq, int(e["reason"]), int(e["price"]), int(e["qty"]),
                    self.md.md_seq.get(inst, 0))), release)

    def _queue(self, kind: int, target: Any, data: bytes, release: int | None = None) -> None:
        self._outq.append((self.engine.last_seq if release is None else release, kind, target,
                           data))
        self._release()

    # -- releasing outputs once durable ------------------------------------------------------

    def _durable_from_thread(self, seq: int) -> None:
        # called by the journal holding its lock: only hand the number over to the loop. With
        # "write" that happens inside Engine.process, on the loop's own thread, and the batch's
        # release follows at once; with "fsync" it is the fsync thread, which must wake the loop
        if threading.get_ident() == self._loop_thread:
            if seq > self._durable:
                self._durable = seq
            return
        try:
            self.loop.call_soon_threadsafe(self._durable_advanced, seq)
        except RuntimeError:
            pass                      # the loop is closed: nothing left to release

    def _durable_advanced(self, seq: int) -> None:
        if seq > self._durable:
            self._durable = seq
            self._release()

    def _release(self) -> None:
        q = self._outq
        durable = max(self._durable, self.engine.durable_seq)
        self._durable = durable
        if not q or q[0][0] > durable:
            return
        store, by_account = self.store, self.by_account
        # one write per session per release: a batch's reports go out in one send
        out: dict[Session, list[bytes]] = {}
        while q and q[0][0] <= durable:
            _, kind, target, data = q.popleft()
            if kind == _TO_ACCOUNT:
                account, first, last = target
                store.add_run(account, first, last, data)
                s = by_account.get(account)
                if s is not None:
                    out.setdefault(s, []).append(data)
            elif kind == _TO_SESSION:
                out.setdefault(target, []).append(data)
            else:
                for s in target:
                    out.setdefault(s, []).append(data)
        for s, frames in out.items():
            s.send(b"".join(frames) if len(frames) > 1 else frames[0])

    def _engine_stopped(self, e: JournalError) -> None:
        """The journal failed: nothing more is accepted; what is durable still goes out."""
        log.error("intake stopped: %s", e)
        self.stopped = e
        self._release()
        for s in list(self.sessions):
            s.close(Reason.GATEWAY_ENGINE_STOPPED, f"the engine stopped: {e}")
        if self.on_engine_stopped is not None:
            self.on_engine_stopped(e)

    # -- heartbeats and idle sessions ------------------------------------------------------------

    async def _tick(self) -> None:
        hb = self.gw.heartbeat_ms / 1000
        idle = self.gw.idle_timeout_ms / 1000
        period = max(0.005, min(hb, idle) / 4)
        beat = frame(ServerHeartbeat())
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for s in list(self.sessions):
                if s.closing:
                    continue
                if now - s.last_recv > idle:
                    s.close(Reason.GATEWAY_IDLE_TIMEOUT, f"nothing received for {idle:g} s")
                elif s.account is not None and now - s.last_sent > hb:
                    s.send(beat)


def install_uvloop() -> bool:
    """Use uvloop's event loop where it is installed (it is a declared dependency)."""
    try:
        import uvloop
    except ImportError:               # pragma: no cover - Windows
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def _serve_until_signalled(server: Server, host: str | None, port: int | None,
                                 ready: Callable[[int], None]) -> int:
    port_bound = await server.start(host, port)
    ready(port_bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # a journal that fails stops intake; the process then ends (status 1) so that whatever
    # supervises it notices, after the sessions were told why
    server.on_engine_stopped = lambda e: loop.call_later(0.5, stop.set)
    await stop.wait()
    await server.stop()
    return 1 if server.stopped is not None else 0


def serve(config: EngineConfig, *, host: str | None = None, port: int | None = None,
          journal_dir: str | None = None, durability: str | None = None,
          ready: Callable[[Server, int], None] | None = None) -> int:
    """Run a server until SIGINT or SIGTERM (status 0) or until its journal fails (status 1)."""
    install_uvloop()
    server = Server(config, journal_dir=journal_dir, durability=durability)
    return asyncio.run(_serve_until_signalled(
        server, host, port, (lambda p: ready(server, p)) if ready else (lambda p: None)))


__all__ = ["Server", "Session", "ReportStore", "serve", "install_uvloop", "CL_ORD_ID_MASK"]
