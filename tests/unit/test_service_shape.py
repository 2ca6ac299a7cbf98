"""Every service has the same rooms, one error base, and reads its settings in one place (docs/adr/0003)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").is_file())
ROOMS = ("__main__.py", "bootstrap.py", "service.py", "errors.py", "domain", "adapters", "entrypoints")
ERROR_BASE = {"ingest": "IngestError", "monitor": "MonitorError", "registry": "RegistryError"}


def _base_name(service: str) -> str:
    return ERROR_BASE.get(service, f"{service.capitalize()}Error")


def test_the_services_are_the_five_of_the_loop_the_advisor_and_the_console() -> None:
    assert SERVICES == ["advisor", "console", "ingest", "monitor", "registry", "serving", "trainer"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_rooms(service: str) -> None:
    folder = ROOT / "services" / service
    missing = [room for room in ROOMS if not (folder / room).exists()]
    assert not missing, f"services/{service} lacks {missing}"
    assert {p.name for p in (folder / "entrypoints").glob("*.py")} & {"http.py", "stream.py"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_a_service_defines_derives_from_its_one_base(service: str) -> None:
    package = importlib.import_module(f"services.{service}")
    base = getattr(importlib.import_module(f"services.{service}.errors"), _base_name(service))
    strays = []
    for info in pkgutil.walk_packages(package.__path__, f"services.{service}."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, Exception) and not issubclass(cls, base):
                strays.append(f"{info.name}.{name}")
    assert not strays, f"errors not derived from {base.__name__}: {strays}"


@pytest.mark.parametrize("service", SERVICES)
def test_only_bootstrap_builds_settings(service: str) -> None:
    builders = []
    for path in (ROOT / "services" / service).rglob("*.py"):
        if path.name == "bootstrap.py" and path.parent.name == service:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Settings":
                builders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not builders, f"Settings() built outside bootstrap.py: {builders}"
