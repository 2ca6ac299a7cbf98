"""How the monitor is driven: the Kafka loop (``stream``) and its health and metrics over HTTP (``http``)."""
