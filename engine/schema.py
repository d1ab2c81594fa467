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
    "CancelCause", "Reason", "OrderStatus", "TradingState", "RiskKind", "KillSwitch", "Strategy",
    "COMMAND_DTYPE", "EVENT_DTYPE", "DIGEST_DTYPE", "ORDER_STATE_DTYPE", "INSTRUMENT_STATE_DTYPE",
    "RISK_ACCOUNT_DTYPE", "RISK_POSITION_DTYPE", "RISK_CASH_DTYPE", "RISK_INSTRUMENT_DTYPE",
    "RISK_CURRENCY_DTYPE", "RISK_GLOBAL_DTYPE", "RISK_TABLES", "NOTIONAL_CAP", "UNLIMITED",
    "PARENT_STATE_DTYPE", "MAX_FEE_PPM",
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
    POST_REMAINDER = 4  # ROUTE: strategy sweep_post (the remainder rests); without it, sweep
    # set by the core on the orders it keeps (ORDER_STATE_DTYPE), never accepted in a command:
    PARENT = 0x4000  # a routed (parent) order
    CHILD = 0x8000  # a child order the router placed on a venue


class Strategy(IntEnum):
    """A routed order's strategy (docs/ROUTING.md); in a ROUTE command it is the
    POST_REMAINDER flag."""

    SWEEP = 1  # take the best fee-adjusted prices across venues; the rest is cancelled
    SWEEP_POST = 2  # the same, then the rest rests post-only on one venue


class CommandType(IntEnum):
    NEW = 1
    CANCEL = 2
    REPLACE = 3
    # admin commands (docs/RULES.md, "Admin commands"): journaled and replayed like orders
    MASS_CANCEL = 4  # the resting orders of an account (or all), an instrument (or all), a side
    HALT = 5  # the instrument's trading state becomes HALTED: no NEW, no REPLACE
    RESUME = 6  # the instrument's trading state becomes OPEN
    SET_LIMITS = 7  # the instrument's quantity bounds: price = new min_qty, qty = new max_qty
    # risk admin commands (docs/RISK.md): rejected with RISK_DISABLED when risk is off
    SET_RISK = 8  # ord_type = RiskKind, qty = the value, price = a second value (RATE: burst)
    KILL_SWITCH = 9  # side = KillSwitch mode; account, or every account with Flags.ALL_ACCOUNTS
    RESTRICT = 10  # side = 1 restrict / 0 lift; instrument; account, or global with ALL_ACCOUNTS
    # smart order routing (docs/ROUTING.md)
    ROUTE = 11  # a parent order the core routes across the venues listing the instrument


