"""``driftloop models list|show|register|set|promote|rollback|history``: the registry from a terminal.

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

from driftloop.cli.errors import exit_unreachable
from shared.feature_schema import FeatureSchema
from shared.settings import Settings

app = typer.Typer(help="Registered models: versions, aliases, history.", no_args_is_help=True)


def _client(settings: Settings) -> httpx.Client:
    from shared.onboard_registry import registry_client

    return registry_client(settings)


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
    data: Path | None = typer.Option(
        None,
        help="Training file (CSV or Parquet): schema, reference profile and recipe are inferred from it.",
    ),
    target: str | None = typer.Option(None, help="The label column of --data."),
    promote: bool = typer.Option(False, help="Point production at the new version."),
    metrics: str | None = typer.Option(None, help="JSON, e.g. '{\"auc\": 0.91}'; overrides measured ones."),
    params: str | None = typer.Option(None, help="JSON of training parameters."),
    description: str = typer.Option("", help="What changed in this version."),
    create: bool = typer.Option(
        False, help="Create the model first if it does not exist (implied by --data)."
    ),
) -> None:
    """Register a new version of NAME; prints its number. With --data and --target, the loop can watch it."""
    from shared.onboarding import blind_spots, register_fix  # pandas: only for the commands that need it

    parsed = {key: _json_option(value, key) for key, value in (("metrics", metrics), ("params", params))}
    if data is not None or target is not None:
        _register_with_data(name, artifact, data, target, promote, parsed, description)
        return
    if create and _request("GET", f"/models/{name}").status_code == 404:
        _call("POST", "/models", json={"name": name})
    meta: dict[str, Any] = {"description": description}
    meta.update({key: value for key, value in parsed.items() if value is not None})
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
    schema = FeatureSchema.model_validate(_call("GET", f"/models/{name}")["feature_schema"])
    _warn_blind(
        f"{name} version {version['version']}",
        blind_spots(schema, has_profile=False, fix=""),
        register_fix(name, artifact),
    )
    if promote:
        promote_version(name, int(version["version"]), reason="registered with --promote")


def _warn_blind(what: str, problems: list[str], fix: str) -> None:
    """The loud block on stderr when the loop cannot watch ``what``: each problem, then the fix once."""
    if not problems:
        return
    typer.echo(f"WARNING: the loop is blind to {what}:", err=True)
    for problem in problems:
        typer.echo(f"WARNING:   {problem}", err=True)
    typer.echo(f"WARNING: {fix}", err=True)


def _register_with_data(
    name: str,
    artifact: str,
    data: Path | None,
    target: str | None,
    promote: bool,
    parsed: dict[str, Any],
    description: str,
) -> None:
    import joblib

    from shared.importance import importance_shares
    from shared.mlflow_model import is_mlflow_model, load_estimator
    from shared.onboard_registry import RegistryRefused, read_data, register_model
    from shared.onboarding import OnboardingError

    if data is None or target is None:
        typer.echo("--data and --target go together: pass --data TRAIN_FILE --target COLUMN", err=True)
        raise typer.Exit(2)
    path = Path(artifact)
    if not path.is_file():
        typer.echo(f"--data needs the model as a local file; {artifact} is not one", err=True)
        raise typer.Exit(2)
    settings = Settings()
    try:
        content = path.read_bytes()  # a joblib pickle, or an MLflow model zip (docs/mlflow.md)
        model = load_estimator(content) if is_mlflow_model(content) else joblib.load(path)
        frame = read_data(data)
        with _client(settings) as http:
            result = register_model(
                name,
                model,
                data=frame,
                target=target,
                artifact=content,
                metrics=parsed["metrics"],
                params=parsed["params"],
                description=description,
                promote=promote,
                registry=http,
                warn=lambda w: typer.echo(f"WARNING: {w}", err=True),
            )
    except httpx.TransportError as exc:
        exit_unreachable("registry", settings.registry_url, exc, REGISTRY_HINT)
    except (OnboardingError, RegistryRefused) as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # an unreadable model or data file is the user's to fix, in one line
        typer.echo(f"cannot read {path} or {data}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"registered {name} version {result.version} (sha256 {result.artifact_sha256[:12]}…): "
        f"{result.features} features, reference profile of {result.profile_rows} rows, "
        f"predictions are {result.output_type}"
    )
    if result.feature_importance:
        shares = importance_shares(result.feature_importance)
        top = sorted(shares.items(), key=lambda item: -item[1])[:5]
        listed = ", ".join(f"{feature} {share:.0%}" for feature, share in top)
        typer.echo(f"feature importance (share, on the data given): {listed or 'none above zero'}")
    if result.alias:
        typer.echo(f"{name}@{result.alias} → version {result.version}")


@app.command("set")
def set_entry(
    name: str,
    schema: Path | None = typer.Option(None, help='JSON file: the feature schema ({"features": [...]}).'),
    recipe: Path | None = typer.Option(None, help="JSON file: the training recipe (docs/trainer.md)."),
    thresholds: Path | None = typer.Option(None, help="JSON file: drift thresholds (docs/monitor.md)."),
) -> None:
    """Change the feature schema, training recipe and/or drift thresholds of NAME."""
    from shared.onboard_registry import RegistryRefused, set_model
    from shared.onboarding import OnboardingError, blind_spots

    loaded: dict[str, Any] = {}
    for key, file in (("schema", schema), ("recipe", recipe), ("thresholds", thresholds)):
        if file is None:
            continue
        try:
            loaded[key] = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            typer.echo(f"--{key} {file}: not a readable JSON file ({exc})", err=True)
            raise typer.Exit(2) from None
    settings = Settings()
    try:
        with _client(settings) as http:
            model = set_model(name, registry=http, **loaded)
    except httpx.TransportError as exc:
        exit_unreachable("registry", settings.registry_url, exc, REGISTRY_HINT)
    except (OnboardingError, RegistryRefused) as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"updated {name}: {', '.join(sorted(loaded))}")
    _warn_blind(
        name,
        blind_spots(FeatureSchema.model_validate(model["feature_schema"]), has_profile=True, fix=""),
        f"fix: driftloop models set {name} --schema SCHEMA_FILE, or register a version with "
        "--data TRAIN_FILE --target COLUMN",
    )


@app.command("promote")
def promote(
    name: str,
    version: int,
    alias: str = typer.Option("production", help="Alias to point at VERSION."),
    reason: str = typer.Option("", help="Kept in the alias history."),
) -> None:
    """Point ALIAS (default production) of NAME at VERSION; servers swap to it."""
    promote_version(name, version, alias, reason)


def promote_version(name: str, version: int, alias: str = "production", reason: str = "") -> None:
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
