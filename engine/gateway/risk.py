"""The gateway's side of pre-trade risk: SetRisk, KillSwitch and Restrict as the core's
SET_RISK, KILL_SWITCH and RESTRICT command records, their RISK events as RiskUpdate, and the
RiskQuery answer (docs/PROTOCOL.md, "Risk"; docs/RISK.md, "Admin commands").

Owns the exact conversion of the risk messages' decimals (instrument units, currency amounts,
prices, FX rates) into the core's integers, with ``engine.risk.setup.RiskSetup`` and the
instruments, and back into decimals for the answers. Must never round: a value that is not
exactly representable is refused (RiskRequestError, nothing reaches the engine). Must never
change engine state: the server sends the records through the engine like any command.
"""
from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

import numpy as np

from ..instruments import GridError, Instrument, InstrumentSet, to_decimal
from ..journal.format import RiskManifest
from ..risk.report import AccountRisk, account_risk
from ..risk.setup import RiskSetup
from ..schema import UNLIMITED, CommandType, Flags, KillSwitch as KillMode, Reason, RiskKind
from .protocol import UNLIMITED_TEXT, KillSwitch, Restrict, RiskUpdate, SetRisk

__all__ = ["RiskGateway", "RiskRequestError", "ACCOUNT_KINDS", "INSTRUMENT_KINDS",
           "CURRENCY_KINDS", "LIMIT_KINDS"]

# one command record, as COMMAND_DTYPE lays it out (engine/gateway/server.py has the same)
_CMD = struct.Struct("<qqqqqIIBBBBHH")

_K = RiskKind
# what each kind names: an account, an instrument (account limits: optional, None = every
# instrument), a currency
ACCOUNT_KINDS = frozenset({_K.MAX_ORDER_QTY, _K.MAX_ORDER_NOTIONAL, _K.POSITION_LIMIT,
                           _K.SHORT_LIMIT, _K.MAX_OPEN_ORDERS, _K.RATE, _K.CREDIT,
                           _K.CASH_ADJUST})
PER_INSTRUMENT_LIMITS = frozenset({_K.MAX_ORDER_QTY, _K.MAX_ORDER_NOTIONAL, _K.POSITION_LIMIT,
                                   _K.SHORT_LIMIT})
INSTRUMENT_KINDS = frozenset({_K.PRICE_BAND, _K.REFERENCE_PRICE, _K.FEE})
CURRENCY_KINDS = frozenset({_K.CREDIT, _K.CASH_ADJUST, _K.FX_RATE})
# limits that take "unlimited" (2**63 - 1 in the core)
LIMIT_KINDS = frozenset({_K.MAX_ORDER_QTY, _K.MAX_ORDER_NOTIONAL, _K.POSITION_LIMIT,
                         _K.SHORT_LIMIT, _K.MAX_OPEN_ORDERS})
_QTY_KINDS = frozenset({_K.MAX_ORDER_QTY, _K.POSITION_LIMIT, _K.SHORT_LIMIT})
_COUNT_LIMITS = {  # kind -> (lowest, highest) of an integer value
    _K.MAX_OPEN_ORDERS: (0, UNLIMITED), _K.RATE: (0, 10**9), _K.PRICE_BAND: (0, 1_000_000),
    _K.FEE: (0, 1_000_000)}
_KIND_BY_NAME = {k.name.lower(): k for k in RiskKind}
_MODE_BY_NAME = {m.name.lower(): m for m in KillMode}


class RiskRequestError(ValueError):
    """A risk message the gateway refuses before it reaches the engine: ``reason`` (an
    engine.Reason) and the text for the Reject."""

    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason = Reason(reason)
        self.text = text


def _invalid(text: str) -> RiskRequestError:
    return RiskRequestError(Reason.GATEWAY_INVALID_FIELD, text)


def _plain(d: Decimal) -> str:
    """A decimal as a plain string (no exponent)."""
    return format(d, "f")