class EventType(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELLED = 4
    REPLACED = 5
    INSTRUMENT_STATE = 6  # HALT/RESUME/SET_LIMITS: reason = TradingState, price/qty = min/max qty
    RISK = 7  # SET_RISK/KILL_SWITCH/RESTRICT applied: reason = kind/mode, qty/price = the values
    PARENT_FILL = 8  # a child of a routed order traded: the fill rolled up to the parent
    PARENT_DONE = 9  # a routed order ended: reason = OrderStatus (FILLED or CANCELLED)


class CancelCause(IntEnum):
    """The ``reason`` field of a CANCELLED event."""

    USER = 1
    IOC_REMAINDER = 2
    MARKET_REMAINDER = 3
    FOK_UNFILLABLE = 4
    LEVEL_QUANTITY_LIMIT = 5  # resting it would take its level's open total past 2**63 - 1
    MASS_CANCEL = 6  # cancelled by a MASS_CANCEL command
    KILL_SWITCH = 7  # cancelled by a KILL_SWITCH command (killed or reduce-only)
    ODD_LOT = 8  # a sweep_post remainder below the post venue's lot size (the rest still rests)


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
    # -- venues and routing (docs/ROUTING.md) --
    BOOK_UNKNOWN_VENUE = 1017           # a venue id the engine does not host
    BOOK_VENUE_NOT_LISTED = 1018        # the venue does not list the instrument
    BOOK_OFF_VENUE_GRID = 1019          # price or quantity off the venue's tick or lot grid
    BOOK_NO_ROUTABLE_VENUE = 1020       # ROUTE: no venue lists the instrument
    BOOK_CHILD_ORDER = 1021             # CANCEL/REPLACE of a child order: act on its parent
    BOOK_PARENT_REPLACE = 1022          # a REPLACE of a parent that is not a quantity decrease
    BOOK_INVALID_STRATEGY = 1023        # ROUTE: strategy, order type and time in force disagree
    # -- pre-trade risk (engine/risk; docs/RISK.md), in the order the checks run --
    RISK_UNKNOWN_ACCOUNT = 2001         # risk is on and the account has no risk record
    RISK_NO_REFERENCE_PRICE = 2002      # a market order with no reference price to protect it
    RISK_PRICE_BAND = 2003              # limit price outside reference +- band
    RISK_MAX_ORDER_QTY = 2004
    RISK_MAX_ORDER_NOTIONAL = 2005      # in the account's base currency (or past NOTIONAL_CAP)
    RISK_INSUFFICIENT_CASH = 2006       # a buy beyond free cash + credit in the currency
    RISK_INSUFFICIENT_POSITION = 2007   # a sell beyond free position + short allowance
    RISK_POSITION_LIMIT = 2008          # worst-case position past the limit
    RISK_MAX_OPEN_ORDERS = 2009
    RISK_RATE_LIMITED = 2010            # the account's order token bucket is empty
    RISK_RESTRICTED = 2011              # the instrument is on the account's restricted list
    RISK_RESTRICTED_GLOBAL = 2012       # the instrument is on the global restricted list
    RISK_KILL_SWITCH = 2013             # the account's kill switch is on
    RISK_KILL_SWITCH_GLOBAL = 2014      # the global kill switch is on
    RISK_REDUCE_ONLY = 2015             # reduce-only: the order could increase the position
    RISK_INVALID_VALUE = 2016           # a risk admin command with a bad kind, mode or value
    RISK_DISABLED = 2017                # a risk admin command to a core without risk
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


class RiskKind(IntEnum):
    """What a SET_RISK command sets (its ``ord_type`` field). Per-instrument account limits
    take instrument 0 to mean every instrument; currency kinds take the currency index in
    the ``instrument`` field; instrument kinds ignore the account."""

    MAX_ORDER_QTY = 1        # account x instrument, lots
    MAX_ORDER_NOTIONAL = 2   # account x instrument, cash units of the account's base currency
    POSITION_LIMIT = 3       # account x instrument, lots (|worst-case position| <= limit)
    SHORT_LIMIT = 4          # account x instrument, lots a sell may take the position below 0
    MAX_OPEN_ORDERS = 5      # account
    RATE = 6                 # account: qty = orders per second (0: off), price = burst
    CREDIT = 7               # account x currency, cash units
    PRICE_BAND = 8           # instrument, basis points of the reference price (0: off)
    REFERENCE_PRICE = 9      # instrument, ticks (0: none)
    FX_RATE = 10             # currency: its value per cash unit (docs/RISK.md, "Currencies")
    CASH_ADJUST = 11         # account x currency: a signed deposit (+) or withdrawal (-)
    FEE = 12                 # instrument, millionths of notional charged to each side of a fill


class KillSwitch(IntEnum):
    """An account's (or the global) kill switch: the ``side`` field of KILL_SWITCH."""

    ACTIVE = 0        # trading as usual
    REDUCE_ONLY = 1   # resting orders cancelled; only orders that reduce the position pass
    KILLED = 2        # resting orders cancelled; every new order and replace rejected


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
    ("venue", "<u2"),       # NEW: 0 = the instrument's primary venue; ROUTE: the post venue
                            # (0: the best maker fee); MASS_CANCEL/HALT/RESUME/SET_LIMITS: 0 = all
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
    ("fee", "<i8"),           # TRADE: the taker's fee (cash units; < 0 a rebate); PARENT_*: see
    ("other_fee", "<i8"),     # TRADE: the maker's fee           docs/ROUTING.md, "Events"
    ("parent_id", "<i8"),     # the parent of order_id when it is a child order, else 0
    ("instrument", "<u4"),
    ("account", "<u4"),
    ("other_account", "<u4"),
    ("reason", "<u2"),        # REJECTED: Reason; CANCELLED: CancelCause; INSTRUMENT_STATE: TradingState
    ("venue", "<u2"),         # the venue of the book the event happened in (0: the default venue)
    ("type", "u1"),           # EventType
    ("side", "u1"),           # Side of order_id
    ("cmd", "u1"),            # CommandType of the command that produced the event
    ("_pad", "u1", (5,)),
])
assert EVENT_DTYPE.itemsize == 112

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
    ("venue", "<u2"),         # the venue of its book (a rejected NEW or ROUTE: the command's)
])
assert ORDER_STATE_DTYPE.itemsize == 48

# One registered book (an instrument on a venue) in Core.export_state() and in a snapshot.
INSTRUMENT_STATE_DTYPE = np.dtype([
    ("instrument", "<u4"),
    ("trading_state", "u1"),  # TradingState
    ("_pad", "u1"),
    ("venue", "<u2"),         # 0: the default venue (an engine without venues)
    ("min_qty", "<i8"),
    ("max_qty", "<i8"),
])
assert INSTRUMENT_STATE_DTYPE.itemsize == 24

