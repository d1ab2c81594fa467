"""Venues and their books (docs/ROUTING.md, "Venues and books"), as the config defines them.

Owns the config's ``[[venues]]`` as integers: each venue's id, fees and priority, and each
instrument's books with their grids as multiples of the instrument's tick and lot (the core
counts every book of an instrument in the same instrument ticks and lots); the venue-set
digest; registering venues and books on a core; and the edge's check that a price or quantity
lies on a book's grid. Must never round, and never import the compiled core.

The **primary** book of an instrument is its book on the first venue, in config order, that
lists it. An instrument no venue lists keeps one book on the default venue (0): not routable,
no fees. Without venues every instrument is registered exactly as before venues existed.
"""
from __future__ import annotations

import difflib
import hashlib
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from .config import (
    INT32_MAX,
    INT32_MIN,
    MAX_VENUE_FEE_PPM,
    MAX_VENUE_ID,
    UINT32_MAX,
    ConfigError,
    EngineConfig,
)
from .instruments import GridError, Instrument, InstrumentSet, exact_units
from .risk.setup import RiskSetup
from .schema import INT64_MAX, Reason

__all__ = ["Venue", "Book", "VenueSet", "instrument_k", "DIGEST_TAG", "DEFAULT_VENUE"]

DIGEST_TAG = b"engine.venues.v1\n"
DEFAULT_VENUE = 0  # the venue of an instrument no venue lists (and, in a NEW, "the primary")


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True, slots=True)
class Venue:
    """A venue: fees in millionths of the notional (negative: a rebate); a lower ``priority``
    ranks first in routing ties, then the lower id."""

    id: int
    name: str
    maker_fee: int
    taker_fee: int
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "maker_fee": self.maker_fee,
                "taker_fee": self.taker_fee, "priority": self.priority}


@dataclass(frozen=True, slots=True)
class Book:
    """One instrument listed on one venue. ``tick``: instrument ticks per venue tick; ``lot``:
    instrument lots per venue lot (both >= 1). A price in instrument ticks is on the book's grid
    when ``ticks % tick == 0``, a quantity in lots when ``lots % lot == 0``."""

    venue: int
    instrument: int
    symbol: str
    tick: int = 1
    lot: int = 1

    def definition(self) -> dict[str, Any]:
        return {"venue": self.venue, "instrument": self.instrument, "symbol": self.symbol,
                "tick": self.tick, "lot": self.lot}


_VENUE_KEYS = ("id", "name", "maker_fee", "taker_fee", "priority")
_BOOK_KEYS = ("venue", "instrument", "symbol", "tick", "lot")


