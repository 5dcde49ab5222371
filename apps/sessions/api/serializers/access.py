"""JSON shapes of the record of who did what: configuration changes and the audit log."""

from rest_framework import serializers

from apps.sessions.access.config_history import readable
from apps.sessions.models import AuditEntry, ConfigChange


class ConfigChangeSerializer(serializers.ModelSerializer):
    """One change of one field: ``old_value`` and ``new_value`` as stored (JSON), and
    ``old_text`` and ``new_text`` as the pages show them (``config_history.readable``)."""

    changed_by = serializers.StringRelatedField()
    old_text = serializers.SerializerMethodField()
    new_text = serializers.SerializerMethodField()

    class Meta:
        model = ConfigChange
        fields = [
            "changed_at",
            "changed_by",
            "via",
            "object_type",
            "object_id",
            "field",
            "old_value",
            "new_value",
            "old_text",
            "new_text",
        ]

    def get_old_text(self, change) -> str:
        return readable(change.old_value)

    def get_new_text(self, change) -> str:
        return readable(change.new_value)


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "at",
            "username",
            "method",
            "path",
            "action",
            "status_code",
            "remote_addr",
            "user_agent",
        ]
