"""Session fixtures: the real local servers, started once on free ports (see tests/fixtures/)."""

pytest_plugins = [
    "tests.fixtures.clickhouse",
    "tests.fixtures.kafka",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
]
