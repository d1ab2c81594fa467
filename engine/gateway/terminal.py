"""`engine client`: the gateway for a person at a terminal, in decimals and symbols.

Owns the terminal's command language (``buy AAPL 10 @ 150.25 ioc``...), the exact conversion
of the decimals typed to the ticks and lots of the wire (with the instruments the LogonAck
lists: an off-grid price is refused, never rounded), the one-line text of every server message,
and the tool's view of the session's open orders (rebuilt from the execution reports, and
replaced by the server's own list whenever `orders` asks for it). All of
that is pure functions and one state class (``Terminal``) that tests call directly; the asyncio
driver at the bottom only connects, reads lines, sends and prints. Must never guess an outcome:
every line about an order comes from a message the server sent.

    $ engine client --port 7001 --account 1 --key demo-alice-key sell AAPL 10 @ 150.00
    #1 NEW     sell 10 AAPL @ 150.00
"""
from __future__ import annotations

import asyncio
import decimal
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..config import InstrumentConfig
from ..instruments import GridError, Instrument
from ..schema import CancelCause, Reason
from .protocol import (
    SMART,
    UNSET,
    BookUpdate,
    Cancel,
    ConsolidatedBook,
    ExecutionReport,
    Halt,
    InstrumentInfo,
    InstrumentStatus,
    KillSwitch,
    LogonAck,
    MassCancel,
    MassCancelReport,
    NewOrder,
    OrderQuery,
    Orders,
    Reject,
    Replace,
    Restrict,
    Resume,
    RiskQuery,
    RiskReport,
    RiskUpdate,
    ServerLogout,
    SetRisk,
    Trade,
)

__all__ = [
    "UsageError", "Catalog", "OpenOrder", "Terminal", "parse_command", "split_commands",
    "replace_message", "order_message", "first_cl_ord_id", "format_report", "format_reject",
    "format_trade", "format_book", "format_book_update", "format_consolidated",
    "format_consolidated_update", "format_status", "format_mass_cancel",
    "format_orders", "format_instruments", "format_logout", "format_avg_price",
    "format_risk_update", "format_risk_report", "HELP",
    "run_terminal", "main",
]

CL_ORD_ID_MAX = (1 << 32) - 1
_WIDE = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.InvalidOperation])
_FLOOR = decimal.Context(prec=200, rounding=decimal.ROUND_FLOOR,
                         Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)

HELP = """\
commands (quantities and prices are decimals, e.g. 10 and 150.25; symbols as `instruments` lists):
  buy SYMBOL QTY [@ PRICE] [ioc|fok|post] [venue=VENUE]
  sell SYMBOL QTY [@ PRICE] [ioc|fok|post] [venue=VENUE]
                                           a limit order; without @ PRICE a market order;
                                           venue=VENUE: on that venue's book (default: the
                                           instrument's primary venue)
  smart buy|sell SYMBOL QTY [@ PRICE] [ioc|fok|post[=VENUE]]
                                           a routed order across the venues: ioc (default) or
                                           fok sweeps; post sweeps, then rests the rest on VENUE
                                           (default: the best maker fee); fills name the venue
  cancel ID                                cancel order #ID
  replace ID QTY @ PRICE                   new total quantity (filled part included) and price
  cancel-all [SYMBOL] [buy|sell]           cancel the session account's open orders
  book SYMBOL [venue=VENUE|all]            print the book (asks above bids): the primary
                                           venue's; venue=VENUE: that venue's; all (or
                                           consolidated): merged over the venues, with each
                                           venue's quantity at each price
  watch SYMBOL [venue=VENUE|all]           print that book, then its changes and trades until
                                           Ctrl-C or the next command
  orders                                   the account's open orders, from the server
  instruments                              every instrument with its tick and lot size
  halt SYMBOL, resume SYMBOL               (admin) stop / restart trading in SYMBOL
  risk [ACCOUNT]                           cash, positions, P&L and limits of the session's
                                           account (another ACCOUNT: admin)
  kill active|reduce_only|killed [ACCOUNT|all]
                                           (admin) an account's kill switch (default: the
                                           session's), or the global one
  restrict SYMBOL [ACCOUNT|all]            (admin) put SYMBOL on an account's restricted list,
  unrestrict SYMBOL [ACCOUNT|all]          or the global one; unrestrict takes it off
  set-risk KIND VALUE [account=N] [symbol=S] [currency=C] [burst=N]
                                           (admin) one risk value in natural units, e.g.
                                           set-risk max_order_qty 500 account=1 symbol=AAPL
                                           (KIND: max_order_qty, max_order_notional,
                                           position_limit, short_limit, max_open_orders, rate,
                                           credit, cash_adjust, price_band, reference_price,
                                           fee, fx_rate; a limit's VALUE may be unlimited)
  help, quit"""


class UsageError(ValueError):
    """A command line the tool refuses before sending anything; ``str()`` says why."""


# -- instruments ------------------------------------------------------------------------------

def instrument_from_info(info: InstrumentInfo) -> Instrument:
    """An ``engine.instruments.Instrument`` (exact conversions) from a LogonAck entry."""
    lot = Decimal(info.lot_size)
    return Instrument(InstrumentConfig(
        id=info.id, symbol=info.symbol, asset_class=info.asset_class,  # type: ignore[arg-type]
        tick_size=Decimal(info.tick_size), lot_size=lot, currency=info.currency,
        multiplier=Decimal(info.multiplier),
        min_qty=_WIDE.multiply(Decimal(info.min_qty), lot),
        max_qty=_WIDE.multiply(Decimal(info.max_qty), lot)))


class Catalog:
    """The server's instruments by id and by symbol (symbols match case-insensitively), and its
    venues by name (case-insensitively too): each instrument's primary venue and the value of
    one unit of its fees, from the LogonAck."""

    def __init__(self, instruments: Iterable[Instrument | InstrumentInfo],
                 venues: Iterable[str] = ()) -> None:
        self.by_id: dict[int, Instrument] = {}
        self._by_symbol: dict[str, Instrument] = {}
        self.primary: dict[int, str] = {}          # instrument -> its primary venue's name
        self.fee_unit: dict[int, Decimal] = {}     # instrument -> currency per unit of fee
        self.listed: dict[int, list[str]] = {}     # instrument -> the venues listing it (known
        #                                            only from a LogonAck; [] for none)
        for i in instruments:
            inst = instrument_from_info(i) if isinstance(i, InstrumentInfo) else i
            self.by_id[inst.id] = inst
            self._by_symbol[inst.symbol.upper()] = inst
            if isinstance(i, InstrumentInfo):
                self.listed[inst.id] = list(i.venues)
                if i.venues:
                    self.primary[inst.id] = i.venues[0]
                if i.fee_unit:
                    self.fee_unit[inst.id] = Decimal(i.fee_unit)
        self._venues = {v.upper(): v for v in venues}

    @property
    def venues(self) -> list[str]:
        """The server's venues' names, in the LogonAck's order ([]: none, or unknown)."""
        return list(self._venues.values())

    def venue(self, token: str) -> str:
        """A venue's name as the server spells it; UsageError if the server has no such
        venue (without a venue list from the server, the name goes as typed)."""
        if not self._venues:
            return token
        name = self._venues.get(token.upper())
        if name is None:
            known = ", ".join(self._venues.values())
            raise UsageError(f"unknown venue {token!r} (venues: {known})")
        return name

    def fee(self, instrument_id: int, units: int) -> str:
        """A fee in the instrument's currency (exact), or in the server's units if unknown."""
        unit = self.fee_unit.get(instrument_id)
        inst = self.by_id.get(instrument_id)
        if unit is None or inst is None:
            return f"{units} units"
        return f"{format(_WIDE.multiply(Decimal(units), unit), 'f')} {inst.currency}"

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self.by_id.values(), key=lambda i: i.id))

    def symbol(self, token: str) -> Instrument:
        inst = self._by_symbol.get(token.upper())
        if inst is None:
            known = ", ".join(i.symbol for i in self)
            raise UsageError(f"unknown symbol {token!r} (known: {known})")
        return inst

    def name(self, instrument_id: int) -> str:
        inst = self.by_id.get(instrument_id)
        return inst.symbol if inst is not None else f"instrument {instrument_id}"

    def price(self, instrument_id: int, ticks: int) -> str:
        inst = self.by_id.get(instrument_id)
        return f"{ticks} ticks" if inst is None else format(inst.ticks_to_price(ticks), "f")

    def qty(self, instrument_id: int, lots: int) -> str:
        inst = self.by_id.get(instrument_id)
        return f"{lots} lots" if inst is None else format(inst.lots_to_qty(lots), "f")


