"""The console's web app: server-rendered pages, the sign-in form and the two actions.

Reads follow the registry's read policy: each page asks the registry with the viewer's token (kept in an
HttpOnly, SameSite=Strict cookie; Secure off loopback). Actions need a writer token and a CSRF token in
the form, and are made through the registry's API, so they are authorised and audited there.
"""

from __future__ import annotations

import secrets
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from services.console.domain import pages
from services.console.domain.session import NONCE_COOKIE, TOKEN_COOKIE, Viewer, csrf_valid
from services.console.errors import (
    ConsoleError,
    Forbidden,
    NotFound,
    NotSignedIn,
    Refused,
    RegistryUnavailable,
)
from services.console.service import Console

SECURITY_HEADERS = {
    # inline style attributes colour the legends; scripts only from the console itself
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
COOKIE_DAYS = 7


def _safe_next(target: str) -> str:
    """Only a path of this site: never another host (``//evil``, ``https://...``).

    >>> _safe_next("/models/churn"), _safe_next("//evil.example"), _safe_next("https://x")
    ('/models/churn', '/', '/')
    """
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


async def viewer(request: Request) -> Viewer:
    """The viewer behind the request's cookie, as the registry knows them (anonymous without one)."""
    console: Console = request.app.state.console
    token = request.cookies.get(TOKEN_COOKIE, "")
    nonce = request.cookies.get(NONCE_COOKIE, "")
    return await run_in_threadpool(console.viewer, token, nonce)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def create_app(console: Console, *, secure_cookies: bool = False) -> FastAPI:
    app = FastAPI(title="Driftloop console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def html(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return html(pages.login_page(str(exc)), 401)

    def _page_error(title: str, status: int) -> Any:
        async def handle(request: Request, exc: ConsoleError) -> Response:
            anonymous = Viewer("?", "?")
            return html(pages.error_page(title, str(exc), anonymous), status)

        return handle

    app.add_exception_handler(Forbidden, _page_error("Not allowed", 403))
    app.add_exception_handler(NotFound, _page_error("Not found", 404))
    app.add_exception_handler(Refused, _page_error("Refused by the registry", 409))
    app.add_exception_handler(RegistryUnavailable, _page_error("Registry unavailable", 503))
    app.add_exception_handler(ConsoleError, _page_error("Console error", 500))

    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "console"})

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        body = files("services.console").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})

    @app.get("/login", response_class=HTMLResponse)
    def login_form(next: str = "/") -> HTMLResponse:
        return html(pages.login_page(next_url=_safe_next(next)))

    @app.post("/login")
    def login(token: Annotated[str, Form(max_length=4096)], next: Annotated[str, Form()] = "/") -> Response:
        token = token.strip()
        try:
            who = console.viewer(token, "")
        except (NotSignedIn, Forbidden) as exc:
            return html(
                pages.login_page(f"The registry does not accept that token: {exc}", _safe_next(next)), 401
            )
        response = RedirectResponse(_safe_next(next), status_code=303)
        for cookie, value in ((TOKEN_COOKIE, token), (NONCE_COOKIE, secrets.token_urlsafe(24))):
            response.set_cookie(
                cookie,
                value,
                max_age=COOKIE_DAYS * 86400,
                httponly=True,
                samesite="strict",
                secure=secure_cookies,
                path="/",
            )
        response.headers["X-Signed-In-As"] = f"{who.name}:{who.role}"
        return response

    def _check_csrf(request: Request, given: str) -> None:
        if not csrf_valid(
            request.cookies.get(TOKEN_COOKIE, ""), request.cookies.get(NONCE_COOKIE, ""), given
        ):
            raise Forbidden(
                "this form is stale or did not come from the console (CSRF check): reload the page"
            )

    @app.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        _check_csrf(request, csrf)
        response = RedirectResponse("/login", status_code=303)
        for cookie in (TOKEN_COOKIE, NONCE_COOKIE):
            response.delete_cookie(cookie, path="/", httponly=True, samesite="strict", secure=secure_cookies)
        return response

    @app.get("/", response_class=HTMLResponse)
    def models(who: ViewerDep) -> HTMLResponse:
        return html(pages.models_page(console.models(who), who, console.refresh_s))

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model(name: str, who: ViewerDep, notice: str = "", versions: str = "") -> HTMLResponse:
        data = console.model(name, who)
        return html(
            pages.model_page(data, who, console.refresh_s, notice[:300], all_versions=versions == "all")
        )

    @app.get("/models/{name}/drift", response_class=HTMLResponse)
    def drift(name: str, who: ViewerDep, event: str | None = None) -> HTMLResponse:
        return html(pages.drift_page(console.drift(name, who, event), who, console.refresh_s))

    @app.get("/models/{name}/training", response_class=HTMLResponse)
    def training(name: str, who: ViewerDep) -> HTMLResponse:
        return html(pages.training_page(console.training(name, who), who, console.refresh_s))

    @app.get("/dead-letters", response_class=HTMLResponse)
    def dead_letters(who: ViewerDep) -> HTMLResponse:
        return html(pages.dead_letters_page(console.dead_letters(who), who, console.refresh_s))

    def _writer(request: Request, who: Viewer, csrf: str) -> None:
        _check_csrf(request, csrf)
        if not who.may_write:
            raise Forbidden(f"{who.name} is a {who.role}: promoting and rolling back need a writer token")

    @app.post("/models/{name}/aliases/{alias}/rollback")
    def rollback(
        request: Request,
        name: str,
        alias: str,
        who: ViewerDep,
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        _writer(request, who, csrf)
        moved = console.rollback(name, alias, reason, who)
        notice = f"{alias} rolled back to v{moved['version']} by {who.name}"
        return RedirectResponse(pages.url("models", name, notice=notice), status_code=303)

    @app.post("/models/{name}/aliases/promote")
    def promote(
        request: Request,
        name: str,
        who: ViewerDep,
        version: Annotated[int, Form(ge=1)],
        alias: Annotated[str, Form(min_length=1, max_length=200)] = "production",
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        _writer(request, who, csrf)
        moved = console.promote(name, alias, version, reason, who)
        notice = f"{alias} now points at v{moved['version']}, set by {who.name}"
        return RedirectResponse(pages.url("models", name, notice=notice), status_code=303)

    return app
