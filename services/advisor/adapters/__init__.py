"""The advisor's outside systems: Kafka (lag, workers, publishing), ClickHouse (parts, advice rows), monitor /health."""