def _units(inst: Instrument, token: str, what: str) -> int:
    """``token`` as ticks (what="price") or lots (what="quantity") of ``inst``, exactly, > 0."""
    convert, unit = ((inst.price_to_ticks, inst.tick_size) if what == "price"
                     else (inst.qty_to_lots, inst.lot_size))
    try:
        n = convert(token)
    except GridError as e:
        if e.reason in (Reason.EDGE_PRICE_OFF_GRID, Reason.EDGE_QUANTITY_OFF_GRID):
            # floor(d / unit): rounding the quotient toward -inf keeps its floor exact
            lo = int(_FLOOR.divide(Decimal(token), unit).to_integral_value(decimal.ROUND_FLOOR))
            near = " and ".join(format(_WIDE.multiply(Decimal(k), unit), "f")
                                for k in (lo, lo + 1) if k > 0)
            hint = f" (nearest: {near})" if near else ""
            plural = "prices" if what == "price" else "quantities"
            raise UsageError(f"{e.message}{hint}; {plural} are never rounded") from None
        raise UsageError(e.message) from None
    if n <= 0:
        raise UsageError(f"{what} {token} must be positive")
    return n


# -- commands ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderCmd:
    side: str                  # buy | sell
    instrument: int
    qty: int                   # lots
    price: int | None          # ticks; None: a market order
    tif: str = "gtc"
    post_only: bool = False
    venue: str | None = None   # a venue's name; "SMART": a routed order; None: the primary
    strategy: str | None = None        # routed: sweep | sweep_post
    post_venue: str | None = None      # routed sweep_post: where the rest rests


@dataclass(frozen=True)
class CancelCmd:
    cl_ord_id: int


@dataclass(frozen=True)
class ReplaceCmd:
    cl_ord_id: int
    qty: str                   # decimals as typed: the order's instrument converts them
    price: str


@dataclass(frozen=True)
class CancelAllCmd:
    instrument: int = 0        # 0: every instrument
    side: str | None = None


@dataclass(frozen=True)
class SymbolCmd:
    name: str                  # book | watch | halt | resume
    instrument: int
    venue: str | None = None   # book, watch: a venue's book (None: the primary book)
    consolidated: bool = False  # book, watch: the book merged over the venues


@dataclass(frozen=True)
class SimpleCmd:
    name: str                  # orders | instruments | help | quit


@dataclass(frozen=True)
class RiskCmd:
    account: int | None = None          # None: the session's account


@dataclass(frozen=True)
class KillCmd:
    mode: str                           # active | reduce_only | killed
    account: int | None = None          # None: the session's account
    all_accounts: bool = False


@dataclass(frozen=True)
class RestrictCmd:
    symbol: str
    restricted: bool
    account: int | None = None          # None: the session's account
    all_accounts: bool = False


@dataclass(frozen=True)
class SetRiskCmd:
    kind: str
    value: str                          # as typed: the server converts it exactly
    account: int = 0
    symbol: str | None = None
    currency: str | None = None
    burst: int | None = None


Command = (OrderCmd | CancelCmd | ReplaceCmd | CancelAllCmd | SymbolCmd | SimpleCmd | RiskCmd
           | KillCmd | RestrictCmd | SetRiskCmd)

_RISK_KINDS = ("max_order_qty", "max_order_notional", "position_limit", "short_limit",
               "max_open_orders", "rate", "credit", "price_band", "reference_price", "fx_rate",
               "cash_adjust", "fee")
_KILL_MODES = ("active", "reduce_only", "killed")

_ORDER_USAGE = "usage: {0} SYMBOL QTY [@ PRICE] [ioc|fok|post]"   # [venue=VENUE]: see HELP
_SMART_USAGE = "usage: smart buy|sell SYMBOL QTY [@ PRICE] [ioc|fok|post[=VENUE]]"
_REPLACE_USAGE = ("usage: replace ID QTY @ PRICE (the new total quantity, filled part included,"
                  " and the new price: both are required)")
_ALIASES = {"exit": "quit", "q": "quit", "?": "help", "cancelall": "cancel-all",
            "set_risk": "set-risk", "setrisk": "set-risk"}


def _order_id(token: str, usage: str) -> int:
    t = token[1:] if token.startswith("#") else token
    if not t.isdigit() or not 1 <= int(t) <= CL_ORD_ID_MAX:
        raise UsageError(f"bad order id {token!r}: expected a number from 1 to {CL_ORD_ID_MAX}"
                         f" ({usage})")
    return int(t)


def parse_command(line: str, catalog: Catalog) -> Command | None:
    """One command line as a Command; None for a blank line or a ``#`` comment.
    UsageError (with the reason and the usage) for anything else the tool cannot send."""
    words = line.replace("@", " @ ").split()
    if not words or words[0].startswith("#"):
        return None
    verb = words[0].lower()
    verb = _ALIASES.get(verb, verb)
    args = words[1:]
    if verb == "smart":
        return _smart(args, catalog)
    if verb in ("buy", "sell"):
        usage = _ORDER_USAGE.format(verb)
        venue = None
        for i, a in enumerate(args):
            if a.lower().startswith("venue="):
                if not a[6:]:
                    raise UsageError(f"{verb}: venue= needs a venue's name ({usage})")
                venue = catalog.venue(a[6:])
                if venue.upper() == SMART:
                    raise UsageError(f"{verb}: a routed order is `smart {verb} ...`"
                                     f" ({_SMART_USAGE})")
                args = args[:i] + args[i + 1:]
                break
        if len(args) < 2 or args[1] == "@":
            raise UsageError(f"{verb}: missing {'symbol' if not args else 'quantity'} ({usage})")
        inst = catalog.symbol(args[0])
        qty = _units(inst, args[1], "quantity")
        rest = args[2:]
        price = None
        if rest and rest[0] == "@":
            if len(rest) < 2:
                raise UsageError(f"{verb}: missing price after '@' ({usage})")
            price = _units(inst, rest[1], "price")
            rest = rest[2:]
        tif, post_only = "gtc", False
        if rest:
            word = rest[0].lower()
            if word in ("ioc", "fok"):
                tif = word
            elif word in ("post", "post-only", "post_only"):
                post_only = True
            elif price is None and _is_number(rest[0]):
                raise UsageError(f"{verb}: a price needs '@' ({verb} {inst.symbol} {args[1]}"
                                 f" @ {rest[0]})")
            else:
                raise UsageError(f"{verb}: unexpected {rest[0]!r} (expected ioc, fok or post;"
                                 f" {usage})")
            if len(rest) > 1:
                raise UsageError(f"{verb}: unexpected {rest[1]!r} after {rest[0]!r} ({usage})")
        return OrderCmd(verb, inst.id, qty, price, tif, post_only, venue)
    if verb == "cancel":
        usage = "usage: cancel ID"
        if len(args) != 1:
            raise UsageError(f"cancel: expected one order id ({usage})")
        return CancelCmd(_order_id(args[0], usage))
    if verb == "replace":
        if not args:
            raise UsageError(f"replace: missing order id ({_REPLACE_USAGE})")
        cl = _order_id(args[0], _REPLACE_USAGE)
        if len(args) != 4 or args[2] != "@":
            if "@" not in args:
                raise UsageError(f"replace: missing '@ PRICE' ({_REPLACE_USAGE})")
            raise UsageError(f"replace: expected ID QTY @ PRICE ({_REPLACE_USAGE})")
        for token, what in ((args[1], "quantity"), (args[3], "price")):
            if not _is_number(token):
                raise UsageError(f"replace: {what} {token!r} is not a decimal number")
        return ReplaceCmd(cl, args[1], args[3])
    if verb == "cancel-all":
        usage = "usage: cancel-all [SYMBOL] [buy|sell]"
        inst_id, side = 0, None
        for a in args:
            if a.lower() in ("buy", "sell") and side is None:
                side = a.lower()
            elif inst_id == 0 and side is None:
                inst_id = catalog.symbol(a).id
            else:
                raise UsageError(f"cancel-all: unexpected {a!r} ({usage})")
        return CancelAllCmd(inst_id, side)
    if verb in ("book", "watch"):
        return _book_command(verb, args, catalog)
    if verb in ("halt", "resume"):
        if len(args) != 1:
            raise UsageError(f"{verb}: expected one symbol (usage: {verb} SYMBOL)")
        return SymbolCmd(verb, catalog.symbol(args[0]).id)
    if verb in ("orders", "instruments", "help", "quit"):
        if args:
            raise UsageError(f"{verb}: takes no arguments")
        return SimpleCmd(verb)
    if verb == "risk":
        if len(args) > 1:
            raise UsageError("risk: expected at most one account (usage: risk [ACCOUNT])")
        return RiskCmd(_account(args[0], "usage: risk [ACCOUNT]") if args else None)
    if verb == "kill":
        usage = "usage: kill active|reduce_only|killed [ACCOUNT|all]"
        if not 1 <= len(args) <= 2:
            raise UsageError(f"kill: expected a mode and at most one account ({usage})")
        mode = args[0].lower().replace("-", "_")
        if mode not in _KILL_MODES:
            raise UsageError(f"kill: unknown mode {args[0]!r} ({usage})")
        if len(args) == 2 and args[1].lower() == "all":
            return KillCmd(mode, None, True)
        return KillCmd(mode, _account(args[1], usage) if len(args) == 2 else None)
    if verb in ("restrict", "unrestrict"):
        usage = f"usage: {verb} SYMBOL [ACCOUNT|all]"
        if not 1 <= len(args) <= 2:
            raise UsageError(f"{verb}: expected a symbol and at most one account ({usage})")
        symbol = catalog.symbol(args[0]).symbol
        on = verb == "restrict"
        if len(args) == 2 and args[1].lower() == "all":
            return RestrictCmd(symbol, on, None, True)
        return RestrictCmd(symbol, on, _account(args[1], usage) if len(args) == 2 else None)
    if verb == "set-risk":
        return _set_risk(args, catalog)
    raise UsageError(f"unknown command {words[0]!r} (type 'help' for the list)")


