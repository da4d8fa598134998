"""Who may read and act, and how much anyone may ask.

- Reading is open on loopback; beyond it the monitor refuses to start without
  ``BOSON_API_TOKEN`` (:meth:`MonitorSettings.dashboard_refusal`) and every
  ``/api`` read needs the token.
- Actions always need the token; with none configured, actions are refused.
- The token travels as ``Authorization: Bearer …`` only — never a cookie or a
  query string — so no cross-site request can carry it and no access log
  records it; it is compared in constant time.
- Bodies are bounded (413) and each client address has a token bucket (429).
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

    def _matches(self, request: Request) -> bool:
        if self.token is None or not self.token.get_secret_value():
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        expected = self.token.get_secret_value().encode()
        return hmac.compare_digest(given.strip().encode(), expected)

    def _missing_or_wrong(self, request: Request) -> ProblemError:
        if "authorization" not in request.headers:
            return ProblemError(401, "this needs the API token (a bearer header)", _CHALLENGE)
        return ProblemError(401, "wrong API token", _CHALLENGE)

    async def read(self, request: Request) -> None:
        """A FastAPI dependency of every read endpoint."""
        if self.reading_needs_token and not self._matches(request):
            raise self._missing_or_wrong(request)

    async def act(self, request: Request) -> None:
        """A FastAPI dependency of every action (acknowledge now, cancel later)."""
        if self.token is None or not self.token.get_secret_value():
            raise ProblemError(
                403, "actions are disabled: the monitor has no BOSON_API_TOKEN configured"
            )
        if not self._matches(request):
            raise self._missing_or_wrong(request)


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


class Limits:
    """ASGI middleware: a bounded body (413) and a request rate per client (429).

    Long-lived streams count once, when they open.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, limiter: RateLimiter) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not self.limiter.allow(client[0] if client else "?"):
            answer = JSONResponse(
                {"detail": "too many requests: slow down"}, 429, headers={"Retry-After": "1"}
            )
            await answer(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            answer = JSONResponse({"detail": f"request body over {self.max_body_bytes} bytes"}, 413)
            await answer(scope, receive, send)
            return
        if declared is not None or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): read it here, within the bound, then replay.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                answer = JSONResponse(
                    {"detail": f"request body over {self.max_body_bytes} bytes"}, 413
                )
                await answer(scope, receive, send)
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

        await self.app(scope, replay, send)


__all__ = ["Guard", "Limits", "ProblemError", "RateLimiter"]
