"""The ``[risk]`` table and the accounts' risk fields (docs/RISK.md, "Configuration"): a valid
config builds exactly the integer tables the core takes, every bad one raises a ConfigError
naming the file and the field, and the embedded default config builds tables."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.config import (
    AccountConfig,
    AccountInstrumentConfig,
    CashConfig,
    ConfigError,
    EngineConfig,
    RiskConfig,
    RiskCurrencyConfig,
    RiskInstrumentConfig,
    default_config,
    load_config,
    parse_config,
)
from engine.instruments import GridError, InstrumentSet
from engine.risk.setup import RiskSetup, build_tables
from engine.schema import RISK_TABLES, UNLIMITED, KillSwitch, Reason

ALICE_HASH = ("sha256$26e7f6c9d6e7540b1bf2ea8be6b9e219$"
              "157e6244ce5cb19b18dc6e049caed203cf382916f6ddaf8b35452ffa01211c39")
BOB_HASH = ("sha256$4ce6696709ca5b4bbcf75951b259b10b$"
            "38045ec5966afcec25a85ba4f0dec70d994cd45b2738104d98e7956fd7fc14f9")

INSTRUMENTS = """\
[[instruments]]
id = 3
symbol = "ES"
asset_class = "future"
tick_size = "0.25"
lot_size = "1"
multiplier = "50"
currency = "USD"

[[instruments]]
id = 1
symbol = "AAPL"
asset_class = "equity"
tick_size = "0.01"
lot_size = "1"
currency = "USD"

[[instruments]]
id = 7
symbol = "BUND"
asset_class = "bond"
tick_size = "0.001"
lot_size = "1000"
multiplier = "0.01"
currency = "EUR"
"""

# Instruments by id: AAPL (1), ES (3), BUND (7). Currencies in this order: EUR 0, USD 1.
# Accounts by id: dave (2), carol (5).
GOOD = INSTRUMENTS + f"""
[risk]
enabled = true
restricted = ["BUND"]
kill_switch = "reduce_only"

[[risk.currencies]]
code = "EUR"
rate = "1.08"

[[risk.currencies]]
code = "USD"
rate = "1"
decimals = 4

[[risk.instruments]]
symbol = "AAPL"
reference_price = "150.00"
price_band_bps = 500
fee_ppm = 100

[[accounts]]
id = 5
name = "carol"
api_key_hash = "{ALICE_HASH}"
base_currency = "USD"
max_open_orders = 50
rate_per_s = 10
max_order_notional = "250000"
kill_switch = "killed"
restricted = ["ES"]
cash = [
    {{ currency = "USD", amount = "1000000.50", credit = "5000" }},
    {{ currency = "EUR", amount = "-20" }},
]

[[accounts.instruments]]
symbol = "AAPL"
position = "-100"
avg_price = "149.125"
max_order_qty = "500"
max_order_notional = "100000"
position_limit = "2000"
short_limit = "300"

[[accounts.instruments]]
symbol = "ES"
position = "2"
avg_price = "5800.25"

