"""Checks shared by the model layer, the admin and the API, so every edge refuses the same input.

Each check raises Django's ``ValidationError`` keyed by field name; the API turns that into a
400 with a message per field, the admin shows it beside the field.
"""

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


def is_host_allowed(host: str | None) -> bool:
    """Exact match against ALLOWED_TARGET_HOSTS; an entry ".example.com" admits subdomains.

    Matching is on the parsed hostname, never on a string prefix, so
    ``localhost.evil.example`` or ``127.0.0.1@evil.example`` do not pass as ``localhost``.
    """
    if not host:
        return False
    host = host.lower().rstrip(".")
    for allowed in settings.ALLOWED_TARGET_HOSTS:
        if allowed.startswith("."):
            if host == allowed[1:] or host.endswith(allowed):
                return True
        elif host == allowed:
            return True
    return False


def check_target_url(url: str) -> None:
    """A target base URL: http(s), a host on the allow-list, no credentials in the URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError as exc:
        raise ValidationError(f"Not a valid URL: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError("Only http:// and https:// URLs can be load-tested.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("Put credentials in endpoint headers, not in the URL.")
    if not parts.hostname:
        raise ValidationError("The URL has no host.")
    if not is_host_allowed(parts.hostname):
        allowed = ", ".join(settings.ALLOWED_TARGET_HOSTS)
        raise ValidationError(
            f"Host '{parts.hostname}' is not on the allow-list ({allowed}). "
            "Add it to ALLOWED_TARGET_HOSTS to send load there."
        )


def check_endpoint_url(url: str) -> None:
    """An endpoint URL is a path on its target ("/...") or an absolute allowed URL."""
    if url.startswith("/"):
        if url.startswith("//"):
            raise ValidationError("A path must not start with '//'.")
        return
    if "://" not in url:
        raise ValidationError("Give a path starting with '/' or an absolute http(s) URL.")
    check_target_url(url)


def concurrent_users_problem(concurrent_users: int | None) -> str | None:
    if concurrent_users is None or concurrent_users < 1:
        return "At least 1 virtual user is needed."
    if concurrent_users > settings.MAX_USERS_PER_SESSION:
        limit = settings.MAX_USERS_PER_SESSION
        return f"At most {limit} users per session (MAX_USERS_PER_SESSION)."
    return None


def check_concurrent_users(concurrent_users: int | None) -> None:
    problem = concurrent_users_problem(concurrent_users)
    if problem:
        raise ValidationError({"concurrent_users": [problem]})


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def check_headers(headers: object) -> None:
    """Request headers: names are HTTP tokens, values have no line breaks (no injection)."""
    if not isinstance(headers, Mapping):
        raise ValidationError("Headers must be an object mapping names to string values.")
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValidationError(f"{name!r} is not a valid header name.")
        if not isinstance(value, str):
            raise ValidationError(f"The value of header {name!r} must be a string.")
        if any(char in value for char in "\r\n\0"):
            raise ValidationError(f"The value of header {name!r} contains a line break.")


def check_session_config(
    *,
    target_rps: float | None = None,
    ramp_up_seconds: float | None = 0.0,
    concurrent_users: int,
    duration_minutes: Decimal | float | None,
    request_interval_min: float,
    request_interval_max: float,
    max_errors_per_minute: int,
    endpoint_weights: object,
    endpoint_default_weights: Mapping[str, float],
) -> None:
    """The LoadTestConfig rules, given the default weights of the target's endpoints."""
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    users_problem = concurrent_users_problem(concurrent_users)
    if users_problem:
        refuse("concurrent_users", users_problem)
    if duration_minutes is not None:
        if duration_minutes < 0:
            refuse("duration_minutes", "Must be 0 (run until stopped) or a positive number.")
        elif settings.MAX_DURATION_MINUTES and (
            duration_minutes == 0 or duration_minutes > settings.MAX_DURATION_MINUTES
        ):
            refuse(
                "duration_minutes",
                f"At most {settings.MAX_DURATION_MINUTES} minutes (MAX_DURATION_MINUTES); "
                "0 (until stopped) is not allowed while that ceiling is set.",
            )
    if request_interval_min is not None and not math.isfinite(request_interval_min):
        refuse("request_interval_min", "Must be a finite number.")
        request_interval_min = None
    if request_interval_max is not None and not math.isfinite(request_interval_max):
        refuse("request_interval_max", "Must be a finite number.")
        request_interval_max = None
    if request_interval_min is not None and request_interval_min < 0:
        refuse("request_interval_min", "Must be 0 or more seconds.")
    if request_interval_max is not None and request_interval_max < 0:
        refuse("request_interval_max", "Must be 0 or more seconds.")
    if (
        request_interval_min is not None
        and request_interval_max is not None
        and request_interval_min > request_interval_max
    ):
        refuse(
            "request_interval_min",
            f"Must not exceed request_interval_max ({request_interval_max}).",
        )
    if target_rps is not None:
        if not math.isfinite(target_rps) or target_rps <= 0:
            refuse("target_rps", "Must be a positive number of requests per second (or empty).")
        elif target_rps > settings.MAX_REQUEST_RATE:
            refuse(
                "target_rps",
                f"At most {settings.MAX_REQUEST_RATE:g} requests/s per session (MAX_REQUEST_RATE).",
            )
    if ramp_up_seconds is not None and (not math.isfinite(ramp_up_seconds) or ramp_up_seconds < 0):
        refuse("ramp_up_seconds", "Must be 0 or more seconds.")
    if max_errors_per_minute is not None and max_errors_per_minute < 0:
        refuse("max_errors_per_minute", "Must be 0 (no limit) or more.")

    weights = {} if endpoint_weights is None else endpoint_weights
    if not isinstance(weights, Mapping):
        refuse("endpoint_weights", "Must be an object mapping endpoint names to weights.")
        weights = {}
    for name, weight in weights.items():
        if name not in endpoint_default_weights:
            known = ", ".join(sorted(endpoint_default_weights)) or "none"
            refuse("endpoint_weights", f"Unknown endpoint '{name}' (this target has: {known}).")
        elif isinstance(weight, bool) or not isinstance(weight, int | float):
            refuse("endpoint_weights", f"The weight of '{name}' must be a number.")
        elif not math.isfinite(weight) or weight < 0:
            refuse("endpoint_weights", f"The weight of '{name}' must be a finite number >= 0.")
    if "endpoint_weights" not in errors:
        effective = effective_weights(endpoint_default_weights, weights)
        if not any(weight > 0 for weight in effective.values()):
            refuse(
                "endpoint_weights",
                "At least one endpoint needs a positive weight; this target has "
                + ("none enabled." if endpoint_default_weights else "no endpoints."),
            )
    if errors:
        raise ValidationError(errors)


def effective_weights(
    default_weights: Mapping[str, float], overrides: Mapping[str, float] | None
) -> dict[str, float]:
    """Each endpoint's own weight unless the session overrides it by name (0 leaves it out)."""
    overrides = overrides or {}
    return {name: float(overrides.get(name, weight)) for name, weight in default_weights.items()}
