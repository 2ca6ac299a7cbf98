"""The ClickHouse adapter every service uses: a clickhouse-connect client built from Settings."""

from __future__ import annotations

from typing import Any

from shared.settings import Settings


def clickhouse_client(
    settings: Settings,
    *,
    database: str | None = None,
    create_database: bool = True,
    query_settings: dict[str, Any] | None = None,
) -> Any:
    """A clickhouse-connect HTTP client on the configured server, with Driftloop's database created.

    Built on call (never at import); one per thread or task, as clickhouse-connect clients are not
    meant to be shared across threads. ``query_settings`` go with every request of the client.
    """
    import clickhouse_connect

    host, port = settings.clickhouse_host_port
    secure = settings.clickhouse_url.startswith("https://")
    db = database or settings.clickhouse_database
    if create_database:
        bootstrap = clickhouse_connect.get_client(
            host=host,
            port=port,
            secure=secure,
            username=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(),
        )
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        bootstrap.close()
    return clickhouse_connect.get_client(
        host=host,
        port=port,
        secure=secure,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database=db,
        settings=query_settings or {},
    )
