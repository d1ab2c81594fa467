"""The ``[[venues]]`` config (docs/ROUTING.md, "Venues and books") and engine.venues.VenueSet:
good configs parse, every bad one raises a ConfigError naming the file and the field, the
venue set round-trips through its definition with a stable digest, registers exactly the
expected venues and books on a core, and checks an edge's prices and quantities against a
book's grid. Needs no compiled core."""
from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from engine.config import (
    ConfigError,
    EngineConfig,
    InstrumentConfig,
    VenueConfig,
    VenueListingConfig,
    check_venues,
    default_config,
    load_config,
    parse_config,
)
from engine.instruments import GridError, InstrumentSet
from engine.risk.setup import RiskSetup
from engine.schema import Reason
from engine.venues import Book, Venue, VenueSet, instrument_k

INSTRUMENTS = """\
[[instruments]]
id = 1
symbol = "AAPL"
asset_class = "equity"
tick_size = "0.01"
lot_size = "1"
currency = "USD"
max_qty = "100000"

[[instruments]]
id = 2
symbol = "SPY"
asset_class = "etf"
tick_size = "0.01"
lot_size = "1"
currency = "USD"
min_qty = "5"
max_qty = "1000"

[[instruments]]
id = 3
symbol = "ES"
asset_class = "future"
tick_size = "0.25"
lot_size = "1"
multiplier = "50"
currency = "USD"

[[instruments]]
id = 7
symbol = "BTC-USD"
asset_class = "crypto"
tick_size = "0.01"
lot_size = "0.0001"
currency = "USD"
"""

# Written out of id order on purpose: config order (not ids, not priorities) makes the primary.
VENUES = """\
[[venues]]
id = 20
name = "ALT"
maker_fee = 0
taker_fee = 10
priority = 1
instruments = ["SPY", {symbol = "AAPL", tick_size = "0.05", lot_size = "100"}]

[[venues]]
id = 10
name = "LIT"
maker_fee = -20
taker_fee = 30
instruments = ["AAPL", "SPY", "ES"]

[[venues]]
id = 30
name = "CROSS"
maker_fee = 0
taker_fee = 0
priority = -5
instruments = [{symbol = "AAPL"}]
"""

GOOD = INSTRUMENTS + VENUES


def venue_set(text: str = GOOD) -> VenueSet:
    return VenueSet.from_config(parse_config(text))


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value


# -- parsing --------------------------------------------------------------------------------------

def test_good_config_parses_with_typed_entries():
    cfg = parse_config(GOOD)
    alt, lit, cross = cfg.venues
    assert isinstance(alt, VenueConfig)
    assert (alt.id, alt.name, alt.maker_fee, alt.taker_fee, alt.priority) == (20, "ALT", 0, 10, 1)
    assert (lit.id, lit.maker_fee, lit.taker_fee, lit.priority) == (10, -20, 30, 0)  # default 0
    assert cross.priority == -5
    assert alt.instruments == ("SPY", VenueListingConfig(symbol="AAPL", tick_size=Decimal("0.05"),
                                                         lot_size=Decimal("100")))
    assert alt.listings == (VenueListingConfig(symbol="SPY"),
                            VenueListingConfig(symbol="AAPL", tick_size=Decimal("0.05"),
                                               lot_size=Decimal("100")))
    assert cross.listings == (VenueListingConfig(symbol="AAPL"),)


def test_no_venues_is_todays_config():
    cfg = parse_config(INSTRUMENTS)
    assert cfg.venues == ()
    assert VenueSet.from_config(cfg) == VenueSet.empty()
    assert len(VenueSet.empty()) == 0 and not VenueSet.empty()


