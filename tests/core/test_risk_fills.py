"""docs/RISK.md, "After the checks" and "Replaces": fills (cash, positions, cost, realized P&L,
fees), open-order exposure on rest and on every way off the book, protected market orders,
and replaces checked on the change, with exact events and exact table values.

Every test runs against the reference model and the compiled core (``make_core``).
"""
from __future__ import annotations

import pytest

from engine.schema import (
    INT64_MAX,
    NOTIONAL_CAP,
    CancelCause,
    EventType,
    Flags,
    KillSwitch,
    OrdType,
    Reason,
    RiskKind,
    Side,
    TimeInForce,
)
from tests.conftest import accepted, cancelled, rejected, replaced, trade
from tests.risk_helpers import (
    FX,
    JPY,
    RICH,
    USD,
    account,
    acct,
    cash,
    drained,
    exposure,
    instrument,
    pnl,
    risk_core,
    state_of,
)

BUY, SELL = Side.BUY, Side.SELL
MARKET = OrdType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
R = Reason
K = RiskKind
INT64_MIN = -(1 << 63)

EQ, FUT, USDJPY = 11, 12, 13
# (id, ccy, k, band_bps, ref_price, fee_ppm): no bands here unless a test sets one
EQUITY = (EQ, USD, 1, 0, 10000, 0)
FUTURE = (FUT, USD, 1250, 0, 20000, 0)
FXSPOT = (USDJPY, JPY, 100, 0, 150000, 0)
INSTRUMENTS = [EQUITY, FUTURE, FXSPOT]


def core_with(make_core, *accounts, instruments=INSTRUMENTS, **tables):
    return risk_core(make_core, instruments, currencies=FX, accounts=accounts, **tables)


def admin(core, call):
    """An admin call that must apply: one RISK event, then whatever it cancels."""
    call()
    events = drained(core)
    assert events[0].type == EventType.RISK, events
    return events[1:]


# -- fills --------------------------------------------------------------------------------------

def test_a_fill_moves_cash_positions_and_fees_taker_then_maker_and_the_makers_exposure(
        make_core):
    core = core_with(make_core, acct(1), acct(2))
    admin(core, lambda: core.set_risk(K.FEE, 30, instrument=EQ))  # 0.003%
    core.submit(1, EQ, BUY, 10000, 10, account=1)
    assert exposure(core, 1, EQ) == (1, 10, 0, 100_000)
    core.submit(2, EQ, SELL, 9990, 4, account=2)
    assert drained(core) == [accepted(1, 10000, 10), accepted(2, 9990, 4),
                             trade(2, 1, 10000, 4, 0, 6)]
    # N = 10000 x 4 x 1 = 40,000; fee = ceil(40,000 x 30 / 10**6) = ceil(1.2) = 2 a side
    assert cash(core, 2) == dict(cash=RICH + 40_000 - 2, credit=0, open_buy_notional=0)
    assert pnl(core, 2, EQ) == (-4, 40_000, 0, 2)
    assert cash(core, 1) == dict(cash=RICH - 40_002, credit=0, open_buy_notional=60_000)
    assert pnl(core, 1, EQ) == (4, 40_000, 0, 2)
    assert exposure(core, 1, EQ) == (1, 6, 0, 60_000)
    assert instrument(core, EQ)["last_price"] == 10000
    # the maker fills completely: it leaves, open_orders goes down
    core.submit(3, EQ, SELL, 10000, 6, account=2)
    assert drained(core) == [accepted(3, 10000, 6), trade(3, 1, 10000, 6, 0, 0)]
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)
    assert pnl(core, 1, EQ) == (10, 100_000, 0, 4)  # fee ceil(1.8) = 2
    assert cash(core, 1)["cash"] == RICH - 100_004
    assert cash(core, 1, JPY)["cash"] == RICH  # another currency: untouched


