"""Docs move with code: the README documents every setting and the two commands CI and users run."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.cli.config import TABLE_END, TABLE_START, settings_table
from shared.settings import Settings
from tests.docs_blocks import all_blocks, blocks

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


def test_every_code_block_of_the_docs_is_run_or_says_why_not() -> None:
    found, problems = all_blocks()
    assert not problems, "\n".join(problems)
    assert any(block.runnable for block in found)


def test_a_block_left_out_without_a_reason_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not-run: -->\n```bash\nmake demo\n```\n\n"
        "<!-- not-run: needs Docker -->\n\nSome prose.\n\n```bash\ndocker compose up\n```\n"
        "```zsh-session\nls\n```\n<!-- not run because -->\n```bash\nls\n```\n<!-- not-run: nothing follows -->\n"
    )
    found, problems = blocks(page)
    assert [(block.language, block.not_run) for block in found] == [
        ("bash", ""),
        ("bash", None),
        ("zsh-session", None),
        ("bash", None),
    ]
    assert [problem.split(": ", 1)[1] for problem in problems] == [
        "not-run marker without a reason",
        "not-run marker with no code block right after it",
        "code block in unknown language 'zsh-session': add it to tests/docs_blocks.py (SHELL, PYTHON or NOT_CODE)",
        "write the marker as `<!-- not-run: REASON -->` on its own line",
        "not-run marker with no code block after it",
    ]


def test_the_sample_queries_are_the_ones_on_the_analytics_page() -> None:
    page = (ROOT / "docs" / "analytics.md").read_text()
    for sample in (ROOT / "docs" / "examples").glob("*.sql"):
        text = sample.read_text().strip()
        if text.startswith("-- name:"):
            assert f"```sql\n{text}\n```" in page, (
                f"{sample.name} differs from its query in docs/analytics.md"
            )
