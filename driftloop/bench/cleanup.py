"""What a benchmark run leaves behind is removed when it ends.

Left behind, every past run's tables and topic partitions cost the servers background CPU: after about 90
runs the idle ClickHouse server used 7-11% of a core (0.2% on a clean data folder), and later runs measured
that too.
"""

from __future__ import annotations

import sys

from shared.settings import Settings


def clean_up(settings: Settings, *, database: bool = True) -> None:
    """Delete the run's topics (``settings.topic_prefix``) and, with ``database``, drop its database.

    Runs in a ``finally``: a failure here is reported, not raised, so it never hides why the run failed.
    """
    from shared.clickhouse import clickhouse_client
    from shared.kafka.admin import delete_topics
    from shared.topics import topic_names

    try:
        delete_topics(settings.kafka_bootstrap, topic_names(settings.topic_prefix).all())
        if database:
            admin = clickhouse_client(settings, database="default", create_database=False)
            try:
                admin.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse_database}`")
            finally:
                admin.close()
    except Exception as exc:
        left = f"topics {settings.topic_prefix}*" + (
            f" and database {settings.clickhouse_database}" if database else ""
        )
        print(f"warning: could not remove the run's {left}: {exc}", file=sys.stderr)
