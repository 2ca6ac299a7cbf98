"""How ingest is driven: the HTTP API (``http``) and the stream validator's Kafka loop (``stream``)."""