def _book_command(verb: str, args: Sequence[str], catalog: Catalog) -> SymbolCmd:
    """``book|watch SYMBOL [venue=VENUE|all|consolidated]``: the primary book, a venue's book,
    or the consolidated book. Refused before anything is sent: an unknown venue, a venue the
    LogonAck says does not list the instrument, and a venue or consolidated book of an
    instrument no venue lists (it has one book: ``book SYMBOL``)."""
    usage = f"usage: {verb} SYMBOL [venue=VENUE|all]"
    if not args:
        raise UsageError(f"{verb}: expected a symbol ({usage})")
    if len(args) > 2:
        raise UsageError(f"{verb}: unexpected {args[2]!r} after {args[1]!r} ({usage})")
    inst = catalog.symbol(args[0])
    if len(args) == 1:
        return SymbolCmd(verb, inst.id)
    word = args[1]
    if word.lower() in ("all", "consolidated"):
        venue, consolidated = None, True
    elif word.lower().startswith("venue="):
        if not word[6:]:
            raise UsageError(f"{verb}: venue= needs a venue's name ({usage})")
        if not catalog.venues:
            raise UsageError(f"unknown venue {word[6:]!r} (the server has no venues: {verb}"
                             f" {inst.symbol} shows the only book)")
        venue, consolidated = catalog.venue(word[6:]), False
    else:
        raise UsageError(f"{verb}: unexpected {word!r} (expected venue=VENUE or all; {usage})")
    listed = catalog.listed.get(inst.id)
    if (listed is not None and not listed) or (consolidated and not catalog.venues):
        raise UsageError(f"{verb}: {inst.symbol} is listed on no venue: it has one book"
                         f" ({verb} {inst.symbol})")
    if venue is not None and listed is not None and venue not in listed:
        raise UsageError(f"{verb}: {inst.symbol} is not listed on {venue} (its venues:"
                         f" {', '.join(listed)})")
    return SymbolCmd(verb, inst.id, venue, consolidated)


def _smart(args: Sequence[str], catalog: Catalog) -> OrderCmd:
    """``smart buy|sell SYMBOL QTY [@ PRICE] [ioc|fok|post[=VENUE]]``: a routed order."""
    if not args or args[0].lower() not in ("buy", "sell"):
        raise UsageError(f"smart: expected buy or sell ({_SMART_USAGE})")
    side, rest = args[0].lower(), list(args[1:])
    if len(rest) < 2 or rest[1] == "@":
        raise UsageError(f"smart {side}: missing {'symbol' if not rest else 'quantity'}"
                         f" ({_SMART_USAGE})")
    inst = catalog.symbol(rest[0])
    qty = _units(inst, rest[1], "quantity")
    rest = rest[2:]
    price = None
    if rest and rest[0] == "@":
        if len(rest) < 2:
            raise UsageError(f"smart {side}: missing price after '@' ({_SMART_USAGE})")
        price = _units(inst, rest[1], "price")
        rest = rest[2:]
    tif, strategy, post_venue = "ioc", "sweep", None
    if rest:
        word, _, name = rest[0].partition("=")
        if word.lower() in ("ioc", "fok") and not name:
            tif = word.lower()
        elif word.lower() == "post":
            tif, strategy = "gtc", "sweep_post"
            post_venue = catalog.venue(name) if name else None
        else:
            raise UsageError(f"smart {side}: unexpected {rest[0]!r} (expected ioc, fok, post or"
                             f" post=VENUE; {_SMART_USAGE})")
        if len(rest) > 1:
            raise UsageError(f"smart {side}: unexpected {rest[1]!r} after {rest[0]!r}"
                             f" ({_SMART_USAGE})")
    return OrderCmd(side, inst.id, qty, price, tif, False, SMART, strategy, post_venue)


def _account(token: str, usage: str) -> int:
    if not token.isdigit() or not 1 <= int(token) <= (1 << 31) - 1:
        raise UsageError(f"bad account {token!r}: expected a number from 1 to {(1 << 31) - 1}"
                         f" ({usage})")
    return int(token)


_SET_RISK_USAGE = "usage: set-risk KIND VALUE [account=N] [symbol=S] [currency=C] [burst=N]"


def _set_risk(args: Sequence[str], catalog: Catalog) -> SetRiskCmd:
    if len(args) < 2:
        raise UsageError(f"set-risk: missing {'kind' if not args else 'value'} ({_SET_RISK_USAGE})")
    kind = args[0].lower().replace("-", "_")
    if kind not in _RISK_KINDS:
        raise UsageError(f"set-risk: unknown kind {args[0]!r} (known: {', '.join(_RISK_KINDS)})")
    value = args[1]
    if value.lower() != "unlimited" and not _is_number(value):
        raise UsageError(f"set-risk: value {value!r} is not a decimal number nor 'unlimited'")
    fields: dict[str, Any] = {}
    for a in args[2:]:
        key, eq, v = a.partition("=")
        key = key.lower()
        if not eq or not v or key not in ("account", "symbol", "currency", "burst") \
                or key in fields:
            raise UsageError(f"set-risk: unexpected {a!r} ({_SET_RISK_USAGE})")
        if key == "account":
            fields[key] = _account(v, _SET_RISK_USAGE)
        elif key == "burst":
            if not v.isdigit() or not 1 <= int(v) <= 10**9:
                raise UsageError(f"set-risk: bad burst {v!r}: expected a number from 1 to 10**9")
            fields[key] = int(v)
        elif key == "symbol":
            fields[key] = catalog.symbol(v).symbol
        else:
            fields[key] = v.upper()
    return SetRiskCmd(kind, value.lower() if value.lower() == "unlimited" else value, **fields)


def _is_number(token: str) -> bool:
    try:
        return Decimal(token).is_finite()
    except decimal.InvalidOperation:
        return False


def split_commands(argv: Sequence[str]) -> list[str]:
    """Command-line words as command lines: commands are separated by ``;`` or ``,`` (alone or
    at the end of a word), so ``sell AAPL 10 @ 150, buy AAPL 5`` is two commands."""
    text = " ".join(argv).replace(",", ";")
    return [c.strip() for c in text.split(";") if c.strip()]


def first_cl_ord_id(next_report_seq: int) -> int:
    """Where this run's client order ids start: the LogonAck's ``next_report_seq``.

    Why: the server numbers the account's execution reports gap-free, durably (the numbering is
    recovered from the journal), and every NewOrder it sequences produces at least one report
    for the account (``new`` or ``rejected``). So a run that starts its ids at
    ``next_report_seq`` and sends n orders leaves the numbering at least n higher, and the next
    run starts past every id this one used for an order that reached the book. Ids only need to
    be unique among the account's *live* orders (RULES.md, NEW check 12), and ``Terminal``
    also skips the ids of the open orders the resent reports show (orders of other programs,
    or of a gateway-refused id that made no report). A clock-based 32-bit id could not be both
    unique per order and fine-grained enough. Wraps around at 2**32 - 1.
    """
    return (max(1, next_report_seq) - 1) % CL_ORD_ID_MAX + 1


def order_message(cmd: OrderCmd, cl_ord_id: int) -> NewOrder:
    return NewOrder(cl_ord_id=cl_ord_id, instrument=cmd.instrument,
                    side=cmd.side, qty=cmd.qty, price=cmd.price or 0,  # type: ignore[arg-type]
                    ord_type="market" if cmd.price is None else "limit",
                    tif=cmd.tif, post_only=cmd.post_only,  # type: ignore[arg-type]
                    venue=UNSET if cmd.venue is None else cmd.venue,
                    strategy=UNSET if cmd.strategy is None else cmd.strategy,  # type: ignore[arg-type]
                    post_venue=UNSET if cmd.post_venue is None else cmd.post_venue)


def replace_message(cmd: ReplaceCmd, catalog: Catalog,
                    orders: Mapping[int, OpenOrder]) -> Replace:
    """The Replace for ``cmd``: its decimals need the order's instrument, which the tool knows
    from the reports it received; UsageError for an order it has no record of."""
    order = orders.get(cmd.cl_ord_id)
    if order is None:
        raise UsageError(f"replace: no open order #{cmd.cl_ord_id} in this session's view"
                         " (see `orders`): its instrument, and so its price grid, is unknown")
    inst = catalog.by_id[order.instrument]
    return Replace(cl_ord_id=cmd.cl_ord_id, qty=_units(inst, cmd.qty, "quantity"),
                   price=_units(inst, cmd.price, "price"))


