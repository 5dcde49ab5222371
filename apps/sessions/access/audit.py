"""The audit log: every state-changing call to the API or the admin, whatever its outcome.

A middleware rather than calls sprinkled over views: nothing that changes state can forget
to be recorded, and refused attempts (401, 403, 409) are on record too. It stores who (the
user DRF or the session authenticated), when, what (method, path, and for admin actions the
action's name and selected ids) and from where (address, user agent); never request bodies,
which may carry passwords. A sign-in refused by the lockout is recorded by
``apps.sessions.access.lockout`` instead, with the attempted username.
"""

import logging

from apps.sessions.models import AuditEntry
from loadtest_project.client_address import client_address

logger = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_PREFIXES = ("/api/", "/admin/", "/api-auth/")


class AuditMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.method in STATE_CHANGING
            and request.path.startswith(AUDITED_PREFIXES)
            and not getattr(request, "audit_recorded", False)
        ):
            try:
                record(request, response.status_code)
            except Exception:  # the audit must never turn a success into a 500
                logger.exception("Could not write the audit entry for %s %s",
                                 request.method, request.path)  # fmt: skip
        return response


def record(request, status_code: int, action: str | None = None) -> AuditEntry:
    """One entry for ``request``; ``action`` defaults to the admin action it carries."""
    user = getattr(request, "user", None)
    authenticated = bool(user and user.is_authenticated)
    return AuditEntry.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        method=request.method,
        path=request.path[:500],
        action=(_admin_action(request) if action is None else action)[:200],
        status_code=status_code,
        remote_addr=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
    )


def _admin_action(request) -> str:
    """For an admin changelist action: its name and the selected objects (no other fields)."""
    if not request.path.startswith("/admin/") or request.method != "POST":
        return ""
    try:
        action = request.POST.get("action", "")
        selected = request.POST.getlist("_selected_action")
    except Exception:
        return ""
    if not action:
        return ""
    return f"{action} {','.join(selected)}"[:200]


def record_system(action: str, cause: str) -> AuditEntry:
    """An entry for something the system did by itself (no request, no user): ``cause`` is
    what made it act (a setting's name), ``action`` what it did."""
    return AuditEntry.objects.create(
        username="system",
        method="SYSTEM",
        path=cause[:500],
        action=action[:200],
        status_code=200,
    )
