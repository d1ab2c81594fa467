"""A client for the gateway: asyncio first, with a small synchronous wrapper.

Owns the client side of docs/PROTOCOL.md: framing, logon, the last report seen (so a reconnect
resends exactly what was missed, duplicates dropped), and local books rebuilt from BookSnapshot
plus BookUpdate. Must never guess an outcome: everything it reports came from the server.

>>> async def main():                                                   # doctest: +SKIP
...     c = await Client.connect("127.0.0.1", 7001, account=1, api_key="demo-alice-key")
...     await c.new_order(1, instrument=1, side="buy", qty=10, price=15_000)
...     print(await c.next_report())
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from .protocol import (
    HEADER,
    SMART,
    UNSET,
    BookSnapshot,
    BookUpdate,
    Cancel,
    ConsolidatedBook,
    ExecutionReport,
    Halt,
    Heartbeat,
    InstrumentStatus,
    KillSwitch,
    Logon,
    LogonAck,
    LogonReject,
    Logout,
    MassCancel,
    MassCancelReport,
    NewOrder,
    Reject,
    Replace,
    Restrict,
    Resume,
    RiskQuery,
    RiskReport,
    RiskUpdate,
    ServerHeartbeat,
    ServerLogout,
    OrderQuery,
    Orders,
    SetLimits,
    SetRisk,
    Status,
    StatusReport,
    Subscribe,
    Trade,
    Unsubscribe,
    decode_server,
    frame,
)

T = TypeVar("T")


class ClientError(Exception):
    """The server refused the logon, or the connection ended."""

    def __init__(self, text: str, reason: int = 0) -> None:
        super().__init__(text)
        self.reason = reason


class Book:
    """A subscriber's copy of the server's top-of-book view for one book (an instrument's
    primary book, or its book on ``venue``)."""

    def __init__(self, snap: BookSnapshot) -> None:
        self.instrument = snap.instrument
        self.venue = snap.venue           # "": the primary book's subscription
        self.md_seq = snap.md_seq
        self.bids = {p: (q, n) for p, q, n in snap.bids}
        self.asks = {p: (q, n) for p, q, n in snap.asks}

    def apply(self, upd: BookUpdate) -> None:
        for side, levels in ((self.bids, upd.bids), (self.asks, upd.asks)):
            for p, q, n in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = (q, n)
        self.md_seq = upd.md_seq

    def levels(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """(bids best first, asks best first) as (price, qty, orders), like ``Core.depth``."""
        return ([(p, *self.bids[p]) for p in sorted(self.bids, reverse=True)],
                [(p, *self.asks[p]) for p in sorted(self.asks)])


class Client:
    """One logged-on session. Inbound messages are sorted into queues as they arrive:
    ``reports`` (ExecutionReport, duplicates of a resend dropped), ``trades``, ``rejects``
    (Reject), ``replies`` (MassCancelReport, InstrumentStatus, StatusReport, Orders, RiskUpdate,
    RiskReport answers); with
    ``keep_all`` everything goes to ``messages`` instead, in arrival order. ``books`` holds the
    subscribed primary books (by instrument), ``venue_books`` the books subscribed on a named
    venue (by ``(instrument, venue)``) and ``consolidated`` the latest ConsolidatedBook of each
    instrument subscribed so, either way. With ``auto_heartbeat`` (default) the client sends a
    Heartbeat every ``heartbeat_s`` so an idle session is not logged out.
    """

    def __init__(self, host: str, port: int, account: int, api_key: str, *,
                 cancel_on_disconnect: bool | None = None, keep_all: bool = False,
                 auto_heartbeat: bool = True) -> None:
        self.host, self.port = host, port
        self.account, self._key = account, api_key
        self.cancel_on_disconnect = cancel_on_disconnect
        self.keep_all = keep_all
        self.auto_heartbeat = auto_heartbeat
        self.last_report_seq = 0
        self.skipped = 0                   # server messages of a type this client does not know
        self.logon_ack: LogonAck | None = None
        self.books: dict[int, Book] = {}
        self.venue_books: dict[tuple[int, str], Book] = {}
        self.consolidated: dict[int, ConsolidatedBook] = {}
        self.reports: asyncio.Queue[ExecutionReport] = asyncio.Queue()
        self.trades: asyncio.Queue[Trade] = asyncio.Queue()
        self.rejects: asyncio.Queue[Reject] = asyncio.Queue()
        self.replies: asyncio.Queue[Any] = asyncio.Queue()
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.logout: ServerLogout | None = None
        self.closed = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._beat: asyncio.Task | None = None
        self._book_waiters: dict[Any, asyncio.Future] = {}   # instrument, (i, venue), ("c", i)

    @classmethod
    async def connect(cls, host: str, port: int, account: int, api_key: str, *,
                      last_report_seq: int = 0, timeout: float = 10.0, **kw: Any) -> Client:
        """Connect and log on; raises ClientError if the logon is refused."""
        c = cls(host, port, account, api_key, **kw)
        c.last_report_seq = last_report_seq
        await c._open(timeout)
        return c

    async def _open(self, timeout: float) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout)
        self.closed.clear()
        self.logout = None
        self._writer.write(frame(Logon(account=self.account, api_key=self._key,
                                       last_report_seq=self.last_report_seq,
                                       cancel_on_disconnect=self.cancel_on_disconnect)))
        first = await asyncio.wait_for(self._read(), timeout)
        if isinstance(first, LogonReject):
            self._writer.close()
            raise ClientError(first.text, first.reason)
        if isinstance(first, ServerLogout):
            self._writer.close()
            raise ClientError(first.text, first.reason)
        if not isinstance(first, LogonAck):
            self._writer.close()
            raise ClientError(f"expected LogonAck, got {type(first).__name__}")
        self.logon_ack = first
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        if self.auto_heartbeat:
            self._beat = loop.create_task(self._heartbeats(first.heartbeat_s))

    async def reconnect(self, timeout: float = 10.0) -> LogonAck:
        """Log on again after the connection ended: the server resends every report after the
        last one seen. Returns the new LogonAck."""
        await self.close()
        self.books.clear()
        self.venue_books.clear()
        self.consolidated.clear()
        await self._open(timeout)
        assert self.logon_ack is not None
        return self.logon_ack

    async def _read(self) -> Any:
        assert self._reader is not None
        while True:
            head = await self._reader.readexactly(4)
            (n,) = HEADER.unpack(head)
            body = await self._reader.readexactly(n)
            try:
                return decode_server(body)
            except msgspec.ValidationError:
                self.skipped += 1          # a newer server's message: not ours to guess at

    async def _heartbeats(self, period: float) -> None:
        """Keep an idle session alive: the server logs out a client silent for its timeout."""
        try:
            while self._writer is not None and not self._writer.is_closing():
                await asyncio.sleep(period)
                self._writer.write(frame(Heartbeat()))
        except (ConnectionError, OSError, RuntimeError):
            pass

    async def _run(self) -> None:
        try:
            while True:
                msg = await self._read()
                self._dispatch(msg)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except msgspec.DecodeError:
            pass                           # not MessagePack: the stream cannot be trusted
        finally:
            if self._writer is not None:
                self._writer.close()       # the server ended the session: release the socket
            self.closed.set()

    def _dispatch(self, msg: Any) -> None:
        t = type(msg)
        if t is ExecutionReport:
            if msg.report_seq <= self.last_report_seq:
                return                     # already seen (a resend overlapping a live report)
            self.last_report_seq = msg.report_seq
        elif t is ServerLogout:
            self.logout = msg
        if self.keep_all:
            self.messages.put_nowait(msg)  # one queue of everything, in order
            if t is BookSnapshot or t is BookUpdate or t is ConsolidatedBook:
                pass                       # the local books below still follow
            else:
                return
        if t is ExecutionReport:
            self.reports.put_nowait(msg)
        elif t is BookUpdate:
            book = (self.venue_books.get((msg.instrument, msg.venue)) if msg.venue
                    else self.books.get(msg.instrument))
            if book is not None and msg.md_seq > book.md_seq:
                book.apply(msg)
        elif t is BookSnapshot:
            key: Any = (msg.instrument, msg.venue) if msg.venue else msg.instrument
            book = Book(msg)
            if msg.venue:
                self.venue_books[key] = book
            else:
                self.books[key] = book
            w = self._book_waiters.pop(key, None)
            if w is not None and not w.done():
                w.set_result(book)
        elif t is ConsolidatedBook:
            old = self.consolidated.get(msg.instrument)
            if old is None or msg.md_seq > old.md_seq:
                self.consolidated[msg.instrument] = msg
            w = self._book_waiters.pop(("c", msg.instrument), None)
            if w is not None and not w.done():
                w.set_result(msg)
        elif t is Trade:
            self.trades.put_nowait(msg)
        elif t is Reject:
            self.rejects.put_nowait(msg)
        elif t in (MassCancelReport, InstrumentStatus, StatusReport, Orders, RiskUpdate,
                   RiskReport):
            self.replies.put_nowait(msg)
        elif t is ServerLogout:
            self.logout = msg
        elif t is ServerHeartbeat:
            pass

    # -- sending ----------------------------------------------------------------------------

    def send(self, msg: Any) -> None:
        """Queue any client message (see engine.gateway.protocol) for sending."""
        if self._writer is None or self._writer.is_closing():
            raise ClientError("not connected")
        self._writer.write(frame(msg))

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (for tests of the server's handling of bad input)."""
        assert self._writer is not None
        self._writer.write(data)

    async def drain(self) -> None:
        assert self._writer is not None
        await self._writer.drain()

    async def new_order(self, cl_ord_id: int, instrument: int, side: str, qty: int,
                        price: int = 0, *, ord_type: str = "limit", tif: str = "gtc",
                        post_only: bool = False, venue: str | None = None,
                        strategy: str | None = None, post_venue: str | None = None) -> None:
        """A NewOrder. ``venue``: None for the instrument's primary book, a venue's name for
        its book, or "SMART" for a routed order (``strategy`` "sweep" or "sweep_post",
        ``post_venue``; see ``smart_order``). Fields left None are left out of the message."""
        self.send(NewOrder(cl_ord_id=cl_ord_id, instrument=instrument, side=side,  # type: ignore[arg-type]
                           qty=qty, price=price, ord_type=ord_type, tif=tif,  # type: ignore[arg-type]
                           post_only=post_only, venue=UNSET if venue is None else venue,
                           strategy=UNSET if strategy is None else strategy,  # type: ignore[arg-type]
                           post_venue=UNSET if post_venue is None else post_venue))
        await self.drain()

    async def smart_order(self, cl_ord_id: int, instrument: int, side: str, qty: int,
                          price: int = 0, *, strategy: str = "sweep",
                          post_venue: str | None = None, ord_type: str = "limit",
                          tif: str | None = None) -> None:
        """A routed (parent) order: venue SMART. ``strategy`` "sweep" (IOC unless ``tif`` says
        "fok"; ``price`` 0 with ``ord_type`` "market" for a market sweep) or "sweep_post" (a
        limit GTC whose rest is posted on ``post_venue``, or on the venue with the best maker
        fee). ``tif`` None: IOC for sweep, GTC for sweep_post. The engine checks the strategy
        against the order type and time in force (a mismatch: rejected,
        BOOK_INVALID_STRATEGY)."""
        if tif is None:
            tif = "gtc" if strategy == "sweep_post" else "ioc"
        await self.new_order(cl_ord_id, instrument, side, qty, price, ord_type=ord_type,
                             tif=tif, venue=SMART, strategy=strategy, post_venue=post_venue)

    async def cancel(self, cl_ord_id: int) -> None:
        self.send(Cancel(cl_ord_id=cl_ord_id))
        await self.drain()

    async def replace(self, cl_ord_id: int, price: int, qty: int) -> None:
        self.send(Replace(cl_ord_id=cl_ord_id, price=price, qty=qty))
        await self.drain()

    async def mass_cancel(self, instrument: int = 0, side: str | None = None,
                          account: int | None = None, all_accounts: bool = False) -> None:
        self.send(MassCancel(instrument=instrument, side=side, account=account,  # type: ignore[arg-type]
                             all_accounts=all_accounts))
        await self.drain()

    async def halt(self, instrument: int) -> None:
        self.send(Halt(instrument=instrument))
        await self.drain()

    async def resume(self, instrument: int) -> None:
        self.send(Resume(instrument=instrument))
        await self.drain()

    async def set_limits(self, instrument: int, min_qty: int, max_qty: int) -> None:
        self.send(SetLimits(instrument=instrument, min_qty=min_qty, max_qty=max_qty))
        await self.drain()

    async def status(self, timeout: float = 10.0) -> StatusReport:
        """Admin: the engine's last and durable sequence numbers and its state digest."""
        self.send(Status())
        await self.drain()
        while True:
            reply = await asyncio.wait_for(self.replies.get(), timeout)
            if isinstance(reply, StatusReport):
                return reply

    async def orders(self, cl_ord_id: int | None = None, timeout: float = 10.0) -> Orders:
        """The current state of one order of this account, or of all its open orders."""
        self.send(OrderQuery(cl_ord_id=cl_ord_id))
        await self.drain()
        while True:
            reply = await asyncio.wait_for(self.replies.get(), timeout)
            if isinstance(reply, Orders):
                return reply

    async def _answer(self, reply_type: type[T], ref_type: str, timeout: float) -> T:
        """The next reply of ``reply_type``, or ClientError (with its reason) for a Reject of a
        ``ref_type`` message. Replies of other types are dropped (as ``status`` does); other
        Rejects stay queued."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        others: list[Reject] = []
        try:
            while True:
                left = end - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError(f"no {reply_type.__name__} within {timeout} s")
                get_reply = asyncio.ensure_future(self.replies.get())
                get_reject = asyncio.ensure_future(self.rejects.get())
                done, _ = await asyncio.wait({get_reply, get_reject}, timeout=left,
                                             return_when=asyncio.FIRST_COMPLETED)
                for f in (get_reply, get_reject):
                    if f not in done:
                        f.cancel()
                reply = get_reply.result() if get_reply in done else None
                reject = get_reject.result() if get_reject in done else None
                if reject is not None:
                    if reject.ref_type == ref_type:
                        if isinstance(reply, reply_type):
                            self.replies.put_nowait(reply)   # not this request's answer
                        raise ClientError(f"{ref_type} rejected: {reject.text}", reject.reason)
                    others.append(reject)
                if isinstance(reply, reply_type):
                    return reply
        finally:
            for r in others:
                self.rejects.put_nowait(r)

    async def set_risk(self, kind: str, value: Any, *, account: int = 0,
                       symbol: str | None = None, currency: str | None = None,
                       burst: int | None = None, wait: bool = True,
                       timeout: float = 10.0) -> RiskUpdate | None:
        """Admin: set one risk value (docs/PROTOCOL.md, SetRisk). ``value`` in natural units: a
        str, int or Decimal (never a float), or "unlimited". With ``wait`` returns the
        RiskUpdate, or raises ClientError (``reason``) if it was rejected."""
        if isinstance(value, (float, bool)):
            raise TypeError(f"value must be a str, an int or a Decimal, not {value!r}: floats"
                            " cannot hold most decimals exactly")
        text = format(value, "f") if isinstance(value, Decimal) else str(value)
        self.send(SetRisk(kind=kind, value=text, account=account,  # type: ignore[arg-type]
                          symbol=symbol, currency=currency, burst=burst))
        await self.drain()
        return await self._answer(RiskUpdate, "SetRisk", timeout) if wait else None

    async def kill_switch(self, mode: str, account: int | None = None, *,
                          all_accounts: bool = False, wait: bool = True,
                          timeout: float = 10.0) -> RiskUpdate | None:
        """Admin: an account's kill switch (or the global one with ``all_accounts``) to
        ``mode``: "active", "reduce_only" or "killed"."""
        self.send(KillSwitch(mode=mode, account=account, all_accounts=all_accounts))  # type: ignore[arg-type]
        await self.drain()
        return await self._answer(RiskUpdate, "KillSwitch", timeout) if wait else None

    async def restrict(self, symbol: str, restricted: bool = True, account: int | None = None,
                       *, all_accounts: bool = False, wait: bool = True,
                       timeout: float = 10.0) -> RiskUpdate | None:
        """Admin: put ``symbol`` on (or, with ``restricted=False``, take it off) an account's
        restricted list, or the global one with ``all_accounts``."""
        self.send(Restrict(symbol=symbol, restricted=restricted, account=account,
                           all_accounts=all_accounts))
        await self.drain()
        return await self._answer(RiskUpdate, "Restrict", timeout) if wait else None

    async def risk(self, account: int | None = None, timeout: float = 10.0) -> RiskReport:
        """An account's risk (default: this session's): RiskReport with ``risk`` (the
        AccountRisk view) and the account's open ``orders``; ClientError if refused."""
        self.send(RiskQuery(account=account))
        await self.drain()
        return await self._answer(RiskReport, "RiskQuery", timeout)

    async def subscribe(self, instrument: int, timeout: float = 10.0,
                        venue: str | None = None) -> Book:
        """Subscribe and wait for the BookSnapshot of the instrument's primary book (or of its
        book on ``venue``); returns the live local book."""
        key: Any = instrument if venue is None else (instrument, venue)
        held = self.books.get(instrument) if venue is None else self.venue_books.get(key)
        if held is not None:
            return held                        # the server sends one snapshot per subscription
        fut = asyncio.get_running_loop().create_future()
        self._book_waiters[key] = fut
        self.send(Subscribe(instrument=instrument, venue=UNSET if venue is None else venue))
        await self.drain()
        return await asyncio.wait_for(fut, timeout)

    async def subscribe_consolidated(self, instrument: int,
                                     timeout: float = 10.0) -> ConsolidatedBook:
        """Subscribe to the instrument's book consolidated over its venues; returns the first
        ConsolidatedBook (``consolidated[instrument]`` is the latest from then on)."""
        if instrument in self.consolidated:
            return self.consolidated[instrument]
        fut = asyncio.get_running_loop().create_future()
        self._book_waiters[("c", instrument)] = fut
        self.send(Subscribe(instrument=instrument, consolidated=True))
        await self.drain()
        return await asyncio.wait_for(fut, timeout)

    async def unsubscribe(self, instrument: int, venue: str | None = None,
                          consolidated: bool = False) -> None:
        if consolidated:
            self.send(Unsubscribe(instrument=instrument, consolidated=True))
            self.consolidated.pop(instrument, None)
        elif venue is not None:
            self.send(Unsubscribe(instrument=instrument, venue=venue))
            self.venue_books.pop((instrument, venue), None)
        else:
            self.send(Unsubscribe(instrument=instrument))
            self.books.pop(instrument, None)
        await self.drain()

    async def heartbeat(self) -> None:
        self.send(Heartbeat())
        await self.drain()

    # -- receiving ---------------------------------------------------------------------------

    async def next_report(self, timeout: float = 10.0) -> ExecutionReport:
        return await asyncio.wait_for(self.reports.get(), timeout)

    async def reports_until(self, pred: Callable[[ExecutionReport], bool],
                            timeout: float = 10.0) -> list[ExecutionReport]:
        """Every report up to and including the first that satisfies ``pred``."""
        out: list[ExecutionReport] = []

        async def collect() -> None:
            while True:
                r = await self.reports.get()
                out.append(r)
                if pred(r):
                    return

        await asyncio.wait_for(collect(), timeout)
        return out

    async def next_reject(self, timeout: float = 10.0) -> Reject:
        return await asyncio.wait_for(self.rejects.get(), timeout)

    async def next_reply(self, timeout: float = 10.0) -> Any:
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def next_trade(self, timeout: float = 10.0) -> Trade:
        return await asyncio.wait_for(self.trades.get(), timeout)

    # -- ending ----------------------------------------------------------------------------

    async def logout_and_close(self, timeout: float = 5.0) -> None:
        """Log out (cancel-on-disconnect does not fire) and wait for the server to close."""
        if self._writer is not None and not self._writer.is_closing():
            self.send(Logout())
            try:
                await asyncio.wait_for(self.closed.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        await self.close()

    async def close(self) -> None:
        """Drop the connection (without a Logout: cancel-on-disconnect applies)."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None


class SyncClient:
    """The asyncio client behind blocking calls, on an event loop in a background thread.

    >>> c = SyncClient("127.0.0.1", 7001, account=1, api_key="demo-alice-key")  # doctest: +SKIP
    >>> c.new_order(1, instrument=1, side="buy", qty=10, price=15_000)           # doctest: +SKIP
    >>> c.next_report().exec_type                                                # doctest: +SKIP
    'new'
    """

    def __init__(self, host: str, port: int, account: int, api_key: str, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="engine-client",
                                        daemon=True)
        self._thread.start()
        try:
            self.client: Client = self._call(Client.connect(host, port, account, api_key, **kw))
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Any, timeout: float | None = 30.0) -> Any:
        fut: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if asyncio.iscoroutinefunction(attr):
            return lambda *a, **k: self._call(attr(*a, **k))
        return attr

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def close(self) -> None:
        try:
            self._call(self.client.logout_and_close())
        finally:
            self._stop_loop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
