"""Schemathesis over the model server's own OpenAPI: no 5xx for any body, every answer one the spec declares.

In process (ASGI) around a real :class:`ModelServer` serving a small scikit-learn pipeline trained here,
from a fake registry and the file artifact store; no Kafka (the watcher is off). The server has no
credentials of its own, so the run goes without them; one with a stray ``Authorization`` header checks
that nothing changes.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext, positive_data_acceptance
from schemathesis.core.transport import Response

from services.serving.bootstrap import bootstrap
from services.serving.entrypoints.http import create_app
from shared.settings import Settings
from tests.unit.serving_fakes import OneVersionRegistry, serve_churn

# Built at import only to publish its OpenAPI (no I/O); the fixture below stores and loads the model.
registry = OneVersionRegistry()
server = bootstrap(Settings(), model_name="churn", registry=registry, watch=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(server))


@pytest.fixture(scope="module", autouse=True)
def served_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    serve_churn(server, registry, tmp_path_factory.mktemp("serving"))


def schema_valid_requests_are_served(ctx: CheckContext, response: Response, case: schemathesis.Case) -> None:
    """positive_data_acceptance, but the request schema can't say which features this model needs.

    A schema-valid body may lack a required feature or carry one of the wrong type for the model's feature
    schema: that 422 (code ``invalid``, naming the feature) passes; FastAPI's own validation 422 does not.
    """
    if response.status_code == 422 and case.meta is not None and case.meta.generation.mode.is_positive:
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["field"].startswith("features"), response.text
        return
    positive_data_acceptance(ctx, response, case)


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_model_server_api_keeps_its_contract(case: schemathesis.Case) -> None:
    for headers in ({}, {"Authorization": "Bearer anything"}):  # no credentials, and a stray one
        case.call_and_validate(
            headers=headers,
            excluded_checks=[positive_data_acceptance],
            additional_checks=[schema_valid_requests_are_served],
        )
