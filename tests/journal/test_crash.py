"""Crash and recovery of a real engine process: ``python -m engine.pipe_server`` is driven
through its pipe, killed with SIGKILL at random moments under load, and restarted on the same
journal. After every restart nothing acknowledged may be lost, duplicated or changed.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.journal.format import ARCHIVE_DIR, MANIFEST, list_segments, list_snapshots
from engine.journal.reader import Journal
from engine.journal.replay import replay
from engine.pipe_server import (
    MAX_FRAME,
    Ack,
    Batch,
    Digest,
    DigestReply,
    Error,
    Order,
    OrderReply,
    Ready,
    Stop,
    decode_response,
    encode_frame,
    read_frame,
)
from engine.schema import COMMAND_DTYPE, EVENT_DTYPE, CommandType, EventType, Flags, OrderStatus, \
    OrdType, Reason, TimeInForce

from .conftest import workload

REPO = Path(__file__).resolve().parents[2]
# the fields a client chooses; seq and ts_ns are the server's
CLIENT_FIELDS = [n for n in COMMAND_DTYPE.names if n not in ("seq", "ts_ns")]
STREAM_LEN = 300_000


# -- a client for the pipe server ------------------------------------------------------------------

class Client:
    """One ``engine.pipe_server`` subprocess and its pipes. Always ``close()`` it (it kills)."""

    def __init__(self, journal: Path, *args: str, stderr: Path,
                 launch: tuple[str, ...] = ("-m", "engine.pipe_server")) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        self._err = open(stderr, "ab")
        self.stderr_path = stderr
        self.proc = subprocess.Popen(
            [sys.executable, *launch, "--journal", str(journal), *args],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)

    def send(self, msg: object) -> bool:
        """False if the server is gone."""
        return self.send_raw(encode_frame(msg))  # type: ignore[arg-type]

    def send_raw(self, data: bytes) -> bool:
        try:
            self.proc.stdin.write(data)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
            return True
        except (BrokenPipeError, ValueError):
            return False

    def recv(self):  # -> a response, or None at EOF
        body = read_frame(self.proc.stdout)  # type: ignore[arg-type]
        return None if body is None else decode_response(body)

    def expect(self, kind: type):
        r = self.recv()
        assert isinstance(r, kind), f"expected {kind.__name__}, got {r!r}; stderr:\n{self.stderr()}"
        return r

    def ready(self) -> Ready:
        return self.expect(Ready)

    def call(self, msg: object, kind: type):
        assert self.send(msg), self.stderr()
        return self.expect(kind)

    def digest(self) -> DigestReply:
        return self.call(Digest(), DigestReply)

    def process(self, cmds: np.ndarray) -> tuple[Ack, np.ndarray]:
        ack = self.call(Batch(cmds.tobytes()), Ack)
        return ack, np.frombuffer(ack.events, dtype=EVENT_DTYPE)

    def stop(self, timeout: float = 60) -> int:
        """Stop cleanly; every response still to come must be an Ack. Returns the exit code."""
        self.send(Stop())
        self.proc.stdin.close()  # type: ignore[union-attr]
        rest = []
        while (r := self.recv()) is not None:
            rest.append(r)
        assert all(isinstance(r, Ack) for r in rest), rest
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(60)

    def stderr(self) -> str:
        self._err.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass
        self._err.close()


@contextmanager
def server(journal: Path, *args: str, stderr: Path, **kwargs: tuple[str, ...]
           ) -> Iterator[Client]:
    c = Client(journal, *args, stderr=stderr, **kwargs)
    try:
        yield c
    finally:
        c.close()


# -- the command stream ---------------------------------------------------------------------------

def command_stream(seed: int = 11) -> np.ndarray:
    """The conftest's seeded workload (limit GTC, limit IOC, crossing limits, market orders,
    cancels, replaces) with some NEWs made FOK and some passive limits post-only, and a few
    bad commands. One long stream: its cancels and replaces refer to its own NEWs, and ids
    stay unique however many rounds consume it."""
    cmds = workload(STREAM_LEN, seed)
    rng = np.random.default_rng(seed)
    new = np.flatnonzero(cmds["cmd"] == CommandType.NEW)
    fok = rng.choice(new, size=len(new) // 25, replace=False)
    cmds["tif"][fok] = TimeInForce.FOK
    gtc = new[(cmds["ord_type"][new] == OrdType.LIMIT) & (cmds["tif"][new] == TimeInForce.GTC)]
    post = rng.choice(gtc, size=len(gtc) // 25, replace=False)
    cmds["flags"][post] = Flags.POST_ONLY
    bad = rng.choice(len(cmds), size=len(cmds) // 500, replace=False)
    kinds = rng.integers(0, 3, size=len(bad))
    cmds["instrument"][bad[kinds == 0]] = 99      # unknown instrument
    cmds["qty"][bad[kinds == 1]] = 0              # invalid quantity
    cmds["account"][bad[kinds == 2]] = 5          # someone else's order
    return cmds


# -- the crash test -------------------------------------------------------------------------------

@dataclass
class Model:
    """What the client knows: every command the journal must hold, by seq, and the acks."""

    cmds: np.ndarray = field(default_factory=lambda: np.zeros(1 << 20, dtype=COMMAND_DTYPE))
    last_seq: int = 0                 # the journal must hold cmds[1..last_seq] (acked or not)
    acked_last: int = 0               # the highest acknowledged seq
    journaled: int = 0                # of ``unacked``, how many the last restart recovered
    acks: list[tuple[int, int, bytes]] = field(default_factory=list)
    acked_new_ids: list[int] = field(default_factory=list)
    unacked: list[np.ndarray] = field(default_factory=list)   # in flight at the last kill
    stats: dict[str, int] = field(default_factory=lambda: dict(
        rounds=0, kills=0, commands_acked=0, batches_acked=0, unacked_batches=0,
        unacked_journaled=0, unacked_lost=0, dup_probes=0, dup_finished_skipped=0,
        snapshot_recoveries=0, torn_tails_injected=0, max_in_flight=0))

    def record_ack(self, ack: Ack, cmds: np.ndarray) -> np.ndarray:
        n = len(cmds)
        assert ack.first_seq == self.last_seq + 1 and ack.last_seq == self.last_seq + n, \
            (ack.first_seq, ack.last_seq, self.last_seq, n)
        events = np.frombuffer(ack.events, dtype=EVENT_DTYPE)
        assert len(ack.events) == len(events) * EVENT_DTYPE.itemsize
        if n:
            assert events["seq"].min() >= ack.first_seq and events["seq"].max() <= ack.last_seq
        self.cmds[ack.first_seq:ack.last_seq + 1] = cmds
        self.acked_last = self.last_seq = ack.last_seq
        self.acks.append((ack.first_seq, ack.last_seq, ack.events))
        self.acked_new_ids += cmds["order_id"][cmds["cmd"] == CommandType.NEW].tolist()
        self.stats["commands_acked"] += n
        self.stats["batches_acked"] += 1
        return events


def full_journal(jdir: Path, scratch: Path) -> Path:
    """The journal as one directory from seq 1: ``jdir`` itself, or, when retention archived
    older segments, a copy of the manifest, the archived segments and the live ones."""
    archive = jdir / ARCHIVE_DIR
    if not archive.is_dir() or not list_segments(archive):
        return jdir
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    shutil.copy2(jdir / MANIFEST, scratch / MANIFEST)
    for _, p in list_segments(archive) + list_segments(jdir):
        shutil.copy2(p, scratch / p.name)
    return scratch


def verify_recovery(c: Client, ready: Ready, m: Model, jdir: Path, scratch: Path,
                    rng: np.random.Generator) -> None:
    """Checks (a)-(e) after a restart, before the server gets any new batch."""
    unacked = np.concatenate(m.unacked) if m.unacked else np.empty(0, dtype=COMMAND_DTYPE)
    # (a) nothing acknowledged is lost, and nothing was invented: the journal ends somewhere
    # in what was in flight (every seq before it was acknowledged or recovered before)
    assert m.acked_last <= m.last_seq <= ready.last_seq <= m.last_seq + len(unacked), \
        (m.acked_last, m.last_seq, ready.last_seq, len(unacked))
    journaled = m.journaled = ready.last_seq - m.last_seq
    m.cmds[m.last_seq + 1:ready.last_seq + 1] = unacked[:journaled]
    m.last_seq = ready.last_seq
    m.stats["unacked_journaled"] += journaled
    m.stats["unacked_lost"] += len(unacked) - journaled
    if ready.recovered_from_snapshot_seq:
        m.stats["snapshot_recoveries"] += 1
        assert ready.recovered_from_snapshot_seq + ready.replayed == ready.last_seq

    # (e) gap-free, nothing twice: the live journal verifies and counts exactly its range
    live = Journal(jdir)
    assert live.last_seq == ready.last_seq
    if ready.last_seq:
        assert live.count == live.last_seq - live.first_seq + 1
    if not (jdir / ARCHIVE_DIR).exists():
        assert live.first_seq == (1 if ready.last_seq else 0)

    # (b) the journal holds, at every seq, exactly the command that was sent (acked ones, and
    # the journaled prefix of what was in flight), stamped in order
    whole = Journal(full_journal(jdir, scratch))
    got = whole.commands()
    assert got["seq"].tolist() == list(range(1, ready.last_seq + 1))
    assert bool(np.all(np.diff(got["ts_ns"]) >= 0))
    want = m.cmds[1:ready.last_seq + 1]
    for name in CLIENT_FIELDS:
        assert np.array_equal(got[name], want[name]), name

    # (c) replay from scratch: byte-equal events for every acknowledged batch, same digest
    r = replay(whole, use_snapshot=False)
    ev = r.events
    assert ev is not None
    ev_seq = ev["seq"]
    for first, last, raw in m.acks:
        lo, hi = np.searchsorted(ev_seq, first, "left"), np.searchsorted(ev_seq, last, "right")
        assert ev[lo:hi].tobytes() == raw, f"events of seq {first}..{last} differ on replay"
    d = c.digest()
    assert d.last_seq == ready.last_seq
    assert d.digest == r.digest()

    # (d) orders, as the restarted server and the replayed core see them
    sample = list(rng.choice(m.acked_new_ids, size=min(60, len(m.acked_new_ids)),
                             replace=False)) if m.acked_new_ids else []
    sample += unacked["order_id"][unacked["cmd"] == CommandType.NEW][:40].tolist()
    for oid in sample:
        assert c.send(Order(int(oid)))
    for oid in sample:
        reply = c.expect(OrderReply)
        assert reply.order == r.core.order(int(oid)), oid
    m._replayed_core = r.core  # type: ignore[attr-defined]


def resend_unacked(c: Client, m: Model) -> None:
    """The client's side of at-least-once: resend what was never acknowledged.

    A NEW that was journaled (and so recovered) and is still open is refused as a duplicate
    order id (1012) and changes nothing; a NEW that was not journaled is accepted as new, and
    each goes one way, never both. (A journaled NEW that has already finished - filled,
    cancelled, IOC/FOK/market - is not resent: the core only refuses ids of live orders.)
    """
    if not m.unacked:
        return
    core = m._replayed_core  # type: ignore[attr-defined]
    journaled = m.journaled
    flat = np.concatenate(m.unacked)
    done, rest = flat[:journaled], flat[journaled:]
    new = done[done["cmd"] == CommandType.NEW]
    is_live = np.array([(o := core.order(int(i))) is not None
                        and o["status"] in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
                        for i in new["order_id"]], dtype=bool)
    probe = new[is_live].copy()
    m.stats["dup_finished_skipped"] += int((~is_live).sum())
    if len(probe):
        before = c.digest()
        ack, events = c.process(probe)
        m.record_ack(ack, probe)
        assert len(events) == len(probe)
        assert (events["type"] == EventType.REJECTED).all()
        assert (events["reason"] == Reason.BOOK_DUPLICATE_ORDER_ID).all()
        assert events["order_id"].tolist() == probe["order_id"].tolist()
        after = c.digest()
        assert after.digest == before.digest and after.last_seq == before.last_seq + len(probe)
        m.stats["dup_probes"] += len(probe)
    # what was not journaled goes again, in its original batches, pipelined
    batches, pos = [], 0
    for b in m.unacked:
        lo, hi = max(pos, journaled), pos + len(b)
        if lo < hi:
            batches.append(b[lo - pos:hi - pos].copy())
        pos += len(b)
    assert sum(len(b) for b in batches) == len(rest)
    for b in batches:
        assert c.send(Batch(b.tobytes()))
    for b in batches:
        events = m.record_ack(c.expect(Ack), b)
        new_ids = set(b["order_id"][b["cmd"] == CommandType.NEW].tolist())
        dup = (events["type"] == EventType.REJECTED) & \
              (events["reason"] == Reason.BOOK_DUPLICATE_ORDER_ID)
        assert not (set(events["order_id"][dup].tolist()) & new_ids), \
            "a NEW that was never journaled was refused as a duplicate"
    m.unacked = []


def drive_until_killed(c: Client, m: Model, stream: np.ndarray, pos: int,
                       rng: np.random.Generator, kill: bool = True,
                       batches_total: int | None = None, window: int | None = None) -> int:
    """Send batches of 1..200 commands with several in flight; kill the server with SIGKILL a
    short random delay after a random number of acks (the load goes on meanwhile). Returns
    the stream position; what was in flight is left in ``m.unacked``."""
    in_flight: deque[np.ndarray] = deque()
    max_in_flight = window or int(rng.integers(2, 40))
    kill_after = int(rng.integers(5, 200))
    kill_delay = float(rng.uniform(0.0, 0.03))
    timer: threading.Timer | None = None
    alive, acks, sent = True, 0, 0
    try:
        while True:
            while alive and len(in_flight) < max_in_flight and pos < len(stream) \
                    and (batches_total is None or sent < batches_total):
                k = int(rng.integers(1, 201))
                b = stream[pos:pos + k].copy()
                pos += len(b)
                in_flight.append(b)
                sent += 1
                alive = c.send(Batch(b.tobytes()))
            m.stats["max_in_flight"] = max(m.stats["max_in_flight"], len(in_flight))
            if not in_flight:
                break
            if pos >= len(stream) and kill and timer is None:
                c.proc.kill()          # the stream is used up: kill now
            r = c.recv()
            if r is None:
                break                  # killed
            assert isinstance(r, Ack), r
            m.record_ack(r, in_flight.popleft())
            acks += 1
            if kill and timer is None and acks >= kill_after:
                timer = threading.Timer(kill_delay, c.proc.kill)
                timer.start()
    finally:
        if timer is not None:
            timer.join()
    if kill:
        c.kill()
        assert c.proc.returncode == -9, (c.proc.returncode, c.stderr())
        m.stats["kills"] += 1
    m.unacked = list(in_flight)
    m.stats["unacked_batches"] += len(in_flight)
    return pos


def inject_torn_tail(jdir: Path, rng: np.random.Generator) -> None:
    """What a write cut short by a crash leaves: part of a record, or a whole record of
    garbage, at the end of the last segment."""
    _, last = list_segments(jdir)[-1]
    n = int(rng.choice([int(rng.integers(1, 64)), 64]))
    with open(last, "ab") as f:
        f.write(rng.integers(0, 256, size=n, dtype=np.uint8).tobytes())


STREAM: dict[int, np.ndarray] = {}


def stream_for(seed: int) -> np.ndarray:
    if seed not in STREAM:
        STREAM[seed] = command_stream(seed)
    return STREAM[seed]


@pytest.mark.parametrize("variant", [
    pytest.param(dict(durability="fsync", rounds=7, seed=1), id="fsync"),
    pytest.param(dict(durability="write", rounds=6, seed=2), id="write"),
    pytest.param(dict(durability="fsync", rounds=7, seed=3, snapshot_every=1500, retention="archive",
                      segment_bytes=64 * 1024), id="fsync-snapshots-archive"),
])
def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path, variant: dict) -> None:
    jdir = tmp_path / "journal"
    args = ["--durability", variant["durability"]]
    for opt in ("snapshot_every", "retention", "segment_bytes"):
        if opt in variant:
            args += [f"--{opt.replace('_', '-')}", str(variant[opt])]
    stream = stream_for(11)
    rng = np.random.default_rng(variant["seed"])
    m = Model()
    pos = 0
    rounds = variant["rounds"]
    for rnd in range(rounds + 1):
        with server(jdir, *args, stderr=tmp_path / f"server-{rnd}.err") as c:
            ready = c.ready()
            verify_recovery(c, ready, m, jdir, tmp_path / "whole", rng)
            resend_unacked(c, m)
            m.stats["rounds"] += 1
            if rnd < rounds:
                pos = drive_until_killed(c, m, stream, pos, rng)
                if rnd % 3 == 2:
                    inject_torn_tail(jdir, rng)
                    m.stats["torn_tails_injected"] += 1
            else:
                # a last, clean life: a fixed amount of load, then Stop; the restart below
                # must find everything (and, with snapshots, start from one)
                # (all 60 batches at once: one fsync covers many, group commit)
                pos = drive_until_killed(c, m, stream, pos, rng, kill=False, batches_total=60,
                                         window=60)
                assert c.stop() == 0, c.stderr()
                found = re.search(r"(\d+) batches acknowledged over (\d+) durability advances",
                                  c.stderr())
                assert found, c.stderr()
                m.stats["clean_life_acks"], m.stats["clean_life_durability_advances"] = \
                    int(found.group(1)), int(found.group(2))
    with server(jdir, *args, stderr=tmp_path / "server-final.err") as c:
        ready = c.ready()
        assert ready.last_seq == m.acked_last == m.last_seq   # a clean stop: all acknowledged
        verify_recovery(c, ready, m, jdir, tmp_path / "whole", rng)
        assert c.stop() == 0
    if "snapshot_every" in variant:
        assert ready.recovered_from_snapshot_seq > 0
        assert list_snapshots(jdir) and list_segments(jdir / ARCHIVE_DIR)
    print(f"\n[crash {variant}] {m.stats}, stream position {pos},"
          f" stray files: {sorted(p.name for p in jdir.glob('*.tmp'))}")


# -- bad requests, another instrument set, a journal that fails -------------------------------------

def test_bad_requests_get_an_error_and_change_nothing(tmp_path: Path) -> None:
    jdir = tmp_path / "journal"
    cmds = command_stream()[:3000]
    with server(jdir, stderr=tmp_path / "server.err") as c:
        c.ready()
        for i in range(0, len(cmds), 500):
            c.process(cmds[i:i + 500].copy())
        before = c.digest()
        assert before.last_seq == 3000
        oid = int(cmds["order_id"][cmds["cmd"] == CommandType.NEW][-1])
        order_before = c.call(Order(oid), OrderReply)

        def frame(body: bytes) -> bytes:
            return len(body).to_bytes(4, "little") + body

        frames = [
            frame(b"abc"),                                              # not MessagePack
            frame(b""),                                                 # an empty frame
            encode_frame(Error("a response sent as a request")),        # unknown op
            encode_frame(Batch(b"\x01" * 57)),                          # not a multiple of 56
            encode_frame(Batch(cmds[:2].tobytes() + b"\0")),            # one byte too many
            frame(msgspec.msgpack.encode([1, 2, 3])),                   # not a map
            frame(msgspec.msgpack.encode({"op": "Batch"})),             # a field missing
            frame(msgspec.msgpack.encode({"op": "Batch", "cmds": "x"})),  # the wrong type
            frame(msgspec.msgpack.encode({"op": "Order", "order_id": 2 ** 64 - 1})),  # > int64
            frame(msgspec.msgpack.encode({"op": "Digest", "extra": 1})),  # an unknown field
            frame(msgspec.msgpack.encode({"op": None})),
        ]
        # an oversized frame is skipped whole, so the next one is read from its start
        frames.append((MAX_FRAME + 1).to_bytes(4, "little") + b"\0" * (MAX_FRAME + 1))
        for f in frames:
            assert c.send_raw(f)
        for f in frames:
            r = c.expect(Error)
            assert r.message
        after = c.digest()
        assert (after.last_seq, after.digest) == (before.last_seq, before.digest)
        assert c.call(Order(oid), OrderReply) == order_before
        # the server kept going: the next batch is taken and acknowledged
        ack, events = c.process(command_stream()[3000:3010].copy())
        assert (ack.first_seq, ack.last_seq) == (3001, 3010) and len(events) >= 10
        assert c.stop() == 0
    assert Journal(jdir).last_seq == 3010


def test_journal_of_another_instrument_set_is_refused(tmp_path: Path) -> None:
    jdir = tmp_path / "journal"
    with server(jdir, stderr=tmp_path / "a.err") as c:
        c.ready()
        c.process(command_stream()[:100].copy())
        assert c.stop() == 0
    other = tmp_path / "other.toml"
    other.write_text('[[instruments]]\nid = 1\nsymbol = "XYZ"\nasset_class = "equity"\n'
                     'tick_size = "0.01"\nlot_size = "1"\ncurrency = "USD"\n'
                     'min_qty = "1"\nmax_qty = "1000"\n')
    with server(jdir, "--config", str(other), stderr=tmp_path / "b.err") as c:
        r = c.recv()
        assert c.proc.wait(60) == 2
        err = c.stderr()
    assert isinstance(r, Error) and "another instrument set" in r.message
    assert "another instrument set" in err and str(jdir) in err
    assert Journal(jdir).last_seq == 100                 # untouched


def test_journal_failure_stops_the_server_without_acknowledging(tmp_path: Path) -> None:
    """A write that fails (here: the file size limit, EFBIG) is reported as Error, the server
    exits 1, and no acknowledgement covers a command the journal does not hold."""
    jdir = tmp_path / "journal"
    stream = command_stream()
    m = Model()
    limit = 64 + 1500 * 64 + 40          # segment header, 1,500 records, part of another
    with server(jdir, "--durability", "fsync", stderr=tmp_path / "a.err") as c:
        c.ready()
        resource.prlimit(c.proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
        in_flight: deque[np.ndarray] = deque()
        pos, error = 0, None
        while True:
            while len(in_flight) < 6 and pos < 20_000:
                b = stream[pos:pos + 150].copy()
                pos += len(b)
                in_flight.append(b)
                if not c.send(Batch(b.tobytes())):
                    break
            r = c.recv()
            if r is None:
                break
            if isinstance(r, Error):
                error = r
                continue
            assert error is None, "an Ack after the Error"
            m.record_ack(r, in_flight.popleft())
        assert c.proc.wait(60) == 1
        assert error is not None and "file size limit" in error.message, c.stderr()
    assert 0 < m.acked_last <= 1500
    m.unacked = list(in_flight)
    with server(jdir, stderr=tmp_path / "b.err") as c:
        ready = c.ready()
        verify_recovery(c, ready, m, jdir, tmp_path / "whole", np.random.default_rng(1))
        assert ready.last_seq <= 1500                    # the partial record was dropped
        assert c.stop() == 0


# the server with the journal's fdatasync failing (EIO) from its Nth call on
FAILING_FSYNC = """
import errno, sys
import engine.journal.writer as w
calls, real = [0], w._sync
def sync(fd):
    calls[0] += 1
    if calls[0] >= int(sys.argv[1]):
        raise OSError(errno.EIO, "Input/output error")
    return real(fd)
