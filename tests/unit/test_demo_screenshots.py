"""The demo without chromium or a display: it says why and carries on, never fails or grabs the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.demo import run, screenshots


def test_screenshots_are_skipped_with_the_reason_when_chromium_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(screenshots.shutil, "which", lambda name: None)
    said: list[str] = []
    assert screenshots.console_screenshots("http://127.0.0.1:1", "m", tmp_path, said.append) == []
    assert said and "chromium is not installed" in said[0] and "apt-get install chromium" in said[0]
    assert list(tmp_path.iterdir()) == []


def test_open_without_a_display_prints_the_url_instead_of_starting_a_text_browser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(run.sys, "platform", "linux")
    opened: list[str] = []
    monkeypatch.setattr(run.webbrowser, "open", lambda url: opened.append(url) or True)
    said: list[str] = []
    run._open_browser("http://127.0.0.1:8300", said.append)
    assert opened == [] and "open http://127.0.0.1:8300 in a browser" in said[0]
