"""Pure ingest logic (data in, data out): validation, data-quality counts, schema lookups, bodies, routing."""
