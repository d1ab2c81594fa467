"""Instruments and the one exact conversion between decimals and the core's int64 ticks/lots.

Owns the price/quantity grids (tick size, lot size, multiplier) and the instrument-set digest.
Must never round, never accept a binary float, and never import the compiled core.
"""
from __future__ import annotations

import decimal
import hashlib
import numbers
import os
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Union

import msgspec

from .config import EngineConfig, InstrumentConfig, default_config, load_config
from .schema import INT64_MAX, Reason

__all__ = ["GridError", "Instrument", "InstrumentSet", "DecimalLike", "to_decimal", "exact_units"]

INT64_MIN = -(1 << 63)
DecimalLike = Union[Decimal, int, str]

# Comparisons are exact whatever the context; these contexts make every other operation exact
# or loud: a result that would need rounding raises Inexact instead of being rounded.
_TRAPS = [decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact]
# Divisions: a quotient that is an int64 (<= 19 digits) is exact well within 60 digits.
_DIV = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=_TRAPS)
# Products and quantizations of int64 counts with config decimals (<= 37 digits each).
_EXACT = decimal.Context(prec=400, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=_TRAPS)

DIGEST_TAG = b"engine.instruments.v1\n"


class GridError(ValueError):
    """A decimal that cannot become ticks or lots; ``reason`` is an EDGE_* Reason."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = Reason(reason)
        self.message = message


def to_decimal(value: Any, what: str = "value") -> Decimal:
    """``value`` (Decimal, int or str) as a finite Decimal, else GridError(EDGE_BAD_VALUE)."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        raise GridError(Reason.EDGE_BAD_VALUE,
                        f"{what} {value!r} is a float: floats are refused because binary floating"
                        " point cannot represent most prices and quantities exactly;"
                        f" pass a Decimal, an int or a str such as {str(value)!r}")
    elif isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise GridError(Reason.EDGE_BAD_VALUE,
                        f"{what} {value!r} is not a number: expected a Decimal, an int or a str")
    elif isinstance(value, str):
        try:
            d = Decimal(value)
        except (decimal.InvalidOperation, ValueError):
            raise GridError(Reason.EDGE_BAD_VALUE,
                            f"{what} {value!r} is not a decimal number") from None
    else:
        d = Decimal(int(value))
    if not d.is_finite():
        raise GridError(Reason.EDGE_BAD_VALUE, f"{what} {value!r} is not a finite number")
    return d


def _units(d: Decimal, unit: Decimal, lo: Decimal, hi: Decimal, off_grid: Reason, what: str,
           grid: str, owner: str = "") -> int:
    # The range check comes first and is exact (Decimal comparison never rounds), so the
    # division below only ever sees values whose quotient fits int64.
    of = f" of {owner}" if owner else ""
    if not lo <= d <= hi:
        raise GridError(Reason.EDGE_BAD_VALUE,
                        f"{what} {d} is beyond the int64 range of {grid}s{of}"
                        f" (|{what}| <= 2**63 * {unit})")
    try:
        return int(_DIV.to_integral_exact(_DIV.divide(d, unit)))
    except decimal.Inexact:
        raise GridError(off_grid,
                        f"{what} {d} is not a multiple of the {grid} size {unit}{of}") from None


def exact_units(value: DecimalLike, unit: Decimal, *, what: str = "price") -> int:
    """``value / unit`` as an int64 if exact; else GridError (off grid, or EDGE_BAD_VALUE)."""
    if not (isinstance(unit, Decimal) and unit.is_finite() and unit > 0):
        raise ValueError(f"unit must be a positive finite Decimal, got {unit!r}")
    off_grid, grid = ((Reason.EDGE_PRICE_OFF_GRID, "tick") if what == "price"
                      else (Reason.EDGE_QUANTITY_OFF_GRID, "lot"))
    unit = _canonical(unit)
    d = to_decimal(value, what)
    return _units(d, unit, _EXACT.multiply(unit, INT64_MIN), _EXACT.multiply(unit, INT64_MAX),
                  off_grid, what, grid)


