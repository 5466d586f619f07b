"""A minimal thread-safe connection pool (psycopg_pool is not a dependency of the project).

Connections are autocommit (transactions are explicit), have the sink's ``search_path`` and
its session-scoped staging tables. A connection that saw a connection-level error is dropped
instead of being returned, so the next use reconnects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

Conn = psycopg.Connection[tuple[object, ...]]


class ConnectionPool:
    def __init__(
        self,
        url: str,
        schema: str,
        size: int,
        connect_timeout_s: int,
        setup: Callable[[Conn], None] | None = None,
    ) -> None:
        self._url = url
        self._schema = schema
        self._size = size
        self._timeout = max(1, connect_timeout_s)
        self._setup = setup
        self._idle: list[Conn] = []
        self._open = 0
        self._cond = threading.Condition()
        self._closed = False

    def _connect(self) -> Conn:
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=self._timeout,
            application_name="recon-sink",
        )
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            if self._setup is not None:
                self._setup(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        with self._cond:
            while not self._idle and self._open >= self._size:
                self._cond.wait()
            conn = self._idle.pop() if self._idle else None
            self._open += 1 if conn is None else 0
        try:
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    conn.close()
                conn = self._connect()
        except BaseException:
            self._release(None)
            raise
        try:
            yield conn
        except psycopg.OperationalError:
            conn.close()
            self._release(None)
            raise
        except BaseException:
            self._release(None if conn.broken else conn)
            raise
        self._release(None if conn.broken or conn.closed else conn)

    def _release(self, conn: Conn | None) -> None:
        with self._cond:
            if conn is None or self._closed:
                self._open -= 1
                if conn is not None:
                    conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for conn in self._idle:
                conn.close()
                self._open -= 1
            self._idle.clear()
