"""Session fixtures: the real local servers, started once on free ports (see tests/fixtures/).

Tests are hermetic: before anything is collected, every ``DRIFTLOOP_*`` variable of the shell that ran
pytest is removed, settings read no ``.env`` (``DRIFTLOOP_ENV_FILE`` points at a file that does not
exist) and the default data folder is a fresh temporary one instead of the checkout's ``.driftloop`` (whose
local admin token, written by a developer's ``driftloop up``, would otherwise be picked up). So a
developer's configuration never changes a test's outcome. Child processes the tests start inherit this
clean environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


HERMETIC = {ENV_FILE_VARIABLE, "DRIFTLOOP_DATA_DIR"}
"""The only ``DRIFTLOOP_*`` variables a test session sees: set by :func:`hermetic_environment`."""


def hermetic_environment() -> Path:
    """Drop the shell's ``DRIFTLOOP_*`` variables, point the dotenv file nowhere and the default data folder
    at a new temporary one (also for children); returns that folder."""
    for name in [name for name in os.environ if name.startswith("DRIFTLOOP_")]:
        del os.environ[name]
    os.environ[ENV_FILE_VARIABLE] = NO_ENV_FILE
    data_dir = Path(tempfile.mkdtemp(prefix="driftloop-tests-"))
    os.environ["DRIFTLOOP_DATA_DIR"] = str(data_dir)
    return data_dir


def pytest_configure(config: pytest.Config) -> None:
    # before collection: nothing may build settings from the user's shell
    config.stash[_DATA_DIR] = hermetic_environment()


def pytest_unconfigure(config: pytest.Config) -> None:
    data_dir = config.stash.get(_DATA_DIR, None)
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)


_DATA_DIR = pytest.StashKey[Path]()
