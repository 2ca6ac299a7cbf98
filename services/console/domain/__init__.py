"""Pure logic of the console: health, charts, pages; data in, HTML out, no I/O."""