def test_a_venue_may_list_nothing_and_fees_at_the_bounds():
    cfg = parse_config(INSTRUMENTS + '[[venues]]\nid = 65535\nname = "X"\n'
                       'maker_fee = -1000000\ntaker_fee = 1000000\n'
                       'priority = -2147483648\n')
    (v,) = cfg.venues
    assert (v.id, v.maker_fee, v.taker_fee, v.priority, v.instruments) == (
        65535, -1_000_000, 1_000_000, -(1 << 31), ())
    vs = VenueSet.from_config(cfg)
    assert len(vs) == 1 and vs.books == () and vs.listing("AAPL") == ()


def test_venues_do_not_change_the_instrument_digest():
    assert (InstrumentSet.from_config(parse_config(GOOD)).digest()
            == InstrumentSet.from_config(parse_config(INSTRUMENTS)).digest())


FIELDS = 'id = 1\nname = "V"\nmaker_fee = 0\ntaker_fee = 0\n'
VENUE = "[[venues]]\n" + FIELDS

BAD = [
    # (venue fields, path, message fragment)
    ('id = 0\nname = "V"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].id", ">= 1, got 0"),
    ('id = 65536\nname = "V"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].id", "<= 65535"),
    ('id = -3\nname = "V"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].id", ">= 1"),
    ('id = "1"\nname = "V"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].id", "Expected `int`"),
    ('id = 1.0\nname = "V"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].id", "Expected `int`"),
    ('name = "V"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].id", "missing required field"),
    ('id = 1\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].name", "missing required field"),
    ('id = 1\nname = ""\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].name", "length >= 1"),
    ('id = 1\nname = " V"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].name",
     "surrounding spaces"),
    ('id = 1\nname = "V\\n"\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].name",
     "control characters"),
    ('id = 1\nname = 7\nmaker_fee = 0\ntaker_fee = 0', "$.venues[0].name", "Expected `str`"),
    ('id = 1\nname = "V"\ntaker_fee = 0', "$.venues[0].maker_fee", "missing required field"),
    ('id = 1\nname = "V"\nmaker_fee = 0', "$.venues[0].taker_fee", "missing required field"),
    ('id = 1\nname = "V"\nmaker_fee = -1000001\ntaker_fee = 0', "$.venues[0].maker_fee",
     ">= -1000000, got -1000001"),
    ('id = 1\nname = "V"\nmaker_fee = 1000001\ntaker_fee = 0', "$.venues[0].maker_fee",
     "<= 1000000"),
    ('id = 1\nname = "V"\nmaker_fee = 0\ntaker_fee = 1000001', "$.venues[0].taker_fee",
     "<= 1000000, got 1000001"),
    ('id = 1\nname = "V"\nmaker_fee = 0\ntaker_fee = -1000001', "$.venues[0].taker_fee",
     ">= -1000000"),
    ('id = 1\nname = "V"\nmaker_fee = 0.5\ntaker_fee = 0', "$.venues[0].maker_fee",
     "Expected `int`, got `float`"),
    ('id = 1\nname = "V"\nmaker_fee = "20"\ntaker_fee = 0', "$.venues[0].maker_fee",
     "Expected `int`, got `str`"),
    ('id = 1\nname = "V"\nmaker_fee = true\ntaker_fee = 0', "$.venues[0].maker_fee",
     "Expected `int`, got `bool`"),
    (FIELDS + 'priority = 2147483648', "$.venues[0].priority", "<= 2147483647"),
    (FIELDS + 'priority = -2147483649', "$.venues[0].priority", ">= -2147483648"),
    (FIELDS + 'priority = "high"', "$.venues[0].priority", "Expected `int`"),
    (FIELDS + 'prio = 1', "$.venues[0].prio",
     "unknown field 'prio' (did you mean 'priority'?)"),
    (FIELDS + 'instruments = "AAPL"', "$.venues[0].instruments", "Expected `array`"),
    (FIELDS + 'instruments = [5]', "$.venues[0].instruments[0]",
     'Expected a symbol such as "AAPL" or a table such as {symbol = "AAPL"'),
    (FIELDS + 'instruments = [""]', "$.venues[0].instruments[0]", "Expected a symbol"),
    (FIELDS + 'instruments = ["MSFT"]', "$.venues[0].instruments[0]",
     "unknown symbol 'MSFT'; a venue lists configured instruments: AAPL, SPY, ES, BTC-USD"),
    (FIELDS + 'instruments = [{symbol = "APPL"}]', "$.venues[0].instruments[0].symbol",
     "unknown symbol 'APPL' (did you mean 'AAPL'?)"),
    (FIELDS + 'instruments = ["ES", "AAPL", "ES"]', "$.venues[0].instruments[2]",
     "duplicate symbol 'ES' (already at instruments[0])"),
    (FIELDS + 'instruments = ["AAPL", {symbol = "AAPL", lot_size = "10"}]',
     "$.venues[0].instruments[1].symbol", "duplicate symbol 'AAPL'"),
    (FIELDS + 'instruments = [{tick_size = "0.05"}]', "$.venues[0].instruments[0].symbol",
     "missing required field"),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick = "0.05"}]',
     "$.venues[0].instruments[0].tick",
     "unknown field 'tick' (did you mean 'tick_size'?); allowed: symbol, tick_size, lot_size"),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = 0.05}]',
     "$.venues[0].instruments[0].tick_size", "the TOML float 0.05"),
    (FIELDS + 'instruments = [{symbol = "AAPL", lot_size = 100}]',
     "$.venues[0].instruments[0].lot_size", None),  # a TOML int is fine: checked below
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = "abc"}]',
     "$.venues[0].instruments[0].tick_size", 'Expected a decimal string such as "0.01"'),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = "NaN"}]',
     "$.venues[0].instruments[0].tick_size", "Expected a positive decimal, got 'NaN'"),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = "-0.05"}]',
     "$.venues[0].instruments[0].tick_size", "Expected a positive decimal, got '-0.05'"),
    (FIELDS + 'instruments = [{symbol = "AAPL", lot_size = "0"}]',
     "$.venues[0].instruments[0].lot_size", "Expected a positive decimal, got '0'"),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = "1E+30"}]',
     "$.venues[0].instruments[0].tick_size", "Expected a value below 1E+19"),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = "0.015"}]',
     "$.venues[0].instruments[0].tick_size",
     "Expected a positive integer multiple of AAPL's tick_size 0.01, got '0.015' (1.5 times"),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = "0.005"}]',
     "$.venues[0].instruments[0].tick_size", "never a finer or shifted one"),
    (FIELDS + 'instruments = [{symbol = "ES", tick_size = "0.3"}]',
     "$.venues[0].instruments[0].tick_size", "multiple of ES's tick_size 0.25, got '0.3'"),
    (FIELDS + 'instruments = [{symbol = "BTC-USD", lot_size = "0.00015"}]',
     "$.venues[0].instruments[0].lot_size", "multiple of BTC-USD's lot_size 0.0001"),
    (FIELDS + 'instruments = [{symbol = "SPY", lot_size = "1001"}]',
     "$.venues[0].instruments[0].lot_size", "at most SPY's max_qty 1000"),
    (FIELDS + 'instruments = [{symbol = "AAPL", tick_size = "92233720368547758.08"}]',
     "$.venues[0].instruments[0].tick_size", "beyond 2**63-1 times AAPL's tick_size"),
]


