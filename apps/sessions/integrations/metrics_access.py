"""Who may scrape ``/metrics``: a bearer token, an address list, or both; bad tokens lock out.

The figures name sessions, targets and endpoints, so they are not public. Prometheus cannot
sign in with a password, so the guard is a token (``METRICS_TOKEN``, sent as
``Authorization: Bearer``) and/or the scrapers' addresses (``METRICS_ALLOWED_ADDRESSES``, as
``loadtest_project.client_address`` finds them, proxies included). With neither set the page
is off (404): nothing is exposed until an operator decides how.

A token is a secret that can be guessed like a password, so it gets the sign-ins' lockout:
``LOGIN_FAILURE_LIMIT`` wrong tokens from one address lock that address out of /metrics (429,
right token or not) until ``LOGIN_LOCKOUT_MINUTES`` after its last counted failure. The
counts live in the shared cache (Redis), so they hold across web processes. A request with
no token at all is not counted (it guesses nothing). Tokens are compared in constant time and
never logged.
"""

from __future__ import annotations

import hmac
import logging
import math

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from apps.sessions.access import audit
from loadtest_project.client_address import client_address
from loadtest_project.networks import address_in

logger = logging.getLogger(__name__)

LOCKED_OUT_STATUS = 429  # as the sign-in lockout answers
_FAILURES_KEY = "metrics-token-failures:{address}"


def refusal(request: HttpRequest) -> HttpResponse | None:
    """The answer that refuses this scrape, or None when it may have the figures."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_ADDRESSES
    if not token and not networks:
        return _plain(404, "Not found: /metrics is off (set METRICS_TOKEN or "
                           "METRICS_ALLOWED_ADDRESSES to turn it on).")  # fmt: skip
    address = client_address(request)
    if networks and not address_in(address, networks):
        return _plain(403, f"Forbidden: {address} is not in METRICS_ALLOWED_ADDRESSES.")
    if not token:
        return None
    if _failures(address) >= settings.LOGIN_FAILURE_LIMIT:
        return _locked_out()
    presented = bearer_token(request)
    if presented is not None and hmac.compare_digest(presented.encode(), token.encode()):
        return None
    if presented is not None and _count_failure(address) == settings.LOGIN_FAILURE_LIMIT:
        _record_lockout(request, address)
        return _locked_out()
    response = _plain(401, "Unauthorized: send the header 'Authorization: Bearer <METRICS_TOKEN>'.")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case)."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def lockout_seconds() -> int:
    return max(1, math.ceil(settings.LOGIN_LOCKOUT_MINUTES * 60))


def _failures(address: str | None) -> int:
    """This address's counted bad tokens; 0 when the cache cannot say (see ``_count_failure``)."""
    try:
        return int(cache.get(_FAILURES_KEY.format(address=address), 0))
    except (RedisError, OSError) as exc:
        logger.warning("/metrics: cannot read the bad-token count (%s); not locking out", exc)
        return 0


def _count_failure(address: str | None) -> int:
    """Count one bad token; the count expires LOGIN_LOCKOUT_MINUTES after the latest one.

    Without the cache (Redis down) nothing is counted: the token is still required, and a
    scrape that would show Redis down should not fail because of it.
    """
    key = _FAILURES_KEY.format(address=address)
    try:
        cache.add(key, 0, timeout=lockout_seconds())
        count = cache.incr(key)
        cache.touch(key, timeout=lockout_seconds())
    except (RedisError, OSError, ValueError) as exc:  # ValueError: expired between add and incr
        logger.warning("/metrics: cannot count a bad token (%s)", exc)
        return 0
    return int(count)


def _record_lockout(request: HttpRequest, address: str | None) -> None:
    logger.warning(
        "/metrics locked out for %s after %d wrong tokens (for %d min)",
        address,
        settings.LOGIN_FAILURE_LIMIT,
        math.ceil(lockout_seconds() / 60),
    )
    try:
        audit.record(request, LOCKED_OUT_STATUS, action="metrics locked out: wrong tokens")
    except Exception:  # the audit must never turn a refusal into a 500
        logger.exception("Could not write the audit entry for the /metrics lockout")


def _locked_out() -> HttpResponse:
    minutes = math.ceil(lockout_seconds() / 60)
    response = _plain(
        LOCKED_OUT_STATUS,
        f"Too many wrong tokens from this address: /metrics is locked for it for up to "
        f"{minutes} min after the last one (LOGIN_LOCKOUT_MINUTES); check the scraper's token "
        "and try again then.",
    )
    response["Retry-After"] = str(lockout_seconds())
    return response


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