def test_a_future_fill_carries_its_multiplier(make_core):
    core = core_with(make_core, acct(1), acct(2))
    admin(core, lambda: core.set_risk(K.FEE, 3, instrument=FUT))
    core.submit(1, FUT, SELL, 20000, 3, account=1)
    assert exposure(core, 1, FUT) == (1, 0, 3, 0)
    core.submit(2, FUT, BUY, 20004, 5, account=2)
    assert drained(core) == [accepted(1, 20000, 3), accepted(2, 20004, 5),
                             trade(2, 1, 20000, 3, 2, 0)]
    # N = 20000 x 3 x 1250 = 75,000,000 cents ($750,000); fee = 75,000,000 x 3 / 10**6 = 225
    assert cash(core, 2)["cash"] == RICH - 75_000_225
    assert cash(core, 1)["cash"] == RICH + 74_999_775
    assert pnl(core, 1, FUT) == (-3, 75_000_000, 0, 225)
    assert pnl(core, 2, FUT) == (3, 75_000_000, 0, 225)
    assert exposure(core, 1, FUT) == (0, 0, 0, 0)
    # the rest of the taker rests at its own price: 2 x 20004 x 1250
    assert exposure(core, 2, FUT) == (1, 2, 0, 50_010_000)


def test_an_fx_fill_settles_in_its_own_currency(make_core):
    core = core_with(make_core, acct(1), acct(2))
    core.submit(1, USDJPY, BUY, 150000, 2, account=1)
    assert cash(core, 1, JPY)["open_buy_notional"] == 30_000_000
    assert cash(core, 1, USD)["open_buy_notional"] == 0
    core.submit(2, USDJPY, SELL, 150000, 2, account=2)
    drained(core)
    assert [cash(core, a, JPY)["cash"] for a in (1, 2)] == [RICH - 30_000_000, RICH + 30_000_000]
    assert [cash(core, a, USD)["cash"] for a in (1, 2)] == [RICH, RICH]
    assert pnl(core, 1, USDJPY) == (2, 30_000_000, 0, 0)
    assert exposure(core, 1, USDJPY, JPY) == (0, 0, 0, 0)


def test_cost_and_realized_pnl_through_two_flips(make_core):
    core = core_with(make_core, acct(1), acct(2))
    steps = [
        # (account 2 rests, account 1 takes): side of account 1, price, qty,
        # then account 1's (position, cost, realized) and account 2's realized after
        (BUY, 10000, 1, (1, 10_000, 0), 0),
        (BUY, 10001, 2, (3, 30_002, 0), 0),
        # sell 1 of 3: basis 30,002 * 1 // 3 = 10,000 (rounded down), value 10,005
        (SELL, 10005, 1, (2, 20_002, 5), -5),
        # sell 3 of a long 2: closes 2 (basis 20,002, value 30,003 * 2 // 3 = 20,002),
        # opens short 1 that fetched 30,003 - 20,002 = 10,001
        (SELL, 10001, 3, (-1, 10_001, 5), -5),
        # buy 4 against a short 1: closes it (basis 10,001, value 36,000 // 4 = 9,000: +1,001),
        # opens long 3 costing 27,000
        (BUY, 9000, 4, (3, 27_000, 1_006), -1_006),
        (SELL, 9500, 3, (0, 0, 2_506), -2_506),
    ]
    oid = 0
    for side, price, qty, mine, theirs in steps:
        oid += 2
        core.submit(oid, EQ, 3 - side, price, qty, account=2)
        core.submit(oid + 1, EQ, side, price, qty, account=1)
        assert drained(core)[2] == trade(oid + 1, oid, price, qty, 0, 0)
        assert pnl(core, 1, EQ)[:3] == mine
        assert pnl(core, 2, EQ)[2] == theirs
        assert pnl(core, 2, EQ)[0] == -mine[0]
    # flat again: the cash moved by exactly the realized P&L (no fees here)
    assert cash(core, 1)["cash"] == RICH + 2_506
    assert cash(core, 2)["cash"] == RICH - 2_506


