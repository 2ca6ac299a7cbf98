"""deploy/kafka/acls.sh and docs/ingest.md cannot drift from the topic list: every topic of shared/topics.py
has its rules, apps may write only the public topics, and every internal topic has exactly its writers."""

from __future__ import annotations

import shlex
import subprocess
from collections import defaultdict
from pathlib import Path

from shared.topics import topic_names

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "kafka" / "acls.sh"
PREFIX = "acme-"
TOPICS = topic_names(PREFIX)
PUBLIC = {TOPICS.predictions_raw, TOPICS.labels_raw}
INTERNAL_WRITERS = {
    TOPICS.predictions: {"User:ingest"},
    TOPICS.labels: {"User:ingest"},
    TOPICS.data_quality: {"User:ingest"},
    TOPICS.dead_letter: {"User:ingest", "User:monitor", "User:trainer"},
    TOPICS.drift_events: {"User:monitor"},
    TOPICS.training_runs: {"User:trainer", "User:operator"},
    TOPICS.model_events: {"User:registry"},
    TOPICS.scale_advice: {"User:advisor"},
}


def _rules() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Who may write and who may read each topic, from the commands the script runs (printed, not run)."""
    out = subprocess.run(
        ["bash", str(SCRIPT)],
        env={"DRY_RUN": "1", "PREFIX": PREFIX, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    writers: dict[str, set[str]] = defaultdict(set)
    readers: dict[str, set[str]] = defaultdict(set)
    for line in out.splitlines():
        args = shlex.split(line)
        assert args[0] == "kafka-acls.sh" and "--add" in args, line
        if "--topic" not in args:
            continue
        who = args[args.index("--allow-principal") + 1]
        operations = {args[i + 1] for i, a in enumerate(args) if a == "--operation"}
        for topic in (args[i + 1] for i, a in enumerate(args) if a == "--topic"):
            if "Write" in operations:
                writers[topic].add(who)
            if "Read" in operations:
                readers[topic].add(who)
    return writers, readers


def test_every_topic_has_writers_and_readers_in_the_acls() -> None:
    writers, readers = _rules()
    for topic in TOPICS.all():
        assert writers[topic] and readers[topic], (
            f"{topic} has no ACL in {SCRIPT}; add its writers and readers"
        )
    assert set(writers) | set(readers) <= set(TOPICS.all()), "the script names a topic shared/topics.py lacks"


def test_apps_write_only_public_topics_and_internal_topics_only_their_services() -> None:
    writers, _ = _rules()
    assert set(INTERNAL_WRITERS) | PUBLIC == set(TOPICS.all()), "a new topic: is it public or internal?"
    for topic in PUBLIC:
        assert "User:apps" in writers[topic]
    for topic, owners in INTERNAL_WRITERS.items():
        assert writers[topic] == owners, topic


def test_the_docs_name_every_topic_as_public_or_internal() -> None:
    text = (ROOT / "docs" / "ingest.md").read_text()
    section = text.split("## Public and internal topics", 1)[1].split("\n## ", 1)[0]
    public, internal = section.split("**Internal topics**", 1)
    for topic in topic_names("").all():
        kind = public if PREFIX + topic in PUBLIC else internal
        assert f"`{topic}`" in kind, f"docs/ingest.md does not list {topic} where it belongs"
