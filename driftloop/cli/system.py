"""``driftloop up|down|status|logs|run``: the whole system on one machine, or one service against any servers.

``up`` starts the local infrastructure (only what is local and not running) and then every service as its
own background process; ``run`` is how a single service runs on a machine of a cluster, in the foreground.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from driftloop.infra import supervisor
from driftloop.infra.progress import on_stderr
from driftloop.infra.services import (
    ServiceSpec,
    Supervisor,
    find_service,
    log_tail,
    log_tail_note,
    service_table,
)
from driftloop.infra.stack import Component, LocalStack, local_stack, locked, status_line
from driftloop.process import InfraError, die_with_parent
from shared.settings import Settings

app = typer.Typer(
    help="Start, stop and inspect the whole Driftloop system.", no_args_is_help=True, add_completion=False
)

MODEL_OPTION = typer.Option(
    None, "--model", help="Model the model server serves (default: DRIFTLOOP_SERVING_MODEL or 'demo')."
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _supervisor(settings: Settings, model: str | None = None) -> Supervisor:
    start_timeout = settings.service_start_timeout_s
    return Supervisor(settings, service_table(settings, model), start_timeout=start_timeout)


def _needs_s3(settings: Settings) -> bool:
    return settings.resolved_artifact_root.startswith("s3://")


@app.command()
def up(model: str | None = MODEL_OPTION) -> None:
    """Start the infrastructure and every service in the background, each healthy before the next, and a
    supervisor that restarts any of them that crashes.

    What already runs is left as it is, so a second `up` is harmless. When a service cannot start, the
    error names it and shows its log, and everything this call started is stopped again.
    """
    settings = Settings()
    with locked(settings.data_dir.resolve() / "supervisor.lock"):  # a second `up` waits, then sees it up
        _up(settings, model)


def _up(settings: Settings, model: str | None) -> None:
    if (record := supervisor.running(settings)) is not None:
        _echo_status(settings, already=True)
        typer.echo(f"driftloop is already up and supervised (supervisor pid {record.pid})")
        if model is not None and (note := other_model_note(served_model(settings), model)):
            typer.echo(note, err=True)
        return
    began = time.monotonic()
    say = on_stderr(began)  # what it waits for, with the seconds so far; the status table stays on stdout
    say(f"starting Driftloop in {settings.data_dir.resolve()}")
    proc = supervisor.launch(settings, model)
    assert proc.stdout is not None
    outcome: dict[str, object] = {}
    try:
        for raw in proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:  # something the supervisor runs printed: pass it on
                message = {"line": raw.rstrip("\n")}
            if "progress" in message:
                say(str(message["progress"]))
            elif "line" in message:
                typer.echo(message["line"])  # the part that is ready, with the seconds it took
            else:
                outcome = message
                break
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)  # the supervisor stops what it started, as `up` always did
        proc.communicate(timeout=180)
        outcome = {"error": "interrupted; stopped what this `up` started"}
    proc.stdout.close()
    if not outcome.get("ready"):
        proc.wait(timeout=180)
        supervisor.stop(settings)
        error = (
            outcome.get("error") or f"the supervisor exited{log_tail_note(_log_path(settings, 'supervisor'))}"
        )
        raise _fail(str(error))
    log = _log_path(settings, "supervisor")
    typer.echo(status_line("supervisor", True, "", "started; restarts crashed services", proc.pid, log))
    typer.echo(
        f"driftloop is up in {time.monotonic() - began:.1f}s (data in {settings.data_dir.resolve()}); "
        "`driftloop down` stops it"
    )


@app.command()
def down() -> None:
    """Stop the supervisor, then the services (SIGTERM: each flushes what it buffers), then the infrastructure."""
    settings = Settings()
    try:
        record = supervisor.stop(settings)
        if record is not None:
            typer.echo(status_line("supervisor", False, "", f"stopped (pid {record.pid})"))
        for status in _supervisor(settings).down():
            typer.echo(status.line())
        for infra in LocalStack(settings).down(list(Component)):
            typer.echo(infra.line())
    except InfraError as exc:
        raise _fail(str(exc)) from exc


def _echo_status(settings: Settings, already: bool = False) -> None:
    """Each component and service with what the supervisor knows of its restarts, then the supervisor."""
    restarts = supervisor.SupervisorState(settings.data_dir.resolve()).load()

    def note(name: str, up: bool, text: str) -> str:
        if already and up:
            text = "already running"
        summary = restarts[name].summary() if name in restarts else ""
        return f"{text}; {summary}" if summary else text

    for infra in LocalStack(settings).status(list(Component)):
        typer.echo(replace(infra, note=note(infra.component.value, infra.up, infra.note)).line())
    any_up = False
    for service in _supervisor(settings).status():
        any_up |= service.up
        typer.echo(replace(service, note=note(service.name, service.up, service.note)).line())
        if service.name == "monitor" and service.up:
            typer.echo(monitor_share(service.address))
        if service.name == "advisor" and service.up:
            typer.echo(scale_advice(service.address))
    record = supervisor.running(settings)
    text = "restarts crashed services" if record else "not running"
    if record is None and any_up:
        text += ": a crashed service stays down; `driftloop up` starts a supervisor"
    log = _log_path(settings, "supervisor")
    typer.echo(status_line("supervisor", record is not None, "", text, record.pid if record else None, log))


def served_model(settings: Settings) -> str | None:
    """The model the local model server serves, from its ``/status``; None when it does not answer."""
    url = f"http://127.0.0.1:{settings.serving_port}/status"
    try:
        name = json.loads(urllib.request.urlopen(url, timeout=3).read()).get("model_name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def other_model_note(serving: str | None, wanted: str) -> str | None:
    """What to do when ``up --model`` finds the system up with a model server for another model.

    >>> print(other_model_note("demo", "churn"))
    note: the model server serves 'demo', not 'churn'; to serve churn: `driftloop down`, then `driftloop up --model churn`
    >>> other_model_note("churn", "churn") is None and other_model_note(None, "churn") is None
    True
    """
    if serving is None or serving == wanted:
        return None
    return (
        f"note: the model server serves {serving!r}, not {wanted!r}; "
        f"to serve {wanted}: `driftloop down`, then `driftloop up --model {wanted}`"
    )


def monitor_share(address: str) -> str:
    """What a monitor worker owns (its partitions and the models it judges), or what it waits for."""
    try:
        body = json.loads(urllib.request.urlopen(f"{address}/health", timeout=3).read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return "           (its /health did not answer)"
    if body.get("waiting_for"):
        return "           waiting for " + ", ".join(sorted(body["waiting_for"]))
    partitions = [p.rsplit("-", 1)[-1] for p in body.get("partitions", []) if "labels" not in p]
    models = body.get("models", [])
    shown = ", ".join(models[:10]) + (f" and {len(models) - 10} more" if len(models) > 10 else "")
    return f"           owns partitions {', '.join(partitions) or 'none'}; judges {len(models)} models" + (
        f": {shown}" if models else ""
    )


def scale_advice(address: str) -> str:
    """The scaling advisor's current advice, one line each (docs/adr/0007-scaling-advisor.md)."""
    try:
        body = json.loads(urllib.request.urlopen(f"{address}/advice", timeout=3).read())
    except (OSError, ValueError):
        return "           (its /advice did not answer)"
    advice = body.get("advice") or []
    lines = [f"           advice: {a.get('message', a)}" for a in advice] or [
        "           no scaling advice: the trends hold the SLO with the workers there are"
    ]
    http = body.get("http") or {}
    if http:
        lines.append(
            "           http: " + "; ".join(http_line(name, seen) for name, seen in sorted(http.items()))
        )
    return "\n".join(lines)


