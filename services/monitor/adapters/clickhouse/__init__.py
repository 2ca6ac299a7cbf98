"""The monitor's ClickHouse adapter: the sink, the table schema, window and checkpoint readers, the analytics views."""
