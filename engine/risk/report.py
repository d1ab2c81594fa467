"""An account's risk in words and decimals: balances, positions, P&L, open orders and how close
each limit is, read from the risk tables (docs/RISK.md).

Owns the one view that the gateway's ``RiskQuery`` answer and ``engine risk`` both print.
Must never change a table nor read a core's state other than through the arrays given.
"""
from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np

from ..instruments import InstrumentSet
from ..schema import UNLIMITED, KillSwitch, Side

__all__ = ["CashLine", "PositionLine", "AccountRisk", "account_risk", "format_account_risk"]

_CTX = decimal.Context(prec=60)


class CashLine(msgspec.Struct, kw_only=True):
    currency: str
    cash: str
    credit: str
    open_buy: str          # what resting buys would pay
    free: str              # cash + credit - open_buy: what a new buy may use


class PositionLine(msgspec.Struct, kw_only=True):
    symbol: str
    instrument: int
    currency: str
    position: str                  # instrument units, signed
    avg_price: str | None          # None when flat
    cost: str                      # what the open position cost (or a short fetched)
    mark: str | None               # last trade, else the reference price
    realized: str                  # realized P&L, before fees
    unrealized: str | None         # at the mark
    fees: str
    open_buy_qty: str
    open_sell_qty: str
    max_order_qty: str | None      # None: no limit
    max_order_notional: str | None  # account base currency
    position_limit: str | None
    buy_headroom: str | None       # how much more a buy may add before the position limit
    sell_headroom: str | None
    short_limit: str
    sellable: str                  # position - open sells + short limit
    restricted: bool
    restricted_globally: bool


class AccountRisk(msgspec.Struct, kw_only=True):
    account: int
    base_currency: str
    kill_switch: str               # the account's: active, reduce_only, killed
    global_kill_switch: str
    open_orders: int
    max_open_orders: int | None
    rate_per_s: int                # 0: no rate check
    rate_burst: int
    tokens: str                    # in the bucket at the last order that took one
    cash: list[CashLine]
    positions: list[PositionLine]  # instruments with a position, open orders, P&L or a limit
    realized_base: str             # realized P&L of every instrument, in the base currency
    unrealized_base: str
    fees_base: str


def _mode(v: int) -> str:
    return KillSwitch(int(v)).name.lower()


def _money(units: int, decimals: int) -> Decimal:
    return _CTX.scaleb(Decimal(int(units)), -decimals)


