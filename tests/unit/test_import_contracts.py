"""The import contracts in pyproject.toml hold for this tree, and each one fails on an import that breaks it.

The second half copies the contracts onto a small tree with the same package names, once clean and once per
kind of violation, so a contract that silently stopped matching anything would be caught here.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
SERVICES = ("ingest", "monitor", "registry", "serving", "trainer")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_this_tree_keeps_every_import_contract() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken." in done.stdout


def _contract_section() -> str:
    """Our pyproject's [tool.importlinter] tables, verbatim."""
    text = (ROOT / "pyproject.toml").read_text()
    return text[text.index("[tool.importlinter]") :]


def _module(root: Path, dotted: str, body: str = "") -> None:
    parts = dotted.split(".")
    folder = root.joinpath(*parts[:-1])
    folder.mkdir(parents=True, exist_ok=True)
    for depth in range(1, len(parts)):
        (root.joinpath(*parts[:depth]) / "__init__.py").touch()
    path = folder / f"{parts[-1]}.py"
    path.write_text(body if not path.exists() else path.read_text() + body)


def _clean_tree(root: Path) -> None:
    """Every module a contract names, importing only what the contracts allow."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(_contract_section())
    for contract in CONFIG["contracts"]:
        for name in contract.get("source_modules", []):
            if "*" not in name:
                _module(root, name, "import json\n")
        for name in contract.get("modules", []):
            _module(root, f"{name}.app", "import shared.events\n")
    for service in SERVICES:
        _module(root, f"services.{service}.domain.logic", "import shared.events\n")
    _module(root, "driftloop.cli", "import services.ingest.app\nimport shared.events\n")


VIOLATIONS = {
    "one-direction": ("shared.events", "import services.ingest.app\n"),
    "independent-services": ("services.monitor.app", "import services.registry.app\n"),
    "no-cycles": ("shared.codec", "import shared.wire\n"),  # shared.wire imports shared.codec below
    "pure-contract": ("shared.validation", "import httpx\n"),
    "pure-domain": ("services.trainer.domain.logic", "import sqlalchemy\n"),
}


def test_a_clean_tree_keeps_the_contracts(tmp_path: Path) -> None:
    _clean_tree(tmp_path)
    done = _lint(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.parametrize("contract", [c["id"] for c in CONFIG["contracts"]])
def test_a_violating_import_breaks_its_contract(tmp_path: Path, contract: str) -> None:
    assert contract in VIOLATIONS, f"add a violating import for the new contract {contract!r}"
    _clean_tree(tmp_path)
    module, line = VIOLATIONS[contract]
    _module(tmp_path, module, line)
    if contract == "no-cycles":
        _module(tmp_path, "shared.wire", "import shared.codec\n")
    done = _lint(tmp_path)
    name = next(c["name"] for c in CONFIG["contracts"] if c["id"] == contract)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{name} BROKEN" in done.stdout