[[accounts]]
id = 2
name = "dave"
api_key_hash = "{BOB_HASH}"
base_currency = "EUR"
rate_per_s = 5
rate_burst = 20
"""


def rows(arr: np.ndarray) -> list[dict[str, int]]:
    names = [n for n in arr.dtype.names if n != "_pad"]
    return [{n: int(r[n]) for n in names} for r in arr]


def check_like_enable_risk(tables: dict[str, np.ndarray], ids: list[int]) -> None:
    """The tables pass what Core.enable_risk checks (when that module is there)."""
    tables_mod = pytest.importorskip("engine.risk.tables")
    tables_mod.check_tables(tables, ids)


# -- a valid config ------------------------------------------------------------------------------

def test_valid_config_builds_exact_tables():
    cfg = parse_config(GOOD)
    tables = build_tables(cfg, InstrumentSet.from_config(cfg))
    assert list(tables) == list(RISK_TABLES)
    for name, dtype in RISK_TABLES.items():
        assert tables[name].dtype == dtype and tables[name].flags.c_contiguous

    assert rows(tables["currencies"]) == [{"fx": 108 * 10**14}, {"fx": 10**14}]
    assert rows(tables["global"]) == [{"kill": KillSwitch.REDUCE_ONLY}]
    # instruments in ascending id: AAPL (k = 0.01 * 10**4), ES (0.25 * 50 * 10**4), BUND
    # (0.001 * 1000 * 0.01 * 10**2)
    assert rows(tables["instruments"]) == [
        dict(instrument=1, ccy=1, k=100, band_bps=500, ref_price=15000, last_price=0,
             fee_ppm=100, restricted=0),
        dict(instrument=3, ccy=1, k=125000, band_bps=0, ref_price=0, last_price=0,
             fee_ppm=0, restricted=0),
        dict(instrument=7, ccy=0, k=1, band_bps=0, ref_price=0, last_price=0,
             fee_ppm=0, restricted=1),
    ]
    # accounts in ascending id: dave (2), carol (5)
    assert rows(tables["accounts"]) == [
        dict(account=2, base_ccy=0, kill=0, open_orders=0, max_open_orders=UNLIMITED,
             rate_per_s=5, rate_burst=20, tokens_nano=20 * 10**9, last_ts=0),
        dict(account=5, base_ccy=1, kill=KillSwitch.KILLED, open_orders=0, max_open_orders=50,
             rate_per_s=10, rate_burst=10, tokens_nano=10 * 10**9, last_ts=0),
    ]
    # cash row a * 2 + c
    assert rows(tables["cash"]) == [
        dict(cash=0, credit=0, open_buy_notional=0),
        dict(cash=0, credit=0, open_buy_notional=0),
        dict(cash=-2000, credit=0, open_buy_notional=0),
        dict(cash=10_000_005_000, credit=50_000_000, open_buy_notional=0),
    ]
    # position row a * 3 + i
    free = dict(position=0, cost=0, realized=0, fees=0, open_buy_qty=0, open_sell_qty=0,
                max_order_qty=UNLIMITED, max_order_notional=UNLIMITED,
                position_limit=UNLIMITED, short_limit=0, restricted=0)
    carol = dict(free, max_order_notional=250_000 * 10**4)
    assert rows(tables["positions"]) == [
        free, free, free,
        # AAPL short 100 at 149.125: cost 14912.5 USD; limits in lots and USD cash units
        dict(carol, position=-100, cost=149_125_000, max_order_qty=500,
             max_order_notional=100_000 * 10**4, position_limit=2000, short_limit=300),
        # ES long 2 at 5800.25 x 50; restricted for carol
        dict(carol, position=2, cost=5_800_250_000, restricted=1),
        carol,
    ]
    check_like_enable_risk(tables, [1, 3, 7])


def test_setup_conversions_for_the_edges():
    cfg = parse_config(GOOD)
    r = RiskSetup(cfg)
    assert r.enabled and r.currencies == ("EUR", "USD") and r.decimals == (2, 4)
    assert r.account_ids == [2, 5] and r.account_index(5) == 1
    assert r.currency_index("USD") == 1 and r.currency_index(0) == 0
    assert r.currency_decimals("EUR") == 2 and r.k("ES") == 125000 and r.k(7) == 1
    assert r.instrument_index("BUND") == 2
    assert r.cash_units("12.3456", "USD") == 123456 and r.cash_units(-3, 0) == -300
    assert r.cash_units(Decimal("1.10"), "EUR") == 110
    assert r.cash_amount(123456, "USD") == Decimal("12.3456")
    assert str(r.cash_amount(-300, "EUR")) == "-3.00"
    assert r.money(10_000_005_000, "USD") == "1000000.5000 USD"
    assert r.money(5, 0) == "0.05 EUR"
    assert r.fx_units("1.1", "EUR") == 11 * 10**15 and r.fx_units(2, "USD") == 2 * 10**14
    for bad, ccy in (("0.001", "EUR"), ("NaN", "USD"), ("1E+30", "USD")):
        with pytest.raises(GridError) as info:
            r.cash_units(bad, ccy)
        assert info.value.reason is Reason.EDGE_BAD_VALUE
    with pytest.raises(GridError, match="float"):
        r.cash_units(1.5, "USD")
    with pytest.raises(GridError, match="at most 16 decimal places"):
        r.fx_units("1.00000000000000001", "EUR")
    with pytest.raises(GridError, match="within int64"):
        r.fx_units("1000", "EUR")
    with pytest.raises(GridError):
        r.fx_units("0", "EUR")
    with pytest.raises(KeyError):
        r.currency_index("JPY")
    with pytest.raises(KeyError):
        r.currency_index(2)
    with pytest.raises(KeyError):
        r.account_index(9)


def test_tables_are_fresh_arrays_each_time():
    r = RiskSetup(parse_config(GOOD))
    a, b = r.tables(), r.tables()
    a["cash"]["cash"][:] = 1
    assert rows(b["cash"])[3]["cash"] == 10_000_005_000


def test_digest_is_stable_and_follows_the_risk_config():
    cfg = parse_config(GOOD)
    r = RiskSetup(cfg)
    assert r.digest() == RiskSetup(parse_config(GOOD)).digest()
    assert len(r.digest()) == 64
    canon = r.canonical()
    assert msgspec.json.decode(msgspec.json.encode(canon)) == canon      # plain JSON
    assert canon["currencies"] == [
        {"code": "EUR", "decimals": 2, "rate": "1.08", "fx": 108 * 10**14},
        {"code": "USD", "decimals": 4, "rate": "1", "fx": 10**14}]
    dave = canon["accounts"][0]
    assert dave["account"] == 2 and dave["positions"] == [] and dave["cash"] == []
    # the same values written differently give the same digest; another value another one
    same = parse_config(GOOD.replace('rate = "1.08"', 'rate = "1.0800"')
                        .replace('amount = "-20"', 'amount = "-20.00"'))
    assert RiskSetup(same).digest() == r.digest()
    other = parse_config(GOOD.replace('amount = "-20"', 'amount = "-21"'))
    assert RiskSetup(other).digest() != r.digest()
    # descriptions and gateway settings are not risk
    cosmetic = parse_config(GOOD + "[gateway]\nport = 7100\n")
    assert RiskSetup(cosmetic).digest() == r.digest()


def test_derived_decimals_are_the_fewest_places_at_least_two():
    cfg = parse_config(GOOD.replace("decimals = 4\n", ""))
    r = RiskSetup(cfg)
    assert r.decimals == (2, 2)                   # ES: 12.50 per tick x lot, AAPL 0.01
    assert r.k("ES") == 1250 and r.k("AAPL") == 1
    assert r.fx == (108 * 10**14, 10**16)
    eighths = parse_config(GOOD.replace("decimals = 4\n", "").replace(
        'tick_size = "0.25"', 'tick_size = "0.125"').replace('multiplier = "50"',
                                                             'multiplier = "5"'))
    assert RiskSetup(eighths).decimals == (2, 3)  # ES: 0.125 * 5 = 0.625 per tick x lot
    assert RiskSetup(eighths).k("ES") == 625
    tiny = parse_config(GOOD.replace("decimals = 4\n", "").replace(
        'lot_size = "1"\ncurrency = "USD"\n', 'lot_size = "0.0001"\ncurrency = "USD"\n', 1))
    assert RiskSetup(tiny).decimals == (2, 6)     # AAPL 0.01 * 0.0001


def test_risk_is_off_by_default_and_old_configs_are_unchanged():
    cfg = parse_config(INSTRUMENTS)
    assert cfg.risk == RiskConfig() and not cfg.risk.enabled
    assert cfg.risk.kill_switch == "active" and cfg.risk.currencies == ()
    acct = AccountConfig(id=1, name="a", api_key_hash=ALICE_HASH)
    assert (acct.base_currency, acct.max_open_orders, acct.rate_per_s, acct.rate_burst,
            acct.max_order_notional, acct.kill_switch, acct.restricted, acct.cash,
            acct.instruments) == (None, None, 0, None, None, "active", (), (), ())
    assert not acct.has_risk


def test_risk_off_checks_nothing_until_tables_are_built():
    # risk off: an account with a typo in its risk fields still loads ...
    text = GOOD.replace("enabled = true", "enabled = false").replace(
        'restricted = ["ES"]', 'restricted = ["ESS"]')
    cfg = parse_config(text)
    # ... and building the tables (which an engine does only with risk on) names it
    with pytest.raises(ConfigError, match=r"did you mean 'ES'\?") as info:
        build_tables(cfg, InstrumentSet.from_config(cfg))
    assert info.value.path == "$.accounts[0].restricted[0]"


def test_risk_off_builds_rows_only_for_accounts_with_risk_fields():
    text = GOOD.replace("enabled = true", "enabled = false") + f"""