def test_a_short_position_realizes_what_it_fetched_less_what_buying_back_costs(make_core):
    core = core_with(make_core, acct(1, positions={FUT: (-4, 100_000_000)}), acct(2))
    # short 4 that fetched $1,000,000 (20000 x 4 x 1250); buy back 1 at 19000: value 23,750,000
    core.submit(1, FUT, SELL, 19000, 1, account=2)
    core.submit(2, FUT, BUY, 19000, 1, account=1)
    drained(core)
    assert pnl(core, 1, FUT) == (-3, 75_000_000, 1_250_000, 0)
    # buy 5 at 21000: closes 3 (basis 75,000,000, value 131,250,000 x 3 // 5 = 78,750,000),
    # then long 2 costing 52,500,000
    core.submit(3, FUT, SELL, 21000, 5, account=2)
    core.submit(4, FUT, BUY, 21000, 5, account=1)
    drained(core)
    assert pnl(core, 1, FUT) == (2, 52_500_000, 1_250_000 - 3_750_000, 0)


def test_a_self_trade_settles_taker_first_then_maker(make_core):
    core = core_with(make_core, acct(1, positions={EQ: (10, 90_000)}), acct(3))
    admin(core, lambda: core.set_risk(K.FEE, 30, instrument=EQ))
    core.submit(1, EQ, BUY, 10000, 5, account=1)
    core.submit(2, EQ, SELL, 10000, 5, account=1)
    assert drained(core) == [accepted(1, 10000, 5), accepted(2, 10000, 5),
                             trade(2, 1, 10000, 5, 0, 0)]
    # the taker's sell first: closes 5 of 10 (basis 45,000, value 50,000: +5,000), then the
    # maker's buy adds 5 for 50,000; fee ceil(1.5) = 2 a side
    assert pnl(core, 1, EQ) == (10, 95_000, 5_000, 4)
    assert cash(core, 1)["cash"] == RICH - 4
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)
    # from flat: nothing realized, nothing held, both fees paid
    core.submit(3, EQ, SELL, 10000, 2, account=3)
    core.submit(4, EQ, BUY, 10000, 2, account=3)
    drained(core)
    assert pnl(core, 3, EQ) == (0, 0, 0, 2)  # fee ceil(0.6) = 1 a side
    assert cash(core, 3)["cash"] == RICH - 2


def test_cash_and_fees_saturate_at_the_int64_range(make_core):
    core = core_with(make_core, acct(1, cash={USD: INT64_MAX - 5}),
                     acct(2, cash={USD: INT64_MIN + 5}, credit={USD: INT64_MAX}))
    admin(core, lambda: core.set_risk(K.FEE, 1_000_000, instrument=EQ))  # 100%: fee = N
    # account 2: free cash = MIN + 5 + MAX = 4, exactly what 1 share at 4 costs
    core.submit(1, EQ, SELL, 4, 1, account=1)
    core.submit(2, EQ, BUY, 4, 1, account=2)
    assert drained(core)[2] == trade(2, 1, 4, 1, 0, 0)
    assert cash(core, 2)["cash"] == INT64_MIN  # MIN + 5 - 4 - 4, saturated
    assert cash(core, 1)["cash"] == INT64_MAX - 5  # gets N - fee = 0
    assert pnl(core, 2, EQ) == (1, 4, 0, 4)
    admin(core, lambda: core.set_risk(K.FEE, 0, instrument=EQ))
    core.submit(3, EQ, BUY, 10, 1, account=2)  # nothing free now
    assert drained(core) == [rejected(3, 10, 1, R.RISK_INSUFFICIENT_CASH)]
    core.submit(3, EQ, BUY, 10, 1, account=1)
    core.submit(4, EQ, SELL, 10, 1, account=2)  # a sell needs no cash
    drained(core)
    assert cash(core, 1)["cash"] == INT64_MAX - 15
    assert cash(core, 2)["cash"] == INT64_MIN + 10


# -- exposure -----------------------------------------------------------------------------------

