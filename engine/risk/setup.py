"""The config's ``[risk]`` table and the accounts' risk fields as the integer tables the core
takes (docs/RISK.md, "Units", "State" and "Configuration").

Owns the exact conversion of the risk config's decimals into cash units, lots, ticks, ``k`` and
``fx``, and the cross-checks that need the instruments (ConfigError naming the field). Must
never round, never read a clock, and never import the compiled core.
"""
from __future__ import annotations

import decimal
import difflib
import hashlib
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np

from ..config import AccountConfig, ConfigError, EngineConfig
from ..instruments import GridError, Instrument, InstrumentSet, to_decimal
from ..schema import INT64_MAX, RISK_TABLES, UNLIMITED, KillSwitch, Reason

__all__ = ["RiskSetup", "build_tables", "FX_SCALE", "MIN_DERIVED_DECIMALS", "DIGEST_TAG"]

INT64_MIN = -(1 << 63)
FX_SCALE = 18               # fx = rate * 10**(FX_SCALE - decimals): value per cash unit
MIN_DERIVED_DECIMALS = 2    # a derived currency has at least cents
MAX_DECIMALS = 18
DIGEST_TAG = b"engine.risk.v1\n"

# Every operation below is exact or raises: nothing is ever rounded.
_EXACT = decimal.Context(prec=400, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                         traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                                decimal.Overflow, decimal.Inexact])

_KILL = {"active": KillSwitch.ACTIVE, "reduce_only": KillSwitch.REDUCE_ONLY,
         "killed": KillSwitch.KILLED}


class _NotWhole(ValueError):
    pass


class _TooBig(ValueError):
    pass


def _scaled(value: Decimal, places: int) -> int:
    """``value * 10**places`` as an int64, exactly: _NotWhole if it is not an integer, _TooBig
    if it is beyond int64."""
    if not value.is_finite():
        raise _NotWhole(f"{value} is not finite")
    if value == 0:
        return 0
    if value.adjusted() + places > 19:          # |value * 10**places| >= 10**20 > int64
        raise _TooBig(str(value))
    x = value.scaleb(places, context=_EXACT)
    if x != x.to_integral_value(context=_EXACT):
        raise _NotWhole(str(value))
    n = int(x)
    if not INT64_MIN <= n <= INT64_MAX:
        raise _TooBig(str(value))
    return n


def _places(value: Decimal) -> int:
    """The decimal places ``value`` needs (0.3125 -> 4, 12.50 -> 1, 1E+3 -> 0)."""
    return max(0, -value.normalize(_EXACT).as_tuple().exponent)


def _text(d: Decimal) -> str:
    """A canonical plain string for a decimal (no exponent, no trailing zeros)."""
    n = d.normalize(_EXACT)
    if n.as_tuple().exponent > 0:
        n = n.quantize(Decimal(1), context=_EXACT)
    return format(n, "f")


class _Account:
    """One account's risk rows, as Python ints (the tables are built from these)."""

    __slots__ = ("id", "base", "kill", "max_open_orders", "rate_per_s", "rate_burst",
                 "max_order_notional", "cash", "credit", "positions")

    def __init__(self, acct: AccountConfig, base: int, n_ccy: int) -> None:
        self.id = acct.id
        self.base = base
        self.kill = int(_KILL[acct.kill_switch])
        self.max_open_orders = UNLIMITED if acct.max_open_orders is None else acct.max_open_orders
        self.rate_per_s = acct.rate_per_s
        self.rate_burst = (acct.rate_burst if acct.rate_burst is not None else acct.rate_per_s)
        self.max_order_notional = UNLIMITED  # every instrument's, unless its entry sets one
        self.cash = [0] * n_ccy
        self.credit = [0] * n_ccy
        self.positions: list[dict[str, int]] = []


# What RiskSetup._build() sets (built on first use when risk is off).
_BUILT = frozenset({
    "kill", "_inst_path", "currencies", "_ccy", "decimals", "rates", "fx", "_inst",
    "_inst_index", "inst_ccy", "inst_k", "band_bps", "ref_price", "fee_ppm", "restricted",
    "_accounts", "_acct_index"})

_POSITION_FIELDS = ("position", "cost", "max_order_qty", "max_order_notional", "position_limit",
                    "short_limit", "restricted")