[[accounts]]
id = 1
name = "eve"
api_key_hash = "{ALICE_HASH}"
"""
    tables = build_tables(parse_config(text))
    assert tables["accounts"]["account"].tolist() == [2, 5]
    on = parse_config(text.replace("enabled = false", "enabled = true")
                      .replace('name = "eve"', 'name = "eve"\nbase_currency = "USD"'))
    assert build_tables(on)["accounts"]["account"].tolist() == [1, 2, 5]


def test_plain_msgspec_decode_gives_the_same_config():
    assert msgspec.toml.decode(GOOD, type=EngineConfig) == parse_config(GOOD)


def test_direct_construction_is_validated():
    with pytest.raises(ConfigError, match=r"short_limit: Expected a decimal >= 0, got '-1'"):
        AccountInstrumentConfig(symbol="AAPL", short_limit=Decimal(-1))
    with pytest.raises(ConfigError, match=r"currency: Expected a 3-letter"):
        CashConfig(currency="usd", amount=Decimal(1))


def test_the_default_config_builds_tables():
    cfg = default_config()
    assert cfg.risk.enabled
    instruments = InstrumentSet.from_config(cfg)
    r = RiskSetup(cfg, instruments)
    tables = r.tables()
    check_like_enable_risk(tables, instruments.ids)
    assert r.currencies[0] == "USD" and set(r.currencies) >= {i.currency for i in instruments}
    assert r.account_ids == [1, 2, 9]
    usd = r.currency_index("USD")
    inst, accts = tables["instruments"], tables["accounts"]
    assert inst["instrument"].tolist() == instruments.ids
    # every instrument has a reference price and a band
    assert (inst["ref_price"] > 0).all() and (inst["band_bps"] > 0).all()
    assert (accts["base_ccy"] == usd).all()
    n_inst, n_ccy = len(inst), len(r.currencies)
    for a, account in enumerate(accts["account"].tolist()):
        cash = tables["cash"][a * n_ccy:(a + 1) * n_ccy]
        pos = tables["positions"][a * n_inst:(a + 1) * n_inst]
        if account == 9:
            assert (cash["cash"] == 0).all()
            continue
        assert r.cash_amount(int(cash["cash"][usd]), "USD") >= 10_000_000
        # alice and bob can buy and sell every instrument: cash in its currency, and a position
        # or a short allowance of at least its minimum order
        for i, instrument in enumerate(instruments):
            assert cash["cash"][inst["ccy"][i]] > 0
            assert pos["position"][i] + pos["short_limit"][i] >= instrument.min_lots
            # a minimum order at the reference price is affordable
            notional = int(inst["ref_price"][i]) * instrument.min_lots * int(inst["k"][i])
            assert notional <= int(cash["cash"][inst["ccy"][i]])


# -- bad configs -----------------------------------------------------------------------------------

def _sub(old: str, new: str, count: int = 1):
    def breaker(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, count)
    return breaker


def _add(extra: str):
    return lambda text: text + extra


# (name, how to break GOOD, field path in the message, words in the message)
BAD = [
    # currencies
    ("unknown base currency", _sub('base_currency = "EUR"', 'base_currency = "JPY"'),
     "$.accounts[1].base_currency", "'JPY' is not listed in $.risk.currencies (listed: EUR, USD)"),
    ("unknown cash currency", _sub('currency = "EUR", amount', 'currency = "GBP", amount'),
     "$.accounts[0].cash[1].currency", "'GBP' is not listed"),
    ("instrument currency not listed",
     _sub('[[risk.currencies]]\ncode = "EUR"\nrate = "1.08"\n', ""),
     "$.instruments[2].currency", "currency 'EUR' of BUND is not listed"),
    ("bad currency code", _sub('code = "EUR"', 'code = "Euro"'), "$.risk.currencies[0].code",
     "3-letter upper-case"),
    ("duplicate currency", _sub('code = "USD"', 'code = "EUR"'), "$.risk.currencies[1].code",
     "duplicate currency 'EUR' (already at currencies[0])"),
    ("zero rate", _sub('rate = "1.08"', 'rate = "0"'), "$.risk.currencies[0].rate",
     "positive decimal"),
    ("missing rate", _sub('rate = "1.08"\n', ""), "$.risk.currencies[0].rate",
     "missing required field"),
    ("decimals out of range", _sub("decimals = 4", "decimals = 19"),
     "$.risk.currencies[1].decimals", "<= 18"),
    ("non-integer k", _sub("decimals = 4", "decimals = 1"), "$.risk.currencies[1].decimals",
     "AAPL has 0.01 USD per tick x lot, which needs decimals >= 2, got 1"),
    ("k beyond int64", _sub('multiplier = "50"', 'multiplier = "5E+17"'),
     "$.risk.currencies[1].decimals", "beyond int64"),
    ("underivable decimals", lambda t: t.replace("decimals = 4\n", "").replace(
        'tick_size = "0.01"', 'tick_size = "1E-18"').replace(
        'lot_size = "1"\ncurrency = "USD"\n', 'lot_size = "0.001"\ncurrency = "USD"\n', 1),
     "$.risk.currencies[1]", "needs 21 decimal places, more than 18"),
    ("fx overflow", _sub('rate = "1.08"', 'rate = "1000"'), "$.risk.currencies[0].rate",
     "Expected fx = rate x 10**16 within int64"),
    ("fx not an integer", _sub('rate = "1.08"', 'rate = "1.00000000000000001"'),
     "$.risk.currencies[0].rate", "at most 16 decimal places"),
    ("float rate", _sub('rate = "1.08"', "rate = 1.08"), "$.risk.currencies[0].rate",
     'rate = "1.08"'),
    # risk.instruments, restricted, kill switch
    ("unknown risk symbol", _sub('symbol = "AAPL"\nreference_price', 'symbol = "APPL"\n'
                                 'reference_price'),
     "$.risk.instruments[0].symbol", "unknown symbol 'APPL' (did you mean 'AAPL'?)"),
    ("duplicate risk symbol", _add('[[risk.instruments]]\nsymbol = "AAPL"\n'),
     "$.risk.instruments[1].symbol", "duplicate symbol 'AAPL'"),
    ("off-grid reference price", _sub('"150.00"', '"150.005"'),
     "$.risk.instruments[0].reference_price", "not a multiple of the tick size 0.01"),
    ("negative reference price", _sub('"150.00"', '"-150.00"'),
     "$.risk.instruments[0].reference_price", "positive decimal"),
    ("float reference price", _sub('"150.00"', "150.0"),
     "$.risk.instruments[0].reference_price", "TOML float"),
    ("band out of range", _sub("price_band_bps = 500", "price_band_bps = 1000001"),
     "$.risk.instruments[0].price_band_bps", "<= 1000000"),
    ("negative band", _sub("price_band_bps = 500", "price_band_bps = -1"),
     "$.risk.instruments[0].price_band_bps", ">= 0"),
    ("fee out of range", _sub("fee_ppm = 100", "fee_ppm = 2000000"),
     "$.risk.instruments[0].fee_ppm", "<= 1000000"),
    ("unknown global restricted symbol", _sub('restricted = ["BUND"]', 'restricted = ["BUNT"]'),
     "$.risk.restricted[0]", "unknown symbol 'BUNT'"),
    ("duplicate global restricted", _sub('restricted = ["BUND"]', 'restricted = ["BUND", "BUND"]'),
     "$.risk.restricted[1]", "duplicate symbol 'BUND'"),
    ("unknown kill switch", _sub('kill_switch = "reduce_only"', 'kill_switch = "off"'),
     "$.risk.kill_switch", "active, killed, reduce_only"),
    ("risk typo", _sub("[risk]\n", "[risk]\nenable = true\n"), "$.risk.enable",
     "did you mean 'enabled'"),
    # accounts
    ("missing base currency", _sub('base_currency = "EUR"\n', ""),
     "$.accounts[1].base_currency", "required when risk is enabled"),
    ("unknown account restricted symbol", _sub('restricted = ["ES"]', 'restricted = ["ESZ4"]'),
     "$.accounts[0].restricted[0]", "unknown symbol 'ESZ4'"),
    ("duplicate account restricted", _sub('restricted = ["ES"]', 'restricted = ["ES", "ES"]'),
     "$.accounts[0].restricted[1]", "duplicate symbol 'ES'"),
    ("unknown position symbol", _sub('symbol = "ES"\nposition', 'symbol = "NQ"\nposition'),
     "$.accounts[0].instruments[1].symbol", "unknown symbol 'NQ'"),
    ("duplicate position symbol", _sub('symbol = "ES"\nposition', 'symbol = "AAPL"\nposition'),
     "$.accounts[0].instruments[1].symbol", "duplicate symbol 'AAPL'"),
    ("duplicate cash currency", _sub('currency = "EUR", amount', 'currency = "USD", amount'),
     "$.accounts[0].cash[1].currency", "duplicate currency 'USD'"),
    ("off-grid position", _sub('position = "2"', 'position = "2.5"'),
     "$.accounts[0].instruments[1].position", "not a multiple of the lot size 1"),
    ("position beyond int64 lots", _sub('position = "2"', 'position = "1E+19"'),
     "$.accounts[0].instruments[1].position", "beyond the int64 range"),
    ("position without avg_price", _sub('avg_price = "5800.25"\n', ""),
     "$.accounts[0].instruments[1].avg_price", "Expected an avg_price with the position 2"),
    ("avg_price without position", _sub('symbol = "ES"\nposition = "2"\n', 'symbol = "ES"\n'),
     "$.accounts[0].instruments[1].avg_price", "no avg_price without a position"),
    ("negative avg_price", _sub('avg_price = "5800.25"', 'avg_price = "-5800.25"'),
     "$.accounts[0].instruments[1].avg_price", "positive decimal"),
    ("inexact cost", _sub('avg_price = "5800.25"', 'avg_price = "5800.0000001"'),
     "$.accounts[0].instruments[1].avg_price",
     "a whole number of cash units of USD (10**-4), got 5800.0000001 x 2 x 50 = 580000.00001"),
    ("cost beyond int64", _sub('avg_price = "5800.25"', 'avg_price = "1E+14"'),
     "$.accounts[0].instruments[1].avg_price", "within int64 cash units of USD"),
    ("off-grid max_order_qty", _sub('max_order_qty = "500"', 'max_order_qty = "0.5"'),
     "$.accounts[0].instruments[0].max_order_qty", "lot grid"),
    ("negative max_order_qty", _sub('max_order_qty = "500"', 'max_order_qty = "-1"'),
     "$.accounts[0].instruments[0].max_order_qty", "Expected a decimal >= 0, got '-1'"),
    ("negative position_limit", _sub('position_limit = "2000"', 'position_limit = "-2000"'),
     "$.accounts[0].instruments[0].position_limit", ">= 0"),
    ("negative short_limit", _sub('short_limit = "300"', 'short_limit = "-300"'),
     "$.accounts[0].instruments[0].short_limit", ">= 0"),
    ("negative instrument notional", _sub('max_order_notional = "100000"',
                                          'max_order_notional = "-1"'),
     "$.accounts[0].instruments[0].max_order_notional", ">= 0"),
    ("inexact instrument notional", _sub('max_order_notional = "100000"',
                                         'max_order_notional = "0.00001"'),
     "$.accounts[0].instruments[0].max_order_notional", "whole cash units of USD"),
    ("negative account notional", _sub('max_order_notional = "250000"',
                                       'max_order_notional = "-250000"'),
     "$.accounts[0].max_order_notional", ">= 0"),
    ("negative max_open_orders", _sub("max_open_orders = 50", "max_open_orders = -1"),
     "$.accounts[0].max_open_orders", ">= 0"),
    ("rate too high", _sub("rate_per_s = 10", "rate_per_s = 1000000001"),
     "$.accounts[0].rate_per_s", "<= 1000000000"),
    ("zero burst", _sub("rate_burst = 20", "rate_burst = 0"), "$.accounts[1].rate_burst",
     ">= 1"),
    ("negative credit", _sub('credit = "5000"', 'credit = "-5000"'),
     "$.accounts[0].cash[0].credit", ">= 0"),
    ("inexact cash", _sub('"1000000.50"', '"1000000.50005"'), "$.accounts[0].cash[0].amount",
     "at most 4 decimal places"),
    ("inexact credit", _sub('credit = "5000"', 'credit = "0.00001"'),
     "$.accounts[0].cash[0].credit", "whole cash units"),
    ("cash beyond int64", _sub('amount = "-20"', 'amount = "-1E+17"'),
     "$.accounts[0].cash[1].amount", "within int64 cash units of EUR"),
    ("NaN cash", _sub('amount = "-20"', 'amount = "NaN"'), "$.accounts[0].cash[1].amount",
     "finite decimal"),
    ("float cash", _sub('"1000000.50"', "1000000.50"), "$.accounts[0].cash[0].amount",
     "TOML float"),
    ("float position", _sub('position = "2"', "position = 2.0"),
     "$.accounts[0].instruments[1].position", "TOML float"),
    ("unknown account kill switch", _sub('kill_switch = "killed"', 'kill_switch = "dead"'),
     "$.accounts[0].kill_switch", "reduce_only"),
    ("account risk typo", _sub("rate_per_s = 10", "rate_per_sec = 10"),
     "$.accounts[0].rate_per_sec", "did you mean 'rate_per_s'"),
    ("position typo", _sub('short_limit = "300"', 'shortlimit = "300"'),
     "$.accounts[0].instruments[0].shortlimit", "did you mean 'short_limit'"),
]


@pytest.mark.parametrize("name,breaker,path,words", BAD, ids=[b[0] for b in BAD])
def test_bad_risk_config_names_file_and_field(tmp_path, name, breaker, path, words):
    f = tmp_path / "bad_risk.toml"
    f.write_text(breaker(GOOD))
    with pytest.raises(ConfigError) as info:
        load_config(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}: {path}: "), msg
    assert words in msg, msg
    assert info.value.source == str(f) and info.value.path == path


def test_build_tables_names_the_field_without_a_file():
    cfg = parse_config(GOOD)
    bad = msgspec.structs.replace(cfg, accounts=(msgspec.structs.replace(
        cfg.accounts[0], base_currency="JPY"),) + cfg.accounts[1:])
    with pytest.raises(ConfigError) as info:
        build_tables(bad, InstrumentSet.from_config(bad))
    assert info.value.path == "$.accounts[0].base_currency" and info.value.source is None
    assert str(info.value).startswith("$.accounts[0].base_currency: currency 'JPY'")


def test_build_tables_uses_the_instrument_set_given():
    cfg = parse_config(GOOD)
    fewer = InstrumentSet([i for i in cfg.instruments if i.symbol != "ES"])
    with pytest.raises(ConfigError, match="unknown symbol 'ES'") as info:
        build_tables(cfg, fewer)
    assert info.value.path == "$.accounts[0].restricted[0]"
    text = GOOD.replace('restricted = ["ES"]\n', "").replace(
        '[[accounts.instruments]]\nsymbol = "ES"\nposition = "2"\navg_price = "5800.25"\n', "")
    cfg = parse_config(text)
    tables = build_tables(cfg, InstrumentSet([i for i in cfg.instruments if i.symbol != "ES"]))
    assert tables["instruments"]["instrument"].tolist() == [1, 7]
    assert len(tables["positions"]) == 2 * 2


# -- docs/RISK.md, "Configuration" ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _config_section() -> str:
    text = (ROOT / "docs" / "RISK.md").read_text()
    return text[text.index("## Configuration"):]


def test_the_documented_example_loads_and_builds():
    example = re.search(r"```toml\n(.*?)```", _config_section(), re.S)[1]
    text = ((ROOT / "examples" / "instruments.toml").read_text() + "\n"
            + example.replace('"sha256$..."', f'"{ALICE_HASH}"'))
    cfg = parse_config(text, source="docs/RISK.md")
    r = RiskSetup(cfg)
    assert r.currencies == ("USD", "EUR") and r.decimals == (6, 2)
    tables = r.tables()
    a = tables["accounts"][0]
    assert (int(a["max_open_orders"]), int(a["rate_per_s"]), int(a["rate_burst"])) == (
        500, 100, 200)
    assert r.money(int(tables["cash"][0]["credit"]), "USD") == "50000.000000 USD"
    check_like_enable_risk(tables, InstrumentSet.from_config(cfg).ids)


def test_every_documented_key_is_a_field_and_every_field_is_documented():
    documented = set(re.findall(r"^\| `(\w+)` \|", _config_section(), re.M))
    structs = (RiskConfig, RiskCurrencyConfig, RiskInstrumentConfig, CashConfig,
               AccountInstrumentConfig)
    fields = {f for s in structs for f in s.__struct_fields__}
    gateway_only = {"id", "name", "api_key_hash", "role", "cancel_on_disconnect"}
    fields |= set(AccountConfig.__struct_fields__) - gateway_only
    assert documented == fields


def test_with_risk_off_a_setup_checks_only_when_used():
    # an engine asks a risk-off config's setup only whether risk is on
    cfg = parse_config(INSTRUMENTS)
    r = RiskSetup(cfg)
    assert not r.enabled
    with pytest.raises(ConfigError, match=r"\$\.instruments\[1\]\.currency: currency 'USD'"):
        r.tables()                          # AAPL (id 1) first: no currencies listed
    with pytest.raises(ConfigError):
        r.currencies
    off = RiskSetup(parse_config(GOOD.replace("enabled = true", "enabled = false")))
    assert not off.enabled and off.currencies == ("EUR", "USD")
    assert off.account_ids == [2, 5] and off.tables()["global"]["kill"].tolist() == [1]
    with pytest.raises(AttributeError):
        off.no_such_attribute
