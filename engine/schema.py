"""The engine's shared vocabulary: enums, reason codes and the numpy record layouts.

Owns every integer code that crosses a boundary (core, reference model, protocol,
journal, docs). Must never import the compiled core: the reference model and the
edges depend on this module alone.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag

import numpy as np

__all__ = [
    "Side", "OrdType", "TimeInForce", "Flags", "CommandType", "EventType",
    "CancelCause", "Reason", "OrderStatus", "TradingState",
    "COMMAND_DTYPE", "EVENT_DTYPE", "DIGEST_DTYPE", "ORDER_STATE_DTYPE", "INSTRUMENT_STATE_DTYPE",
]


class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrdType(IntEnum):
    LIMIT = 1
    MARKET = 2  # never rests; the price field is ignored and reported as 0


class TimeInForce(IntEnum):
    GTC = 1  # rests until filled or cancelled
    IOC = 2  # immediate or cancel: the unfilled remainder is cancelled
    FOK = 3  # fill or kill: all of it at once, checked before touching the book


class Flags(IntFlag):
    NONE = 0
    POST_ONLY = 1  # NEW: rejected (POST_ONLY_WOULD_TAKE) if it would trade on arrival
    ALL_ACCOUNTS = 2  # MASS_CANCEL: every account's orders (the command's account is ignored)


class CommandType(IntEnum):
    NEW = 1
    CANCEL = 2
    REPLACE = 3
    # admin commands (docs/RULES.md, "Admin commands"): journaled and replayed like orders
    MASS_CANCEL = 4  # the resting orders of an account (or all), an instrument (or all), a side
    HALT = 5  # the instrument's trading state becomes HALTED: no NEW, no REPLACE
    RESUME = 6  # the instrument's trading state becomes OPEN
    SET_LIMITS = 7  # the instrument's quantity bounds: price = new min_qty, qty = new max_qty


class EventType(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELLED = 4
    REPLACED = 5
    INSTRUMENT_STATE = 6  # HALT/RESUME/SET_LIMITS: reason = TradingState, price/qty = min/max qty


class CancelCause(IntEnum):
    """The ``reason`` field of a CANCELLED event."""

    USER = 1
    IOC_REMAINDER = 2
    MARKET_REMAINDER = 3
    FOK_UNFILLABLE = 4
    LEVEL_QUANTITY_LIMIT = 5  # resting it would take its level's open total past 2**63 - 1
    MASS_CANCEL = 6  # cancelled by a MASS_CANCEL command


class Reason(IntEnum):
    """Reject reasons, banded by the stage that rejects (the ``reason`` field of a REJECTED event).

    1xxx: the book/core; 2xxx: pre-trade risk; 3xxx: gateway; 4xxx: journal; 5xxx: instruments/edge.
    """

    NONE = 0
    # -- core (engine/_core.pyx and engine/reference.py) --
    BOOK_UNKNOWN_COMMAND = 1001
    BOOK_INVALID_ORDER_ID = 1002
    BOOK_UNKNOWN_INSTRUMENT = 1003
    BOOK_INVALID_SIDE = 1004
    BOOK_INVALID_ORDER_TYPE = 1005
    BOOK_INVALID_TIME_IN_FORCE = 1006
    BOOK_INVALID_INSTRUCTIONS = 1007
    BOOK_INVALID_QUANTITY = 1008
    BOOK_QUANTITY_BELOW_MIN = 1009
    BOOK_QUANTITY_ABOVE_MAX = 1010
    BOOK_INVALID_PRICE = 1011
    BOOK_DUPLICATE_ORDER_ID = 1012
    BOOK_POST_ONLY_WOULD_TAKE = 1013
    BOOK_UNKNOWN_ORDER = 1014
    BOOK_REPLACE_QTY_NOT_ABOVE_FILLED = 1015
    BOOK_INSTRUMENT_HALTED = 1016
    # -- gateway: a message refused before it reached the sequencer (engine/gateway) --
    GATEWAY_MALFORMED = 3001            # not a MessagePack map of a known shape
    GATEWAY_UNKNOWN_MESSAGE = 3002      # a "type" this server does not know
    GATEWAY_INVALID_FIELD = 3003        # wrong type, missing, unknown or out-of-range field
    GATEWAY_FRAME_TOO_LARGE = 3004      # length prefix above the limit (then disconnected)
    GATEWAY_NOT_LOGGED_ON = 3005
    GATEWAY_ALREADY_LOGGED_ON = 3006    # a second Logon on one connection
    GATEWAY_AUTH_FAILED = 3007          # unknown account or wrong API key (not told apart)
    GATEWAY_NOT_AUTHORIZED = 3008       # an admin action from a trader account
    GATEWAY_RATE_LIMITED = 3009
    GATEWAY_TOO_MANY_SESSIONS = 3010
    GATEWAY_SLOW_CONSUMER = 3011        # send buffer past its bound (then disconnected)
    GATEWAY_IDLE_TIMEOUT = 3012
    GATEWAY_UNKNOWN_INSTRUMENT = 3013   # subscribe to an instrument the engine does not list
    GATEWAY_ACCOUNT_IN_USE = 3014       # the account is logged on on another connection
    GATEWAY_SHUTTING_DOWN = 3015
    GATEWAY_LOGOUT = 3016               # the client asked to log out
    GATEWAY_ENGINE_STOPPED = 3017       # the journal failed: intake stopped
    # -- edge: decimal to integer conversion (engine/instruments.py) --
    EDGE_PRICE_OFF_GRID = 5001
    EDGE_QUANTITY_OFF_GRID = 5002
    EDGE_UNKNOWN_SYMBOL = 5003
    EDGE_BAD_VALUE = 5004


class TradingState(IntEnum):
    """An instrument's trading state (the ``reason`` field of an INSTRUMENT_STATE event)."""

    OPEN = 1  # every instrument starts open
    HALTED = 2  # NEW and REPLACE are rejected (BOOK_INSTRUMENT_HALTED); cancels still work


