"""Who may read and act, and how much anyone may ask.

- Reading is open on loopback; beyond it the monitor refuses to start without
  ``BOSON_API_TOKEN`` (:meth:`MonitorSettings.dashboard_refusal`) and every
  ``/api`` read but the OpenAPI document needs the token (:class:`Gate`
  checks it before routing, once per request).
- Actions always need the token; with none configured, actions are refused.
- The token travels as ``Authorization: Bearer …`` only — never a cookie or a
  query string — so no cross-site request can carry it and no access log
  records it; it is compared in constant time.
- Bodies are bounded (413) and each client address has a token bucket (429).
- Every answer carries :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ProblemError(Exception):
    """An answer with a status and one clear line (``{"detail": …}``)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="boson"'}


@dataclass(frozen=True)
class Guard:
    """The token check: ``reading_needs_token`` when bound beyond loopback."""

    token: SecretStr | None
    reading_needs_token: bool

    def _matches(self, authorization: str | None) -> bool:
        if self.token is None or not self.token.get_secret_value():
            return False
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        expected = self.token.get_secret_value().encode()
        return hmac.compare_digest(given.strip().encode(), expected)

    def _missing_or_wrong(self, authorization: str | None) -> ProblemError:
        if authorization is None:
            return ProblemError(401, "this needs the API token (a bearer header)", _CHALLENGE)
        return ProblemError(401, "wrong API token", _CHALLENGE)

    def read_refusal(self, authorization: str | None) -> ProblemError | None:
        """Why a read with this ``Authorization`` header is refused; ``None`` if it may go on.

        :class:`Gate` asks it once per ``/api`` read, before routing.
        """
        if self.reading_needs_token and not self._matches(authorization):
            return self._missing_or_wrong(authorization)
        return None

    async def act(self, request: Request) -> None:
        """A FastAPI dependency of every action (acknowledge now, cancel later)."""
        if self.token is None or not self.token.get_secret_value():
            raise ProblemError(
                403, "actions are disabled: the monitor has no BOSON_API_TOKEN configured"
            )
        authorization = request.headers.get("authorization")
        if not self._matches(authorization):
            raise self._missing_or_wrong(authorization)


class RateLimiter:
    """A token bucket per client address; the least recently seen are forgotten."""

    def __init__(
        self,
        per_s: float,
        burst: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.per_s)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed


SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
"""Added to every answer the app or the :class:`Gate` gives."""


class Gate:
    """The one ASGI callable in front of the app, so every request pays for one layer.

    In order: the request rate per client (429), a bounded body (413), the
    read token on ``/api`` reads (401, via :meth:`Guard.read_refusal`; the
    ``open_paths`` are exempt), and :data:`SECURITY_HEADERS` on every answer,
    its own included. Long-lived streams count once, when they open. Actions
    check their token in the route (:meth:`Guard.act`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        guard: Guard,
        limiter: RateLimiter,
        max_body_bytes: int,
        guarded_prefix: str = "/api/",
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.guard = guard
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.guarded_prefix = guarded_prefix
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        client = scope.get("client")
        if not self.limiter.allow(client[0] if client else "?"):
            answer = JSONResponse(
                {"detail": "too many requests: slow down"}, 429, headers={"Retry-After": "1"}
            )
            await answer(scope, receive, with_headers)
            return
        declared: bytes | None = None
        authorization: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value  # the last one, as a dict of the headers keeps it
            elif name == b"authorization" and authorization is None:
                authorization = value  # the first one, as Starlette's headers give it
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, receive, with_headers)
            return
        method = scope["method"]
        reading = method in ("GET", "HEAD")
        if reading and self.guard.reading_needs_token:
            path = scope["path"]
            if path.startswith(self.guarded_prefix) and path not in self.open_paths:
                refusal = self.guard.read_refusal(
                    None if authorization is None else authorization.decode("latin-1")
                )
                if refusal is not None:
                    answer = JSONResponse(
                        {"detail": refusal.detail}, refusal.status, headers=refusal.headers
                    )
                    await answer(scope, receive, with_headers)
                    return
        if declared is not None or reading:
            await self.app(scope, receive, with_headers)
            return
        # No declared length (chunked): read it here, within the bound, then replay.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, with_headers)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, with_headers)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = JSONResponse({"detail": f"request body over {self.max_body_bytes} bytes"}, 413)
        await answer(scope, receive, send)


__all__ = ["SECURITY_HEADERS", "Gate", "Guard", "ProblemError", "RateLimiter"]
