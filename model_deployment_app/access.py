"""Who may call the model: the one policy HTTP and gRPC both ask before serving a request.

- health (`/v2/health/*`, gRPC ServerLive and ServerReady): nothing, never counted;
- `/metrics`: nothing, or a prediction token with `MDA_METRICS_AUTH`;
- the repository `load` route: an admin token (`MDA_ADMIN_TOKENS_FILE`), 403 when unset;
- `/`, the playground page (static): nothing, the calls it makes carry the token;
- everything else (predictions, metadata, `/docs`): a prediction token, when tokens are on.

Every request that is not health (or open metrics) is counted against `MDA_RATE_LIMIT` per
caller: its token, or its address (`X-Forwarded-For` only from `MDA_TRUSTED_PROXIES`).
"""

import hashlib
import ipaddress
from typing import Literal

from model_deployment_app.errors import Forbidden, TooManyRequests, Unauthorized
from model_deployment_app.ratelimit import RateLimiter
from model_deployment_app.settings import AccessSettings
from model_deployment_app.tokens import TokenFile

Kind = Literal["health", "metrics", "admin", "page", "api"]

_HEALTH = ("/v2/health/live", "/v2/health/ready")


def route_kind(path: str) -> Kind:
    """What a request path is, for the policy (paths without the root prefix)."""
    if path in _HEALTH:
        return "health"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v2/repository/"):
        return "admin"
    if path == "/":
        return "page"
    return "api"


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Access:
    def __init__(self, settings: AccessSettings, redis_url: str | None = None) -> None:
        self.tokens = (
            TokenFile(settings.api_tokens_file, "MDA_API_TOKENS_FILE")
            if settings.api_tokens_file
            else None
        )
        self.admin = (
            TokenFile(settings.admin_tokens_file, "MDA_ADMIN_TOKENS_FILE")
            if settings.admin_tokens_file
            else None
        )
        self.metrics_auth = settings.metrics_auth
        self.limiter = RateLimiter(settings.rate_limit, redis_url) if settings.rate_limit else None
        self._callers: dict[str, str] = {}
        self.trusted = [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in settings.trusted_proxies.split(",")
            if item.strip()
        ]

    @property
    def guards(self) -> bool:
        """Whether any route but the admin one asks anything (else only that one does)."""
        return bool(self.tokens or self.limiter or self.metrics_auth)

    def caller(self, token: str | None, peer: str | None, forwarded: str | None) -> str:
        """Who is counted: the token (as a digest), else the client's address."""
        if token is not None:  # a digest: the counts (and Redis) never hold the token itself
            key = self._callers.get(token)
            if key is None:
                digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
                key = "t:" + digest[:32]
                if len(self._callers) < 1024:
                    self._callers[token] = key
            return key
        address = peer or "unknown"
        if forwarded and self._trusted(address):
            address = forwarded.split(",")[0].strip() or address
        return "a:" + address

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def authorize(self, kind: Kind, token: str | None) -> bool:
        """Raise for a caller that may not make this request; True when it is to be counted."""
        if kind == "health" or kind == "page":
            return kind == "page"
        if kind == "admin":
            if self.admin is None:
                raise Forbidden(
                    "the repository load route is off: set MDA_ADMIN_TOKENS_FILE to a file of "
                    "admin tokens to turn it on"
                )
            if token is None:
                raise Unauthorized("this route needs an admin token: Authorization: Bearer <token>")
            if not self.admin.accepts(token):
                if self.tokens is not None and self.tokens.accepts(token):
                    raise Forbidden("a prediction token cannot use the repository load route")
                raise Unauthorized("the admin token is not valid")
            return True
        if kind == "metrics" and not self.metrics_auth:
            return False
        if self.tokens is not None:
            if token is None:
                raise Unauthorized("this model needs a token: Authorization: Bearer <token>")
            if not self.tokens.accepts(token) and not (self.admin and self.admin.accepts(token)):
                raise Unauthorized("the token is not valid")
        return True

    @property
    def waits(self) -> bool:
        """Whether a check may wait on Redis (else `check_here` does it all, at once)."""
        return self.limiter is not None and self.limiter.shared

    def check_here(
        self, kind: Kind, authorization: str | None, peer: str | None, forwarded: str | None
    ) -> str | None:
        """Refuse (401, 403, 429) a request that may not be served now; the caller to count
        in Redis, when that is still to do (see `waits`)."""
        token = bearer(authorization)
        limiter = self.limiter
        if not self.authorize(kind, token) or limiter is None:
            return None
        caller = self.caller(token, peer, forwarded)
        if limiter.shared:
            return caller
        self._refuse_over(limiter.hit_here(caller))
        return None

    def _refuse_over(self, wait: float | None) -> None:
        if wait is not None:
            assert self.limiter is not None
            raise TooManyRequests(
                f"over the rate limit of {self.limiter.rate}: retry in {int(wait)} s", wait
            )

    async def check(
        self, kind: Kind, authorization: str | None, peer: str | None, forwarded: str | None
    ) -> None:
        """Refuse (401, 403, 429) a request that may not be served now."""
        caller = self.check_here(kind, authorization, peer, forwarded)
        if caller is not None:
            assert self.limiter is not None
            self._refuse_over(await self.limiter.hit(caller))
