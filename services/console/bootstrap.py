"""The console's composition root: the one place that reads settings and builds its adapters.

Tests build the same console with fakes through the keyword overrides (``tests/unit/test_console_pages.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from services.console.adapters.registry import RegistryClient
from services.console.adapters.warehouse import Warehouse
from services.console.service import Console, RegistryPort, WarehousePort
from shared.clickhouse import clickhouse_client
from shared.settings import Settings, is_loopback


class Wiring(NamedTuple):
    console: Console
    settings: Settings
    secure_cookies: bool


def bootstrap(
    settings: Settings | None = None,
    *,
    registry: RegistryPort | None = None,
    warehouse: WarehousePort | None = None,
    host: str | None = None,
) -> Wiring:
    """The console; each port not given is built from ``settings`` (the registry's URL, ClickHouse).

    The console holds no registry token of its own: every call carries the viewer's.
    """
    settings = settings or Settings()

    def connect() -> Any:
        return clickhouse_client(settings, create_database=False)

    console = Console(
        registry or RegistryClient(settings.registry_url),
        warehouse or Warehouse(connect),
        refresh_s=settings.console_refresh_seconds,
    )
    # cookies travel only over TLS once the console is reachable from other machines
    secure = not is_loopback(host or settings.console_host)
    return Wiring(console, settings, secure)
