"""``recon db migrate|status``: apply or list the sink's schema migrations."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["migrate", "status"], help="what to do")
    parser.add_argument("--schema", help="PostgreSQL schema (default: $RECON_PG_SCHEMA or public)")


def run(args: argparse.Namespace) -> int:
    import psycopg
    from psycopg import sql

    from connectors.postgres.migrate import load_migrations, migrate
    from connectors.postgres.settings import sink_settings_from_env

    settings = sink_settings_from_env()
    schema = args.schema or settings.schema
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        if args.action == "migrate":
            applied = migrate(conn, schema)
            print(f"schema {schema}: applied {applied or 'nothing (up to date)'}")
            return 0
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        done = (
            {int(str(r[0])) for r in conn.execute("SELECT version FROM schema_migrations")}
            if exists and exists[0]
            else set()
        )
    for mig in load_migrations():
        state = "applied" if mig.version in done else "pending"
        print(f"{mig.version:04d}_{mig.name}: {state}")
    return 0
