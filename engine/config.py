"""The engine's one typed configuration: msgspec Structs decoded from TOML.

Owns the schema, its validation and the error messages (file + field path). Must never
convert prices or quantities to ticks or lots (engine/instruments.py does) nor touch a core.
"""
from __future__ import annotations

import datetime
import decimal
import difflib
import os
import re
import tomllib
from decimal import Decimal
from importlib import resources
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect as mi

from .schema import MAX_FEE_PPM as MAX_VENUE_FEE_PPM
from .schema import Reason

__all__ = [
    "AssetClass", "Matching", "KillMode", "ASSET_CLASSES", "MATCHING_SUPPORTED", "KILL_MODES",
    "InstrumentConfig", "JournalConfig", "AccountConfig", "GatewayConfig", "EngineConfig",
    "RiskConfig", "RiskCurrencyConfig", "RiskInstrumentConfig", "CashConfig",
    "AccountInstrumentConfig", "VenueConfig", "VenueListingConfig",
    "ConfigError",
    "load_config", "parse_config", "default_config", "check_risk", "check_venues",
]

AssetClass = Literal["equity", "etf", "future", "option", "fx_spot", "bond", "crypto"]
Matching = Literal["fifo", "pro_rata"]  # every known value; only the supported ones pass
ASSET_CLASSES: tuple[str, ...] = AssetClass.__args__
MATCHING_SUPPORTED: tuple[str, ...] = ("fifo",)

UINT32_MAX = (1 << 32) - 1
INT64_MAX = (1 << 63) - 1
MAX_DECIMAL_PLACES = 18  # tick_size, lot_size, multiplier: at most 1E-18 ...
MAX_ADJUSTED_EXPONENT = 18  # ... and below 1E+19

DEFAULT_CONFIG_RESOURCE = "default_config.toml"
_CURRENCY = re.compile("[A-Z]{3}")

# A kill switch in the config: KillSwitch.ACTIVE / REDUCE_ONLY / KILLED (engine/schema.py).
KillMode = Literal["active", "reduce_only", "killed"]
KILL_MODES: tuple[str, ...] = KillMode.__args__
MAX_CASH_DECIMALS = 18          # a currency's cash unit is at most 10**-18 of it
MAX_RATE = 10**9                # rate_per_s and rate_burst (docs/RISK.md, "State")
MAX_BPS = 1_000_000             # price_band_bps
MAX_FEE_PPM = 1_000_000         # fee_ppm
MAX_VENUE_ID = 65535            # venue ids are 1..65535 (0 is the default venue)
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1  # a venue's priority


