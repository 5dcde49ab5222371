"""The record of who did what: configuration changes and the audit log."""

from django.conf import settings
from django.db import models

from apps.sessions.choices import Via


class ConfigChange(models.Model):
    """Who changed which field of a session, endpoint or target, when, from what to what
    (the configuration history)."""

    object_type = models.CharField(max_length=20)  # "session", "endpoint", "target"
    object_id = models.BigIntegerField()
    object_repr = models.CharField(max_length=200)
    field = models.CharField(max_length=100)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    via = models.CharField(max_length=10, choices=Via.choices)  # the surface it came through

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [models.Index(fields=["object_type", "object_id", "-changed_at"])]

    def __str__(self) -> str:
        change = f"{self.old_value!r} -> {self.new_value!r}"
        return f"{self.object_type} {self.object_id}.{self.field}: {change}"


class AuditEntry(models.Model):
    """Every state-changing call to the API or the admin: who, when, what, from where.

    Written by ``apps.sessions.access.audit.AuditMiddleware`` after the response, whatever its
    outcome, so refused attempts are on record too. Request bodies are never stored.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    action = models.CharField(max_length=200, blank=True)
    status_code = models.PositiveSmallIntegerField()
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or 'anonymous'} {self.method} {self.path}"
        )
