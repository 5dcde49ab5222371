"""Rate limits on the API, read from settings at request time.

DRF's stock throttles copy their rates once, at import; these read API_USER_RATE and
API_ANONYMOUS_RATE on every request, so an operator (or a test) changing them is obeyed.
Counts are kept in the Redis cache shared by every web process; a refused call gets a 429
with Retry-After. Anonymous callers are counted by the address ``client_address`` finds
(X-Forwarded-For only from trusted proxies), never by a header the caller could vary.
"""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from loadtest_project.client_address import client_address


class _RateFromSettings:
    rate_setting = ""

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_ident(self, request) -> str:
        # DRF's own trusts any X-Forwarded-For unless NUM_PROXIES is set in its settings.
        return client_address(request) or ""


class UserThrottle(_RateFromSettings, UserRateThrottle):
    rate_setting = "API_USER_RATE"


class AnonymousThrottle(_RateFromSettings, AnonRateThrottle):
    rate_setting = "API_ANONYMOUS_RATE"