class ConfigError(ValueError):
    """A configuration that cannot be used: ``source: path: detail``.

    ``source`` is the file name (or ``<string>``), ``path`` the field path
    (``$.instruments[2].tick_size``; None for a whole-file problem such as a syntax error) and
    ``detail`` what is wrong.
    """

    def __init__(self, detail: str, *, path: str | None = None, source: str | None = None) -> None:
        self.detail = detail
        self.path = path
        self.source = source
        super().__init__(": ".join(p for p in (source, path, detail) if p))


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config table: immutable, keyword-only, unknown fields refused."""


def _check_non_negative(name: str, value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise ConfigError(f"Expected a decimal >= 0, got {str(value)!r}", path=name)


def _check_finite(name: str, value: Decimal) -> None:
    if not value.is_finite():
        raise ConfigError(f"Expected a finite decimal, got {str(value)!r}", path=name)


def _check_currency(name: str, code: str) -> None:
    if not _CURRENCY.fullmatch(code):
        raise ConfigError(f"Expected a 3-letter upper-case currency code such as 'USD',"
                          f" got {code!r}", path=name)


def _check_name(name: str, value: str, what: str) -> None:
    if value != value.strip() or any(not c.isprintable() for c in value):
        raise ConfigError(f"Expected a {what} without surrounding spaces or control characters,"
                          f" got {value!r}", path=name)


def _refuse_duplicates(name: str, values: Any, what: str, field: str | None = None) -> None:
    """``values`` (one per entry of the list ``name``) must be distinct."""
    seen: dict[Any, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"duplicate {what} {value!r} (already at {name}[{seen[value]}])",
                              path=f"{name}[{i}]" + (f".{field}" if field else ""))
        seen[value] = i


class InstrumentConfig(_Section):
    """One ``[[instruments]]`` entry. Decimals are written as TOML strings ("0.01")."""

    id: Annotated[int, msgspec.Meta(ge=0, le=UINT32_MAX)]
    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    asset_class: AssetClass
    tick_size: Decimal
    lot_size: Decimal
    currency: str  # ISO 4217 style: three upper-case letters
    multiplier: Decimal = Decimal("1")
    min_qty: Decimal | None = None  # in instrument units, on the lot grid; None = one lot
    max_qty: Decimal | None = None  # None = no limit beyond int64 lots
    matching: Matching = "fifo"
    description: str | None = None

    def __post_init__(self) -> None:
        _check_name("symbol", self.symbol, "symbol")
        _check_currency("currency", self.currency)
        for name in ("tick_size", "lot_size", "multiplier"):
            _check_unit(name, getattr(self, name))
        if self.matching not in MATCHING_SUPPORTED:
            raise ConfigError(f"matching {self.matching!r} is not supported yet"
                              f" (supported: {', '.join(map(repr, MATCHING_SUPPORTED))})",
                              path="matching")
        lots = {}
        for name in ("min_qty", "max_qty"):
            value = getattr(self, name)
            if value is None:
                continue
            _check_positive(name, value)
            lots[name] = _lots_on_grid(name, value, self.lot_size)
        if len(lots) == 2 and lots["min_qty"] > lots["max_qty"]:
            raise ConfigError(f"Expected max_qty >= min_qty ({self.min_qty}),"
                              f" got {str(self.max_qty)!r}", path="max_qty")


Durability = Literal["fsync", "write", "none"]
Retention = Literal["keep", "archive", "delete"]


class JournalConfig(_Section):
    """The ``[journal]`` table: where and how the engine journals its input (docs/JOURNAL.md)."""

    dir: Annotated[str, msgspec.Meta(min_length=1)] = "var/journal"
    # fsync: acknowledged after an fdatasync covers it (group commit); write: after write();
    # none: nothing written (benchmarks, backtests)
    durability: Durability = "fsync"
    # a segment file is closed and the next begun at this size
    segment_bytes: Annotated[int, msgspec.Meta(ge=128, le=1 << 40)] = 64 << 20
    # a snapshot every this many commands (0: only when asked)
    snapshot_every: Annotated[int, msgspec.Meta(ge=0)] = 1_000_000
    # what happens to segments and snapshots a newer snapshot makes unnecessary
    retention: Retention = "keep"
    keep_snapshots: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 2


class CashConfig(_Section):
    """One ``cash`` entry of an account: its balance in one currency (docs/RISK.md, "Units")."""

    currency: str
    amount: Decimal  # in the currency (USD "1000.50"); exact in its cash units; may be negative
    credit: Decimal = Decimal(0)  # how far buys may take free cash below 0, in the currency

    def __post_init__(self) -> None:
        _check_currency("currency", self.currency)
        _check_finite("amount", self.amount)
        _check_non_negative("credit", self.credit)


class AccountInstrumentConfig(_Section):
    """One ``instruments`` entry of an account: its position in, and limits on, one instrument.
    Quantities are in instrument units on the lot grid; notionals in the account's base
    currency."""

    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    position: Decimal = Decimal(0)  # signed: short < 0
    avg_price: Decimal | None = None  # what the position cost per unit; required with a position
    max_order_qty: Decimal | None = None  # None: unlimited
    max_order_notional: Decimal | None = None  # None: the account's max_order_notional
    position_limit: Decimal | None = None  # |worst-case position| <= this; None: unlimited
    short_limit: Decimal = Decimal(0)  # how far sells may take the position below 0

    def __post_init__(self) -> None:
        _check_finite("position", self.position)
        if self.avg_price is None:
            if self.position != 0:
                raise ConfigError(f"Expected an avg_price with the position {self.position}"
                                  " (what it cost per unit, in the instrument's currency)",
                                  path="avg_price")
        else:
            if self.position == 0:
                raise ConfigError(f"Expected no avg_price without a position (position is 0),"
                                  f" got {str(self.avg_price)!r}", path="avg_price")
            _check_positive("avg_price", self.avg_price)
        for name in ("max_order_qty", "max_order_notional", "position_limit", "short_limit"):
            value = getattr(self, name)
            if value is not None:
                _check_non_negative(name, value)


class AccountConfig(_Section):
    """One ``[[accounts]]`` entry: who may log on to the gateway, with which rights, and (with
    risk, docs/RISK.md) what it holds and may do. The risk fields are all optional."""

    id: Annotated[int, msgspec.Meta(ge=1, le=(1 << 31) - 1)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    # "sha256$<salt hex>$<digest hex>", made by `engine keygen`; never the key itself
    api_key_hash: str
    # trader: its own orders only; admin: also halts, limits, other accounts' mass cancels
    role: Literal["trader", "admin"] = "trader"
    # cancel the account's resting orders when its session ends without a Logout
    cancel_on_disconnect: bool = False
    # -- risk (docs/RISK.md); base_currency is required when [risk] is enabled --
    base_currency: str | None = None  # max_order_notional limits are in this currency
    # resting orders at most; None: unlimited
    max_open_orders: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] | None = None
    rate_per_s: Annotated[int, msgspec.Meta(ge=0, le=MAX_RATE)] = 0  # orders per second; 0: off
    rate_burst: Annotated[int, msgspec.Meta(ge=1, le=MAX_RATE)] | None = None  # None: rate_per_s
    max_order_notional: Decimal | None = None  # every instrument's default; None: unlimited
    kill_switch: KillMode = "active"
    restricted: tuple[str, ...] = ()  # symbols this account may not trade
    cash: tuple[CashConfig, ...] = ()
    instruments: tuple[AccountInstrumentConfig, ...] = ()

    def __post_init__(self) -> None:
        from .gateway.auth import valid_stored

        if not valid_stored(self.api_key_hash):
            raise ConfigError("Expected a stored key hash 'sha256$<32 hex>$<64 hex>' (make one"
                              " with `engine keygen`), got something else; the key itself"
                              " never belongs in the config", path="api_key_hash")
        if self.base_currency is not None:
            _check_currency("base_currency", self.base_currency)
        if self.max_order_notional is not None:
            _check_non_negative("max_order_notional", self.max_order_notional)
        _refuse_duplicates("restricted", self.restricted, "symbol")
        _refuse_duplicates("cash", [c.currency for c in self.cash], "currency", "currency")
        _refuse_duplicates("instruments", [i.symbol for i in self.instruments], "symbol",
                           "symbol")

    @property
    def has_risk(self) -> bool:
        """Whether any risk field is set (such an account gets risk rows even with risk off)."""
        return (self.base_currency is not None or self.max_open_orders is not None
                or self.rate_per_s != 0 or self.rate_burst is not None
                or self.max_order_notional is not None or self.kill_switch != "active"
                or bool(self.restricted or self.cash or self.instruments))


class GatewayConfig(_Section):
    """The ``[gateway]`` table: the TCP server's address and limits (docs/PROTOCOL.md)."""

    host: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 7001
    max_sessions: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=256, le=64 << 20)] = 65536
    # token bucket per connection: sustained messages per second and the burst above it
    max_msgs_per_s: Annotated[int, msgspec.Meta(ge=1)] = 200_000
    msg_burst: Annotated[int, msgspec.Meta(ge=1)] = 50_000
    heartbeat_ms: Annotated[int, msgspec.Meta(ge=10, le=3_600_000)] = 5_000
    idle_timeout_ms: Annotated[int, msgspec.Meta(ge=10, le=86_400_000)] = 30_000
    # a client that lets this much unsent output pile up is disconnected (slow consumer)
    send_buffer_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 16 << 20
    book_depth: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    # execution reports kept per account for resending after a reconnect
    report_store: Annotated[int, msgspec.Meta(ge=0)] = 100_000


