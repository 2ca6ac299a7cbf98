"""Java servers from Maven Central: fetch the jars a ``deploy/*/pom.xml`` names once into the user's cache.

The cache lives outside the repo (``<cache_dir>/<name>-<version>/lib``) so every checkout and test run shares
one download; a marker holding the pom's hash makes an edited pom re-resolve, and a file lock lets parallel
test sessions wait for one Maven run instead of racing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from driftloop.infra.process import InfraError

_COMPLETE_MARKER = ".complete"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def default_cache_dir() -> Path:
    """``$DRIFTLOOP_CACHE_DIR``, else the XDG user cache; survives ``rm -rf .driftloop``."""
    configured = os.environ.get("DRIFTLOOP_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driftloop"


def pom_property(pom: Path, name: str) -> str:
    """A ``<properties>`` value of ``pom``, so Python never repeats a version the pom pins."""
    value = ET.parse(pom).getroot().findtext(f"m:properties/m:{name}", namespaces=_POM_NS)
    if not value or not value.strip():
        raise InfraError(f"{pom} does not set <{name}>")
    return value.strip()


def require_tool(tool: str, why: str) -> None:
    """Fail with an install hint when ``tool`` is not on PATH."""
    if shutil.which(tool) is None:
        hints = {
            "java": "a JDK/JRE 17+ (e.g. apt-get install openjdk-17-jre-headless)",
            "mvn": "Maven 3.6+ (e.g. apt-get install maven)",
        }
        raise InfraError(f"{why} needs `{tool}` on PATH and it is missing; install {hints.get(tool, tool)}")


def _cache_complete(lib: Path, digest: str, marker_jar: str) -> bool:
    marker = lib / _COMPLETE_MARKER
    return marker.is_file() and marker.read_text().strip() == digest and (lib / marker_jar).is_file()


def ensure_jars(
    pom: Path, *, name: str, version: str, marker_jar: str, cache_dir: Path | None = None
) -> Path:
    """The folder holding every runtime jar ``pom`` resolves to; runs Maven only when the cache is stale.

    ``marker_jar`` is a jar that must be in the folder (the server's own), a cheap check that the copy is
    whole; ``name`` names the cache folder and the error messages.
    """
    if not pom.is_file():
        raise InfraError(f"{name} pom not found at {pom}; is Driftloop installed from its repository?")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    root = (cache_dir or default_cache_dir()).expanduser().resolve() / f"{name}-{version}"
    lib = root / "lib"
    if _cache_complete(lib, digest, marker_jar):
        return lib
    require_tool("mvn", f"fetching the {name} jars into {lib}")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _cache_complete(lib, digest, marker_jar):  # another process finished while we waited
            return lib
        staging = root / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        argv = [
            "mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
            "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            raise InfraError(f"Maven did not finish fetching the {name} jars within 15 minutes") from exc
        if done.returncode != 0 or not (staging / marker_jar).is_file():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise InfraError(f"Maven could not fetch the {name} jars ({' '.join(argv)}):\n{tail}")
        (staging / _COMPLETE_MARKER).write_text(digest + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
    return lib
