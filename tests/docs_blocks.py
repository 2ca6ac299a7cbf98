"""The code blocks of README.md and docs/*.md, as the docs test runs them (tests/integration/test_docs_blocks.py).

Every ```bash, ```sh, ```shell, ```console and ```python block is run. A block that cannot run says why,
in an HTML comment on the line right before its fence (invisible on the rendered page)::

    <!-- not-run: runs in the foreground until Ctrl-C -->
    ```bash
    driftloop run registry
    ```

A marker without a reason, a marker with no block after it, a fence in a language this module does not
know and an unclosed fence are errors (:func:`problems`), so no block is ever left out silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SHELL = frozenset({"bash", "sh", "shell", "console", "zsh"})
PYTHON = frozenset({"python", "py"})
NOT_CODE = frozenset({"", "json", "sql", "text", "yaml", "toml", "ini", "http"})
"""Fence languages that are data or pictures, not commands: shown, never run."""

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)\s*(?P<info>[^`\s]*)")
_MARKER = re.compile(r"^\s*<!--\s*not-run\s*:(?P<reason>.*?)-->\s*$")
_MARKER_START = re.compile(r"<!--\s*not[- _]?run\b", re.IGNORECASE)


def shown(page: Path) -> str:
    """The page's path as a reader finds it: relative to the repo root when it is in the repo."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its code and why it is not run (if it is not)."""

    page: Path
    line: int
    language: str
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{shown(self.page)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.language in SHELL | PYTHON and self.not_run is None

    def commands(self) -> str:
        """What a shell runs: the code, or for a ``console`` block its ``$ `` lines without the prompt."""
        if self.language != "console":
            return self.code
        return "\n".join(line[2:] for line in self.code.splitlines() if line.startswith("$ "))


def blocks(page: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of ``page`` and the problems found reading it."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    problems: list[str] = []
    where = shown(page)
    pending: tuple[int, str] | None = None  # a not-run marker waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is None:
            marker = _MARKER.match(line)
            if marker is not None:
                if pending is not None:
                    problems.append(f"{where}:{pending[0]}: not-run marker with no code block after it")
                pending = (i + 1, marker["reason"].strip())
            elif _MARKER_START.search(line):
                problems.append(
                    f"{where}:{i + 1}: write the marker as `<!-- not-run: REASON -->` on its own line"
                )
            elif line.strip() and pending is not None:
                problems.append(f"{where}:{pending[0]}: not-run marker with no code block right after it")
                pending = None
            i += 1
            continue
        opener, language = fence["fence"], fence["info"].lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(opener):
            end += 1
        if end == len(lines):
            problems.append(f"{where}:{i + 1}: code block never closed")
        indent = len(fence["indent"])
        code = "\n".join(raw[indent:] if raw[:indent].isspace() else raw for raw in lines[i + 1 : end])
        reason = None
        if pending is not None:
            reason = pending[1]
            if not reason:
                problems.append(f"{where}:{pending[0]}: not-run marker without a reason")
            pending = None
        if language not in SHELL | PYTHON | NOT_CODE:
            problems.append(
                f"{where}:{i + 1}: code block in unknown language {language!r}: "
                "add it to tests/docs_blocks.py (SHELL, PYTHON or NOT_CODE)"
            )
        if reason is not None and language in NOT_CODE:
            problems.append(
                f"{where}:{i + 1}: not-run marker on a {language or 'plain'} block, which never runs"
            )
        found.append(Block(page, i + 1, language, code + "\n", reason))
        i = end + 1
    if pending is not None:
        problems.append(f"{where}:{pending[0]}: not-run marker with no code block after it")
    return found, problems


def all_blocks() -> tuple[list[Block], list[str]]:
    """Every block of README.md and docs/*.md, in reading order, and every problem found."""
    found: list[Block] = []
    problems: list[str] = []
    for page in PAGES:
        page_blocks, page_problems = blocks(page)
        found += page_blocks
        problems += page_problems
    return found, problems
