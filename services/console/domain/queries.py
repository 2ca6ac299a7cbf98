"""The console's ClickHouse queries, word for word the named queries of docs/analytics.md.

Every number a page shows comes from one of these (or from the registry's API), so a user can get it
with ``driftloop sql``; ``tests/unit/test_console_pages.py`` checks each text is on that page.
"""

from __future__ import annotations

QUANTILE_LEVELS = 20
"""Window quantiles for the ECDF plot: 0, 0.05, ..., 1."""

WINDOW_SUMMARY = """\
-- name: window_summary
SELECT
    model_name,
    model_version,
    window_start,
    window_end,
    sumIf(value, metric = 'count') AS predictions,
    if(countIf(metric = 'accuracy') > 0, anyIf(value, metric = 'accuracy'), NULL) AS accuracy,
    if(countIf(metric = 'estimated_accuracy') > 0, anyIf(value, metric = 'estimated_accuracy'), NULL)
        AS estimated_accuracy,
    sumIf(value, metric = 'labelled') AS labelled
FROM window_metrics FINAL
WHERE ({model:String} = '' OR model_name = {model:String}) AND feature = ''
  AND window_start >= {start:DateTime64(3, 'UTC')} AND window_start < {end:DateTime64(3, 'UTC')}
GROUP BY model_name, model_version, window_start, window_end
ORDER BY model_name, window_start, model_version
"""

LAST_DRIFT_ANNOUNCEMENT = """\
-- name: last_drift_announcement
SELECT
    model_name,
    argMax(event_type, occurred_at) AS event_type,
    argMax(model_version, occurred_at) AS model_version,
    argMax(kinds, occurred_at) AS kinds,
    max(occurred_at) AS announced_at
FROM drift_events FINAL
GROUP BY model_name
ORDER BY model_name
"""

DRIFT_EVENTS = """\
-- name: drift_events_of_model
SELECT
    event_id, event_type, model_version, occurred_at, window_start, window_end, kinds, severity,
    drifted_features
FROM drift_events FINAL
WHERE model_name = {model:String}
  AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}
ORDER BY occurred_at DESC
LIMIT 200
"""

DRIFT_EVENT_EVIDENCE = """\
-- name: drift_event_evidence
SELECT
    event_type, model_version, window_start, window_end, feature, test, statistic, p_value, effect_size,
    threshold, reference_size, current_size, drifted
FROM drift_evidence
WHERE model_name = {model:String} AND event_id = {event_id:UUID}
ORDER BY feature
"""

WINDOW_FEATURE_BINS = """\
-- name: window_feature_bins
SELECT
    arrayCount(edge -> edge <= num_features[{feature:String}], {edges:Array(Float64)}) AS bin,
    count() AS values
FROM predictions FINAL
WHERE model_name = {model:String} AND model_version = {version:String}
  AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}
  AND mapContains(num_features, {feature:String})
GROUP BY bin
ORDER BY bin
"""

WINDOW_FEATURE_QUANTILES = """\
-- name: window_feature_quantiles
SELECT
    quantiles(0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
              0.9, 0.95, 1)(num_features[{feature:String}]) AS quantiles,
    count() AS values
FROM predictions FINAL
WHERE model_name = {model:String} AND model_version = {version:String}
  AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}
  AND mapContains(num_features, {feature:String})
"""

WINDOW_CATEGORY_COUNTS = """\
-- name: window_category_counts
SELECT cat_features[{feature:String}] AS category, count() AS values
FROM predictions FINAL
WHERE model_name = {model:String} AND model_version = {version:String}
  AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}
  AND mapContains(cat_features, {feature:String})
GROUP BY category
ORDER BY values DESC, category
LIMIT 50
"""

TRAINING_RUNS = """\
-- name: training_runs_of_model
SELECT
    run_id, status, reason, trigger_event_id, model_version, promoted, metric, challenger_score,
    champion_score, started_at, finished_at, wall_s, cpu_s, peak_memory_mb, rows, bytes_read,
    artifact_bytes, detail
FROM training_runs FINAL
WHERE model_name = {model:String}
ORDER BY started_at DESC
LIMIT 100
"""

DEAD_LETTERS_BY_PERIOD = """\
-- name: dead_letters_by_period
SELECT toStartOfFiveMinutes(occurred_at) AS period, reason, count() AS dead_letters
FROM dead_letters FINAL
WHERE occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}
GROUP BY period, reason
ORDER BY period, reason
"""

DEAD_LETTER_SAMPLES = """\
-- name: dead_letter_samples
SELECT occurred_at, model_name, source, reason, detail, original
FROM dead_letters FINAL
WHERE occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}
ORDER BY occurred_at DESC
LIMIT 20
"""

ALL = (
    WINDOW_SUMMARY,
    LAST_DRIFT_ANNOUNCEMENT,
    DRIFT_EVENTS,
    DRIFT_EVENT_EVIDENCE,
    WINDOW_FEATURE_BINS,
    WINDOW_FEATURE_QUANTILES,
    WINDOW_CATEGORY_COUNTS,
    TRAINING_RUNS,
    DEAD_LETTERS_BY_PERIOD,
    DEAD_LETTER_SAMPLES,
)