class RiskGateway:
    """The risk messages of one server: built from the config's RiskSetup (conversions) and the
    engine's RiskManifest (currencies, decimals and the accounts with a risk record, which are
    fixed for the journal's life)."""

    def __init__(self, setup: RiskSetup, manifest: RiskManifest,
                 instruments: InstrumentSet) -> None:
        self.setup = setup
        self.instruments = instruments
        self.currencies: tuple[str, ...] = tuple(manifest.currencies)
        self.decimals: tuple[int, ...] = tuple(manifest.decimals)
        accounts = manifest.arrays()["accounts"]
        self.base_ccy: dict[int, int] = dict(zip(accounts["account"].tolist(),
                                                 accounts["base_ccy"].tolist()))
        self._ccy = {code: c for c, code in enumerate(self.currencies)}

    # -- checks ----------------------------------------------------------------------------------
    def _account(self, account: int | None, field: str = "account") -> int:
        if account not in self.base_ccy:
            known = ", ".join(str(a) for a in sorted(self.base_ccy))
            raise RiskRequestError(Reason.RISK_UNKNOWN_ACCOUNT,
                                   f"account {account} has no risk record (accounts: {known})"
                                   f" - at `$.{field}`")
        return int(account)  # type: ignore[arg-type]

    def _instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol) if isinstance(symbol, str) else None
        if inst is None:
            raise RiskRequestError(Reason.GATEWAY_UNKNOWN_INSTRUMENT,
                                   f"unknown symbol {symbol!r} - at `$.symbol`")
        return inst

    def _currency(self, code: str) -> int:
        c = self._ccy.get(code)
        if c is None:
            raise _invalid(f"unknown currency {code!r} (the engine's: {', '.join(self.currencies)})"
                           " - at `$.currency`")
        return c

    @staticmethod
    def _decimal(text: str) -> Decimal:
        try:
            return to_decimal(text, "value")
        except GridError as e:
            raise _invalid(f"{e.message} - at `$.value`") from None

    # -- SetRisk -----------------------------------------------------------------------------------
    def set_risk(self, msg: SetRisk) -> bytes:
        """The SET_RISK record of ``msg``; RiskRequestError (nothing to send) if it cannot be
        converted exactly or names what the engine does not have."""
        kind = _KIND_BY_NAME[msg.kind]
        name = msg.kind
        # which fields the kind takes
        if kind in ACCOUNT_KINDS:
            if msg.account == 0:
                raise _invalid(f"{name} needs an account - at `$.account`")
            account = self._account(msg.account)
        else:
            if msg.account != 0:
                what = "a currency" if kind in CURRENCY_KINDS else "an instrument"
                raise _invalid(f"{name} applies to {what}, not an account: leave account out"
                               " (0) - at `$.account`")
            account = 0
        inst: Instrument | None = None
        if kind in INSTRUMENT_KINDS or kind in PER_INSTRUMENT_LIMITS:
            if msg.symbol is None:
                if kind in INSTRUMENT_KINDS:
                    raise _invalid(f"{name} needs a symbol - at `$.symbol`")
            else:
                inst = self._instrument(msg.symbol)
        elif msg.symbol is not None:
            raise _invalid(f"{name} takes no symbol - at `$.symbol`")
        ccy = -1
        if kind in CURRENCY_KINDS:
            if msg.currency is None:
                raise _invalid(f"{name} needs a currency - at `$.currency`")
            ccy = self._currency(msg.currency)
        elif msg.currency is not None:
            raise _invalid(f"{name} takes no currency - at `$.currency`")
        if msg.burst is not None and kind != _K.RATE:
            raise _invalid(f"{name} takes no burst (only rate does) - at `$.burst`")
        # the value
        value = self._value(kind, msg.value, inst, account, ccy)
        aux = 0
        if kind == _K.RATE:
            aux = msg.burst if msg.burst is not None else max(value, 1)
        target = inst.id if inst is not None else (ccy if ccy >= 0 else 0)
        return _CMD.pack(0, 0, 0, aux, value, target, account, CommandType.SET_RISK, 0, int(kind),
                         0, 0, 0)

    def _value(self, kind: RiskKind, text: str, inst: Instrument | None, account: int,
               ccy: int) -> int:
        name = kind.name.lower()
        if text == UNLIMITED_TEXT:
            if kind not in LIMIT_KINDS:
                raise _invalid(f"{name} cannot be {UNLIMITED_TEXT!r} (only the limits"
                               " max_order_qty, max_order_notional, position_limit, short_limit"
                               " and max_open_orders can) - at `$.value`")
            return UNLIMITED
        d = self._decimal(text)
        if kind in _QTY_KINDS:
            if inst is None:
                # every instrument: a count of lots would be a different quantity on each
                if d != 0:
                    raise _invalid(f"{name} for every instrument (no symbol) can only be 0 or"
                                   f" {UNLIMITED_TEXT!r}: the instruments' lot sizes differ, so"
                                   f" name a symbol for {text} - at `$.value`")
                return 0
            try:
                lots = inst.qty_to_lots(d)
            except GridError as e:
                raise _invalid(f"{e.message} - at `$.value`") from None
            if lots < 0:
                raise _invalid(f"{name} must be >= 0, got {text} - at `$.value`")
            return lots
        if kind == _K.REFERENCE_PRICE:
            assert inst is not None
            try:
                ticks = inst.price_to_ticks(d)
            except GridError as e:
                raise _invalid(f"{e.message} - at `$.value`") from None
            if ticks < 0:
                raise _invalid(f"reference_price must be >= 0 (0: none), got {text}"
                               " - at `$.value`")
            return ticks
        if kind in (_K.MAX_ORDER_NOTIONAL, _K.CREDIT, _K.CASH_ADJUST):
            c = self.base_ccy[account] if kind == _K.MAX_ORDER_NOTIONAL else ccy
            try:
                units = self.setup.cash_units(d, c, name)
            except GridError as e:
                raise _invalid(f"{e.message} - at `$.value`") from None
            if kind == _K.CASH_ADJUST:
                if units == 0:
                    raise _invalid("cash_adjust must not be 0 (a deposit > 0 or a withdrawal"
                                   " < 0) - at `$.value`")
            elif units < 0:
                raise _invalid(f"{name} must be >= 0, got {text} - at `$.value`")
            return units
        if kind == _K.FX_RATE:
            if d <= 0:
                raise _invalid(f"fx_rate must be > 0, got {text} - at `$.value`")
            try:
                return self.setup.fx_units(d, ccy)
            except GridError as e:
                raise _invalid(f"{e.message} - at `$.value`") from None
        lo, hi = _COUNT_LIMITS[kind]
        if d != d.to_integral_value():
            raise _invalid(f"{name} must be a whole number, got {text} - at `$.value`")
        n = int(d)
        if not lo <= n <= hi:
            raise _invalid(f"{name} must be in {lo}..{hi}, got {text} - at `$.value`")
        return n

    # -- KillSwitch, Restrict ------------------------------------------------------------------
    def _scope(self, account: int | None, all_accounts: bool, what: str) -> int:
        if all_accounts:
            if account is not None:
                raise _invalid(f"{what}: give account or all_accounts, not both"
                               " - at `$.account`")
            return 0
        if account is None:
            raise _invalid(f"{what}: name an account, or set all_accounts for the global"
                           f" {'switch' if what == 'KillSwitch' else 'list'} - at `$.account`")
        return self._account(account)

    def kill_switch(self, msg: KillSwitch) -> bytes:
        account = self._scope(msg.account, msg.all_accounts, "KillSwitch")
        return _CMD.pack(0, 0, 0, 0, 0, 0, account, CommandType.KILL_SWITCH,
                         int(_MODE_BY_NAME[msg.mode]), 0, 0,
                         int(Flags.ALL_ACCOUNTS) if msg.all_accounts else 0, 0)

    def restrict(self, msg: Restrict) -> bytes:
        inst = self._instrument(msg.symbol)
        account = self._scope(msg.account, msg.all_accounts, "Restrict")
        return _CMD.pack(0, 0, 0, 0, 0, inst.id, account, CommandType.RESTRICT,
                         1 if msg.restricted else 0, 0, 0,
                         int(Flags.ALL_ACCOUNTS) if msg.all_accounts else 0, 0)

    # -- answers -------------------------------------------------------------------------------
    def value_text(self, kind: int, value: int, instrument: int, account: int) -> str:
        """A SET_RISK value as the decimal it stands for (what RiskUpdate echoes)."""
        k = RiskKind(kind)
        if k in LIMIT_KINDS and value == UNLIMITED:
            return UNLIMITED_TEXT
        if k in _QTY_KINDS:
            inst = self.instruments.get(instrument) if instrument else None
            return str(value) if inst is None else _plain(inst.lots_to_qty(value))
        if k == _K.REFERENCE_PRICE:
            return _plain(self.instruments[instrument].ticks_to_price(value))
        if k == _K.MAX_ORDER_NOTIONAL:
            return _plain(self.setup.cash_amount(value, self.base_ccy[account]))
        if k in (_K.CREDIT, _K.CASH_ADJUST):
            return _plain(self.setup.cash_amount(value, instrument))
        if k == _K.FX_RATE:
            rate = Decimal(value).scaleb(-(18 - self.decimals[instrument]))
            n = rate.normalize()
            return _plain(n.quantize(Decimal(1)) if n.as_tuple().exponent > 0 else n)
        return str(value)

    def update(self, msg: Any, seq: int, event: Any, cancelled: int) -> RiskUpdate:
        """The RiskUpdate of the RISK event (an EVENT_DTYPE record) of ``msg``'s command."""
        account, instrument = int(event["account"]), int(event["instrument"])
        reason, qty, price = int(event["reason"]), int(event["qty"]), int(event["price"])
        if isinstance(msg, SetRisk):
            k = RiskKind(reason)
            symbol = currency = ""
            if k in CURRENCY_KINDS:
                currency = self.currencies[instrument]
            elif instrument:
                symbol = self.instruments[instrument].symbol
            return RiskUpdate(seq=seq, request="set_risk", kind=k.name.lower(),
                              account=account if k in ACCOUNT_KINDS else 0, symbol=symbol,
                              currency=currency,
                              value=self.value_text(k, qty, instrument, account),
                              burst=price if k == _K.RATE else 0)
        if isinstance(msg, KillSwitch):
            return RiskUpdate(seq=seq, request="kill_switch",
                              account=0 if msg.all_accounts else account,
                              all_accounts=msg.all_accounts, mode=KillMode(reason).name.lower(),
                              cancelled=cancelled)
        return RiskUpdate(seq=seq, request="restrict", account=0 if msg.all_accounts else account,
                          all_accounts=msg.all_accounts,
                          symbol=self.instruments[instrument].symbol, restricted=bool(reason))

    def view(self, tables: dict[str, np.ndarray] | None, account: int) -> AccountRisk:
        """The RiskQuery answer's view of ``account`` from ``Core.risk_state()``;
        RiskRequestError if risk is off or the account has no risk record."""
        if tables is None:
            raise RiskRequestError(Reason.RISK_DISABLED, "pre-trade risk is off in this engine")
        view = account_risk(tables, self.instruments, self.currencies, self.decimals, account)
        if view is None:
            self._account(account)   # raises, naming the accounts that have one
            raise RiskRequestError(Reason.RISK_UNKNOWN_ACCOUNT,
                                   f"account {account} has no risk record")
        return view


