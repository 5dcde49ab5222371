"""JSON shapes of the record of who did what: configuration changes and the audit log."""

from rest_framework import serializers

from apps.sessions.models import AuditEntry, ConfigChange


class ConfigChangeSerializer(serializers.ModelSerializer):
    changed_by = serializers.StringRelatedField()

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
        ]


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