class VenueSet:
    """The venues in config order and every instrument's books, immutable.

    Books are kept in registration order: instruments in ascending id (InstrumentSet order),
    each instrument's books in venue config order, so its primary book first. Instruments are
    named by id, by symbol or by an Instrument wherever one is taken.
    """

    __slots__ = ("_venues", "_by_id", "_by_name", "_books", "_listing", "_symbols", "_book",
                 "_digest")

    def __init__(self, venues: Iterable[Venue] = (), books: Iterable[Book] = ()) -> None:
        venues = tuple(venues)
        by_id: dict[int, Venue] = {}
        by_name: dict[str, Venue] = {}
        for n, v in enumerate(venues):
            where = f"venues[{n}]"
            if not isinstance(v, Venue):
                raise TypeError(f"{where}: expected a Venue, got {type(v).__name__}")
            _check_int(f"{where}.id", v.id, 1, MAX_VENUE_ID)
            if not isinstance(v.name, str) or not v.name:
                raise ValueError(f"{where}.name: expected a non-empty str, got {v.name!r}")
            for fee in ("maker_fee", "taker_fee"):
                _check_int(f"{where}.{fee}", getattr(v, fee), -MAX_VENUE_FEE_PPM,
                           MAX_VENUE_FEE_PPM)
            _check_int(f"{where}.priority", v.priority, INT32_MIN, INT32_MAX)
            if v.id in by_id:
                raise ValueError(f"{where}.id: duplicate venue id {v.id}")
            if v.name in by_name:
                raise ValueError(f"{where}.name: duplicate venue name {v.name!r}")
            by_id[v.id] = by_name[v.name] = v
        position = {v.id: n for n, v in enumerate(venues)}
        books = tuple(books)
        seen: dict[tuple[int, int], int] = {}
        symbol_of: dict[int, str] = {}
        id_of: dict[str, int] = {}
        for n, b in enumerate(books):
            where = f"books[{n}]"
            if not isinstance(b, Book):
                raise TypeError(f"{where}: expected a Book, got {type(b).__name__}")
            if not _is_int(b.venue) or b.venue not in by_id:
                raise ValueError(f"{where}.venue: {b.venue!r} is not one of the venues")
            _check_int(f"{where}.instrument", b.instrument, 0, UINT32_MAX)
            if not isinstance(b.symbol, str) or not b.symbol:
                raise ValueError(f"{where}.symbol: expected a non-empty str, got {b.symbol!r}")
            _check_int(f"{where}.tick", b.tick, 1, INT64_MAX)
            _check_int(f"{where}.lot", b.lot, 1, INT64_MAX)
            if (b.venue, b.instrument) in seen:
                raise ValueError(f"{where}: venue {b.venue} lists instrument {b.instrument}"
                                 f" twice (already books[{seen[b.venue, b.instrument]}])")
            seen[b.venue, b.instrument] = n
            if symbol_of.setdefault(b.instrument, b.symbol) != b.symbol:
                raise ValueError(f"{where}.symbol: instrument {b.instrument} is"
                                 f" {symbol_of[b.instrument]!r} in another book, not"
                                 f" {b.symbol!r}")
            if id_of.setdefault(b.symbol, b.instrument) != b.instrument:
                raise ValueError(f"{where}.instrument: symbol {b.symbol!r} is instrument"
                                 f" {id_of[b.symbol]} in another book, not {b.instrument}")
        ordered = tuple(sorted(books, key=lambda b: (b.instrument, position[b.venue])))
        listing: dict[int, list[Book]] = {}
        for b in ordered:
            listing.setdefault(b.instrument, []).append(b)
        fields = dict(_venues=venues, _by_id=by_id, _by_name=by_name, _books=ordered,
                      _listing={i: tuple(bs) for i, bs in listing.items()}, _symbols=id_of,
                      _book={(b.venue, b.instrument): b for b in ordered})
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_digest", hashlib.blake2b(
            DIGEST_TAG + msgspec.json.encode(self.definition(), order="sorted"),
            digest_size=32).hexdigest())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"VenueSet is immutable (cannot set {name!r})")

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> VenueSet:
        """No venues: every instrument on the default venue (an engine without venues)."""
        return cls()

    @classmethod
    def from_config(cls, config: EngineConfig,
                    instruments: InstrumentSet | None = None) -> VenueSet:
        """The ``[[venues]]`` of a config over its instruments (default: the config's). Every
        cross-check is made here: ConfigError naming the field (``$.venues[0].instruments[1]
        .tick_size``) if a symbol is not a configured instrument or a venue grid is not a
        positive integer multiple of the instrument's."""
        if not isinstance(config, EngineConfig):
            raise TypeError(f"expected an EngineConfig, got {type(config).__name__}")
        if instruments is None:
            instruments = InstrumentSet.from_config(config)
        elif not isinstance(instruments, InstrumentSet):
            raise TypeError(f"expected an InstrumentSet, got {type(instruments).__name__}")
        venues: list[Venue] = []
        books: list[Book] = []
        for n, vc in enumerate(config.venues):
            venues.append(Venue(vc.id, vc.name, vc.maker_fee, vc.taker_fee, vc.priority))
            for m, (entry, listing) in enumerate(zip(vc.instruments, vc.listings)):
                where = f"$.venues[{n}].instruments[{m}]"
                inst = _symbol(instruments, listing.symbol,
                               where if isinstance(entry, str) else f"{where}.symbol")
                tick = _multiple(listing.tick_size, inst, "tick_size", f"{where}.tick_size")
                lot = _multiple(listing.lot_size, inst, "lot_size", f"{where}.lot_size")
                if lot > inst.max_lots:
                    raise ConfigError(
                        f"Expected a lot_size of at most {inst.symbol}'s max_qty"
                        f" {inst.max_qty} (the book could accept no order), got"
                        f" {str(listing.lot_size)!r}", path=f"{where}.lot_size")
                books.append(Book(vc.id, inst.id, inst.symbol, tick, lot))
        return cls(venues, books)

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> VenueSet:
        """The VenueSet whose ``definition()`` this is (ValueError naming the entry if it is
        not one). ``VenueSet.from_definition(vs.definition()) == vs``."""
        if not isinstance(definition, Mapping) or set(definition) != {"venues", "books"}:
            raise ValueError("expected a mapping with exactly the keys 'venues' and 'books'")
        venues = [Venue(**_entry(f"venues[{n}]", e, _VENUE_KEYS))
                  for n, e in enumerate(_list("venues", definition["venues"]))]
        books = [Book(**_entry(f"books[{n}]", e, _BOOK_KEYS))
                 for n, e in enumerate(_list("books", definition["books"]))]
        return cls(venues, books)

    # -- identity --------------------------------------------------------------------------------
    def definition(self) -> dict[str, Any]:
        """Plain ints and strings: ``{"venues": [...], "books": [...]}``, venues in config
        order, books in registration order (what a journal manifest records)."""
        return {"venues": [v.definition() for v in self._venues],
                "books": [b.definition() for b in self._books]}

    def digest(self) -> str:
        """Stable hex BLAKE2b-256 of the canonical JSON of ``definition()``. It does not
        depend on how the config spells a grid ("0.05" or "0.050") nor on the order a venue
        lists its instruments; the InstrumentSet digest does not depend on the venues."""
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VenueSet) and self._digest == other._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        return (f"VenueSet({', '.join(f'{v.id}:{v.name}' for v in self._venues) or 'empty'};"
                f" {len(self._books)} books)")

    # -- venues ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._venues)

    def __iter__(self) -> Iterator[Venue]:
        """The venues in config order."""
        return iter(self._venues)

    def __bool__(self) -> bool:
        return bool(self._venues)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    @property
    def venues(self) -> tuple[Venue, ...]:
        return self._venues

    @property
    def ids(self) -> list[int]:
        return [v.id for v in self._venues]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self._venues]

    def by_id(self, venue_id: int) -> Venue:
        """KeyError if unknown (0, the default venue, is no Venue)."""
        try:
            return self._by_id[venue_id]
        except (KeyError, TypeError):
            raise KeyError(f"unknown venue id {venue_id!r}") from None

    def by_name(self, name: str) -> Venue:
        """KeyError if unknown."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise KeyError(f"unknown venue {name!r} (venues: {', '.join(self.names) or 'none'})"
                           ) from None

    def get(self, key: int | str, default: Any = None) -> Venue | Any:
        """By name (str) or id (int); ``default`` if unknown."""
        table = self._by_name if isinstance(key, str) else self._by_id
        try:
            return table.get(key, default)  # type: ignore[arg-type]
        except TypeError:  # unhashable
            return default

    # -- books -----------------------------------------------------------------------------------
    @property
    def books(self) -> tuple[Book, ...]:
        """Every book on a venue, in registration order (``core.books()`` without the
        default-venue books)."""
        return self._books

    def _instrument_id(self, instrument: int | str | Instrument) -> int:
        if isinstance(instrument, Instrument):
            return instrument.id
        if isinstance(instrument, str):
            return self._symbols.get(instrument, -1)
        if _is_int(instrument):
            return int(instrument)
        raise TypeError(f"expected an instrument id, symbol or Instrument, got {instrument!r}")

    def listing(self, instrument: int | str | Instrument) -> tuple[Book, ...]:
        """The instrument's books in venue config order, the primary first; () if no venue
        lists it (it trades on the default venue, not routable)."""
        return self._listing.get(self._instrument_id(instrument), ())

    def primary(self, instrument: int | str | Instrument) -> Book | None:
        """The book on the first venue in config order that lists the instrument; None if
        no venue does."""
        books = self.listing(instrument)
        return books[0] if books else None

    def routable(self, instrument: int | str | Instrument) -> tuple[Book, ...]:
        """The instrument's books in routing order: priority, then venue id."""
        return tuple(sorted(self.listing(instrument),
                            key=lambda b: (self._by_id[b.venue].priority, b.venue)))

    def is_listed(self, venue_id: int, instrument: int | str | Instrument) -> bool:
        return (venue_id, self._instrument_id(instrument)) in self._book

    def book(self, venue_id: int, instrument: int | str | Instrument) -> Book:
        """The instrument's book on a venue; venue 0 means its primary book. KeyError if the
        venue is unknown or does not list it (or, for 0, no venue lists it)."""
        book = (self.primary(instrument) if venue_id == DEFAULT_VENUE
                else self._book.get((venue_id, self._instrument_id(instrument))))
        if book is None:
            raise KeyError(f"venue {venue_id!r} has no book of instrument {instrument!r}")
        return book

    def ticks_per_venue_tick(self, venue_id: int, instrument: int | str | Instrument) -> int:
        """Instrument ticks per tick of the venue's book (``book(...).tick``)."""
        return self.book(venue_id, instrument).tick

    def lots_per_venue_lot(self, venue_id: int, instrument: int | str | Instrument) -> int:
        """Instrument lots per lot of the venue's book (``book(...).lot``)."""
        return self.book(venue_id, instrument).lot

    def tick_size(self, venue_id: int, instrument: Instrument) -> Decimal:
        """The venue's tick size for the instrument, as a decimal price (exact)."""
        return instrument.ticks_to_price(self.ticks_per_venue_tick(venue_id, instrument))

    def lot_size(self, venue_id: int, instrument: Instrument) -> Decimal:
        """The venue's lot size for the instrument, as a decimal quantity (exact)."""
        return instrument.lots_to_qty(self.lots_per_venue_lot(venue_id, instrument))

    # -- the edge's grid check ---------------------------------------------------------------------
    def _book_for(self, venue_id: int, instrument: int | str | Instrument) -> Book | None:
        """The book a command naming ``venue_id`` reaches (0: the primary; None: the default
        venue's book, whose grid is the instrument's), else GridError with the core's reason."""
        if not _is_int(venue_id):
            raise TypeError(f"venue must be an int, got {venue_id!r}")
        if venue_id == DEFAULT_VENUE:
            return self.primary(instrument)
        venue = self._by_id.get(venue_id)
        if venue is None:
            raise GridError(Reason.BOOK_UNKNOWN_VENUE,
                            f"venue {venue_id} is not a venue of the engine"
                            f" ({', '.join(f'{v.id} {v.name}' for v in self._venues) or 'none'})")
        book = self._book.get((venue_id, self._instrument_id(instrument)))
        if book is None:
            raise GridError(Reason.BOOK_VENUE_NOT_LISTED,
                            f"venue {venue.name} ({venue_id}) does not list {_name(instrument)}")
        return book

    def check_price(self, venue_id: int, instrument: int | str | Instrument, ticks: int) -> None:
        """A price in instrument ticks must lie on the book's tick grid (venue 0: the primary
        book; an unlisted instrument: any tick). GridError(BOOK_OFF_VENUE_GRID) if not;
        GridError(BOOK_UNKNOWN_VENUE / BOOK_VENUE_NOT_LISTED) if there is no such book (the
        reasons the core would give)."""
        self._check(venue_id, instrument, ticks, "price")

    def check_qty(self, venue_id: int, instrument: int | str | Instrument, lots: int) -> None:
        """A quantity in instrument lots must lie on the book's lot grid; as check_price."""
        self._check(venue_id, instrument, lots, "quantity")

    def _check(self, venue_id: int, instrument: int | str | Instrument, units: int,
               what: str) -> None:
        if not _is_int(units):
            raise TypeError(f"{what} must be an int count of instrument"
                            f" {'ticks' if what == 'price' else 'lots'}, got {units!r}")
        book = self._book_for(venue_id, instrument)
        if book is None:
            return
        step = book.tick if what == "price" else book.lot
        if units % step == 0:
            return
        venue = self._by_id[book.venue]
        if isinstance(instrument, Instrument):
            value, size = ((instrument.ticks_to_price(units), instrument.ticks_to_price(step))
                           if what == "price" else
                           (instrument.lots_to_qty(units), instrument.lots_to_qty(step)))
            detail = f"{what} {value} is not a multiple of {size}"
        else:
            unit = "ticks" if what == "price" else "lots"
            detail = f"{what} of {units} {unit} is not a multiple of {step} {unit}"
        grid = "tick" if what == "price" else "lot"
        raise GridError(Reason.BOOK_OFF_VENUE_GRID,
                        f"{detail}, the {grid} of {_name(instrument)} on venue {venue.name}"
                        f" ({venue.id})")

    # -- registering on a core -------------------------------------------------------------------
    def calls(self, instruments: InstrumentSet, *,
              min_max: Mapping[int, tuple[int, int]] | None = None,
              k: RiskSetup | Mapping[int, int] | None = None
              ) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        """What ``register`` calls, as ``(method, args, kwargs)``, after checking everything."""
        if not isinstance(instruments, InstrumentSet):
            raise TypeError(f"expected an InstrumentSet, got {type(instruments).__name__}")
        for b in self._books:
            inst = instruments.get(b.instrument)
            if inst is None or inst.symbol != b.symbol:
                raise ValueError(f"venue {b.venue} lists instrument {b.instrument} ({b.symbol}),"
                                 f" which is not one of the instruments ({instruments!r})")
        ks = _k_table(k, instruments)
        out: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("add_venue", (v.id,), {"maker_fee": v.maker_fee, "taker_fee": v.taker_fee,
                                    "priority": v.priority})
            for v in self._venues]
        for inst in instruments:
            lo, hi = _bounds(min_max, inst)
            books = self._listing.get(inst.id, ())
            if not books:
                out.append(("add_instrument", (inst.id, lo, hi), {"k": ks[inst.id]}))
            for b in books:
                out.append(("add_instrument", (inst.id, lo, hi),
                            {"venue": b.venue, "tick": b.tick, "lot": b.lot, "k": ks[inst.id]}))
        return out

    def register(self, core: Any, instruments: InstrumentSet, *,
                 min_max: Mapping[int, tuple[int, int]] | None = None,
                 k: RiskSetup | Mapping[int, int] | None = None) -> None:
        """Register every venue and every book on a fresh core-like object.

        First ``core.add_venue(id, maker_fee=, taker_fee=, priority=)`` for each venue in
        config order; then, instruments in InstrumentSet order (ascending id), each
        instrument's books consecutively, the primary first:
        ``core.add_instrument(id, min_qty, max_qty, venue=v, tick=t, lot=l, k=k)``; an
        instrument no venue lists gets ``core.add_instrument(id, min_qty, max_qty, k=k)``
        (the default venue). ``min_qty``/``max_qty`` are in lots: the instrument's
        ``min_lots``/``max_lots`` unless ``min_max`` maps its id to other bounds.

        ``k`` (cash units per tick x lot, docs/RISK.md "Units"): a RiskSetup (its ``k`` when
        risk is enabled, else 1), a mapping of instrument id to k (e.g. from the risk tables:
        ``{int(r["instrument"]): int(r["k"]) for r in tables["instruments"]}``), or None: 1
        for every instrument (risk off). ``instrument_k(config)`` gives the mapping of a config.
        Everything is checked before the first call.
        """
        for name, args, kwargs in self.calls(instruments, min_max=min_max, k=k):
            getattr(core, name)(*args, **kwargs)


