"""ClickHouse views over the monitor's tables that make the analytics queries (docs/analytics.md) short.

Plain views, not materialized ones: a materialized view only sees rows inserted after it exists and counts a
replayed batch twice, while these read the deduplicated tables (``FINAL``) every time. ``window_metrics`` is
already the pre-aggregated table for dashboards. ``CREATE OR REPLACE`` (views hold no data), so a new release's
definition replaces the old one when a worker starts. Create them after the tables they read.
"""

from __future__ import annotations


def drift_evidence_ddl(view: str = "drift_evidence", events: str = "drift_events") -> str:
    """One row per drift announcement and test behind it; a recovery (no evidence) keeps one row of NULLs."""
    return f"""
    CREATE OR REPLACE VIEW {view} AS
    SELECT
        event_id, event_type, model_name, model_version, occurred_at, window_start, window_end, kinds,
        severity, drifted_features,
        if(e = '', NULL, JSONExtractString(e, 'feature')) AS feature,
        if(e = '', NULL, JSONExtractString(e, 'test')) AS test,
        if(e = '', NULL, JSONExtract(e, 'statistic', 'Float64')) AS statistic,
        JSONExtract(e, 'p_value', 'Nullable(Float64)') AS p_value,
        if(e = '', NULL, JSONExtract(e, 'threshold', 'Float64')) AS threshold,
        JSONExtract(e, 'effect_size', 'Nullable(Float64)') AS effect_size,
        if(e = '', NULL, JSONExtract(e, 'reference_size', 'UInt64')) AS reference_size,
        if(e = '', NULL, JSONExtract(e, 'current_size', 'UInt64')) AS current_size,
        if(e = '', NULL, JSONExtractBool(e, 'drifted')) AS drifted
    FROM {events} FINAL
    LEFT ARRAY JOIN JSONExtractArrayRaw(evidence) AS e
    """


def labelled_predictions_ddl(
    view: str = "labelled_predictions", predictions: str = "predictions", labels: str = "labels"
) -> str:
    """Each prediction that has ground truth, with its label and how long the label took.

    As the monitor judges them: the latest label wins (a correction replaces it), and the delay runs
    from the prediction to the first label, when the truth became known.
    """
    return f"""
    CREATE OR REPLACE VIEW {view} AS
    SELECT
        p.model_name AS model_name,
        p.model_version AS model_version,
        p.prediction_id AS prediction_id,
        p.occurred_at AS predicted_at,
        l.labelled_at AS labelled_at,
        dateDiff('millisecond', p.occurred_at, l.labelled_at) / 1000.0 AS label_delay_s,
        p.prediction AS prediction,
        l.label AS label,
        toUInt8(p.prediction = l.label) AS correct
    FROM {predictions} AS p FINAL
    INNER JOIN (
        SELECT model_name, prediction_id, argMax(label, ingested_at) AS label, min(occurred_at) AS labelled_at
        FROM {labels} FINAL
        GROUP BY model_name, prediction_id
    ) AS l ON p.model_name = l.model_name AND p.prediction_id = l.prediction_id
    """


def alias_history_ddl(view: str = "alias_history", events: str = "model_events") -> str:
    """Which version each alias pointed at, from when until when (``valid_to`` NULL: still does).

    ``version`` is NULL while the alias was deleted.
    """
    return f"""
    CREATE OR REPLACE VIEW {view} AS
    SELECT
        model_name, alias, version, action, previous_version, actor,
        occurred_at AS valid_from,
        nullIf(
            leadInFrame(occurred_at, 1, toDateTime64(0, 3, 'UTC')) OVER (
                PARTITION BY model_name, alias ORDER BY occurred_at, event_id
                ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING
            ),
            toDateTime64(0, 3, 'UTC')
        ) AS valid_to
    FROM {events} FINAL
    WHERE event_type = 'alias_changed'
    """


ESTIMATED = ("accuracy", "f1", "roc_auc", "mae", "rmse")
"""The metrics the monitor estimates before labels (``estimated_<metric>``) and realizes once they arrive."""


def estimation_error_ddl(view: str = "estimation_error", metrics: str = "window_metrics") -> str:
    """Each window's estimated metric beside the realized one; ``realized`` and ``abs_error`` NULL until
    the window's labels were judged. One scan grouped by window and metric, no join."""
    names = ", ".join(f"'{m}', 'estimated_{m}'" for m in ESTIMATED)
    return f"""
    CREATE OR REPLACE VIEW {view} AS
    SELECT model_name, model_version, window_start, window_end, base AS metric, estimated, realized,
        abs(estimated - realized) AS abs_error
    FROM (
        SELECT
            model_name, model_version, window_start, max(window_end) AS window_end,
            replaceOne(metric, 'estimated_', '') AS base,
            anyIf(value, startsWith(metric, 'estimated_')) AS estimated,
            if(countIf(NOT startsWith(metric, 'estimated_')) > 0,
               toNullable(anyIf(value, NOT startsWith(metric, 'estimated_'))), NULL) AS realized
        FROM {metrics} FINAL
        WHERE metric IN ({names})
        GROUP BY model_name, model_version, window_start, base
        HAVING countIf(startsWith(metric, 'estimated_')) > 0
    )
    """


def views_ddl() -> list[str]:
    """Every analytics view, in dependency order; run after the monitor's tables exist."""
    return [drift_evidence_ddl(), labelled_predictions_ddl(), alias_history_ddl(), estimation_error_ddl()]
