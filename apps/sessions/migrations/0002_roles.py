"""The viewer, operator and admin groups with their permissions.

The role -> permissions table below is frozen as apps/sessions/roles.py had it when this
migration was written (commit f5d359a), and so is the code that applies it. A migration must
do the same thing whenever it runs; read from roles.py, a later change to the roles would
change what this old migration does to a fresh database. Later changes to the roles reach the
groups through ``roles.sync_roles``, which the ``prepare`` command runs after migrating.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

_VIEW = [
    "loadtests.view_target",
    "loadtests.view_endpoint",
    "loadtests.view_loadtestsession",
    "loadtests.view_endpointstats",
    "loadtests.view_timeseriespoint",
    "loadtests.view_sessionevent",
    "loadtests.view_errorsample",
    "loadtests.view_configchange",
]
_OPERATE = [
    "loadtests.add_loadtestsession",
    "loadtests.change_loadtestsession",
    "loadtests.delete_loadtestsession",
    "loadtests.operate_loadtestsession",
]
_ADMINISTER = [
    "loadtests.add_target",
    "loadtests.change_target",
    "loadtests.delete_target",
    "loadtests.add_endpoint",
    "loadtests.change_endpoint",
    "loadtests.delete_endpoint",
    "loadtests.emergency_stop",
    "loadtests.view_auditentry",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.delete_user",
    "auth.view_group",
]
ROLE_PERMISSIONS = {
    "viewer": _VIEW,
    "operator": _VIEW + _OPERATE,
    "admin": _VIEW + _OPERATE + _ADMINISTER,
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permissions.append(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loadtests", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