def instrument_k(config: EngineConfig, instruments: InstrumentSet | None = None
                 ) -> dict[int, int]:
    """Each instrument's ``k`` for ``add_instrument``: the risk setup's (cash units of its
    currency per tick x lot, engine.risk.setup.RiskSetup.k) when ``[risk]`` is enabled, else 1
    (risk off: the core's default, notionals and venue fees then count in ticks x lots)."""
    setup = RiskSetup(config, instruments)
    return _k_table(setup, setup.instruments)


# -- helpers ---------------------------------------------------------------------------------------

def _check_int(where: str, value: Any, lo: int, hi: int) -> None:
    if not _is_int(value) or not lo <= value <= hi:
        raise ValueError(f"{where}: expected an int in {lo}..{hi}, got {value!r}")


def _name(instrument: int | str | Instrument) -> str:
    if isinstance(instrument, Instrument):
        return instrument.symbol
    return repr(instrument) if isinstance(instrument, str) else f"instrument {instrument}"


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
    return list(value)


def _entry(where: str, value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value) != set(keys):
        raise ValueError(f"{where}: expected a mapping with exactly the keys"
                         f" {', '.join(keys)}, got {value!r}")
    return {key: value[key] for key in keys}


def _symbol(instruments: InstrumentSet, symbol: str, path: str) -> Instrument:
    inst = instruments.get(symbol)
    if inst is None:
        symbols = instruments.symbols
        hint = difflib.get_close_matches(symbol, symbols, n=1)
        known = ", ".join(symbols[:20]) + (", ..." if len(symbols) > 20 else "")
        raise ConfigError(f"unknown symbol {symbol!r}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else "")
                          + f"; a venue lists configured instruments: {known}", path=path)
    return inst