class RiskCurrencyConfig(_Section):
    """One ``[[risk.currencies]]`` entry. Currencies are numbered 0..n-1 in this order."""

    code: str
    # the value of one unit of the currency in a common valuation currency (only ratios matter)
    rate: Decimal
    # cash unit = 10**-decimals of the currency; None: the fewest places >= 2 that make every
    # instrument's k (tick_size * lot_size * multiplier / cash unit) an integer
    decimals: Annotated[int, msgspec.Meta(ge=0, le=MAX_CASH_DECIMALS)] | None = None

    def __post_init__(self) -> None:
        _check_currency("code", self.code)
        _check_positive("rate", self.rate)


class RiskInstrumentConfig(_Section):
    """One ``[[risk.instruments]]`` entry: an instrument's price band, reference and fee."""

    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    reference_price: Decimal | None = None  # on the tick grid; None: no reference until a trade
    price_band_bps: Annotated[int, msgspec.Meta(ge=0, le=MAX_BPS)] = 0  # 0: no band
    fee_ppm: Annotated[int, msgspec.Meta(ge=0, le=MAX_FEE_PPM)] = 0  # per side of each fill

    def __post_init__(self) -> None:
        if self.reference_price is not None:
            _check_positive("reference_price", self.reference_price)


class RiskConfig(_Section):
    """The ``[risk]`` table (docs/RISK.md). Absent or ``enabled = false``: risk is off."""

    enabled: bool = False
    currencies: tuple[RiskCurrencyConfig, ...] = ()
    instruments: tuple[RiskInstrumentConfig, ...] = ()
    restricted: tuple[str, ...] = ()  # symbols no account may trade
    kill_switch: KillMode = "active"  # the global switch

    def __post_init__(self) -> None:
        _refuse_duplicates("currencies", [c.code for c in self.currencies], "currency", "code")
        _refuse_duplicates("instruments", [i.symbol for i in self.instruments], "symbol",
                           "symbol")
        _refuse_duplicates("restricted", self.restricted, "symbol")


