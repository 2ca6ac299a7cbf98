"""Versioned schema: numbered migrations applied in order, recorded in ``schema_migrations``.

A small stand-in for Alembic (not a dependency): each migration is a function of a connection, applied once
inside the same write transaction as its ``schema_migrations`` row, so concurrent replicas starting together
apply each migration exactly once. Add a migration by appending to ``MIGRATIONS``; never edit an old one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, inspect, select

from services.registry.adapters import tables
from services.registry.adapters.db import writing
from services.registry.adapters.tables import UtcDateTime

_meta = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _meta,
    Column("version", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)


_CREATE_LOCK = 0x64726C  # PostgreSQL advisory lock key held while schema_migrations is created


def _initial(conn: Connection) -> None:
    tables.metadata.create_all(conn)
    expired = datetime(1970, 1, 1, tzinfo=UTC)
    conn.execute(
        tables.relay_leases.insert(),
        [{"name": name, "holder": "", "expires_at": expired} for name in ("outbox", "webhooks")],
    )


# Typical proportions (rows; rows per distinct key prefix) for SQLite's planner. Without them, on a young
# database it sorts every version of a model to page through them; with them it walks the (model, version)
# index in order and stops after one page. ANALYZE on real data later gives the same plans.
_SQLITE_STATS = [
    ("registered_models", "sqlite_autoindex_registered_models_1", "1000 1"),
    ("model_versions", "sqlite_autoindex_model_versions_1", "100000 100 1"),
    ("model_versions", None, "100000"),
    ("model_versions", "ix_model_versions_search", "100000 1 1 1 1"),
    ("version_tags", "sqlite_autoindex_version_tags_1", "300000 3 1"),
    ("version_tags", "ix_version_tags_key_value_owner", "300000 30000 30 1"),
    ("model_tags", "sqlite_autoindex_model_tags_1", "3000 3 1"),
    ("model_tags", "ix_model_tags_key_value_owner", "3000 300 3 1"),
    ("aliases", "sqlite_autoindex_aliases_1", "3000 3 1"),
    ("alias_history", "ix_alias_history_model_alias", "30000 30 10 1"),
]


def _sqlite_planner_statistics(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL's autovacuum keeps its statistics
    conn.exec_driver_sql("ANALYZE")
    conn.exec_driver_sql("DELETE FROM sqlite_stat1")
    for table, index, stat in _SQLITE_STATS:
        conn.exec_driver_sql(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", (table, index, stat)
        )


def _change_counter(conn: Connection) -> None:
    # a database created by migration 1 since the table was added already has it (1 builds today's tables)
    tables.change_counter.create(conn, checkfirst=True)
    if conn.execute(select(tables.change_counter.c.id)).first() is None:
        conn.execute(tables.change_counter.insert().values(id=1, value=0))


def _covering_tag_indexes(conn: Connection) -> None:
    """Tag filters answered from the index alone: (key, value, owner) replaces (key, value), which had to
    read each tag row to learn its owner."""
    for table in (tables.model_tags, tables.version_tags):
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS ix_{table.name}_key_value")
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    _sqlite_planner_statistics(conn)


def _outbox_failures(conn: Connection) -> None:
    """Outbox rows the relay could not announce are counted and set aside instead of blocking the relay."""
    have = {column["name"] for column in inspect(conn).get_columns("outbox")}
    for name in ("attempts", "last_error", "failed_at"):
        if name in have:
            continue  # a database created by migration 1 since the columns were added already has them
        column = tables.outbox.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        default = getattr(column.server_default, "arg", None)
        not_null = "" if default is None else f" NOT NULL DEFAULT '{default}'"
        conn.exec_driver_sql(f"ALTER TABLE outbox ADD COLUMN {name} {kind}{not_null}")


def _mlflow_tables(conn: Connection) -> None:
    """Experiments, runs, logged models and artifact files that MLflow clients write (docs/mlflow.md)."""
    for table in (tables.mlflow_records, tables.mlflow_artifacts):
        table.create(conn, checkfirst=True)


def _search_index(conn: Connection) -> None:
    """A search's candidate versions checked (status) and sorted (model, version) from an index, not rows."""
    for index in tables.model_versions.indexes:
        index.create(conn, checkfirst=True)
    _sqlite_planner_statistics(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema", _initial),
    (2, "sqlite planner statistics", _sqlite_planner_statistics),
    (3, "change counter for resolve caches", _change_counter),
    (4, "covering indexes for tag filters", _covering_tag_indexes),
    (5, "outbox rows that failed: attempts, last error, set aside", _outbox_failures),
    (6, "MLflow experiments, runs, logged models and artifact files", _mlflow_tables),
    (7, "covering index for version searches", _search_index),
]


def current_version(engine: Engine) -> int:
    """The newest applied migration, 0 for an empty database."""
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "schema_migrations"):
            return 0
        versions = conn.execute(select(schema_migrations.c.version)).scalars().all()
        return max(versions, default=0)


def migrate(engine: Engine) -> list[int]:
    """Apply every pending migration; returns the versions applied now."""
    with writing(engine) as conn:  # replicas starting together: one creates the table, the others wait
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})")
        _meta.create_all(conn, checkfirst=True)
    applied: list[int] = []
    for version, name, apply in MIGRATIONS:
        with writing(engine) as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            done = conn.execute(
                select(schema_migrations.c.version).where(schema_migrations.c.version == version)
            ).first()
            if done:
                continue
            apply(conn)
            conn.execute(
                schema_migrations.insert().values(version=version, name=name, applied_at=datetime.now(UTC))
            )
            applied.append(version)
    if applied:
        engine.dispose()  # new connections read the new schema and statistics
    return applied
