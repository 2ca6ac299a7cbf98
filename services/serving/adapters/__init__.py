"""The model server's outside systems: the registry over HTTP and the artifact store (fetch, verify, unpickle)."""
