"""The dashboard's ASGI app: a handful of GET routes, each page read in a thread.

Routes: ``/`` (models), ``/models/{name}``, ``/models/{name}/report`` (the monitoring report
computed on request), ``/audit`` (admin keys only), ``/healthz`` (public, for probes).

Authentication is the server's (API keys, roles, per-model scopes; :class:`Guard`): a key in
``Authorization: Bearer`` or ``X-API-Key``, or, so that a browser can open the pages, as the
password of HTTP Basic authentication (any user name). Basic credentials are accepted here
only, on GET pages that change nothing: a browser resends them to every route of the origin,
which on the inference server would let another site's form call its POST routes.

Written on the bare ASGI interface like the inference server's app: four routes do not need
a framework, and the package keeps no web framework dependency.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from modelyard.errors import ModelyardError, NotFoundError
from modelyard.serving.auth import Denial, Guard, Principal, bearer_token
from modelyard.web import pages

if TYPE_CHECKING:
    from modelyard.web.views import Dashboard

__all__ = ["DashboardApp"]

log = logging.getLogger("modelyard.web")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Page = tuple[int, str]
Reply = tuple[int, bytes, list[tuple[bytes, bytes]]]

_HTML = [(b"content-type", b"text/html; charset=utf-8"),
         # The pages are self-contained: forbid everything else, scripts included.
         (b"content-security-policy",
          b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
          b"frame-ancestors 'none'; form-action 'none'"),
         (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]
_REPORT_CSP = b"default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class DashboardApp:
    """The dashboard over ``views``; ``guard`` None leaves it open (loopback, no keys)."""

    def __init__(self, views: Dashboard, *, guard: Guard | None = None,
                 version: str = "0") -> None:
        self.views = views
        self.guard = guard
        self.version = version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body, headers = await self._answer(scope)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.guard is not None:
                    await self.guard.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.guard is not None:
                    await self.guard.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, scope: Scope) -> Reply:
        path: str = scope["path"]
        if path == "/healthz":
            return 200, b"ok\n", [(b"content-type", b"text/plain")]
        if scope["method"] not in ("GET", "HEAD"):
            return self._page(405, "The dashboard only reads: use GET.",
                              extra=[(b"allow", b"GET, HEAD")])
        route = _route(path)
        if route is None:
            return self._page(404, f"There is no page {path}.", "Start from /.")
        operation, model, page = route
        who = self._authorize(scope, operation, model)
        if not isinstance(who, Principal | None):
            return who
        scope_models = who.models if who is not None else None
        try:
            status, text = await asyncio.to_thread(page, self, scope_models)
        except NotFoundError as exc:
            return self._page(404, exc.message, exc.hint or "")
        except ModelyardError as exc:
            return self._page(400, exc.message, exc.hint or "")
        except Exception as exc:  # a bug must not take the dashboard down
            log.exception("dashboard page %s failed", path)
            return self._page(500, f"The page failed: {type(exc).__name__}: {exc}",
                              "See the dashboard's log.")
        headers = list(_HTML)
        if operation == "dashboard.view" and path.endswith("/report"):
            headers[1] = (b"content-security-policy", _REPORT_CSP)
        return status, text.encode(), headers

    def _authorize(self, scope: Scope, operation: str, model: str | None,
                   ) -> Principal | Reply | None:
        """The caller (None: nobody is checked), or the refusal to answer with."""
        guard = self.guard
        if guard is None or not guard.active:
            return None
        headers = dict(scope.get("headers") or ())
        token = bearer_token(headers.get(b"authorization"), headers.get(b"x-api-key")) or (
            _basic_password(headers.get(b"authorization")))
        client = scope.get("client")
        verdict = guard.check(token, operation, model, client[0] if client else None)
        if not isinstance(verdict, Denial):
            return verdict
        extra: list[tuple[bytes, bytes]] = []
        if verdict.status == 401:
            extra.append((b"www-authenticate",
                          b'Basic realm="modelyard dashboard", charset="UTF-8"'))
        if verdict.retry_after_s is not None:
            extra.append((b"retry-after", str(verdict.retry_after_s).encode()))
        hint = ("Open the page with an API key as the password (any user name), or send "
                "Authorization: Bearer KEY." if verdict.status == 401 else "")
        return self._page(verdict.status, verdict.message, hint, extra=extra)

    def _page(self, status: int, message: str, hint: str = "", *,
              extra: list[tuple[bytes, bytes]] | None = None,
              ) -> Reply:
        body = pages.error_page(status, message, hint, version=self.version)
        return status, body.encode(), [*_HTML, *(extra or [])]


# -- routes ----------------------------------------------------------------------------------
Models = frozenset[str] | None
"""The models the caller's key may see (None: all)."""


def _overview(app: DashboardApp, models: Models) -> Page:
    rows = app.views.overview()
    if models is not None:  # a key limited to some models sees only those
        rows = [r for r in rows if r.model.name in models]
    return 200, pages.overview_page(rows, version=app.version)


def _audit(app: DashboardApp, models: Models) -> Page:
    return 200, pages.audit_page(app.views.audit(), version=app.version)


def _model(name: str) -> Callable[[DashboardApp, Models], Page]:
    def page(app: DashboardApp, models: Models) -> Page:
        return 200, pages.model_page(app.views.model(name), version=app.version)

    return page


def _report(name: str) -> Callable[[DashboardApp, Models], Page]:
    def page(app: DashboardApp, models: Models) -> Page:
        from modelyard.monitoring.report import render_html

        return 200, render_html(app.views.report(name))

    return page


def _route(path: str) -> tuple[str, str | None, Callable[[DashboardApp, Models], Page]] | None:
    """(operation, model, page) for ``path``, or None."""
    if path in ("/", ""):
        return "dashboard.view", None, _overview
    if path == "/audit":
        return "audit.read", None, _audit
    parts = path.strip("/").split("/")
    if parts[0] == "models" and len(parts) in (2, 3) and parts[1]:
        name = unquote(parts[1])
        if len(parts) == 2:
            return "dashboard.view", name, _model(name)
        if parts[2] == "report":
            return "dashboard.view", name, _report(name)
    return None


def _basic_password(authorization: bytes | None) -> str | None:
    """The password of ``Authorization: Basic ...`` (the API key), or None."""
    if not authorization or authorization[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password.strip() or None if sep else None
