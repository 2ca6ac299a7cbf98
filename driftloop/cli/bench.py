"""``driftloop bench ...``: benchmarks that print figures and end with one JSON line."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks: each prints figures and ends with one JSON line.", no_args_is_help=True)


@app.command("events")
def events(n: int = typer.Option(200_000, help="Events to round-trip.")) -> None:
    """Prediction events encoded + decoded + validated per second on one core."""
    from driftloop.bench.events import main

    main(n)


@app.command("clickhouse")
def clickhouse(
    rows: int = typer.Option(1_000_000, help="Rows to insert."),
    queries: int = typer.Option(500, help="Small queries to time."),
) -> None:
    """Rows/s of a clickhouse-connect insert and queries/s through the configured ClickHouse server."""
    from driftloop.bench.clickhouse import main

    main(rows, queries)


@app.command("ingest")
def ingest(
    n: int = typer.Option(200_000, help="Predictions to log through the SDK."),
    http_n: int = typer.Option(200_000, help="Predictions to POST to the HTTP batch endpoint."),
    batch_size: int = typer.Option(5000, help="Events per HTTP batch."),
    clients: int = typer.Option(2, help="Concurrent HTTP clients."),
) -> None:
    """SDK events/s into Kafka and HTTP batch events/s (validated and acknowledged)."""
    from driftloop.bench.ingest import main

    main(n, http_n, batch_size, clients)


@app.command("registry")
def registry(
    versions: int = typer.Option(10_000, help="Versions to register (and search over)."),
    requests: int = typer.Option(5_000, help="Requests per read benchmark."),
    clients: int = typer.Option(2, help="Concurrent client processes for the read benchmarks."),
    workers: int = typer.Option(1, help="Registry server processes (DRIFTLOOP_REGISTRY_WORKERS)."),
    mlflow_versions: int = typer.Option(2_000, help="Versions registered through the MLflow API (0: none)."),
    rounds: int = typer.Option(3, help="Rounds of each read, alternating with its MLflow twin."),
) -> None:
    """Registry requests/s and p50/p99: register, resolve alias, get version, search over many versions,
    natively and through the MLflow-compatible API."""
    from driftloop.bench.registry import main

    main(versions, requests, clients, workers, mlflow_versions, rounds)


@app.command("monitor")
def monitor(
    events: int = typer.Option(200_000, help="Stationary events (half as many more carry a known change)."),
    features: int | None = typer.Option(
        None, help="Features per event (default 20; 40 with --workers, about 950-byte records)."
    ),
    workers: str | None = typer.Option(
        None,
        help="Worker counts to compare, e.g. 1,2: events/s of that many worker processes on the same "
        "backlog, beside the broker's own ceiling measured with Kafka's perf tools (replaces the other figures).",
    ),
    partitions: int = typer.Option(6, help="With --workers: partitions of the events topic."),
    ceiling_records: int = typer.Option(
        200_000, help="Records the broker's perf tools send for Kafka's own ceiling."
    ),
) -> None:
    """Monitor events/s from Kafka to ClickHouse, rows-queryable latency, detection delay, false alarms,
    and its share of Kafka's own consume ceiling for the same events.

    With ``--workers 1,2``: events/s per worker count and their share of the broker's consume ceiling.
    """
    if workers is None:
        from driftloop.bench.monitor import main

        main(events, features or 20, ceiling_records)
        return
    from driftloop.bench.monitor_scale import main as scale_main

    try:
        counts = [int(n) for n in workers.split(",") if n.strip()]
    except ValueError:
        raise typer.BadParameter(
            "a comma-separated list of worker counts, e.g. 1,2", param_hint="--workers"
        ) from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("worker counts are 1 or more", param_hint="--workers")
    if max(counts) > partitions:
        raise typer.BadParameter(
            f"{max(counts)} workers need as many partitions; raise --partitions (now {partitions})",
            param_hint="--workers",
        )
    scale_main(counts, events, features or 40, partitions, ceiling_records=ceiling_records)


@app.command("swap")
def swap(
    promotions: int = typer.Option(200, help="Alias moves to time at each relay interval."),
    interval: list[float] = typer.Option(
        [0.5, 0.1], "--interval", help="Registry relay interval in seconds; repeat for several."
    ),
) -> None:
    """Seconds from an alias move to the first prediction by the new version, per registry relay interval."""
    from driftloop.bench.swap import main

    main(promotions, interval)


@app.command("trainer")
def trainer(rows: int = typer.Option(50_000, help="Labelled rows in the training window.")) -> None:
    """Seconds from a drift event to a promoted, announced version, and the run's cost record."""
    from driftloop.bench.trainer import main

    main(rows)


