"""Sign-in lockout (django-axes): what a locked-out client is told, and the record of it.

Axes counts failed sign-ins per user and per address (``AXES_*`` in settings) on every
password form: the admin login, the browsable API's login and ``POST /api/auth/token/``.
Once either count reaches ``LOGIN_FAILURE_LIMIT``, sign-ins for that user or from that
address are refused, right password or not, until ``LOGIN_LOCKOUT_MINUTES`` after the last
failure counted. This module answers such a request with 429, saying when to try again
(JSON for API clients, a page for browsers), and records each lockout in the audit log and as
a WARNING log line. Neither ever holds the password.

Every value axes stores is cut to its column here or by axes itself (user agent, path,
Accept): PostgreSQL refuses a longer value, which would turn a hostile sign-in into a 500
with no failure counted.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Max, Q
from django.dispatch import receiver
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone

from apps.sessions.access import audit
from loadtest_project.client_address import client_address

logger = logging.getLogger(__name__)

# "Too Many Requests", as the API's rate limits answer: a client that retries later succeeds.
LOCKED_OUT_STATUS = 429


# The column every axes record keeps the attempted user name in (attempts, failure and access
# logs alike).
USERNAME_COLUMN_LENGTH = AccessAttempt._meta.get_field("username").max_length or 255


def attempted_username(request, credentials: dict | None = None) -> str | None:
    """The user name axes records and counts (``AXES_USERNAME_CALLABLE``): the one submitted,
    without NUL characters and cut to its column, so any value a form or the token endpoint
    accepts can be recorded on every database; a cut name is counted like any other.

    As axes reads it by default: from the credentials given to ``authenticate``, else from
    the posted form (or the API request's parsed data).
    """
    if credentials:
        value = credentials.get(settings.AXES_USERNAME_FORM_FIELD)
    else:
        data = getattr(request, "data", None) or getattr(request, "POST", {})
        value = data.get(settings.AXES_USERNAME_FORM_FIELD) if hasattr(data, "get") else None
    if value is None:
        return None
    return str(value).replace("\x00", "")[:USERNAME_COLUMN_LENGTH]


def lockout_ends_at(username: str | None, address: str | None) -> datetime:
    """When no failure that locks this user or address counts any more.

    A failure counts for ``AXES_COOLOFF_TIME`` after the latest failure of its (user, address)
    record; the latest of all those records that lock this client, plus the cool-off, is when
    the lock is gone for certain. Failures while locked out are not counted (settings), so
    retrying does not move this time.
    """
    locking = Q(ip_address=address) if address else Q(pk__in=[])
    if username:
        locking |= Q(username=username)
    latest = AccessAttempt.objects.filter(locking).aggregate(latest=Max("attempt_time"))["latest"]
    return (latest or timezone.now()) + settings.AXES_COOLOFF_TIME


def lockout_message(ends_at: datetime) -> tuple[str, int]:
    """The sentence a locked-out person reads, and the seconds until they may retry."""
    retry_after_s = max(1, math.ceil((ends_at - timezone.now()).total_seconds()))
    message = (
        "Too many failed sign-ins for this user or from this address. Sign-in is locked "
        f"until {ends_at:%Y-%m-%d %H:%M:%S} UTC (in {math.ceil(retry_after_s / 60)} min); "
        "try again then. An administrator can lift the lock earlier with "
        "`manage.py axes_reset_username USER` or `manage.py axes_reset_ip ADDRESS`."
    )
    return message, retry_after_s


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """The answer to a locked-out sign-in (``AXES_LOCKOUT_CALLABLE``, and the token view's).

    JSON for API clients, a readable page for browsers; 429 with Retry-After either way.
    Axes' ASGI middleware passes the credentials in the place of the original response, so
    they are taken from what axes noted on the request.
    """
    credentials = getattr(request, "axes_credentials", None) or credentials
    username = get_client_username(request, credentials)
    ends_at = lockout_ends_at(username, client_address(request))
    message, retry_after_s = lockout_message(ends_at)
    wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
    if wants_json:
        body = {
            "detail": message,
            "locked_until": ends_at.isoformat(),
            "retry_after_s": retry_after_s,
        }
        response = JsonResponse(body, status=LOCKED_OUT_STATUS)
    else:
        page = render_to_string("login_locked_out.html", {"message": message}, request=request)
        response = HttpResponse(page, status=LOCKED_OUT_STATUS)
    response["Retry-After"] = str(retry_after_s)
    return response


@receiver(user_locked_out, dispatch_uid="loadtests-record-lockout")
def record_lockout(sender, request, username, ip_address, **kwargs) -> None:
    """A WARNING line and an audit entry for each sign-in refused by a lockout.

    Axes sends this when the limit is reached and for every sign-in refused while locked.
    The attempted username goes into the record (an administrator needs to know which
    account is under attack); the password never reaches this function.
    """
    attempted = str(username or "")[:100]
    logger.warning(
        "Sign-in locked out: user %r from %s on %s (limit: %d failures within %s)",
        attempted,
        ip_address,
        request.path,
        settings.AXES_FAILURE_LIMIT,
        settings.AXES_COOLOFF_TIME,
    )
    # DRF wraps the Django request; the audit middleware sees the Django one.
    django_request = getattr(request, "_request", request)
    try:
        audit.record(django_request, LOCKED_OUT_STATUS, action=f"login locked out: {attempted!r}")
    except Exception:  # the audit must never turn a refusal into a 500
        logger.exception("Could not write the audit entry for the lockout on %s", request.path)
        return
    django_request.audit_recorded = True  # one entry per request: the middleware skips it