# -- the session's orders ------------------------------------------------------------------------

@dataclass
class OpenOrder:
    cl_ord_id: int
    instrument: int
    side: str
    price: int                 # ticks; 0: market
    qty: int                   # lots, total
    cum_qty: int
    leaves_qty: int
    venue: str = ""            # its book's venue (a routed order: where its rest rests)
    strategy: str = ""         # a routed order: sweep | sweep_post


# -- formatting --------------------------------------------------------------------------------

_LABEL = {"new": "NEW", "cancelled": "CANCELLED", "replaced": "REPLACED", "rejected": "REJECTED",
          "done": "DONE"}

# short explanations of the core's reject reasons (docs/RULES.md)
_REASON_TEXT = {
    Reason.BOOK_UNKNOWN_INSTRUMENT: "the engine does not list this instrument",
    Reason.BOOK_INVALID_INSTRUCTIONS: "post-only needs a limit GTC order",
    Reason.BOOK_INVALID_QUANTITY: "the quantity must be positive",
    Reason.BOOK_QUANTITY_BELOW_MIN: "below the instrument's minimum quantity",
    Reason.BOOK_QUANTITY_ABOVE_MAX: "above the instrument's maximum quantity",
    Reason.BOOK_INVALID_PRICE: "the price must be positive",
    Reason.BOOK_DUPLICATE_ORDER_ID: "an open order of this account already has this id",
    Reason.BOOK_POST_ONLY_WOULD_TAKE: "a post-only order would trade on arrival",
    Reason.BOOK_UNKNOWN_ORDER: "no open order with this id",
    Reason.BOOK_REPLACE_QTY_NOT_ABOVE_FILLED:
        "the new total quantity must be above the quantity already filled",
    Reason.BOOK_INSTRUMENT_HALTED: "trading in the instrument is halted",
    # venues and routing (docs/ROUTING.md)
    Reason.BOOK_UNKNOWN_VENUE: "the engine has no such venue",
    Reason.BOOK_VENUE_NOT_LISTED: "the venue does not list the instrument",
    Reason.BOOK_OFF_VENUE_GRID: "the price or quantity is off the venue's tick or lot grid",
    Reason.BOOK_NO_ROUTABLE_VENUE: "no venue lists the instrument: it cannot be routed",
    Reason.BOOK_CHILD_ORDER: "a routed order's child: act on the routed order",
    Reason.BOOK_PARENT_REPLACE: "a routed order may only lower its quantity at its price",
    Reason.BOOK_INVALID_STRATEGY:
        "sweep takes IOC or FOK (no post venue), sweep_post a limit GTC order",
    # pre-trade risk (docs/RISK.md); `risk` shows the account's limits and headroom
    Reason.RISK_UNKNOWN_ACCOUNT: "the account has no risk record",
    Reason.RISK_NO_REFERENCE_PRICE: "no reference price to protect a market order",
    Reason.RISK_PRICE_BAND: "the price is outside the instrument's price band",
    Reason.RISK_MAX_ORDER_QTY: "above the account's maximum order quantity",
    Reason.RISK_MAX_ORDER_NOTIONAL: "above the account's maximum order notional",
    Reason.RISK_INSUFFICIENT_CASH: "not enough free cash",
    Reason.RISK_INSUFFICIENT_POSITION: "not enough free position to sell",
    Reason.RISK_POSITION_LIMIT: "it could take the position past its limit",
    Reason.RISK_MAX_OPEN_ORDERS: "the account has its maximum of open orders",
    Reason.RISK_RATE_LIMITED: "the account's order rate limit",
    Reason.RISK_RESTRICTED: "the instrument is restricted for the account",
    Reason.RISK_RESTRICTED_GLOBAL: "the instrument is restricted for every account",
    Reason.RISK_KILL_SWITCH: "the account's kill switch is on",
    Reason.RISK_KILL_SWITCH_GLOBAL: "the global kill switch is on",
    Reason.RISK_REDUCE_ONLY: "reduce-only: the order could increase the position",
}


def reason_name(code: int) -> str:
    try:
        return Reason(code).name
    except ValueError:
        return f"reason {code}"


def _cause_name(code: int) -> str:
    try:
        return CancelCause(code).name
    except ValueError:
        return f"cause {code}"


def format_avg_price(catalog: Catalog, instrument: int, cum_notional: int, cum_qty: int) -> str:
    """The average fill price ``cum_notional / cum_qty`` ticks as a decimal: exact when it has
    at most 6 more places than the tick size, else ``~`` and rounded to 4 more places."""
    inst = catalog.by_id.get(instrument)
    if inst is None or cum_qty <= 0:
        return "-"
    f = Fraction(cum_notional, cum_qty) * Fraction(inst.tick_size)
    places = max(0, -inst.tick_size.as_tuple().exponent)  # type: ignore[operator]
    for p in range(places, places + 7):
        scaled = f * 10 ** p
        if scaled.denominator == 1:
            return format(Decimal(f"{scaled.numerator}E-{p}"), "f")
    p = places + 4
    return "~" + format(Decimal(f"{round(f * 10 ** p)}E-{p}"), "f")


def _at(catalog: Catalog, instrument: int, price: int) -> str:
    return "market" if price == 0 else catalog.price(instrument, price)


def format_report(r: ExecutionReport, catalog: Catalog,
                  orders: Mapping[int, OpenOrder] | None = None) -> str:
    """One ExecutionReport as one line, decimals and symbols, e.g.
    ``#12 FILLED  buy 10 AAPL @ 150.00 (last 10 @ 150.00, cum 10, leaves 0, avg 150.00)``."""
    inst = r.instrument
    if r.exec_type == "trade":
        label = "FILLED" if r.leaves_qty == 0 else "PARTIAL"
    else:
        label = _LABEL.get(r.exec_type, r.exec_type.upper())
    head = f"#{r.cl_ord_id} {label:<7} "
    q = lambda lots: catalog.qty(inst, lots)  # noqa: E731
    order = f"{r.side} {q(r.qty)} {catalog.name(inst)}"
    known = (orders or {}).get(r.cl_ord_id)
    if r.exec_type == "trade" and r.price == 0:
        # trade reports may leave the order's limit price out: the tool's view has it
        if known is not None:
            order += f" @ {_at(catalog, inst, known.price)}"
    else:
        order += f" @ {_at(catalog, inst, r.price)}"
    routed = bool(r.strategy) or (known is not None and bool(known.strategy))
    # a venue (and a fill's fee) is named where it says something: a routed order's fills, an
    # order on another venue's book; a line about an order on the primary venue is as it was
    # before venues (`risk` shows every fee paid)
    on = (f" on {r.venue}" if r.venue and (routed or r.venue != catalog.primary.get(inst))
          else "")
    fee = f", fee {catalog.fee(inst, r.fee)}" if r.fee and on else ""
    fees = f", fees {catalog.fee(inst, r.cum_fee)}" if routed and r.cum_fee else ""
    if r.exec_type == "new":
        if r.strategy:
            return head + order + f" via {SMART} ({r.strategy}{on})"
        return head + order + on
    if r.exec_type == "trade":
        avg = format_avg_price(catalog, inst, r.cum_notional, r.cum_qty)
        return (f"{head}{order} (last {q(r.last_qty)} @ {catalog.price(inst, r.last_price)}"
                f"{on}, cum {q(r.cum_qty)}, leaves {q(r.leaves_qty)}, avg {avg}{fee}{fees})")
    if r.exec_type == "cancelled":
        return (f"{head}{order} (cum {q(r.cum_qty)}, cancelled"
                f" {q(r.qty - r.cum_qty - r.leaves_qty)}: {_cause_name(r.reason)}"
                + (f", leaves {q(r.leaves_qty)}" if r.leaves_qty else "") + ")")
    if r.exec_type == "done":
        avg = format_avg_price(catalog, inst, r.cum_notional, r.cum_qty)
        return (f"{head}{order} ({r.status}: cum {q(r.cum_qty)}, avg {avg}"
                f"{fees or ', fees 0'})")
    if r.exec_type == "replaced":
        return f"{head}{order} (cum {q(r.cum_qty)}, leaves {q(r.leaves_qty)})"
    if r.exec_type == "rejected":
        why = reason_name(r.reason)
        text = _REASON_TEXT.get(r.reason)  # type: ignore[call-overload]
        i = catalog.by_id.get(inst)
        if i is not None and r.reason == Reason.BOOK_QUANTITY_BELOW_MIN:
            text = f"the minimum quantity of {i.symbol} is {i.min_qty}"
        elif i is not None and r.reason == Reason.BOOK_QUANTITY_ABOVE_MAX:
            text = f"the maximum quantity of {i.symbol} is {i.max_qty}"
        if r.request == "new":
            what = f"new {order}"
        elif r.request == "replace":
            # a replace names no instrument: the order's comes from the tool's view, if known
            o = known
            what = ("replace to " + (f"{catalog.qty(o.instrument, r.qty)}"
                                     f" {catalog.name(o.instrument)}"
                                     f" @ {catalog.price(o.instrument, r.price)}"
                                     if o is not None else f"{r.qty} lots @ {r.price} ticks"))
        else:
            what = r.request
        return f"{head}{what}: {why}" + (f" ({text})" if text else "")
    return f"{head}{order}"