# -- display (the terminal client and `engine risk`) --------------------------------------------

def orders_view(orders: list[Any], instruments: Any) -> list[dict[str, Any]]:
    """Open orders (OrderState, as OrderQuery and RiskReport carry them) in decimals and
    symbols: ``cl_ord_id``, ``symbol``, ``side``, ``price``, ``qty``, ``leaves_qty``,
    ``cum_qty``. ``instruments``: an InstrumentSet or a terminal Catalog (``by_id``)."""
    by_id = instruments.by_id
    get = by_id.get if isinstance(by_id, dict) else instruments.get
    out = []
    for o in orders:
        inst = get(o.instrument)
        if inst is None:
            symbol, price, qty, leaves, cum = (f"instrument {o.instrument}", f"{o.price} ticks",
                                               f"{o.qty} lots", f"{o.leaves_qty} lots",
                                               f"{o.cum_qty} lots")
        else:
            symbol, price = inst.symbol, _plain(inst.ticks_to_price(o.price))
            qty, leaves, cum = (_plain(inst.lots_to_qty(n)) for n in
                                (o.qty, o.leaves_qty, o.cum_qty))
        out.append({"cl_ord_id": o.cl_ord_id, "symbol": symbol, "side": o.side,
                    "price": price if o.price else None, "qty": qty, "leaves_qty": leaves,
                    "cum_qty": cum})
    return out


