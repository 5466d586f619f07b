"""``recon decode``: one record of a topic, read from a file, decoded as the worker (inputs) or
the sink (outputs) reads it.

    recon decode --topic payments [--key REF] FILE    # FILE holds the value; "-": stdin

It prints the decoded record as one JSON line and exits 0. A record the worker would
dead-letter prints its reason and detail and exits 1, as does an output the sink could not
decode. The key is checked as the worker checks it: an event needs ``--key`` with its reference
(without one it is ``KEY_MISMATCH``, as a keyless record is). It needs no broker and no database:
only the Avro schemas shipped with the package.
"""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Callable

import orjson

from streams.contract.codec import decode_dead_letter, decode_exception, decode_match
from streams.contract.decode import Rejection, decode_input
from streams.contract.exceptions import ContractError
from streams.contract.model import Side

INPUTS = {"payments": Side.PAYMENT, "ledger": Side.LEDGER}
OUTPUTS: dict[str, Callable[[bytes], object]] = {
    "recon.matched": decode_match,
    "recon.exceptions": decode_exception,
    "recon.dlq": decode_dead_letter,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic", required=True, choices=[*INPUTS, *OUTPUTS], help="the topic the record is on"
    )
    parser.add_argument("--key", help="the record's key (UTF-8); events need their reference")
    parser.add_argument("file", help="a file holding the record's value bytes; - reads stdin")


def _bytes_as_base64(obj: object) -> object:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def run(args: argparse.Namespace) -> int:
    if args.file == "-":
        value = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as f:
            value = f.read()
    if args.topic in INPUTS:
        key = None if args.key is None else args.key.encode()
        decoded: object = decode_input(INPUTS[args.topic], key, value, 0)
        if isinstance(decoded, Rejection):
            print(f"dead letter {decoded.reason.value}: {decoded.detail}")
            return 1
    else:
        try:
            decoded = OUTPUTS[args.topic](value)
        except ContractError as exc:
            print(f"not a record of {args.topic}: {exc}")
            return 1
    kind = type(decoded).__name__
    body = orjson.dumps(decoded, default=_bytes_as_base64, option=orjson.OPT_SORT_KEYS)
    print(f'{{"record":"{kind}","value":{body.decode()}}}')
    return 0
