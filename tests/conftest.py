"""Shared test fixtures and helpers for both implementations of docs/RULES.md.

``make_core`` runs a test against the reference model and the compiled core alike; the helpers
turn event arrays into short tuples for exact assertions and build COMMAND_DTYPE arrays.
Import helpers with ``from tests.conftest import ...``.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable, Iterable

import numpy as np
import pytest

from engine.reference import ReferenceCore
from engine.schema import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    OrdType,
    Reason,
    Strategy,
    TimeInForce,
    TradingState,
)

# ---------------------------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------------------------


def load_core_class() -> type:
    """``engine._core.Core``. The suite needs the compiled core (``make test`` builds it): a
    missing or broken build fails the tests instead of skipping half of them."""
    from engine._core import Core

    return Core


class Checked:
    """Wraps an engine and calls ``check_integrity()`` after every command it is given."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def _checked(self, result: Any) -> Any:
        self.engine.check_integrity()
        return result

    def submit(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.submit(*args, **kwargs))

    def cancel(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.cancel(*args, **kwargs))

    def replace(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.replace(*args, **kwargs))

    def mass_cancel(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.mass_cancel(*args, **kwargs))

    def halt(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.halt(*args, **kwargs))

    def resume(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.resume(*args, **kwargs))

    def set_limits(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.set_limits(*args, **kwargs))

    def set_risk(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.set_risk(*args, **kwargs))

    def kill_switch(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.kill_switch(*args, **kwargs))

    def restrict(self, *args: Any, **kwargs: Any) -> int:
        return self._checked(self.engine.restrict(*args, **kwargs))

    def process(self, commands: np.ndarray) -> np.ndarray:
        return self._checked(self.engine.process(commands))


def engine_factory(cls: type) -> Callable[..., Any]:
    """``factory(*instruments, history=..., checked=True)``: an engine with the instruments
    registered. An instrument is an id or an ``(id, min_qty, max_qty)`` tuple."""

    def factory(*instruments: int | tuple, checked: bool = True, **kwargs: Any) -> Any:
        engine = cls(**kwargs)
        for spec in instruments:
            engine.add_instrument(*spec) if isinstance(spec, tuple) else engine.add_instrument(spec)
        return Checked(engine) if checked else engine

    return factory


@pytest.fixture(params=["reference", "core"])
def make_core(request: pytest.FixtureRequest) -> Callable[..., Any]:
    if request.param == "reference":
        return engine_factory(ReferenceCore)
    return engine_factory(load_core_class())


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

E = namedtuple("E", "type order_id other_id price qty leaves other_leaves reason")
"""The fields that tell events apart in a scenario; see ``records`` for all of them."""


def _reason(type_: int, reason: int) -> int:
    if type_ == EventType.REJECTED:
        return Reason(reason)
    if type_ == EventType.CANCELLED:
        return CancelCause(reason)
    if type_ == EventType.INSTRUMENT_STATE:
        return TradingState(reason)
    return reason


def ev(events: np.ndarray) -> list[E]:
    """An EVENT_DTYPE array as a list of ``E`` tuples (enums where they help a diff)."""
    assert events.dtype == EVENT_DTYPE
    return [E(EventType(e["type"]), int(e["order_id"]), int(e["other_id"]), int(e["price"]),
              int(e["qty"]), int(e["leaves"]), int(e["other_leaves"]),
              _reason(int(e["type"]), int(e["reason"])))
            for e in events]


ROUTING_FIELDS = ("fee", "other_fee", "parent_id", "venue")
"""The event fields of venues and routing (docs/ROUTING.md)."""
ROUTING_EVENTS = {EventType.PARENT_FILL, EventType.PARENT_DONE}
"""The event types only routed orders produce (docs/ROUTING.md, "Parent events")."""


def records(events: np.ndarray, routing: bool = False) -> list[dict[str, int]]:
    """Every field of every event as a dict of ints (asserting the padding is zero). Without
    ``routing``, the ROUTING_FIELDS are asserted 0 (an engine without venues or fees) and left
    out of the dicts."""
    assert events.dtype == EVENT_DTYPE
    out = []
    for e in events:
        assert not e["_pad"].any(), "event padding must be zero"
        row = {name: int(e[name]) for name in EVENT_DTYPE.names if name != "_pad"}
        if not routing:
            assert all(row.pop(f) == 0 for f in ROUTING_FIELDS), f"routing fields set: {row}"
        out.append(row)
    return out


