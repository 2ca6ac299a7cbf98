"""Ingest's outside systems: Kafka (acknowledged writes), the registry (schemas), Prometheus (metrics)."""