class VenueListingConfig(_Section):
    """One ``instruments`` entry of a venue written as a table: a configured instrument the venue
    lists, optionally on a coarser grid than the instrument's own. A plain symbol string is the
    same entry without ``tick_size``/``lot_size``."""

    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    # the venue's tick and lot: positive integer multiples of the instrument's tick_size and
    # lot_size (checked against the instruments by check_venues); None: the instrument's own
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size"):
            value = getattr(self, name)
            if value is not None:
                _check_unit(name, value)


class VenueConfig(_Section):
    """One ``[[venues]]`` entry (docs/ROUTING.md, "Venues and books"): a venue the engine hosts,
    its fees, its routing priority and the instruments it lists. The **primary** venue of an
    instrument is the first venue, in this list's order, that lists it; an instrument no venue
    lists keeps one book on the default venue (0) and cannot be routed."""

    id: Annotated[int, msgspec.Meta(ge=1, le=MAX_VENUE_ID)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    # millionths of the notional of each fill; negative: a rebate
    maker_fee: Annotated[int, msgspec.Meta(ge=-MAX_VENUE_FEE_PPM, le=MAX_VENUE_FEE_PPM)]
    taker_fee: Annotated[int, msgspec.Meta(ge=-MAX_VENUE_FEE_PPM, le=MAX_VENUE_FEE_PPM)]
    # routing ties: a lower value ranks first, then the lower venue id
    priority: Annotated[int, msgspec.Meta(ge=INT32_MIN, le=INT32_MAX)] = 0
    # "AAPL" or {symbol = "AAPL", tick_size = "0.05", lot_size = "100"}, at most once each
    instruments: tuple[str | VenueListingConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_name("name", self.name, "venue name")
        if self.name.upper() == "SMART":
            raise ConfigError("'SMART' is reserved: a NewOrder naming SMART is a routed order",
                              path="name")
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.instruments):
            symbol, field = (entry, "") if isinstance(entry, str) else (entry.symbol, ".symbol")
            if isinstance(entry, str) and not entry:
                raise ConfigError("Expected a symbol, got ''", path=f"instruments[{i}]")
            if symbol in seen:
                raise ConfigError(f"duplicate symbol {symbol!r} (already at"
                                  f" instruments[{seen[symbol]}]): a venue lists an instrument"
                                  " at most once", path=f"instruments[{i}]{field}")
            seen[symbol] = i

    @property
    def listings(self) -> tuple[VenueListingConfig, ...]:
        """Every ``instruments`` entry as a VenueListingConfig (a symbol string: no grid)."""
        return tuple(VenueListingConfig(symbol=e) if isinstance(e, str) else e
                     for e in self.instruments)


class EngineConfig(_Section):
    """The whole engine configuration. Later sections (venues, ...) are added here as
    optional tables with defaults, so older files stay valid."""

    instruments: Annotated[tuple[InstrumentConfig, ...], msgspec.Meta(min_length=1)]
    journal: JournalConfig = JournalConfig()
    gateway: GatewayConfig = GatewayConfig()
    accounts: tuple[AccountConfig, ...] = ()
    risk: RiskConfig = RiskConfig()
    venues: tuple[VenueConfig, ...] = ()  # none: every instrument on the default venue

    def __post_init__(self) -> None:
        _refuse_duplicates("venues", [v.id for v in self.venues], "venue id", "id")
        _refuse_duplicates("venues", [v.name for v in self.venues], "venue name", "name")
        seen_accounts: dict[int, int] = {}
        for i, acct in enumerate(self.accounts):
            if acct.id in seen_accounts:
                raise ConfigError(f"duplicate account id {acct.id}"
                                  f" (already used by $.accounts[{seen_accounts[acct.id]}])",
                                  path=f"accounts[{i}].id")
            seen_accounts[acct.id] = i
        seen_ids: dict[int, int] = {}
        seen_symbols: dict[str, int] = {}
        for i, inst in enumerate(self.instruments):
            if inst.id in seen_ids:
                raise ConfigError(f"duplicate instrument id {inst.id}"
                                  f" (already used by $.instruments[{seen_ids[inst.id]}])",
                                  path=f"instruments[{i}].id")
            if inst.symbol in seen_symbols:
                raise ConfigError(f"duplicate symbol {inst.symbol!r}"
                                  f" (already used by $.instruments[{seen_symbols[inst.symbol]}])",
                                  path=f"instruments[{i}].symbol")
            seen_ids[inst.id] = i
            seen_symbols[inst.symbol] = i


# -- field checks (raised from __post_init__; msgspec prefixes the struct's location) -----------

def _check_positive(name: str, value: Decimal) -> None:
    if not value.is_finite() or value <= 0:
        raise ConfigError(f"Expected a positive decimal, got {str(value)!r}", path=name)


def _check_unit(name: str, value: Decimal) -> None:
    _check_positive(name, value)
    if value.normalize(_WIDE).as_tuple().exponent < -MAX_DECIMAL_PLACES:
        raise ConfigError(f"Expected at most {MAX_DECIMAL_PLACES} decimal places,"
                          f" got {str(value)!r}", path=name)
    if value.adjusted() > MAX_ADJUSTED_EXPONENT:
        raise ConfigError(f"Expected a value below 1E+{MAX_ADJUSTED_EXPONENT + 1},"
                          f" got {str(value)!r}", path=name)


def _lots_on_grid(name: str, value: Decimal, lot_size: Decimal) -> int:
    from .instruments import GridError, exact_units  # the one place that divides by a grid

    try:
        return exact_units(value, lot_size, what="quantity")
    except GridError as e:
        expected = (f"at most 2**63-1 lots of {lot_size}" if e.reason is Reason.EDGE_BAD_VALUE
                    else f"a multiple of lot_size {lot_size}")
        raise ConfigError(f"Expected {expected}, got {str(value)!r}", path=name) from e


# normalize() in this context never rounds (no division happens in it).
_WIDE = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                        traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow])


