"""The wire protocol: every message as a typed msgspec Struct, and the framing around them.

Owns the message shapes and their field constraints (docs/PROTOCOL.md is their prose twin) and
the one encoder and decoders built from them. Must never hold session or engine state.

Framing: a 4-byte big-endian unsigned length, then that many bytes of MessagePack: a map whose
``"type"`` field names the message. Prices are integer ticks and quantities integer lots of the
instrument (LogonAck lists every instrument's tick and lot size), so the wire is exact. The risk
messages (SetRisk, KillSwitch, Restrict, RiskQuery and their answers) carry decimal strings in
natural units instead, which the server converts exactly (engine/gateway/risk.py).
"""
from __future__ import annotations

import struct
from typing import Annotated, Literal, Union

import msgspec
from msgspec import UNSET, UnsetType

from ..risk.report import AccountRisk

__all__ = [
    "MAX_FRAME", "HEADER", "ClientMessage", "ServerMessage", "encode", "frame",
    "decode_client", "decode_server", "Logon", "NewOrder", "Cancel", "Replace", "MassCancel",
    "Subscribe", "Unsubscribe", "Heartbeat", "Logout", "Halt", "Resume", "SetLimits",
    "LogonAck", "LogonReject", "ExecutionReport", "BookSnapshot", "BookUpdate", "Trade",
    "InstrumentStatus", "MassCancelReport", "Reject", "InstrumentInfo", "Status",
    "StatusReport", "ServerHeartbeat", "ServerLogout", "OrderQuery", "Orders", "OrderState",
    "SetRisk", "KillSwitch", "Restrict", "RiskQuery", "RiskUpdate", "RiskReport", "RiskKindName",
    "KillSwitchMode", "UNLIMITED_TEXT", "SMART", "UNSET", "StrategyName", "VenueInfo",
    "VenueListing", "ConsolidatedBook",
]

MAX_FRAME = 1 << 16          # the default largest body a server accepts (configurable)
HEADER = struct.Struct(">I")

U32 = Annotated[int, msgspec.Meta(ge=0, le=(1 << 32) - 1)]
I64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
AccountId = Annotated[int, msgspec.Meta(ge=1, le=(1 << 31) - 1)]
ClOrdId = Annotated[int, msgspec.Meta(ge=1, le=(1 << 32) - 1)]
Side = Literal["buy", "sell"]
OrdTypeName = Literal["limit", "market"]
TifName = Literal["gtc", "ioc", "fok"]
# engine.schema.RiskKind and KillSwitch names in lower case (tests/gateway/test_risk_gateway.py
# holds them to the enums)
RiskKindName = Literal["max_order_qty", "max_order_notional", "position_limit", "short_limit",
                       "max_open_orders", "rate", "credit", "price_band", "reference_price",
                       "fx_rate", "cash_adjust", "fee"]
KillSwitchMode = Literal["active", "reduce_only", "killed"]
RiskAccount = Annotated[int, msgspec.Meta(ge=0, le=(1 << 31) - 1)]   # 0: no account
DecimalText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
UNLIMITED_TEXT = "unlimited"      # a SetRisk value (and RiskUpdate echo) for "no limit"
# venues (docs/PROTOCOL.md, "Venues and smart order routing"): a venue is named as the config
# names it; SMART is not a venue but the router (a NewOrder with venue SMART is a routed order)
VenueName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
StrategyName = Literal["sweep", "sweep_post"]
SMART = "SMART"


class _Client(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True):
    """Client -> server. Unknown fields are refused (a typo must not pass silently)."""


class _Server(msgspec.Struct, tag_field="type", omit_defaults=True):
    """Server -> client. Fields equal to their default are left out of the encoding."""


# -- client messages ------------------------------------------------------------------------------

class Logon(_Client, tag="Logon"):
    account: AccountId
    api_key: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    last_report_seq: Seq = 0          # the last ExecutionReport.report_seq seen: resend after it
    cancel_on_disconnect: bool | None = None   # None: the account's configured default


class NewOrder(_Client, tag="NewOrder"):
    cl_ord_id: ClOrdId                # the client's id, unique among the account's live orders
    instrument: U32
    side: Side
    qty: I64                          # lots
    price: I64 = 0                    # ticks; ignored for market orders
    ord_type: OrdTypeName = "limit"
    tif: TifName = "gtc"
    post_only: bool = False
    # absent (or nil): the instrument's primary book (as before venues); a venue's name: its
    # book; "SMART": a routed (parent) order, with ``strategy`` (absent: "sweep") and, for
    # sweep_post, optionally the ``post_venue`` its remainder rests on. UNSET defaults are
    # left out of the encoding, so a NewOrder without them is the same bytes as before venues.
    venue: VenueName | None | UnsetType = UNSET
    strategy: StrategyName | None | UnsetType = UNSET
    post_venue: VenueName | None | UnsetType = UNSET