# One live routed (parent) order in Core.export_state() and in a snapshot (docs/ROUTING.md).
# A parent is live while its one resting child is; sweep parents end within their command.
PARENT_STATE_DTYPE = np.dtype([
    ("order_id", "<i8"),
    ("price", "<i8"),         # the limit price (ticks)
    ("qty", "<i8"),           # total quantity (after a REPLACE: the new total)
    ("filled", "<i8"),        # rolled up from every child
    ("cancelled", "<i8"),     # cancelled without a child resting for it (an odd lot)
    ("value", "<i8"),         # sum of price x qty over the fills (saturates at 2**63-1)
    ("fees", "<i8"),          # sum of the children's fees, cash units
    ("child_id", "<i8"),      # the resting child
    ("instrument", "<u4"),
    ("account", "<u4"),
    ("flags", "<u2"),         # Flags (PARENT and POST_REMAINDER)
    ("venue", "<u2"),         # the venue the child rests on
    ("side", "u1"),
    ("ord_type", "u1"),
    ("tif", "u1"),
    ("status", "u1"),         # OrderStatus
])
assert PARENT_STATE_DTYPE.itemsize == 80

MAX_FEE_PPM = 1_000_000     # a venue's maker or taker fee lies in -MAX_FEE_PPM..MAX_FEE_PPM

INT64_MAX = (1 << 63) - 1
UNLIMITED = INT64_MAX       # a limit that is not set
NOTIONAL_CAP = 1 << 62      # notionals above this are refused (so sums stay inside int64)

# -- risk tables (docs/RISK.md, "State"): Core.enable_risk() takes them, risk_state() and
# export_state()["risk"] give them back, snapshots store them. Layouts match engine/risk/_risk.pxd.

# One account, ascending ids.
RISK_ACCOUNT_DTYPE = np.dtype([
    ("account", "<u4"),
    ("base_ccy", "<u4"),          # currency index
    ("kill", "u1"),               # KillSwitch
    ("_pad", "u1", (7,)),
    ("open_orders", "<i8"),       # resting orders now
    ("max_open_orders", "<i8"),
    ("rate_per_s", "<i8"),        # token bucket: orders per second (0: no rate check)
    ("rate_burst", "<i8"),        # bucket size, orders
    ("tokens_nano", "<i8"),       # tokens * 1e9 at last_ts
    ("last_ts", "<i8"),           # ts_ns of the last order that took a token
])
assert RISK_ACCOUNT_DTYPE.itemsize == 64

# One account on one instrument: row a * n_instruments + i (instruments in core order).
RISK_POSITION_DTYPE = np.dtype([
    ("position", "<i8"),          # lots, signed (short < 0)
    ("cost", "<i8"),              # cash units: what the open position cost (or a short fetched)
    ("realized", "<i8"),          # realized P&L, cash units of the instrument's currency
    ("fees", "<i8"),              # fees paid, cash units of the instrument's currency
    ("open_buy_qty", "<i8"),      # open quantity of resting buys
    ("open_sell_qty", "<i8"),
    ("max_order_qty", "<i8"),
    ("max_order_notional", "<i8"),  # cash units of the account's base currency
    ("position_limit", "<i8"),
    ("short_limit", "<i8"),
    ("restricted", "u1"),
    ("_pad", "u1", (7,)),
])
assert RISK_POSITION_DTYPE.itemsize == 88

# One account in one currency: row a * n_currencies + c.
RISK_CASH_DTYPE = np.dtype([
    ("cash", "<i8"),              # cash units (10**-decimals of the currency)
    ("credit", "<i8"),            # how far a buy may take free cash below zero
    ("open_buy_notional", "<i8"),  # what resting buys would pay: limit price x open qty x k
])
assert RISK_CASH_DTYPE.itemsize == 24

# One instrument, in the core's registration order.
RISK_INSTRUMENT_DTYPE = np.dtype([
    ("instrument", "<u4"),
    ("ccy", "<u4"),               # currency index
    ("k", "<i8"),                 # cash units per tick x lot (tick * lot * multiplier / unit)
    ("band_bps", "<i8"),          # price band, basis points of the reference (0: off)
    ("ref_price", "<i8"),         # configured reference price, ticks (0: none)
    ("last_price", "<i8"),        # last trade price, ticks (0: no trade yet)
    ("fee_ppm", "<i8"),           # fee on each side of a fill, millionths of notional
    ("restricted", "u1"),         # on the global restricted list
    ("_pad", "u1", (7,)),
])
assert RISK_INSTRUMENT_DTYPE.itemsize == 56

# One currency: fx = its value per cash unit in a common unit (only ratios matter).
RISK_CURRENCY_DTYPE = np.dtype([("fx", "<i8")])

# The global switches: one row.
RISK_GLOBAL_DTYPE = np.dtype([("kill", "<i8")])

# The tables, in digest order.
RISK_TABLES: dict[str, np.dtype] = {
    "accounts": RISK_ACCOUNT_DTYPE,
    "positions": RISK_POSITION_DTYPE,
    "cash": RISK_CASH_DTYPE,
    "instruments": RISK_INSTRUMENT_DTYPE,
    "currencies": RISK_CURRENCY_DTYPE,
    "global": RISK_GLOBAL_DTYPE,
}