def http_line(name: str, seen: dict[str, Any]) -> str:
    """``ingest 200 req/s, p99 4.1 ms, 0 5xx/s`` or ``registry unreachable``.

    >>> http_line("ingest", {"requests_per_s": 200.0, "errors_per_s": 0.0, "p99_ms": 4.1})
    'ingest 200 req/s, p99 4.1 ms, 0 5xx/s'
    """
    if seen.get("unreachable"):
        return f"{name} unreachable"
    p99 = seen.get("p99_ms")
    latency = f"p99 {p99:g} ms" if p99 is not None else "no requests"
    return f"{name} {seen.get('requests_per_s', 0):g} req/s, {latency}, {seen.get('errors_per_s', 0):g} 5xx/s"


@app.command()
def status() -> None:
    """Print each infrastructure component and service (up or down, address, pid, log file, restarts and
    the last exit reason), then whether the supervisor runs."""
    _echo_status(Settings())


def _log_path(settings: Settings, name: str) -> Path:
    names = [spec.name for spec in service_table(settings)] + [c.value for c in Component] + ["supervisor"]
    if name not in names:
        raise _fail(f"unknown service {name!r}; choose one of {', '.join(names)}")
    return settings.data_dir.resolve() / "logs" / f"{name}.log"


@app.command()
def logs(
    service: str = typer.Argument(
        ..., help="registry, ingest, monitor, trainer, serving, kafka, clickhouse, s3, supervisor"
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until Ctrl-C."),
    lines: int = typer.Option(0, "--lines", "-n", help="Print only the last N lines (0: all)."),
) -> None:
    """Print (or follow) the log file of a service or infrastructure component."""
    path = _log_path(Settings(), service)
    if not path.exists() and not follow:
        raise _fail(f"no log for {service} yet at {path}; start it with `driftloop up`")
    for line in log_tail(path, lines):
        typer.echo(line)
    if not follow:
        return
    offset = path.stat().st_size if path.exists() else 0
    try:
        while True:
            if path.exists():
                if path.stat().st_size < offset:  # truncated or replaced: start over
                    offset = 0
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                if chunk:
                    offset += len(chunk)
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


def _run_foreground(spec: ServiceSpec, extra: list[str]) -> int:
    """Run the service with the terminal as its output; SIGINT/SIGTERM are passed on once, for a clean stop.

    The service in its own session gets the signal once (from us, not also from the terminal), so uvicorn
    and the monitor shut down gracefully instead of taking a second Ctrl-C as "force quit". When this
    launcher dies any other way (SIGKILL included) the kernel sends the service SIGTERM, so a killed
    `driftloop run` never leaves an orphan that a restarted launcher would run a second copy of.
    """
    proc = subprocess.Popen([*spec.argv, *extra], start_new_session=True, preexec_fn=die_with_parent())
    forwarded: set[int] = set()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            forwarded.add(signum)
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code < 0 and -code in forwarded:
        return 0  # stopped as asked (uvicorn re-raises the signal after its graceful shutdown)
    return code if code >= 0 else 128 - code  # killed by something else: the shell's convention


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    service: str = typer.Argument(
        ..., help="registry, ingest, monitor, trainer, serving, advisor or console"
    ),
    model: str | None = MODEL_OPTION,
) -> None:
    """Run one service in the foreground with the settings as they are (external servers on other machines).

    Local infrastructure the service needs that is not running is started for the run and stopped after;
    extra arguments go to the service (e.g. `driftloop run monitor --web-port 6067`).
    """
    settings = Settings()
    try:
        spec = find_service(service_table(settings, model), service)
    except InfraError as exc:
        raise _fail(str(exc)) from exc
    if not spec.installed:
        raise _fail(f"{spec.name} is not installed in this checkout ({spec.module} has no __main__)")
    try:
        with local_stack(settings, components=spec.needs):
            code = _run_foreground(spec, list(ctx.args))
    except InfraError as exc:
        raise _fail(f"cannot run {spec.name}: {exc}") from exc
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
