"""Session fixtures: the real local servers, started once on free ports (see tests/fixtures/).

Tests are hermetic: before anything is collected, every ``DRIFTLOOP_*`` variable of the shell that ran
pytest is removed and settings read no ``.env`` (``DRIFTLOOP_ENV_FILE`` points at a file that does not
exist), so a developer's configuration never changes a test's outcome. Child processes the tests start
inherit this clean environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.settings import ENV_FILE_VARIABLE

pytest_plugins = [
    "tests.fixtures.clickhouse",
    "tests.fixtures.kafka",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
]

NO_ENV_FILE = str(Path(__file__).resolve().parent / "no-such-dotenv-file")
"""What ``DRIFTLOOP_ENV_FILE`` names during tests: a path that never exists, so no ``.env`` is read."""


def hermetic_environment() -> None:
    """Drop the shell's ``DRIFTLOOP_*`` variables and point the dotenv file nowhere (also for children)."""
    for name in [name for name in os.environ if name.startswith("DRIFTLOOP_")]:
        del os.environ[name]
    os.environ[ENV_FILE_VARIABLE] = NO_ENV_FILE


def pytest_configure(config: pytest.Config) -> None:
    hermetic_environment()  # before collection: nothing may build settings from the user's shell
