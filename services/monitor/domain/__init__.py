"""Pure modules of the monitor: data in, data out; no broker, database or HTTP client."""
