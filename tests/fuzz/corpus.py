"""The fuzz corpus: bad input records, each with the outcome the contract gives it.

``generate(count, seed)`` returns a :class:`Corpus` of ``count`` bad input records (and the
valid records some cases come with), deterministic from the seed. Every item carries its input
(payments or ledger), key bytes, value bytes, headers, and its expected outcome:

* a dead-letter reason of the README's table (``BAD_JSON`` ... ``KEY_MISMATCH``);
* :data:`ACCEPTED`: valid by the contract. Accepted records come in small groups (a payment and
  its ledger entry, say) whose matches and exceptions the corpus states itself
  (:attr:`Corpus.matches`, :attr:`Corpus.exceptions`, in the simulator's terms, so
  :func:`streams.simulate.truth.truth_of` turns them into ids);
* :data:`REFUSED`: over the size limit. The producer (or the broker) refuses it, so it never
  reaches the worker.

Each expected outcome follows from how the item is built: one defect per bad item, on an
otherwise valid record, so the first check that fails is known. Nothing is taken from running
the decoder.

Run ``python -m tests.fuzz.corpus [--count N] [--seed S]`` for the counts by category and by
expected outcome.
"""

from __future__ import annotations

import argparse
import random
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from streams.contract.codec import encode_avro
from streams.contract.decode import RejectReason
from streams.contract.model import ExceptionKind, Flow, Rule, Side
from streams.contract.registry import default_registry
from streams.simulate.scenarios import START_MS, ExpectedException, ExpectedMatch, Simulation

ACCEPTED: Final = "ACCEPTED"
REFUSED: Final = "REFUSED"
DEFAULT_COUNT: Final = 10_000
DEFAULT_SEED: Final = 13

#: librdkafka's default ``message.max.bytes``: what our producers (and upstream's) send at most.
PRODUCER_LIMIT: Final = 1_000_000
#: Kafka's default ``max.message.bytes`` of a topic (a record batch), which ours keep.
TOPIC_LIMIT: Final = 1_048_588
#: ``message.max.bytes`` of the producer that sends the items marked ``producer="large"``: past
#: the topic's limit, so the broker, not the producer, decides on them.
LARGE_PRODUCER_LIMIT: Final = 2_000_000
#: The worker's default RECON_MAX_EVENT_TIME_AHEAD.
MAX_AHEAD_MS: Final = 3_600_000
MAX_LONG: Final = 2**63 - 1

#: The schema registry the corpus assumes (SCHEMA_REGISTRY_URL): id -> schema text. Any other
#: id is unknown (404).
_SCHEMAS_DIR: Final = Path(__file__).resolve().parents[2] / "schemas"
REGISTRY_SCHEMAS: Final[dict[int, str]] = {
    1: (_SCHEMAS_DIR / "PaymentEvent" / "v1.avsc").read_text(),
    2: (_SCHEMAS_DIR / "LedgerEvent" / "v1.avsc").read_text(),
    3: (_SCHEMAS_DIR / "Heartbeat" / "v1.avsc").read_text(),
    4: orjson.dumps(
        {
            "type": "record",
            "name": "Other",
            "namespace": "elsewhere",
            "fields": [{"name": "a", "type": "string"}],
        }
    ).decode(),
    5: '{"type": "record", "name": "Broken"',
}
_SCHEMA_ID: Final = {Side.PAYMENT: 1, Side.LEDGER: 2}


class _NotFoundError(Exception):
    http_status_code = 404  # as confluent-kafka's SchemaRegistryError for an unknown id


@dataclass(frozen=True)
class _RegisteredSchema:
    schema_str: str
    schema_type: str = "AVRO"


class FakeRegistryClient:
    """In-process stand-in for confluent-kafka's ``SchemaRegistryClient`` over
    :data:`REGISTRY_SCHEMAS` (``get_schema`` is all the decoder calls)."""

    def get_schema(self, schema_id: int) -> _RegisteredSchema:
        if schema_id not in REGISTRY_SCHEMAS:
            raise _NotFoundError(f"schema {schema_id} not found")
        return _RegisteredSchema(REGISTRY_SCHEMAS[schema_id])


UNKNOWN_SCHEMA_IDS: Final = (0, 6, 999, 2**31, 2**32 - 1)

_AVRO_NAME: Final = {Side.PAYMENT: "PaymentEvent", Side.LEDGER: "LedgerEvent"}
_TOPIC: Final = {Side.PAYMENT: "payments", Side.LEDGER: "ledger"}
_CATEGORY_FIELD: Final = {Side.PAYMENT: ("kind", "payment"), Side.LEDGER: ("direction", "credit")}
_EXTRA_FIELD: Final = {Side.PAYMENT: "source", Side.LEDGER: "account"}
_CURRENCIES: Final = ("EUR", "USD", "GBP", "JPY", "CHF")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_GROUP_STEP_MS: Final = 10_000
# Valid records whose event time is "the corpus' time" wherever the field is not under test.
_DROP: Final = object()

Header = tuple[bytes, bytes | None]
#: The kinds of garbage headers (_Gen.garbage_headers); 4 and 5 only a non-Java client can send.
HEADER_KINDS: Final = 6
Producer = Literal["default", "large"]


@dataclass(frozen=True, slots=True)
class Item:
    """One input record of the corpus and the outcome it must get."""

    index: int
    category: str
    case: str
    side: Side
    key: bytes | None
    value: bytes | None
    expected: str  # a dead-letter reason, ACCEPTED or REFUSED
    headers: tuple[Header, ...] = ()
    # Sent to a partition other than its key's murmur2 partition.
    wrong_partition: bool = False
    # "large": sent by a producer whose message.max.bytes is LARGE_PRODUCER_LIMIT.
    producer: Producer = "default"

    @property
    def topic(self) -> str:
        """The input it is written to: ``payments`` or ``ledger``."""
        return _TOPIC[self.side]

    @property
    def bad(self) -> bool:
        return self.expected != ACCEPTED

    @property
    def reaches_worker(self) -> bool:
        return self.expected != REFUSED

    @property
    def raw_headers(self) -> bool:
        """A header key that confluent-kafka cannot send (not UTF-8, or a NUL in it)."""
        for k, _ in self.headers:
            if b"\x00" in k:
                return True
            try:
                k.decode()
            except UnicodeDecodeError:
                return True
        return False

    @property
    def size(self) -> int:
        return (
            len(self.key or b"")
            + len(self.value or b"")
            + sum(len(k) + len(v or b"") for k, v in self.headers)
        )


@dataclass(slots=True)
class Corpus:
    seed: int
    items: list[Item] = field(default_factory=list)
    matches: list[ExpectedMatch] = field(default_factory=list)
    exceptions: list[ExpectedException] = field(default_factory=list)
    # Event times of the accepted groups: from start_ms to last_event_ms.
    start_ms: int = START_MS
    last_event_ms: int = START_MS
    # Event time of the accepted heartbeats (before any other event of a run).
    heartbeat_ms: int = START_MS

    @property
    def bad(self) -> list[Item]:
        return [i for i in self.items if i.bad]

    @property
    def accepted(self) -> list[Item]:
        return [i for i in self.items if not i.bad]

    def by_category(self) -> Counter[str]:
        return Counter(i.category for i in self.items)

    def by_expected(self) -> Counter[str]:
        return Counter(i.expected for i in self.items)

    def dead_letters(self) -> Counter[str]:
        """Dead letters by reason once every item that reaches the worker has been read."""
        return Counter(i.expected for i in self.items if i.bad and i.reaches_worker)

    def simulation(self) -> Simulation:
        """The accepted groups' outcomes and the dead letters, as a simulation's expectations
        (for :func:`streams.simulate.truth.truth_of`); it has no records."""
        return Simulation(
            matches=list(self.matches),
            exceptions=list(self.exceptions),
            dead_letters=self.dead_letters(),
        )