# -- loading ------------------------------------------------------------------------------------

def load_config(path: str | os.PathLike[str]) -> EngineConfig:
    """Read and validate a TOML config file; any problem raises ConfigError naming the file."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror or e}", source=source) from e
    return parse_config(data, source=source)


def default_config() -> EngineConfig:
    """The embedded default configuration (``engine/default_config.toml``)."""
    ref = resources.files("engine").joinpath(DEFAULT_CONFIG_RESOURCE)
    return parse_config(ref.read_bytes(), source=f"<engine>/{DEFAULT_CONFIG_RESOURCE}")


def parse_config(text: str | bytes, source: str = "<string>") -> EngineConfig:
    """Decode and validate TOML text; any problem raises ConfigError naming ``source`` and field."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"not UTF-8 text: {e}", source=source) from e
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"TOML syntax error: {e}", source=source) from e
    # Floats first: a float where a decimal belongs is the error, whatever it converts to.
    _refuse_floats(raw, mi.type_info(EngineConfig), "$", source)
    try:
        # Exactly what msgspec.toml.decode(text, type=EngineConfig) does, without parsing twice.
        config = msgspec.convert(raw, type=EngineConfig, str_keys=True,
                                 builtin_types=(datetime.datetime, datetime.date, datetime.time))
    except msgspec.ValidationError as e:
        raise _explain(e, raw, source) from None
    if config.risk.enabled:
        check_risk(config, source=source)
    if config.venues:
        check_venues(config, source=source)
    return config


