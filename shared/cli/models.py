"""``driftloop models list|show|register|promote|rollback|history``: the registry from a terminal.

Talks to the registry over HTTP (``DRIFTLOOP_REGISTRY_URL``, token ``DRIFTLOOP_REGISTRY_TOKEN``, or the local
admin token `driftloop up` wrote for a loopback registry); every error the registry returns is printed with
the field it names, a registry that does not answer is one line, and the command exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer

from shared.cli.errors import exit_unreachable
from shared.settings import Settings

app = typer.Typer(help="Registered models: versions, aliases, history.", no_args_is_help=True)


def _client(settings: Settings) -> httpx.Client:
    token = settings.registry_token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=settings.registry_url.rstrip("/"), headers=headers, timeout=60)


def _fail(response: httpx.Response) -> NoReturn:
    try:
        error = response.json()["error"]
        field = f" (field: {error['field']})" if error.get("field") else ""
        typer.echo(f"error {response.status_code}: {error['message']}{field}", err=True)
    except (ValueError, KeyError, TypeError):
        typer.echo(f"error {response.status_code}: {response.text[:500]}", err=True)
    raise typer.Exit(1)


REGISTRY_HINT = "start it with `driftloop up`, or check DRIFTLOOP_REGISTRY_URL"


def _request(method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the registry; a registry that does not answer is one line and exit code 1."""
    settings = Settings()
    try:
        with _client(settings) as http:
            return http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        exit_unreachable("registry", settings.registry_url, exc, REGISTRY_HINT)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    response = _request(method, path, **kwargs)
    if response.status_code >= 400:
        _fail(response)
    return response.json() if response.content else None


def _json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        typer.echo(f"--{name} must be JSON, e.g. '{{\"auc\": 0.91}}'", err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_models(
    prefix: str = typer.Option("", help="Only names starting with this."),
    tag: list[str] = typer.Option([], help="key=value or key; repeat to AND."),
    limit: int = typer.Option(100, help="Most models to show."),
) -> None:
    """Registered models with their latest version and aliases."""
    page = _call("GET", "/models", params={"name_prefix": prefix, "tag": tag, "limit": limit})
    for model in page["items"]:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(model["aliases"].items())) or "-"
        typer.echo(f"{model['name']:40s} latest {model['latest_version']:>5}   {aliases}")
    if page["next_page_token"]:
        typer.echo("... more: raise --limit or narrow --prefix")


@app.command("show")
def show(
    name: str,
    version: int | None = typer.Option(None, help="Show this version instead of the model."),
) -> None:
    """A model (or one version) as JSON."""
    path = f"/models/{name}" if version is None else f"/models/{name}/versions/{version}"
    typer.echo(json.dumps(_call("GET", path), indent=2))


@app.command("register")
def register(
    name: str,
    artifact: str = typer.Argument(
        ..., help="A local file to upload, or a file:// or s3:// URI to reference."
    ),
    metrics: str | None = typer.Option(None, help="JSON, e.g. '{\"auc\": 0.91}'."),
    params: str | None = typer.Option(None, help="JSON of training parameters."),
    description: str = typer.Option("", help="What changed in this version."),
    create: bool = typer.Option(False, help="Create the model first if it does not exist."),
) -> None:
    """Register a new version of NAME; prints its number."""
    if create and _request("GET", f"/models/{name}").status_code == 404:
        _call("POST", "/models", json={"name": name})
    meta: dict[str, Any] = {"description": description}
    for key, value in (("metrics", metrics), ("params", params)):
        parsed = _json_option(value, key)
        if parsed is not None:
            meta[key] = parsed
    path = Path(artifact)
    if path.is_file():
        with path.open("rb") as f:
            version = _call(
                "POST",
                f"/models/{name}/versions/upload",
                files={"artifact": (path.name, f, "application/octet-stream")},
                data={"metadata": json.dumps(meta)},
            )
    elif "://" in artifact:
        version = _call("POST", f"/models/{name}/versions", json={**meta, "artifact_uri": artifact})
    else:
        typer.echo(f"{artifact} is neither a file nor a URI", err=True)
        raise typer.Exit(2)
    typer.echo(f"registered {name} version {version['version']} (sha256 {version['artifact_sha256'][:12]}…)")


@app.command("promote")
def promote(
    name: str,
    version: int,
    alias: str = typer.Option("production", help="Alias to point at VERSION."),
    reason: str = typer.Option("", help="Kept in the alias history."),
) -> None:
    """Point ALIAS (default production) of NAME at VERSION; servers swap to it."""
    result = _call("PUT", f"/models/{name}/aliases/{alias}", json={"version": version, "reason": reason})
    typer.echo(f"{name}@{alias} → version {result['version']}")


@app.command("rollback")
def rollback(
    name: str,
    alias: str = typer.Option("production", help="Alias to move back."),
    reason: str = typer.Option("", help="Kept in the alias history."),
) -> None:
    """Move ALIAS back to the version it pointed at before."""
    result = _call("POST", f"/models/{name}/aliases/{alias}/rollback", json={"reason": reason})
    typer.echo(f"{name}@{alias} rolled back to version {result['version']}")


@app.command("history")
def history(
    name: str,
    alias: str = typer.Option("production", help="Alias whose moves to show."),
    at: str | None = typer.Option(None, help="ISO time: only say which version the alias pointed at then."),
) -> None:
    """Every move of ALIAS, oldest first; or, with --at, the version it pointed at at that time."""
    if at is not None:
        found = _call("GET", f"/models/{name}/aliases/{alias}/at", params={"time": at})
        typer.echo(
            f"{name}@{alias} at {found['at']}: "
            + (f"version {found['version']}" if found["version"] else "none")
        )
        return
    for move in _call("GET", f"/models/{name}/aliases/{alias}/history"):
        to = move["version"] if move["version"] is not None else "-"
        note = f"  ({move['reason']})" if move["reason"] else ""
        typer.echo(
            f"{move['changed_at']}  {move['action']:12s} {move['previous_version'] or '-'!s:>5} → {to!s:<5}"
            f" by {move['changed_by']}{note}"
        )
