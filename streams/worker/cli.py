"""``recon worker``: run the Faust worker configured from the environment."""

from __future__ import annotations

import argparse

from streams.exceptions import EXIT_CONFIG, EXIT_UNAVAILABLE

# A dependency did not answer at start-up (EXIT_UNAVAILABLE, 69): an orchestrator retries. It
# refused the credentials or its certificate is not trusted (EXIT_CONFIG, 78): a setting is wrong.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loglevel", "--log-level", help="log level (default: $RECON_LOG_LEVEL or info)"
    )
    parser.add_argument(
        "--no-create-topics", action="store_true", help="only verify the topics exist"
    )


def run(args: argparse.Namespace) -> int:
    import faulthandler
    import gc
    import os
    import signal

    import faust

    # `kill -USR1 <pid>` prints every thread's stack to stderr: for a worker that seems stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    import logging

    from streams import logs
    from streams.exceptions import ConfigError, RefusedError, UnreachableError
    from streams.health import require_kafka
    from streams.worker.app import create_app
    from streams.worker.settings import worker_from_env
    from streams.worker.topics import create_topics, verify_copartitioned

    logs.configure(level=args.loglevel)
    settings = worker_from_env()
    try:
        require_kafka(settings.kafka, settings.kafka.connect_timeout_ms / 1000)
    except UnreachableError as exc:
        logging.getLogger("streams.worker").critical("%s", exc)
        return EXIT_UNAVAILABLE
    except (RefusedError, ConfigError) as exc:
        logging.getLogger("streams.worker").critical("%s", exc)
        return EXIT_CONFIG
    if args.no_create_topics:
        verify_copartitioned(settings)
    else:
        create_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    # Our logging (JSON, secrets masked), not Faust's; no banner on stdout.
    worker = faust.Worker(app, override_logging=False, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # no terminal spinner: Faust then logs "[^Worker]: Ready" instead
    # The hot path allocates many short-lived, acyclic objects; the cyclic GC scanning the
    # start-up heap for each young collection took ~7% of a busy worker. Freeze what start-up
    # made and collect the young generation less often; the middle generation stays small, so
    # its collections stay short (measured: docs/performance.md).
    gc.freeze()
    threshold = os.environ.get("RECON_GC_THRESHOLD", "50000,5,10")
    gc.set_threshold(*(int(x) for x in threshold.split(",")))
    worker.execute_from_commandline()
    return 0
