"""Users, the configuration history and the audit log in the admin. A non-superuser has no
way up (see ``UserAdmin``)."""

from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model

from apps.sessions.access.config_history import readable
from apps.sessions.admin.common import ReadOnlyAdmin
from apps.sessions.models import AuditEntry, ConfigChange


@admin.register(ConfigChange)
class ConfigChangeAdmin(ReadOnlyAdmin):
    """The configuration history, its values as text people read rather than JSON."""

    list_display = ["changed_at", "object_type", "object_repr", "field", "old_text",
                    "new_text", "changed_by", "via"]  # fmt: skip
    list_filter = ["object_type", "via", "field"]
    search_fields = ["object_repr", "field"]
    readonly_fields = ["old_text", "new_text"]

    def get_fields(self, request, obj=None):
        return [
            "changed_at", "object_type", "object_id", "object_repr", "field", "old_text",
            "new_text", "changed_by", "via",
        ]  # fmt: skip

    @admin.display(description="from")
    def old_text(self, change: ConfigChange) -> str:
        return readable(change.old_value)

    @admin.display(description="to")
    def new_text(self, change: ConfigChange) -> str:
        return readable(change.new_value)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "method", "path", "action", "status_code", "remote_addr"]
    list_filter = ["method", "status_code"]
    search_fields = ["username", "path", "action"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    """Users, managed by the admin role without a way up.

    Roles are groups; superuser status and raw permissions can be granted only by a
    superuser, and a superuser's account (its password too) only changed by one.
    """

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        return readonly

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)