class Cancel(_Client, tag="Cancel"):
    cl_ord_id: ClOrdId


class Replace(_Client, tag="Replace"):
    cl_ord_id: ClOrdId
    price: I64
    qty: I64                          # the new total quantity, filled part included


class MassCancel(_Client, tag="MassCancel"):
    instrument: U32 = 0               # 0: every instrument
    side: Side | None = None          # None: both sides
    account: AccountId | None = None  # admin only: another account's orders
    all_accounts: bool = False        # admin only: everyone's orders


class Subscribe(_Client, tag="Subscribe"):
    instrument: U32
    # absent (or nil): the instrument's primary book; a venue's name: that venue's book
    venue: VenueName | None | UnsetType = UNSET
    # true: the instrument's book merged over every venue (ConsolidatedBook messages)
    consolidated: bool | UnsetType = UNSET


class Unsubscribe(_Client, tag="Unsubscribe"):
    instrument: U32
    venue: VenueName | None | UnsetType = UNSET
    consolidated: bool | UnsetType = UNSET


class Heartbeat(_Client, tag="Heartbeat"):
    pass


class Logout(_Client, tag="Logout"):
    pass


class Halt(_Client, tag="Halt"):
    instrument: U32


class Resume(_Client, tag="Resume"):
    instrument: U32


class SetLimits(_Client, tag="SetLimits"):
    instrument: U32
    min_qty: I64                      # lots
    max_qty: I64


class OrderQuery(_Client, tag="OrderQuery"):
    """The current state of one of the account's orders, or of all its open orders."""

    cl_ord_id: ClOrdId | None = None  # None: every open order of the account


class Status(_Client, tag="Status"):
    """Admin: the engine's position and state digest (operations, recovery checks)."""


class SetRisk(_Client, tag="SetRisk"):
    """Admin: one pre-trade risk value (docs/RISK.md, SET_RISK), in natural units. Which of
    ``account``, ``symbol`` and ``currency`` a kind takes, and what ``value`` means, is
    docs/PROTOCOL.md's table; the server converts ``value`` exactly or refuses it."""

    kind: RiskKindName
    value: DecimalText                # a decimal string, or "unlimited" for a limit
    account: RiskAccount = 0          # account kinds; 0 for instrument and currency kinds
    symbol: Symbol | None = None      # instrument kinds; account limits: None = every instrument
    currency: CurrencyCode | None = None   # credit, cash_adjust, fx_rate
    burst: Annotated[int, msgspec.Meta(ge=1, le=10**9)] | None = None   # rate only


class KillSwitch(_Client, tag="KillSwitch"):
    """Admin: an account's kill switch, or the global one with ``all_accounts``."""

    mode: KillSwitchMode
    account: AccountId | None = None
    all_accounts: bool = False


class Restrict(_Client, tag="Restrict"):
    """Admin: put an instrument on (or take it off) an account's or the global restricted
    list."""

    symbol: Symbol
    restricted: bool
    account: AccountId | None = None
    all_accounts: bool = False


class RiskQuery(_Client, tag="RiskQuery"):
    """An account's risk: balances, positions, P&L, limits. Traders: their own account only."""

    account: AccountId | None = None  # None: the session's account


ClientMessage = Union[Logon, NewOrder, Cancel, Replace, MassCancel, Subscribe, Unsubscribe,
                      Heartbeat, Logout, Halt, Resume, SetLimits, Status, OrderQuery, SetRisk,
                      KillSwitch, Restrict, RiskQuery]


# -- server messages ------------------------------------------------------------------------------

class InstrumentInfo(msgspec.Struct, omit_defaults=True):
    id: int
    symbol: str
    asset_class: str
    tick_size: str                    # decimals as strings: price = ticks * tick_size
    lot_size: str                     # qty = lots * lot_size
    multiplier: str
    currency: str
    min_qty: int                      # lots
    max_qty: int
    venues: list[str] = []            # the venues listing it, its primary first ([]: no venues)
    fee_unit: str = ""                # with venues: the currency amount of one unit of `fee`


