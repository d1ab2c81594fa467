"""engine.config: the example and the embedded default load; every bad config raises a
ConfigError naming the file and the field path."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from engine.config import (
    ASSET_CLASSES,
    ConfigError,
    EngineConfig,
    InstrumentConfig,
    default_config,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "instruments.toml"

GOOD = """\
[[instruments]]
id = 1
symbol = "AAPL"
asset_class = "equity"
tick_size = "0.01"
lot_size = "1"
currency = "USD"

[[instruments]]
id = 2
symbol = "BTC-USD"
asset_class = "crypto"
tick_size = "0.01"
lot_size = "0.0001"
currency = "USD"
min_qty = "0.0001"
max_qty = "1000"
"""


def test_example_loads():
    cfg = load_config(EXAMPLE)
    assert isinstance(cfg, EngineConfig)
    by_symbol = {i.symbol: i for i in cfg.instruments}
    assert set(ASSET_CLASSES) == {i.asset_class for i in cfg.instruments}
    es = by_symbol["ES"]
    assert (es.asset_class, es.tick_size, es.multiplier) == (
        "future", Decimal("0.25"), Decimal("50"))
    assert by_symbol["EURUSD"].tick_size == Decimal("0.00001")
    assert by_symbol["EURUSD"].lot_size == Decimal("1000")
    assert by_symbol["UST-10Y"].tick_size == Decimal("0.03125")
    assert by_symbol["BTC-USD"].lot_size == Decimal("0.0001")
    assert all(i.matching == "fifo" for i in cfg.instruments)
    assert all(i.min_qty is not None and i.max_qty is not None for i in cfg.instruments)


def test_embedded_default_loads():
    cfg = default_config()
    assert len(cfg.instruments) >= 1
    assert {"AAPL", "ES", "EURUSD", "BTC-USD"} <= {i.symbol for i in cfg.instruments}
    j = cfg.journal
    assert (j.dir, j.durability, j.retention) == ("var/journal", "fsync", "keep")
    assert j.segment_bytes == 64 << 20 and j.snapshot_every == 1_000_000


def test_journal_table_is_optional_with_defaults():
    cfg = load_config(EXAMPLE)
    assert cfg.journal == default_config().journal
    cfg = parse_config(GOOD + '[journal]\ndurability = "write"\nretention = "archive"\n')
    assert (cfg.journal.durability, cfg.journal.retention, cfg.journal.dir) == (
        "write", "archive", "var/journal")


def test_parse_str_and_bytes_and_defaults():
    a = parse_config(GOOD)
    b = parse_config(GOOD.encode())
    assert a == b
    aapl = a.instruments[0]
    assert aapl.multiplier == Decimal("1") and aapl.matching == "fifo"
    assert aapl.min_qty is None and aapl.max_qty is None and aapl.description is None
    assert isinstance(aapl.tick_size, Decimal)


def test_plain_msgspec_decode_gives_the_same_config():
    assert msgspec.toml.decode(GOOD, type=EngineConfig) == parse_config(GOOD)


def test_toml_integer_is_an_exact_decimal():
    cfg = parse_config(GOOD.replace('lot_size = "1"', "lot_size = 100"))
    assert cfg.instruments[0].lot_size == Decimal(100)


def test_config_is_immutable():
    cfg = parse_config(GOOD)
    with pytest.raises(AttributeError):
        cfg.instruments[0].tick_size = Decimal("1")  # type: ignore[misc]


def test_direct_construction_is_validated():
    with pytest.raises(ConfigError, match=r"tick_size: Expected a positive decimal, got '-0\.01'"):
        InstrumentConfig(id=1, symbol="X", asset_class="equity", tick_size=Decimal("-0.01"),
                         lot_size=Decimal(1), currency="USD")


# (name, how to break GOOD, field path in the message, words in the message)
BAD = [
    ("unknown field", lambda t: t + 'tick = "0.01"\n', "$.instruments[1].tick",
     "unknown field 'tick'"),
    ("unknown table", lambda t: "[margin]\nrate = \"1\"\n" + t, "$.margin",
     "unknown field 'margin'"),
    ("unknown risk key", lambda t: "[risk]\nmax_notional = \"1\"\n" + t,
     "$.risk.max_notional", "unknown field 'max_notional'"),
    ("wrong type", lambda t: t.replace('id = 2', 'id = "2"'), "$.instruments[1].id",
     "Expected `int`, got `str`"),
    ("missing field", lambda t: t.replace('tick_size = "0.01"\nlot_size = "1"',
                                          'lot_size = "1"'), "$.instruments[0].tick_size",
     "missing required field"),
    ("missing instruments", lambda t: "# nothing\n", "$.instruments", "missing required field"),
    ("negative tick", lambda t: t.replace('"0.01"', '"-0.01"', 1), "$.instruments[0].tick_size",
     "Expected a positive decimal, got '-0.01'"),
    ("zero lot", lambda t: t.replace('lot_size = "0.0001"', 'lot_size = "0"'),
     "$.instruments[1].lot_size", "Expected a positive decimal, got '0'"),
    ("NaN multiplier", lambda t: t + 'multiplier = "NaN"\n', "$.instruments[1].multiplier",
     "positive decimal"),
    ("not a decimal", lambda t: t.replace('"0.01"', '"one cent"', 1), "$.instruments[0].tick_size",
     "'one cent'"),
    ("float tick", lambda t: t.replace('"0.01"', "0.01", 1), "$.instruments[0].tick_size",
     'tick_size = "0.01"'),
    ("duplicate id", lambda t: t.replace("id = 2", "id = 1"), "$.instruments[1].id",
     "duplicate instrument id 1"),
    ("duplicate symbol", lambda t: t.replace('"BTC-USD"', '"AAPL"'), "$.instruments[1].symbol",
     "duplicate symbol 'AAPL'"),
    ("unsupported matching", lambda t: t + 'matching = "pro_rata"\n', "$.instruments[1].matching",
     "not supported yet"),
    ("unknown matching", lambda t: t + 'matching = "lifo"\n', "$.instruments[1].matching",
     "'lifo'"),
    ("unknown asset class", lambda t: t.replace('"equity"', '"stock"'),
     "$.instruments[0].asset_class", "fx_spot"),
    ("off-grid min_qty", lambda t: t.replace('min_qty = "0.0001"', 'min_qty = "0.00015"'),
     "$.instruments[1].min_qty", "multiple of lot_size 0.0001"),
    ("off-grid max_qty", lambda t: t.replace('max_qty = "1000"', 'max_qty = "1000.00001"'),
     "$.instruments[1].max_qty", "multiple of lot_size"),
    ("min above max", lambda t: t.replace('max_qty = "1000"', 'max_qty = "0.0001"')
     .replace('min_qty = "0.0001"', 'min_qty = "1"'), "$.instruments[1].max_qty", "min_qty"),
    ("max_qty beyond int64 lots", lambda t: t.replace('max_qty = "1000"', 'max_qty = "1E+30"'),
     "$.instruments[1].max_qty", "2**63-1 lots"),
    ("id out of range", lambda t: t.replace("id = 2", "id = 4294967296"), "$.instruments[1].id",
     "4294967295"),
    ("negative id", lambda t: t.replace("id = 2", "id = -2"), "$.instruments[1].id", ">= 0"),
    ("empty symbol", lambda t: t.replace('"AAPL"', '""'), "$.instruments[0].symbol", "length"),
    ("bad currency", lambda t: t.replace('"USD"', '"usd"', 1), "$.instruments[0].currency",
     "currency code"),
    ("too many decimals", lambda t: t.replace('"0.01"', '"1E-19"', 1), "$.instruments[0].tick_size",
     "18 decimal places"),
    ("unknown durability", lambda t: t + '[journal]\ndurability = "sometimes"\n',
     "$.journal.durability", "fsync, none, write"),
    ("negative snapshot_every", lambda t: t + "[journal]\nsnapshot_every = -5\n",
     "$.journal.snapshot_every", ">= 0"),
    ("tiny segments", lambda t: t + "[journal]\nsegment_bytes = 64\n",
     "$.journal.segment_bytes", ">= 128"),
    ("unknown retention", lambda t: t + '[journal]\nretention = "shred"\n',
     "$.journal.retention", "archive"),
    ("journal typo", lambda t: t + "[journal]\nkeep_snapshot = 3\n",
     "$.journal.keep_snapshot", "did you mean 'keep_snapshots'"),
    ("empty journal dir", lambda t: t + '[journal]\ndir = ""\n', "$.journal.dir", "length"),
]


@pytest.mark.parametrize("name,breaker,path,words", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_file_and_field(tmp_path, name, breaker, path, words):
    f = tmp_path / "bad_instruments.toml"
    f.write_text(breaker(GOOD))
    with pytest.raises(ConfigError) as info:
        load_config(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}: {path}: "), msg
    assert words in msg, msg
    assert info.value.source == str(f) and info.value.path == path


def test_parse_config_uses_the_source_name():
    with pytest.raises(ConfigError, match=r"^<mine>: \$\.instruments\[0\]\.tick_size: "):
        parse_config(GOOD.replace('"0.01"', '"-1"', 1), source="<mine>")


def test_unknown_field_suggests_the_right_name():
    with pytest.raises(ConfigError, match=r"did you mean 'tick_size'\?"):
        parse_config(GOOD + 'tick = "0.01"\n')


def test_toml_syntax_error(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text(GOOD + "currency = \n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    msg = str(info.value)
    assert str(f) in msg and "TOML syntax error" in msg and "line 18" in msg


def test_missing_file(tmp_path):
    f = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(f) in str(info.value) and "cannot read" in str(info.value)


def test_not_utf8():
    with pytest.raises(ConfigError, match="^cfg.toml: not UTF-8"):
        parse_config(b"\xff\xfe", source="cfg.toml")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
