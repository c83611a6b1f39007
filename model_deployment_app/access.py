"""Who may call the model: the one policy HTTP and gRPC both ask before serving a request.

- health (`/v2/health/*`, gRPC ServerLive and ServerReady): nothing, never counted;
- `/metrics`: nothing, or a prediction token with `MDA_METRICS_AUTH`;
- the repository `load` route: an admin token (`MDA_ADMIN_TOKENS_FILE`), 403 when unset;
- `/`, the playground page (static): nothing, the calls it makes carry the token;
- everything else (predictions, metadata, `/docs`): a prediction token, when tokens are on.

Every request that is not health (or open metrics) is counted against `MDA_RATE_LIMIT` per
caller: its token, or its address (`X-Forwarded-For` only from `MDA_TRUSTED_PROXIES`). A
refused token is counted against its address, apart from that address's good calls, so
guessing tokens is held to the same limit and never holds back a caller with a valid one.
A request with two `Authorization` headers is refused: a gateway that reads the first and a
server that read the last would disagree on who called.
"""

import ipaddress
from typing import Literal

from model_deployment_app.errors import Forbidden, MalformedRequest, TooManyRequests, Unauthorized
from model_deployment_app.ratelimit import RateLimiter
from model_deployment_app.settings import AccessSettings
from model_deployment_app.tokens import TokenFile, digest

Kind = Literal["health", "metrics", "admin", "page", "api"]

_HEALTH = ("/v2/health/live", "/v2/health/ready")


def route_kind(path: str) -> Kind:
    """What a request path is, for the policy (paths without the root prefix)."""
    if path in _HEALTH:
        return "health"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v2/repository/"):
        return "api" if path == "/v2/repository/index" else "admin"
    if path == "/":
        return "page"
    return "api"


TWO_TOKENS = MalformedRequest("two Authorization headers: send one")


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
        """Who is counted: a checked token (as a digest: the counts, and Redis, never hold
        the token itself), else the client's address."""
        if token is not None:
            return "t:" + digest(token).hex()[:32]
        return "a:" + self._address(peer, forwarded)

    def _failures(self, peer: str | None, forwarded: str | None) -> str:
        """The count of an address's refused tokens, apart from its good calls."""
        return "f:" + self._address(peer, forwarded)

    def _address(self, peer: str | None, forwarded: str | None) -> str:
        address = peer or "unknown"
        if forwarded and self._trusted(address):
            address = forwarded.split(",")[0].strip() or address
        return address

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
        try:
            counted = self.authorize(kind, token)
        except Unauthorized:
            if limiter is not None and not limiter.shared:  # shared: `check` counts it
                self._refuse_over(limiter.hit_here(self._failures(peer, forwarded)))
            raise
        if not counted or limiter is None:
            return None
        # An unchecked token proves nothing: a made-up one per request must not make a caller new.
        checked = token if self.tokens is not None or kind == "admin" else None
        caller = self.caller(checked, peer, forwarded)
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
        try:
            caller = self.check_here(kind, authorization, peer, forwarded)
        except Unauthorized:
            if self.limiter is not None and self.limiter.shared:
                self._refuse_over(await self.limiter.hit(self._failures(peer, forwarded)))
            raise
        if caller is not None:
            assert self.limiter is not None
            self._refuse_over(await self.limiter.hit(caller))
