"""JSON and Avro inputs with the same content decode to the same InputEvent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract import CURRENCIES, decode_input, encode_avro
from streams.contract.decode import MAX_EVENT_TIME_MS
from streams.contract.model import Flow, InputEvent, Side

# Event ids and references: any text PostgreSQL can hold (no NUL, no lone surrogate).
TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=128
)
OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59)


def rfc3339(ms: int, offset_minutes: int, extra_digits: str) -> str:
    """Render epoch ms as RFC 3339 in a given offset, with sub-ms digits appended."""
    tz_delta = timedelta(minutes=offset_minutes)
    local = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms) + tz_delta
    sign = "+" if offset_minutes >= 0 else "-"
    hh, mm = divmod(abs(offset_minutes), 60)
    frac = f"{ms % 1000:03d}{extra_digits}"
    return f"{local:%Y-%m-%dT%H:%M:%S}.{frac}{sign}{hh:02d}:{mm:02d}"


@st.composite
def events(draw: st.DrawFn) -> tuple[Side, dict[str, Any]]:
    side = draw(st.sampled_from(Side))
    # keep local times inside years 0001..9999 whatever the offset
    ms = draw(st.integers(min_value=86_400_000, max_value=MAX_EVENT_TIME_MS - 86_400_000))
    record: dict[str, Any] = {
        "event_id": draw(TEXT),
        "reference": draw(TEXT),
        "amount_minor": draw(st.integers(min_value=1, max_value=2**63 - 1)),
        "currency": draw(st.sampled_from(sorted(CURRENCIES))),
        "event_time": ms,
        "metadata": draw(st.none() | st.dictionaries(st.text(), st.text(), max_size=4)),
    }
    if side is Side.PAYMENT:
        record["kind"] = draw(st.sampled_from(["payment", "refund"]))
        record["source"] = draw(st.none() | st.text())
    else:
        record["direction"] = draw(st.sampled_from(["credit", "debit"]))
        record["account"] = draw(st.none() | st.text())
    return side, record


@settings(max_examples=300)
@given(events(), OFFSETS, st.text(alphabet="0123456789", max_size=6), st.booleans())
def test_json_and_avro_agree(
    event: tuple[Side, dict[str, Any]], offset_minutes: int, extra: str, as_string: bool
) -> None:
    side, record = event
    name = "PaymentEvent" if side is Side.PAYMENT else "LedgerEvent"
    avro = encode_avro(name, record)
    js_record = dict(record)
    if as_string:
        js_record["event_time"] = rfc3339(record["event_time"], offset_minutes, extra)
    for optional in ("source", "account", "metadata"):
        if js_record.get(optional, 0) is None:
            del js_record[optional]  # absent and null are the same content
    key = record["reference"].encode()
    from_avro = decode_input(side, key, avro, 17)
    from_json = decode_input(side, key, orjson.dumps(js_record), 17)
    assert isinstance(from_avro, InputEvent), from_avro
    assert from_json == from_avro
    assert from_avro.event_time_ms == record["event_time"]
    category = record.get("kind", record.get("direction"))
    assert from_avro.flow is (Flow.PAYMENT if category in ("payment", "credit") else Flow.REFUND)
