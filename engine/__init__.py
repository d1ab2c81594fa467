"""An in-memory order engine: a Cython matching core, a reference model, typed instruments.

This module only re-exports. The compiled core lives in ``engine._core``; the slow,
obviously-correct twin in ``engine.reference``; the shared codes in ``engine.schema``.
"""
from .schema import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    OrdType,
    OrderStatus,
    Reason,
    Side,
    TimeInForce,
    TradingState,
)

__version__ = "0.1.0"

__all__ = [
    "Core", "ReferenceCore", "COMMAND_DTYPE", "EVENT_DTYPE", "CancelCause", "CommandType",
    "EventType", "Flags", "OrdType", "OrderStatus", "Reason", "Side", "TimeInForce",
    "TradingState",
]


def __getattr__(name: str):
    # Lazy, so that `import engine` works (config, reference model) before the core is built.
    if name == "Core":
        from ._core import Core
        return Core
    if name == "ReferenceCore":
        from .reference import ReferenceCore
        return ReferenceCore
    raise AttributeError(name)