def check_risk(config: EngineConfig, source: str | None = None) -> None:
    """The cross-checks of the ``[risk]`` table against the instruments and the accounts
    (currencies listed, symbols known, decimals, grids, exact cash amounts, fx in range):
    ConfigError naming the field. ``parse_config`` runs it when risk is enabled;
    ``engine.risk.setup.build_tables`` runs it always."""
    from .risk.setup import RiskSetup  # it converts decimals to ticks, lots and cash units

    try:
        RiskSetup(config)
    except ConfigError as e:
        if source is None or e.source is not None:
            raise
        raise ConfigError(e.detail, path=e.path, source=source) from None


def check_venues(config: EngineConfig, source: str | None = None) -> None:
    """The cross-checks of ``[[venues]]`` against the instruments (symbols configured, venue
    grids integer multiples of the instruments'): ConfigError naming the field.
    ``parse_config`` runs it when there are venues; ``engine.venues.VenueSet.from_config``
    runs it always."""
    from .venues import VenueSet  # it converts the venue grids to multiples of ticks and lots

    try:
        VenueSet.from_config(config)
    except ConfigError as e:
        if source is None or e.source is not None:
            raise
        raise ConfigError(e.detail, path=e.path, source=source) from None


# -- error messages -----------------------------------------------------------------------------

_LOCATION = re.compile(r"^(?P<msg>.*) - at `(?P<path>\$[^`]*)`$", re.S)
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def _join(path: str, rel: str) -> str:
    return path + rel if rel.startswith("[") else f"{path}.{rel}"


