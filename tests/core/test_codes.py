"""The integer codes compiled into the core are the ones engine/schema.py publishes."""
import engine.schema as schema
from engine import _core
from engine.risk import _risk


def test_every_c_code_equals_its_schema_enum_member():
    for codes in (_core._c_codes(), _risk._c_codes()):
        for enum_name, members in codes.items():
            enum = getattr(schema, enum_name)
            for name, value in members.items():
                assert enum[name] == value, f"{enum_name}.{name}"


def test_every_risk_reason_kind_and_mode_is_compiled_in():
    codes = _risk._c_codes()
    assert {n for n in codes["Reason"] if n.startswith("RISK_")} == \
        {m.name for m in schema.Reason if m.name.startswith("RISK_")}
    assert set(codes["RiskKind"]) == {m.name for m in schema.RiskKind}
    assert set(codes["KillSwitch"]) == {m.name for m in schema.KillSwitch}


def test_every_core_reason_and_cause_is_compiled_in():
    codes = _core._c_codes()
    book_reasons = {m.name for m in schema.Reason if m.name.startswith("BOOK_")}
    assert set(codes["Reason"]) == book_reasons
    for enum_name in ("CommandType", "Side", "OrdType", "TimeInForce", "EventType",
                      "CancelCause", "OrderStatus", "TradingState"):
        assert set(codes[enum_name]) == {m.name for m in getattr(schema, enum_name)}, enum_name