w._sync = sync
from engine.pipe_server import main
sys.exit(main(sys.argv[2:]))
"""


def test_fsync_failure_in_the_background_stops_the_server(tmp_path: Path) -> None:
    """An fdatasync that fails (EIO) in the journal's fsync thread while the client waits for
    its ack and sends nothing: the ack never goes out, the client gets Error, the server
    exits 1. A restart recovers every acknowledged command."""
    jdir = tmp_path / "journal"
    stream = command_stream()
    m = Model()
    sent: list[np.ndarray] = []
    with server(jdir, "--durability", "fsync", stderr=tmp_path / "a.err",
                launch=("-c", FAILING_FSYNC, "15")) as c:
        c.ready()
        while True:                      # one batch at a time: one fsync each
            b = stream[len(sent) * 100:(len(sent) + 1) * 100].copy()
            sent.append(b)
            assert c.send(Batch(b.tobytes()))
            r = c.recv()
            if isinstance(r, Error):
                break
            assert isinstance(r, Ack), (r, c.stderr())
            m.record_ack(r, b)
        assert c.recv() is None
        assert c.proc.wait(60) == 1
        assert "fsync failed" in r.message and "Input/output error" in r.message
    assert m.acked_last == 100 * (len(sent) - 1) > 0
    m.unacked = sent[-1:]
    with server(jdir, stderr=tmp_path / "b.err") as c:
        ready = c.ready()
        verify_recovery(c, ready, m, jdir, tmp_path / "whole", np.random.default_rng(2))
        assert c.stop() == 0
