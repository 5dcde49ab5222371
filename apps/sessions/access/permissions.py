"""Who may make each kind of change: the permission names the services check, and the check.

Every function that acts for a person checks that person's permission before it changes
anything, so the API, the admin, the dashboard and the CLI refuse the same people;
``user=None`` is the system itself (the monitor, beat, management commands), which may do
anything. ``roles.py`` says which role holds which permission.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

# What each kind of change needs; roles.py says which role holds which.
ADD_SESSIONS = "loadtests.add_loadtestsession"
CHANGE_SESSIONS = "loadtests.change_loadtestsession"
DELETE_SESSIONS = "loadtests.delete_loadtestsession"
OPERATE_SESSIONS = "loadtests.operate_loadtestsession"
EMERGENCY_STOP = "loadtests.emergency_stop"
ADD_WEBHOOKS = "loadtests.add_webhook"
CHANGE_WEBHOOKS = "loadtests.change_webhook"
DELETE_WEBHOOKS = "loadtests.delete_webhook"
MANAGE_GLOBAL_WEBHOOKS = "loadtests.manage_global_webhooks"
ADD_SCHEDULES = "loadtests.add_schedule"
CHANGE_SCHEDULES = "loadtests.change_schedule"
DELETE_SCHEDULES = "loadtests.delete_schedule"


def require_permission(user, permission: str, doing: str) -> None:
    """Refuse ``user`` unless it holds ``permission`` (the API answers 403, the admin shows
    the message); ``user=None`` is the system itself."""
    if user is not None and not user.has_perm(permission):
        raise PermissionDenied(
            f"Your role does not allow you to {doing} (it needs the permission {permission}; "
            "see the roles in the README)."
        )


CHANGE_CATALOG = ("loadtests.add_target", "loadtests.add_endpoint", "loadtests.change_endpoint")


# A flow is part of its target's catalog: whoever may edit the endpoints may edit the flows,
# and whoever may see the endpoints sees the flows, from every surface.
VIEW_FLOWS = "loadtests.view_endpoint"
ADD_FLOWS = "loadtests.add_endpoint"
CHANGE_FLOWS = "loadtests.change_endpoint"
DELETE_FLOWS = "loadtests.delete_endpoint"


# A target's feed is part of the catalog: whoever may change targets may change their feeds.
CHANGE_TARGETS = "loadtests.change_target"
