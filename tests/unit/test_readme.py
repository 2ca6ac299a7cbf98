"""Docs move with code: the README documents every setting and the two commands CI and users run."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.cli.config import TABLE_END, TABLE_START, settings_table
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_in_the_readme_table(name: str) -> None:
    assert f"`DRIFTLOOP_{name.upper()}`" in README, (
        "regenerate the table with `driftloop settings --markdown`"
    )


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in README and "make demo" in README


def test_settings_table_is_current() -> None:
    table = README.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert table == settings_table(), "run `driftloop settings --update README.md`"