def format_risk(view: AccountRisk, orders: list[dict[str, Any]] | None = None) -> str:
    """``format_account_risk`` of the view, with ``orders_view`` rows as its open orders."""
    from ..risk.report import format_account_risk

    rows = None if orders is None else [
        {"order_id": o["cl_ord_id"], "symbol": o["symbol"],
         "side": 1 if o["side"] == "buy" else 2, "leaves": o["leaves_qty"],
         "price": o["price"] if o["price"] is not None else "market"} for o in orders]
    return format_account_risk(view, rows)


# -- `engine risk`: the views from a journal or from a live server -------------------------------

class RiskViewError(Exception):
    """Why `engine risk` cannot show what was asked (one line, for stderr)."""


def risk_from_journal(path: str, accounts: list[int] | None = None) -> list[dict[str, Any]]:
    """Replay the journal at ``path`` (from its newest snapshot, if it has one) and return,
    for each of ``accounts`` (default: every account with a risk record, ascending), ``{"seq",
    "risk", "orders"}``: the AccountRisk view after the journal's last command and the
    account's open orders (``orders_view``), as the live RiskQuery would give them then.
    RiskViewError for a directory that is not a journal, a journal without risk, or an account
    without a risk record."""
    from ..journal.format import JournalError
    from ..journal.reader import Journal
    from ..journal.replay import replay
    from .reports import order_states

    try:
        journal = Journal(path)
        manifest = journal.manifest.risk
        if manifest is None:
            raise RiskViewError(f"{path}: the journal was written without pre-trade risk"
                                " (no [risk] enabled in its config): there is no risk to show")
        ids = manifest.arrays()["accounts"]["account"].tolist()
        wanted = list(accounts) if accounts else ids
        for a in wanted:
            if a not in ids:
                raise RiskViewError(f"account {a} has no risk record in {path} (accounts:"
                                    f" {', '.join(map(str, ids))})")
        result = replay(journal, start=journal.last_seq if journal.last_seq > 1 else None,
                        keep_events=False)
    except JournalError as e:
        raise RiskViewError(str(e)) from None
    except OSError as e:
        raise RiskViewError(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}") \
            from None
    core, instruments = result.core, journal.instruments
    tables = core.risk_state()
    out = []
    for a in wanted:
        view = account_risk(tables, instruments, manifest.currencies, manifest.decimals, a)
        assert view is not None
        out.append({"seq": journal.last_seq, "risk": view,
                    "orders": orders_view(order_states(core, a), instruments)})
    return out


