"""engine.instruments: exact decimal <-> tick/lot conversion at every asset class's grid,
no rounding ever, floats refused, int64 bounds enforced, and a stable instrument-set digest."""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import load_config, parse_config
from engine.instruments import GridError, Instrument, InstrumentSet, exact_units
from engine.schema import INT64_MAX, Reason

INT64_MIN = -(1 << 63)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "instruments.toml"


@pytest.fixture(scope="module")
def iset() -> InstrumentSet:
    return InstrumentSet.load(EXAMPLE)


def one(tick: str, lot: str = "1", multiplier: str = "1", **extra: str) -> Instrument:
    lines = [f'{k} = "{v}"' for k, v in extra.items()]
    text = "\n".join([
        "[[instruments]]", "id = 1", 'symbol = "X"', 'asset_class = "equity"', 'currency = "USD"',
        f'tick_size = "{tick}"', f'lot_size = "{lot}"', f'multiplier = "{multiplier}"', *lines])
    return InstrumentSet.from_config(parse_config(text))["X"]


# -- exact values at each asset class's grid -------------------------------------------------

@pytest.mark.parametrize("symbol,price,ticks", [
    ("AAPL", "189.47", 18947),
    ("AAPL", "0.01", 1),
    ("SPY", "512.3", 51230),
    ("ES", "4500.25", 18001),
    ("ES", "4500.75", 18003),
    ("AAPL261218C00200000", "12.34", 1234),
    ("EURUSD", "1.08345", 108345),
    ("EURUSD", "0.00001", 1),
    ("UST-10Y", "99.96875", 3199),   # 99 31/32
    ("UST-10Y", "100", 3200),
    ("UST-10Y", "0.03125", 1),
    ("XS-CORP-2034", "101.125", 101125),
    ("BTC-USD", "65000.01", 6500001),
])
def test_price_to_ticks_exact(iset, symbol, price, ticks):
    inst = iset[symbol]
    assert inst.price_to_ticks(price) == ticks
    assert inst.price_to_ticks(Decimal(price)) == ticks
    assert inst.ticks_to_price(ticks) == Decimal(price)


@pytest.mark.parametrize("symbol,qty,lots", [
    ("AAPL", "100", 100),
    ("ES", 3, 3),
    ("EURUSD", "1000", 1),
    ("EURUSD", "1250000", 1250),
    ("UST-10Y", "1000000", 1000),
    ("BTC-USD", "0.0001", 1),
    ("BTC-USD", "1.2345", 12345),
    ("BTC-USD", "0.50", 5000),
])
def test_qty_to_lots_exact(iset, symbol, qty, lots):
    inst = iset[symbol]
    assert inst.qty_to_lots(qty) == lots
    assert inst.lots_to_qty(lots) == Decimal(str(qty))


def test_decimals_out_are_in_the_canonical_quantized_form(iset):
    assert str(iset["AAPL"].ticks_to_price(18900)) == "189.00"
    assert str(iset["ES"].ticks_to_price(18000)) == "4500.00"
    assert str(iset["UST-10Y"].ticks_to_price(3200)) == "100.00000"
    assert str(iset["EURUSD"].ticks_to_price(108000)) == "1.08000"
    assert str(iset["EURUSD"].lots_to_qty(3)) == "3000"
    assert str(iset["BTC-USD"].lots_to_qty(10000)) == "1.0000"
    assert str(iset["AAPL"].lots_to_qty(5)) == "5"
    # Non-canonical config spellings give the same grid and the same output.
    assert str(one("0.010", lot="1E+2").ticks_to_price(150)) == "1.50"
    assert str(one("0.010", lot="1E+2").lots_to_qty(2)) == "200"
    assert one("0.010").tick_size.as_tuple().exponent == -2


@pytest.mark.parametrize("symbol", ["AAPL", "SPY", "ES", "AAPL261218C00200000", "EURUSD",
                                    "UST-10Y", "XS-CORP-2034", "BTC-USD"])