def test_exposure_is_added_on_rest_and_taken_back_by_cancel_and_mass_cancel(make_core):
    core = core_with(make_core, acct(1), acct(2))
    core.submit(1, EQ, BUY, 10000, 5, account=1)
    core.submit(2, EQ, SELL, 10100, 3, account=1)
    core.submit(3, FUT, BUY, 20000, 2, account=1)
    core.submit(4, USDJPY, BUY, 150000, 1, account=1)
    core.submit(5, EQ, BUY, 9000, 7, account=2)
    drained(core)
    assert exposure(core, 1, EQ) == (4, 5, 3, 50_000 + 50_000_000)
    assert exposure(core, 1, FUT) == (4, 2, 0, 50_050_000)
    assert cash(core, 1, JPY)["open_buy_notional"] == 15_000_000
    assert exposure(core, 2, EQ) == (1, 7, 0, 63_000)
    core.cancel(1, account=1)
    assert exposure(core, 1, EQ) == (3, 0, 3, 50_000_000)
    core.mass_cancel(account=1, side=BUY)
    assert exposure(core, 1, EQ) == (1, 0, 3, 0)
    assert cash(core, 1, JPY)["open_buy_notional"] == 0
    core.mass_cancel(all_accounts=True)
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)
    assert exposure(core, 2, EQ) == (0, 0, 0, 0)
    drained(core)


def test_a_partly_filled_order_releases_only_its_open_quantity(make_core):
    core = core_with(make_core, acct(1), acct(2))
    core.submit(1, EQ, BUY, 10000, 5, account=1)
    core.submit(2, EQ, SELL, 9000, 2, account=2)  # fills at the maker's 10000
    assert exposure(core, 1, EQ) == (1, 3, 0, 30_000)
    core.cancel(1, account=1)
    assert drained(core)[-1] == cancelled(1, 10000, 3, CancelCause.USER)
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)
    assert pnl(core, 1, EQ) == (2, 20_000, 0, 0)


def test_a_taker_rests_its_remainder_at_its_own_price(make_core):
    core = core_with(make_core, acct(1), acct(2))
    core.submit(1, EQ, SELL, 10000, 3, account=1)
    core.submit(2, EQ, BUY, 10100, 5, account=2)
    assert drained(core)[2] == trade(2, 1, 10000, 3, 2, 0)
    assert exposure(core, 2, EQ) == (1, 2, 0, 20_200)
    assert cash(core, 2)["cash"] == RICH - 30_000
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)


def test_an_order_cancelled_at_the_level_limit_adds_no_exposure(make_core):
    big = (21, USD, 1, 0, 0, 0)
    rich = dict(cash={USD: INT64_MAX}, credit={USD: INT64_MAX})
    core = core_with(make_core, acct(1, **rich), acct(2, **rich), instruments=[big])
    core.submit(1, 21, BUY, 1, NOTIONAL_CAP, account=1)
    core.submit(2, 21, BUY, 1, NOTIONAL_CAP, account=2)  # the level would pass 2**63 - 1
    assert drained(core) == [accepted(1, 1, NOTIONAL_CAP), accepted(2, 1, NOTIONAL_CAP),
                             cancelled(2, 1, NOTIONAL_CAP, CancelCause.LEVEL_QUANTITY_LIMIT)]
    assert exposure(core, 1, 21) == (1, NOTIONAL_CAP, 0, NOTIONAL_CAP)
    assert exposure(core, 2, 21) == (0, 0, 0, 0)


def test_ioc_fok_and_market_orders_never_hold_exposure(make_core):
    core = core_with(make_core, acct(1), acct(2))
    core.submit(1, EQ, SELL, 10000, 2, account=2)
    core.submit(2, EQ, BUY, 10000, 5, account=1, tif=IOC)
    core.submit(3, EQ, BUY, 10000, 5, account=1, tif=FOK)
    core.submit(4, EQ, BUY, 0, 5, account=1, ord_type=MARKET)
    assert [e.type for e in drained(core)] == [
        EventType.ACCEPTED, EventType.ACCEPTED, EventType.TRADE, EventType.CANCELLED,
        EventType.ACCEPTED, EventType.CANCELLED, EventType.ACCEPTED, EventType.CANCELLED]
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)
    assert pnl(core, 1, EQ) == (2, 20_000, 0, 0)


