"""The public event contract: the typed model, validation, decoding and encoding.

Inputs: :func:`decode_input` / :class:`InputDecoder` turn one Kafka record into an
``InputEvent``, a ``Heartbeat`` or a :class:`Rejection` (see :class:`RejectReason`);
:func:`dead_letter` turns a rejection into a ``DeadLetter``, bounded in size like every dead
letter (:func:`bounded_dead_letter`).
Outputs: ``encode_*`` / ``decode_*`` between the model dataclasses and Avro single-object
encoded bytes. Schemas live in ``schemas/<Name>/v<N>.avsc`` (see :mod:`.registry`).
"""

from streams.contract.codec import (
    OutputCodec,
    decode_avro,
    decode_dead_letter,
    decode_exception,
    decode_match,
    encode_avro,
    encode_dead_letter,
    encode_exception,
    encode_match,
    encode_single_object,
    to_json,
)
from streams.contract.dead_letters import (
    MAX_DEAD_LETTER_BYTES,
    MAX_DEAD_LETTER_DETAIL,
    bounded_dead_letter,
)
from streams.contract.decode import (
    CURRENCIES,
    Decoded,
    InputDecoder,
    Rejection,
    RejectReason,
    dead_letter,
    decode_input,
    parse_event_time,
    validate_record,
)
from streams.contract.exceptions import ContractError, DecodeError, EncodeError, SchemaError
from streams.contract.registry import SchemaRegistry, SchemaVersion, default_registry

__all__ = [
    "CURRENCIES",
    "MAX_DEAD_LETTER_BYTES",
    "MAX_DEAD_LETTER_DETAIL",
    "ContractError",
    "DecodeError",
    "Decoded",
    "EncodeError",
    "InputDecoder",
    "OutputCodec",
    "RejectReason",
    "Rejection",
    "SchemaError",
    "SchemaRegistry",
    "SchemaVersion",
    "bounded_dead_letter",
    "dead_letter",
    "decode_avro",
    "decode_dead_letter",
    "decode_exception",
    "decode_input",
    "decode_match",
    "default_registry",
    "encode_avro",
    "encode_dead_letter",
    "encode_exception",
    "encode_match",
    "encode_single_object",
    "parse_event_time",
    "to_json",
    "validate_record",
]
