"""The one line a CLI command prints when a service it needs does not answer (and exit code 1)."""

from __future__ import annotations

from typing import NoReturn

import typer


def unreachable(service: str, address: str, exc: BaseException, hint: str) -> str:
    """Which service, where, why and what to do, in one line.

    >>> unreachable("registry", "http://127.0.0.1:8000", ConnectionRefusedError("refused"), "run X")
    'error: cannot reach the registry at http://127.0.0.1:8000 (refused); run X'
    """
    reason = (str(exc).strip().splitlines() or [""])[0][:200] or type(exc).__name__
    return f"error: cannot reach the {service} at {address} ({reason}); {hint}"


def exit_unreachable(service: str, address: str, exc: BaseException, hint: str) -> NoReturn:
    typer.echo(unreachable(service, address, exc, hint), err=True)
    raise typer.Exit(1)
