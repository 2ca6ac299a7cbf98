"""The test session sees none of the shell's ``DRIFTLOOP_*`` variables and no ``.env``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import ENV_FILE_VARIABLE, Settings
from tests.conftest import HERMETIC, NO_ENV_FILE


def test_no_driftloop_variable_of_the_shell_is_visible_in_the_session() -> None:
    visible = {name for name in os.environ if name.startswith("DRIFTLOOP_")}
    assert visible == HERMETIC == {ENV_FILE_VARIABLE, "DRIFTLOOP_DATA_DIR"}
    assert os.environ[ENV_FILE_VARIABLE] == NO_ENV_FILE and not Path(NO_ENV_FILE).exists()
    checkout = Path(__file__).resolve().parents[2]
    data_dir = Settings().data_dir.resolve()
    assert checkout not in data_dir.parents, "a developer's .driftloop (and its local token) is never read"
    assert Settings().local_token() is None


def test_a_child_process_builds_default_settings_despite_a_dotenv_in_its_folder(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DRIFTLOOP_KAFKA_PARTITIONS=7\nDRIFTLOOP_TOPIC_PREFIX=zz-\n")
    code = "from shared.settings import Settings; s = Settings(); print(s.kafka_partitions, repr(s.topic_prefix))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["3", "''"]


def test_the_env_file_variable_names_the_dotenv_settings_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / "team.env"
    dotenv.write_text("DRIFTLOOP_KAFKA_PARTITIONS=5\n")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(dotenv))
    assert Settings().kafka_partitions == 5