_REF = {"NewOrder": "new", "Cancel": "cancel", "Replace": "replace", "MassCancel": "mass_cancel",
        "Halt": "halt", "Resume": "resume", "Subscribe": "subscribe", "SetLimits": "set_limits",
        "SetRisk": "set_risk", "KillSwitch": "kill_switch", "Restrict": "restrict",
        "RiskQuery": "risk"}


def format_reject(r: Reject) -> str:
    """A gateway Reject: ``[#ID ]REJECTED <message>: <REASON_NAME>: <text>``."""
    head = f"#{r.cl_ord_id} " if r.cl_ord_id else ""
    what = f" {r.ref_type}" if r.ref_type else ""
    return f"{head}REJECTED{what}: {reason_name(r.reason)}: {r.text}"


def format_trade(t: Trade, catalog: Catalog) -> str:
    """A trade; one of a venue's book subscription names the venue (the primary book's, as
    before venues, does not)."""
    on = f" on {t.venue}" if t.venue else ""
    return (f"{catalog.name(t.instrument)} trade {catalog.qty(t.instrument, t.qty)}"
            f" @ {catalog.price(t.instrument, t.price)}{on} ({t.aggressor} aggressor)")


def format_status(s: InstrumentStatus, catalog: Catalog) -> str:
    return (f"{catalog.name(s.instrument)} trading {s.trading_state} (quantity"
            f" {catalog.qty(s.instrument, s.min_qty)} to {catalog.qty(s.instrument, s.max_qty)})")


def format_mass_cancel(m: MassCancelReport, catalog: Catalog) -> str:
    scope = catalog.name(m.instrument) if m.instrument else "every instrument"
    if m.side:
        scope += f", {m.side} side"
    if m.all_accounts:
        scope += ", every account"
    n = m.cancelled
    return f"cancel-all ({scope}): {n} order{'' if n == 1 else 's'} cancelled"


def format_risk_update(u: RiskUpdate) -> str:
    """The answer to set-risk, kill or (un)restrict, e.g. ``risk: max_order_qty of account 1 on
    AAPL set to 500`` or ``kill switch of account 1: killed (3 orders cancelled)``."""
    who = "every account" if u.all_accounts else f"account {u.account}"
    if u.request == "kill_switch":
        n = u.cancelled
        scope = "global kill switch" if u.all_accounts else f"kill switch of account {u.account}"
        return (f"{scope}: {u.mode}" + (f" ({n} order{'' if n == 1 else 's'} cancelled)"
                                        if n else ""))
    if u.request == "restrict":
        return (f"{u.symbol} {'restricted' if u.restricted else 'no longer restricted'}"
                f" for {who}")
    where = []
    if u.account:
        where.append(f"of account {u.account}")
    if u.symbol:
        where.append(f"on {u.symbol}")
    elif u.account and u.kind in ("max_order_qty", "max_order_notional", "position_limit",
                                  "short_limit"):
        where.append("on every instrument")
    if u.currency:
        where.append(f"in {u.currency}")
    value = u.value + (f", burst {u.burst}" if u.kind == "rate" else "")
    return f"risk: {' '.join([u.kind, *where])} set to {value}"


def format_risk_report(r: RiskReport, catalog: Catalog) -> list[str]:
    """The answer to ``risk``: the account's risk view and its open orders."""
    from .risk import format_risk, orders_view

    return format_risk(r.risk, orders_view(r.orders, catalog)).splitlines()


def format_logout(m: ServerLogout) -> str:
    return f"the server ended the session: {reason_name(m.reason)}: {m.text}"


def _best(catalog: Catalog, inst: int, levels: Sequence[tuple[int, int, Any]]) -> str:
    if not levels:
        return "-"
    p, q, _ = levels[0]
    return f"{catalog.price(inst, p)} x {catalog.qty(inst, q)}"


def format_book(catalog: Catalog, instrument: int, bids: Sequence[tuple[int, int, int]],
                asks: Sequence[tuple[int, int, int]], venue: str | None = None) -> list[str]:
    """The book as lines: asks above bids, highest price first, with the spread between them.
    ``bids`` and ``asks`` are (price ticks, qty lots, orders), best first. ``venue``: the book
    is that venue's, named in the header (``AAPL on ALT``); None: the primary book."""
    rows = [("ask", *lv) for lv in reversed(list(asks))] + [("bid", *lv) for lv in bids]
    cells = [(side, catalog.price(instrument, p), catalog.qty(instrument, q), str(n))
             for side, p, q, n in rows]
    wp = max([len("price")] + [len(c[1]) for c in cells])
    wq = max([len("qty")] + [len(c[2]) for c in cells])
    name = catalog.name(instrument) + (f" on {venue}" if venue else "")
    if not cells:
        return [f"{name}: the book is empty"]
    out = [f"{name}", f"  side  {'price':>{wp}}  {'qty':>{wq}}  orders"]
    for i, (side, p, q, n) in enumerate(cells):
        if side == "bid" and i and cells[i - 1][0] == "ask":
            spread = catalog.price(instrument, asks[0][0] - bids[0][0])
            out.append(f"  {'-' * 4}  {'-' * wp}  spread {spread}")
        out.append(f"  {side:<4}  {p:>{wp}}  {q:>{wq}}  {n:>6}")
    if not asks:
        out.insert(2, "  (no asks)")
    if not bids:
        out.append("  (no bids)")
    return out


def format_book_update(u: BookUpdate, catalog: Catalog,
                       book: tuple[Sequence[tuple[int, int, int]],
                                   Sequence[tuple[int, int, int]]] | None = None) -> str:
    """A BookUpdate's changed levels, and the best bid and ask after it when ``book`` (the
    local book's (bids, asks), best first) is given."""
    inst = u.instrument
    parts = []
    for side, levels in (("bid", u.bids), ("ask", u.asks)):
        for p, q, n in levels:
            where = f"{side} {catalog.price(inst, p)}"
            parts.append(f"{where} gone" if q == 0 else
                         f"{where} {catalog.qty(inst, q)} ({n} order{'' if n == 1 else 's'})")
    on = f" on {u.venue}" if u.venue else ""
    line = f"{catalog.name(inst)} book{on}: " + (", ".join(parts) or "no change")
    if book is not None:
        bids, asks = book
        line += f"; best bid {_best(catalog, inst, bids)}, ask {_best(catalog, inst, asks)}"
    return line


def _spread(catalog: Catalog, instrument: int, ticks: int) -> str:
    """The spread of a book whose sides may lock or cross (the consolidated book: every venue's
    book is apart)."""
    text = f"spread {catalog.price(instrument, ticks)}"
    return text if ticks > 0 else text + (" (locked)" if ticks == 0 else " (crossed)")


def _venue_qtys(catalog: Catalog, instrument: int, at: Sequence[tuple[str, int]],
                sep: str = "  ") -> str:
    """Each venue's quantity at a consolidated level, e.g. ``LIT 100  ALT 100`` (``""``, the
    default venue of an instrument no venue lists: ``default``)."""
    return sep.join(f"{v or 'default'} {catalog.qty(instrument, q)}" for v, q in at)


def format_consolidated(catalog: Catalog, book: ConsolidatedBook) -> list[str]:
    """The consolidated book (``book SYMBOL all``) as lines, laid out as ``format_book``: asks
    above bids, each level with its price, total quantity over the venues and each venue's
    quantity there (venues in routing order); the spread between them may lock or cross."""
    inst, bids, asks = book.instrument, book.bids, book.asks
    rows = [("ask", *lv) for lv in reversed(list(asks))] + [("bid", *lv) for lv in bids]
    cells = [(side, catalog.price(inst, p), catalog.qty(inst, q), _venue_qtys(catalog, inst, at))
             for side, p, q, at in rows]
    name = f"{catalog.name(inst)} on all venues"
    if not cells:
        return [f"{name}: the book is empty"]
    wp = max([len("price")] + [len(c[1]) for c in cells])
    wq = max([len("qty")] + [len(c[2]) for c in cells])
    out = [name, f"  side  {'price':>{wp}}  {'qty':>{wq}}  venues"]
    for i, (side, p, q, at) in enumerate(cells):
        if side == "bid" and i and cells[i - 1][0] == "ask":
            spread = _spread(catalog, inst, asks[0][0] - bids[0][0])
            out.append(f"  {'-' * 4}  {'-' * wp}  {spread}")
        out.append(f"  {side:<4}  {p:>{wp}}  {q:>{wq}}  {at}")
    if not asks:
        out.insert(2, "  (no asks)")
    if not bids:
        out.append("  (no bids)")
    return out


