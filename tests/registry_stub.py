"""A stand-in for a Confluent schema registry: the one endpoint the decoder reads.

``GET /schemas/ids/{id}`` answers from ``schemas``, 404 for an unknown id, and 503 while
``available`` is False (an outage). It is a real HTTP server, so the real
``SchemaRegistryClient`` talks to it, across processes too.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class RegistryStub:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.available = True
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests += 1
                parts = self.path.split("?")[0].strip("/").split("/")
                if not stub.available:
                    self._reply(503, {"error_code": 50301, "message": "unavailable"})
                elif len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                    schema = stub.schemas.get(int(parts[2]))
                    if schema is None:
                        self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                    else:
                        self._reply(200, {"schema": schema})
                else:
                    self._reply(404, {"error_code": 404, "message": "no such endpoint"})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