def _multiple(value: Decimal | None, inst: Instrument, field: str, path: str) -> int:
    """A venue grid as a count of the instrument's: a positive integer multiple, exactly."""
    if value is None:
        return 1
    unit = inst.tick_size if field == "tick_size" else inst.lot_size
    try:
        n = exact_units(value, unit, what="price" if field == "tick_size" else "quantity")
    except GridError as e:
        if e.reason is Reason.EDGE_BAD_VALUE:
            why = f"beyond 2**63-1 times {inst.symbol}'s {field} {unit}"
        else:
            why = (f"{value / unit} times {inst.symbol}'s {field} {unit}; a venue may quote"
                   f" on a coarser grid than the instrument's, never a finer or shifted one")
        raise ConfigError(f"Expected a positive integer multiple of {inst.symbol}'s {field}"
                          f" {unit}, got {str(value)!r} ({why})", path=path) from None
    if n < 1:  # value > 0 is checked by the config; kept for configs built by hand
        raise ConfigError(f"Expected a positive integer multiple of {inst.symbol}'s {field}"
                          f" {unit}, got {str(value)!r}", path=path)
    return n


def _bounds(min_max: Mapping[int, tuple[int, int]] | None, inst: Instrument) -> tuple[int, int]:
    if min_max is None or inst.id not in min_max:
        return inst.min_lots, inst.max_lots
    bounds = min_max[inst.id]
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise ValueError(f"min_max[{inst.id}]: expected (min_qty, max_qty) in lots,"
                         f" got {bounds!r}") from None
    if not (_is_int(lo) and _is_int(hi) and 1 <= lo <= hi <= INT64_MAX):
        raise ValueError(f"min_max[{inst.id}]: expected 1 <= min_qty <= max_qty <= 2**63-1"
                         f" lots, got {bounds!r}")
    return int(lo), int(hi)


def _k_table(k: RiskSetup | Mapping[int, int] | None,
             instruments: InstrumentSet) -> dict[int, int]:
    if k is None or (isinstance(k, RiskSetup) and not k.enabled):
        return {inst.id: 1 for inst in instruments}
    out: dict[int, int] = {}
    for inst in instruments:
        try:
            value = k.k(inst.id) if isinstance(k, RiskSetup) else k[inst.id]
        except KeyError:
            raise ValueError(f"no k for instrument {inst.id} ({inst.symbol})") from None
        if not _is_int(value) or not 1 <= value <= INT64_MAX:
            raise ValueError(f"k of instrument {inst.id} ({inst.symbol}): expected an int in"
                             f" 1..2**63-1, got {value!r}")
        out[inst.id] = int(value)
    return out