def format_consolidated_update(book: ConsolidatedBook, catalog: Catalog,
                               before: ConsolidatedBook | None = None) -> str:
    """A ConsolidatedBook (whole) while watching ``SYMBOL all``: the levels that changed since
    ``before`` (the one shown last), and the consolidated best bid and ask, e.g.
    ``AAPL on all venues: ask 150.01 170 (LIT 100, ALT 70); best bid 150.00 x 20, ask 150.01
    x 170``. A level that left the view (emptied, or pushed below the depth) is ``gone``."""
    inst = book.instrument
    parts = []
    for side, now, was in (("bid", book.bids, before.bids if before else []),
                           ("ask", book.asks, before.asks if before else [])):
        old = {p: (q, list(at)) for p, q, at in was}
        new = {p: (q, list(at)) for p, q, at in now}
        for p in sorted(old.keys() | new.keys(), reverse=side == "bid"):
            if old.get(p) == new.get(p):
                continue
            where = f"{side} {catalog.price(inst, p)}"
            if p not in new:
                parts.append(f"{where} gone")
            else:
                q, at = new[p]
                parts.append(f"{where} {catalog.qty(inst, q)}"
                             f" ({_venue_qtys(catalog, inst, at, ', ')})")
    return (f"{catalog.name(inst)} on all venues: " + (", ".join(parts) or "no change")
            + f"; best bid {_best(catalog, inst, book.bids)}, ask"
              f" {_best(catalog, inst, book.asks)}")


def format_orders(orders: Mapping[int, OpenOrder], catalog: Catalog) -> list[str]:
    if not orders:
        return ["no open orders"]
    out = [f"open orders ({len(orders)}):"]
    for o in sorted(orders.values(), key=lambda o: o.cl_ord_id):
        q = lambda lots: catalog.qty(o.instrument, lots)  # noqa: E731
        where = (f" via {SMART} ({o.strategy}" + (f" on {o.venue})" if o.venue else ")")
                 if o.strategy else f" on {o.venue}"
                 if o.venue and o.venue != catalog.primary.get(o.instrument) else "")
        out.append(f"  #{o.cl_ord_id} {o.side} {q(o.qty)} {catalog.name(o.instrument)}"
                   f" @ {_at(catalog, o.instrument, o.price)}{where}"
                   f" (cum {q(o.cum_qty)}, leaves {q(o.leaves_qty)})")
    return out


def format_instruments(catalog: Catalog) -> list[str]:
    rows = [(str(i.id), i.symbol, i.asset_class, format(i.tick_size, "f"),
             format(i.lot_size, "f"), format(i.multiplier, "f"), i.currency,
             f"{format(i.min_qty, 'f')}..{format(i.max_qty, 'f')}") for i in catalog]
    head = ("id", "symbol", "class", "tick", "lot", "multiplier", "ccy", "quantity")
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]


# -- the session's state ----------------------------------------------------------------------

class Terminal:
    """What the tool knows of its session, fed every server message in arrival order.

    ``on_message`` updates the order view and the answers still awaited and returns the lines
    to print. Reports numbered before the LogonAck's ``next_report_seq`` are the server's
    resend of earlier sessions: they rebuild the order view silently.
    """

    def __init__(self, ack: LogonAck) -> None:
        self.ack = ack
        self.catalog = Catalog(ack.instruments, [v.name for v in ack.venues])
        self.orders: dict[int, OpenOrder] = {}
        self.last_report_seq = 0
        self.resent_seen = 0
        self.rejected = False          # the server refused something this run (exit status 1)
        self.watching: int | None = None    # the instrument of the book watched, if any
        self.watch_venue = ""                # its venue's book ("": the primary book)
        self.watch_all = False               # its consolidated book (trades: every venue's)
        self.expect: list[tuple[str, int, str]] = []   # (kind, key, description) awaited
        self.logging_out = False
        self._next_id = first_cl_ord_id(ack.next_report_seq)
        self._status_seen: set[tuple[int, int]] = set()

    @property
    def resend_done(self) -> bool:
        return self.resent_seen >= self.ack.resent

    def new_cl_ord_id(self) -> int:
        while True:
            i = self._next_id
            self._next_id = i % CL_ORD_ID_MAX + 1
            if i not in self.orders and not any(k == i for _, k, _ in self.expect):
                return i

    def sent(self, kind: str, key: int, description: str) -> None:
        """A message went out that the server will answer (kind: new, cancel, replace,
        mass_cancel, halt, resume)."""
        self.expect.append((kind, key, description))

    def _answered(self, kind: str, key: int | None) -> None:
        for i, (k, kk, _) in enumerate(self.expect):
            if k == kind and (key is None or kk == key):
                del self.expect[i]
                return

    def summary(self) -> list[str]:
        """What the resent reports showed, and what the server can no longer resend."""
        out = []
        if self.ack.resent:
            n = len(self.orders)
            out.append(f"{self.ack.resent} earlier report{'s' * (self.ack.resent != 1)} received;"
                       f" {n} open order{'s' * (n != 1)} (type 'orders')")
        if self.ack.lost_before:
            out.append(f"note: reports up to #{self.ack.lost_before} are no longer kept by the"
                       " server; 'orders' asks the server for every open order")
        return out

    def apply_report(self, r: ExecutionReport) -> None:
        """Update the order view from a report (every report carries the order's fields)."""
        t = r.exec_type
        if t in ("cancelled", "done") and r.leaves_qty == 0 or (t == "trade" and r.leaves_qty == 0):
            self.orders.pop(r.cl_ord_id, None)
        elif t in ("new", "trade", "replaced", "cancelled") and r.leaves_qty > 0:
            # (a routed order's odd lot is cancelled while the rest stays open)
            o = self.orders.get(r.cl_ord_id)
            inst = r.instrument or (o.instrument if o else 0)
            price = r.price if r.price or t != "trade" or o is None else o.price
            strategy = r.strategy or (o.strategy if o else "")
            venue = r.venue if t != "trade" or not strategy else (o.venue if o else "")
            self.orders[r.cl_ord_id] = OpenOrder(r.cl_ord_id, inst, r.side or (o.side if o else ""),
                                                 price, r.qty, r.cum_qty, r.leaves_qty, venue,
                                                 strategy)

    def on_message(self, msg: Any) -> list[str]:
        t = type(msg)
        cat = self.catalog
        if t is ExecutionReport:
            if msg.report_seq <= self.last_report_seq:
                return []                              # a resend overlapping a live report
            self.last_report_seq = msg.report_seq
            if msg.report_seq < self.ack.next_report_seq:
                self.resent_seen += 1
                self.apply_report(msg)
                return []
            line = format_report(msg, cat, self.orders)
            self.apply_report(msg)
            self._answered(msg.request, msg.cl_ord_id)
            if msg.exec_type == "rejected":
                self.rejected = True
            return [line]
        if t is Reject:
            self.rejected = True
            kind = _REF.get(msg.ref_type, "")
            self._answered(kind, msg.cl_ord_id if kind in ("new", "cancel", "replace") else None)
            return [format_reject(msg)]
        if t is Orders:
            # the server's own view: it replaces what the reports built (which may miss orders
            # older than the server's resend store)
            self._answered("orders", None)
            if msg.cl_ord_id == 0:
                self.orders = {o.cl_ord_id: OpenOrder(o.cl_ord_id, o.instrument, o.side, o.price,
                                                      o.qty, o.cum_qty, o.leaves_qty, o.venue,
                                                      o.strategy)
                               for o in msg.orders}
                return format_orders(self.orders, cat)
            return []
        if t is MassCancelReport:
            self._answered("mass_cancel", None)
            return [format_mass_cancel(msg, cat)]
        if t is RiskUpdate:
            self._answered(msg.request, None)
            return [format_risk_update(msg)]
        if t is RiskReport:
            self._answered("risk", None)
            return format_risk_report(msg, cat)
        if t is InstrumentStatus:
            self._answered("halt" if msg.trading_state == "halted" else "resume", msg.instrument)
            key = (msg.instrument, msg.seq)
            if msg.seq and key in self._status_seen:
                return []                             # the reply and the market data: once
            self._status_seen.add(key)
            return [format_status(msg, cat)]
        if t is Trade:
            return [format_trade(msg, cat)] if self.watched(msg) else []
        if t is ServerLogout:
            if self.logging_out and msg.reason == Reason.GATEWAY_LOGOUT:
                return []
            return [format_logout(msg)]
        # BookUpdate (the driver prints it with the local book), BookSnapshot, Heartbeat
        return []

    def watched(self, msg: Trade | BookUpdate) -> bool:
        """Whether a book subscription's message is of the view watched: the primary book's
        (venue ``""``), a venue's book's, or (consolidated) any venue's book's trade."""
        if msg.instrument != self.watching:
            return False
        return msg.venue != "" if self.watch_all else msg.venue == self.watch_venue

    def describe_pending(self) -> list[str]:
        return [f"no answer yet from the server to: {d}" for _, _, d in self.expect]


