"""Schema migrations of the demo database: ``migrations/*.sql``, applied in name order.

Each file runs in its own transaction together with its row in
``public.schema_migrations(version, applied_at)`` (version = file name without ``.sql``), so
a file is applied entirely or not at all. A transaction-level advisory lock serialises
concurrent runners: the second one waits, then sees the version recorded and skips it.
Applied files are never re-run, so an edited old file has no effect: add a new file.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x5F_DE_70  # any constant bigint shared by every runner of these migrations
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version     text        PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(RuntimeError):
    """A migration file failed; nothing of that file was applied."""


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(directory.glob("*.sql"), key=lambda p: p.name)


def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every not-yet-applied file; returns their versions in order ([] when none).

    Raises :class:`MigrationError` naming the file on an SQL error; earlier files of the
    same call stay applied (each has committed), later ones are not attempted."""
    applied: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in migration_files(directory):
            version = path.stem
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute(_CREATE_TABLE)
                done = conn.execute(
                    "SELECT 1 FROM public.schema_migrations WHERE version = %s", (version,)
                ).fetchone()
                if done:
                    continue
                try:
                    # No parameters: psycopg sends the file as one simple query, so a file
                    # may hold several statements.
                    conn.execute(path.read_text())
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {path.name} failed: {exc}") from exc
                conn.execute(
                    "INSERT INTO public.schema_migrations (version) VALUES (%s)", (version,)
                )
            applied.append(version)
    return applied
