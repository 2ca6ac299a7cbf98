-- name: accuracy_from_labels
SELECT
    model_version,
    toDate(predicted_at) AS day,
    count() AS labelled,
    avg(correct) AS accuracy
FROM labelled_predictions
WHERE model_name = {model:String}
  AND predicted_at >= {start:DateTime64(3, 'UTC')} AND predicted_at < {end:DateTime64(3, 'UTC')}
GROUP BY model_version, day
ORDER BY day, model_version
