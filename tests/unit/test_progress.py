"""Feedback while waiting: a jar download and `driftloop up` say what they wait for, on stderr only."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from driftloop.cli.main import app
from driftloop.infra import jars
from driftloop.process import InfraError

FAKE_MVN = """#!/usr/bin/env bash
# prints what Maven prints in batch mode, then copies two jars into -DoutputDirectory
for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac; done
[ -n "${FAIL:-}" ] && { echo "[ERROR] Could not resolve dependencies: boom"; exit 1; }
for i in 1 2 3; do
  echo "[INFO] Downloading from central: https://repo.maven.apache.org/maven2/x/lib$i.jar"
  echo "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/x/lib$i.jar (1.5 MB at 3.0 MB/s)"
done
mkdir -p "$out"
head -c 1500000 /dev/zero > "$out/demo-1.0.jar"
head -c 500000 /dev/zero > "$out/dep.jar"
"""


@pytest.fixture
def fake_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(mvn.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(jars, "PROGRESS_EVERY_S", 0.0)
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    return pom


def _ensure(pom: Path, cache: Path, **kwargs: Any) -> Path:
    return jars.ensure_jars(
        pom, name="demo", version="1.0", marker_jar="demo-1.0.jar", cache_dir=cache, **kwargs
    )


def test_a_download_says_what_it_fetches_how_much_and_how_long(fake_maven: Path, tmp_path: Path) -> None:
    said: list[str] = []
    lib = _ensure(fake_maven, tmp_path / "cache", progress=said.append)
    assert (lib / "demo-1.0.jar").is_file()
    assert said[0] == f"fetching the demo 1.0 jars from Maven Central into {lib} (first start only)"
    assert [line.split(" (")[0] for line in said[1:-1]] == [
        "demo jars: 1 files, 1.5 MB downloaded",
        "demo jars: 2 files, 3.0 MB downloaded",
        "demo jars: 3 files, 4.5 MB downloaded",
    ]
    assert said[-1].startswith("demo jars ready: 2 jars, 2.0 MB in ")
    again: list[str] = []
    assert _ensure(fake_maven, tmp_path / "cache", progress=again.append) == lib
    assert again == [], "a cached copy starts silently"


def test_progress_goes_to_stderr_by_default(
    fake_maven: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ensure(fake_maven, tmp_path / "cache")
    out, err = capsys.readouterr()
    assert out == ""
    assert "fetching the demo 1.0 jars from Maven Central" in err and "demo jars ready" in err
    assert err.splitlines()[0].startswith("[")  # seconds since the wait began


def test_a_failed_download_shows_maven_s_last_lines(
    fake_maven: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(InfraError, match="Could not resolve dependencies: boom"):
        _ensure(fake_maven, tmp_path / "cache", progress=lambda _: None)


def test_up_prints_progress_on_stderr_and_the_status_table_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLOOP_DATA_DIR", str(tmp_path / "data"))
    messages: list[dict[str, object]] = [
        {"progress": "starting kafka at 127.0.0.1:9092"},
        {"progress": "kafka jars: 12 files, 40.1 MB downloaded (5s)"},
        {"line": "kafka      up    127.0.0.1:9092  started in 9.1s"},
        {"progress": "starting registry at http://127.0.0.1:8000"},
        {"line": "registry   up    http://127.0.0.1:8000  started in 2.0s"},
        {"ready": True},
    ]
    lines = iter([json.dumps(m) + "\n" for m in messages])
    monkeypatch.setattr(
        "driftloop.infra.supervisor.launch",
        lambda settings, model: SimpleNamespace(pid=4242, stdout=_Lines(lines)),
    )
    monkeypatch.setattr("driftloop.infra.supervisor.running", lambda settings: None)
    result = CliRunner().invoke(app, ["up"])
    assert result.exit_code == 0, result.output
    stdout, stderr = result.stdout.splitlines(), result.stderr.splitlines()
    assert [line.split()[0] for line in stdout] == ["kafka", "registry", "supervisor", "driftloop"]
    assert stdout[-1].startswith("driftloop is up in ")
    assert [line.split("] ", 1)[1] for line in stderr] == [
        f"starting Driftloop in {tmp_path / 'data'}",
        "starting kafka at 127.0.0.1:9092",
        "kafka jars: 12 files, 40.1 MB downloaded (5s)",
        "starting registry at http://127.0.0.1:8000",
    ]
    assert all(line.startswith("[") and "s] " in line for line in stderr)


class _Lines:
    """A pipe's read end: iterated line by line, then closed."""

    def __init__(self, lines: Any) -> None:
        self._lines = lines

    def __iter__(self) -> Any:
        return self._lines

    def close(self) -> None:
        pass