def describe(cmd: Command, catalog: Catalog, cl_ord_id: int = 0) -> str:
    """A short text of a command, for 'no answer yet' notes."""
    if isinstance(cmd, OrderCmd):
        at = "market" if cmd.price is None else catalog.price(cmd.instrument, cmd.price)
        return (f"#{cl_ord_id} {cmd.side} {catalog.qty(cmd.instrument, cmd.qty)}"
                f" {catalog.name(cmd.instrument)} @ {at}"
                + (f" via {cmd.venue}" if cmd.venue == SMART else
                   f" on {cmd.venue}" if cmd.venue else ""))
    if isinstance(cmd, CancelCmd):
        return f"cancel #{cmd.cl_ord_id}"
    if isinstance(cmd, ReplaceCmd):
        return f"replace #{cmd.cl_ord_id} {cmd.qty} @ {cmd.price}"
    if isinstance(cmd, CancelAllCmd):
        return "cancel-all" + (f" {catalog.name(cmd.instrument)}" if cmd.instrument else "")
    if isinstance(cmd, SymbolCmd):
        return f"{cmd.name} {catalog.name(cmd.instrument)}"
    if isinstance(cmd, RiskCmd):
        return "risk" + (f" {cmd.account}" if cmd.account else "")
    if isinstance(cmd, KillCmd):
        return f"kill {cmd.mode}" + (" all" if cmd.all_accounts else
                                     f" {cmd.account}" if cmd.account else "")
    if isinstance(cmd, RestrictCmd):
        return (f"{'restrict' if cmd.restricted else 'unrestrict'} {cmd.symbol}"
                + (" all" if cmd.all_accounts else f" {cmd.account}" if cmd.account else ""))
    if isinstance(cmd, SetRiskCmd):
        return f"set-risk {cmd.kind} {cmd.value}"
    return cmd.name


# -- the asyncio driver -------------------------------------------------------------------------