def accepted(order_id: int, price: int, qty: int) -> E:
    return E(EventType.ACCEPTED, order_id, 0, price, qty, qty, 0, 0)


def trade(taker: int, maker: int, price: int, qty: int, leaves: int, maker_leaves: int) -> E:
    return E(EventType.TRADE, taker, maker, price, qty, leaves, maker_leaves, 0)


def cancelled(order_id: int, price: int, qty: int, cause: CancelCause) -> E:
    return E(EventType.CANCELLED, order_id, 0, price, qty, 0, 0, cause)


def replaced(order_id: int, price: int, qty: int, leaves: int) -> E:
    return E(EventType.REPLACED, order_id, 0, price, qty, leaves, 0, 0)


def rejected(order_id: int, price: int, qty: int, reason: Reason) -> E:
    return E(EventType.REJECTED, order_id, 0, price, qty, 0, 0, reason)


def instrument_state(state: TradingState, min_qty: int, max_qty: int, order_id: int = 0) -> E:
    """An INSTRUMENT_STATE event: reason = the trading state, price/qty = min/max qty."""
    return E(EventType.INSTRUMENT_STATE, order_id, 0, min_qty, max_qty, 0, 0, state)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
# A command row is a tuple in COMMAND_DTYPE field order:
# (seq, ts_ns, order_id, price, qty, instrument, account, cmd, side, ord_type, tif, flags, venue)

def new_cmd(order_id: int, instrument: int, side: int, price: int, qty: int, account: int = 0,
            ord_type: int = OrdType.LIMIT, tif: int = TimeInForce.GTC, flags: int = 0,
            seq: int = 0, ts_ns: int = 0) -> tuple:
    return (seq, ts_ns, order_id, price, qty, instrument, account, CommandType.NEW, side,
            ord_type, tif, flags, 0)