# -- protected market orders -------------------------------------------------------------------

def market_book(make_core, band_bps=1000):
    """EQ, reference 10000: asks 10990 x2, 11000 x3, 11001 x5; bids 9000 x1, 8999 x4 (all of
    account 2), rested without a band; then the band is set to ``band_bps``."""
    core = core_with(make_core, acct(1), acct(2))
    for oid, side, price, qty in [(1, SELL, 10990, 2), (2, SELL, 11000, 3), (3, SELL, 11001, 5),
                                  (4, BUY, 9000, 1), (5, BUY, 8999, 4)]:
        core.submit(oid, EQ, side, price, qty, account=2)
    drained(core)
    admin(core, lambda: core.set_risk(K.PRICE_BAND, band_bps, instrument=EQ))
    return core


def test_a_market_buy_trades_only_up_to_reference_plus_band(make_core):
    core = market_book(make_core)
    core.submit(10, EQ, BUY, 0, 10, account=1, ord_type=MARKET)
    assert drained(core) == [accepted(10, 0, 10), trade(10, 1, 10990, 2, 8, 0),
                             trade(10, 2, 11000, 3, 5, 0),
                             cancelled(10, 0, 5, CancelCause.MARKET_REMAINDER)]
    # its limit was fixed at the check: 10000 + 1000. Now the reference is 11000 (+- 1100).
    assert instrument(core, EQ)["last_price"] == 11000
    core.submit(11, EQ, BUY, 0, 1, account=1, ord_type=MARKET, tif=IOC)
    assert drained(core) == [accepted(11, 0, 1), trade(11, 3, 11001, 1, 0, 4)]
    assert pnl(core, 1, EQ) == (6, 21_980 + 33_000 + 11_001, 0, 0)


def test_a_market_sell_trades_only_down_to_reference_less_band(make_core):
    core = market_book(make_core)
    core.submit(10, EQ, SELL, 0, 10, account=1, ord_type=MARKET)
    assert drained(core) == [accepted(10, 0, 10), trade(10, 4, 9000, 1, 9, 0),
                             cancelled(10, 0, 9, CancelCause.MARKET_REMAINDER)]


def test_a_market_fok_counts_only_the_liquidity_inside_the_band(make_core):
    core = market_book(make_core)
    before = core.depth(EQ)
    core.submit(10, EQ, BUY, 0, 6, account=1, ord_type=MARKET, tif=FOK)
    assert drained(core) == [accepted(10, 0, 6), cancelled(10, 0, 6, CancelCause.FOK_UNFILLABLE)]
    assert core.depth(EQ) == before
    core.submit(11, EQ, BUY, 0, 5, account=1, ord_type=MARKET, tif=FOK)
    assert drained(core) == [accepted(11, 0, 5), trade(11, 1, 10990, 2, 3, 0),
                             trade(11, 2, 11000, 3, 0, 0)]
    core.submit(12, EQ, SELL, 0, 2, account=1, ord_type=MARKET, tif=FOK)
    assert drained(core)[1] == cancelled(12, 0, 2, CancelCause.FOK_UNFILLABLE)


def test_a_market_order_with_band_zero_trades_only_at_the_reference(make_core):
    core = market_book(make_core, band_bps=0)
    core.submit(6, EQ, SELL, 10000, 1, account=2)
    core.submit(10, EQ, BUY, 0, 3, account=1, ord_type=MARKET)
    assert drained(core) == [accepted(6, 10000, 1), accepted(10, 0, 3),
                             trade(10, 6, 10000, 1, 2, 0),
                             cancelled(10, 0, 2, CancelCause.MARKET_REMAINDER)]


def test_a_wide_band_protects_nothing_a_sell_below_zero(make_core):
    core = market_book(make_core, band_bps=1_000_000)  # band 1,000,000 ticks: 100x
    core.submit(10, EQ, SELL, 0, 6, account=1, ord_type=MARKET)
    assert drained(core) == [accepted(10, 0, 6), trade(10, 4, 9000, 1, 5, 0),
                             trade(10, 5, 8999, 4, 1, 0),
                             cancelled(10, 0, 1, CancelCause.MARKET_REMAINDER)]