@app.command("faults")
def faults(
    rate: float = typer.Option(500.0, help="Predictions per second (each also gets a label)."),
    broker_outage: float = typer.Option(30.0, help="Seconds the Kafka broker is stopped."),
    clickhouse_outage: float = typer.Option(600.0, help="Seconds the ClickHouse server is stopped."),
) -> None:
    """Steady traffic through `driftloop up` while every service and server is killed or stopped in turn."""
    from driftloop.bench.faults import main

    main(rate, broker_outage, clickhouse_outage)


@app.command("scale")
def scale(
    calibrate_events: int = typer.Option(
        400_000,
        help="Events of the burst that measures one worker's drain rate; long enough a backlog for the "
        "advisor to see it drained over several readings.",
    ),
    steady_s: float = typer.Option(
        90.0, help="Seconds of steady traffic at 40% of one worker (false advice)."
    ),
    ramp_s: float = typer.Option(240.0, help="Seconds of the ramp from 40% to 180% of one worker."),
    hold_s: float = typer.Option(45.0, help="Seconds each worker count is held at the ramp's final rate."),
    ceiling_records: int = typer.Option(
        200_000, help="Records Kafka's perf tools produce and consume for the broker's ceiling."
    ),
) -> None:
    """The scaling advisor over the real stack: advice lead before the SLO breaks, advised vs needed workers,
    false advice on a steady stream, and one worker's share of the broker's consume ceiling."""
    from driftloop.bench.scale import main

    main(calibrate_events, steady_s, ramp_s, hold_s, ceiling_records=ceiling_records)


@app.command("drift")
def drift(repeat: int = typer.Option(5, help="Runs per case; the median is printed.")) -> None:
    """Milliseconds to judge a window (20 numeric, 15+5 mixed; reference 1k/100k; window 10k/100k) and to
    build a profile from 100k reference rows."""
    from driftloop.bench.drift import main

    main(repeat)


@app.command("estimate")
def estimate(
    windows: int = typer.Option(30, help="One-minute windows of the covariate and concept streams."),
    stationary_windows: int = typer.Option(60, help="One-minute windows of the stationary stream."),
) -> None:
    """Performance estimated without labels (CBPE) through a real monitor: error against the realized
    accuracy, lead over the labels-based alert, false alarms; concept shift shown as its blind spot."""
    from driftloop.bench.estimate import main

    main(windows, stationary_windows)


@app.command("console")
def console(
    versions: int = typer.Option(1000, help="Versions of the model (each registered through the registry)."),
    windows: int = typer.Option(10_000, help="Monitor windows of the model (60 s apart)."),
    repeats: int = typer.Option(5, help="Loads of each page; the median and worst are printed."),
) -> None:
    """Seconds to load each web console page of a model with 1,000 versions and 10,000 windows."""
    from driftloop.bench.console import main

    main(versions, windows, repeats)


@app.command("sdk-monitor")
def sdk_monitor(
    events: int = typer.Option(300_000, help="Predictions the app logs through the SDK."),
    features: int = typer.Option(20, help="Features per event (a fifth categorical)."),
    models: int = typer.Option(4, help="Models the events are spread over."),
) -> None:
    """Events/s end to end with the app and the monitor on one machine: SDK, validator, one monitor worker
    and ClickHouse at once, from the first log call to the last row stored."""
    from driftloop.bench.sdk_monitor import main

    main(events, features, models)
