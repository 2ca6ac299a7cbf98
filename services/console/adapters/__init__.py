"""The console\x27s adapters: the registry over HTTP, ClickHouse."""
