"""How a model server is driven: the HTTP API (``http``) and the model-events watcher (``stream``)."""
