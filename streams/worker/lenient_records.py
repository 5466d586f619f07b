"""Record batches whose header keys are not UTF-8 must not stop the worker.

A Kafka header key is a protocol ``STRING``, but nothing checks it: the broker stores any bytes,
and a producer whose header keys are byte strings (Go's confluent-kafka-go, sarama, librdkafka's
C API) can send keys that are not UTF-8. aiokafka decodes every header key strictly, in its C
and in its Python record reader, and raises in the middle of the fetch: Faust's fetcher
crashed, the worker exited, and after a restart crashed again on the same record. One such
record stopped every partition of the worker for good.

The worker never reads headers. :func:`install` makes aiokafka's fetcher read a batch whose
header keys do not decode again with this module's reader, which keeps such a key's bytes as
``surrogateescape`` text; every other batch is read by aiokafka as before, at its speed. The
records of the batch then go on to the contract like any other (a valid payment with such a
header is a valid payment).

The one aiokafka internal relied on is the fetcher module's ``MemoryRecords`` name (it builds
each fetched message set with it); :func:`streams.worker.faust_batches.replace_fetched_records`
swaps it, and tests/streams/worker/test_lenient_records.py reads a real batch through
aiokafka's ``PartitionRecords`` with it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import codec as aiokafka_codec
from aiokafka.errors import CorruptRecordException
from aiokafka.record.memory_records import MemoryRecords

from streams.worker.faust_batches import replace_fetched_records

log = logging.getLogger(__name__)

# Record batch v2 (KIP-98): baseOffset, batchLength, partitionLeaderEpoch, magic, crc,
# attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId, producerEpoch,
# baseSequence, recordsCount.
_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
_LENGTH: Final = struct.Struct(">i")
_LOG_OVERHEAD: Final = 12  # baseOffset and batchLength
_MAGIC_AT: Final = 16
_LOG_APPEND_TIME: Final = 1
_DECOMPRESS: Final = {
    1: aiokafka_codec.gzip_decode,
    2: aiokafka_codec.snappy_decode,
    3: aiokafka_codec.lz4_decode,
    4: aiokafka_codec.zstd_decode,
}


@dataclass(frozen=True, slots=True)
class LenientRecord:
    """The fields of aiokafka's record that its fetcher reads."""

    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    checksum: None = None


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: (value, position after it)."""
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordException("varint longer than 64 bits")


def _nullable_bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = _varint(buf, pos)
    if length < 0:
        return None, pos
    return buf[pos : pos + length], pos + length


def read_batch(raw: bytes) -> Iterator[LenientRecord]:
    """The records of one v2 record batch, header keys decoded with ``surrogateescape``."""
    (
        base_offset,
        _length,
        _epoch,
        magic,
        _crc,
        attributes,
        _last_delta,
        base_timestamp,
        max_timestamp,
        _pid,
        _pepoch,
        _seq,
        count,
    ) = _HEADER.unpack_from(raw)
    if magic != 2:
        raise CorruptRecordException(f"record batch magic {magic}, not 2")
    timestamp_type = (attributes >> 3) & 1
    body = raw[_HEADER.size :]
    codec = attributes & 0x07
    if codec:
        decompress = _DECOMPRESS.get(codec)
        if decompress is None:
            raise CorruptRecordException(f"unknown compression codec {codec}")
        body = decompress(body)
    pos = 0
    for _ in range(count):
        length, pos = _varint(body, pos)
        end = pos + length
        _attrs, pos = _varint(body, pos)
        timestamp_delta, pos = _varint(body, pos)
        offset_delta, pos = _varint(body, pos)
        key, pos = _nullable_bytes(body, pos)
        value, pos = _nullable_bytes(body, pos)
        header_count, pos = _varint(body, pos)
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(header_count):
            name, pos = _nullable_bytes(body, pos)
            header_value, pos = _nullable_bytes(body, pos)
            headers.append(((name or b"").decode("utf-8", "surrogateescape"), header_value))
        if pos != end:
            raise CorruptRecordException(f"record of {length} bytes read as {pos - end + length}")
        timestamp = (
            max_timestamp
            if timestamp_type == _LOG_APPEND_TIME
            else base_timestamp + timestamp_delta
        )
        yield LenientRecord(
            base_offset + offset_delta, timestamp, timestamp_type, key, value, headers
        )


def _header_key_error(exc: BaseException) -> bool:
    """aiokafka's C reader raises the UnicodeDecodeError; its Python reader wraps it."""
    return isinstance(exc, UnicodeDecodeError) or isinstance(exc.__cause__, UnicodeDecodeError)


class _LenientBatch:
    """aiokafka's batch, read again by :func:`read_batch` if a header key does not decode.

    aiokafka's fetcher skips the records below its fetch position, so reading the batch again
    from its start yields each record once."""

    __slots__ = ("_batch", "_raw")

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._batch
        except (UnicodeDecodeError, CorruptRecordException) as exc:
            if not _header_key_error(exc):
                raise
            # One constant message: repeated, it is held back like any (streams/logs.py).
            log.warning(
                "a record batch has a header key that is not UTF-8; its records are read with "
                "that key's bytes escaped (the worker reads no headers)",
                extra={"offset": self._batch.base_offset},
            )
            yield from read_batch(bytes(self._raw))


class LenientMemoryRecords:
    """aiokafka's ``MemoryRecords`` over one fetched message set, whose v2 batches read as
    :class:`_LenientBatch`."""

    def __init__(self, data: bytes) -> None:
        self._records = MemoryRecords(data)
        self._data = memoryview(data)
        self._pos = 0

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is None:
            return None
        # MemoryRecords hands out the message set's batches one after the other, each one
        # batchLength + 12 bytes long: the same slice, here.
        start = self._pos
        end = start + _LOG_OVERHEAD + _LENGTH.unpack_from(self._data, start + 8)[0]
        self._pos = end
        if self._data[start + _MAGIC_AT] != 2 or batch.is_control_batch:
            return batch  # no headers before v2; control batches carry none
        return _LenientBatch(batch, self._data[start:end])


def install() -> None:
    """Make aiokafka's fetcher (every consumer of this process) read fetched message sets
    through :class:`LenientMemoryRecords`. Idempotent."""
    replace_fetched_records(LenientMemoryRecords)
