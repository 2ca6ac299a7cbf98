"""Java servers from Maven Central: fetch the jars a ``deploy/*/pom.xml`` names once into the user's cache.

The cache lives outside the repo (``<cache_dir>/<name>-<version>/lib``) so every checkout and test run shares
one download; a marker holding the pom's hash makes an edited pom re-resolve, and a file lock lets parallel
test sessions wait for one Maven run instead of racing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from driftloop.infra.progress import Progress, megabytes, on_stderr
from driftloop.process import InfraError

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


_DOWNLOADED = re.compile(
    r"Downloaded from (?P<repo>\S+): (?P<url>\S+) \((?P<size>[\d.]+) (?P<unit>B|kB|MB|GB)"
)
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
MAVEN_TIMEOUT_S = 900.0
PROGRESS_EVERY_S = 5.0


@dataclass
class Downloads:
    """What Maven said it downloaded so far: files and bytes (from its ``Downloaded from ...`` lines).

    >>> d = Downloads()
    >>> d.read("[INFO] Downloaded from central: https://repo/x/kafka_2.13-3.9.0.jar (6.4 MB at 9.1 MB/s)")
    True
    >>> d.read("[INFO] Downloading from central: https://repo/x/y.pom"), d.files, d.size
    (False, 1, 6400000.0)
    """

    files: int = 0
    size: float = 0.0

    def read(self, line: str) -> bool:
        """Count ``line`` if it reports a finished download; True when it did."""
        match = _DOWNLOADED.search(line)
        if match is None:
            return False
        self.files += 1
        self.size += float(match["size"]) * _UNITS[match["unit"]]
        return True


def _run_maven(argv: list[str], name: str, say: Progress) -> tuple[int, list[str]]:
    """Run Maven, telling ``say`` every few seconds how much it downloaded; (exit code, its last lines)."""
    began = time.monotonic()
    downloads = Downloads()
    tail: list[str] = []
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )
    timer = threading.Timer(MAVEN_TIMEOUT_S, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        last = began
        for line in proc.stdout:
            tail = [*tail[-29:], line.rstrip("\n")]
            if downloads.read(line) and time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                say(
                    f"{name} jars: {downloads.files} files, {megabytes(downloads.size)} downloaded "
                    f"({last - began:.0f}s)"
                )
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0 and time.monotonic() - began >= MAVEN_TIMEOUT_S:
        raise InfraError(
            f"Maven did not finish fetching the {name} jars within {MAVEN_TIMEOUT_S / 60:.0f} minutes"
        )
    return code, tail


def _folder_size(folder: Path) -> tuple[int, int]:
    jars = [p for p in folder.iterdir() if p.suffix == ".jar"]
    return len(jars), sum(p.stat().st_size for p in jars)


def ensure_jars(
    pom: Path,
    *,
    name: str,
    version: str,
    marker_jar: str,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """The folder holding every runtime jar ``pom`` resolves to; runs Maven only when the cache is stale.

    ``marker_jar`` is a jar that must be in the folder (the server's own), a cheap check that the copy is
    whole; ``name`` names the cache folder and the error messages. A download (the first start only, about
    40 s) is told to ``progress`` (stderr by default): its start, what Maven fetched every few seconds, and
    the size and seconds it took.
    """
    if not pom.is_file():
        raise InfraError(f"{name} pom not found at {pom}; is Driftloop installed from its repository?")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    root = (cache_dir or default_cache_dir()).expanduser().resolve() / f"{name}-{version}"
    lib = root / "lib"
    if _cache_complete(lib, digest, marker_jar):
        return lib
    require_tool("mvn", f"fetching the {name} jars into {lib}")
    say = progress or on_stderr()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process fetching the {name} {version} jars into {lib}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _cache_complete(lib, digest, marker_jar):  # another process finished while we waited
            return lib
        staging = root / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        argv = [
            "mvn", "-B", "-Dstyle.color=never", "-f", str(pom),
            "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        began = time.monotonic()
        say(f"fetching the {name} {version} jars from Maven Central into {lib} (first start only)")
        code, tail = _run_maven(argv, name, say)
        if code != 0 or not (staging / marker_jar).is_file():
            lines = "\n".join(tail)
            raise InfraError(f"Maven could not fetch the {name} jars ({' '.join(argv)}):\n{lines}")
        (staging / _COMPLETE_MARKER).write_text(digest + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        count, size = _folder_size(lib)
        say(f"{name} jars ready: {count} jars, {megabytes(size)} in {time.monotonic() - began:.1f}s")
    return lib