def risk_from_server(host: str, port: int, account: int, api_key: str,
                     accounts: list[int] | None = None, *,
                     timeout: float = 10.0) -> list[dict[str, Any]]:
    """Log on to a gateway as ``account`` and ask (RiskQuery) for each of ``accounts``
    (default: the account itself); the same ``{"seq", "risk", "orders"}`` entries as
    ``risk_from_journal``. RiskViewError if the server cannot be reached, refuses the logon
    or refuses a query."""
    import asyncio
    import concurrent.futures

    from .client import ClientError, SyncClient
    from .terminal import Catalog, reason_name

    try:
        client = SyncClient(host, port, account, api_key, timeout=timeout)
    except ClientError as e:
        raise RiskViewError(f"logon to {host}:{port} as account {account} refused:"
                            f" {reason_name(e.reason)}: {e}") from None
    except (OSError, asyncio.TimeoutError, concurrent.futures.TimeoutError) as e:
        raise RiskViewError(f"cannot connect to {host}:{port}:"
                            f" {e or type(e).__name__}") from None
    out = []
    try:
        catalog = Catalog(client.logon_ack.instruments)
        for a in (list(accounts) if accounts else [account]):
            try:
                rep = client.risk(a, timeout=timeout)
            except ClientError as e:
                raise RiskViewError(f"account {a}: {reason_name(e.reason)}:"
                                    f" {str(e).removeprefix('RiskQuery rejected: ')}") from None
            except (asyncio.TimeoutError, concurrent.futures.TimeoutError):
                raise RiskViewError(f"account {a}: no answer from {host}:{port} within"
                                    f" {timeout:g} s") from None
            out.append({"seq": rep.seq, "risk": rep.risk,
                        "orders": orders_view(rep.orders, catalog)})
    finally:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - the session may be gone already
            pass
    return out


def format_views(entries: list[dict[str, Any]]) -> str:
    """`engine risk`'s text: each account's view and open orders, after the seq it is as of."""
    return "\n\n".join(f"as of command seq {e['seq']}\n{format_risk(e['risk'], e['orders'])}"
                       for e in entries) + "\n"


def views_json(entries: list[dict[str, Any]]) -> bytes:
    """`engine risk --json`: ``{"accounts": [{"seq", "risk", "orders"}, ...]}``."""
    import msgspec

    return msgspec.json.encode({"accounts": entries}) + b"\n"
