"""Routes for the audit log, the caller's identity and webhooks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated

from fastapi import APIRouter, Query, status

from services.registry.adapters.outbound import OutboundRefused
from services.registry.domain import rules
from services.registry.domain.schemas import AuditEntry, Page, WebhookCreate, WebhookDeliveryOut, WebhookOut
from services.registry.entrypoints.deps import Reader, RegistryDep, WebhookId, Writer
from services.registry.entrypoints.openapi import COMMON, errors
from services.registry.errors import Invalid

RESOLVE_TIMEOUT_S = 2.0
"""How long registering a webhook waits for its host name to resolve before leaving it to delivery."""

router = APIRouter(tags=["audit", "webhooks"], responses=errors(*COMMON))


@router.get("/audit", tags=["audit"])
def audit_log(
    registry: RegistryDep,
    _user: Reader,
    model: Annotated[str | None, Query(description="Only writes to this model.")] = None,
    actor: Annotated[str | None, Query(description="Only writes by this token's name.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str | None = None,
) -> Page[AuditEntry]:
    """Every write (who, what, when, before/after), newest first."""
    before_id = None
    if page_token:
        before_id = rules.decode_page_token(page_token)
        if not rules.is_row_id(before_id):
            raise Invalid("page_token is not one this registry issued", field="page_token")
    return registry.store.audit(model_name=model, actor=actor, limit=limit, before_id=before_id)


@router.get("/whoami", tags=["audit"])
def whoami(user: Reader) -> dict[str, str]:
    """Who the caller's token says they are: ``name`` and ``role`` (reader, writer, admin), as the audit log
    would record them; the web console asks it to show write buttons only to writers."""
    return {"name": user.name, "role": user.role_name}


@router.post(
    "/models/{name}/webhooks",
    status_code=status.HTTP_201_CREATED,
    tags=["webhooks"],
    responses=errors(403, 404),
)
def create_webhook(name: str, body: WebhookCreate, registry: RegistryDep, user: Writer) -> WebhookOut:
    """POST this model's events to ``url``, signed ``X-Driftloop-Signature: sha256=HMAC(secret, body)``.

    ``url`` must reach a public address: loopback, link-local, private and the stack's own addresses are
    refused (422) unless DRIFTLOOP_REGISTRY_WEBHOOK_ALLOWED_HOSTS names them; checked again at delivery.
    """
    registry.store.get_model(name)  # 404 before resolving the host
    resolving = ThreadPoolExecutor(max_workers=1)  # a resolver that hangs must not hold the request
    try:
        resolving.submit(registry.outbound.check, str(body.url)).result(timeout=RESOLVE_TIMEOUT_S)
    except OutboundRefused as exc:
        raise Invalid(str(exc), field="url") from None
    except (OSError, UnicodeError, FutureTimeout):
        pass  # does not resolve (yet): every delivery resolves and checks it again
    finally:
        resolving.shutdown(wait=False)
    return registry.store.create_webhook(name, body, user)


@router.get("/models/{name}/webhooks", tags=["webhooks"], responses=errors(403, 404))
def list_webhooks(name: str, registry: RegistryDep, _user: Writer) -> list[WebhookOut]:
    return registry.store.list_webhooks(name)


@router.delete(
    "/models/{name}/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["webhooks"],
    responses=errors(403, 404),
)
def delete_webhook(name: str, webhook_id: WebhookId, registry: RegistryDep, user: Writer) -> None:
    registry.store.delete_webhook(name, webhook_id, user)


@router.get("/models/{name}/webhooks/{webhook_id}/deliveries", tags=["webhooks"], responses=errors(403, 404))
def webhook_deliveries(
    name: str,
    webhook_id: WebhookId,
    registry: RegistryDep,
    _user: Writer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[WebhookDeliveryOut]:
    """Recent deliveries with their attempts and last error, newest first."""
    return registry.store.webhook_deliveries(name, webhook_id, limit)
