"""Rate limits on the API, read from settings at request time.

DRF's stock throttles copy their rates once, at import; these read API_USER_RATE and
API_ANONYMOUS_RATE on every request, so an operator (or a test) changing them is obeyed.
Counts are kept in the Redis cache shared by every web process; a refused call gets a 429
with Retry-After. Anonymous callers are counted by the address ``client_address`` finds
(X-Forwarded-For only from trusted proxies), never by a header the caller could vary.

While that cache is unreachable the limits are off (fail open): otherwise every call,
reading sessions from the database included, would answer 500 until Redis is back.
"""

import logging
import time

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from loadtest_project.client_address import client_address

logger = logging.getLogger(__name__)

# One warning a minute per process is enough to be seen without flooding the log.
CACHE_WARNING_INTERVAL_S = 60.0
_cache_warning_logged_at = float("-inf")  # time.monotonic() of the last warning


class _RateFromSettings:
    rate_setting = ""

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as exc:
            _warn_cache_unreachable(exc)
            return True

    def get_ident(self, request) -> str:
        # DRF's own trusts any X-Forwarded-For unless NUM_PROXIES is set in its settings.
        return client_address(request) or ""


class UserThrottle(_RateFromSettings, UserRateThrottle):
    rate_setting = "API_USER_RATE"


class AnonymousThrottle(_RateFromSettings, AnonRateThrottle):
    rate_setting = "API_ANONYMOUS_RATE"


def _warn_cache_unreachable(exc: Exception) -> None:
    global _cache_warning_logged_at
    now = time.monotonic()
    if now - _cache_warning_logged_at < CACHE_WARNING_INTERVAL_S:
        return
    _cache_warning_logged_at = now
    logger.warning(
        "API rate limits are off: their counts live in Redis, which is unreachable (%s). "
        "Calls are let through until it answers again; check that Redis runs at REDIS_URL. "
        "(This warning repeats at most once a minute.)",
        exc,
    )
