"""A real engine process driven through a pipe: length-prefixed MessagePack over stdin/stdout.

Owns the pipe protocol below, and nothing of the engine's rules: every batch goes through
``engine.pipeline.Engine`` (sequencer -> journal -> core), recovery included. Used by the
crash/recovery tests (tests/journal/test_crash.py), and simple enough to drive from any
language. Must never release a batch's acknowledgement before the journal's durability policy
covers it, and never die of a client's bytes.

    python -m engine.pipe_server --journal DIR [--durability fsync|write] [--config FILE]
                                 [--snapshot-every N] [--segment-bytes N]
                                 [--retention keep|archive|delete] [--keep-snapshots N]

Framing: every message, both ways, is a 4-byte little-endian unsigned length followed by that
many bytes of MessagePack: a map whose ``"op"`` field names the message (msgspec tagged
Structs). Requests (client -> server):

    {"op": "Batch", "cmds": <bin>}       raw COMMAND_DTYPE records (56 bytes each, little-endian,
                                         engine/schema.py); seq and ts_ns are ignored: the
                                         server's sequencer stamps them
    {"op": "Digest"}                     the core's state digest
    {"op": "Order", "order_id": <int>}   one order's state (Core.order)
    {"op": "Stop"}                       close cleanly and exit 0 (so does EOF on stdin)

Responses (server -> client), exactly one per request, in request order, after one ``Ready``:

    {"op": "Ready", "last_seq", "recovered_from_snapshot_seq", "replayed"}   once, after recovery
    {"op": "Ack", "first_seq", "last_seq", "events": <bin>}   the batch's sequence numbers and
                                         its raw EVENT_DTYPE records (88 bytes each)
    {"op": "DigestReply", "last_seq", "digest"}
    {"op": "OrderReply", "order": <map> | nil}
    {"op": "Error", "message"}           a bad request: nothing changed, the server goes on

Several requests may be in flight (pipelining). An Ack is written only once the journal holds
its batch durably under the configured policy (``fsync``: an fdatasync covering ``last_seq``
has returned, and one fsync covers every batch appended meanwhile: group commit; ``write``:
handed to the OS). Replies to later requests wait behind it, so responses never overtake one
another and no reply ever reflects state that is not yet durable.

A bad request (a frame that does not decode, an unknown ``op``, a field of the wrong type,
``cmds`` not a multiple of 56 bytes, a frame over 64 MiB) gets an Error and changes nothing.
If the journal fails (disk full, an I/O error), the server writes the acknowledgements that
are durable, then an Error with the journal's message, and exits with status 1: the batch that
failed, and any not yet durable, are never acknowledged. If recovery fails at start-up (a
corrupt journal, another instrument set) it writes Error, prints the message on stderr and
exits with status 2. Logging goes to stderr; stdout carries frames only.
"""
from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
import threading
from collections import deque
from typing import Any, BinaryIO, Union

import msgspec
import numpy as np

from .schema import COMMAND_DTYPE

log = logging.getLogger("engine.pipe_server")

MAX_FRAME = 64 << 20
_LEN = struct.Struct("<I")


# -- messages -------------------------------------------------------------------------------------

class _Msg(msgspec.Struct, tag_field="op", forbid_unknown_fields=True):
    pass


class Batch(_Msg, tag="Batch"):
    cmds: bytes


class Digest(_Msg, tag="Digest"):
    pass


class Order(_Msg, tag="Order"):
    order_id: int


class Stop(_Msg, tag="Stop"):
    pass


class Ready(_Msg, tag="Ready"):
    last_seq: int
    recovered_from_snapshot_seq: int
    replayed: int


class Ack(_Msg, tag="Ack"):
    first_seq: int
    last_seq: int
    events: bytes


class DigestReply(_Msg, tag="DigestReply"):
    last_seq: int
    digest: str


class OrderReply(_Msg, tag="OrderReply"):
    order: Union[dict[str, Any], None]


class Error(_Msg, tag="Error"):
    message: str


Request = Union[Batch, Digest, Order, Stop]
Response = Union[Ready, Ack, DigestReply, OrderReply, Error]

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_response_decoder = msgspec.msgpack.Decoder(Response)


def encode_frame(msg: msgspec.Struct) -> bytes:
    """One frame: the 4-byte little-endian length, then the MessagePack body."""
    body = _encoder.encode(msg)
    return _LEN.pack(len(body)) + body


def decode_request(body: bytes) -> Batch | Digest | Order | Stop:
    return _request_decoder.decode(body)


def decode_response(body: bytes) -> Ready | Ack | DigestReply | OrderReply | Error:
    return _response_decoder.decode(body)


def read_exact(stream: BinaryIO, n: int) -> bytes | None:
    """``n`` bytes, or None at EOF (a partial read at EOF is EOF too)."""
    data = stream.read(n)
    if data is None or len(data) < n:
        return None
    return data