def test_round_trip_at_the_edges_of_int64(iset, symbol):
    inst = iset[symbol]
    for n in (0, 1, -1, 2, 7, 31, 32, 33, 1000, 123456789, 10**15, INT64_MAX, INT64_MIN):
        price = inst.ticks_to_price(n)
        assert inst.price_to_ticks(price) == n
        assert inst.price_to_ticks(str(price)) == n
        qty = inst.lots_to_qty(n)
        assert inst.qty_to_lots(qty) == n
        assert inst.qty_to_lots(format(qty, "f")) == n


@settings(max_examples=300, deadline=None)
@given(n=st.integers(INT64_MIN, INT64_MAX),
       tick=st.sampled_from(["0.01", "0.25", "0.00001", "0.03125", "0.001", "1000", "0.0001", "5"]))
def test_round_trip_property(n, tick):
    inst = one(tick, lot=tick)
    assert inst.price_to_ticks(inst.ticks_to_price(n)) == n
    assert inst.qty_to_lots(inst.lots_to_qty(n)) == n


# -- never rounding ----------------------------------------------------------------------------

@pytest.mark.parametrize("symbol", ["AAPL", "ES", "EURUSD", "UST-10Y", "XS-CORP-2034", "BTC-USD"])
def test_off_grid_by_one_sub_tick_is_rejected(iset, symbol):
    inst = iset[symbol]
    base = inst.ticks_to_price(1000)
    sub = Decimal(1).scaleb(inst.tick_size.as_tuple().exponent - 1)  # one digit past the tick
    far = Decimal(f"{base}{'0' * 5000}1")  # built from text: `base + 1E-5000` would round to base
    for bad in (base + sub, base - sub, base + inst.tick_size / 2, Decimal("1E-40"), far):
        with pytest.raises(GridError) as info:
            inst.price_to_ticks(bad)
        assert info.value.reason is Reason.EDGE_PRICE_OFF_GRID
        assert symbol in info.value.message and str(inst.tick_size) in info.value.message


def test_off_grid_quantities_are_rejected(iset):
    cases = [("AAPL", "1.5"), ("EURUSD", "1500"), ("EURUSD", "999"), ("UST-10Y", "1000.5"),
             ("BTC-USD", "0.00015"), ("BTC-USD", "0.00001"), ("ES", "0.1")]
    for symbol, qty in cases:
        with pytest.raises(GridError) as info:
            iset[symbol].qty_to_lots(qty)
        assert info.value.reason is Reason.EDGE_QUANTITY_OFF_GRID, (symbol, qty)


def test_half_of_a_32nd_is_off_the_bond_grid(iset):
    ust = iset["UST-10Y"]
    assert ust.price_to_ticks("99.5") == 3184
    with pytest.raises(GridError) as info:
        ust.price_to_ticks("99.515625")  # 99 33/64
    assert info.value.reason is Reason.EDGE_PRICE_OFF_GRID


def test_trailing_zeros_and_other_spellings_are_on_grid(iset):
    aapl = iset["AAPL"]
    assert aapl.price_to_ticks("189.500000") == 18950
    assert aapl.price_to_ticks("1.895E+2") == 18950
    assert aapl.price_to_ticks(189) == 18900
    assert aapl.price_to_ticks(np.int64(189)) == 18900
    assert aapl.price_to_ticks("-0") == 0


def test_negative_prices_convert(iset):
    assert iset["ES"].price_to_ticks("-1.25") == -5
    assert iset["ES"].ticks_to_price(-5) == Decimal("-1.25")


# -- bad values --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0.01, 189.5, np.float64(1.0), 1.0])
def test_floats_are_refused(iset, value):
    for convert in (iset["AAPL"].price_to_ticks, iset["AAPL"].qty_to_lots):
        with pytest.raises(GridError) as info:
            convert(value)
        assert info.value.reason is Reason.EDGE_BAD_VALUE
        assert "float" in info.value.message


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity", Decimal("NaN"),
                                   Decimal("-Infinity"), "abc", "", "1.2.3", None, [1], True,
                                   object()])
