"""One module (or package) per outside system the monitor talks to: ClickHouse, Kafka, the registry, Prometheus."""
