"""Dead letters are bounded: a prefix of the raw key and value, their true sizes and SHA-256."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import orjson
import pytest

from streams.contract import (
    MAX_DEAD_LETTER_BYTES,
    MAX_DEAD_LETTER_DETAIL,
    OutputCodec,
    Rejection,
    RejectReason,
    bounded_dead_letter,
    dead_letter,
    decode_input,
    default_registry,
    encode_single_object,
)
from streams.contract.model import DeadLetter, Side

# The producer's default message.max.bytes: a DLQ record must stay well under it.
PRODUCER_LIMIT = 1_000_000
KIB_64 = 65_536
KEY = b"REF-1"
GOOD = {
    "event_id": "evt-1",
    "reference": "REF-1",
    "amount_minor": 1234,
    "currency": "EUR",
    "event_time": 1772355600000,
    "kind": "payment",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_bound_is_64_kib_and_2000_characters() -> None:
    assert MAX_DEAD_LETTER_BYTES == KIB_64
    assert MAX_DEAD_LETTER_DETAIL == 2000


def test_a_1_mb_invalid_value_gives_a_small_dead_letter_with_its_size_and_digest() -> None:
    value = b"{" + b"x" * 999_999
    rejection = decode_input(Side.PAYMENT, KEY, value, 17)
    assert isinstance(rejection, Rejection)
    assert rejection.reason is RejectReason.BAD_JSON

    codec = OutputCodec()
    # What the worker used to send: the whole value, beyond what the producer accepts.
    unbounded = DeadLetter("payments", 2, 17, KEY, value, "BAD_JSON", rejection.detail)
    assert len(codec.encode_dead_letter(unbounded)) > PRODUCER_LIMIT

    encoded = codec.encode_dead_letter(dead_letter("payments", 2, 17, KEY, value, rejection))
    assert len(encoded) < 100_000
    dl = codec.decode_dead_letter(encoded)
    assert dl.value == b"{" + b"x" * (KIB_64 - 1)
    assert dl.value_size == 1_000_000
    assert dl.value_sha256 == _sha(value)
    assert dl.key == KEY
    assert dl.key_size == 5
    assert dl.key_sha256 == _sha(KEY)
    assert (dl.source_topic, dl.partition, dl.offset, dl.reason) == ("payments", 2, 17, "BAD_JSON")
    assert dl.detail == rejection.detail


def test_a_1_mb_key_gives_a_small_dead_letter_with_its_size_and_digest() -> None:
    key = b"K" * 1_000_000
    value = orjson.dumps(GOOD)
    rejection = decode_input(Side.PAYMENT, key, value, 3)
    assert isinstance(rejection, Rejection)
    assert rejection.reason is RejectReason.KEY_MISMATCH

    encoded = OutputCodec().encode_dead_letter(dead_letter("payments", 0, 3, key, value, rejection))
    assert len(encoded) < 100_000
    dl = OutputCodec().decode_dead_letter(encoded)
    assert dl.key == b"K" * KIB_64
    assert dl.key_size == 1_000_000
    assert dl.key_sha256 == _sha(key)
    assert dl.value == value  # small: kept whole
    assert dl.value_size == len(value)
    assert dl.value_sha256 == _sha(value)


def test_both_1_mb_and_a_1_mb_detail_stay_far_below_the_producer_limit() -> None:
    key = bytes(range(256)) * 4000  # 1,024,000 bytes
    value = b"\xff" * 1_500_000
    detail = "é" * 1_000_000  # 2 bytes each in UTF-8
    dl = bounded_dead_letter("ledger", 5, 2**40, key, value, "PROCESSING_ERROR", detail)
    encoded = OutputCodec().encode_dead_letter(dl)
    assert len(encoded) < 2 * KIB_64 + 5_000
    back = OutputCodec().decode_dead_letter(encoded)
    assert back == dl
    assert back.key == key[:KIB_64]
    assert back.value == b"\xff" * KIB_64
    assert (back.key_size, back.value_size) == (1_024_000, 1_500_000)
    assert (back.key_sha256, back.value_sha256) == (_sha(key), _sha(value))
    assert len(back.detail) == 2000
    assert back.detail.startswith("é" * 1900)
    assert back.detail.endswith("[... cut, 1000000 characters in all]")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (KEY, b'{"event_id": '),
        (b"", b"hello"),
        (None, b"\x00\x01"),
        (KEY, b""),
        (KEY, None),
        (None, None),
        (b"k" * KIB_64, b"v" * KIB_64),  # exactly at the bound: nothing cut
    ],
)
def test_small_inputs_are_kept_whole(key: bytes | None, value: bytes | None) -> None:
    dl = bounded_dead_letter("payments", 1, 9, key, value, "BAD_JSON", "why")
    assert (dl.key, dl.value) == (key, value)
    assert dl.key_size == (None if key is None else len(key))
    assert dl.value_size == (None if value is None else len(value))
    assert dl.key_sha256 == (None if key is None else _sha(key))
    assert dl.value_sha256 == (None if value is None else _sha(value))
    assert dl.detail == "why"
    assert OutputCodec().decode_dead_letter(OutputCodec().encode_dead_letter(dl)) == dl


def test_one_byte_over_the_bound_is_cut() -> None:
    value = b"v" * KIB_64 + b"w"
    dl = bounded_dead_letter("payments", 1, 9, None, value, "BAD_JSON", "why")
    assert dl.value == b"v" * KIB_64
    assert dl.value_size == KIB_64 + 1
    assert dl.value_sha256 == _sha(value)
    assert dl.value_sha256 != _sha(b"v" * KIB_64)


def test_the_bounds_can_be_overridden() -> None:
    dl = bounded_dead_letter(
        "payments", 0, 0, b"0123456789", b"abcdefghij", "BAD_JSON", "x" * 100,
        max_bytes=4, max_detail=60,
    )  # fmt: skip
    assert (dl.key, dl.value) == (b"0123", b"abcd")
    assert (dl.key_size, dl.value_size) == (10, 10)
    assert dl.value_sha256 == _sha(b"abcdefghij")
    marker = " [... cut, 100 characters in all]"
    assert len(dl.detail) == 60
    assert dl.detail == "x" * (60 - len(marker)) + marker
    with pytest.raises(ValueError, match="max_bytes"):
        bounded_dead_letter("t", 0, 0, None, None, "r", "d", max_bytes=-1)


def test_detail_is_text_anyone_can_store() -> None:
    dl = bounded_dead_letter("payments", 0, 0, None, None, "BAD_VALUE", "a\x00b \ud800 c\u20ac")
    assert dl.detail == "a\\x00b \\ud800 c\u20ac"
    assert "\x00" not in dl.detail
    dl.detail.encode()  # valid UTF-8: no lone surrogate left
    assert OutputCodec().decode_dead_letter(OutputCodec().encode_dead_letter(dl)) == dl


def test_dead_letters_written_with_v1_read_with_unknown_sizes() -> None:
    v1 = default_registry().versions("DeadLetter")[0]
    assert v1.version == 1
    data = encode_single_object(
        v1,
        {
            "source_topic": "payments",
            "partition": 1,
            "offset": 2,
            "key": b"k",
            "value": b"v",
            "reason": "BAD_JSON",
            "detail": "d",
        },
    )
    assert OutputCodec().decode_dead_letter(data) == DeadLetter(
        "payments", 1, 2, b"k", b"v", "BAD_JSON", "d", None, None, None, None
    )


def test_readme_lists_exactly_the_dead_letter_reasons_of_the_contract() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = readme.split("Dead-letter reasons:", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE)
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == {r.value for r in RejectReason}
