"""MLflow's version search, built from the native search's JSON page (what the database writes).

The page's items are decoded, not validated again (the database wrote them from validated rows) and
mapped to MLflow's ``ModelVersion`` messages: no ``VersionOut`` object per version. Used by the route and,
for a GET the cache has not seen, by the resolve middleware before the framework (fast_resolve.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.registry.domain.mlflow_filter import parse_filter
from services.registry.domain.mlflow_mapping import version_json, version_json_of_item
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
        page = registry.store.search_versions_json(
            name=wanted.name,
            name_prefix=wanted.name_prefix,
            tags=wanted.tags,
            limit=max_results(params, default=1000),
            page_token=optional(params, "page_token"),
        )
    except NotFound:
        if wanted.name is None:
            raise
        return msgspec.json.encode({"model_versions": []})  # MLflow's answer for a model that does not exist
    native = msgspec.json.decode(page)
    result: dict[str, Any] = {"model_versions": [version_json_of_item(item) for item in native["items"]]}
    if native["next_page_token"]:
        result["next_page_token"] = native["next_page_token"]
    return msgspec.json.encode(result)