def account_risk(tables: dict[str, np.ndarray], instruments: InstrumentSet,
                 currencies: tuple[str, ...], decimals: tuple[int, ...],
                 account: int) -> AccountRisk | None:
    """The view of ``account``, or None if it has no risk record. ``currencies`` and
    ``decimals`` are the journal's (``RiskManifest``)."""
    acct = tables["accounts"]
    hit = np.flatnonzero(acct["account"] == account)
    if not hit.size:
        return None
    a = int(hit[0])
    row = acct[a]
    inst_t, pos_t, cash_t, fx = (tables["instruments"], tables["positions"], tables["cash"],
                                 tables["currencies"]["fx"].tolist())
    n_inst, n_ccy = len(inst_t), len(currencies)
    base = int(row["base_ccy"])

    def to_base(units: int, ccy: int) -> Decimal:
        # display only: exact rational, rounded to the base currency's cash unit
        v = _CTX.divide(_CTX.multiply(Decimal(int(units)), Decimal(fx[ccy])), Decimal(fx[base]))
        return _money(int(v.to_integral_value(rounding=decimal.ROUND_HALF_EVEN)),
                      decimals[base])

    cash_lines = []
    for c in range(n_ccy):
        r = cash_t[a * n_ccy + c]
        if not (r["cash"] or r["credit"] or r["open_buy_notional"]) and c != base:
            continue
        d = decimals[c]
        free = int(r["cash"]) + int(r["credit"]) - int(r["open_buy_notional"])
        cash_lines.append(CashLine(currency=currencies[c], cash=str(_money(r["cash"], d)),
                                   credit=str(_money(r["credit"], d)),
                                   open_buy=str(_money(r["open_buy_notional"], d)),
                                   free=str(_money(free, d))))
    positions = []
    realized = unrealized = fees = Decimal(0)
    for i in range(n_inst):
        p, it = pos_t[a * n_inst + i], inst_t[i]
        inst = instruments.by_id(int(it["instrument"]))
        ccy, d, k = int(it["ccy"]), decimals[int(it["ccy"])], int(it["k"])
        qty, cost = int(p["position"]), int(p["cost"])
        limits = (p["max_order_qty"], p["max_order_notional"], p["position_limit"])
        interesting = (qty or p["realized"] or p["fees"] or p["open_buy_qty"]
                       or p["open_sell_qty"] or p["restricted"] or it["restricted"]
                       or any(v != UNLIMITED for v in limits) or p["short_limit"])
        if not interesting:
            continue
        mark_ticks = int(it["last_price"]) or int(it["ref_price"])
        unreal = None
        if mark_ticks and qty:
            unreal = (mark_ticks * abs(qty) * k - cost) * (1 if qty > 0 else -1)
            unrealized += to_base(unreal, ccy)
        realized += to_base(int(p["realized"]), ccy)
        fees += to_base(int(p["fees"]), ccy)
        avg = None
        if qty:
            # cost / |qty| / k ticks, shown to the tick's places plus four
            ticks = _CTX.divide(Decimal(cost), Decimal(abs(qty) * k))
            avg = _CTX.multiply(ticks, inst.tick_size).quantize(
                _CTX.scaleb(inst.tick_size, -4).normalize(), context=_CTX)
        lim = int(p["position_limit"])
        lots = inst.lots_to_qty
        buy_room = lim - (qty + int(p["open_buy_qty"])) if lim != UNLIMITED else None
        sell_room = lim + (qty - int(p["open_sell_qty"])) if lim != UNLIMITED else None
        positions.append(PositionLine(
            symbol=inst.symbol, instrument=inst.id, currency=currencies[ccy],
            position=str(lots(qty)), avg_price=None if avg is None else str(avg),
            cost=str(_money(cost, d)),
            mark=None if not mark_ticks else str(inst.ticks_to_price(mark_ticks)),
            realized=str(_money(p["realized"], d)),
            unrealized=None if unreal is None else str(_money(unreal, d)),
            fees=str(_money(p["fees"], d)),
            open_buy_qty=str(lots(int(p["open_buy_qty"]))),
            open_sell_qty=str(lots(int(p["open_sell_qty"]))),
            max_order_qty=None if limits[0] == UNLIMITED else str(lots(int(limits[0]))),
            max_order_notional=(None if limits[1] == UNLIMITED
                                else str(_money(limits[1], decimals[base]))),
            position_limit=None if lim == UNLIMITED else str(lots(lim)),
            buy_headroom=None if buy_room is None else str(lots(buy_room)),
            sell_headroom=None if sell_room is None else str(lots(sell_room)),
            short_limit=str(lots(int(p["short_limit"]))),
            sellable=str(lots(qty - int(p["open_sell_qty"]) + int(p["short_limit"]))),
            restricted=bool(p["restricted"]), restricted_globally=bool(it["restricted"])))
    mo = int(row["max_open_orders"])
    return AccountRisk(
        account=int(row["account"]), base_currency=currencies[base], kill_switch=_mode(row["kill"]),
        global_kill_switch=_mode(tables["global"]["kill"][0]),
        open_orders=int(row["open_orders"]), max_open_orders=None if mo == UNLIMITED else mo,
        rate_per_s=int(row["rate_per_s"]), rate_burst=int(row["rate_burst"]),
        tokens=str(_CTX.scaleb(Decimal(int(row["tokens_nano"])), -9).normalize(_CTX)),
        cash=cash_lines, positions=positions, realized_base=str(realized),
        unrealized_base=str(unrealized), fees_base=str(fees))


def format_account_risk(view: AccountRisk, orders: list[dict[str, Any]] | None = None) -> str:
    """A terminal rendering of ``view`` (and, if given, its open orders)."""
    out = [f"account {view.account}  base {view.base_currency}  kill switch {view.kill_switch}"
           f" (global {view.global_kill_switch})",
           f"  open orders {view.open_orders}"
           f" / {'unlimited' if view.max_open_orders is None else view.max_open_orders}"
           f"   rate {view.rate_per_s}/s burst {view.rate_burst} (tokens {view.tokens})"
           if view.rate_per_s else
           f"  open orders {view.open_orders}"
           f" / {'unlimited' if view.max_open_orders is None else view.max_open_orders}"
           "   rate: no limit",
           "", f"  {'currency':<9}{'cash':>20}{'credit':>16}{'open buys':>18}{'free':>20}"]
    for c in view.cash:
        out.append(f"  {c.currency:<9}{c.cash:>20}{c.credit:>16}{c.open_buy:>18}{c.free:>20}")
    out += ["", f"  {'symbol':<22}{'position':>12}{'avg price':>14}{'mark':>12}"
                f"{'realized':>16}{'unrealized':>16}{'fees':>12}{'buy room':>12}{'sell room':>12}"]
    for p in view.positions:
        flags = (" restricted" if p.restricted else "") + \
                (" restricted-globally" if p.restricted_globally else "")
        out.append(f"  {p.symbol:<22}{p.position:>12}{p.avg_price or '-':>14}{p.mark or '-':>12}"
                   f"{p.realized:>16}{p.unrealized or '-':>16}{p.fees:>12}"
                   f"{p.buy_headroom or '-':>12}{p.sell_headroom or '-':>12}{flags}")
    out += ["", f"  P&L in {view.base_currency}: realized {view.realized_base}, unrealized"
                f" {view.unrealized_base}, fees {view.fees_base}"]
    if orders is not None:
        out += ["", f"  open orders ({len(orders)}):"]
        for o in orders:
            side = Side(o["side"]).name.lower()
            out.append(f"    #{o['order_id']} {o['symbol']} {side} {o['leaves']} @ {o['price']}")
    return "\n".join(out)