class _Lines:
    """Lines of a file descriptor (stdin), read by a daemon thread with ``os.read`` (no lock a
    blocked read could hold at exit, and the terminal stays in its cooked mode: no readline
    state to restore after Ctrl-C). ``get`` returns None at end of input."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop, self.fd = loop, fd
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.want = threading.Event()
        threading.Thread(target=self._run, name="engine-client-stdin", daemon=True).start()

    def _run(self) -> None:
        buf = b""
        while True:
            self.want.wait()
            self.want.clear()
            while b"\n" not in buf:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
            if b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
            else:
                line, buf = buf, b""
                if not line:
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, None)
                    return
            self.loop.call_soon_threadsafe(self.queue.put_nowait,
                                           line.decode("utf-8", "replace").rstrip("\r"))

    async def get(self) -> str | None:
        self.want.set()
        return await self.queue.get()


class _Driver:
    def __init__(self, client: Any, term: Terminal, out: Any, err: Any,
                 prompt: str | None) -> None:
        self.client, self.term = client, term
        self.out, self.err = out, err
        self.prompt = prompt
        self.at_prompt = False
        self.quit = asyncio.Event()
        self.stop_watch = asyncio.Event()
        self.blocking_watch = False
        self.sub_refused = asyncio.Event()           # a Reject of a Subscribe arrived
        self.shown: ConsolidatedBook | None = None   # the consolidated book printed last

    # -- output ----------------------------------------------------------------------------
    def emit(self, lines: Iterable[str], stream: Any = None) -> None:
        lines = list(lines)
        if not lines:
            return
        s = stream or self.out
        text = "\n".join(lines) + "\n"
        if self.at_prompt and self.prompt:
            # a report while the prompt waits: print it above a fresh prompt
            self.out.write("\r\x1b[K")
            s.write(text)
            s.flush()
            self.out.write(self.prompt)
        else:
            s.write(text)
        s.flush()
        self.out.flush()

    def show_prompt(self) -> None:
        if self.prompt:
            self.out.write(self.prompt)
            self.out.flush()
            self.at_prompt = True

    # -- inbound -------------------------------------------------------------------------------
    async def pump(self) -> None:
        """Every inbound message, in arrival order, to the Terminal and the screen."""
        c = self.client
        get_closed = asyncio.ensure_future(c.closed.wait())
        try:
            while True:
                get_msg = asyncio.ensure_future(c.messages.get())
                done, _ = await asyncio.wait({get_msg, get_closed},
                                             return_when=asyncio.FIRST_COMPLETED)
                if get_msg not in done:
                    get_msg.cancel()
                    while not c.messages.empty():
                        self.handle(c.messages.get_nowait())
                    if not self.term.logging_out:
                        self.emit(["the connection to the server closed"], self.err)
                        self.term.rejected = True
                    self.quit.set()
                    self.stop_watch.set()
                    return
                self.handle(get_msg.result())
                # keep_all also fills the Client's sorted queues: nobody reads them here
                for q in (c.reports, c.trades, c.rejects, c.replies):
                    while not q.empty():
                        q.get_nowait()
        finally:
            get_closed.cancel()

    def handle(self, msg: Any) -> None:
        term, c = self.term, self.client
        lines = term.on_message(msg)
        t = type(msg)
        if t is BookUpdate and not term.watch_all and term.watched(msg):
            book = (c.venue_books.get((msg.instrument, msg.venue)) if msg.venue
                    else c.books.get(msg.instrument))
            lines = [format_book_update(msg, term.catalog,
                                        book.levels() if book is not None else None)]
        elif t is ConsolidatedBook and term.watch_all and msg.instrument == term.watching:
            if self.shown is None or msg.md_seq > self.shown.md_seq:
                lines = [format_consolidated_update(msg, term.catalog, self.shown)]
                self.shown = msg
        elif t is Reject and msg.ref_type == "Subscribe":
            self.sub_refused.set()                   # `book` stops waiting for a snapshot
        self.emit(lines)

    async def heartbeat(self) -> None:
        ack = self.term.ack
        period = max(0.05, min(ack.heartbeat_s, ack.idle_timeout_s / 3))
        while True:
            await asyncio.sleep(period)
            try:
                await self.client.heartbeat()
            except Exception:  # noqa: BLE001 - the pump reports a closed connection
                return

    # -- commands ------------------------------------------------------------------------------
    async def settle(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until every command sent has an answer."""
        end = time.monotonic() + timeout
        while self.term.expect and time.monotonic() < end and not self.client.closed.is_set():
            await asyncio.sleep(0.01)

    async def book(self, inst: int, venue: str | None = None,
                   consolidated: bool = False) -> Any:
        """The local Book of the instrument's primary book, or of its book on ``venue``, or
        its latest ConsolidatedBook, subscribing (and waiting up to 5 s) if not held yet.
        None if the server refused the Subscribe (its Reject is printed) or sent nothing."""
        c = self.client
        if consolidated:
            held = c.consolidated.get(inst)
        else:
            held = c.books.get(inst) if venue is None else c.venue_books.get((inst, venue))
        if held is not None:
            return held
        self.sub_refused.clear()
        sub = asyncio.ensure_future(
            c.subscribe_consolidated(inst, timeout=5.0) if consolidated
            else c.subscribe(inst, timeout=5.0, venue=venue))
        refused = asyncio.ensure_future(self.sub_refused.wait())
        try:
            await asyncio.wait({sub, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
        if not sub.done():
            sub.cancel()
            await asyncio.gather(sub, return_exceptions=True)
            return None
        try:
            return sub.result()
        except asyncio.TimeoutError:
            what = ("consolidated book" if consolidated else
                    "book" if venue is None else f"book on {venue}")
            self.emit([f"error: no {what} for {self.term.catalog.name(inst)} from the server"
                       " within 5 s"], self.err)
            return None

    async def execute(self, cmd: Command, wait: float) -> None:
        term, c, cat = self.term, self.client, self.term.catalog
        if isinstance(cmd, OrderCmd):
            cl = term.new_cl_ord_id()
            term.sent("new", cl, describe(cmd, cat, cl))
            c.send(order_message(cmd, cl))
            await c.drain()
        elif isinstance(cmd, CancelCmd):
            term.sent("cancel", cmd.cl_ord_id, describe(cmd, cat))
            c.send(Cancel(cl_ord_id=cmd.cl_ord_id))
            await c.drain()
        elif isinstance(cmd, ReplaceCmd):
            msg = replace_message(cmd, cat, term.orders)
            term.sent("replace", cmd.cl_ord_id, describe(cmd, cat))
            c.send(msg)
            await c.drain()
        elif isinstance(cmd, CancelAllCmd):
            term.sent("mass_cancel", 0, describe(cmd, cat))
            c.send(MassCancel(instrument=cmd.instrument, side=cmd.side))  # type: ignore[arg-type]
            await c.drain()
        elif isinstance(cmd, RiskCmd):
            term.sent("risk", 0, describe(cmd, cat))
            c.send(RiskQuery(account=cmd.account))
            await c.drain()
        elif isinstance(cmd, KillCmd):
            term.sent("kill_switch", 0, describe(cmd, cat))
            c.send(KillSwitch(mode=cmd.mode,  # type: ignore[arg-type]
                              account=None if cmd.all_accounts else
                              (cmd.account or term.ack.account), all_accounts=cmd.all_accounts))
            await c.drain()
        elif isinstance(cmd, RestrictCmd):
            term.sent("restrict", 0, describe(cmd, cat))
            c.send(Restrict(symbol=cmd.symbol, restricted=cmd.restricted,
                            account=None if cmd.all_accounts else
                            (cmd.account or term.ack.account), all_accounts=cmd.all_accounts))
            await c.drain()
        elif isinstance(cmd, SetRiskCmd):
            term.sent("set_risk", 0, describe(cmd, cat))
            c.send(SetRisk(kind=cmd.kind, value=cmd.value, account=cmd.account,  # type: ignore[arg-type]
                           symbol=cmd.symbol, currency=cmd.currency, burst=cmd.burst))
            await c.drain()
        elif isinstance(cmd, SymbolCmd) and cmd.name in ("halt", "resume"):
            term.sent(cmd.name, cmd.instrument, describe(cmd, cat))
            c.send((Halt if cmd.name == "halt" else Resume)(instrument=cmd.instrument))
            await c.drain()
        elif isinstance(cmd, SymbolCmd) and cmd.consolidated:
            inst = cmd.instrument
            if cmd.name == "watch":
                # the consolidated stream has no trades: each venue's book publishes its own
                for v in cat.listed.get(inst, []):
                    if await self.book(inst, v) is None:
                        return
            if await self.book(inst, consolidated=True) is None:
                return
            self.shown = c.consolidated[inst]        # the latest
            self.emit(format_consolidated(cat, self.shown))
            if cmd.name == "watch":
                term.watching, term.watch_venue, term.watch_all = inst, "", True
                await self.watch(f"{cat.name(inst)} on all venues")
        elif isinstance(cmd, SymbolCmd):
            book = await self.book(cmd.instrument, cmd.venue)
            if book is None:
                return
            self.emit(format_book(cat, cmd.instrument, *book.levels(), venue=cmd.venue))
            if cmd.name == "watch":
                term.watching, term.watch_venue, term.watch_all = (cmd.instrument,
                                                                   cmd.venue or "", False)
                await self.watch(cat.name(cmd.instrument)
                                 + (f" on {cmd.venue}" if cmd.venue else ""))
        elif cmd.name == "orders":
            # the server's answer comes after every earlier command's: printed by the pump
            term.sent("orders", 0, "orders")
            c.send(OrderQuery())
            await c.drain()
        elif cmd.name == "instruments":
            self.emit(format_instruments(cat))
        elif cmd.name == "help":
            self.emit(HELP.splitlines())
        elif cmd.name == "quit":
            self.quit.set()

    async def watch(self, what: str) -> None:
        """The watch just set up: on the command line, block until Ctrl-C; interactively the
        pump prints what comes until the next command."""
        if self.blocking_watch:
            self.emit([f"watching {what}: Ctrl-C to stop"], self.err)
            self.stop_watch.clear()
            await self.stop_watch.wait()
            self.term.watching = None

    def on_sigint(self) -> None:
        if self.term.watching is not None:
            self.term.watching = None
            self.stop_watch.set()
            if self.prompt and not self.blocking_watch:
                self.emit(["(stopped watching)"])
        else:
            self.quit.set()

    async def interactive(self, lines: _Lines, wait: float) -> None:
        while not self.quit.is_set():
            self.show_prompt()
            get = asyncio.ensure_future(lines.get())
            q = asyncio.ensure_future(self.quit.wait())
            await asyncio.wait({get, q}, return_when=asyncio.FIRST_COMPLETED)
            q.cancel()
            self.at_prompt = False
            if not get.done():
                get.cancel()
                if self.prompt:
                    self.out.write("\n")
                break
            line = get.result()
            if line is None:                       # end of input
                if self.prompt:
                    self.out.write("\n")
                else:                              # piped commands: give the answers time
                    await asyncio.sleep(wait)
                break
            self.term.watching = None              # the next command ends a watch
            try:
                cmd = parse_command(line, self.term.catalog)
                if cmd is not None:
                    await self.execute(cmd, wait)
                    await self.settle(min(wait, 1.0))   # its answer before the next prompt
            except UsageError as e:
                self.emit([f"error: {e}"], self.err)
            except Exception as e:  # noqa: BLE001 - e.g. the connection closed mid-send
                self.emit([f"error: {type(e).__name__}: {e}"], self.err)
            await asyncio.sleep(0)                 # let answers already in print first


async def run_terminal(host: str, port: int, account: int, api_key: str,
                       commands: Sequence[str] = (), *, wait: float = 0.5,
                       out: Any = None, err: Any = None, stdin_fd: int | None = None,
                       connect_timeout: float = 5.0) -> int:
    """Log on, run ``commands`` (or read commands from ``stdin_fd``), log out. Returns the exit
    status: 0; 1 if the server rejected something or closed the session; 2 for a usage error,
    a refused logon or no connection."""
    from .client import Client, ClientError

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        client = await Client.connect(host, port, account, api_key, keep_all=True,
                                      timeout=connect_timeout)
    except ClientError as e:
        print(f"engine client: logon refused: {reason_name(e.reason)}: {e}", file=err)
        return 2
    except (OSError, asyncio.TimeoutError) as e:
        print(f"engine client: cannot connect to {host}:{port}: {e or type(e).__name__}",
              file=err)
        return 2
    assert client.logon_ack is not None
    term = Terminal(client.logon_ack)
    interactive = not commands
    tty = interactive and stdin_fd is not None and os.isatty(stdin_fd)
    drv = _Driver(client, term, out, err, "engine> " if tty else None)
    drv.blocking_watch = not interactive
    pump = asyncio.ensure_future(drv.pump())
    beat = asyncio.ensure_future(drv.heartbeat())
    loop = asyncio.get_running_loop()
    handles_sigint = threading.current_thread() is threading.main_thread()
    if handles_sigint:
        try:
            loop.add_signal_handler(signal.SIGINT, drv.on_sigint)
        except (NotImplementedError, RuntimeError, ValueError):   # pragma: no cover - Windows
            handles_sigint = False
    status = 0
    try:
        # the resent reports of earlier sessions come first: the order view needs them
        end = time.monotonic() + 5.0
        while not term.resend_done and time.monotonic() < end and not client.closed.is_set():
            await asyncio.sleep(0.005)
        if interactive:
            ack = term.ack
            drv.emit([f"logged on to {host}:{port} as account {ack.account} ({ack.role});"
                      f" {len(ack.instruments)} instruments; type 'help' for the commands",
                      *term.summary()])
            await drv.interactive(_Lines(loop, 0 if stdin_fd is None else stdin_fd), wait)
            await drv.settle(5.0)
        else:
            drv.emit([line for line in term.summary() if line.startswith("note:")], err)
            try:
                parsed = [(line, parse_command(line, term.catalog)) for line in commands]
            except UsageError as e:
                print(f"engine client: {e}", file=err)
                status = 2
                parsed = []
            for line, cmd in parsed:
                if cmd is None:
                    continue
                if drv.quit.is_set() or client.closed.is_set():
                    break
                try:
                    await drv.execute(cmd, wait)
                except UsageError as e:
                    print(f"engine client: {line}: {e}", file=err)
                    status = 2
                    break
                except (ClientError, ConnectionError, OSError) as e:   # the session ended
                    print(f"engine client: {line}: {e}", file=err)
                    term.rejected = True
                    break
            if status == 0 and not client.closed.is_set():
                try:
                    await asyncio.wait_for(drv.quit.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                await drv.settle(5.0)
        drv.emit(term.describe_pending(), err)
    finally:
        if handles_sigint:
            loop.remove_signal_handler(signal.SIGINT)
        term.logging_out = True
        beat.cancel()
        try:
            await client.logout_and_close(timeout=2.0)
        except Exception:  # noqa: BLE001 - already closed
            pass
        await asyncio.sleep(0)
        pump.cancel()
        await asyncio.gather(pump, beat, return_exceptions=True)
    if status:
        return status
    return 1 if term.rejected or term.expect else 0


def main(args: Any) -> int:
    """`engine client` (engine/cli.py builds ``args``)."""
    key = args.key or os.environ.get("ENGINE_API_KEY")
    if not key:
        print("engine client: no API key: pass --key KEY (or set ENGINE_API_KEY)",
              file=sys.stderr)
        return 2
    commands = split_commands(args.commands or [])
    return asyncio.run(run_terminal(args.host, args.port, args.account, key, commands,
                                    wait=args.wait, stdin_fd=None if commands else 0))
