"""The integer codes compiled into the core are the ones engine/schema.py publishes."""
import engine.schema as schema
from engine import _core


def test_every_c_code_equals_its_schema_enum_member():
    codes = _core._c_codes()
    for enum_name, members in codes.items():
        enum = getattr(schema, enum_name)
        for name, value in members.items():
            assert enum[name] == value, f"{enum_name}.{name}"


def test_every_core_reason_and_cause_is_compiled_in():
    codes = _core._c_codes()
    book_reasons = {m.name for m in schema.Reason if m.name.startswith("BOOK_")}
    assert set(codes["Reason"]) == book_reasons
    for enum_name in ("CommandType", "Side", "OrdType", "TimeInForce", "EventType",
                      "CancelCause", "OrderStatus", "TradingState"):
        assert set(codes[enum_name]) == {m.name for m in getattr(schema, enum_name)}, enum_name
