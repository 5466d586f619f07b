"""The key layout of the engine's state (one store per input partition).

Every key starts with one byte naming its record type. Times are 8 bytes big-endian with the
sign bit flipped (``t + 2**63``), so byte order is time order, negative times included; that is
what lets a watermark advance scan an index from its start up to the watermark and no further.

=========  ===============================================  =========================================
prefix     rest of the key                                  value (see :mod:`streams.engine.codec`)
=========  ===============================================  =========================================
``W``      (nothing)                                        meta: partition, side maxima, watermark,
                                                            highest applied offset per side
``B``      time, side (ledger 0, payment 1), offset u64     a buffered event
``G``      group id                                         an open or raised group
``D``      deadline time, group id                          empty (deadline index of open groups)
``U``      side, event id (UTF-8)                           content hash (duplicate index)
``X``      exception id (hex)                               a raised exception and its group ids
``R``      expiry time, ``M`` match id | ``X`` exception    what to purge (retention index): ``M``
           id | ``O`` side offset u64                       also forgets the ids of parked events
=========  ===============================================  =========================================

``O`` (an outbox of outputs per input offset) and its ``R ... O`` purges are only found in state
written by versions before each batch became one Kafka transaction; they are purged as they
expire.

A group id is ``len16(reference) reference flow-byte len16(currency) currency``, so the groups
of one reference (and of one reference and flow) share a key prefix: the reference index is a
prefix scan of ``G``.
"""

from __future__ import annotations

from functools import lru_cache

from streams.contract.model import Flow, Side
from streams.engine.exceptions import CorruptStateError

META = b"W"
BUFFER = b"B"
GROUP = b"G"
DEADLINE = b"D"
DEDUPE = b"U"
EXCEPTION = b"X"
RETENTION = b"R"
OUTBOX = b"O"

PURGE_MATCH = b"M"
PURGE_EXCEPTION = b"X"
PURGE_OUTBOX = b"O"

_TIME_BIAS = 1 << 63

# Ledger sorts before payment: the side tie-break of the event-time order.
SIDE_CODE: dict[Side, int] = {Side.LEDGER: 0, Side.PAYMENT: 1}
CODE_SIDE: dict[int, Side] = {code: side for side, code in SIDE_CODE.items()}
FLOW_CODE: dict[Flow, int] = {Flow.PAYMENT: 0x70, Flow.REFUND: 0x72}  # "p", "r"
CODE_FLOW: dict[int, Flow] = {code: flow for flow, code in FLOW_CODE.items()}
# The one-byte forms of the codes, for building keys without a bytes([...]) per key.
_SIDE_BYTE: dict[Side, bytes] = {side: bytes([code]) for side, code in SIDE_CODE.items()}
_DEDUPE_SIDE: dict[Side, bytes] = {side: DEDUPE + b for side, b in _SIDE_BYTE.items()}


def time_bytes(t: int) -> bytes:
    return (t + _TIME_BIAS).to_bytes(8, "big")


def time_from(raw: bytes) -> int:
    return int.from_bytes(raw, "big") - _TIME_BIAS


def _len_prefixed(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise CorruptStateError(f"key part longer than 65535 bytes: {text[:40]!r}...")
    return len(raw).to_bytes(2, "big") + raw


def reference_prefix(reference: str) -> bytes:
    return _len_prefixed(reference)


def group_id(reference: str, flow: Flow, currency: str) -> bytes:
    return _len_prefixed(reference) + _group_id_tail(flow, currency)


@lru_cache(maxsize=4096)
def _group_id_tail(flow: Flow, currency: str) -> bytes:
    # Few (flow, currency) pairs exist: build their part of the id once.
    return bytes([FLOW_CODE[flow]]) + _len_prefixed(currency)


def parse_group_id(gid: bytes) -> tuple[str, Flow, str]:
    try:
        n = int.from_bytes(gid[:2], "big")
        reference = gid[2 : 2 + n].decode()
        flow = CODE_FLOW[gid[2 + n]]
        m = int.from_bytes(gid[3 + n : 5 + n], "big")
        currency = gid[5 + n : 5 + n + m].decode()
    except (IndexError, KeyError, UnicodeDecodeError) as exc:
        raise CorruptStateError(f"bad group id {gid!r}") from exc
    return reference, flow, currency


def group_key(gid: bytes) -> bytes:
    return GROUP + gid


def deadline_key(deadline: int, gid: bytes) -> bytes:
    return DEADLINE + (deadline + _TIME_BIAS).to_bytes(8, "big") + gid


def buffer_key(event_time: int, side: Side, offset: int) -> bytes:
    return (
        BUFFER
        + (event_time + _TIME_BIAS).to_bytes(8, "big")
        + _SIDE_BYTE[side]
        + offset.to_bytes(8, "big")
    )


def dedupe_key(side: Side, event_id: str) -> bytes:
    return _DEDUPE_SIDE[side] + event_id.encode()


def dedupe_key_code(side_code: int, event_id: str) -> bytes:
    return DEDUPE + bytes([side_code]) + event_id.encode()


def exception_key(exception_id: str) -> bytes:
    return EXCEPTION + exception_id.encode()


def retention_key(expiry: int, kind: bytes, payload: bytes) -> bytes:
    return RETENTION + (expiry + _TIME_BIAS).to_bytes(8, "big") + kind + payload