@pytest.mark.parametrize("fields,path,fragment", BAD, ids=[f"{i}:{b[1]}" for i, b in
                                                          enumerate(BAD)])
def test_bad_venue_fields_name_the_field(fields, path, fragment):
    text = INSTRUMENTS + "[[venues]]\n" + fields + "\n"
    if fragment is None:
        (v,) = parse_config(text).venues
        assert v.listings[0].lot_size == Decimal(100)
        return
    e = config_error(text)
    assert e.path == path, str(e)
    assert fragment in e.detail, str(e)
    assert str(e).startswith(f"<string>: {path}: ")


def test_duplicate_ids_and_names_across_venues():
    two = VENUE + VENUE.replace('name = "V"', 'name = "W"')
    e = config_error(INSTRUMENTS + two)
    assert (e.path, e.detail) == ("$.venues[1].id", "duplicate venue id 1 (already at venues[0])")
    two = VENUE + VENUE.replace("id = 1", "id = 2")
    e = config_error(INSTRUMENTS + two)
    assert (e.path, e.detail) == ("$.venues[1].name",
                                  "duplicate venue name 'V' (already at venues[0])")


def test_venues_must_be_an_array_of_tables():
    e = config_error("venues = 3\n" + INSTRUMENTS)
    assert e.path == "$.venues" and "Expected `array`" in e.detail
    e = config_error('[venues]\nid = 1\n' + INSTRUMENTS)
    assert e.path == "$.venues" and "Expected `array`, got `object`" in e.detail


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "engine.toml"
    path.write_text(INSTRUMENTS + VENUE + 'instruments = ["NOPE"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: $.venues[0].instruments[0]: unknown symbol")


def test_a_config_built_in_code_is_checked_by_the_venue_set():
    inst = InstrumentConfig(id=1, symbol="AAPL", asset_class="equity",
                            tick_size=Decimal("0.01"), lot_size=Decimal(1), currency="USD")
    cfg = EngineConfig(instruments=(inst,), venues=(
        VenueConfig(id=1, name="V", maker_fee=0, taker_fee=0, instruments=("MSFT",)),))
    with pytest.raises(ConfigError, match=r"\$\.venues\[0\]\.instruments\[0\]: unknown"):
        VenueSet.from_config(cfg)
    with pytest.raises(ConfigError) as info:
        check_venues(cfg, source="mine.toml")
    assert str(info.value).startswith("mine.toml: $.venues[0].instruments[0]: unknown symbol")
    with pytest.raises(ConfigError, match="duplicate symbol 'AAPL'"):
        VenueConfig(id=1, name="V", maker_fee=0, taker_fee=0, instruments=("AAPL", "AAPL"))
    with pytest.raises(ConfigError, match="duplicate venue id 1"):
        EngineConfig(instruments=(inst,), venues=(
            VenueConfig(id=1, name="V", maker_fee=0, taker_fee=0),
            VenueConfig(id=1, name="W", maker_fee=0, taker_fee=0)))


# -- VenueSet -------------------------------------------------------------------------------------

def test_venues_in_config_order_with_lookups():
    vs = venue_set()
    assert len(vs) == 3 and bool(vs)
    assert list(vs) == [Venue(20, "ALT", 0, 10, 1), Venue(10, "LIT", -20, 30, 0),
                        Venue(30, "CROSS", 0, 0, -5)]
    assert vs.ids == [20, 10, 30] and vs.names == ["ALT", "LIT", "CROSS"]
    assert vs.by_id(10).name == "LIT" and vs.by_name("CROSS").id == 30
    assert vs.get("ALT") is vs.by_id(20) and vs.get(99) is None and vs.get([1]) is None
    assert 10 in vs and "LIT" in vs and 0 not in vs and "NYSE" not in vs
    with pytest.raises(KeyError, match="unknown venue id 0"):
        vs.by_id(0)
    with pytest.raises(KeyError, match="unknown venue 'NYSE' \\(venues: ALT, LIT, CROSS\\)"):
        vs.by_name("NYSE")
    with pytest.raises(AttributeError, match="immutable"):
        vs._venues = ()  # type: ignore[misc]


def test_books_grids_and_the_primary_venue_rule():
    vs = venue_set()
    insts = InstrumentSet.from_config(parse_config(GOOD))
    aapl = insts["AAPL"]
    # the primary is the first venue in config order that lists it: ALT for AAPL and SPY
    # (though LIT has the lower id and the lower priority), LIT for ES
    assert vs.listing("AAPL") == (Book(20, 1, "AAPL", 5, 100), Book(10, 1, "AAPL", 1, 1),
                                  Book(30, 1, "AAPL", 1, 1))
    assert vs.listing(1) == vs.listing(aapl) == vs.listing("AAPL")
    assert vs.primary("AAPL").venue == 20
    assert vs.primary("SPY") == Book(20, 2, "SPY", 1, 1)
    assert vs.primary("ES") == Book(10, 3, "ES", 1, 1)
    assert vs.primary("BTC-USD") is None and vs.listing(7) == () and vs.listing("NOPE") == ()
    # routing order: priority, then venue id
    assert [b.venue for b in vs.routable("AAPL")] == [30, 10, 20]
    assert [b.venue for b in vs.routable("SPY")] == [10, 20]
    # books in registration order: instruments ascending, each in venue config order
    assert [(b.instrument, b.venue) for b in vs.books] == [
        (1, 20), (1, 10), (1, 30), (2, 20), (2, 10), (3, 10)]
    assert vs.is_listed(20, "AAPL") and not vs.is_listed(30, "SPY")
    assert vs.book(0, "AAPL") is vs.primary("AAPL")
    assert vs.ticks_per_venue_tick(20, aapl) == 5 and vs.lots_per_venue_lot(20, 1) == 100
    assert vs.ticks_per_venue_tick(10, aapl) == 1
    assert vs.tick_size(20, aapl) == Decimal("0.05") and vs.lot_size(20, aapl) == Decimal(100)
    with pytest.raises(KeyError):
        vs.book(30, "SPY")
    with pytest.raises(KeyError):
        vs.book(0, "BTC-USD")


def test_definition_round_trip_and_digest():
    vs = venue_set()
    d = vs.definition()
    assert d == {
        "venues": [
            {"id": 20, "name": "ALT", "maker_fee": 0, "taker_fee": 10, "priority": 1},
            {"id": 10, "name": "LIT", "maker_fee": -20, "taker_fee": 30, "priority": 0},
            {"id": 30, "name": "CROSS", "maker_fee": 0, "taker_fee": 0, "priority": -5},
        ],
        "books": [
            {"venue": 20, "instrument": 1, "symbol": "AAPL", "tick": 5, "lot": 100},
            {"venue": 10, "instrument": 1, "symbol": "AAPL", "tick": 1, "lot": 1},
            {"venue": 30, "instrument": 1, "symbol": "AAPL", "tick": 1, "lot": 1},
            {"venue": 20, "instrument": 2, "symbol": "SPY", "tick": 1, "lot": 1},
            {"venue": 10, "instrument": 2, "symbol": "SPY", "tick": 1, "lot": 1},
            {"venue": 10, "instrument": 3, "symbol": "ES", "tick": 1, "lot": 1},
        ],
    }
    # JSON-able, and back
    again = VenueSet.from_definition(msgspec.json.decode(msgspec.json.encode(d)))
    assert again == vs and again.definition() == d and again.digest() == vs.digest()
    assert again.listing("AAPL") == vs.listing("AAPL")
    assert len(vs.digest()) == 64 and int(vs.digest(), 16) >= 0
    assert hash(again) == hash(vs)
    assert VenueSet.from_definition(VenueSet.empty().definition()) == VenueSet.empty()


# Pinned: a journal manifest may record it; changing the digest scheme must be deliberate.
PINNED = "bdb9704292210b3f66f1dea2c43dad3194965be4ee1a9e3d28eeae1cb12e64c6"


def test_digest_is_stable_and_pinned():
    d = venue_set().digest()
    assert d == venue_set().digest()
    assert d == PINNED


def test_digest_ignores_spelling_and_listing_order_but_not_definitions():
    base = venue_set().digest()
    respelled = GOOD.replace('tick_size = "0.05", lot_size = "100"',
                             'lot_size = "1E+2", tick_size = "0.050"')
    assert venue_set(respelled).digest() == base
    reordered = GOOD.replace('["AAPL", "SPY", "ES"]', '["ES", "SPY", "AAPL"]')
    assert venue_set(reordered).digest() == base
    for old, new in [("taker_fee = 30", "taker_fee = 31"), ("maker_fee = -20", "maker_fee = 20"),
                     ("priority = 1", "priority = 2"), ('"0.05"', '"0.10"'),
                     ('name = "CROSS"', 'name = "X"'), ("id = 30", "id = 31"),
                     ('instruments = [{symbol = "AAPL"}]', 'instruments = ["SPY"]')]:
        assert venue_set(GOOD.replace(old, new, 1)).digest() != base, (old, new)
    # venue order decides the primaries, so it is part of the definition
    alt, rest = VENUES.split("[[venues]]\nid = 10")
    swapped = INSTRUMENTS + "[[venues]]\nid = 10" + rest + alt
    assert venue_set(swapped).digest() != base
    assert venue_set(swapped).primary("AAPL").venue == 10


@pytest.mark.parametrize("bad,match", [
    ([], "exactly the keys"),
    ({"venues": []}, "exactly the keys"),
    ({"venues": {}, "books": []}, "venues: expected a list"),
    ({"venues": [{"id": 1}], "books": []}, r"venues\[0\]: expected a mapping with exactly"),
    ({"venues": [{"id": 0, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": []}, r"venues\[0\]\.id: expected an int in 1\.\.65535, got 0"),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 0, "taker_fee": True, "priority": 0}],
      "books": []}, r"venues\[0\]\.taker_fee"),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 2_000_000, "taker_fee": 0,
                  "priority": 0}], "books": []}, r"venues\[0\]\.maker_fee"),
    ({"venues": [{"id": 1, "name": "", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": []}, r"venues\[0\]\.name"),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0},
                 {"id": 1, "name": "B", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": []}, "duplicate venue id 1"),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0},
                 {"id": 2, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": []}, "duplicate venue name 'A'"),
    ({"venues": [], "books": [{"venue": 1, "instrument": 1, "symbol": "A", "tick": 1,
                               "lot": 1}]}, r"books\[0\]\.venue: 1 is not one of the venues"),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": [{"venue": 1, "instrument": 1, "symbol": "A", "tick": 0, "lot": 1}]},
     r"books\[0\]\.tick: expected an int in 1\.\."),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": [{"venue": 1, "instrument": 1, "symbol": "A", "tick": 1, "lot": "1"}]},
     r"books\[0\]\.lot"),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": [{"venue": 1, "instrument": 1, "symbol": "A", "tick": 1, "lot": 1}] * 2},
     "lists instrument 1 twice"),
    ({"venues": [{"id": 1, "name": "A", "maker_fee": 0, "taker_fee": 0, "priority": 0},
                 {"id": 2, "name": "B", "maker_fee": 0, "taker_fee": 0, "priority": 0}],
      "books": [{"venue": 1, "instrument": 1, "symbol": "A", "tick": 1, "lot": 1},
                {"venue": 2, "instrument": 1, "symbol": "B", "tick": 1, "lot": 1}]},
     "instrument 1 is 'A' in another book"),
])
def test_from_definition_refuses_what_is_not_a_definition(bad, match):
    with pytest.raises(ValueError, match=match):
        VenueSet.from_definition(bad)


# -- the edge's grid checks -----------------------------------------------------------------------

def test_check_price_and_qty_on_the_book_grid():
    vs = venue_set()
    aapl = InstrumentSet.from_config(parse_config(GOOD))["AAPL"]
    vs.check_price(20, aapl, 15005)        # 150.05 on ALT's 0.05 grid
    vs.check_qty(20, aapl, 300)
    vs.check_price(10, aapl, 15003)        # LIT: the instrument's own grid
    vs.check_price(0, "ES", 7)             # venue 0: the primary (LIT for ES)
    vs.check_price(0, "BTC-USD", 1)        # listed nowhere: the default venue, any tick
    vs.check_qty(0, 7, 3)
    with pytest.raises(GridError) as info:
        vs.check_price(20, aapl, 15003)
    assert info.value.reason is Reason.BOOK_OFF_VENUE_GRID
    assert str(info.value) == ("price 150.03 is not a multiple of 0.05, the tick of AAPL on"
                               " venue ALT (20)")
    with pytest.raises(GridError) as info:
        vs.check_qty(0, "AAPL", 150)       # venue 0: AAPL's primary is ALT, lots of 100
    assert info.value.reason is Reason.BOOK_OFF_VENUE_GRID
    assert "quantity of 150 lots is not a multiple of 100 lots" in str(info.value)
    with pytest.raises(GridError) as info:
        vs.check_price(99, aapl, 15000)
    assert info.value.reason is Reason.BOOK_UNKNOWN_VENUE
    with pytest.raises(GridError) as info:
        vs.check_qty(30, "SPY", 1)
    assert info.value.reason is Reason.BOOK_VENUE_NOT_LISTED
    assert "venue CROSS (30) does not list 'SPY'" in str(info.value)
    with pytest.raises(TypeError):
        vs.check_price(20, aapl, Decimal("150.05"))  # ticks, never decimals


# -- registering on a core ------------------------------------------------------------------------

class FakeCore:
    """Records the registration calls, nothing else."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add_venue(self, venue, **kwargs):
        self.calls.append(("add_venue", venue, kwargs))

    def add_instrument(self, instrument, min_qty, max_qty, **kwargs):
        self.calls.append(("add_instrument", instrument, min_qty, max_qty, kwargs))


def test_register_makes_exactly_these_calls():
    cfg = parse_config(GOOD)
    core = FakeCore()
    venue_set().register(core, InstrumentSet.from_config(cfg))
    assert core.calls == [
        ("add_venue", 20, {"maker_fee": 0, "taker_fee": 10, "priority": 1}),
        ("add_venue", 10, {"maker_fee": -20, "taker_fee": 30, "priority": 0}),
        ("add_venue", 30, {"maker_fee": 0, "taker_fee": 0, "priority": -5}),
        ("add_instrument", 1, 1, 100000, {"venue": 20, "tick": 5, "lot": 100, "k": 1}),
        ("add_instrument", 1, 1, 100000, {"venue": 10, "tick": 1, "lot": 1, "k": 1}),
        ("add_instrument", 1, 1, 100000, {"venue": 30, "tick": 1, "lot": 1, "k": 1}),
        ("add_instrument", 2, 5, 1000, {"venue": 20, "tick": 1, "lot": 1, "k": 1}),
        ("add_instrument", 2, 5, 1000, {"venue": 10, "tick": 1, "lot": 1, "k": 1}),
        ("add_instrument", 3, 1, (1 << 63) - 1, {"venue": 10, "tick": 1, "lot": 1, "k": 1}),
        ("add_instrument", 7, 1, (1 << 63) - 1, {"k": 1}),
    ]


def test_register_without_venues_is_one_default_book_each():
    insts = InstrumentSet.from_config(parse_config(INSTRUMENTS))
    core = FakeCore()
    VenueSet.empty().register(core, insts)
    assert core.calls == [("add_instrument", i.id, i.min_lots, i.max_lots, {"k": 1})
                          for i in insts]


RISK = """
[risk]
enabled = true
[[risk.currencies]]
code = "USD"
rate = "1"
"""


def test_register_with_k_from_the_risk_setup_bounds_and_mapping():
    cfg = parse_config(GOOD + RISK)
    insts = InstrumentSet.from_config(cfg)
    setup = RiskSetup(cfg, insts)
    ks = instrument_k(cfg)
    # USD at 6 decimals (BTC-USD: 0.01 x 0.0001): AAPL 0.01 x 1 -> 10**4, ES 0.25 x 50 -> 12.5
    assert ks == {1: 10_000, 2: 10_000, 3: 12_500_000, 7: 1} == {i.id: setup.k(i.id)
                                                                for i in insts}
    core = FakeCore()
    venue_set(GOOD + RISK).register(core, insts, k=setup, min_max={2: (10, 20)})
    added = [c for c in core.calls if c[0] == "add_instrument"]
    assert [(c[1], c[2], c[3], c[4]["k"]) for c in added] == [
        (1, 1, 100000, 10_000), (1, 1, 100000, 10_000), (1, 1, 100000, 10_000),
        (2, 10, 20, 10_000), (2, 10, 20, 10_000), (3, 1, (1 << 63) - 1, 12_500_000),
        (7, 1, (1 << 63) - 1, 1)]
    other = FakeCore()
    venue_set(GOOD + RISK).register(other, insts, k=ks, min_max={2: (10, 20)})
    assert other.calls == core.calls
    # risk off: k = 1 whatever the currencies
    assert instrument_k(parse_config(GOOD + RISK.replace("true", "false"))) == {
        1: 1, 2: 1, 3: 1, 7: 1}
    assert venue_set().calls(insts, k=RiskSetup(parse_config(GOOD))) == venue_set().calls(insts)


def test_register_checks_everything_before_the_first_call():
    vs = venue_set()
    insts = InstrumentSet.from_config(parse_config(GOOD))
    only_spy = InstrumentSet(i for i in insts if i.symbol != "AAPL")
    for kwargs, instruments, match in [
        ({}, only_spy, "lists instrument 1 \\(AAPL\\), which is not one of the instruments"),
        ({"k": {1: 1, 2: 1, 3: 1}}, insts, "no k for instrument 7"),
        ({"k": {1: 1, 2: 0, 3: 1, 7: 1}}, insts, "k of instrument 2"),
        ({"min_max": {1: (5, 4)}}, insts, r"min_max\[1\]"),
        ({"min_max": {1: 5}}, insts, r"min_max\[1\]: expected \(min_qty, max_qty\)"),
    ]:
        core = FakeCore()
        with pytest.raises(ValueError, match=match):
            vs.register(core, instruments, **kwargs)
        assert core.calls == []
    with pytest.raises(TypeError):
        vs.register(FakeCore(), list(insts))  # type: ignore[arg-type]


# -- the embedded default -------------------------------------------------------------------------

def test_the_default_config_has_three_venues():
    cfg = default_config()
    insts = InstrumentSet.from_config(cfg)
    vs = VenueSet.from_config(cfg)
    assert [(v.id, v.name, v.maker_fee, v.taker_fee, v.priority) for v in vs] == [
        (1, "LIT", -20, 30, 0), (2, "ALT", 0, 10, 1), (3, "CROSS", 0, 0, 2)]
    assert [b.venue for b in vs.listing("AAPL")] == [1, 2, 3]
    assert [b.venue for b in vs.listing("SPY")] == [1, 2, 3]
    for symbol in ("ES", "EURUSD", "BTC-USD"):
        assert [b.venue for b in vs.listing(symbol)] == [1]
    for symbol in ("AAPL261218C00200000", "UST-10Y", "XS-CORP-2034"):
        assert vs.primary(symbol) is None  # the default venue, not routable
    assert all(b.tick == 1 and b.lot == 1 for b in vs.books)  # every book on its own grid
    assert VenueSet.from_definition(vs.definition()) == vs
    core = FakeCore()
    vs.register(core, insts, k=instrument_k(cfg))
    assert sum(c[0] == "add_instrument" for c in core.calls) == 9 + 3


def test_a_venue_may_not_be_called_smart() -> None:
    # the gateway's NewOrder names a venue, or SMART for a routed order (docs/PROTOCOL.md)
    for name in ("SMART", "smart"):
        with pytest.raises(ConfigError, match="reserved") as e:
            parse_config(INSTRUMENTS + f'[[venues]]\nid = 1\nname = "{name}"\nmaker_fee = 0\n'
                         'taker_fee = 0\n')
        assert "venues[0].name" in str(e.value)