class RiskSetup:
    """The risk config of an EngineConfig, checked and in integers, over an instrument set.

    ``RiskSetup(config)`` checks every cross-reference (ConfigError naming the field, e.g.
    ``$.accounts[0].instruments[1].position``); the instruments default to the config's. With
    risk enabled it checks at once; with risk off (when an engine needs nothing but
    ``enabled``) only when something else is first asked of it, such as ``tables()``. Rows:
    instruments in ascending id (the order the engine registers them), accounts in ascending
    id; every account when risk is enabled, else only those with a risk field set. Currencies
    are numbered in the config's order.

    For the edges: ``currencies`` (codes by index), ``decimals``, ``cash_units`` /
    ``cash_amount`` (Decimal <-> int cash units), ``fx_units`` (an FX rate as the ``fx``
    value), ``money`` (display), ``k``; for a journal manifest: ``canonical()`` and
    ``digest()``.
    """

    def __init__(self, config: EngineConfig, instruments: InstrumentSet | None = None) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"expected an EngineConfig, got {type(config).__name__}")
        if instruments is None:
            instruments = InstrumentSet.from_config(config)
        elif not isinstance(instruments, InstrumentSet):
            raise TypeError(f"expected an InstrumentSet, got {type(instruments).__name__}")
        self.enabled: bool = config.risk.enabled
        self.instruments = instruments
        self._config = config
        self._built = False
        if self.enabled:
            self._build()

    def __getattr__(self, name: str) -> Any:
        # Only called for an attribute not set yet: with risk off, the first use of what
        # _build() sets builds (and checks) it.
        d = self.__dict__
        if name in _BUILT and not d.get("_built", True) and not d.get("_building"):
            d["_building"] = True
            try:
                self._build()
            except BaseException:
                for key in _BUILT:          # nothing half-built: the next use raises again
                    d.pop(key, None)
                raise
            finally:
                d["_building"] = False
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build(self) -> None:
        config, instruments = self._config, self.instruments
        risk = config.risk
        self.kill: int = int(_KILL[risk.kill_switch])
        self._inst_path = {inst.symbol: f"$.instruments[{i}]"
                           for i, inst in enumerate(config.instruments)}
        # -- currencies ---------------------------------------------------------------------
        self.currencies: tuple[str, ...] = tuple(c.code for c in risk.currencies)
        self._ccy = {code: c for c, code in enumerate(self.currencies)}
        for inst in instruments:
            if inst.currency not in self._ccy:
                raise ConfigError(
                    f"currency {inst.currency!r} of {inst.symbol} is not listed in"
                    f" $.risk.currencies ({self._listed()}): add a [[risk.currencies]] entry"
                    f" with code = {inst.currency!r}",
                    path=self._inst_path.get(inst.symbol, f"instrument {inst.symbol}")
                    + ".currency")
        self.decimals: tuple[int, ...] = tuple(self._decimals(c, cfg.decimals)
                                               for c, cfg in enumerate(risk.currencies))
        self.rates: tuple[Decimal, ...] = tuple(c.rate for c in risk.currencies)
        self.fx: tuple[int, ...] = tuple(
            self._fx(c.rate, self.decimals[n], f"$.risk.currencies[{n}].rate")
            for n, c in enumerate(risk.currencies))
        # -- instruments --------------------------------------------------------------------
        self._inst: list[Instrument] = list(instruments)
        self._inst_index = {inst.id: i for i, inst in enumerate(self._inst)}
        self.inst_ccy: list[int] = [self._ccy[inst.currency] for inst in self._inst]
        self.inst_k: list[int] = [self._k(inst) for inst in self._inst]
        n_inst = len(self._inst)
        self.band_bps = [0] * n_inst
        self.ref_price = [0] * n_inst
        self.fee_ppm = [0] * n_inst
        self.restricted = [0] * n_inst
        for n, entry in enumerate(risk.instruments):
            where = f"$.risk.instruments[{n}]"
            inst = self._symbol(entry.symbol, f"{where}.symbol")
            i = self._inst_index[inst.id]
            self.band_bps[i] = entry.price_band_bps
            self.fee_ppm[i] = entry.fee_ppm
            if entry.reference_price is not None:
                self.ref_price[i] = self._ticks(inst, entry.reference_price,
                                                f"{where}.reference_price")
        for n, symbol in enumerate(risk.restricted):
            inst = self._symbol(symbol, f"$.risk.restricted[{n}]")
            self.restricted[self._inst_index[inst.id]] = 1
        # -- accounts -----------------------------------------------------------------------
        chosen = [(n, a) for n, a in enumerate(config.accounts) if self.enabled or a.has_risk]
        chosen.sort(key=lambda na: na[1].id)
        self._accounts = [self._account(n, a) for n, a in chosen]
        self._acct_index = {a.id: n for n, a in enumerate(self._accounts)}
        self._built = True

    # -- checks and conversions while building -------------------------------------------------
    def _listed(self) -> str:
        return "listed: " + ", ".join(self.currencies) if self.currencies else "none listed"

    def _currency(self, code: str, path: str) -> int:
        c = self._ccy.get(code)
        if c is None:
            raise ConfigError(f"currency {code!r} is not listed in $.risk.currencies"
                              f" ({self._listed()})", path=path)
        return c

    def _symbol(self, symbol: str, path: str) -> Instrument:
        inst = self.instruments.get(symbol) if isinstance(symbol, str) else None
        if inst is None:
            symbols = self.instruments.symbols
            hint = difflib.get_close_matches(symbol, symbols, n=1)
            known = ", ".join(symbols[:20]) + (", ..." if len(symbols) > 20 else "")
            raise ConfigError(f"unknown symbol {symbol!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; the instruments are: {known}", path=path)
        return inst

    def _unit_value(self, inst: Instrument) -> Decimal:
        """tick_size * lot_size * multiplier: the value of one tick x lot, in its currency."""
        return _EXACT.multiply(_EXACT.multiply(inst.tick_size, inst.lot_size), inst.multiplier)

    def _decimals(self, c: int, given: int | None) -> int:
        code = self.currencies[c]
        users = [inst for inst in self.instruments if inst.currency == code]
        if given is None:
            need = max([MIN_DERIVED_DECIMALS] + [_places(self._unit_value(i)) for i in users])
            if need > MAX_DECIMALS:
                worst = max(users, key=lambda i: _places(self._unit_value(i)))
                raise ConfigError(
                    f"cannot derive decimals: {worst.symbol}'s tick_size x lot_size x"
                    f" multiplier = {_text(self._unit_value(worst))} {code} needs {need}"
                    f" decimal places, more than {MAX_DECIMALS}",
                    path=f"$.risk.currencies[{c}]")
            return need
        for inst in users:
            v = self._unit_value(inst)
            if _places(v) > given:
                raise ConfigError(
                    f"Expected decimals that make every k = tick_size x lot_size x multiplier"
                    f" x 10**decimals an integer: {inst.symbol} has {_text(v)} {code} per tick"
                    f" x lot, which needs decimals >= {_places(v)}, got {given}",
                    path=f"$.risk.currencies[{c}].decimals")
        return given

    def _k(self, inst: Instrument) -> int:
        c = self._ccy[inst.currency]
        d = self.decimals[c]
        try:
            k = _scaled(self._unit_value(inst), d)
        except _TooBig:
            k = 0
        if not 1 <= k <= INT64_MAX:
            raise ConfigError(
                f"k of {inst.symbol} ({_text(self._unit_value(inst))} {inst.currency} per tick"
                f" x lot at {d} decimals) is beyond int64: use fewer decimals",
                path=f"$.risk.currencies[{c}].decimals")
        return k

    @staticmethod
    def _fx(rate: Decimal, decimals: int, path: str) -> int:
        shift = FX_SCALE - decimals
        try:
            fx = _scaled(rate, shift)
        except _NotWhole:
            raise ConfigError(
                f"Expected a rate with at most {shift} decimal places (fx = rate x"
                f" 10**(18 - decimals) = rate x 10**{shift} must be an integer),"
                f" got {str(rate)!r}", path=path) from None
        except _TooBig:
            fx = INT64_MAX + 1
        if not 1 <= fx <= INT64_MAX:
            raise ConfigError(
                f"Expected fx = rate x 10**{shift} within int64 (a rate of at most"
                f" {_text(Decimal(INT64_MAX).scaleb(-shift, context=_EXACT))}), got"
                f" {str(rate)!r}", path=path)
        return fx

    def _ticks(self, inst: Instrument, price: Decimal, path: str) -> int:
        try:
            ticks = inst.price_to_ticks(price)
        except GridError as e:
            raise ConfigError(f"Expected a price on {inst.symbol}'s tick grid"
                              f" ({inst.tick_size}): {e.message}", path=path) from None
        if ticks <= 0:
            raise ConfigError(f"Expected a positive price, got {str(price)!r}", path=path)
        return ticks

    @staticmethod
    def _lots(inst: Instrument, qty: Decimal, path: str) -> int:
        try:
            return inst.qty_to_lots(qty)
        except GridError as e:
            raise ConfigError(f"Expected a quantity on {inst.symbol}'s lot grid"
                              f" ({inst.lot_size}): {e.message}", path=path) from None

    def _units(self, amount: Decimal, c: int, path: str, what: str = "amount") -> int:
        d, code = self.decimals[c], self.currencies[c]
        try:
            return _scaled(amount, d)
        except _NotWhole:
            raise ConfigError(f"Expected {what} in whole cash units of {code} (10**-{d}:"
                              f" at most {d} decimal places), got {str(amount)!r}",
                              path=path) from None
        except _TooBig:
            raise ConfigError(f"Expected {what} within int64 cash units of {code}"
                              f" (10**-{d}), got {str(amount)!r}", path=path) from None

    def _account(self, n: int, acct: AccountConfig) -> _Account:
        where = f"$.accounts[{n}]"
        if acct.base_currency is None:
            why = ("when risk is enabled" if self.enabled
                   else "for an account with risk settings")
            raise ConfigError(f"missing base_currency: required {why} (the currency of its"
                              f" order notional limits), e.g. base_currency = \"USD\"",
                              path=f"{where}.base_currency")
        base = self._currency(acct.base_currency, f"{where}.base_currency")
        row = _Account(acct, base, len(self.currencies))
        if acct.max_order_notional is not None:
            row.max_order_notional = self._units(acct.max_order_notional, base,
                                           f"{where}.max_order_notional", "max_order_notional")
        for j, cash in enumerate(acct.cash):
            c = self._currency(cash.currency, f"{where}.cash[{j}].currency")
            row.cash[c] = self._units(cash.amount, c, f"{where}.cash[{j}].amount")
            row.credit[c] = self._units(cash.credit, c, f"{where}.cash[{j}].credit", "credit")
        restricted = set()
        for j, symbol in enumerate(acct.restricted):
            restricted.add(self._symbol(symbol, f"{where}.restricted[{j}]").id)
        positions = [dict(position=0, cost=0, max_order_qty=UNLIMITED,
                          max_order_notional=row.max_order_notional,
                          position_limit=UNLIMITED, short_limit=0,
                          restricted=int(inst.id in restricted))
                     for inst in self._inst]
        for j, entry in enumerate(acct.instruments):
            at = f"{where}.instruments[{j}]"
            inst = self._symbol(entry.symbol, f"{at}.symbol")
            p = positions[self._inst_index[inst.id]]
            p["position"] = self._lots(inst, entry.position, f"{at}.position")
            if entry.avg_price is not None:
                value = _EXACT.multiply(_EXACT.multiply(entry.avg_price, abs(entry.position)),
                                        inst.multiplier)
                c, d = self._ccy[inst.currency], self.decimals[self._ccy[inst.currency]]
                try:
                    p["cost"] = _scaled(value, d)
                except ValueError as e:
                    how = ("a whole number of cash units" if isinstance(e, _NotWhole)
                           else "within int64 cash units")
                    raise ConfigError(
                        f"Expected the position's cost, avg_price x |position| x multiplier,"
                        f" {how} of {inst.currency} (10**-{d}), got {entry.avg_price} x"
                        f" {abs(entry.position)} x {inst.multiplier} = {_text(value)}",
                        path=f"{at}.avg_price") from None
            if entry.max_order_qty is not None:
                p["max_order_qty"] = self._lots(inst, entry.max_order_qty, f"{at}.max_order_qty")
            if entry.max_order_notional is not None:
                p["max_order_notional"] = self._units(entry.max_order_notional, base,
                                                      f"{at}.max_order_notional",
                                                      "max_order_notional")
            if entry.position_limit is not None:
                p["position_limit"] = self._lots(inst, entry.position_limit,
                                                 f"{at}.position_limit")
            p["short_limit"] = self._lots(inst, entry.short_limit, f"{at}.short_limit")
        row.positions = positions
        return row

    # -- the tables ----------------------------------------------------------------------------
    def tables(self) -> dict[str, np.ndarray]:
        """The six tables (RISK_TABLES order and dtypes), fresh arrays on every call, as a core
        without orders takes them: no open orders, full token buckets, no trades yet."""
        accts, n_inst, n_ccy = self._accounts, len(self._inst), len(self.currencies)
        out = {name: np.zeros(n, dtype=RISK_TABLES[name]) for name, n in (
            ("accounts", len(accts)), ("positions", len(accts) * n_inst),
            ("cash", len(accts) * n_ccy), ("instruments", n_inst), ("currencies", n_ccy),
            ("global", 1))}
        a_t, p_t, c_t = out["accounts"], out["positions"], out["cash"]
        for a, acct in enumerate(accts):
            r = a_t[a]
            r["account"], r["base_ccy"], r["kill"] = acct.id, acct.base, acct.kill
            r["max_open_orders"] = acct.max_open_orders
            r["rate_per_s"], r["rate_burst"] = acct.rate_per_s, acct.rate_burst
            r["tokens_nano"] = acct.rate_burst * 10**9
            for c in range(n_ccy):
                c_t[a * n_ccy + c]["cash"] = acct.cash[c]
                c_t[a * n_ccy + c]["credit"] = acct.credit[c]
            for i, p in enumerate(acct.positions):
                row = p_t[a * n_inst + i]
                for field in _POSITION_FIELDS:
                    row[field] = p[field]
        i_t = out["instruments"]
        for i, inst in enumerate(self._inst):
            r = i_t[i]
            r["instrument"], r["ccy"], r["k"] = inst.id, self.inst_ccy[i], self.inst_k[i]
            r["band_bps"], r["ref_price"] = self.band_bps[i], self.ref_price[i]
            r["fee_ppm"], r["restricted"] = self.fee_ppm[i], self.restricted[i]
        out["currencies"]["fx"] = self.fx
        out["global"]["kill"] = self.kill
        return out

    # -- indexes -------------------------------------------------------------------------------
    @property
    def account_ids(self) -> list[int]:
        """The accounts with risk rows, ascending (row a of ``accounts``)."""
        return [a.id for a in self._accounts]

    def account_index(self, account: int) -> int:
        """The row of an account in ``accounts``; KeyError if it has no risk rows."""
        try:
            return self._acct_index[account]
        except KeyError:
            raise KeyError(f"account {account!r} has no risk record") from None

    def instrument_index(self, key: int | str) -> int:
        """The row of an instrument (id or symbol) in ``instruments``; KeyError if unknown."""
        return self._inst_index[self.instruments[key].id]

    def currency_index(self, ccy: int | str) -> int:
        """A currency's index from its code (or an index, checked); KeyError if unknown."""
        if isinstance(ccy, str):
            if ccy in self._ccy:
                return self._ccy[ccy]
        elif isinstance(ccy, int) and not isinstance(ccy, bool) and 0 <= ccy < len(self.currencies):
            return int(ccy)
        raise KeyError(f"unknown currency {ccy!r} ({self._listed()})")

    def currency_code(self, ccy: int | str) -> str:
        return self.currencies[self.currency_index(ccy)]

    def currency_decimals(self, ccy: int | str) -> int:
        """The decimal places of a currency's cash unit."""
        return self.decimals[self.currency_index(ccy)]

    def k(self, key: int | str) -> int:
        """Cash units of the instrument's currency per tick x lot."""
        return self.inst_k[self.instrument_index(key)]

    # -- conversions for the edges -------------------------------------------------------------
    def cash_units(self, amount: Any, ccy: int | str, what: str = "amount") -> int:
        """A decimal amount of a currency (Decimal, int or str; never a float) as int64 cash
        units, exactly; GridError(EDGE_BAD_VALUE) if it is not a whole number of them or is
        beyond int64."""
        c = self.currency_index(ccy)
        d = to_decimal(amount, what)
        try:
            return _scaled(d, self.decimals[c])
        except _NotWhole:
            raise GridError(Reason.EDGE_BAD_VALUE,
                            f"{what} {d} is not a whole number of cash units of"
                            f" {self.currencies[c]} (at most {self.decimals[c]} decimal"
                            f" places)") from None
        except _TooBig:
            raise GridError(Reason.EDGE_BAD_VALUE,
                            f"{what} {d} is beyond the int64 range of cash units of"
                            f" {self.currencies[c]}") from None

    def cash_amount(self, units: int, ccy: int | str) -> Decimal:
        """Int cash units as the exact decimal amount, with the currency's decimal places."""
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)):
            raise TypeError(f"cash units must be an int, got {units!r}")
        return Decimal(int(units)).scaleb(-self.currency_decimals(ccy), context=_EXACT)

    def money(self, units: int, ccy: int | str) -> str:
        """``"1250.000000 USD"``: cash units as an exact decimal amount and the code."""
        return f"{self.cash_amount(units, ccy):f} {self.currency_code(ccy)}"

    def fx_units(self, rate: Any, ccy: int | str) -> int:
        """An FX rate (the value of one unit of ``ccy`` in the common currency, as in the
        config) as the ``fx`` value of SET_RISK FX_RATE: ``rate * 10**(18 - decimals)``;
        GridError(EDGE_BAD_VALUE) unless it is a positive int64."""
        c = self.currency_index(ccy)
        d = to_decimal(rate, "rate")
        try:
            return self._fx(d, self.decimals[c], "rate")
        except ConfigError as e:
            raise GridError(Reason.EDGE_BAD_VALUE,
                            f"rate of {self.currencies[c]}: {e.detail}") from None

    # -- identity ------------------------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The risk config as plain ints and strings, in table order: what the tables start
        from. Position rows equal to the account's defaults are left out."""
        insts = [{"id": inst.id, "symbol": inst.symbol, "ccy": self.currencies[self.inst_ccy[i]],
                  "k": self.inst_k[i], "band_bps": self.band_bps[i],
                  "ref_price": self.ref_price[i], "fee_ppm": self.fee_ppm[i],
                  "restricted": self.restricted[i]}
                 for i, inst in enumerate(self._inst)]
        accounts = []
        for acct in self._accounts:
            default = dict(position=0, cost=0, max_order_qty=UNLIMITED,
                           max_order_notional=acct.max_order_notional, position_limit=UNLIMITED,
                           short_limit=0, restricted=0)
            rows = [{"instrument": self._inst[i].id, **p}
                    for i, p in enumerate(acct.positions) if p != default]
            accounts.append({
                "account": acct.id, "base_ccy": self.currencies[acct.base], "kill": acct.kill,
                "max_open_orders": acct.max_open_orders, "rate_per_s": acct.rate_per_s,
                "rate_burst": acct.rate_burst, "max_order_notional": acct.max_order_notional,
                "cash": [{"ccy": code, "cash": acct.cash[c], "credit": acct.credit[c]}
                         for c, code in enumerate(self.currencies)
                         if acct.cash[c] or acct.credit[c]],
                "positions": rows,
            })
        return {
            "enabled": self.enabled,
            "currencies": [{"code": code, "decimals": self.decimals[c],
                            "rate": _text(self.rates[c]), "fx": self.fx[c]}
                           for c, code in enumerate(self.currencies)],
            "instruments": insts,
            "accounts": accounts,
            "kill": self.kill,
        }

    def digest(self) -> str:
        """Stable hex BLAKE2b-256 of ``canonical()`` (for a journal manifest)."""
        return hashlib.blake2b(DIGEST_TAG + msgspec.json.encode(self.canonical(), order="sorted"),
                               digest_size=32).hexdigest()

    def __repr__(self) -> str:
        ccys = ", ".join(f"{c}/{d}" for c, d in zip(self.currencies, self.decimals))
        return (f"RiskSetup({'enabled' if self.enabled else 'disabled'}, currencies {ccys},"
                f" {len(self._inst)} instruments, accounts {self.account_ids})")


def build_tables(config: EngineConfig, instruments: InstrumentSet | None = None
                 ) -> dict[str, np.ndarray]:
    """The six risk tables ``Core.enable_risk`` takes, from a config and the engine's
    instruments (ascending id, the order the engine registers them). ConfigError naming the
    field on any problem, whether or not ``[risk]`` is enabled."""
    return RiskSetup(config, instruments).tables()