class OrderStatus(IntEnum):
    NEW = 1               # open, nothing filled
    PARTIALLY_FILLED = 2  # open, some filled
    FILLED = 3
    CANCELLED = 4
    REJECTED = 5


# One input command. The journal stores this record; the batch API takes an array of it.
# Fields are laid out so the C struct in engine/_core.pxd has no implicit padding.
COMMAND_DTYPE = np.dtype([
    ("seq", "<i8"),         # sequence number stamped by the sequencer
    ("ts_ns", "<i8"),       # timestamp stamped by the sequencer (the core never reads a clock)
    ("order_id", "<i8"),    # engine-unique, caller-chosen, > 0
    ("price", "<i8"),       # limit price in ticks (ignored for market orders)
    ("qty", "<i8"),         # quantity in lots (REPLACE: the new total, filled part included)
    ("instrument", "<u4"),
    ("account", "<u4"),
    ("cmd", "u1"),          # CommandType
    ("side", "u1"),         # Side
    ("ord_type", "u1"),     # OrdType
    ("tif", "u1"),          # TimeInForce
    ("flags", "<u2"),       # Flags
    ("_pad", "<u2"),
])
assert COMMAND_DTYPE.itemsize == 56

# One output event. ``order_id``/``account``/``side`` describe the order the event is about
# (the taker, for a trade); ``other_*`` describe the maker of a trade and are 0 otherwise.
EVENT_DTYPE = np.dtype([
    ("seq", "<i8"),
    ("ts_ns", "<i8"),
    ("order_id", "<i8"),
    ("other_id", "<i8"),      # TRADE: the resting (maker) order id
    ("price", "<i8"),         # TRADE: the maker's price; INSTRUMENT_STATE: min_qty; else the order's
    ("qty", "<i8"),           # TRADE: traded qty; ACCEPTED/REPLACED: total qty; CANCELLED: qty cancelled;
                              # INSTRUMENT_STATE: max_qty
    ("leaves", "<i8"),        # open qty of order_id after the event
    ("other_leaves", "<i8"),  # TRADE: the maker's open qty after the trade
    ("instrument", "<u4"),
    ("account", "<u4"),
    ("other_account", "<u4"),
    ("reason", "<u2"),        # REJECTED: Reason; CANCELLED: CancelCause; INSTRUMENT_STATE: TradingState
    ("type", "u1"),           # EventType
    ("side", "u1"),           # Side of order_id
    ("cmd", "u1"),            # CommandType of the command that produced the event
    ("_pad", "u1", (7,)),
])
assert EVENT_DTYPE.itemsize == 88

DIGEST_DTYPE = np.dtype("<i8")

# One order as Core.export_state() hands it out (a resting order, or a finished one from the
# history ring) and as a snapshot stores it: the C ``Finished`` record of engine/_core.pxd.
ORDER_STATE_DTYPE = np.dtype([
    ("order_id", "<i8"),
    ("price", "<i8"),
    ("qty", "<i8"),
    ("filled", "<i8"),
    ("instrument", "<u4"),
    ("account", "<u4"),
    ("flags", "<u2"),
    ("side", "u1"),
    ("ord_type", "u1"),
    ("tif", "u1"),
    ("status", "u1"),         # OrderStatus
    ("_pad", "u1", (2,)),
])
assert ORDER_STATE_DTYPE.itemsize == 48

# One registered instrument in Core.export_state() and in a snapshot.
INSTRUMENT_STATE_DTYPE = np.dtype([
    ("instrument", "<u4"),
    ("trading_state", "u1"),  # TradingState
    ("_pad", "u1", (3,)),
    ("min_qty", "<i8"),
    ("max_qty", "<i8"),
])
assert INSTRUMENT_STATE_DTYPE.itemsize == 24

INT64_MAX = (1 << 63) - 1