# ---------------------------------------------------------------------------- encodings


def ms_to_rfc3339(ms: int, offset_minutes: int = 0, *, digits: int = 3) -> str:
    """``ms`` as RFC 3339 in the given UTC offset, exactly (no float on the way)."""
    tz = timezone(timedelta(minutes=offset_minutes))
    dt = (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{dt.microsecond // 1000:03d}".ljust(digits, "0")[:digits] if digits else ""
    text += f".{fraction}" if digits else ""
    return text + (
        "Z" if offset_minutes == 0 else dt.strftime("%z")[:3] + ":" + dt.strftime("%z")[3:]
    )


def _avro_datum(side: Side, record: dict[str, Any]) -> dict[str, Any]:
    datum = dict(record)
    datum.setdefault(_EXTRA_FIELD[side], None)
    datum.setdefault("metadata", None)
    return datum


def avro_single_object(side: Side, record: dict[str, Any]) -> bytes:
    return encode_avro(_AVRO_NAME[side], _avro_datum(side, record))


def avro_body(side: Side, record: dict[str, Any]) -> bytes:
    """The Avro body alone (no single-object header)."""
    return avro_single_object(side, record)[10:]


def confluent_frame(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body


def heartbeat_body(event_time: int) -> bytes:
    return encode_avro("Heartbeat", {"event_time": event_time})[10:]


def _fingerprint(name: str) -> bytes:
    return default_registry().current(name).fingerprint


# ---------------------------------------------------------------------------- the generator


class _Gen:
    def __init__(self, seed: int, start_ms: int, heartbeat_ms: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.corpus = Corpus(seed, start_ms=start_ms, last_event_ms=start_ms)
        self.corpus.heartbeat_ms = heartbeat_ms
        self.clock = start_ms
        self._refs = 0
        self.category = ""
        self.case = ""

    # -- naming and time

    def ref(self, tag: str = "") -> str:
        self._refs += 1
        return f"FZ{self.seed}-{self._refs:06d}{tag}"

    def group_time(self) -> int:
        """The start of a new accepted group; its events may use the next 3 seconds."""
        t = self.clock
        self.clock += _GROUP_STEP_MS
        self.corpus.last_event_ms = max(self.corpus.last_event_ms, t + 3_000)
        return t

    def side(self) -> Side:
        return self.rng.choice((Side.PAYMENT, Side.LEDGER))

    def event_time(self, t: int) -> int | str:
        """``t`` as epoch ms or as RFC 3339 in some offset (both are the contract's)."""
        if self.rng.random() < 0.5:
            return t
        return ms_to_rfc3339(t, self.rng.choice((0, 60, -300, 330, 840, -720)))

    # -- records

    def record(
        self,
        side: Side,
        ref: str,
        t: int | None = None,
        *,
        eid: str | None = None,
        amount: int | None = None,
    ) -> dict[str, Any]:
        """A valid record of ``side``."""
        cat_field, cat_value = _CATEGORY_FIELD[side]
        record: dict[str, Any] = {
            "event_id": eid
            if eid is not None
            else f"{ref}-{side.value[0]}{self.rng.randrange(10**6)}",
            "reference": ref,
            "amount_minor": amount if amount is not None else self.rng.randrange(100, 10**7),
            "currency": self.rng.choice(_CURRENCIES),
            "event_time": self.event_time(self.clock if t is None else t),
            cat_field: cat_value,
        }
        if self.rng.random() < 0.3:
            record[_EXTRA_FIELD[side]] = self.rng.choice(("psp-a", "ACC-1", "ünïcødé"))
        return record

    def valid(self, side: Side | None = None, tag: str = "") -> tuple[Side, bytes, dict[str, Any]]:
        side = side or self.side()
        ref = self.ref(tag)
        return side, ref.encode(), self.record(side, ref)

    # -- items

    def add(
        self,
        side: Side,
        key: bytes | None,
        value: bytes | None,
        expected: str,
        *,
        headers: tuple[Header, ...] = (),
        wrong_partition: bool = False,
        producer: Producer = "default",
    ) -> None:
        self.corpus.items.append(
            Item(
                len(self.corpus.items),
                self.category,
                self.case,
                side,
                key,
                value,
                expected,
                headers,
                wrong_partition,
                producer,
            )
        )

    def bad(
        self, side: Side, key: bytes | None, value: bytes | None, reason: str, **kw: Any
    ) -> None:
        assert reason not in (ACCEPTED,), reason
        self.add(side, key, value, reason, **kw)

    def bad_field(self, side: Side | None, name: str, value: object, reason: str) -> None:
        """A valid record with one field replaced (or dropped: ``_DROP``), as JSON."""
        side, key, record = self.valid(side)
        if value is _DROP:
            del record[name]
        else:
            record[name] = value
        self.bad(side, key, orjson.dumps(record), reason)

    def bad_avro_field(self, side: Side | None, name: str, value: object, reason: str) -> None:
        """A valid record with one field replaced, as Avro single-object encoding."""
        side, key, record = self.valid(side)
        record["event_time"] = self.clock
        record[name] = value
        self.bad(side, key, avro_single_object(side, record), reason)

    def garbage_headers(self, kind: int | None = None) -> tuple[Header, ...]:
        """Headers of one of :data:`HEADER_KINDS` kinds (random when ``kind`` is None)."""
        rng = self.rng
        kind = rng.randrange(HEADER_KINDS) if kind is None else kind
        if kind == 0:  # many small binary headers, duplicate keys
            return tuple(
                (rng.choice((b"x", b"trace", b"")), rng.randbytes(rng.randrange(8)))
                for _ in range(300)
            )
        if kind == 1:  # null and empty values, odd but valid UTF-8 keys
            return (
                (b"", None),
                ("\U0001f4b8 key".encode(), b""),
                (b"content-type", b"\xff\xfe\x00"),
            )
        if kind == 2:  # one big binary value
            return ((b"blob", rng.randbytes(100_000)),)
        if kind == 3:  # names of contract fields, with values that would be wrong ones
            return (
                (b"event_id", b""),
                (b"reference", b"\x00"),
                (b"amount_minor", b"-1"),
                (b"content-type", b"application/vnd.confluent.avro"),
            )
        if kind == 4:  # keys that are not UTF-8 (a Go or C producer can send them)
            return ((b"\xff\xfe", b"v"), (b"\xc3\x28" + rng.randbytes(4), None))
        return ((b"nul\x00key", b"v"),)  # a NUL in a key

    # -- accepted groups

    def accept(
        self, side: Side, key: bytes | None, value: bytes, headers: tuple[Header, ...] = ()
    ) -> None:
        self.add(side, key, value, ACCEPTED, headers=headers)

    def pair(
        self,
        ref: str | None = None,
        *,
        pay: dict[str, Any] | None = None,
        led: dict[str, Any] | None = None,
        encode: Callable[[Side, dict[str, Any]], bytes] | None = None,
        headers: tuple[Header, ...] = (),
        pay_eid: str | None = None,
        led_eid: str | None = None,
        amount: int | None = None,
    ) -> None:
        """A payment and its ledger credit a second later: one exact match."""
        ref = ref if ref is not None else self.ref()
        t = self.group_time()
        amount = amount if amount is not None else self.rng.randrange(100, 10**7)
        currency = self.rng.choice(_CURRENCIES)
        # The reference's first characters are unique (its counter): ids stay within 128.
        p = self.record(Side.PAYMENT, ref, t, eid=pay_eid or f"{ref[:100]}-p1", amount=amount)
        l_ = self.record(
            Side.LEDGER, ref, t + 1_000, eid=led_eid or f"{ref[:100]}-l1", amount=amount
        )
        p["currency"] = l_["currency"] = currency
        if encode is not None:  # Avro has epoch ms only; JSON takes both forms
            p["event_time"], l_["event_time"] = t, t + 1_000
        p.update(pay or {})
        l_.update(led or {})
        enc = encode or (lambda _side, r: orjson.dumps(r))
        key = ref.encode()
        self.accept(Side.PAYMENT, key, enc(Side.PAYMENT, p), headers)
        self.accept(Side.LEDGER, key, enc(Side.LEDGER, l_), headers)
        self.corpus.matches.append(
            ExpectedMatch(
                ref,
                Flow.PAYMENT,
                Rule.EXACT,
                currency,
                (str(p["event_id"]),),
                (str(l_["event_id"]),),
                int(p["amount_minor"]),
                int(l_["amount_minor"]),
            )
        )


@dataclass(frozen=True, slots=True)
class Case:
    category: str
    name: str
    weight: float
    build: Callable[[_Gen], None]
    # Builds bad items (else only accepted ones).
    bad: bool = True


CASES: list[Case] = []


def _case(
    category: str,
    name: str,
    build: Callable[[_Gen], None],
    *,
    weight: float = 1.0,
    bad: bool = True,
) -> None:
    assert all((c.category, c.name) != (category, name) for c in CASES), name
    CASES.append(Case(category, name, weight, build, bad))


def _field(
    category: str, name: str, side: Side | None, fname: str, value: object, reason: str
) -> None:
    _case(category, name, lambda g: g.bad_field(side, fname, value, reason))


def _raw(
    category: str,
    name: str,
    reason: str,
    make: Callable[[_Gen], bytes | None],
    *,
    key: bool = True,
    weight: float = 1.0,
    producer: Producer = "default",
) -> None:
    def build(g: _Gen) -> None:
        side = g.side()
        g.bad(side, g.ref().encode() if key else None, make(g), reason, producer=producer)

    _case(category, name, build, weight=weight)


def _const(data: bytes) -> Callable[[_Gen], bytes]:
    return lambda g: data


def _avro_field(fname: str, value: object, reason: str) -> Callable[[_Gen], None]:
    return lambda g: g.bad_avro_field(None, fname, value, reason)


def _valid_json(g: _Gen) -> bytes:
    _, _, record = g.valid()
    return orjson.dumps(record)


# ---- malformed and truncated JSON; JSON that is not an object

BAD_JSON = RejectReason.BAD_JSON.value


def _truncated(g: _Gen) -> bytes:
    data = _valid_json(g)
    return data[: g.rng.randrange(1, len(data))]  # a prefix of an object never closes it


for _name, _make in {
    "truncated": _truncated,
    "truncated_after_whitespace": lambda g: b" \n\t" + _truncated(g),
    "trailing_garbage": lambda g: _valid_json(g) + b"x",
    "two_objects": lambda g: _valid_json(g) + b"{}",
    "single_quotes": lambda g: _valid_json(g).replace(b'"', b"'"),
    "trailing_comma": lambda g: _valid_json(g)[:-1] + b",}",
    "nan_literal": lambda g: _valid_json(g)[:-1] + b',"x":NaN}',
    "infinite_number": lambda g: _valid_json(g)[:-1] + b',"x":1e400}',
    "unquoted_keys": lambda g: b"{event_id: 1}",
    "comment": lambda g: b"/* c */" + _valid_json(g),
    "raw_control_char": lambda g: _valid_json(g).replace(b'"reference":"', b'"reference":"\n', 1),
    "raw_nul_in_string": lambda g: _valid_json(g).replace(
        b'"reference":"', b'"reference":"\x00', 1
    ),
    "bad_escape": lambda g: _valid_json(g).replace(b'"reference":"', b'"reference":"\\x41', 1),
    "lone_surrogate_escape": lambda g: _valid_json(g).replace(
        b'"event_id":"', b'"event_id":"\\ud800', 1
    ),
    "random_after_brace": lambda g: (
        b"{" + g.rng.randbytes(g.rng.randrange(1, 64)).replace(b"}", b"~")
    ),
    "only_brace": lambda g: b"{",
    "bom_prefix": lambda g: b"\xef\xbb\xbf" + _valid_json(g),
    "empty_value": lambda g: b"",
    "whitespace_only": lambda g: b" \r\n\t ",
    "random_bytes": lambda g: b"\x7f" + g.rng.randbytes(g.rng.randrange(0, 200)),
    "single_c3": lambda g: b"\xc3",
}.items():
    _raw("malformed_json", _name, BAD_JSON, _make)

for _name, _text in {
    "array": b"[]",
    "array_of_record": None,
    "string": b'"REF-1"',
    "number": b"12345",
    "negative_number": b"-1",
    "null": b"null",
    "true": b"true",
    "whitespace_array": b"  [1, 2]",
}.items():
    if _text is None:
        _raw("json_not_object", _name, BAD_JSON, lambda g: b"[" + _valid_json(g) + b"]")
    else:
        _raw("json_not_object", _name, BAD_JSON, _const(_text))

# ---- wrong types, nulls and missing fields

BAD_TYPE = RejectReason.BAD_TYPE.value
MISSING_FIELD = RejectReason.MISSING_FIELD.value
BAD_AMOUNT = RejectReason.BAD_AMOUNT.value
BAD_VALUE = RejectReason.BAD_VALUE.value
BAD_REFERENCE = RejectReason.BAD_REFERENCE.value
BAD_EVENT_TIME = RejectReason.BAD_EVENT_TIME.value
UNKNOWN_CURRENCY = RejectReason.UNKNOWN_CURRENCY.value
BAD_AVRO = RejectReason.BAD_AVRO.value
UNKNOWN_SCHEMA = RejectReason.UNKNOWN_SCHEMA.value
KEY_MISMATCH = RejectReason.KEY_MISMATCH.value

_WRONG_TYPES: dict[str, tuple[object, ...]] = {
    "event_id": (1, 1.5, True, ["a"], {"a": "b"}),
    "reference": (7, False, ["REF"], {"r": 1}),
    "amount_minor": ("100", True, 1.5, 100.0, -1.5, [100], {"v": 1}),
    "currency": (978, True, ["EUR"], {"c": "EUR"}),
    "event_time": (1.5e12, True, ["2026-01-01T00:00:00Z"], {"t": 1}),
    "kind": (1, ["payment"]),
    "direction": (0, {"d": "credit"}),
    "source": (5, ["psp"], True),
    "account": (1.0, {"a": 1}),
    "metadata": ("text", ["a", "b"], 1, {"a": 1}, {"a": None}, {"a": {"b": "c"}}),
}
_SIDE_OF_FIELD = {
    "kind": Side.PAYMENT,
    "source": Side.PAYMENT,
    "direction": Side.LEDGER,
    "account": Side.LEDGER,
}
for _fname, _values in _WRONG_TYPES.items():
    for _i, _v in enumerate(_values):
        _field(
            "wrong_type",
            f"{_fname}_{type(_v).__name__}_{_i}",
            _SIDE_OF_FIELD.get(_fname),
            _fname,
            _v,
            BAD_TYPE,
        )

_REQUIRED = ("event_id", "reference", "amount_minor", "currency", "event_time")
for _fname in (*_REQUIRED, "kind", "direction"):
    _field("null_field", f"{_fname}_null", _SIDE_OF_FIELD.get(_fname), _fname, None, MISSING_FIELD)
    _field(
        "missing_field",
        f"{_fname}_missing",
        _SIDE_OF_FIELD.get(_fname),
        _fname,
        _DROP,
        MISSING_FIELD,
    )
_raw("missing_field", "empty_object", MISSING_FIELD, lambda g: b"{}")
_raw("missing_field", "only_reference", MISSING_FIELD, lambda g: b'{"reference": "R"}')


def _payment_on_ledger(g: _Gen) -> None:
    _, key, record = g.valid(Side.PAYMENT)
    g.bad(Side.LEDGER, key, orjson.dumps(record), MISSING_FIELD)  # no direction


def _ledger_on_payments(g: _Gen) -> None:
    _, key, record = g.valid(Side.LEDGER)
    g.bad(Side.PAYMENT, key, orjson.dumps(record), MISSING_FIELD)  # no kind


_case("missing_field", "payment_on_ledger_topic", _payment_on_ledger)
_case("missing_field", "ledger_on_payments_topic", _ledger_on_payments)


def _null_optionals(g: _Gen) -> None:
    g.pair(pay={"source": None, "metadata": None}, led={"account": None, "metadata": None})


def _extra_fields(g: _Gen) -> None:
    g.pair(
        pay={"x": 1, "event_time_2": "junk", "nested": {"a": [1, None]}}, led={"": "", "z": None}
    )


_case("null_field", "optional_fields_null", _null_optionals, bad=False)
_case("missing_field", "unknown_extra_fields", _extra_fields, bad=False)

# ---- kind and direction values

for _name, _side, _fname, _value in (
    ("kind_upper", Side.PAYMENT, "kind", "PAYMENT"),
    ("kind_chargeback", Side.PAYMENT, "kind", "chargeback"),
    ("kind_empty", Side.PAYMENT, "kind", ""),
    ("kind_credit", Side.PAYMENT, "kind", "credit"),
    ("direction_upper", Side.LEDGER, "direction", "CREDIT"),
    ("direction_payment", Side.LEDGER, "direction", "payment"),
    ("direction_nul", Side.LEDGER, "direction", "credit\x00"),
):
    _field("kind_direction", _name, _side, _fname, _value, BAD_VALUE)

# ---- tombstones, null keys, invalid UTF-8 in keys and values


def _tombstone(key: Callable[[_Gen], bytes | None]) -> Callable[[_Gen], None]:
    return lambda g: g.bad(g.side(), key(g), None, BAD_JSON)


_case("tombstone", "tombstone_with_key", _tombstone(lambda g: g.ref().encode()))
_case("tombstone", "tombstone_null_key", _tombstone(lambda g: None))
_case("tombstone", "tombstone_binary_key", _tombstone(lambda g: g.rng.randbytes(16)))
_case("tombstone", "empty_value_null_key", lambda g: g.bad(g.side(), None, b"", BAD_JSON))


def _null_key(g: _Gen) -> None:
    side, _, record = g.valid()
    g.bad(side, None, orjson.dumps(record), KEY_MISMATCH)


def _null_key_avro(g: _Gen) -> None:
    side, _, record = g.valid()
    record["event_time"] = g.clock
    g.bad(side, None, avro_single_object(side, record), KEY_MISMATCH)


_case("null_key", "valid_event_null_key", _null_key)
_case("null_key", "valid_avro_event_null_key", _null_key_avro)
_case("null_key", "bad_json_null_key", lambda g: g.bad(g.side(), None, b"{nope", BAD_JSON))


def _heartbeat_null_key(g: _Gen) -> None:
    g.accept(g.side(), None, orjson.dumps({"event_time": g.corpus.heartbeat_ms}))


_case("null_key", "heartbeat_null_key", _heartbeat_null_key, bad=False)

_INVALID_UTF8 = (
    b"\xff",
    b"\xc3\x28",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xe2\x82",
    b"\xf4\x90\x80\x80",
)


def _utf8_key(suffix: bytes) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side, key, record = g.valid()
        g.bad(side, key + suffix, orjson.dumps(record), KEY_MISMATCH)

    return build


def _utf8_json(fname: str, bad_bytes: bytes) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side, key, record = g.valid()
        marker = "\x01MARK\x01"
        record[fname] = f"{record.get(fname) or 'x'}{marker}"
        g.bad(side, key, orjson.dumps(record).replace(b"\\u0001MARK\\u0001", bad_bytes), BAD_JSON)

    return build


def _utf8_avro(name: str, bad_bytes: bytes) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side, key, record = g.valid()
        fname = _EXTRA_FIELD[side] if name == "source" else name
        record["event_time"] = g.clock
        # Same length as the bytes put in, so the Avro string's length prefix stays right.
        placeholder = "#" * len(bad_bytes)
        record[fname] = f"X{placeholder}Y"
        data = avro_single_object(side, record)
        at = data.index(f"X{placeholder}Y".encode())
        g.bad(side, key, data[: at + 1] + bad_bytes + data[at + 1 + len(bad_bytes) :], BAD_AVRO)

    return build


for _i, _b in enumerate(_INVALID_UTF8):
    _case("invalid_utf8", f"key_{_i}", _utf8_key(_b))
    for _fname in ("event_id", "reference", "currency"):
        _case("invalid_utf8", f"json_{_fname}_{_i}", _utf8_json(_fname, _b))
    for _fname in ("event_id", "reference", "currency", "source"):
        _case("invalid_utf8", f"avro_{_fname}_{_i}", _utf8_avro(_fname, _b))


def _key_only_invalid(g: _Gen) -> None:
    side, _, record = g.valid()
    g.bad(side, b"\xff\xfe\xfd", orjson.dumps(record), KEY_MISMATCH)


_case("invalid_utf8", "key_only_invalid", _key_only_invalid)

# ---- amounts: huge, negative, overflowing; sums that overflow

for _name, _literal, _reason in (
    ("zero", b"0", BAD_AMOUNT),
    ("minus_zero", b"-0", BAD_AMOUNT),
    ("negative", b"-1", BAD_AMOUNT),
    ("min_long", b"-9223372036854775808", BAD_AMOUNT),
    ("below_min_long", b"-9223372036854775809", BAD_AMOUNT),
    ("max_long_plus_1", b"9223372036854775808", BAD_AMOUNT),
    ("max_u64", b"18446744073709551615", BAD_AMOUNT),
    ("past_u64", b"18446744073709551616", BAD_AMOUNT),
    ("10e30_literal", b"1000000000000000000000000000000", BAD_AMOUNT),
    ("float_past_long", b"1e19", BAD_AMOUNT),
    ("negative_huge_float", b"-1e30", BAD_AMOUNT),
    ("float_one", b"1.0", BAD_TYPE),
    ("exponent_integer", b"1E2", BAD_TYPE),
    ("fraction", b"0.5", BAD_TYPE),
):

    def _amount_literal(g: _Gen, literal: bytes = _literal, reason: str = _reason) -> None:
        side, key, record = g.valid()
        record["amount_minor"] = "\x01AMOUNT\x01"
        g.bad(side, key, orjson.dumps(record).replace(b'"\\u0001AMOUNT\\u0001"', literal), reason)

    _case("amount", _name, _amount_literal)

for _name, _amount in (("avro_zero", 0), ("avro_negative", -1), ("avro_min_long", -(2**63))):
    _case("amount", _name, _avro_field("amount_minor", _amount, BAD_AMOUNT))


def _max_pair(g: _Gen) -> None:
    g.pair(amount=MAX_LONG)


def _max_pair_avro(g: _Gen) -> None:
    g.pair(amount=MAX_LONG, encode=avro_single_object)


def _max_alone(g: _Gen) -> None:
    ref = g.ref()
    t = g.group_time()
    record = g.record(Side.PAYMENT, ref, t, eid=f"{ref}-p1", amount=MAX_LONG)
    g.accept(Side.PAYMENT, ref.encode(), orjson.dumps(record))
    g.corpus.exceptions.append(
        ExpectedException(
            ref,
            Flow.PAYMENT,
            ExceptionKind.MISSING_LEDGER,
            False,
            record["currency"],
            None,
            (f"{ref}-p1",),
            (),
        )
    )


def _overflow(g: _Gen, *, ledger_side: bool) -> None:
    """Two events whose sum passes 2**63-1 on one side of one group, then the counterpart of
    the first: the second is reported alone (AMOUNT_OVERFLOW, open), the first matches."""
    ref = g.ref()
    t = g.group_time()
    cur = g.rng.choice(_CURRENCIES)
    key = ref.encode()
    first_side, other = (Side.LEDGER, Side.PAYMENT) if ledger_side else (Side.PAYMENT, Side.LEDGER)
    first = g.record(first_side, ref, t, eid=f"{ref}-a", amount=MAX_LONG)
    second = g.record(
        first_side, ref, t + 1_000, eid=f"{ref}-b", amount=g.rng.choice((1, MAX_LONG))
    )
    counter = g.record(other, ref, t + 2_000, eid=f"{ref}-c", amount=MAX_LONG)
    for r in (first, second, counter):
        r["currency"] = cur
    for side, r in ((first_side, first), (first_side, second), (other, counter)):
        g.accept(side, key, orjson.dumps(r))
    pay, led = (counter, first) if ledger_side else (first, counter)
    g.corpus.matches.append(
        ExpectedMatch(
            ref,
            Flow.PAYMENT,
            Rule.EXACT,
            cur,
            (pay["event_id"],),
            (led["event_id"],),
            MAX_LONG,
            MAX_LONG,
        )
    )
    ids = (second["event_id"],)
    g.corpus.exceptions.append(
        ExpectedException(
            ref,
            Flow.PAYMENT,
            ExceptionKind.AMOUNT_OVERFLOW,
            False,
            cur,
            None,
            () if ledger_side else ids,
            ids if ledger_side else (),
        )
    )


_case("amount", "max_long_pair", _max_pair, bad=False)
_case("amount", "max_long_pair_avro", _max_pair_avro, bad=False)
_case("amount", "max_long_alone", _max_alone, bad=False)
_case("sum_overflow", "two_max_payments", lambda g: _overflow(g, ledger_side=False), bad=False)
_case("sum_overflow", "max_ledger_plus_more", lambda g: _overflow(g, ledger_side=True), bad=False)

# ---- currencies

for _i, _cur in enumerate(
    (
        "eur",
        "usd",
        "Eur",
        "eUR",
        "QQQ",
        "ZZZ",
        "BTC",
        "EURO",
        "EU",
        "",
        " EUR",
        "EUR ",
        "€",
        "\U0001f4b6",
        "E\x00R",
        "E" * 10_000,
    )
):
    _field("currency", f"currency_{_i}", None, "currency", _cur, UNKNOWN_CURRENCY)
_case(
    "currency",
    "avro_lower_case",
    lambda g: g.bad_avro_field(None, "currency", "chf", UNKNOWN_CURRENCY),
)

# ---- values just under and over the size limits; deep nesting

_UNDER = PRODUCER_LIMIT - 2_000  # key and record overhead stay under the producer's limit
_OVER_PRODUCER = 1_040_000  # over the producer's default, under the topic's limit
_OVER_TOPIC = TOPIC_LIMIT + 10_000


def _big_garbage(size: int) -> Callable[[_Gen], bytes]:
    return lambda g: b"{" + g.rng.randbytes(size - 1)  # incompressible: the size is what is sent


def _big_field(
    fname: str, size: int, reason: str, producer: Producer = "default"
) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side, key, record = g.valid()
        record[fname] = "x"
        filler = size - len(orjson.dumps(record)) + 1
        text = g.rng.randbytes(filler // 2 + 1).hex()[:filler]
        record[fname] = text  # the key stays the short original: this reason comes first
        value = orjson.dumps(record)
        assert len(value) == size, (len(value), size)
        g.bad(side, key, value, reason, producer=producer)

    return build


def _big_valid(g: _Gen) -> None:
    # Random hex: the record is near the limit whatever the producer compresses.
    blob = g.rng.randbytes(_UNDER // 2).hex()[: _UNDER - 600]
    g.pair(pay={"metadata": {"blob": blob}})


_raw("size_limit", "garbage_just_under", BAD_JSON, _big_garbage(_UNDER), weight=0.1)
_case("size_limit", "event_id_just_under", _big_field("event_id", _UNDER, BAD_VALUE), weight=0.1)
_case(
    "size_limit", "reference_just_under", _big_field("reference", _UNDER, BAD_REFERENCE), weight=0.1
)
_case("size_limit", "valid_just_under", _big_valid, weight=0.1, bad=False)
_raw(
    "size_limit",
    "garbage_over_producer_limit",
    BAD_JSON,
    _big_garbage(_OVER_PRODUCER),
    weight=0.1,
    producer="large",
)
_case(
    "size_limit",
    "currency_over_producer_limit",
    _big_field("currency", _OVER_PRODUCER, UNKNOWN_CURRENCY, "large"),
    weight=0.1,
)
_raw("size_limit", "refused_by_producer", REFUSED, _big_garbage(PRODUCER_LIMIT + 1), weight=0.1)
_raw(
    "size_limit",
    "refused_by_broker",
    REFUSED,
    _big_garbage(_OVER_TOPIC),
    weight=0.1,
    producer="large",
)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b'"x"' + b"}" * depth


def _nest_in(fname: str, depth: int, reason: str) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side, key, record = g.valid()
        record[fname] = "\x01NEST\x01"
        g.bad(
            side, key, orjson.dumps(record).replace(b'"\\u0001NEST\\u0001"', _nested(depth)), reason
        )

    return build


def _deep_valid(g: _Gen) -> None:
    # orjson reads 1024 levels: the record is level 1, so 1000 more inside is fine.
    def encode(side: Side, record: dict[str, Any]) -> bytes:
        data = orjson.dumps(record)
        return (
            data.replace(b'"\\u0001NEST\\u0001"', _nested(1000)) if side is Side.PAYMENT else data
        )

    g.pair(pay={"deep": "\x01NEST\x01"}, encode=encode)


_raw("deep_nesting", "object_2000_deep", BAD_JSON, lambda g: _nested(2000))
_raw(
    "deep_nesting",
    "array_100k_deep",
    BAD_JSON,
    lambda g: b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    weight=0.3,
)
_raw("deep_nesting", "unclosed_100k_deep", BAD_JSON, lambda g: b'{"a":' * 100_000, weight=0.3)
_case("deep_nesting", "metadata_1100_deep", _nest_in("metadata", 1100, BAD_JSON))
_case("deep_nesting", "metadata_50_deep", _nest_in("metadata", 50, BAD_TYPE))
_case("deep_nesting", "event_id_30_deep", _nest_in("event_id", 30, BAD_TYPE))
_case("deep_nesting", "extra_field_1000_deep", _deep_valid, bad=False)

# ---- event times: naive, garbage, out of range, ahead of the record's timestamp

_BAD_TIME_TEXT = (
    "2026-01-01T00:00:00",  # naive
    "2026-01-01T00:00:00.123",  # naive
    "2026-01-01",
    "00:00:00Z",
    "yesterday",
    "",
    " ",
    "1767225600000",
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-01-01T25:00:00Z",
    "2026-01-01T00:60:00Z",
    "2026-01-01T00:00:00+99:00",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",  # before 1970
    "1969-12-31T23:59:59.999Z",
    "10000-01-01T00:00:00Z",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # full-width digits
    "2026-01-01T00:00:00 Z",
    "2026-01-01T00:00:00+0100",
)
for _i, _time_text in enumerate(_BAD_TIME_TEXT):
    _field("event_time", f"text_{_i}", None, "event_time", _time_text, BAD_EVENT_TIME)

for _name, _literal in (
    ("minus_one", b"-1"),
    ("min_long", b"-9223372036854775808"),
    ("past_year_9999", b"253402300800000"),
    ("max_long", b"9223372036854775807"),
    ("max_u64", b"18446744073709551615"),
    ("past_u64", b"18446744073709551616"),
    ("negative_past_u64", b"-100000000000000000000"),
):

    def _time_literal(g: _Gen, literal: bytes = _literal) -> None:
        side, key, record = g.valid()
        record["event_time"] = "\x01T\x01"
        g.bad(
            side, key, orjson.dumps(record).replace(b'"\\u0001T\\u0001"', literal), BAD_EVENT_TIME
        )

    _case("event_time", f"int_{_name}", _time_literal)

# In range, but more than RECON_MAX_EVENT_TIME_AHEAD ahead of any Kafka timestamp of our time.
_field(
    "event_time", "ahead_year_9999", None, "event_time", "9999-12-31T23:59:59.999Z", BAD_EVENT_TIME
)
_field("event_time", "ahead_year_2999_ms", None, "event_time", 32_472_144_000_000, BAD_EVENT_TIME)
_case(
    "event_time",
    "avro_negative",
    lambda g: g.bad_avro_field(None, "event_time", -1, BAD_EVENT_TIME),
)
_case(
    "event_time",
    "avro_max_long",
    lambda g: g.bad_avro_field(None, "event_time", MAX_LONG, BAD_EVENT_TIME),
)
_case(
    "event_time",
    "avro_ahead",
    lambda g: g.bad_avro_field(None, "event_time", 253_402_300_799_999, BAD_EVENT_TIME),
)


def _odd_valid_times(g: _Gen) -> None:
    ref = g.ref()
    t = g.group_time()
    g.pair(
        ref,
        pay={"event_time": ms_to_rfc3339(t, 840, digits=9).replace("T", "t")},
        led={"event_time": ms_to_rfc3339(t + 1_000, -720, digits=1).replace("T", " ")},
    )


_case("event_time", "valid_offsets_and_forms", _odd_valid_times, bad=False)

# ---- event ids and references


def _eid(text: Callable[[_Gen], str], reason: str) -> Callable[[_Gen], None]:
    return lambda g: g.bad_field(None, "event_id", text(g), reason)


for _name, _text_fn in {
    "empty": lambda g: "",
    "129_chars": lambda g: "e" * 129,
    "10_kb": lambda g: "".join(g.rng.choices(string.ascii_letters, k=10_240)),
    "10_kb_emoji": lambda g: "\U0001f600" * 2_560,
    "129_emoji": lambda g: "\U0001f4b8" * 129,
    "nul": lambda g: "evt\x00-1",
    "only_nul": lambda g: "\x00",
}.items():
    _case("event_id", f"event_id_{_name}", _eid(_text_fn, BAD_VALUE))
_case(
    "event_id",
    "event_id_avro_nul",
    lambda g: g.bad_avro_field(None, "event_id", "a\x00b", BAD_VALUE),
)
_case(
    "event_id", "event_id_avro_empty", lambda g: g.bad_avro_field(None, "event_id", "", BAD_VALUE)
)


def _bad_ref(text: Callable[[_Gen], str], *, avro: bool = False) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side, _, record = g.valid()
        ref = text(g)
        record["reference"] = ref
        if avro:
            record["event_time"] = g.clock
            value = avro_single_object(side, record)
        else:
            value = orjson.dumps(record)
        g.bad(side, ref.encode("utf-8", "surrogatepass"), value, BAD_REFERENCE)

    return build


for _name, _text_fn in {
    "nul": lambda g: f"{g.ref()}\x00X",
    "nul_first": lambda g: f"\x00{g.ref()}",
    "129_chars": lambda g: g.ref().ljust(129, "r"),
    "129_emoji": lambda g: "\U0001f600" * 129,
    "empty": lambda g: "",
    "10_kb": lambda g: g.ref().ljust(10_240, "k"),
}.items():
    _case("reference", f"reference_{_name}", _bad_ref(_text_fn))
_case("reference", "reference_avro_nul", _bad_ref(lambda g: f"{g.ref()}\x00", avro=True))
_case("reference", "reference_avro_129", _bad_ref(lambda g: g.ref().ljust(129, "a"), avro=True))
_raw(
    "reference",
    "reference_lone_surrogate_escape",
    BAD_JSON,
    lambda g: _valid_json(g).replace(b'"reference":"', b'"reference":"\\udfff', 1),
)

_AWKWARD_IDS = (
    "NULL",
    'a,"b"',
    "{x}",
    "\\",
    " ",
    "tab\tid",
    "\u202eRTL",
    "\ufffe",
    "'; DROP TABLE x; --",
)


def _awkward_ids(g: _Gen) -> None:
    text = g.rng.choice(_AWKWARD_IDS)
    ref = g.ref()
    g.pair(ref, pay_eid=f"{text}|{ref}|p", led_eid=f"{ref}|{text}")


def _max_ids(g: _Gen) -> None:
    ref = g.ref()
    g.pair(ref, pay_eid=f"{ref}-p".ljust(128, "p"), led_eid=(f"{ref}-" + "\U0001f4b8" * 128)[:128])


def _emoji_ref(g: _Gen) -> None:
    g.pair(g.ref("-\U0001f4b8\u00e9\u202e"))


def _long_ref(g: _Gen) -> None:
    g.pair(g.ref().ljust(128, "L"))


def _emoji_128_ref(g: _Gen) -> None:
    g.pair((g.ref("-") + "\U0001f600" * 128)[:128])


_case("event_id", "awkward_text_ids", _awkward_ids, bad=False)
_case("event_id", "max_length_ids", _max_ids, bad=False)
_case("reference", "emoji_reference", _emoji_ref, bad=False)
_case("reference", "reference_128_chars", _long_ref, bad=False)
_case("reference", "reference_128_emoji", _emoji_128_ref, bad=False)

# ---- keys that are not the reference, partitions that are not the key's

for _name, _key_fn in {
    "lower_case": lambda ref: ref.lower().encode(),
    "trailing_space": lambda ref: (ref + " ").encode(),
    "trailing_nul": lambda ref: ref.encode() + b"\x00",
    "empty": lambda ref: b"",
    "nfd_vs_nfc": None,
    "huge_key": lambda ref: ref.encode() * 40_000,
}.items():
    if _key_fn is None:

        def _nfd(g: _Gen) -> None:
            side, _, record = g.valid()
            record["reference"] = record["reference"] + "-caf\u00e9"  # NFC
            g.bad(
                side,
                record["reference"][:-1].encode() + "e\u0301".encode(),
                orjson.dumps(record),
                KEY_MISMATCH,
            )

        _case("key_mismatch", f"key_{_name}", _nfd)
    else:

        def _km(g: _Gen, fn: Callable[[str], bytes] = _key_fn) -> None:
            side, key, record = g.valid()
            g.bad(side, fn(key.decode()), orjson.dumps(record), KEY_MISMATCH)

        _case("key_mismatch", f"key_{_name}", _km, weight=0.2 if _name == "huge_key" else 1.0)


def _wrong_partition(g: _Gen) -> None:
    side, key, record = g.valid()
    g.bad(side, key, orjson.dumps(record), KEY_MISMATCH, wrong_partition=True)


_case("wrong_partition", "valid_event_wrong_partition", _wrong_partition)

# ---- garbage headers


def _headers_bad(
    reason: str, make: Callable[[_Gen], tuple[Side, bytes | None, bytes]]
) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side, key, value = make(g)
        g.bad(side, key, value, reason, headers=g.garbage_headers())

    return build


def _km_value(g: _Gen) -> tuple[Side, bytes | None, bytes]:
    side, key, record = g.valid()
    return side, key + b"-not", orjson.dumps(record)


_case(
    "garbage_headers",
    "headers_on_bad_json",
    _headers_bad(BAD_JSON, lambda g: (g.side(), None, b"{garbage")),
)
_case("garbage_headers", "headers_on_key_mismatch", _headers_bad(KEY_MISMATCH, _km_value))


def _pair_with_headers(kind: int) -> Callable[[_Gen], None]:
    return lambda g: g.pair(headers=g.garbage_headers(kind))


def _bad_avro_with_headers(kind: int) -> Callable[[_Gen], None]:
    heartbeat_header = b"\xc3\x01" + _fingerprint("Heartbeat")  # and no body
    return lambda g: g.bad(
        g.side(), g.ref().encode(), heartbeat_header, BAD_AVRO, headers=g.garbage_headers(kind)
    )


for _kind in range(HEADER_KINDS):
    _case("garbage_headers", f"headers_{_kind}_on_valid_pair", _pair_with_headers(_kind), bad=False)
    _case("garbage_headers", f"headers_{_kind}_on_bad_avro", _bad_avro_with_headers(_kind))

# ---- Avro single-object encoding with known and unknown fingerprints, Confluent frames

_PAY_FP = _fingerprint("PaymentEvent")
_LED_FP = _fingerprint("LedgerEvent")
_HB_FP = _fingerprint("Heartbeat")
_MATCH_FP = _fingerprint("Match")
_FP = {Side.PAYMENT: _PAY_FP, Side.LEDGER: _LED_FP}
_OTHER_FP = {Side.PAYMENT: _LED_FP, Side.LEDGER: _PAY_FP}


def _short_garbage(g: _Gen) -> bytes:
    """Fewer bytes than the smallest PaymentEvent or LedgerEvent body (8): never a record."""
    return g.rng.randbytes(g.rng.randrange(0, 8))


def _long_string_garbage(g: _Gen) -> bytes:
    """A first string longer than everything after it: the body ends inside it."""
    return b"\xfe\xff\xff\xff\x0f" + g.rng.randbytes(g.rng.randrange(0, 300))


def _so(make: Callable[[_Gen, Side], bytes], reason: str) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        side = g.side()
        g.bad(side, g.ref().encode(), make(g, side), reason)

    return build


def _valid_body(g: _Gen, side: Side) -> bytes:
    """A valid body that ends ``kind``/``direction`` (1 byte), null extra field (00), null
    metadata (00)."""
    _, _, record = g.valid(side)
    record.update({"event_time": g.clock, _EXTRA_FIELD[side]: None, "metadata": None})
    return avro_body(side, record)


_AVRO_SO = {
    "known_fp_short_garbage": (lambda g, s: b"\xc3\x01" + _FP[s] + _short_garbage(g), BAD_AVRO),
    "known_fp_long_string_garbage": (
        lambda g, s: b"\xc3\x01" + _FP[s] + _long_string_garbage(g),
        BAD_AVRO,
    ),
    "known_fp_truncated_body": (
        lambda g, s: b"\xc3\x01" + _FP[s] + _valid_body(g, s)[:-1],
        BAD_AVRO,
    ),
    "known_fp_trailing_bytes": (
        lambda g, s: b"\xc3\x01" + _FP[s] + _valid_body(g, s) + b"\x00",
        BAD_AVRO,
    ),
    "known_fp_bad_enum": (
        lambda g, s: b"\xc3\x01" + _FP[s] + _valid_body(g, s)[:-3] + b"\x0a\x00\x00",
        BAD_AVRO,
    ),
    "known_fp_bad_union": (
        lambda g, s: b"\xc3\x01" + _FP[s] + _valid_body(g, s)[:-2] + b"\x0e\x00",
        BAD_AVRO,
    ),
    "known_fp_negative_length": (
        lambda g, s: b"\xc3\x01" + _FP[s] + b"\x03" + g.rng.randbytes(20),
        BAD_AVRO,
    ),
    "heartbeat_fp_empty_body": (lambda g, s: b"\xc3\x01" + _HB_FP, BAD_AVRO),
    "heartbeat_fp_trailing": (
        lambda g, s: b"\xc3\x01" + _HB_FP + heartbeat_body(g.clock) + b"\x01",
        BAD_AVRO,
    ),
    "unknown_fp": (
        lambda g, s: b"\xc3\x01" + g.rng.randbytes(8) + g.rng.randbytes(40),
        UNKNOWN_SCHEMA,
    ),
    "other_input_fp": (lambda g, s: b"\xc3\x01" + _OTHER_FP[s] + _valid_body(g, s), UNKNOWN_SCHEMA),
    "output_schema_fp": (
        lambda g, s: b"\xc3\x01" + _MATCH_FP + g.rng.randbytes(30),
        UNKNOWN_SCHEMA,
    ),
    "truncated_fp": (lambda g, s: b"\xc3\x01" + _FP[s][:3], UNKNOWN_SCHEMA),
    "magic_only": (lambda g, s: b"\xc3\x01", UNKNOWN_SCHEMA),
}
for _name, (_make_so, _reason) in _AVRO_SO.items():
    _case("avro_single_object", _name, _so(_make_so, _reason))

_CONFLUENT = {
    "unknown_id": (
        lambda g, s: confluent_frame(g.rng.choice(UNKNOWN_SCHEMA_IDS), _valid_body(g, s)),
        UNKNOWN_SCHEMA,
    ),
    "unknown_id_garbage": (
        lambda g, s: confluent_frame(g.rng.choice(UNKNOWN_SCHEMA_IDS), g.rng.randbytes(30)),
        UNKNOWN_SCHEMA,
    ),
    "known_id_short_garbage": (
        lambda g, s: confluent_frame(_SCHEMA_ID[s], _short_garbage(g)),
        BAD_AVRO,
    ),
    "known_id_long_string_garbage": (
        lambda g, s: confluent_frame(_SCHEMA_ID[s], _long_string_garbage(g)),
        BAD_AVRO,
    ),
    "other_input_id": (
        lambda g, s: confluent_frame(3 - _SCHEMA_ID[s], _valid_body(g, s)),
        UNKNOWN_SCHEMA,
    ),
    "non_contract_id": (lambda g, s: confluent_frame(4, b"\x02a"), UNKNOWN_SCHEMA),
    "unparseable_schema_id": (lambda g, s: confluent_frame(5, b"\x02a"), UNKNOWN_SCHEMA),
    "truncated_header": (lambda g, s: b"\x00\x00\x01", BAD_AVRO),
    "zero_byte_only": (lambda g, s: b"\x00", BAD_AVRO),
    "heartbeat_id_trailing": (
        lambda g, s: confluent_frame(3, heartbeat_body(g.clock) + b"\x02"),
        BAD_AVRO,
    ),
}
for _name, (_make_cf, _reason) in _CONFLUENT.items():
    _case("confluent", _name, _so(_make_cf, _reason))


def _confluent_pair(g: _Gen) -> None:
    g.pair(encode=lambda side, r: confluent_frame(_SCHEMA_ID[side], avro_body(side, r)))


def _heartbeats_ok(g: _Gen) -> None:
    t = g.corpus.heartbeat_ms
    choice = g.rng.randrange(4)
    if choice == 0:
        g.accept(g.side(), g.rng.randbytes(12), orjson.dumps({"event_time": ms_to_rfc3339(t)}))
    elif choice == 1:
        g.accept(g.side(), None, b"\xc3\x01" + _HB_FP + heartbeat_body(t))
    elif choice == 2:
        g.accept(g.side(), b"hb", confluent_frame(3, heartbeat_body(t)))
    else:
        g.accept(g.side(), None, b' {"event_time": %d} ' % t)


_case("avro_single_object", "valid_pair", lambda g: g.pair(encode=avro_single_object), bad=False)
_case("confluent", "valid_pair", _confluent_pair, bad=False)
_case("heartbeat_extra", "valid_heartbeats", _heartbeats_ok, bad=False)

# ---- heartbeats with extra fields: not heartbeats (one has event_time and nothing else)


def _heartbeat_with(extra: dict[str, Any]) -> Callable[[_Gen], None]:
    def build(g: _Gen) -> None:
        value = orjson.dumps({"event_time": g.corpus.heartbeat_ms, **extra})
        g.bad(g.side(), None, value, MISSING_FIELD)

    return build


def _heartbeat_time(event_time: object, reason: str) -> Callable[[_Gen], None]:
    return lambda g: g.bad(g.side(), None, orjson.dumps({"event_time": event_time}), reason)


_HEARTBEAT_EXTRAS: dict[str, dict[str, Any]] = {
    "extra_int": {"x": 1},
    "extra_null_event_id": {"event_id": None},
    "extra_source": {"source": "psp"},
    "extra_empty_metadata": {"metadata": {}},
    "extra_flag": {"heartbeat": True},
    "extra_empty_key": {"": ""},
}
for _name, _extra in _HEARTBEAT_EXTRAS.items():
    _case("heartbeat_extra", _name, _heartbeat_with(_extra))

_HEARTBEAT_TIMES: tuple[tuple[str, object, str], ...] = (
    ("garbage_time", "soon", BAD_EVENT_TIME),
    ("null_time", None, MISSING_FIELD),
    ("float_time", 1.5, BAD_TYPE),
    ("ahead_time", "9999-01-01T00:00:00Z", BAD_EVENT_TIME),
    ("negative_time", -5, BAD_EVENT_TIME),
)
for _name, _hb_time, _reason in _HEARTBEAT_TIMES:
    _case("heartbeat_extra", f"heartbeat_{_name}", _heartbeat_time(_hb_time, _reason))


# ---------------------------------------------------------------------------- generation


def categories() -> list[str]:
    return sorted({c.category for c in CASES})


def generate(
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    *,
    start_ms: int = START_MS,
    heartbeat_ms: int | None = None,
) -> Corpus:
    """``count`` bad items (and the accepted groups of the cases drawn), deterministic from
    ``seed``. Every case once first (every category once, when ``count`` is smaller than the
    number of cases), then cases drawn by weight. Accepted groups take event times from
    ``start_ms`` on, 10 s apart; accepted heartbeats are at ``heartbeat_ms`` (default a day
    before ``start_ms``)."""
    g = _Gen(seed, start_ms, start_ms - 86_400_000 if heartbeat_ms is None else heartbeat_ms)
    bad_cases = [c for c in CASES if c.bad]
    first: list[Case] = list(CASES)
    if count < len(bad_cases):
        order = list(CASES)
        g.rng.shuffle(order)
        seen: set[str] = set()
        first = []
        for c in order:
            if c.category not in seen and c.bad:
                seen.add(c.category)
                first.append(c)
        first += [c for c in CASES if not c.bad]
    weights = [c.weight for c in CASES]

    def run(c: Case) -> None:
        g.category, g.case = c.category, c.name
        c.build(g)

    def n_bad() -> int:
        return sum(1 for i in g.corpus.items if i.bad)

    for c in first:
        if c.bad and n_bad() >= count:
            continue
        run(c)
    bad = n_bad()
    while bad < count:
        c = g.rng.choices(CASES, weights)[0]
        before = len(g.corpus.items)
        run(c)
        bad += sum(1 for i in g.corpus.items[before:] if i.bad)
    return g.corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="bad items")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    corpus = generate(args.count, args.seed)
    items = corpus.items
    print(
        f"seed {args.seed}: {len(items)} items, {len(corpus.bad)} bad, {len(corpus.accepted)} accepted"
    )
    print(f"{len(CASES)} cases in {len(categories())} categories")
    print(f"expected: {len(corpus.matches)} matches, {len(corpus.exceptions)} exceptions")
    print("\nby category (bad / accepted):")
    for cat in categories():
        bad = sum(1 for i in items if i.category == cat and i.bad)
        ok = sum(1 for i in items if i.category == cat and not i.bad)
        print(f"  {cat:<20} {bad:>6} {ok:>6}")
    print("\nby expected outcome:")
    for outcome, n in sorted(corpus.by_expected().items()):
        print(f"  {outcome:<20} {n:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
