"""MLflow's search filter strings (``name = 'churn' AND tags.team = 'risk'``) as Driftloop search arguments.

Only what the registry can answer with one indexed query is accepted; anything else is refused naming the
clause, so a client never gets a silently wider result than it asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.registry.errors import Invalid

RESERVED_TAG_PREFIX = "mlflow."
"""Version tags the MLflow API keeps for itself (source, run id, logged model id); hidden from MLflow tags."""
SOURCE_TAG = "mlflow.source"
RUN_ID_TAG = "mlflow.run_id"
MODEL_ID_TAG = "mlflow.model_id"

_CLAUSE = re.compile(
    r"""\s*(?P<key>tags?\.`[^`]+`|tags?\."[^"]+"|tags?\.[A-Za-z0-9_.\-]+|`[^`]+`|[A-Za-z_]+)\s*
    (?P<op>=|!=|ILIKE|LIKE|IN)\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\((?:[^)'"]|'[^']*'|"[^"]*")*\)|-?\d+)\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)
_QUOTED = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)\"""")


@dataclass
class SearchFilter:
    """What a filter string asks for, in the native search's terms (all conditions AND-ed)."""

    name: str | None = None
    name_prefix: str = ""
    tags: list[str] = field(default_factory=list)
    version: int | None = None


def _unquote(value: str) -> str:
    match = _QUOTED.fullmatch(value)
    if match is None:
        raise Invalid(f"expected a quoted string, got {value}", field="filter")
    text = match.group(1) if match.group(1) is not None else match.group(2)
    return re.sub(r"\\(.)", r"\1", text)


def _split_clauses(text: str) -> list[str]:
    """The clauses between top-level ``AND`` (an ``AND`` inside quotes is part of a value)."""
    clauses, start, quote = [], 0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        else:
            match = _AND.match(text, i)
            if match:
                clauses.append(text[start:i])
                start = i = match.end()
                continue
        i += 1
    clauses.append(text[start:])
    return clauses


PROMPT_TAG = "mlflow.prompt.is_prompt"
"""MLflow clients add ``tags.`mlflow.prompt.is_prompt` != 'true'`` to model searches; no Driftloop model is a
prompt, so that clause holds for every model."""


def _like_prefix(value: str) -> str:
    """The literal prefix of a ``LIKE 'prefix%'`` pattern (``\\_`` and ``\\%`` are literal); anything else
    (a wildcard elsewhere) is refused: it cannot be answered from the name index."""
    match = _QUOTED.fullmatch(value)
    raw = (match.group(1) if match.group(1) is not None else match.group(2)) if match else ""
    prefix: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            prefix.append(raw[i + 1])
            i += 2
            continue
        if ch == "%" and i == len(raw) - 1:
            return "".join(prefix)
        if ch in "%_":
            break
        prefix.append(ch)
        i += 1
    raise Invalid(f"only prefix patterns are supported (name LIKE 'churn%'), not {value}", field="filter")


def _tag_key(key: str) -> str:
    raw = key.split(".", 1)[1]
    if raw[:1] in '`"' and raw[-1:] == raw[:1]:
        raw = raw[1:-1]
    if not raw or "=" in raw:
        raise Invalid(f"tag key {raw!r} cannot be searched: it is empty or contains '='", field="filter")
    return raw


def parse_filter(text: str | None, *, versions: bool) -> SearchFilter:
    """``text`` (MLflow's filter syntax) as a :class:`SearchFilter`; :class:`Invalid` names what is unsupported.

    Supported: ``name = '...'``, ``name LIKE 'prefix%'``, ``tags.<key> = '...'`` (also ``tags.`my key```),
    and for versions ``run_id = '...'`` and ``version_number = N``.

    >>> parse_filter("name = 'churn' AND tags.`team` = 'risk'", versions=True)
    SearchFilter(name='churn', name_prefix='', tags=['team=risk'], version=None)
    >>> parse_filter("name LIKE 'churn-%'", versions=False).name_prefix
    'churn-'
    """
    result = SearchFilter()
    if text is None or not text.strip():
        return result
    if len(text) > 10_000:
        raise Invalid("the filter is longer than 10,000 characters", field="filter")
    for clause in _split_clauses(text.strip()):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise Invalid(
                f"cannot parse filter clause {clause.strip()!r}; use e.g. name = 'x', name LIKE 'x%', "
                "tags.k = 'v'" + (", run_id = '...'" if versions else ""),
                field="filter",
            )
        key, op, value = match.group("key"), match.group("op").upper(), match.group("value")
        lowered = key.strip("`").lower()
        if lowered.startswith(("tags.", "tag.")):
            if op == "!=" and _tag_key(key) == PROMPT_TAG and _unquote(value) == "true":
                continue
            if op != "=":
                raise Invalid(f"tags can only be compared with '=', not {op}", field="filter")
            result.tags.append(f"{_tag_key(key)}={_unquote(value)}")
        elif lowered == "name" and op == "=":
            result.name = _unquote(value)
        elif lowered == "name" and op == "LIKE":
            result.name_prefix = _like_prefix(value)
        elif versions and lowered == "run_id" and op == "=":
            result.tags.append(f"{RUN_ID_TAG}={_unquote(value)}")
        elif versions and lowered == "version_number" and op == "=":
            try:
                result.version = int(value.strip("'\""))
            except ValueError:
                raise Invalid(f"version_number must be an integer, not {value}", field="filter") from None
        else:
            raise Invalid(
                f"filter on {key} with {op} is not supported by Driftloop's MLflow API (docs/mlflow.md)",
                field="filter",
            )
    return result
