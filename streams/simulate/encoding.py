"""How simulated records become Kafka values: JSON or Avro single-object encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import orjson

from streams.contract.codec import encode_avro
from streams.contract.model import Side
from streams.simulate.scenarios import SimRecord

Format = Literal["json", "avro"]
_AVRO_NAME = {Side.PAYMENT: "PaymentEvent", Side.LEDGER: "LedgerEvent"}
_PLUS_ONE = timezone(timedelta(hours=1))


def _rfc3339(ms: int) -> str:
    # Some producers send RFC 3339 with an offset: the contract accepts both forms.
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .astimezone(_PLUS_ONE)
        .isoformat(timespec="milliseconds")
    )


def encode_value(record: SimRecord, fmt: Format) -> bytes:
    value = record.value
    if isinstance(value, bytes):
        return value
    if fmt == "avro" and _avro_ready(value, record.side):
        return encode_avro(_AVRO_NAME[record.side], value)
    rendered: dict[str, Any] = dict(value)
    if record.seq % 3 == 0 and type(rendered.get("event_time")) is int:
        rendered["event_time"] = _rfc3339(rendered["event_time"])
    return orjson.dumps(rendered)


def _avro_ready(value: dict[str, Any], side: Side) -> bool:
    """Only well-formed records can be written as Avro; invalid ones stay JSON."""
    required = ("event_id", "reference", "amount_minor", "currency", "event_time")
    extra = "kind" if side is Side.PAYMENT else "direction"
    return all(k in value for k in (*required, extra)) and int(value["amount_minor"]) > 0


def heartbeat(event_time_ms: int, fmt: Format) -> bytes:
    if fmt == "avro":
        return encode_avro("Heartbeat", {"event_time": event_time_ms})
    return orjson.dumps({"event_time": event_time_ms})