def _explain(error: msgspec.ValidationError, raw: Any, source: str) -> ConfigError:
    """Turn msgspec's ``message - at `$.a[0].b``` into ``source: $.a[0].b: message``."""
    m = _LOCATION.match(str(error))
    msg, path = (m["msg"], m["path"]) if m else (str(error), "$")
    cause = error.__cause__
    if isinstance(cause, ConfigError):  # raised by a __post_init__ for one of its fields
        return ConfigError(cause.detail, path=_join(path, cause.path) if cause.path else path,
                           source=source)
    if (u := re.match(r"Object contains unknown field `(.+)`$", msg)):
        field = u[1]
        known = _field_names(_type_at(path))
        hint = difflib.get_close_matches(field, known, n=1)
        detail = f"unknown field {field!r}"
        detail += f" (did you mean {hint[0]!r}?)" if hint else ""
        if known:
            detail += f"; allowed: {', '.join(known)}"
        return ConfigError(detail, path=_join(path, field), source=source)
    if (r := re.match(r"Object missing required field `(.+)`$", msg)):
        return ConfigError("missing required field", path=_join(path, r[1]), source=source)
    if msg.startswith("Invalid enum value"):
        t = _type_at(path)
        if isinstance(t, mi.LiteralType):
            msg += f" (expected one of: {', '.join(map(str, t.values))})"
        return ConfigError(msg, path=path, source=source)
    if msg.startswith("Expected `str | object`") and _type_at(path) is not None and (
            _struct_in(_type_at(path)) == mi.type_info(VenueListingConfig)):
        msg = ("Expected a symbol such as \"AAPL\" or a table such as"
               " {symbol = \"AAPL\", tick_size = \"0.05\", lot_size = \"100\"}"
               + msg[len("Expected `str | object`"):])
    if msg == "Invalid decimal string":
        msg = "Expected a decimal string such as \"0.01\""
    if msg.startswith("Expected") and ", got" not in msg:
        found, value = _raw_at(raw, path)
        if found:
            msg += f", got {value!r}"
    return ConfigError(msg, path=path, source=source)


def _steps(path: str) -> list[str | int]:
    return [name if idx == "" else int(idx) for name, idx in _PATH_TOKEN.findall(path[1:])]


def _raw_at(raw: Any, path: str) -> tuple[bool, Any]:
    node = raw
    for step in _steps(path):
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _unwrap(t: mi.Type) -> mi.Type:
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        inner = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(inner) == 1:
            return _unwrap(inner[0])
    return t


def _struct_in(t: mi.Type | None) -> mi.Type | None:
    """The struct of a union such as ``str | VenueListingConfig`` (a table there is that
    struct); any other type unchanged."""
    if isinstance(t, mi.UnionType):
        structs = [x for x in t.types if isinstance(x, mi.StructType)]
        if len(structs) == 1:
            return structs[0]
    return t


def _type_at(path: str) -> mi.Type | None:
    t: mi.Type | None = mi.type_info(EngineConfig)
    for step in _steps(path):
        t = _unwrap(t)
        if isinstance(step, int) and isinstance(t, (mi.ListType, mi.VarTupleType)):
            t = t.item_type
        elif isinstance(step, str) and isinstance(t := _struct_in(t), mi.StructType):
            t = next((f.type for f in t.fields if f.encode_name == step), None)
        else:
            return None
    return _unwrap(t) if t is not None else None


def _field_names(t: mi.Type | None) -> list[str]:
    t = _struct_in(t)
    return [f.encode_name for f in t.fields] if isinstance(t, mi.StructType) else []


def _refuse_floats(raw: Any, t: mi.Type, path: str, source: str) -> None:
    """A TOML float where a decimal is expected is refused: binary floats are not exact."""
    t = _unwrap(t)
    if isinstance(raw, dict):
        t = _struct_in(t)
    if isinstance(t, mi.DecimalType) or (
            isinstance(t, mi.UnionType) and any(isinstance(x, mi.DecimalType) for x in t.types)):
        if isinstance(raw, float):
            field = path.rsplit(".", 1)[-1]
            raise ConfigError(f"Expected a decimal string, got the TOML float {raw!r};"
                              f" binary floats are not exact, write it quoted:"
                              f" {field} = \"{raw!r}\"",
                              path=path, source=source)
    elif isinstance(t, mi.StructType) and isinstance(raw, dict):
        for f in t.fields:
            if f.encode_name in raw:
                _refuse_floats(raw[f.encode_name], f.type, f"{path}.{f.encode_name}", source)
    elif isinstance(t, (mi.ListType, mi.VarTupleType)) and isinstance(raw, list):
        for i, item in enumerate(raw):
            _refuse_floats(item, t.item_type, f"{path}[{i}]", source)
    elif isinstance(t, mi.DictType) and isinstance(raw, dict):
        for key, item in raw.items():
            _refuse_floats(item, t.value_type, f"{path}.{key}", source)
