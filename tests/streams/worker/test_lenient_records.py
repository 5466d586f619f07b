"""Record batches with header keys that are not UTF-8, read through the installed aiokafka's own
``PartitionRecords`` (no broker): aiokafka alone raises on them, which crashed the worker's
fetcher; with streams.worker.lenient_records every record comes out once, in order."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import READ_COMMITTED, PartitionRecords
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams.worker import lenient_records
from streams.worker.lenient_records import LenientMemoryRecords, read_batch

TP = TopicPartition("payments", 0)
T0 = 1_767_225_600_000


class RawKey(str):
    """A header key whose bytes aiokafka's Python builder writes as they are."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawKey:
        obj = super().__new__(cls, raw.decode("utf-8", "replace"))
        obj.raw = raw
        return obj

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


Rec = tuple[bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]


def batch(base_offset: int, records: list[Rec], codec: int = 0) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(
        2, codec, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
        batch_size=10**7,
    )  # fmt: skip
    for i, (key, value, headers) in enumerate(records):
        builder.append(
            i, timestamp=T0 + i, key=key, value=value,
            headers=[(RawKey(k), v) for k, v in headers],
        )  # fmt: skip
    data = bytearray(builder.build())
    data[:8] = base_offset.to_bytes(8, "big", signed=True)
    return bytes(data)


def read(data: bytes, records_class: Any, fetch_offset: int = 0) -> list[tuple[Any, ...]]:
    partition = PartitionRecords(
        TP, records_class(data), [], fetch_offset, None, None, True, READ_COMMITTED
    )
    return [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in partition]


BAD_KEY = b"\xff\xfe-trace"
RECORDS: list[Rec] = [
    (b"REF-1", b'{"a": 1}', [(b"ok", b"v")]),
    (None, None, []),
    (b"REF-3", b"{}", [(BAD_KEY, b"x"), (b"", None)]),
    (b"REF-4", b"v4", [(b"\xc3\x28", None)]),
    (b"REF-5", b"v5", []),
]


def expected(first: int, base: int = 100) -> list[tuple[Any, ...]]:
    return [
        (base + i, T0 + i, k, v, tuple((h.decode("utf-8", "surrogateescape"), hv) for h, hv in hs))
        for i, (k, v, hs) in enumerate(RECORDS)
        if base + i >= first
    ]


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_aiokafka_alone_fails_and_lenient_reading_does_not(codec: int) -> None:
    data = batch(100, RECORDS, codec) + batch(105, [(b"REF-6", b"v6", [(b"k", b"v")])], codec)
    # aiokafka alone: the fetch fails in the middle (the worker's fetcher crashed on it).
    with pytest.raises(Exception) as caught:  # noqa: PT011 (C: UnicodeDecodeError, Python: wrapped)
        read(data, MemoryRecords)
    assert lenient_records._header_key_error(caught.value)
    want = [*expected(100), (105, T0, b"REF-6", b"v6", (("k", b"v"),))]
    assert read(data, LenientMemoryRecords) == want
    # From a fetch position inside the batch, as after a seek: each record once.
    assert read(data, LenientMemoryRecords, fetch_offset=103) == want[3:]


def test_batches_with_good_headers_are_aiokafkas_own() -> None:
    good: list[Rec] = [(b"R", b"v", [(b"a", b"b")]), (b"S", None, [])]
    data = batch(7, good, 3) + batch(9, good, 0)
    assert read(data, LenientMemoryRecords) == read(data, MemoryRecords)


def test_read_batch_matches_aiokafka_on_valid_batches() -> None:
    good: list[Rec] = [
        (b"R" * n, b"v" * (n * 37), [(b"h%d" % j, b"x" * j) for j in range(n % 4)])
        for n in range(50)
    ]
    for codec in (0, 1, 3):
        data = batch(1000, good, codec)
        ours = [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in read_batch(data)]
        assert ours == read(data, MemoryRecords)


def test_install_replaces_the_fetchers_records_class() -> None:
    saved = aiokafka_fetcher.MemoryRecords
    try:
        lenient_records.install()
        lenient_records.install()
        assert aiokafka_fetcher.MemoryRecords is LenientMemoryRecords
    finally:
        aiokafka_fetcher.MemoryRecords = saved
