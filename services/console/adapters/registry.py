"""The registry's HTTP API, called with the viewer's own token: the registry decides what they may see and do.

Reads and writes go through it exactly as the CLI's do, so every action taken in the console is
authorised and audited by the registry under the viewer's name.
"""

from __future__ import annotations

from typing import Any

import httpx

from services.console.errors import Forbidden, NotFound, NotSignedIn, Refused, RegistryUnavailable
from shared.registry_auth import registry_headers

PAGE = 1000


class RegistryClient:
    """A small synchronous client (the console's routes run in a thread pool); one per process."""

    def __init__(
        self, base_url: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, headers=registry_headers(token), **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(
                f"the registry at {self.base_url} does not answer ({type(exc).__name__}); "
                "check DRIFTLOOP_REGISTRY_URL and `driftloop status`"
            ) from exc
        if response.status_code < 400:
            return response.json() if response.content else None
        message = _message(response)
        if response.status_code == 401:
            raise NotSignedIn(message)
        if response.status_code == 403:
            raise Forbidden(message)
        if response.status_code == 404:
            raise NotFound(message)
        if response.status_code >= 500:
            raise RegistryUnavailable(f"the registry answered {response.status_code}: {message}")
        raise Refused(message)

    def whoami(self, token: str) -> dict[str, str]:
        return dict(self._call("GET", "/whoami", token))

    def models(self, token: str) -> list[dict[str, Any]]:
        return self._pages("/models", token)

    def model(self, name: str, token: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/models/{_quote(name)}", token))

    def versions(self, name: str, token: str) -> list[dict[str, Any]]:
        return self._pages(f"/models/{_quote(name)}/versions", token)

    def version(self, name: str, version: int, token: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/models/{_quote(name)}/versions/{version}", token))

    def history(self, name: str, token: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/models/{_quote(name)}/history", token))

    def audit(self, name: str, token: str, limit: int = 50) -> list[dict[str, Any]]:
        return list(self._call("GET", "/audit", token, params={"model": name, "limit": limit})["items"])

    def reference_profile(self, name: str, version: int, token: str) -> dict[str, Any] | None:
        try:
            return dict(
                self._call("GET", f"/models/{_quote(name)}/versions/{version}/reference-profile", token)
            )
        except NotFound:
            return None

    def set_alias(self, name: str, alias: str, version: int, reason: str, token: str) -> dict[str, Any]:
        body = {"version": version, "reason": reason}
        return dict(self._call("PUT", f"/models/{_quote(name)}/aliases/{_quote(alias)}", token, json=body))

    def rollback(self, name: str, alias: str, reason: str, token: str) -> dict[str, Any]:
        path = f"/models/{_quote(name)}/aliases/{_quote(alias)}/rollback"
        return dict(self._call("POST", path, token, json={"reason": reason}))

    def _pages(self, path: str, token: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": PAGE}
        while True:
            page = self._call("GET", path, token, params=params)
            items += page["items"]
            if not page.get("next_page_token"):
                return items
            params["page_token"] = page["next_page_token"]


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or response.text[:300])
    except ValueError:
        return response.text[:300] or f"HTTP {response.status_code}"