def read_frame(stream: BinaryIO) -> bytes | None:
    """One frame's body; None at EOF. Oversized frames are the caller's problem (see
    ``Server.run``); this helper is for clients."""
    head = read_exact(stream, 4)
    if head is None:
        return None
    (n,) = _LEN.unpack(head)
    return read_exact(stream, n) if n else b""


# -- the output side: responses in request order, each released when durable ------------------

class _Outbox:
    """Responses queued in request order; a writer thread sends each one once the journal's
    durable sequence number reaches the item's ``release`` seq (and everything before it has
    been sent). Durability advances through ``Engine.on_durable`` listeners."""

    def __init__(self, out: BinaryIO, durable: int) -> None:
        self._out = out
        self._cond = threading.Condition()
        self._items: deque[tuple[int, bytes]] = deque()
        self._durable = durable
        self._fatal: str | None = None
        self._closing = False
        self._broken = False
        self.acks = 0          # acknowledgements queued
        self.advances = 0      # times durability moved on (one per fsync with "fsync")
        self.thread = threading.Thread(target=self._run, name="pipe-acks", daemon=True)

    # called by the journal (fsync thread, or the appending thread) while it holds its own
    # lock: it must only record the number and wake the writer, never call back into the engine
    def durable(self, seq: int) -> None:
        with self._cond:
            if seq > self._durable:
                self._durable = seq
                self.advances += 1
                self._cond.notify_all()

    def put(self, release: int, frame: bytes) -> None:
        with self._cond:
            self._items.append((release, frame))
            self._cond.notify_all()

    def fatal(self, message: str) -> None:
        """Stop releasing anything not yet durable; send ``message`` as an Error, then stop."""
        with self._cond:
            if self._fatal is None:
                self._fatal = message
            self._cond.notify_all()

    def close(self) -> None:
        """Send what is queued (the caller has made it durable) and stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.thread.join()

    def _write(self, frame: bytes) -> None:
        if self._broken:
            return
        try:
            self._out.write(frame)
            self._out.flush()
        except (BrokenPipeError, ValueError, OSError):
            # the client went away: keep the engine going until stdin says EOF
            self._broken = True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._fatal is not None or self._closing
                           or (self._items and self._items[0][0] <= self._durable)):
                    self._cond.wait()
                ready = []
                while self._items and self._items[0][0] <= self._durable:
                    ready.append(self._items.popleft()[1])
                fatal, closing = self._fatal, self._closing
                if fatal is not None:
                    self._items.clear()
                done = fatal is not None or (closing and not self._items)
            for frame in ready:   # outside the lock: a slow reader must not stall the journal
                self._write(frame)
            if fatal is not None:
                self._write(encode_frame(Error(fatal)))
                return
            if done:
                return


# -- the server -----------------------------------------------------------------------------------

class Server:
    """One engine, one client on ``inp``/``out``. ``run()`` returns the exit status."""

    def __init__(self, engine: Any, inp: BinaryIO, out: BinaryIO) -> None:
        self.engine = engine
        self.inp = inp
        self.outbox = _Outbox(out, engine.durable_seq)
        engine.on_durable(self.outbox.durable)
        # durability may have moved between reading durable_seq and adding the listener
        self.outbox.durable(engine.durable_seq)
        self.outbox.thread.start()

    def _reply(self, msg: msgspec.Struct) -> None:
        # a reply reflects state up to last_seq: it waits until that is durable too
        self.outbox.put(self.engine.last_seq, encode_frame(msg))

    def _journal_failed(self, e: Exception) -> int:
        log.error("stopping: %s", e)
        self.outbox.fatal(str(e))
        self.outbox.thread.join()
        try:
            self.engine.close()
        except Exception as e2:  # the journal is already failed; report and go
            log.error("closing after the failure: %s", e2)
        return 1

    def _watch_failure(self) -> None:
        # an fsync that fails in the background stops durability without any call failing;
        # wait_durable raises it. Then the durable acks and the Error go out and the process
        # exits: the main thread may be blocked reading stdin, and nothing more can be acked.
        try:
            while not self._stopping.is_set():
                self.engine.wait_durable(1 << 62, timeout=0.5)
        except Exception as e:
            if self._stopping.is_set():
                return
            log.error("journal failed: %s", e)
            self.outbox.fatal(str(e))
            self.outbox.thread.join()
            os._exit(1)

    def run(self) -> int:
        from .journal.format import JournalError

        self._stopping = threading.Event()
        rec = self.engine.recovery
        self.outbox.put(0, encode_frame(Ready(rec.last_seq, rec.snapshot_seq, rec.replayed)))
        watcher = threading.Thread(target=self._watch_failure, name="pipe-watch", daemon=True)
        watcher.start()
        while True:
            head = read_exact(self.inp, 4)
            if head is None:
                break
            (n,) = _LEN.unpack(head)
            if n > MAX_FRAME:
                # skip the body so the next frame is read from its start
                left = n
                while left:
                    chunk = self.inp.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
                self._reply(Error(f"frame of {n} bytes is over the {MAX_FRAME}-byte limit"))
                if left:
                    break
                continue
            body = read_exact(self.inp, n) if n else b""
            if body is None:
                log.warning("EOF in the middle of a frame (%d bytes announced)", n)
                break
            try:
                req = decode_request(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                self._reply(Error(f"bad request: {e}"))
                continue
            if isinstance(req, Stop):
                break
            if isinstance(req, Digest):
                self._reply(DigestReply(self.engine.last_seq, self.engine.state_digest()))
            elif isinstance(req, Order):
                try:
                    order = self.engine.core.order(req.order_id)
                except OverflowError:
                    self._reply(Error(f"order_id {req.order_id} is not a 64-bit integer"))
                    continue
                self._reply(OrderReply(order))
            else:
                raw = req.cmds
                if len(raw) % COMMAND_DTYPE.itemsize:
                    self._reply(Error(f"cmds is {len(raw)} bytes, not a multiple of"
                                      f" {COMMAND_DTYPE.itemsize} (COMMAND_DTYPE records)"))
                    continue
                cmds = np.frombuffer(raw, dtype=COMMAND_DTYPE).copy()
                first = self.engine.last_seq + 1
                if len(cmds):
                    try:
                        events = self.engine.process(cmds)
                    except JournalError as e:
                        self._stopping.set()
                        return self._journal_failed(e)
                    except Exception as e:
                        # the batch may be journaled and half-applied: never go on from there
                        log.exception("processing a batch failed")
                        self._stopping.set()
                        return self._journal_failed(
                            JournalError(f"internal error: {type(e).__name__}: {e}"))
                else:
                    events = np.empty(0, dtype=np.uint8)
                last = self.engine.last_seq
                self.outbox.put(last, encode_frame(Ack(first, last, events.tobytes())))
                self.outbox.acks += 1
        # EOF or Stop: make everything durable, send what is queued, exit cleanly
        self._stopping.set()
        try:
            self.engine.close()
        except JournalError as e:
            return self._journal_failed(e)
        if self.engine.journal.failed is not None:
            return self._journal_failed(self.engine.journal.failed)
        self.outbox.durable(self.engine.durable_seq)
        self.outbox.close()
        log.info("stopped at seq %d: %d batches acknowledged over %d durability advances",
                 self.engine.last_seq, self.outbox.acks, self.outbox.advances)
        return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engine.pipe_server",
                                description="An engine driven by length-prefixed MessagePack"
                                            " frames on stdin/stdout (see the module docstring).")
    p.add_argument("--journal", required=True, metavar="DIR", help="the journal directory")
    p.add_argument("--durability", choices=("fsync", "write"), default=None,
                   help="when a batch is acknowledged (default: the config's, else fsync)")
    p.add_argument("--config", metavar="FILE",
                   help="TOML config: instruments, and defaults from its [journal] table"
                        " (default: the embedded instruments)")
    p.add_argument("--snapshot-every", type=int, default=None, metavar="N",
                   help="a snapshot every N commands (0: none)")
    p.add_argument("--segment-bytes", type=int, default=None, metavar="N")
    p.add_argument("--retention", choices=("keep", "archive", "delete"), default=None,
                   help="what a snapshot makes of older segments and snapshots")
    p.add_argument("--keep-snapshots", type=int, default=None, metavar="N")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # stdout carries frames only: anything else printed by accident goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=1 << 16)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    inp = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=1 << 16)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from .config import ConfigError, load_config
    from .instruments import InstrumentSet
    from .journal.format import JournalError
    from .pipeline import Engine

    def refuse(message: str) -> int:
        print(f"engine.pipe_server: {message}", file=sys.stderr, flush=True)
        try:
            out.write(encode_frame(Error(message)))
            out.flush()
        except OSError:
            pass
        return 2

    kwargs: dict[str, Any] = {}
    durability = args.durability
    try:
        if args.config:
            config = load_config(args.config)
            instruments = InstrumentSet.from_config(config)
            j = config.journal
            durability = durability or ("fsync" if j.durability == "none" else j.durability)
            kwargs = dict(segment_bytes=j.segment_bytes, snapshot_every=j.snapshot_every,
                          retention=j.retention, keep_snapshots=j.keep_snapshots)
        else:
            instruments = InstrumentSet.default()
    except (ConfigError, OSError) as e:
        return refuse(str(e))
    for name in ("segment_bytes", "snapshot_every", "retention", "keep_snapshots"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    try:
        engine = Engine(instruments, args.journal, durability=durability or "fsync", **kwargs)
    except (JournalError, ValueError, OSError) as e:
        return refuse(f"cannot start on {args.journal}: {e}")
    log.info("%s; durability %s", engine.recovery.describe(), engine.journal.durability)
    return Server(engine, inp, out).run()


if __name__ == "__main__":
    sys.exit(main())
