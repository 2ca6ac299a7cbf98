"""The local tooling: the ``driftloop`` command, the demo, the benchmarks, the local stack and the embedded
ClickHouse server. It may import ``services`` and ``shared``; nothing there imports it."""
