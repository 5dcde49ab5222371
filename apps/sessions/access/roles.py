"""Who may do what: three roles, as Django groups with model permissions.

- viewer:   read everything about targets, endpoints, sessions and their results;
- operator: viewer + create, edit, delete, start, stop and resize sessions, schedule them,
            and manage the sessions' webhooks (a webhook URL may itself be a credential, so
            viewers see none);
- admin:    operator + the catalog (targets, endpoints), global webhooks (for every session),
            the emergency stop, the audit log, and user management.
Superusers have every permission. The groups are created by a migration (0002_roles, with its
own frozen copy of this table) and brought to this table by the ``prepare`` command; they can be
edited in the admin. The API checks permissions, never group names.
"""

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"

_VIEW = [
    "loadtests.view_target",
    "loadtests.view_endpoint",
    "loadtests.view_loadtestsession",
    "loadtests.view_endpointstats",
    "loadtests.view_flowstats",
    "loadtests.view_timeseriespoint",
    "loadtests.view_sessionevent",
    "loadtests.view_errorsample",
    "loadtests.view_configchange",
    "loadtests.view_schedule",
]
_OPERATE = [
    "loadtests.add_loadtestsession",
    "loadtests.change_loadtestsession",
    "loadtests.delete_loadtestsession",
    "loadtests.operate_loadtestsession",
    "loadtests.view_webhook",
    "loadtests.add_webhook",
    "loadtests.change_webhook",
    "loadtests.delete_webhook",
    "loadtests.add_schedule",
    "loadtests.change_schedule",
    "loadtests.delete_schedule",
]
_ADMINISTER = [
    "loadtests.add_target",
    "loadtests.change_target",
    "loadtests.delete_target",
    "loadtests.add_endpoint",
    "loadtests.change_endpoint",
    "loadtests.delete_endpoint",
    "loadtests.emergency_stop",
    "loadtests.manage_global_webhooks",
    "loadtests.view_auditentry",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.delete_user",
    "auth.view_group",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    VIEWER: _VIEW,
    OPERATOR: _VIEW + _OPERATE,
    ADMIN: _VIEW + _OPERATE + _ADMINISTER,
}


def sync_roles(group_model, permission_model) -> None:
    """Create the role groups and give them exactly their permissions.

    The ``prepare`` command calls it after migrating, so a change to this table reaches
    existing databases, and edited or deleted groups are repaired.
    """
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permissions.append(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)
