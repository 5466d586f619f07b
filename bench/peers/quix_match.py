"""The quix-streams peer: exact 1:1 matching by reference, exactly-once, RocksDB state.

Runs in its own virtualenv (bench/peers/setup.sh), never the project's; bench/peers/run_peer.py
launches it. Both input topics are JSON, keyed by reference and co-partitioned by murmur2, so one
``concat`` of the two dataframes sees a reference's events on one partition, in timestamp order
(quix-streams aligns the partitions of concatenated topics by timestamp). The unmatched side's
event waits in state under the message key; its counterpart emits one match and deletes it.

Stops once it has read ``--expect`` input records (heartbeats and unparsable ones included),
after its last checkpoint (a Kafka transaction) commits, and prints one JSON line of counts and
timings on stdout.

Kafka connection settings come as librdkafka JSON in $RECON_PEER_KAFKA (keeps secrets off argv),
or else from $KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from pairing import LEDGER, PAYMENT, is_event, pair
from quixstreams import Application, State
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models.serializers.exceptions import SerializationError

PENDING = "pending"


@dataclass
class Counts:
    records: int = 0
    heartbeats: int = 0
    ignored: int = 0
    parse_errors: int = 0
    same_side: int = 0
    matches: int = 0
    # perf_counter() at the first input record, at the last one, and when the run loop returned
    # (its last checkpoint committed, consumer and state closed).
    first: float = 0.0
    last: float = 0.0
    end: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True, help="consumer group (and transactional id)")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--expect", type=int, required=True, help="input records to read")
    parser.add_argument("--loglevel", default="WARNING")
    args = parser.parse_args()

    counts = Counts()
    if "RECON_PEER_KAFKA" in os.environ:
        kafka = json.loads(os.environ["RECON_PEER_KAFKA"])
    else:
        kafka = {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]}

    def seen() -> None:
        counts.records += 1
        if counts.records == 1:
            counts.first = time.perf_counter()
        if counts.records == args.expect:
            counts.last = time.perf_counter()
            app.stop()  # the run loop then commits its last checkpoint and returns

    def on_consumer_error(exc: Exception, _msg: Any, _logger: logging.Logger) -> bool:
        if isinstance(exc, SerializationError):  # not JSON: count it, skip it
            counts.parse_errors += 1
            seen()
            return True
        return False

    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka),
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=args.state_dir,
        on_consumer_error=on_consumer_error,
        on_message_processed=lambda _topic, _partition, _offset: seen(),
        # Topics are the driver's; the state changelog topic quix-streams creates itself.
        auto_create_topics=True,
        loglevel=args.loglevel,
    )

    def keep(value: Any) -> bool:
        if is_event(value):
            return True
        if type(value) is dict and value.keys() == {"event_time"}:
            counts.heartbeats += 1
        else:
            counts.ignored += 1
        return False

    def branch(topic: str, side: str) -> StreamingDataFrame:
        sdf = app.dataframe(app.topic(topic, key_deserializer="str", value_deserializer="json"))
        return sdf.filter(keep).apply(lambda value: (side, value))

    def match(item: tuple[str, dict[str, Any]], state: State[str, Any]) -> dict[str, Any] | None:
        side, event = item
        pending = state.get(PENDING)
        after, out = pair(pending, side, event)
        if after is None:
            state.delete(PENDING)
        elif pending is None:
            state.set(PENDING, after)
        else:
            counts.same_side += 1
        if out is not None:
            counts.matches += 1
        return out

    output = app.topic(args.output, key_serializer="str", value_serializer="json")
    sdf = branch(args.payments, PAYMENT).concat(branch(args.ledger, LEDGER))
    sdf = sdf.apply(match, stateful=True).filter(lambda m: m is not None)
    sdf.to_topic(output)

    app.run()
    counts.end = time.perf_counter()
    seconds = counts.end - counts.first if counts.records else 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)  # librdkafka's threads included
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({**asdict(counts), "seconds": seconds, "cpu_seconds": cpu}), flush=True)
    sys.exit(0 if counts.records >= args.expect else 1)


if __name__ == "__main__":
    main()
