"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, each applied once, in order.

Each migration runs in its own transaction together with its row in ``schema_migrations``.
A session advisory lock (per schema) serialises concurrent starters, so two sinks starting
together apply each migration exactly once. A checksum catches a migration edited after it
was applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from connectors.exceptions import MigrationError

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("connectors.postgres.migrations").iterdir():
        m = _FILE.match(entry.name)
        if m is not None:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def lock_key(schema: str, purpose: str) -> str:
    return f"recon:{purpose}:{schema}"


def migrate(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> list[int]:
    """Apply pending migrations in ``schema`` on an autocommit connection; returns the versions."""
    if not conn.autocommit:
        raise MigrationError("migrate() needs an autocommit connection")
    migrations = load_migrations()
    applied_now: list[int] = []
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [lock_key(schema, "migrate")])
    try:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            int(str(v)): str(c)
            for v, c in conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        }
        for mig in migrations:
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.version:04d}_{mig.name} changed after it was applied"
                    )
                continue
            with conn.transaction():
                conn.execute(mig.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    [mig.version, mig.name, mig.checksum],
                )
            log.info("applied migration %04d_%s in schema %s", mig.version, mig.name, schema)
            applied_now.append(mig.version)
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [lock_key(schema, "migrate")])
    return applied_now