class VenueListing(msgspec.Struct, omit_defaults=True):
    """One instrument a venue lists, on the venue's grid (a multiple of the instrument's)."""

    instrument: int
    symbol: str
    tick_size: str                    # decimals as strings, like InstrumentInfo's
    lot_size: str


class VenueInfo(msgspec.Struct, omit_defaults=True):
    id: int
    name: str
    maker_fee: int                    # millionths of the notional; negative: a rebate
    taker_fee: int
    priority: int = 0                 # routing ties: lower first, then the lower id
    instruments: list[VenueListing] = []


class LogonAck(_Server, tag="LogonAck"):
    account: int
    role: str                         # "trader" or "admin"
    next_report_seq: int              # the report_seq the next live ExecutionReport will carry
    heartbeat_s: float
    idle_timeout_s: float
    cancel_on_disconnect: bool
    instruments: list[InstrumentInfo]
    resent: int = 0                   # reports resent after last_report_seq, right after this
    lost_before: int = 0              # reports up to this seq can no longer be resent (0: none)
    venues: list[VenueInfo] = []      # the engine's venues, config order ([]: none)


class LogonReject(_Server, tag="LogonReject"):
    reason: int
    text: str


class ExecutionReport(_Server, tag="ExecutionReport"):
    report_seq: int                   # per account, gap-free from 1
    seq: int                          # the journal sequence number of the command behind it
    ts_ns: int
    exec_type: str                    # new | trade | cancelled | replaced | rejected
    request: str                      # new | cancel | replace | mass_cancel: what caused it
    cl_ord_id: int
    instrument: int
    side: str = ""                    # "" for a rejected cancel/replace of an unknown order
    status: str = ""                  # new | partially_filled | filled | cancelled | rejected
    price: int = 0                    # new/replaced/cancelled/rejected: the limit price (ticks)
    qty: int = 0                      # the order's total quantity (lots)
    leaves_qty: int = 0
    cum_qty: int = 0
    cum_notional: int = 0             # sum of fill price * fill qty, ticks x lots
    avg_price: float = 0.0            # cum_notional / cum_qty, in ticks
    last_price: int = 0               # trade: this fill
    last_qty: int = 0
    liquidity: str = ""               # trade: "taker" or "maker"
    reason: int = 0                   # rejected: engine.Reason; cancelled: engine.CancelCause
    venue: str = ""                   # the venue of the order's book ("": the default venue)
    fee: int = 0                      # trade: this fill's fee, cash units (< 0: a rebate)
    cum_fee: int = 0                  # a routed order's fees so far, cash units
    strategy: str = ""                # a routed order's new and done reports: sweep | sweep_post


class BookSnapshot(_Server, tag="BookSnapshot"):
    instrument: int
    md_seq: int                       # per book; updates continue from here
    depth: int                        # levels per side kept in view
    bids: list[tuple[int, int, int]]  # (price, qty, orders), best first
    asks: list[tuple[int, int, int]]
    venue: str = ""                   # the book's venue ("": the default venue)


class BookUpdate(_Server, tag="BookUpdate"):
    instrument: int
    md_seq: int
    bids: list[tuple[int, int, int]] = []   # changed levels; qty 0 = the level left the view
    asks: list[tuple[int, int, int]] = []
    venue: str = ""


class Trade(_Server, tag="Trade"):
    instrument: int
    md_seq: int
    seq: int
    ts_ns: int
    price: int
    qty: int
    aggressor: str                    # the taker's side
    venue: str = ""


class InstrumentStatus(_Server, tag="InstrumentStatus"):
    instrument: int
    md_seq: int
    trading_state: str                # open | halted
    min_qty: int
    max_qty: int
    seq: int = 0
    venue: str = ""


# one level of the consolidated book: price, open qty over every venue, and each venue's open
# qty there ((name, qty), books in routing order; "" names the default venue)
ConsolidatedLevel = tuple[int, int, list[tuple[str, int]]]


class ConsolidatedBook(_Server, tag="ConsolidatedBook"):
    """An instrument's book merged over its venues, whole (not a difference): at Subscribe
    (consolidated) and after every batch that changed it. ``bids[0]``/``asks[0]`` are the
    consolidated best bid and offer."""

    instrument: int
    md_seq: int                       # per instrument, the consolidated stream's own
    depth: int                        # levels per side at most
    bids: list[ConsolidatedLevel] = []
    asks: list[ConsolidatedLevel] = []


class MassCancelReport(_Server, tag="MassCancelReport"):
    seq: int
    cancelled: int
    instrument: int = 0
    side: str = ""
    account: int = 0
    all_accounts: bool = False


