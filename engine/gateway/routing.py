"""The gateway's side of venues and smart order routing: venue names on the wire, the core's
venue ids inside.

Owns the translation of a NewOrder's ``venue``/``strategy``/``post_venue`` into the core's
command (NEW on a named venue's book, or ROUTE with its strategy flag and post venue), the two
refusals the edge makes itself (a routing field without venue SMART: GATEWAY_INVALID_FIELD; a
venue name the engine does not host: BOOK_UNKNOWN_VENUE), the venue names of reports and market
data, the venue lists of the LogonAck, and the name table the inbound fast path
(``_wire.scan``) reads. Everything else about a venue order (whether the venue lists the
instrument, its grid, the strategy against the time in force, whether any venue is routable)
is the core's to decide (docs/ROUTING.md): the gateway never repeats those checks. Must never
hold engine state: it is built once from the config's VenueSet.
"""
from __future__ import annotations

import decimal
import struct
from decimal import Decimal

import msgspec

from ..instruments import Instrument, InstrumentSet
from ..journal.format import RiskManifest
from ..schema import CommandType, Flags, Reason
from ..venues import VenueSet
from .protocol import SMART, InstrumentInfo, NewOrder, VenueInfo, VenueListing

__all__ = ["VenueNames", "RouteRequestError", "CONSOLIDATED", "fee_unit"]

_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact])

# the market-data view of an instrument's consolidated book (venue ids are 0..65535)
CONSOLIDATED = 0x10000


class RouteRequestError(ValueError):
    """A NewOrder the gateway refuses before it reaches the engine (nothing is journaled)."""

    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


class VenueNames:
    """The engine's venues by name and id, immutable. Without venues every lookup of a name
    fails (BOOK_UNKNOWN_VENUE) and SMART orders go to the core, which refuses them
    (BOOK_NO_ROUTABLE_VENUE)."""

    def __init__(self, venues: VenueSet | None = None) -> None:
        self.venues = venues if venues is not None else VenueSet.empty()
        self.ids: dict[str, int] = {v.name: v.id for v in self.venues}
        self.names: dict[int, str] = {v.id: v.name for v in self.venues}
        if SMART in self.ids:
            raise ValueError(f"a venue may not be named {SMART!r}: a NewOrder with venue"
                             f" {SMART!r} is a routed order")
        # _wire.scan's table: per venue, u16 length, the name's UTF-8, u16 id (little-endian)
        parts = []
        for name, vid in self.ids.items():
            raw = name.encode()
            parts.append(struct.pack("<H", len(raw)) + raw + struct.pack("<H", vid))
        self.wire_table = b"".join(parts)

    def __bool__(self) -> bool:
        return bool(self.ids)

    def name(self, venue_id: int) -> str:
        """The wire's name of a venue id: "" for the default venue 0."""
        return "" if not venue_id else self.names.get(venue_id, str(venue_id))

    def primary(self, instrument: int) -> int:
        """The venue id of the instrument's primary book (0: the default venue)."""
        book = self.venues.primary(instrument)
        return 0 if book is None else book.venue

    def venue_id(self, name: str, what: str = "venue") -> int:
        """A venue's id by its name; RouteRequestError(BOOK_UNKNOWN_VENUE) if there is none."""
        vid = self.ids.get(name)
        if vid is None:
            known = ", ".join(self.ids) or "none"
            raise RouteRequestError(Reason.BOOK_UNKNOWN_VENUE,
                                    f"{what} {name!r} is not a venue of the engine (venues:"
                                    f" {known}; {SMART} routes)")
        return vid

    def book_venue(self, instrument: int, name: str) -> int:
        """The venue id of a market-data subscription naming a venue: BOOK_UNKNOWN_VENUE, or
        BOOK_VENUE_NOT_LISTED if the venue does not list the instrument."""
        vid = self.venue_id(name)
        if not self.venues.is_listed(vid, instrument):
            raise RouteRequestError(Reason.BOOK_VENUE_NOT_LISTED,
                                    f"venue {name!r} does not list instrument {instrument}")
        return vid

    def command(self, msg: NewOrder) -> tuple[int, int, int]:
        """``(cmd, venue, flags)`` of a NewOrder's core command; RouteRequestError if the gateway
        refuses it (in this order: a routing field without venue SMART; an unknown venue or
        post venue name)."""
        flags = Flags.POST_ONLY if msg.post_only else 0
        # absent (UNSET) and nil (None) are alike, and both falsy; a name is never empty
        if msg.venue != SMART:
            if msg.strategy or msg.post_venue:
                field = "strategy" if msg.strategy else "post_venue"
                raise RouteRequestError(Reason.GATEWAY_INVALID_FIELD,
                                        f"{field} is for routed orders (venue {SMART!r}) - at"
                                        f" $.{field}")
            if not msg.venue:
                return CommandType.NEW, 0, int(flags)
            return CommandType.NEW, self.venue_id(msg.venue), int(flags)  # type: ignore[arg-type]
        if msg.strategy == "sweep_post":
            flags |= Flags.POST_REMAINDER
        post = (self.venue_id(msg.post_venue, "post_venue")  # type: ignore[arg-type]
                if msg.post_venue else 0)
        return CommandType.ROUTE, post, int(flags)

    # -- the LogonAck ----------------------------------------------------------------------------
    def instrument_venues(self, instrument: int) -> list[str]:
        """The venues listing the instrument, its primary first (config order)."""
        return [self.names[b.venue] for b in self.venues.listing(instrument)]

    def venue_info(self, instruments: InstrumentSet) -> list[VenueInfo]:
        out = []
        for v in self.venues:
            listings = []
            for b in self.venues.books:
                if b.venue != v.id:
                    continue
                inst = instruments.get(b.instrument)
                listings.append(VenueListing(
                    instrument=b.instrument, symbol=b.symbol,
                    tick_size=str(self.venues.tick_size(v.id, inst)),
                    lot_size=str(self.venues.lot_size(v.id, inst))))
            out.append(VenueInfo(id=v.id, name=v.name, maker_fee=v.maker_fee,
                                 taker_fee=v.taker_fee, priority=v.priority,
                                 instruments=listings))
        return out

    def with_venues(self, info: InstrumentInfo, fee_unit: str) -> InstrumentInfo:
        """``info`` with its venues and the value of a fee unit, when the engine has venues
        (without, the LogonAck is what it was before venues)."""
        if not self.ids:
            return info
        return msgspec.structs.replace(info, venues=self.instrument_venues(info.id),
                                       fee_unit=fee_unit)


def fee_unit(instrument: Instrument, risk: RiskManifest | None) -> str:
    """What one unit of a report's ``fee`` is worth in the instrument's currency, exactly: with
    risk on a cash unit (10**-decimals of the currency, docs/RISK.md "Units"); with risk off the
    core counts notionals in ticks x lots, so tick_size x lot_size x multiplier."""
    ccy = instrument.config.currency
    if risk is not None and ccy in risk.currencies:
        return format(Decimal(1).scaleb(-risk.decimals[risk.currencies.index(ccy)]), "f")
    return format(_EXACT.multiply(_EXACT.multiply(instrument.tick_size, instrument.lot_size),
                                  instrument.config.multiplier), "f")