def _canonical(d: Decimal) -> Decimal:
    """The value without trailing zeros nor exponent form (0.010 -> 0.01, 1E+3 -> 1000)."""
    n = d.normalize(_EXACT)
    return n.quantize(Decimal(1), context=_EXACT) if n.as_tuple().exponent > 0 else n


def _count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {n!r}")
    return int(n)


class Instrument:
    """One tradable instrument and its exact grids. Built from a validated InstrumentConfig.

    ``tick_size``, ``lot_size`` and ``multiplier`` are canonical (no trailing zeros); prices and
    quantities coming out are quantized to the tick/lot size's exponent (AAPL: 2 places).
    """

    __slots__ = ("config", "id", "symbol", "asset_class", "currency", "matching", "description",
                 "tick_size", "lot_size", "multiplier", "min_lots", "max_lots",
                 "_price_lo", "_price_hi", "_qty_lo", "_qty_hi")

    def __init__(self, config: InstrumentConfig) -> None:
        if not isinstance(config, InstrumentConfig):
            raise TypeError(f"expected an InstrumentConfig, got {type(config).__name__}")
        tick, lot = _canonical(config.tick_size), _canonical(config.lot_size)
        fields = dict(
            config=config, id=config.id, symbol=config.symbol, asset_class=config.asset_class,
            currency=config.currency, matching=config.matching, description=config.description,
            tick_size=tick, lot_size=lot, multiplier=_canonical(config.multiplier),
            _price_lo=_EXACT.multiply(tick, INT64_MIN), _price_hi=_EXACT.multiply(tick, INT64_MAX),
            _qty_lo=_EXACT.multiply(lot, INT64_MIN), _qty_hi=_EXACT.multiply(lot, INT64_MAX),
        )
        for k, v in fields.items():
            object.__setattr__(self, k, v)
        min_lots = 1 if config.min_qty is None else self.qty_to_lots(config.min_qty)
        max_lots = INT64_MAX if config.max_qty is None else self.qty_to_lots(config.max_qty)
        object.__setattr__(self, "min_lots", min_lots)
        object.__setattr__(self, "max_lots", max_lots)

    @classmethod
    def from_config(cls, config: InstrumentConfig) -> Instrument:
        """Same as ``Instrument(config)``."""
        return cls(config)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Instrument is immutable (cannot set {name!r})")

    # -- decimals in -------------------------------------------------------------------------
    def price_to_ticks(self, price: DecimalLike) -> int:
        """The price in ticks, exactly. Off the tick grid: GridError(EDGE_PRICE_OFF_GRID); float,
        NaN, infinite, non-numeric or beyond int64 ticks: GridError(EDGE_BAD_VALUE). Negative
        prices convert (the core rejects non-positive limit prices)."""
        return _units(to_decimal(price, "price"), self.tick_size, self._price_lo, self._price_hi,
                      Reason.EDGE_PRICE_OFF_GRID, "price", "tick", self.symbol)

    def qty_to_lots(self, qty: DecimalLike) -> int:
        """The quantity in lots, exactly. Off the lot grid: GridError(EDGE_QUANTITY_OFF_GRID);
        float, NaN, infinite, non-numeric or beyond int64 lots: GridError(EDGE_BAD_VALUE)."""
        return _units(to_decimal(qty, "quantity"), self.lot_size, self._qty_lo, self._qty_hi,
                      Reason.EDGE_QUANTITY_OFF_GRID, "quantity", "lot", self.symbol)

    # -- decimals out ------------------------------------------------------------------------
    def ticks_to_price(self, ticks: int) -> Decimal:
        """``ticks * tick_size``, exact, with the tick size's decimal places."""
        return _EXACT.multiply(Decimal(_count(ticks, "ticks")), self.tick_size)

    def lots_to_qty(self, lots: int) -> Decimal:
        """``lots * lot_size``, exact, with the lot size's decimal places."""
        return _EXACT.multiply(Decimal(_count(lots, "lots")), self.lot_size)

    def notional(self, price_ticks: int, qty_lots: int) -> Decimal:
        """``price * qty * multiplier`` in ``currency``, exact (no rounding, no normalization)."""
        return _EXACT.multiply(_EXACT.multiply(self.ticks_to_price(price_ticks),
                                               self.lots_to_qty(qty_lots)), self.multiplier)

    @property
    def min_qty(self) -> Decimal:
        return self.lots_to_qty(self.min_lots)

    @property
    def max_qty(self) -> Decimal:
        return self.lots_to_qty(self.max_lots)

    def definition(self) -> dict[str, Any]:
        """The fields that define the instrument's behaviour (not its description), canonical."""
        return {
            "id": self.id, "symbol": self.symbol, "asset_class": self.asset_class,
            "tick_size": format(self.tick_size, "f"), "lot_size": format(self.lot_size, "f"),
            "multiplier": format(self.multiplier, "f"), "currency": self.currency,
            "min_lots": self.min_lots, "max_lots": self.max_lots, "matching": self.matching,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instrument) and self.definition() == other.definition()

    def __hash__(self) -> int:
        return hash((self.id, self.symbol))

    def __repr__(self) -> str:
        return (f"Instrument(id={self.id}, symbol={self.symbol!r}, {self.asset_class},"
                f" tick={self.tick_size}, lot={self.lot_size}, multiplier={self.multiplier},"
                f" {self.currency})")