def test_non_numbers_are_refused(iset, value):
    for convert in (iset["AAPL"].price_to_ticks, iset["BTC-USD"].qty_to_lots):
        with pytest.raises(GridError) as info:
            convert(value)
        assert info.value.reason is Reason.EDGE_BAD_VALUE


def test_values_beyond_int64_are_bad_values(iset):
    aapl, btc = iset["AAPL"], iset["BTC-USD"]
    huge = ["1E+30", 10**30, -(10**30), "1E+999999999999999999", "-1E+999999999999999999"]
    prices = [aapl.ticks_to_price(INT64_MAX) + aapl.tick_size,
              aapl.ticks_to_price(INT64_MIN) - aapl.tick_size,
              aapl.ticks_to_price(INT64_MAX) + Decimal("0.001")]  # beyond and off grid: range wins
    qtys = [btc.lots_to_qty(INT64_MAX) + btc.lot_size, btc.lots_to_qty(INT64_MIN) - btc.lot_size]
    for convert, values in ((aapl.price_to_ticks, huge + prices), (btc.qty_to_lots, huge + qtys)):
        for value in values:
            with pytest.raises(GridError) as info:
                convert(value)
            assert info.value.reason is Reason.EDGE_BAD_VALUE, value
            assert "int64" in info.value.message


def test_pathological_inputs_are_cheap(iset):
    aapl = iset["AAPL"]
    start = time.perf_counter()
    for value in ("1E+999999999999999999", "1E-999999999999999999", "1." + "0" * 200_000 + "1",
                  "9" * 200_000):
        with pytest.raises(GridError):
            aapl.price_to_ticks(value)
    assert time.perf_counter() - start < 2.0


def test_grid_error_shape():
    e = GridError(Reason.EDGE_BAD_VALUE, "nope")
    assert isinstance(e, ValueError) and e.reason is Reason.EDGE_BAD_VALUE
    assert e.message == "nope" == str(e)


def test_exact_units_helper():
    assert exact_units("0.75", Decimal("0.25")) == 3
    with pytest.raises(GridError) as info:
        exact_units("0.0001", Decimal("0.001"), what="quantity")
    assert info.value.reason is Reason.EDGE_QUANTITY_OFF_GRID


def test_counts_out_must_be_ints(iset):
    with pytest.raises(TypeError):
        iset["AAPL"].ticks_to_price(1.0)
    with pytest.raises(TypeError):
        iset["AAPL"].lots_to_qty(True)
    assert iset["AAPL"].ticks_to_price(np.int64(5)) == Decimal("0.05")


# -- notional, limits --------------------------------------------------------------------------

def test_notional_is_exact(iset):
    es, ust, btc, eur = iset["ES"], iset["UST-10Y"], iset["BTC-USD"], iset["EURUSD"]
    assert es.notional(es.price_to_ticks("4500.25"), 2) == Decimal("450025")
    assert ust.notional(ust.price_to_ticks("99.5"), ust.qty_to_lots("1000000")) == Decimal("995000")
    assert btc.notional(btc.price_to_ticks("50000.00"), btc.qty_to_lots("0.0012")) == Decimal("60")
    assert eur.notional(eur.price_to_ticks("1.08345"),
                        eur.qty_to_lots("1000000")) == Decimal("1083450")
    opt = iset["AAPL261218C00200000"]
    assert opt.notional(opt.price_to_ticks("12.34"), 3) == Decimal("3702")


def test_min_and_max_lots(iset):
    assert (iset["EURUSD"].min_lots, iset["EURUSD"].max_lots) == (1, 100_000)
    assert iset["EURUSD"].min_qty == Decimal("1000")
    assert (iset["BTC-USD"].min_lots, iset["BTC-USD"].max_lots) == (1, 10_000_000)
    assert (iset["UST-10Y"].min_lots, iset["XS-CORP-2034"].min_lots) == (1, 100)
    plain = one("0.01")
    assert (plain.min_lots, plain.max_lots) == (1, INT64_MAX)


