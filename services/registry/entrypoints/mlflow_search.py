"""MLflow's version search, its page built by the database (each ``ModelVersion`` written by
``adapters/version_json.mlflow_version_json``, as the native search writes ``VersionOut``'s): no Python
object per version. Used by the route and, for a GET the cache has not seen, by the resolve middleware
before the framework (fast_resolve.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.registry.domain.mlflow_filter import parse_filter
from services.registry.domain.mlflow_mapping import version_json
from services.registry.entrypoints.mlflow_common import check_order_by, max_results, optional
from services.registry.errors import Invalid, NotFound
from services.registry.service import Registry


def search_page(registry: Registry, params: dict[str, Any]) -> bytes:
    """MLflow's answer to a version search with ``params``, as JSON; raises what the caller must be told."""
    check_order_by(params)
    wanted = parse_filter(optional(params, "filter"), versions=True)
    if wanted.version is not None:
        if wanted.name is None:
            raise Invalid("version_number needs name = '...' in the same filter", field="filter")
        try:
            found = registry.store.get_version(wanted.name, wanted.version)
        except NotFound:
            return msgspec.json.encode({"model_versions": []})
        tags = dict(t.split("=", 1) for t in wanted.tags)
        matches = all(found.tags.get(k) == v for k, v in tags.items())
        return msgspec.json.encode({"model_versions": [version_json(found)] if matches else []})
    try:
        items, token = registry.store.search_versions_items(
            name=wanted.name,
            name_prefix=wanted.name_prefix,
            tags=wanted.tags,
            limit=max_results(params, default=1000),
            page_token=optional(params, "page_token"),
            mlflow=True,
        )
    except NotFound:
        if wanted.name is None:
            raise
        return msgspec.json.encode({"model_versions": []})  # MLflow's answer for a model that does not exist
    page = b'{"model_versions":[' + items + b"]"
    if token:
        page += b',"next_page_token":' + msgspec.json.encode(token)
    return page + b"}"
