# syntax=docker/dockerfile:1.7
# The recon image: `recon worker`, `recon sink` and every operator command (ENTRYPOINT recon).
#
#   docker build -t recon:local .
#   docker run --rm recon:local --help
#
# Two stages. The builder installs the dependencies into a virtualenv, installs the project into
# it from /opt/recon, and compiles the native core there (streams/native.py: mypyc, a C
# compiler and the interpreter's headers). The compiled modules sit beside their sources, where
# streams/native.py builds them and streams/__init__.py expects them, so the runtime stage copies
# the virtualenv and /opt/recon unchanged and needs no compiler. The Avro contracts (schemas/)
# are package data, found through streams/contract/schemas as in a checkout and in the wheel
# (streams/contract/registry.py).
#
# Settings are environment variables only (README, "Settings"); the ones set here are the
# container defaults that docs/observability.md states: JSON logs, and the HTTP endpoints
# (/health, /ready, /metrics) of the worker on 0.0.0.0:6066 and of the sink on 0.0.0.0:6067.

# One base image for both stages: the virtualenv's interpreter is a link into it.
# Python 3.11: the version mypy compiles the core for (pyproject.toml, [tool.mypy]).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The mypy whose mypyc compiles the core; the one `make lint` runs.
ARG MYPY_VERSION=2.4.1

FROM ${PYTHON_IMAGE} AS builder
ARG MYPY_VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# What the compiled core needs (.ci/cc.sh): a C compiler and the interpreter's headers. The
# official image has the headers (/usr/local/include); gcc and the C library's headers here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv --upgrade-deps /opt/venv
WORKDIR /opt/recon

# The dependencies in their own layer: rebuilt only when pyproject.toml or the pinned versions
# (constraints.txt, the set CI tested) change.
COPY pyproject.toml README.md constraints.txt ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt
RUN pip install -c constraints.txt -r /tmp/requirements.txt
# mypyc and its setuptools go beside the virtualenv, not into it: the runtime needs neither.
RUN pip install --target /opt/mypyc "mypy==${MYPY_VERSION}" "setuptools>=77"

COPY schemas ./schemas
COPY connectors ./connectors
COPY streams ./streams
# The project (its `recon` console script and Faust entry point), then the compiled core built in
# place. The check imports every module of the core without mypyc on the path: each one must
# load from its extension (streams.native.compiled()), none from its source.
RUN set -eu; \
    pip install --no-deps --editable .; \
    if ! PYTHONPATH=/opt/mypyc python -m streams.native build > /tmp/native-build.log 2>&1; then \
        tail -n 60 /tmp/native-build.log; exit 1; \
    fi; \
    rm -rf .local .mypy_cache build recon.egg-info; \
    python -m compileall -q streams connectors; \
    cd /; \
    python -c "from streams import native; c = native.compiled(); bad = [m for m, ok in c.items() if not ok]; assert not bad, f'not compiled: {bad}'; print(len(c), 'modules compiled')"


FROM ${PYTHON_IMAGE} AS runtime
ARG RECON_UID=10001
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    RECON_DATA_DIR=/var/lib/recon \
    RECON_LOG_FORMAT=json \
    RECON_WEB_HOST=0.0.0.0 \
    RECON_WEB_PORT=6066 \
    RECON_SINK_HTTP_HOST=0.0.0.0 \
    RECON_SINK_HTTP_PORT=6067

RUN groupadd --system --gid "${RECON_UID}" recon \
    && useradd --system --uid "${RECON_UID}" --gid recon --home-dir /var/lib/recon \
        --no-create-home --shell /usr/sbin/nologin recon \
    && mkdir -p /var/lib/recon \
    && chown "${RECON_UID}:${RECON_UID}" /var/lib/recon \
    && chmod 0750 /var/lib/recon

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/recon /opt/recon

# The HEALTHCHECK: GET /health of the process in this container (slim images have no curl).
COPY --chmod=0755 <<'EOF' /usr/local/bin/recon-healthcheck
#!/usr/local/bin/python3
"""GET /health of the recon process in this container; exit 0 when it answers 200.

The port: the first argument, else RECON_HEALTH_PORT, else the port of the command PID 1 runs
(`recon worker`: RECON_WEB_PORT, `recon sink`: RECON_SINK_HTTP_PORT). Any other recon command
(db migrate, topics create, verify...) serves nothing: healthy while it runs. When PID 1 is not
recon (an init process), the worker's port, then the sink's.
"""

import os
import sys
import urllib.request


def ports() -> list[str]:
    if len(sys.argv) > 1:
        return [sys.argv[1]]
    if os.environ.get("RECON_HEALTH_PORT"):
        return [os.environ["RECON_HEALTH_PORT"]]
    worker = os.environ.get("RECON_WEB_PORT") or "6066"
    sink = os.environ.get("RECON_SINK_HTTP_PORT") or "6067"
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = [arg.decode(errors="replace") for arg in f.read().split(b"\0") if arg]
    except OSError:
        argv = []
    for i, arg in enumerate(argv[:3]):
        if os.path.basename(arg) == "recon":
            command = argv[i + 1] if i + 1 < len(argv) else ""
            return {"worker": [worker], "sink": [sink]}.get(command, [])
    return [worker, sink]


def healthy(port: str) -> bool:
    host = os.environ.get("RECON_HEALTH_HOST") or "127.0.0.1"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=4) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


candidates = ports()
sys.exit(0 if not candidates or any(healthy(port) for port in candidates) else 1)
EOF

# The runtime finds the compiled core without a compiler (and the command line loads).
RUN cd / \
    && python -c "from streams import native; assert all(native.compiled().values())" \
    && recon --help > /dev/null

USER ${RECON_UID}:${RECON_UID}
WORKDIR /var/lib/recon
# The worker's RocksDB state (RECON_DATA_DIR), one volume per container; also the working
# directory, so commands that write a work directory (replay, scale, simulate --truth) can.
VOLUME ["/var/lib/recon"]
EXPOSE 6066 6067
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["recon-healthcheck"]
ENTRYPOINT ["recon"]
CMD ["--help"]