def cancel_cmd(order_id: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> tuple:
    return (seq, ts_ns, order_id, 0, 0, 0, account, CommandType.CANCEL, 0, 0, 0, 0, 0)


def replace_cmd(order_id: int, price: int, qty: int, account: int = 0, seq: int = 0,
                ts_ns: int = 0) -> tuple:
    return (seq, ts_ns, order_id, price, qty, 0, account, CommandType.REPLACE, 0, 0, 0, 0, 0)


def mass_cancel_cmd(account: int = 0, instrument: int = 0, side: int = 0,
                    all_accounts: bool = False, order_id: int = 0, seq: int = 0,
                    ts_ns: int = 0) -> tuple:
    flags = Flags.ALL_ACCOUNTS if all_accounts else 0
    return (seq, ts_ns, order_id, 0, 0, instrument, account, CommandType.MASS_CANCEL, side, 0, 0,
            flags, 0)


def halt_cmd(instrument: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> tuple:
    return (seq, ts_ns, 0, 0, 0, instrument, account, CommandType.HALT, 0, 0, 0, 0, 0)


def resume_cmd(instrument: int, account: int = 0, seq: int = 0, ts_ns: int = 0) -> tuple:
    return (seq, ts_ns, 0, 0, 0, instrument, account, CommandType.RESUME, 0, 0, 0, 0, 0)


def set_limits_cmd(instrument: int, min_qty: int, max_qty: int, account: int = 0, seq: int = 0,
                   ts_ns: int = 0) -> tuple:
    return (seq, ts_ns, 0, min_qty, max_qty, instrument, account, CommandType.SET_LIMITS, 0, 0, 0,
            0, 0)


def raw_cmd(**fields: int) -> tuple:
    """Any command row; fields not given are zero."""
    unknown = set(fields) - set(COMMAND_DTYPE.names)
    assert not unknown, f"not command fields: {unknown}"
    return tuple(int(fields.get(name, 0)) for name in COMMAND_DTYPE.names)


def commands(rows: Iterable[tuple]) -> np.ndarray:
    """Command rows as a COMMAND_DTYPE array."""
    return np.array([tuple(int(v) for v in row) for row in rows], dtype=COMMAND_DTYPE)


def per_call_expressible(row: tuple) -> bool:
    """Can the per-call API send exactly this row? (It sends zeros for fields it does not take.)"""
    seq, ts, oid, price, qty, instrument, account, cmd, side, ord_type, tif, flags, venue = row
    if venue != 0 and cmd not in (CommandType.NEW, CommandType.ROUTE, CommandType.MASS_CANCEL,
                                  CommandType.HALT, CommandType.RESUME, CommandType.SET_LIMITS):
        return False
    if cmd == CommandType.NEW:
        return True
    if cmd == CommandType.ROUTE:
        # route() sets the flags from its strategy: POST_REMAINDER or nothing
        return flags in (0, Flags.POST_REMAINDER) and 0 <= tif <= 255
    if cmd == CommandType.CANCEL:
        return (price, qty, instrument, side, ord_type, tif, flags) == (0,) * 7
    if cmd == CommandType.REPLACE:
        return (instrument, side, ord_type, tif, flags) == (0,) * 5
    if cmd == CommandType.MASS_CANCEL:
        return (price, qty, ord_type, tif) == (0,) * 4 and flags in (0, Flags.ALL_ACCOUNTS)
    if cmd in (CommandType.HALT, CommandType.RESUME):
        return (oid, price, qty, side, ord_type, tif, flags) == (0,) * 7
    if cmd == CommandType.SET_LIMITS:
        return (oid, side, ord_type, tif, flags) == (0,) * 5
    if cmd == CommandType.SET_RISK:
        return (oid, side, tif, flags) == (0,) * 4
    if cmd == CommandType.KILL_SWITCH:
        return (oid, price, qty, instrument, ord_type, tif) == (0,) * 6 and \
            flags in (0, Flags.ALL_ACCOUNTS)
    if cmd == CommandType.RESTRICT:
        return (oid, price, qty, ord_type, tif) == (0,) * 5 and side in (0, 1) and \
            flags in (0, Flags.ALL_ACCOUNTS)
    return False


def send(engine: Any, row: tuple) -> int:
    """Send one command row through the per-call API; return the number of events appended."""
    assert per_call_expressible(row), f"the per-call API cannot send {row}"
    seq, ts, oid, price, qty, instrument, account, cmd, side, ord_type, tif, flags, venue = row
    if cmd == CommandType.NEW:
        return engine.submit(oid, instrument, side, price, qty, account=account,
                             ord_type=ord_type, tif=tif, flags=flags, seq=seq, ts_ns=ts,
                             venue=venue)
    if cmd == CommandType.ROUTE:
        return engine.route(oid, instrument, side, price, qty, account=account,
                            ord_type=ord_type, tif=tif,
                            strategy=Strategy.SWEEP_POST if flags else Strategy.SWEEP,
                            venue=venue, seq=seq, ts_ns=ts)
    if cmd == CommandType.CANCEL:
        return engine.cancel(oid, account=account, seq=seq, ts_ns=ts)
    if cmd == CommandType.REPLACE:
        return engine.replace(oid, price, qty, account=account, seq=seq, ts_ns=ts)
    if cmd == CommandType.MASS_CANCEL:
        return engine.mass_cancel(account=account, instrument=instrument, side=side,
                                  all_accounts=bool(flags & Flags.ALL_ACCOUNTS), order_id=oid,
                                  seq=seq, ts_ns=ts, venue=venue)
    if cmd == CommandType.HALT:
        return engine.halt(instrument, account=account, seq=seq, ts_ns=ts, venue=venue)
    if cmd == CommandType.RESUME:
        return engine.resume(instrument, account=account, seq=seq, ts_ns=ts, venue=venue)
    if cmd == CommandType.SET_LIMITS:
        return engine.set_limits(instrument, price, qty, account=account, seq=seq, ts_ns=ts,
                                 venue=venue)
    if cmd == CommandType.SET_RISK:
        return engine.set_risk(ord_type, qty, account=account, instrument=instrument, aux=price,
                               seq=seq, ts_ns=ts)
    if cmd == CommandType.KILL_SWITCH:
        return engine.kill_switch(side, account=account,
                                  all_accounts=bool(flags & Flags.ALL_ACCOUNTS), seq=seq, ts_ns=ts)
    return engine.restrict(instrument, restricted=bool(side), account=account,
                           all_accounts=bool(flags & Flags.ALL_ACCOUNTS), seq=seq, ts_ns=ts)
