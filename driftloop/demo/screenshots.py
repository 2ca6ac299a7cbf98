"""Screenshots of the web console's pages, taken by ``driftloop demo`` with Debian's headless chromium.

Playwright (the ``[dev]`` extra) drives the chromium on the PATH, which ``deploy/bootstrap.sh`` installs; it
never downloads a browser. Without either, the demo says why and goes on without screenshots.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

PAGES = (
    ("console-models.png", "/"),
    ("console-model.png", "/models/{model}"),
    ("console-drift.png", "/models/{model}/drift"),
    ("console-training.png", "/models/{model}/training"),
    ("console-dead-letters.png", "/dead-letters"),
)


def why_not() -> str | None:
    """Why screenshots cannot be taken here, or None when they can."""
    if shutil.which("chromium") is None:
        return "chromium is not installed (deploy/bootstrap.sh installs Debian's as root: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]', or make setup)"
    return None


def console_screenshots(
    console_url: str, model: str, out_dir: Path, echo: Callable[[str], None], token: str = ""
) -> list[Path]:
    """One full-page PNG per console page in ``out_dir``; none (with the reason echoed) when it cannot."""
    reason = why_not()
    if reason is not None:
        echo(f"console screenshots skipped: {reason}")
        return []
    from playwright.sync_api import Error, sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                if token:
                    page.goto(f"{console_url}/login")
                    page.fill("input[name=token]", token)
                    page.click("button[type=submit]")
                for name, path in PAGES:
                    page.goto(console_url + path.format(model=model), wait_until="load")
                    page.screenshot(path=str(out_dir / name), full_page=True)
                    written.append(out_dir / name)
            finally:
                browser.close()
    except Error as exc:  # a chromium that cannot start here (no sandbox support, missing libraries)
        echo(f"console screenshots skipped: chromium failed: {str(exc).splitlines()[0]}")
    return written