class InstrumentSet:
    """Instruments by id and by symbol; iterates in ascending id order."""

    __slots__ = ("_by_id", "_by_symbol", "_digest")

    def __init__(self, instruments: Iterable[Instrument | InstrumentConfig]) -> None:
        by_id: dict[int, Instrument] = {}
        by_symbol: dict[str, Instrument] = {}
        for inst in instruments:
            if isinstance(inst, InstrumentConfig):
                inst = Instrument(inst)
            if inst.id in by_id:
                raise ValueError(f"duplicate instrument id {inst.id}")
            if inst.symbol in by_symbol:
                raise ValueError(f"duplicate symbol {inst.symbol!r}")
            by_id[inst.id] = by_symbol[inst.symbol] = inst
        self._by_id = dict(sorted(by_id.items()))
        self._by_symbol = by_symbol
        record = [inst.definition() for inst in self._by_id.values()]
        self._digest = hashlib.blake2b(DIGEST_TAG + msgspec.json.encode(record, order="sorted"),
                                       digest_size=32).hexdigest()

    @classmethod
    def from_config(cls, config: EngineConfig) -> InstrumentSet:
        """The instruments of a validated EngineConfig."""
        return cls(config.instruments)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> InstrumentSet:
        """The instruments of a TOML config file (ConfigError on any problem)."""
        return cls.from_config(load_config(path))

    @classmethod
    def default(cls) -> InstrumentSet:
        """The instruments of the embedded default config."""
        return cls.from_config(default_config())

    def by_id(self, instrument_id: int) -> Instrument:
        """KeyError if unknown."""
        try:
            return self._by_id[instrument_id]
        except KeyError:
            raise KeyError(f"unknown instrument id {instrument_id!r}") from None

    def by_symbol(self, symbol: str) -> Instrument:
        """KeyError if unknown."""
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None

    def get(self, key: int | str, default: Any = None) -> Instrument | Any:
        """By symbol (str) or id (int); ``default`` if unknown."""
        table = self._by_symbol if isinstance(key, str) else self._by_id
        try:
            return table.get(key, default)
        except TypeError:  # unhashable
            return default

    def __getitem__(self, key: int | str) -> Instrument:
        return self.by_symbol(key) if isinstance(key, str) else self.by_id(key)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def ids(self) -> list[int]:
        return list(self._by_id)

    @property
    def symbols(self) -> list[str]:
        return [inst.symbol for inst in self._by_id.values()]

    def digest(self) -> str:
        """Stable hex BLAKE2b-256 of the instrument definitions in id order (not descriptions)."""
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstrumentSet) and self._digest == other._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        return f"InstrumentSet({', '.join(self.symbols)})"
