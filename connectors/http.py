"""The sink's HTTP endpoints: ``/health``, ``/ready`` and ``/metrics``, nothing else.

A small threaded server from the standard library: GET and HEAD only (405 otherwise), 404 for
any other path, 414 for an oversized request line, and nothing it serves depends on the path
beyond an exact match.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streams.health import Health

log = logging.getLogger(__name__)


def serve(health: Health, host: str, port: int, registry: Any = REGISTRY) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; returns the server (``server_address`` has the port
    when ``port`` is 0)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "recon"
        sys_version = ""
        timeout = 30  # a client that stalls in its request is dropped, its thread freed

        def _answer(self, body_too: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                status, body, ctype = 200, generate_latest(registry), CONTENT_TYPE_LATEST
            elif path == "/health":
                status, body = health.liveness()
                ctype = "application/json"
            elif path == "/ready":
                status, body = health.readiness()
                ctype = "application/json"
            else:
                status, body, ctype = 404, b'{"error": "not found"}', "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body_too:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def _not_allowed(self) -> None:
            self.send_response(405)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            # An unknown method is 501 to the standard library; to a client it is not allowed.
            super().send_error(405 if code == 501 else code, message, explain)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

        def log_error(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