def test_a_market_buy_pays_for_its_worst_price_in_the_cash_check(make_core):
    # w = 11000: 5 shares need 55,000 free even if they would fill cheaper
    core = market_book(make_core)
    admin(core, lambda: core.set_risk(K.CASH_ADJUST, 55_000 - RICH, account=1, instrument=USD))
    before = state_of(core)
    core.submit(10, EQ, BUY, 0, 6, account=1, ord_type=MARKET)
    assert drained(core) == [rejected(10, 0, 6, R.RISK_INSUFFICIENT_CASH)]
    assert state_of(core) == before
    core.submit(10, EQ, BUY, 0, 5, account=1, ord_type=MARKET)
    assert [e.type for e in drained(core)] == [EventType.ACCEPTED, EventType.TRADE,
                                               EventType.TRADE]
    assert cash(core, 1)["cash"] == 55_000 - 21_980 - 33_000


def test_a_market_order_needs_a_reference_until_a_trade_gives_one(make_core):
    no_ref = (EQ, USD, 1, 0, 0, 0)
    core = core_with(make_core, acct(1), acct(2), instruments=[no_ref])
    core.submit(1, EQ, SELL, 500, 5, account=2)
    core.submit(2, EQ, BUY, 0, 1, account=1, ord_type=MARKET)
    assert drained(core) == [accepted(1, 500, 5), rejected(2, 0, 1, R.RISK_NO_REFERENCE_PRICE)]
    core.submit(3, EQ, BUY, 500, 1, account=1)
    core.submit(4, EQ, BUY, 0, 2, account=1, ord_type=MARKET)
    assert drained(core) == [accepted(3, 500, 1), trade(3, 1, 500, 1, 0, 4),
                             accepted(4, 0, 2), trade(4, 1, 500, 2, 0, 2)]


# -- replaces -----------------------------------------------------------------------------------

def test_a_replace_moves_the_exposure(make_core):
    core = core_with(make_core, acct(1), acct(2))
    core.submit(1, EQ, BUY, 10000, 10, account=1)
    core.submit(2, EQ, BUY, 10000, 1, account=2)
    core.replace(1, 10000, 6, account=1)  # same price, less: keeps its place
    assert core.level_orders(EQ, BUY, 10000) == [(1, 6), (2, 1)]
    assert exposure(core, 1, EQ) == (1, 6, 0, 60_000)
    core.replace(1, 9000, 8, account=1)  # a new price
    assert exposure(core, 1, EQ) == (1, 8, 0, 72_000)
    core.submit(3, EQ, SELL, 9000, 4, account=2)  # fills 1 of account 2, then 3 of order 1
    assert exposure(core, 1, EQ) == (1, 5, 0, 45_000)
    core.replace(1, 9000, 12, account=1)  # total 12, 3 filled: 9 open
    assert exposure(core, 1, EQ) == (1, 9, 0, 81_000)
    core.submit(4, EQ, SELL, 9500, 3, account=2)
    core.replace(1, 9500, 12, account=1)  # crosses: trades 3 as the taker, rests 6 at 9500
    events = drained(core)
    assert events[-2:] == [replaced(1, 9500, 12, 9), trade(1, 4, 9500, 3, 6, 0)]
    assert exposure(core, 1, EQ) == (1, 6, 0, 57_000)
    assert exposure(core, 2, EQ) == (0, 0, 0, 0)
    assert pnl(core, 1, EQ) == (6, 27_000 + 28_500, 0, 0)
    core.replace(1, 9600, 12, account=1)
    core.submit(5, EQ, SELL, 9600, 6, account=2)  # fills it completely
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)


