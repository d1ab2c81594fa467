"""docs/RISK.md, check by check: enable_risk, the state and its digest, the pre-trade checks of a
NEW on both sides of every boundary and in their order, the admin commands and their rejects.

Every test runs against the reference model and the compiled core (``make_core``). Fills,
exposure, protected market orders and replaces are in tests/core/test_risk_fills.py.

Instruments (docs/RISK.md, "Units"): an equity in USD (tick $0.01 x 1 share: k = 1), an index
future in USD (tick 0.25 points x $50: k = 1250 cents) and USDJPY, priced in JPY (tick
0.001 JPY x 1000 USD: k = 100 sen), for accounts based in USD: its notional limit converts.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engine.schema import (
    INT64_MAX,
    NOTIONAL_CAP,
    RISK_TABLES,
    UNLIMITED,
    CancelCause,
    CommandType,
    EventType,
    Flags,
    KillSwitch,
    OrderStatus,
    OrdType,
    Reason,
    RiskKind,
    Side,
    TimeInForce,
)
from tests.conftest import ROUTING_EVENTS, accepted, cancelled, commands, ev, raw_cmd, records, rejected, send
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
    make_tables,
    position,
    risk_core,
    risk_event,
    state_of,
    tables_bytes,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrdType.LIMIT, OrdType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
ACTIVE, REDUCE_ONLY, KILLED = KillSwitch.ACTIVE, KillSwitch.REDUCE_ONLY, KillSwitch.KILLED
R = Reason
K = RiskKind

EQ, FUT, USDJPY = 11, 12, 13
# (id, ccy, k, band_bps, ref_price, fee_ppm)
EQUITY = (EQ, USD, 1, 1000, 10000, 0)         # band 10% of 10000: 9000..11000
FUTURE = (FUT, USD, 1250, 500, 20000, 0)      # band 5% of 20000: 19000..21000
FXSPOT = (USDJPY, JPY, 100, 200, 150000, 0)   # band 2% of 150000: 147000..153000
INSTRUMENTS = [EQUITY, FUTURE, FXSPOT]
IDS = [EQ, FUT, USDJPY]


def core_with(make_core, *accounts, instruments=INSTRUMENTS, **tables):
    return risk_core(make_core, instruments, currencies=FX, accounts=accounts, **tables)


def refused(core, order_id, side, price, qty, instrument=EQ, account=1, **kwargs):
    """Submit a NEW that must be rejected: one REJECTED copying the command and no change to
    the books, the risk tables or the digest. Returns the reason."""
    before = state_of(core)
    assert core.submit(order_id, instrument, side, price, qty, account=account, **kwargs) == 1
    (event,) = drained(core)
    assert event == rejected(order_id, price, qty, event.reason), event
    assert state_of(core) == before
    if event.reason != R.BOOK_DUPLICATE_ORDER_ID:  # (order() shows the live one then)
        assert core.order(order_id)["status"] == OrderStatus.REJECTED
    return event.reason


def takes(core, order_id, side, price, qty, instrument=EQ, account=1, **kwargs):
    """Submit a NEW that must be accepted; returns its events."""
    core.submit(order_id, instrument, side, price, qty, account=account, **kwargs)
    events = drained(core)
    assert events[0].type == EventType.ACCEPTED, events
    return events


# -- enable_risk, risk_state, the digest --------------------------------------------------------

def test_risk_is_off_until_enabled_and_the_tables_come_back_byte_for_byte(make_core):
    core = make_core(EQ, FUT, USDJPY)
    assert core.risk_enabled is False
    assert core.risk_state() is None
    tables = make_tables(INSTRUMENTS, FX, [
        acct(1, positions={EQ: (5, 50000), USDJPY: (-2, 30_000_000)}, rate_per_s=3,
             rate_burst=4, last_ts=7, credit={JPY: 9}, limits={FUT: dict(max_order_qty=8)}),
        acct(4, base_ccy=JPY, kill=REDUCE_ONLY, max_open_orders=6, restricted=[FUT]),
    ], global_kill=REDUCE_ONLY)
    core.enable_risk(tables)
    assert core.risk_enabled is True
    state = core.risk_state()
    assert list(state) == list(RISK_TABLES)
    for name, dtype in RISK_TABLES.items():
        assert state[name].dtype == dtype, name
        assert state[name].tobytes() == tables[name].tobytes(), name
    # copies both ways: changing the input or the output changes nothing in the core
    tables["accounts"]["kill"][1] = KILLED
    state["accounts"]["kill"][0] = KILLED
    assert account(core, 1)["kill"] == ACTIVE and account(core, 4)["kill"] == REDUCE_ONLY


def test_the_digest_with_risk_on_is_the_books_then_the_six_tables(make_core):
    core = core_with(make_core, acct(1), acct(2))
    takes(core, 5, BUY, 10000, 3, account=2)
    takes(core, 6, SELL, 21000, 2, instrument=FUT, account=1)
    values = [EQ, 0, 1, 1, INT64_MAX, 1, 0, 10000, 1, 5, 2, 3, 0, 0,
              FUT, 0, 1, 1, INT64_MAX, 0, 1, 21000, 1, 6, 1, 2, 0, 0,
              USDJPY, 0, 1, 1, INT64_MAX, 0, 0,
              0, 0]
    data = np.array(values, dtype="<i8").tobytes()
    data += b"".join(core.risk_state()[name].tobytes() for name in RISK_TABLES)
    assert core.state_digest() == hashlib.blake2b(data, digest_size=32).hexdigest()


def test_the_digest_sees_every_table(make_core):
    core = core_with(make_core, acct(1))
    seen = {core.state_digest()}
    core.set_risk(K.MAX_OPEN_ORDERS, 5, account=1)          # accounts
    seen.add(core.state_digest())
    core.set_risk(K.SHORT_LIMIT, 5, account=1, instrument=EQ)  # positions
    seen.add(core.state_digest())
    core.set_risk(K.CREDIT, 5, account=1, instrument=USD)    # cash
    seen.add(core.state_digest())
    core.set_risk(K.FEE, 5, instrument=EQ)                   # instruments
    seen.add(core.state_digest())
    core.set_risk(K.FX_RATE, 5, instrument=JPY)              # currencies
    seen.add(core.state_digest())
    core.kill_switch(ACTIVE, all_accounts=True)              # global: 0 -> 0, no change
    seen.add(core.state_digest())
    core.kill_switch(REDUCE_ONLY, all_accounts=True)         # global
    seen.add(core.state_digest())
    assert len(seen) == 7


def _break(t, table, field, value, row=0):
    """Change one field of one row in place (and return None: use ``t``)."""
    t[table][field][row] = value


BAD_TABLES = [
    # (id, change the tables, exception, message pattern)
    ("not a dict", lambda t: list(t.values()), TypeError, "dict"),
    ("missing table", lambda t: {k: v for k, v in t.items() if k != "global"}, TypeError,
     "global"),
    ("unknown table", lambda t: {**t, "limits": t["global"]}, TypeError, "limits"),
    ("not an array", lambda t: {**t, "currencies": [10 ** 16, 67 * 10 ** 12]}, TypeError,
     "currencies"),
    ("wrong dtype", lambda t: {**t, "cash": np.zeros(4, RISK_TABLES["positions"])}, TypeError,
     "cash"),
    ("instruments in another order", lambda t: {**t, "instruments": t["instruments"][::-1].copy()},
     ValueError, "instruments"),
    ("an instrument missing", lambda t: {**t, "instruments": t["instruments"][:2].copy()},
     ValueError, None),
    ("positions row count", lambda t: {**t, "positions": t["positions"][:5].copy()}, ValueError,
     "positions"),
    ("cash row count", lambda t: {**t, "cash": t["cash"][:3].copy()}, ValueError, "cash"),
    ("two global rows", lambda t: {**t, "global": np.zeros(2, RISK_TABLES["global"])},
     ValueError, "global"),
    ("account id 0", lambda t: _break(t, "accounts", "account", 0), ValueError, "account"),
    ("account ids not ascending", lambda t: _break(t, "accounts", "account", 3), ValueError,
     "ascending"),
    ("base currency out of range", lambda t: _break(t, "accounts", "base_ccy", 2), ValueError,
     "base_ccy"),
    ("instrument currency out of range", lambda t: _break(t, "instruments", "ccy", 2),
     ValueError, "ccy"),
    ("k 0", lambda t: _break(t, "instruments", "k", 0, row=1), ValueError, "k"),
    ("fx 0", lambda t: _break(t, "currencies", "fx", 0, row=1), ValueError, "fx"),
    ("negative max_order_qty", lambda t: _break(t, "positions", "max_order_qty", -1, row=4),
     ValueError, "max_order_qty"),
    ("negative max_order_notional",
     lambda t: _break(t, "positions", "max_order_notional", -1), ValueError,
     "max_order_notional"),
    ("negative position_limit", lambda t: _break(t, "positions", "position_limit", -1),
     ValueError, "position_limit"),
    ("negative short_limit", lambda t: _break(t, "positions", "short_limit", -1), ValueError,
     "short_limit"),
    ("negative credit", lambda t: _break(t, "cash", "credit", -1), ValueError, "credit"),
    ("negative max_open_orders", lambda t: _break(t, "accounts", "max_open_orders", -1),
     ValueError, "max_open_orders"),
    ("rate above 10**9", lambda t: _break(t, "accounts", "rate_per_s", 10 ** 9 + 1), ValueError,
     "rate_per_s"),
    ("negative rate", lambda t: _break(t, "accounts", "rate_per_s", -1), ValueError,
     "rate_per_s"),
    ("burst above 10**9", lambda t: _break(t, "accounts", "rate_burst", 10 ** 9 + 1),
     ValueError, "rate_burst"),
    ("a rate without a burst", lambda t: _break(t, "accounts", "rate_per_s", 1), ValueError,
     "rate_burst"),
    ("band above 1,000,000 bps", lambda t: _break(t, "instruments", "band_bps", 1_000_001),
     ValueError, "band_bps"),
    ("fee above 1,000,000 ppm", lambda t: _break(t, "instruments", "fee_ppm", 1_000_001),
     ValueError, "fee_ppm"),
    ("account kill mode 3", lambda t: _break(t, "accounts", "kill", 3), ValueError, "kill"),
    ("global kill mode 3", lambda t: _break(t, "global", "kill", 3), ValueError, "kill"),
    ("open orders", lambda t: _break(t, "accounts", "open_orders", 1), ValueError,
     "open_orders"),
    ("open buy qty", lambda t: _break(t, "positions", "open_buy_qty", 1), ValueError,
     "open_buy_qty"),
    ("open sell qty", lambda t: _break(t, "positions", "open_sell_qty", 1), ValueError,
     "open_sell_qty"),
    ("open buy notional", lambda t: _break(t, "cash", "open_buy_notional", 1), ValueError,
     "open_buy_notional"),
]


@pytest.mark.parametrize("change, exc, pattern", [c[1:] for c in BAD_TABLES],
                         ids=[c[0] for c in BAD_TABLES])
def test_enable_risk_refuses_inconsistent_tables_and_stays_off(make_core, change, exc,
                                                               pattern):
    core = make_core(EQ, FUT, USDJPY)
    tables = make_tables(INSTRUMENTS, FX, [acct(1), acct(2)])
    changed = change(tables)
    with pytest.raises(exc, match=pattern):
        core.enable_risk(tables if changed is None else changed)
    assert not core.risk_enabled and core.risk_state() is None
    core.enable_risk(make_tables(INSTRUMENTS, FX, [acct(1), acct(2)]))  # the good ones load
    assert core.risk_enabled


def test_enable_risk_comes_after_the_instruments_and_before_any_order_and_only_once(make_core):
    tables = make_tables([EQUITY], FX, [acct(1)])
    used = make_core(EQ)
    used.submit(1, EQ, BUY, 10000, 1)
    used.drain_events()
    with pytest.raises(ValueError):
        used.enable_risk(tables)
    assert not used.risk_enabled
    core = make_core(EQ)
    core.enable_risk(tables)
    with pytest.raises(ValueError):
        core.enable_risk(tables)
    with pytest.raises(ValueError):
        core.add_instrument(FUT)
    assert core.instruments() == [EQ]
    empty = make_core(EQ)
    with pytest.raises(ValueError):  # the core's instrument missing from the tables
        empty.enable_risk(make_tables([], FX, []))


def test_a_core_with_risk_and_no_accounts_rejects_every_order(make_core):
    core = risk_core(make_core, [EQUITY], currencies=FX, accounts=[])
    assert refused(core, 1, BUY, 10000, 1, account=0) == R.RISK_UNKNOWN_ACCOUNT


# -- check 0: the account ------------------------------------------------------------------------

def test_an_account_without_a_risk_record_is_rejected(make_core):
    core = core_with(make_core, acct(1), acct(3))
    assert refused(core, 1, BUY, 10000, 1, account=0) == R.RISK_UNKNOWN_ACCOUNT
    assert refused(core, 1, BUY, 10000, 1, account=2) == R.RISK_UNKNOWN_ACCOUNT
    assert refused(core, 1, SELL, 0, 1, account=4, ord_type=MARKET) == R.RISK_UNKNOWN_ACCOUNT
    takes(core, 1, BUY, 10000, 1, account=3)


def test_the_cores_own_checks_come_first_then_risk_then_post_only(make_core):
    core = core_with(make_core, acct(1), acct(2))
    takes(core, 1, SELL, 10500, 5, account=2)
    # core checks before risk (even before the account's)
    assert refused(core, 2, BUY, 10000, 0, account=9) == R.BOOK_INVALID_QUANTITY
    assert refused(core, 1, BUY, 10000, 1, account=9) == R.BOOK_DUPLICATE_ORDER_ID
    assert refused(core, 2, BUY, 10000, 1, account=9, tif=4) == R.BOOK_INVALID_TIME_IN_FORCE
    core.halt(EQ)
    drained(core)
    assert refused(core, 2, BUY, 99999, 1, account=9) == R.BOOK_INSTRUMENT_HALTED
    core.resume(EQ)
    drained(core)
    # risk before post-only: a crossing post-only order outside the band is a band reject
    assert refused(core, 2, BUY, 11001, 1, flags=Flags.POST_ONLY) == R.RISK_PRICE_BAND
    assert refused(core, 2, BUY, 10500, 1, account=9, flags=Flags.POST_ONLY) == \
        R.RISK_UNKNOWN_ACCOUNT
    assert refused(core, 2, BUY, 10500, 1, flags=Flags.POST_ONLY) == R.BOOK_POST_ONLY_WOULD_TAKE


# -- check 3: the price band ---------------------------------------------------------------------

@pytest.mark.parametrize("spec, low, high", [(EQUITY, 9000, 11000), (FUTURE, 19000, 21000),
                                             (FXSPOT, 147000, 153000)],
                         ids=["equity", "future", "fx"])
def test_a_limit_price_must_lie_within_reference_plus_minus_band(make_core, spec, low, high):
    core = core_with(make_core, acct(1))
    inst = spec[0]
    assert refused(core, 1, BUY, high + 1, 1, instrument=inst) == R.RISK_PRICE_BAND
    assert refused(core, 1, SELL, high + 1, 1, instrument=inst) == R.RISK_PRICE_BAND
    assert refused(core, 1, BUY, low - 1, 1, instrument=inst) == R.RISK_PRICE_BAND
    assert refused(core, 1, SELL, low - 1, 1, instrument=inst, tif=IOC) == R.RISK_PRICE_BAND
    takes(core, 1, SELL, high, 1, instrument=inst)
    takes(core, 2, BUY, low, 1, instrument=inst)
    assert core.depth(inst) == ([(low, 1, 1)], [(high, 1, 1)])


def test_the_band_rounds_down_and_follows_the_last_trade_price(make_core):
    core = core_with(make_core, acct(1), acct(2))
    assert core.set_risk(K.REFERENCE_PRICE, 10005, instrument=EQ) == 1
    drained(core)
    # band = 10005 * 1000 // 10000 = 1000 (1000.5 rounded down): 9005..11005
    assert refused(core, 1, BUY, 9004, 1) == R.RISK_PRICE_BAND
    assert refused(core, 1, SELL, 11006, 1) == R.RISK_PRICE_BAND
    takes(core, 1, BUY, 9005, 1)
    takes(core, 2, SELL, 11005, 1)
    # a trade at 10500 makes it the reference: band 1050, 9450..11550
    takes(core, 3, SELL, 10500, 1, account=2)
    takes(core, 4, BUY, 10500, 1, account=1)
    assert instrument(core, EQ)["last_price"] == 10500
    assert instrument(core, EQ)["ref_price"] == 10005  # the configured one stays
    assert refused(core, 5, SELL, 11551, 1) == R.RISK_PRICE_BAND
    assert refused(core, 5, BUY, 9449, 1) == R.RISK_PRICE_BAND
    takes(core, 5, SELL, 11550, 1)
    takes(core, 6, BUY, 9450, 1)


def test_without_a_band_or_a_reference_any_limit_price_passes(make_core):
    no_ref = (EQ, USD, 1, 1000, 0, 0)  # a band but no reference price
    core = core_with(make_core, acct(1), instruments=[no_ref, FUTURE, FXSPOT])
    takes(core, 1, BUY, 1, 1)
    takes(core, 2, SELL, INT64_MAX // 2, 1)
    core.set_risk(K.PRICE_BAND, 0, instrument=FUT)
    drained(core)
    takes(core, 3, BUY, 1, 1, instrument=FUT)
    takes(core, 4, SELL, 10 ** 12, 1, instrument=FUT)
    # a market order needs a reference
    assert refused(core, 5, BUY, 0, 1, ord_type=MARKET) == R.RISK_NO_REFERENCE_PRICE
    assert refused(core, 5, SELL, 0, 1, ord_type=MARKET, tif=IOC) == R.RISK_NO_REFERENCE_PRICE


# -- check 4: order size -------------------------------------------------------------------------

def test_max_order_qty_per_instrument(make_core):
    core = core_with(make_core, acct(1, limits={EQ: dict(max_order_qty=10),
                                                USDJPY: dict(max_order_qty=0)}))
    assert refused(core, 1, BUY, 10000, 11) == R.RISK_MAX_ORDER_QTY
    assert refused(core, 1, SELL, 10000, 11, tif=FOK) == R.RISK_MAX_ORDER_QTY
    assert refused(core, 1, BUY, 150000, 1, instrument=USDJPY) == R.RISK_MAX_ORDER_QTY
    takes(core, 1, BUY, 10000, 10)
    takes(core, 2, BUY, 20000, 11, instrument=FUT)


@pytest.mark.parametrize("spec, limit, qty, price", [
    (EQUITY, 50_000, 5, 10000),           # 5 x 10000 x 1
    (FUTURE, 50_000_000, 2, 20000),       # 2 x 20000 x 1250 = $500,000.00
], ids=["equity", "future"])
def test_max_order_notional_at_the_limit_and_one_tick_over(make_core, spec, limit, qty, price):
    inst = spec[0]
    core = core_with(make_core, acct(1, limits={inst: dict(max_order_notional=limit)}))
    assert refused(core, 1, BUY, price + 1, qty, instrument=inst) == R.RISK_MAX_ORDER_NOTIONAL
    assert refused(core, 1, SELL, price + 1, qty, instrument=inst) == R.RISK_MAX_ORDER_NOTIONAL
    assert refused(core, 1, BUY, price, qty + 1, instrument=inst) == R.RISK_MAX_ORDER_NOTIONAL
    takes(core, 1, BUY, price, qty, instrument=inst)
    takes(core, 2, SELL, price + 1, qty - 1, instrument=inst)


def test_max_order_notional_converts_into_the_base_currency_rounding_up(make_core):
    # USDJPY is priced in JPY; account 1 is based in USD, account 2 in JPY.
    # 1 lot at 150001: 15,000,100 sen = 100,500.67 US cents, rounded up to 100,501
    core = core_with(make_core,
                     acct(1, limits={USDJPY: dict(max_order_notional=100_501)}),
                     acct(2, base_ccy=JPY, limits={EQ: dict(max_order_notional=1_492_538)}),
                     acct(3, limits={USDJPY: dict(max_order_notional=100_500)}))
    assert refused(core, 1, BUY, 150002, 1, instrument=USDJPY) == R.RISK_MAX_ORDER_NOTIONAL
    assert refused(core, 1, BUY, 150001, 1, instrument=USDJPY, account=3) == \
        R.RISK_MAX_ORDER_NOTIONAL
    takes(core, 1, BUY, 150001, 1, instrument=USDJPY)
    takes(core, 2, BUY, 150000, 1, instrument=USDJPY, account=3)  # 100,500 exactly
    # the other way: 1 share at $100.00 = 10,000 cents = 1,492,537.31 sen -> 1,492,538
    assert refused(core, 3, BUY, 10001, 1, account=2) == R.RISK_MAX_ORDER_NOTIONAL
    takes(core, 3, BUY, 10000, 1, account=2)
    # a new rate moves the limit: at JPY 0.0068 USD, 10149 cents are 1,492,500 sen exactly
    # and 10150 are 1,492,647.06, rounded up to 1,492,648
    core.set_risk(K.FX_RATE, 68 * 10 ** 12, instrument=JPY)
    drained(core)
    assert refused(core, 4, BUY, 10150, 1, account=2) == R.RISK_MAX_ORDER_NOTIONAL
    takes(core, 4, BUY, 10149, 1, account=2)
    assert position(core, 2, EQ)["open_buy_qty"] == 2


def test_notional_above_the_cap_is_refused_even_unlimited(make_core):
    big = (21, USD, 1, 0, 0, 0)
    core = core_with(make_core, acct(1), instruments=[big])
    side_qty = 1 << 31
    assert refused(core, 1, SELL, 1 << 31, side_qty + 1, instrument=21) == \
        R.RISK_MAX_ORDER_NOTIONAL
    assert refused(core, 1, SELL, INT64_MAX, 1, instrument=21) == R.RISK_MAX_ORDER_NOTIONAL
    assert refused(core, 1, SELL, INT64_MAX, INT64_MAX, instrument=21) == \
        R.RISK_MAX_ORDER_NOTIONAL
    takes(core, 1, SELL, 1 << 31, side_qty, instrument=21)  # exactly NOTIONAL_CAP
    assert (1 << 31) * side_qty == NOTIONAL_CAP


def test_a_market_order_is_sized_at_reference_plus_band_on_either_side(make_core):
    # w = 10000 + 1000 = 11000: 5 lots = 55,000 whether it buys or sells
    core = core_with(make_core, acct(1, limits={EQ: dict(max_order_notional=55_000)}),
                     acct(2, limits={EQ: dict(max_order_notional=54_999)}))
    for side in (BUY, SELL):
        assert refused(core, 1, side, 0, 5, account=2, ord_type=MARKET) == \
            R.RISK_MAX_ORDER_NOTIONAL
        assert drained(core) == []
        core.submit(1, EQ, side, 0, 5, account=1, ord_type=MARKET)
        assert drained(core) == [accepted(1, 0, 5),
                                 cancelled(1, 0, 5, CancelCause.MARKET_REMAINDER)]


# -- check 5: buying power -----------------------------------------------------------------------

def test_a_buy_needs_cash_plus_credit_less_open_buys_in_the_instruments_currency(make_core):
    core = core_with(make_core,
                     acct(1, cash={USD: 100_000}, credit={USD: 500}),
                     acct(2, cash={USD: 50_000_000}),
                     acct(3, cash={USD: RICH, JPY: 15_000_000}))
    assert refused(core, 1, BUY, 10051, 10) == R.RISK_INSUFFICIENT_CASH  # 100,510
    takes(core, 1, BUY, 10050, 10)  # 100,500 = cash + credit
    assert cash(core, 1) == dict(cash=100_000, credit=500, open_buy_notional=100_500)
    assert refused(core, 2, BUY, 9000, 1) == R.RISK_INSUFFICIENT_CASH  # nothing free now
    takes(core, 2, SELL, 10100, 1)  # a sell needs no cash
    core.cancel(1, account=1)
    drained(core)
    takes(core, 3, BUY, 10050, 10)  # free again
    # the future: 2 lots at 20001 = 50,002,500 cents
    assert refused(core, 4, BUY, 20001, 2, instrument=FUT, account=2) == \
        R.RISK_INSUFFICIENT_CASH
    takes(core, 4, BUY, 20000, 2, instrument=FUT, account=2)
    # USDJPY pays in JPY: the account's dollars do not count
    assert refused(core, 5, BUY, 150001, 1, instrument=USDJPY, account=3) == \
        R.RISK_INSUFFICIENT_CASH
    takes(core, 5, BUY, 150000, 1, instrument=USDJPY, account=3)
    assert cash(core, 3, JPY)["open_buy_notional"] == 15_000_000


def test_credit_and_a_cash_adjustment_free_cash(make_core):
    core = core_with(make_core, acct(1, cash={USD: -100}))
    assert refused(core, 1, BUY, 10000, 1) == R.RISK_INSUFFICIENT_CASH
    core.set_risk(K.CREDIT, 10_099, account=1, instrument=USD)
    drained(core)
    assert refused(core, 1, BUY, 10000, 1) == R.RISK_INSUFFICIENT_CASH  # 9,999 free
    core.set_risk(K.CASH_ADJUST, 1, account=1, instrument=USD)
    drained(core)
    takes(core, 1, BUY, 10000, 1)
    assert cash(core, 1) == dict(cash=-99, credit=10_099, open_buy_notional=10_000)


def test_a_sell_needs_position_less_open_sells_plus_the_short_allowance(make_core):
    core = core_with(make_core,
                     acct(1, positions={EQ: (10, 100_000), FUT: (2, 50_000_000)}, short_limit=0),
                     acct(2, positions={EQ: (10, 100_000)}, short_limit=3))
    assert refused(core, 1, SELL, 10000, 11) == R.RISK_INSUFFICIENT_POSITION
    takes(core, 1, SELL, 10000, 6)
    assert refused(core, 2, SELL, 10000, 5) == R.RISK_INSUFFICIENT_POSITION  # 6 + 5 > 10
    takes(core, 2, SELL, 10000, 4)
    assert refused(core, 3, SELL, 10000, 1) == R.RISK_INSUFFICIENT_POSITION
    assert refused(core, 3, SELL, 20000, 3, instrument=FUT) == R.RISK_INSUFFICIENT_POSITION
    takes(core, 3, SELL, 20000, 2, instrument=FUT)
    assert refused(core, 4, SELL, 0, 1, ord_type=MARKET) == R.RISK_INSUFFICIENT_POSITION
    assert refused(core, 4, SELL, 10000, 14, account=2) == R.RISK_INSUFFICIENT_POSITION
    takes(core, 4, SELL, 10000, 13, account=2)  # 10 + 3 short
    assert position(core, 2, EQ)["open_sell_qty"] == 13


# -- check 6: position limit ---------------------------------------------------------------------

def test_the_worst_case_position_stays_within_the_limit_on_both_sides(make_core):
    core = core_with(make_core,
                     acct(1, positions={EQ: (5, 50_000)}, position_limit=10),
                     acct(2, positions={EQ: (-5, 50_000)}, position_limit=10))
    assert refused(core, 1, BUY, 10000, 6) == R.RISK_POSITION_LIMIT
    takes(core, 1, BUY, 10000, 3)
    assert refused(core, 2, BUY, 10000, 3) == R.RISK_POSITION_LIMIT  # 5 + 3 + 3
    takes(core, 2, BUY, 10000, 2)
    takes(core, 3, SELL, 10500, 15)  # a sell moves away from a long limit: 5 - 15 = -10
    assert refused(core, 4, SELL, 10500, 6, account=2) == R.RISK_POSITION_LIMIT  # -5 - 6
    takes(core, 4, SELL, 10500, 5, account=2)
    assert refused(core, 5, SELL, 10500, 1, account=2) == R.RISK_POSITION_LIMIT
    takes(core, 5, BUY, 10000, 15, account=2)  # -5 + 15 = 10


def test_insufficient_position_is_checked_before_the_position_limit(make_core):
    core = core_with(make_core, acct(1, short_limit=3, position_limit=2))
    assert refused(core, 1, SELL, 10000, 4) == R.RISK_INSUFFICIENT_POSITION
    assert refused(core, 1, SELL, 10000, 3) == R.RISK_POSITION_LIMIT
    takes(core, 1, SELL, 10000, 2)


def test_insufficient_cash_is_checked_before_the_position_limit(make_core):
    core = core_with(make_core, acct(1, cash={USD: 10_000}, position_limit=0))
    assert refused(core, 1, BUY, 10000, 2) == R.RISK_INSUFFICIENT_CASH
    assert refused(core, 1, BUY, 10000, 1) == R.RISK_POSITION_LIMIT


# -- check 7: open orders ------------------------------------------------------------------------

def test_only_a_gtc_limit_order_counts_against_max_open_orders(make_core):
    core = core_with(make_core, acct(1, max_open_orders=2), acct(2))
    takes(core, 1, BUY, 10000, 1)
    takes(core, 2, SELL, 21000, 1, instrument=FUT)
    assert account(core, 1)["open_orders"] == 2
    assert refused(core, 3, BUY, 10000, 1) == R.RISK_MAX_OPEN_ORDERS
    assert refused(core, 3, BUY, 9000, 1, flags=Flags.POST_ONLY) == R.RISK_MAX_OPEN_ORDERS
    takes(core, 3, BUY, 10000, 1, tif=IOC)
    takes(core, 4, BUY, 10000, 1, tif=FOK)
    takes(core, 5, BUY, 0, 1, ord_type=MARKET)
    takes(core, 6, SELL, 10100, 1, account=2)
    # a GTC order that would trade at once still counts: the check comes before matching
    assert refused(core, 7, BUY, 10100, 1) == R.RISK_MAX_OPEN_ORDERS
    core.cancel(1, account=1)
    drained(core)
    assert account(core, 1)["open_orders"] == 1
    takes(core, 7, BUY, 10100, 1)
    assert account(core, 1)["open_orders"] == 1  # it filled: nothing rests


# -- check 8: order rate -------------------------------------------------------------------------

def test_the_token_bucket_refills_by_ts_ns_and_only_accepted_orders_take_a_token(make_core):
    # 2 orders a second (2 nano-tokens a nanosecond), burst 3, a full bucket at ts 0
    core = core_with(make_core, acct(1, rate_per_s=2, rate_burst=3), acct(2))

    def bucket():
        row = account(core, 1)
        return row["tokens_nano"], row["last_ts"]

    for oid in (1, 2, 3):
        takes(core, oid, BUY, 9000 + oid, 1, ts_ns=0)
    assert bucket() == (0, 0)
    assert refused(core, 4, BUY, 9100, 1, ts_ns=499_999_999) == R.RISK_RATE_LIMITED
    assert bucket() == (0, 0)
    # a reject by an earlier check takes no token either
    assert refused(core, 4, BUY, 11001, 1, ts_ns=500_000_000) == R.RISK_PRICE_BAND
    takes(core, 4, BUY, 9100, 1, ts_ns=500_000_000)
    assert bucket() == (0, 500_000_000)
    # a long pause fills the bucket to the burst, no more
    takes(core, 5, BUY, 9100, 1, ts_ns=10 ** 12)
    assert bucket() == (2 * 10 ** 9, 10 ** 12)
    # an earlier ts_ns adds nothing and leaves last_ts where it is
    takes(core, 6, BUY, 9100, 1, ts_ns=5)
    assert bucket() == (10 ** 9, 10 ** 12)
    # cancels take no token; a replace takes one
    core.cancel(6, account=1, ts_ns=10 ** 12)
    drained(core)
    assert bucket() == (10 ** 9, 10 ** 12)
    core.replace(5, 9101, 1, account=1, ts_ns=10 ** 12)
    assert [e.type for e in drained(core)] == [EventType.REPLACED]
    assert bucket() == (0, 10 ** 12)
    before = state_of(core)
    core.replace(5, 9102, 1, account=1, ts_ns=10 ** 12 + 1)
    assert drained(core) == [rejected(5, 9102, 1, R.RISK_RATE_LIMITED)]
    assert state_of(core) == before
    # an account without a rate is never limited and its bucket never moves
    for oid in range(10, 20):
        takes(core, oid, BUY, 9000, 1, account=2, ts_ns=oid)
    assert (account(core, 2)["tokens_nano"], account(core, 2)["last_ts"]) == (0, 0)


def test_set_risk_rate_refills_the_bucket_at_the_commands_ts(make_core):
    core = core_with(make_core, acct(1, rate_per_s=1, rate_burst=1, tokens_nano=0))
    assert refused(core, 1, BUY, 10000, 1, ts_ns=10) == R.RISK_RATE_LIMITED
    assert core.set_risk(K.RATE, 1, account=1, aux=2, seq=3, ts_ns=1_000) == 1
    assert drained(core) == [risk_event(K.RATE, qty=1, price=2)]
    assert account(core, 1) == dict(
        account=1, base_ccy=USD, kill=0, open_orders=0, max_open_orders=UNLIMITED,
        rate_per_s=1, rate_burst=2, tokens_nano=2 * 10 ** 9, last_ts=1_000)
    takes(core, 1, BUY, 10000, 1, ts_ns=1_000)
    takes(core, 2, BUY, 10000, 1, ts_ns=1_000)
    assert refused(core, 3, BUY, 10000, 1, ts_ns=1_000 + 999_999_999) == R.RISK_RATE_LIMITED
    takes(core, 3, BUY, 10000, 1, ts_ns=1_000 + 10 ** 9)
    core.set_risk(K.RATE, 0, account=1, aux=1, ts_ns=5)  # rate off
    drained(core)
    for oid in range(4, 10):
        takes(core, oid, BUY, 10000, 1, ts_ns=0)
    assert (account(core, 1)["tokens_nano"], account(core, 1)["last_ts"]) == (10 ** 9, 5)


# -- check 9: restricted lists -------------------------------------------------------------------

def test_restricted_lists_account_first_then_global_and_lifting_them(make_core):
    core = core_with(make_core, acct(1), acct(2))
    takes(core, 1, BUY, 10000, 1)
    takes(core, 9, BUY, 9990, 5, account=2)
    assert core.restrict(EQ, account=1, seq=4, ts_ns=40) == 1
    assert records(core.drain_events()) == [dict(
        seq=4, ts_ns=40, order_id=0, other_id=0, price=0, qty=0, leaves=0, other_leaves=0,
        instrument=EQ, account=1, other_account=0, reason=1, type=EventType.RISK, side=0,
        cmd=CommandType.RESTRICT)]
    assert position(core, 1, EQ)["restricted"] == 1
    assert core.depth(EQ) == ([(10000, 1, 1), (9990, 5, 1)], [])  # resting orders stay
    assert refused(core, 2, SELL, 10500, 1) == R.RISK_RESTRICTED
    takes(core, 2, SELL, 20500, 1, instrument=FUT)  # another instrument: free
    takes(core, 3, SELL, 10500, 1, account=2)
    core.restrict(EQ, all_accounts=True)
    assert drained(core) == [risk_event(1)]
    assert instrument(core, EQ)["restricted"] == 1
    assert refused(core, 4, SELL, 10500, 1, account=2) == R.RISK_RESTRICTED_GLOBAL
    assert refused(core, 4, SELL, 10500, 1) == R.RISK_RESTRICTED
    core.restrict(EQ, restricted=False, account=1)
    assert drained(core) == [risk_event(0)]
    assert refused(core, 4, SELL, 10500, 1) == R.RISK_RESTRICTED_GLOBAL
    # a replace is checked too; a cancel never is
    assert core.replace(1, 10001, 1, account=1) == 1
    assert drained(core) == [rejected(1, 10001, 1, R.RISK_RESTRICTED_GLOBAL)]
    assert core.replace(9, 9990, 6, account=2) == 1       # more: held by the list
    assert drained(core) == [rejected(9, 9990, 6, R.RISK_RESTRICTED_GLOBAL)]
    core.replace(9, 9990, 3, account=2)                   # only less, same price: passes
    assert [e.type for e in drained(core)] == [EventType.REPLACED]
    assert position(core, 2, EQ)["open_buy_qty"] == 3
    core.restrict(EQ, restricted=False, all_accounts=True)
    drained(core)
    takes(core, 4, SELL, 10600, 1)
    core.restrict(EQ, all_accounts=True)
    core.cancel(4, account=1)
    assert drained(core)[1:] == [cancelled(4, 10600, 1, CancelCause.USER)]


# -- check 10: kill switch -----------------------------------------------------------------------

def kill_book(make_core):
    """Accounts 1 and 2 with resting orders on all three instruments (registered EQ, FUT,
    USDJPY), account 1 long 10 EQ."""
    core = core_with(make_core, acct(1, positions={EQ: (10, 100_000)}), acct(2))
    for oid, inst, side, price, account_id in [
        (1, EQ, BUY, 9900, 1), (2, EQ, BUY, 9950, 2), (3, EQ, BUY, 9950, 1),
        (4, EQ, SELL, 10100, 1), (5, FUT, SELL, 20100, 1), (6, USDJPY, BUY, 149000, 1),
        (7, USDJPY, SELL, 151000, 2),
    ]:
        takes(core, oid, side, price, 1, instrument=inst, account=account_id)
    return core


def kill_cancel(order_id, price):
    return cancelled(order_id, price, 1, CancelCause.KILL_SWITCH)


def test_an_account_kill_switch_cancels_its_orders_then_rejects_everything(make_core):
    core = kill_book(make_core)
    assert core.kill_switch(KILLED, account=1, seq=9, ts_ns=90) == 6
    events = core.drain_events()
    assert ev(events) == [risk_event(KILLED), kill_cancel(3, 9950), kill_cancel(1, 9900),
                          kill_cancel(4, 10100), kill_cancel(5, 20100), kill_cancel(6, 149000)]
    assert records(events)[0] == dict(
        seq=9, ts_ns=90, order_id=0, other_id=0, price=0, qty=0, leaves=0, other_leaves=0,
        instrument=0, account=1, other_account=0, reason=KILLED, type=EventType.RISK, side=0,
        cmd=CommandType.KILL_SWITCH)
    assert records(events)[1] == dict(
        seq=9, ts_ns=90, order_id=3, other_id=0, price=9950, qty=1, leaves=0, other_leaves=0,
        instrument=EQ, account=1, other_account=0, reason=CancelCause.KILL_SWITCH,
        type=EventType.CANCELLED, side=BUY, cmd=CommandType.KILL_SWITCH)
    assert core.order(3)["status"] == OrderStatus.CANCELLED
    assert core.open_orders == 2
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)
    assert cash(core, 1, JPY)["open_buy_notional"] == 0
    assert account(core, 1)["kill"] == KILLED
    assert refused(core, 10, SELL, 10000, 1) == R.RISK_KILL_SWITCH  # even reducing
    assert refused(core, 10, BUY, 0, 1, ord_type=MARKET) == R.RISK_KILL_SWITCH
    takes(core, 10, BUY, 9900, 1, account=2)
    core.kill_switch(ACTIVE, account=1)
    assert drained(core) == [risk_event(ACTIVE)]
    takes(core, 11, BUY, 9900, 1)


def test_the_global_kill_switch_cancels_every_account_in_mass_cancel_order(make_core):
    core = kill_book(make_core)
    assert core.kill_switch(KILLED, account=77, all_accounts=True) == 8
    assert drained(core) == [
        risk_event(KILLED), kill_cancel(2, 9950), kill_cancel(3, 9950), kill_cancel(1, 9900),
        kill_cancel(4, 10100), kill_cancel(5, 20100), kill_cancel(6, 149000),
        kill_cancel(7, 151000)]
    assert core.open_orders == 0
    assert core.risk_state()["global"]["kill"].tolist() == [KILLED]
    assert [account(core, a)["kill"] for a in (1, 2)] == [ACTIVE, ACTIVE]
    for a in (1, 2):
        assert exposure(core, a, EQ) == (0, 0, 0, 0)
    assert refused(core, 10, BUY, 9900, 1, account=2) == R.RISK_KILL_SWITCH_GLOBAL
    core.kill_switch(KILLED, account=1)
    drained(core)
    assert refused(core, 10, BUY, 9900, 1, account=1) == R.RISK_KILL_SWITCH  # its own first
    core.kill_switch(REDUCE_ONLY, account=2)
    drained(core)
    assert refused(core, 10, BUY, 9900, 1, account=2) == R.RISK_KILL_SWITCH_GLOBAL  # higher
    core.kill_switch(ACTIVE, all_accounts=True)
    assert drained(core) == [risk_event(ACTIVE)]
    assert refused(core, 10, BUY, 9900, 1, account=2) == R.RISK_REDUCE_ONLY
    assert refused(core, 10, BUY, 9900, 1, account=1) == R.RISK_KILL_SWITCH


def test_active_cancels_nothing(make_core):
    core = kill_book(make_core)
    assert core.kill_switch(ACTIVE, account=1) == 1
    assert core.kill_switch(ACTIVE, all_accounts=True) == 1
    assert drained(core) == [risk_event(ACTIVE), risk_event(ACTIVE)]
    assert core.open_orders == 7


def test_reduce_only_cancels_then_passes_only_orders_that_reduce(make_core):
    core = core_with(make_core, acct(1, positions={EQ: (10, 100_000),
                                                   USDJPY: (-5, 75_000_000)}), acct(2))
    takes(core, 1, BUY, 9900, 1)
    takes(core, 2, SELL, 10100, 10)
    assert core.kill_switch(REDUCE_ONLY, account=1) == 3
    assert drained(core) == [risk_event(REDUCE_ONLY),
                             cancelled(1, 9900, 1, CancelCause.KILL_SWITCH),
                             cancelled(2, 10100, 10, CancelCause.KILL_SWITCH)]
    # long 10 EQ: sells up to 10 in all, no buys
    assert refused(core, 3, BUY, 9900, 1) == R.RISK_REDUCE_ONLY
    assert refused(core, 3, SELL, 10100, 11) == R.RISK_REDUCE_ONLY
    takes(core, 3, SELL, 10100, 6)
    assert refused(core, 4, SELL, 10100, 5) == R.RISK_REDUCE_ONLY  # 6 open + 5 > 10
    takes(core, 4, SELL, 10100, 4)
    # flat FUT: nothing passes
    assert refused(core, 5, BUY, 20000, 1, instrument=FUT) == R.RISK_REDUCE_ONLY
    assert refused(core, 5, SELL, 20000, 1, instrument=FUT) == R.RISK_REDUCE_ONLY
    # short 5 USDJPY: buys up to 5, no sells
    assert refused(core, 5, SELL, 150000, 1, instrument=USDJPY) == R.RISK_REDUCE_ONLY
    assert refused(core, 5, BUY, 150000, 6, instrument=USDJPY) == R.RISK_REDUCE_ONLY
    takes(core, 5, BUY, 150000, 5, instrument=USDJPY)
    # a reduce-only order trades like any other
    takes(core, 6, BUY, 10100, 1, account=2)  # with order 3
    assert position(core, 1, EQ)["position"] == 9
    # the reduce-only orders rest; setting the switch again cancels them again
    assert core.open_orders == 3
    core.kill_switch(REDUCE_ONLY, account=1)
    assert [e.type for e in drained(core)] == [EventType.RISK] + [EventType.CANCELLED] * 3
    core.kill_switch(REDUCE_ONLY, all_accounts=True)
    drained(core)
    core.kill_switch(ACTIVE, account=1)
    drained(core)
    assert refused(core, 7, BUY, 9900, 1) == R.RISK_REDUCE_ONLY  # the global one still holds
    core.kill_switch(ACTIVE, all_accounts=True)
    drained(core)
    takes(core, 7, BUY, 9900, 1)


def test_cancels_are_never_blocked_by_risk(make_core):
    core = core_with(make_core, acct(1, positions={EQ: (10, 100_000)}))
    core.kill_switch(REDUCE_ONLY, account=1)
    drained(core)
    takes(core, 1, SELL, 10100, 3)
    core.restrict(EQ, account=1)
    core.restrict(EQ, all_accounts=True)
    core.set_risk(K.RATE, 1, account=1, aux=1)
    core.set_risk(K.MAX_OPEN_ORDERS, 0, account=1)
    drained(core)
    core.cancel(1, account=1)
    assert drained(core) == [cancelled(1, 10100, 3, CancelCause.USER)]
    assert exposure(core, 1, EQ) == (0, 0, 0, 0)


# -- the order of the checks -------------------------------------------------------------------

def test_an_order_failing_every_check_gets_each_code_in_turn_as_the_earlier_ones_are_fixed(
        make_core):
    strict = dict(account=3, cash={}, max_order_qty=1, max_order_notional=0, position_limit=0,
                  short_limit=0, max_open_orders=0, rate_per_s=1, rate_burst=1, tokens_nano=0,
                  restricted=[EQ], kill=KILLED)
    core = core_with(make_core, strict)
    core.restrict(EQ, all_accounts=True)
    drained(core)

    def attempt(price=10000):
        return refused(core, 1, BUY, price, 2, account=3)

    def admin(call):
        assert call() == 1
        assert drained(core)[0].type == EventType.RISK

    assert attempt(11001) == R.RISK_PRICE_BAND
    assert attempt() == R.RISK_MAX_ORDER_QTY
    admin(lambda: core.set_risk(K.MAX_ORDER_QTY, 2, account=3, instrument=EQ))
    assert attempt() == R.RISK_MAX_ORDER_NOTIONAL
    admin(lambda: core.set_risk(K.MAX_ORDER_NOTIONAL, 20_000, account=3, instrument=EQ))
    assert attempt() == R.RISK_INSUFFICIENT_CASH
    admin(lambda: core.set_risk(K.CASH_ADJUST, 20_000, account=3, instrument=USD))
    assert attempt() == R.RISK_POSITION_LIMIT
    admin(lambda: core.set_risk(K.POSITION_LIMIT, 2, account=3))
    assert attempt() == R.RISK_MAX_OPEN_ORDERS
    admin(lambda: core.set_risk(K.MAX_OPEN_ORDERS, 1, account=3))
    assert attempt() == R.RISK_RATE_LIMITED
    admin(lambda: core.set_risk(K.RATE, 1, account=3, aux=1))
    assert attempt() == R.RISK_RESTRICTED
    admin(lambda: core.restrict(EQ, restricted=False, account=3))
    assert attempt() == R.RISK_RESTRICTED_GLOBAL
    admin(lambda: core.restrict(EQ, restricted=False, all_accounts=True))
    assert attempt() == R.RISK_KILL_SWITCH
    admin(lambda: core.kill_switch(KILLED, all_accounts=True))
    admin(lambda: core.kill_switch(ACTIVE, account=3))
    assert attempt() == R.RISK_KILL_SWITCH_GLOBAL
    admin(lambda: core.kill_switch(REDUCE_ONLY, all_accounts=True))
    assert attempt() == R.RISK_REDUCE_ONLY
    admin(lambda: core.kill_switch(ACTIVE, all_accounts=True))
    assert takes(core, 1, BUY, 10000, 2, account=3) == [accepted(1, 10000, 2)]
    assert account(core, 3)["tokens_nano"] == 0
    assert exposure(core, 3, EQ) == (1, 2, 0, 20_000)


def test_a_market_order_without_a_reference_fails_before_its_size(make_core):
    no_ref = (EQ, USD, 1, 1000, 0, 0)
    core = core_with(make_core, acct(1, max_order_qty=0), instruments=[no_ref])
    assert refused(core, 1, BUY, 0, 5, ord_type=MARKET) == R.RISK_NO_REFERENCE_PRICE
    assert refused(core, 1, BUY, 10, 5) == R.RISK_MAX_ORDER_QTY


# -- admin commands -----------------------------------------------------------------------------

SET_RISK_CASES = [
    # (id, set_risk arguments, what changes: (table reader, expected))
    ("max order qty, one instrument", dict(kind=K.MAX_ORDER_QTY, value=7, account=1,
                                           instrument=FUT),
     lambda c: [position(c, 1, i)["max_order_qty"] for i in IDS], [UNLIMITED, 7, UNLIMITED]),
    ("max order qty, every instrument", dict(kind=K.MAX_ORDER_QTY, value=0, account=1),
     lambda c: [position(c, 1, i)["max_order_qty"] for i in IDS], [0, 0, 0]),
    ("max order notional", dict(kind=K.MAX_ORDER_NOTIONAL, value=12, account=2, instrument=EQ),
     lambda c: [position(c, a, EQ)["max_order_notional"] for a in (1, 2)], [UNLIMITED, 12]),
    ("position limit", dict(kind=K.POSITION_LIMIT, value=INT64_MAX, account=1, instrument=EQ),
     lambda c: position(c, 1, EQ)["position_limit"], INT64_MAX),
    ("short limit, every instrument", dict(kind=K.SHORT_LIMIT, value=3, account=2),
     lambda c: [position(c, a, i)["short_limit"] for a in (1, 2) for i in IDS],
     [UNLIMITED] * 3 + [3] * 3),
    ("max open orders", dict(kind=K.MAX_OPEN_ORDERS, value=0, account=2),
     lambda c: account(c, 2)["max_open_orders"], 0),
    ("rate", dict(kind=K.RATE, value=10 ** 9, aux=10 ** 9, account=1),
     lambda c: [account(c, 1)[f] for f in ("rate_per_s", "rate_burst", "tokens_nano",
                                           "last_ts")], [10 ** 9, 10 ** 9, 10 ** 18, 70]),
    ("credit", dict(kind=K.CREDIT, value=123, account=1, instrument=JPY),
     lambda c: [cash(c, 1, USD)["credit"], cash(c, 1, JPY)["credit"]], [0, 123]),
    ("cash deposit", dict(kind=K.CASH_ADJUST, value=500, account=2, instrument=USD),
     lambda c: cash(c, 2, USD)["cash"], RICH + 500),
    ("cash withdrawal below zero", dict(kind=K.CASH_ADJUST, value=-RICH - 1, account=2,
                                        instrument=JPY),
     lambda c: [cash(c, 2, USD)["cash"], cash(c, 2, JPY)["cash"]], [RICH, -1]),
    ("price band (the account ignored)", dict(kind=K.PRICE_BAND, value=1_000_000, account=99,
                                              instrument=FUT),
     lambda c: instrument(c, FUT)["band_bps"], 1_000_000),
    ("price band off", dict(kind=K.PRICE_BAND, value=0, instrument=EQ),
     lambda c: instrument(c, EQ)["band_bps"], 0),
    ("reference price", dict(kind=K.REFERENCE_PRICE, value=0, instrument=USDJPY),
     lambda c: instrument(c, USDJPY)["ref_price"], 0),
    ("fee", dict(kind=K.FEE, value=1_000_000, instrument=EQ),
     lambda c: instrument(c, EQ)["fee_ppm"], 1_000_000),
    ("fx rate", dict(kind=K.FX_RATE, value=1, instrument=JPY),
     lambda c: c.risk_state()["currencies"]["fx"].tolist(), [10 ** 16, 1]),
]


@pytest.mark.parametrize("args, read, want", [c[1:] for c in SET_RISK_CASES],
                         ids=[c[0] for c in SET_RISK_CASES])
def test_set_risk_sets_each_kind_with_one_risk_event(make_core, args, read, want):
    core = core_with(make_core, acct(1), acct(2))
    assert core.set_risk(**args, seq=7, ts_ns=70) == 1
    assert records(core.drain_events()) == [dict(
        seq=7, ts_ns=70, order_id=0, other_id=0, price=args.get("aux", 0), qty=args["value"],
        leaves=0, other_leaves=0, instrument=args.get("instrument", 0),
        account=args.get("account", 0), other_account=0, reason=args["kind"],
        type=EventType.RISK, side=0, cmd=CommandType.SET_RISK)]
    assert read(core) == want


def test_with_an_instrument_registered_as_0_instrument_0_still_means_every_instrument(
        make_core):
    # docs/RISK.md: limit kinds take 0 as "every instrument"; instrument kinds need an
    # instrument "≠ 0"; RESTRICT needs a registered one (0 is, here)
    zero = (0, USD, 1, 1000, 500, 0)
    core = core_with(make_core, acct(1), instruments=[zero, EQUITY])
    core.set_risk(K.MAX_ORDER_QTY, 3, account=1, instrument=0)
    core.restrict(0, account=1)
    assert drained(core) == [risk_event(K.MAX_ORDER_QTY, qty=3), risk_event(1)]
    assert [position(core, 1, i)["max_order_qty"] for i in (0, EQ)] == [3, 3]
    assert position(core, 1, 0)["restricted"] == 1
    for kind in (K.PRICE_BAND, K.REFERENCE_PRICE, K.FEE):
        before = state_of(core)
        assert core.set_risk(kind, 7, instrument=0) == 1
        assert drained(core) == [rejected(0, 0, 7, R.BOOK_UNKNOWN_INSTRUMENT)]
        assert state_of(core) == before


def test_lowering_a_limit_leaves_resting_orders_alone(make_core):
    core = core_with(make_core, acct(1), acct(2))
    takes(core, 1, BUY, 10000, 10)
    for kind in (K.MAX_ORDER_QTY, K.MAX_ORDER_NOTIONAL, K.POSITION_LIMIT, K.MAX_OPEN_ORDERS):
        core.set_risk(kind, 0, account=1, instrument=EQ if kind != K.MAX_OPEN_ORDERS else 0)
    core.set_risk(K.PRICE_BAND, 1, instrument=EQ)  # 10000 +- 1
    core.set_risk(K.CASH_ADJUST, -RICH, account=1, instrument=USD)
    assert [e.type for e in drained(core)] == [EventType.RISK] * 6
    assert core.level_orders(EQ, BUY, 10000) == [(1, 10)]
    assert exposure(core, 1, EQ) == (1, 10, 0, 100_000)
    assert refused(core, 2, BUY, 10000, 1) == R.RISK_MAX_ORDER_QTY
    takes(core, 2, SELL, 10000, 4, account=2)  # and it still trades as a maker
    assert exposure(core, 1, EQ) == (1, 6, 0, 60_000)
    assert (cash(core, 1)["cash"], position(core, 1, EQ)["position"]) == (-40_000, 4)


def risk_cmd(cmd, **fields):
    return raw_cmd(cmd=cmd, seq=5, ts_ns=50, order_id=31, **fields)


ADMIN_REJECTS = [
    # SET_RISK: kind, then account, then instrument, then currency, then value
    ("set risk: kind 0", dict(cmd=8, ord_type=0, account=1), R.RISK_INVALID_VALUE),
    ("set risk: kind 13 before all else", dict(cmd=8, ord_type=13, account=99, instrument=99,
                                               qty=-1), R.RISK_INVALID_VALUE),
    ("set risk: kind 255", dict(cmd=8, ord_type=255), R.RISK_INVALID_VALUE),
    ("set risk: unknown account", dict(cmd=8, ord_type=K.MAX_ORDER_QTY, account=99,
                                       instrument=EQ, qty=1), R.RISK_UNKNOWN_ACCOUNT),
    ("set risk: account 0", dict(cmd=8, ord_type=K.MAX_OPEN_ORDERS, qty=1),
     R.RISK_UNKNOWN_ACCOUNT),
    ("set risk: rate, unknown account", dict(cmd=8, ord_type=K.RATE, account=3, qty=1, price=1),
     R.RISK_UNKNOWN_ACCOUNT),
    ("set risk: account before instrument", dict(cmd=8, ord_type=K.POSITION_LIMIT, account=99,
                                                 instrument=99, qty=-1),
     R.RISK_UNKNOWN_ACCOUNT),
    ("set risk: account before currency", dict(cmd=8, ord_type=K.CREDIT, account=99,
                                               instrument=5, qty=-1), R.RISK_UNKNOWN_ACCOUNT),
    ("set risk: cash adjust, unknown account", dict(cmd=8, ord_type=K.CASH_ADJUST, account=99,
                                                    qty=1), R.RISK_UNKNOWN_ACCOUNT),
    ("set risk: limit, unregistered instrument", dict(cmd=8, ord_type=K.SHORT_LIMIT, account=1,
                                                      instrument=99, qty=-1),
     R.BOOK_UNKNOWN_INSTRUMENT),
    ("set risk: band, unregistered instrument", dict(cmd=8, ord_type=K.PRICE_BAND,
                                                     instrument=99, qty=-1),
     R.BOOK_UNKNOWN_INSTRUMENT),
    ("set risk: reference price, unregistered", dict(cmd=8, ord_type=K.REFERENCE_PRICE,
                                                     instrument=14, qty=1),
     R.BOOK_UNKNOWN_INSTRUMENT),
    ("set risk: fee needs an instrument, not 0", dict(cmd=8, ord_type=K.FEE, qty=1),
     R.BOOK_UNKNOWN_INSTRUMENT),
    ("set risk: credit, currency = count", dict(cmd=8, ord_type=K.CREDIT, account=1,
                                                instrument=2, qty=1), R.RISK_INVALID_VALUE),
    ("set risk: cash adjust, currency past count", dict(cmd=8, ord_type=K.CASH_ADJUST,
                                                        account=1, instrument=7, qty=1),
     R.RISK_INVALID_VALUE),
    ("set risk: fx rate, currency = count", dict(cmd=8, ord_type=K.FX_RATE, instrument=2,
                                                 qty=1), R.RISK_INVALID_VALUE),
    ("set risk: max order qty -1", dict(cmd=8, ord_type=K.MAX_ORDER_QTY, account=1,
                                        instrument=EQ, qty=-1), R.RISK_INVALID_VALUE),
    ("set risk: max order notional -1", dict(cmd=8, ord_type=K.MAX_ORDER_NOTIONAL, account=1,
                                             qty=-1), R.RISK_INVALID_VALUE),
    ("set risk: position limit min", dict(cmd=8, ord_type=K.POSITION_LIMIT, account=1,
                                          qty=-(2 ** 63)), R.RISK_INVALID_VALUE),
    ("set risk: short limit -1", dict(cmd=8, ord_type=K.SHORT_LIMIT, account=1, instrument=FUT,
                                      qty=-1), R.RISK_INVALID_VALUE),
    ("set risk: max open orders -1", dict(cmd=8, ord_type=K.MAX_OPEN_ORDERS, account=1,
                                          qty=-1), R.RISK_INVALID_VALUE),
    ("set risk: rate above 10**9", dict(cmd=8, ord_type=K.RATE, account=1, qty=10 ** 9 + 1,
                                        price=1), R.RISK_INVALID_VALUE),
    ("set risk: rate -1", dict(cmd=8, ord_type=K.RATE, account=1, qty=-1, price=1),
     R.RISK_INVALID_VALUE),
    ("set risk: burst 0", dict(cmd=8, ord_type=K.RATE, account=1, qty=1, price=0),
     R.RISK_INVALID_VALUE),
    ("set risk: burst 0 with the rate off", dict(cmd=8, ord_type=K.RATE, account=1, qty=0,
                                                 price=0), R.RISK_INVALID_VALUE),
    ("set risk: burst above 10**9", dict(cmd=8, ord_type=K.RATE, account=1, qty=1,
                                         price=10 ** 9 + 1), R.RISK_INVALID_VALUE),
    ("set risk: credit -1", dict(cmd=8, ord_type=K.CREDIT, account=1, instrument=JPY, qty=-1),
     R.RISK_INVALID_VALUE),
    ("set risk: cash adjust 0", dict(cmd=8, ord_type=K.CASH_ADJUST, account=1, qty=0),
     R.RISK_INVALID_VALUE),
    ("set risk: cash adjust past int64", dict(cmd=8, ord_type=K.CASH_ADJUST, account=1,
                                              qty=INT64_MAX - RICH + 1), R.RISK_INVALID_VALUE),
    ("set risk: cash adjust below int64", dict(cmd=8, ord_type=K.CASH_ADJUST, account=2,
                                               qty=-(2 ** 63)), R.RISK_INVALID_VALUE),
    ("set risk: band above 10**6", dict(cmd=8, ord_type=K.PRICE_BAND, instrument=EQ,
                                        qty=1_000_001), R.RISK_INVALID_VALUE),
    ("set risk: band -1", dict(cmd=8, ord_type=K.PRICE_BAND, instrument=EQ, qty=-1),
     R.RISK_INVALID_VALUE),
    ("set risk: reference price -1", dict(cmd=8, ord_type=K.REFERENCE_PRICE, instrument=EQ,
                                          qty=-1), R.RISK_INVALID_VALUE),
    ("set risk: fee above 10**6", dict(cmd=8, ord_type=K.FEE, instrument=EQ, qty=1_000_001),
     R.RISK_INVALID_VALUE),
    ("set risk: fee -1", dict(cmd=8, ord_type=K.FEE, instrument=EQ, qty=-1),
     R.RISK_INVALID_VALUE),
    ("set risk: fx rate 0", dict(cmd=8, ord_type=K.FX_RATE, instrument=USD, qty=0),
     R.RISK_INVALID_VALUE),
    ("set risk: fx rate -1", dict(cmd=8, ord_type=K.FX_RATE, instrument=JPY, qty=-1),
     R.RISK_INVALID_VALUE),
    ("set risk: post-only flag", dict(cmd=8, ord_type=K.FEE, instrument=EQ, qty=1,
                                      flags=Flags.POST_ONLY), R.BOOK_INVALID_INSTRUCTIONS),
    ("set risk: flags before the kind", dict(cmd=8, ord_type=0, flags=4),
     R.BOOK_INVALID_INSTRUCTIONS),
    # KILL_SWITCH: flags, mode, account
    ("kill: mode 3", dict(cmd=9, side=3, account=1), R.RISK_INVALID_VALUE),
    ("kill: mode before account", dict(cmd=9, side=255, account=99), R.RISK_INVALID_VALUE),
    ("kill: mode 3, all accounts", dict(cmd=9, side=3, flags=Flags.ALL_ACCOUNTS),
     R.RISK_INVALID_VALUE),
    ("kill: unknown account", dict(cmd=9, side=KILLED, account=99), R.RISK_UNKNOWN_ACCOUNT),
    ("kill: account 0", dict(cmd=9, side=ACTIVE), R.RISK_UNKNOWN_ACCOUNT),
    ("kill: flags before mode", dict(cmd=9, side=3, flags=Flags.POST_ONLY | Flags.ALL_ACCOUNTS),
     R.BOOK_INVALID_INSTRUCTIONS),
    # RESTRICT: flags, value, instrument, account
    ("restrict: side 2", dict(cmd=10, side=2, instrument=EQ, account=1), R.RISK_INVALID_VALUE),
    ("restrict: side before instrument", dict(cmd=10, side=2, instrument=99, account=99),
     R.RISK_INVALID_VALUE),
    ("restrict: unknown instrument", dict(cmd=10, side=1, instrument=99, account=1),
     R.BOOK_UNKNOWN_INSTRUMENT),
    ("restrict: instrument 0", dict(cmd=10, side=0, account=1), R.BOOK_UNKNOWN_INSTRUMENT),
    ("restrict: instrument before account", dict(cmd=10, side=1, instrument=99, account=99),
     R.BOOK_UNKNOWN_INSTRUMENT),
    ("restrict: global, unknown instrument", dict(cmd=10, side=1, instrument=99,
                                                  flags=Flags.ALL_ACCOUNTS),
     R.BOOK_UNKNOWN_INSTRUMENT),
    ("restrict: unknown account", dict(cmd=10, side=1, instrument=EQ, account=99),
     R.RISK_UNKNOWN_ACCOUNT),
    ("restrict: unknown flag", dict(cmd=10, side=1, instrument=EQ, account=1, flags=8),
     R.BOOK_INVALID_INSTRUCTIONS),
]


@pytest.mark.parametrize("fields, reason", [c[1:] for c in ADMIN_REJECTS],
                         ids=[c[0] for c in ADMIN_REJECTS])
def test_a_risk_admin_command_failing_a_check_is_rejected_verbatim_and_changes_nothing(
        make_core, fields, reason):
    core = core_with(make_core, acct(1), acct(2, cash={USD: -5}))
    takes(core, 1, BUY, 10000, 2)
    row = risk_cmd(**fields)
    before = state_of(core)
    out = core.process(commands([row]))
    c = dict(zip(("seq", "ts_ns", "order_id", "price", "qty", "instrument", "account", "cmd",
                  "side", "ord_type", "tif", "flags"), row))
    assert records(out) == [dict(
        seq=5, ts_ns=50, order_id=31, other_id=0, price=c["price"], qty=c["qty"], leaves=0,
        other_leaves=0, instrument=c["instrument"], account=c["account"], other_account=0,
        reason=reason, type=EventType.REJECTED, side=c["side"], cmd=c["cmd"])]
    assert state_of(core) == before
    assert core.order(31) is None  # not recorded, like any rejected admin command
    assert core.open_orders == 1


def test_global_admin_commands_ignore_the_account(make_core):
    core = core_with(make_core, acct(1))
    out = core.process(commands([
        risk_cmd(cmd=9, side=REDUCE_ONLY, account=99, flags=Flags.ALL_ACCOUNTS),
        risk_cmd(cmd=10, side=1, instrument=FUT, account=99, flags=Flags.ALL_ACCOUNTS),
        risk_cmd(cmd=8, ord_type=K.FEE, instrument=FUT, account=99, qty=5,
                 flags=Flags.ALL_ACCOUNTS),  # allowed on SET_RISK, and ignored
    ]))
    assert [(r["type"], r["reason"], r["account"], r["side"], r["qty"]) for r in records(out)] \
        == [(EventType.RISK, REDUCE_ONLY, 99, 0, 0), (EventType.RISK, 1, 99, 0, 0),
            (EventType.RISK, K.FEE, 99, 0, 5)]
    assert core.risk_state()["global"]["kill"].tolist() == [REDUCE_ONLY]
    assert instrument(core, FUT)["restricted"] == 1
    assert instrument(core, FUT)["fee_ppm"] == 5


def test_risk_admin_commands_without_risk_are_rejected_risk_disabled(make_core):
    core = make_core(EQ)
    core.submit(1, EQ, BUY, 100, 5)
    drained(core)
    before = core.state_digest()
    assert core.set_risk(K.FEE, 5, account=1, instrument=EQ, aux=3, seq=1, ts_ns=10) == 1
    assert core.kill_switch(KILLED, account=1, all_accounts=True, seq=2, ts_ns=20) == 1
    assert core.restrict(EQ, account=2, seq=3, ts_ns=30) == 1
    assert [(r["type"], r["reason"], r["cmd"], r["side"], r["qty"], r["price"],
             r["instrument"], r["account"], r["seq"])
            for r in records(core.drain_events())] == [
        (EventType.REJECTED, R.RISK_DISABLED, CommandType.SET_RISK, 0, 5, 3, EQ, 1, 1),
        (EventType.REJECTED, R.RISK_DISABLED, CommandType.KILL_SWITCH, KILLED, 0, 0, 0, 1, 2),
        (EventType.REJECTED, R.RISK_DISABLED, CommandType.RESTRICT, 1, 0, 0, EQ, 2, 3)]
    # whatever else is wrong with them
    out = core.process(commands([risk_cmd(cmd=8, ord_type=0, flags=0xFFFF),
                                 risk_cmd(cmd=9, side=7), risk_cmd(cmd=10, side=5)]))
    assert [r["reason"] for r in records(out)] == [R.RISK_DISABLED] * 3
    assert core.state_digest() == before
    assert core.open_orders == 1 and core.risk_state() is None


def test_per_call_risk_arguments_out_of_their_field_range_raise_and_do_nothing(make_core):
    core = core_with(make_core, acct(1))
    for call in (lambda: core.set_risk(256, 1, account=1),
                 lambda: core.set_risk(K.FEE, 2 ** 63, instrument=EQ),
                 lambda: core.set_risk(K.FEE, 1, instrument=-1),
                 lambda: core.kill_switch(256, account=1),
                 lambda: core.kill_switch(KILLED, account=2 ** 32),
                 lambda: core.restrict(2 ** 32)):
        with pytest.raises(OverflowError):
            call()
    assert core.pending_events == 0


def test_process_and_the_per_call_api_agree_with_risk_on(make_core):
    def rows():
        yield raw_cmd(cmd=1, order_id=1, instrument=EQ, account=1, side=BUY, ord_type=LIMIT,
                      tif=GTC, price=10000, qty=5)
        yield raw_cmd(cmd=1, order_id=2, instrument=EQ, account=2, side=SELL, ord_type=LIMIT,
                      tif=GTC, price=9990, qty=3)
        yield raw_cmd(cmd=8, ord_type=K.FEE, instrument=EQ, qty=100)
        yield raw_cmd(cmd=1, order_id=3, instrument=EQ, account=2, side=SELL, ord_type=MARKET,
                      tif=IOC, qty=4)
        yield raw_cmd(cmd=10, instrument=FUT, account=1, side=1)
        yield raw_cmd(cmd=1, order_id=4, instrument=FUT, account=1, side=BUY, ord_type=LIMIT,
                      tif=GTC, price=20000, qty=1)
        yield raw_cmd(cmd=1, order_id=5, instrument=FUT, account=2, side=BUY, ord_type=LIMIT,
                      tif=GTC, price=20000, qty=1)
        yield raw_cmd(cmd=3, order_id=5, account=2, price=20005, qty=2)
        yield raw_cmd(cmd=8, ord_type=K.RATE, account=2, qty=1, price=1)
        yield raw_cmd(cmd=1, order_id=6, instrument=EQ, account=2, side=BUY, ord_type=LIMIT,
                      tif=GTC, price=9000, qty=1)
        yield raw_cmd(cmd=1, order_id=7, instrument=EQ, account=2, side=BUY, ord_type=LIMIT,
                      tif=GTC, price=9000, qty=1)
        yield raw_cmd(cmd=9, account=2, side=KILLED)
        yield raw_cmd(cmd=2, order_id=1, account=1)
        yield raw_cmd(cmd=9, side=REDUCE_ONLY, flags=Flags.ALL_ACCOUNTS)
        yield raw_cmd(cmd=8, ord_type=99)
    script = [(i + 1, 10 * (i + 1)) + r[2:] for i, r in enumerate(rows())]
    per_call, batch = (core_with(make_core, acct(1), acct(2)) for _ in range(2))
    counts = [send(per_call, r) for r in script]
    events, out = per_call.drain_events(), batch.process(commands(script))
    assert out.tobytes() == events.tobytes()
    assert sum(counts) == len(out)
    assert per_call.state_digest() == batch.state_digest()
    assert tables_bytes(per_call) == tables_bytes(batch)
    assert {e.type for e in ev(out)} == set(EventType) - {EventType.INSTRUMENT_STATE,
                                                          *ROUTING_EVENTS}