def test_instrument_is_immutable(iset):
    with pytest.raises(AttributeError):
        iset["AAPL"].tick_size = Decimal("1")  # type: ignore[misc]


# -- InstrumentSet -----------------------------------------------------------------------------

def test_lookup_and_iteration(iset):
    assert len(iset) == 8
    assert iset.ids == sorted(iset.ids)
    assert [i.id for i in iset] == iset.ids
    assert iset["ES"] is iset[3] is iset.by_symbol("ES") is iset.by_id(3)
    assert iset.get("NOPE") is None and iset.get(999, "x") == "x" and iset.get([1]) is None
    assert "AAPL" in iset and 1 in iset and "aapl" not in iset and 42 not in iset
    with pytest.raises(KeyError, match="unknown symbol"):
        iset["NOPE"]
    with pytest.raises(KeyError, match="unknown instrument id"):
        iset[42]


def test_iteration_is_in_id_order_whatever_the_file_order():
    text = "\n".join(
        f'[[instruments]]\nid = {i}\nsymbol = "S{i}"\nasset_class = "equity"\n'
        f'tick_size = "0.01"\nlot_size = "1"\ncurrency = "USD"\n' for i in (9, 2, 5))
    s = InstrumentSet.from_config(parse_config(text))
    assert [i.id for i in s] == [2, 5, 9] and s.symbols == ["S2", "S5", "S9"]


def test_duplicates_refused():
    a = one("0.01")
    with pytest.raises(ValueError, match="duplicate"):
        InstrumentSet([a, a])


DIGEST_TEXT = """\
[[instruments]]
id = 1
symbol = "AAPL"
asset_class = "equity"
tick_size = "0.01"
lot_size = "1"
currency = "USD"
description = "Apple"

[[instruments]]
id = 3
symbol = "ES"
asset_class = "future"
tick_size = "0.25"
lot_size = "1"
multiplier = "50"
currency = "USD"
max_qty = "3000"
"""
# Pinned: the journal header stores this; changing the digest scheme must be deliberate.
DIGEST_PINNED = "3bf324b4fd38aaa32c23c744edef3bb392f3934b2e0ad546ca7cc6199df900c5"


def test_digest_is_stable_and_pinned():
    d = InstrumentSet.from_config(parse_config(DIGEST_TEXT)).digest()
    assert len(d) == 64 and int(d, 16) >= 0
    assert d == InstrumentSet.from_config(parse_config(DIGEST_TEXT)).digest()
    assert d == DIGEST_PINNED


def test_digest_ignores_descriptions_order_and_spelling():
    base = InstrumentSet.from_config(parse_config(DIGEST_TEXT)).digest()
    first, second = DIGEST_TEXT.split("\n\n")
    assert InstrumentSet.from_config(parse_config(second + "\n\n" + first)).digest() == base
    assert InstrumentSet.from_config(parse_config(
        DIGEST_TEXT.replace('"Apple"', '"Apple Inc."'))).digest() == base
    assert InstrumentSet.from_config(parse_config(
        DIGEST_TEXT.replace('"0.25"', '"0.250"').replace('max_qty = "3000"', 'max_qty = "3000.0"'))
    ).digest() == base


@pytest.mark.parametrize("old,new", [('"0.25"', '"0.5"'), ('multiplier = "50"', 'multiplier = "5"'),
                                     ('max_qty = "3000"', 'max_qty = "2000"'), ('"ES"', '"ESZ6"'),
                                     ("id = 3", "id = 4"), ('"future"', '"option"')])
def test_digest_changes_with_any_definition(old, new):
    base = InstrumentSet.from_config(parse_config(DIGEST_TEXT)).digest()
    assert InstrumentSet.from_config(parse_config(DIGEST_TEXT.replace(old, new))).digest() != base


def test_example_and_default_sets():
    assert InstrumentSet.load(EXAMPLE) == InstrumentSet.from_config(load_config(EXAMPLE))
    assert len(InstrumentSet.default()) >= 1