class OrderState(msgspec.Struct, omit_defaults=True):
    cl_ord_id: int
    instrument: int
    side: str
    status: str                       # new | partially_filled | filled | cancelled | rejected
    price: int                        # ticks (0 for a market order)
    qty: int                          # total quantity, lots
    leaves_qty: int
    cum_qty: int
    ord_type: str = "limit"
    tif: str = "gtc"
    post_only: bool = False
    venue: str = ""                   # its book's venue; a routed order: where its rest rests
    strategy: str = ""                # a routed order: sweep | sweep_post


class Orders(_Server, tag="Orders"):
    """The answer to OrderQuery: the orders as they stand after command ``seq``."""

    seq: int
    orders: list[OrderState]
    cl_ord_id: int = 0                # the order asked for (0: all open orders)


class StatusReport(_Server, tag="StatusReport"):
    last_seq: int                     # the last command sequenced
    durable_seq: int                  # the last command the durability policy covers
    digest: str                       # the core's state digest after last_seq
    open_orders: int
    sessions: int
    recovery: str                     # how the engine started (snapshot, commands replayed)


class RiskUpdate(_Server, tag="RiskUpdate"):
    """The answer to SetRisk, KillSwitch and Restrict: what the engine applied (its RISK event),
    in natural units."""

    seq: int
    request: str                      # set_risk | kill_switch | restrict
    kind: str = ""                    # set_risk: the RiskKind name, lower case
    account: int = 0                  # 0: an instrument or currency kind, or all_accounts
    all_accounts: bool = False        # kill_switch, restrict: the global switch or list
    symbol: str = ""                  # "" for an account limit set on every instrument
    currency: str = ""
    value: str = ""                   # set_risk: the value applied, a decimal or "unlimited"
    burst: int = 0                    # set_risk rate
    mode: str = ""                    # kill_switch: active | reduce_only | killed
    restricted: bool = False          # restrict: on the list (true) or taken off it
    cancelled: int = 0                # kill_switch: resting orders it cancelled


class RiskReport(_Server, tag="RiskReport"):
    """The answer to RiskQuery: the account's risk as it stands after command ``seq``."""

    seq: int
    risk: AccountRisk                 # engine/risk/report.py; decimals as strings
    orders: list[OrderState] = []     # the account's open orders


class ServerHeartbeat(_Server, tag="Heartbeat"):
    pass


class Reject(_Server, tag="Reject"):
    reason: int                       # engine.Reason (3xxx: gateway; 1xxx: the core)
    text: str
    ref_type: str = ""                # the refused message's type, when it could be read
    cl_ord_id: int = 0


class ServerLogout(_Server, tag="Logout"):
    reason: int
    text: str


ServerMessage = Union[LogonAck, LogonReject, ExecutionReport, BookSnapshot, BookUpdate, Trade,
                      InstrumentStatus, MassCancelReport, StatusReport, Orders, RiskUpdate,
                      RiskReport, ServerHeartbeat, Reject, ServerLogout, ConsolidatedBook]

_encoder = msgspec.msgpack.Encoder()
_client_decoder = msgspec.msgpack.Decoder(ClientMessage)
_server_decoder = msgspec.msgpack.Decoder(ServerMessage)
_any_decoder = msgspec.msgpack.Decoder()
CLIENT_TYPES = frozenset(t.__struct_config__.tag for t in ClientMessage.__args__)


def encode(msg: msgspec.Struct) -> bytes:
    """The MessagePack body of ``msg`` (no length prefix)."""
    return _encoder.encode(msg)


def frame(msg: msgspec.Struct) -> bytes:
    """One whole frame: the 4-byte big-endian length, then the body."""
    body = _encoder.encode(msg)
    return HEADER.pack(len(body)) + body


def decode_client(body: bytes | memoryview) -> ClientMessage:
    """A client message; msgspec.DecodeError / ValidationError if it is not one."""
    return _client_decoder.decode(body)


def decode_server(body: bytes | memoryview) -> ServerMessage:
    return _server_decoder.decode(body)


def message_type(body: bytes | memoryview) -> str | None:
    """The ``"type"`` of a body that failed to decode as a message: None if it is not a map
    with a string ``"type"``."""
    try:
        raw = _any_decoder.decode(body)
    except msgspec.DecodeError:
        return None
    t = raw.get("type") if isinstance(raw, dict) else None
    return t if isinstance(t, str) else None
