-- Predictions and the share labelled, per model and version
SELECT
    p.model_name,
    p.model_version,
    count() AS predictions,
    countIf(l.prediction_id != '') / count() AS labelled_share
FROM predictions AS p FINAL
LEFT JOIN (SELECT DISTINCT model_name, prediction_id FROM labels FINAL) AS l
    ON l.model_name = p.model_name AND l.prediction_id = p.prediction_id
GROUP BY p.model_name, p.model_version
ORDER BY p.model_name, p.model_version