def test_a_buy_replace_checks_cash_and_the_position_limit_on_the_change(make_core):
    core = core_with(make_core, acct(1, cash={USD: 100_000}),
                     acct(2, position_limit=10), acct(3))
    core.submit(1, EQ, BUY, 10000, 10, account=1)  # all of its cash
    drained(core)
    before = state_of(core)
    core.replace(1, 10001, 10, account=1)  # 10 more
    core.replace(1, 10000, 11, account=1)
    assert drained(core) == [rejected(1, 10001, 10, R.RISK_INSUFFICIENT_CASH),
                             rejected(1, 10000, 11, R.RISK_INSUFFICIENT_CASH)]
    assert state_of(core) == before
    core.replace(1, 10000, 9, account=1)  # less: never fails 5 or 6
    core.replace(1, 11111, 9, account=1)  # 99,999: 9,999 more of the 10,000 free
    core.replace(1, 10000, 10, account=1)  # back to 100,000
    assert [e.type for e in drained(core)] == [EventType.REPLACED] * 3
    assert cash(core, 1)["open_buy_notional"] == 100_000
    # the position limit, on the change in open quantity
    core.submit(2, EQ, BUY, 10000, 10, account=2)
    core.replace(2, 10000, 11, account=2)
    core.replace(2, 9000, 10, account=2)  # a new price, the same quantity: no change
    assert drained(core)[1:] == [rejected(2, 10000, 11, R.RISK_POSITION_LIMIT),
                                 replaced(2, 9000, 10, 10)]
    admin(core, lambda: core.set_risk(K.POSITION_LIMIT, 5, account=2, instrument=EQ))
    core.replace(2, 9000, 8, account=2)  # past the lowered limit, but lower
    core.replace(2, 9100, 8, account=2)
    core.replace(2, 9100, 9, account=2)
    assert drained(core) == [replaced(2, 9000, 8, 8), replaced(2, 9100, 8, 8),
                             rejected(2, 9100, 9, R.RISK_POSITION_LIMIT)]


def test_a_sell_replace_checks_free_position_and_the_limit_on_the_change(make_core):
    core = core_with(make_core, acct(1, positions={EQ: (10, 100_000)}, short_limit=0),
                     acct(2, short_limit=5, position_limit=3))
    core.submit(1, EQ, SELL, 10000, 6, account=1)
    core.replace(1, 10000, 10, account=1)
    core.replace(1, 10000, 11, account=1)
    core.replace(1, 9999, 11, account=1)
    assert drained(core)[1:] == [replaced(1, 10000, 10, 10),
                                 rejected(1, 10000, 11, R.RISK_INSUFFICIENT_POSITION),
                                 rejected(1, 9999, 11, R.RISK_INSUFFICIENT_POSITION)]
    core.submit(2, EQ, SELL, 10000, 3, account=2)
    core.replace(2, 10000, 4, account=2)  # free 5 - 3 = 2 >= 1, but -4 < -3
    assert drained(core)[1:] == [rejected(2, 10000, 4, R.RISK_POSITION_LIMIT)]


def test_a_replace_checks_the_band_and_the_size_on_its_new_price_and_total(make_core):
    core = core_with(make_core, acct(1, max_order_qty=10, max_order_notional=100_000,
                                     max_open_orders=1), acct(2))
    admin(core, lambda: core.set_risk(K.PRICE_BAND, 1000, instrument=EQ))  # 9000..11000
    core.submit(1, EQ, BUY, 10000, 10, account=1)
    core.submit(2, EQ, SELL, 10000, 4, account=2)
    drained(core)
    for price, qty, reason in [(11001, 10, R.RISK_PRICE_BAND), (8999, 10, R.RISK_PRICE_BAND),
                               (9000, 11, R.RISK_MAX_ORDER_QTY),  # total, 4 filled included
                               (10001, 10, R.RISK_MAX_ORDER_NOTIONAL)]:
        before = state_of(core)
        core.replace(1, price, qty, account=1)
        assert drained(core) == [rejected(1, price, qty, reason)]
        assert state_of(core) == before
    # check 7 does not apply: the account is at its one open order
    core.replace(1, 9000, 10, account=1)
    assert drained(core) == [replaced(1, 9000, 10, 6)]


def test_a_replace_is_checked_by_risk_before_post_only(make_core):
    core = core_with(make_core, acct(1), acct(2))
    admin(core, lambda: core.set_risk(K.PRICE_BAND, 1000, instrument=EQ))
    core.submit(1, EQ, SELL, 10500, 1, account=2)
    core.submit(2, EQ, BUY, 10000, 1, account=1, flags=Flags.POST_ONLY)
    drained(core)
    admin(core, lambda: core.restrict(EQ, account=1))
    core.replace(2, 10500, 1, account=1)
    assert drained(core) == [rejected(2, 10500, 1, R.RISK_RESTRICTED)]
    core.replace(2, 11001, 1, account=1)
    assert drained(core) == [rejected(2, 11001, 1, R.RISK_PRICE_BAND)]
    admin(core, lambda: core.restrict(EQ, restricted=False, account=1))
    core.replace(2, 10500, 1, account=1)
    assert drained(core) == [rejected(2, 10500, 1, R.BOOK_POST_ONLY_WOULD_TAKE)]


def test_a_reduce_only_replace_counts_its_own_open_quantity_once(make_core):
    core = core_with(make_core, acct(1, positions={USDJPY: (-5, 75_000_000)}))
    admin(core, lambda: core.kill_switch(KillSwitch.REDUCE_ONLY, account=1))
    core.submit(1, USDJPY, BUY, 149000, 3, account=1)
    core.replace(1, 149000, 5, account=1)
    core.replace(1, 149500, 6, account=1)
    core.replace(1, 149500, 5, account=1)
    assert drained(core) == [accepted(1, 149000, 3), replaced(1, 149000, 5, 5),
                             rejected(1, 149500, 6, R.RISK_REDUCE_ONLY),
                             replaced(1, 149500, 5, 5)]
    assert exposure(core, 1, USDJPY, JPY) == (1, 5, 0, 5 * 149500 * 100)
    cancels = admin(core, lambda: core.kill_switch(KillSwitch.KILLED, account=1))
    assert cancels == [cancelled(1, 149500, 5, CancelCause.KILL_SWITCH)]
    assert exposure(core, 1, USDJPY, JPY) == (0, 0, 0, 0)


def test_a_rejected_replace_changes_nothing_and_takes_no_token(make_core):
    core = core_with(make_core, acct(1, rate_per_s=1, rate_burst=2, position_limit=5))
    core.submit(1, EQ, BUY, 10000, 5, account=1, ts_ns=0)
    drained(core)
    assert account(core, 1)["tokens_nano"] == 10 ** 9
    before = state_of(core)
    core.replace(1, 10000, 6, account=1, ts_ns=0)
    assert drained(core) == [rejected(1, 10000, 6, R.RISK_POSITION_LIMIT)]
    assert state_of(core) == before
    core.replace(1, 10000, 4, account=1, ts_ns=0)
    assert drained(core) == [replaced(1, 10000, 4, 4)]
    assert account(core, 1)["tokens_nano"] == 0


@pytest.mark.parametrize("kind", ["cancel", "mass cancel", "kill switch", "replace away"])
def test_every_way_off_the_book_releases_exposure(make_core, kind):
    core = core_with(make_core, acct(1), acct(2))
    core.submit(1, FUT, BUY, 20000, 4, account=1)
    core.submit(2, FUT, SELL, 20000, 1, account=2)
    drained(core)
    assert exposure(core, 1, FUT) == (1, 3, 0, 75_000_000)
    if kind == "cancel":
        core.cancel(1, account=1)
    elif kind == "mass cancel":
        core.mass_cancel(account=1, instrument=FUT)
    elif kind == "kill switch":
        core.kill_switch(KillSwitch.KILLED, all_accounts=True)
    else:  # replaced to cross and fill completely
        core.submit(3, FUT, SELL, 20100, 3, account=2)
        core.replace(1, 20100, 4, account=1)
    drained(core)
    assert exposure(core, 1, FUT) == (0, 0, 0, 0)
    assert core.open_orders == 0
