"""Webhooks: other systems told what a session did."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.sessions import validation
from apps.sessions.choices import WebhookFormat
from apps.sessions.models.catalog import Target
from apps.sessions.models.sessions import LoadTestSession


class Webhook(models.Model):
    """Where to tell whom about a session's events: for one session, or (``session`` empty)
    for every session.

    ``secret`` signs each body (HMAC-SHA256); it is write-only in the API, masked in the
    admin and the history, and never logged. The URL may carry a credential of its own (a
    Slack incoming-webhook URL does), so events and logs name only its host.
    """

    name = models.CharField(max_length=100, validators=[validation.check_single_line])
    url = models.CharField(
        "URL",
        max_length=validation.WEBHOOK_URL_CHARS_MAX,
        help_text="http(s); on a host load may be sent to, its port must be on "
        "ALLOWED_TARGET_HOSTS too.",
    )
    secret = models.CharField(
        max_length=validation.WEBHOOK_SECRET_CHARS_MAX,
        blank=True,
        validators=[validation.check_webhook_secret],
        help_text="Signs each body (X-Loadtest-Signature); empty: unsigned.",
    )
    events = models.JSONField(
        default=list,
        validators=[validation.check_webhook_events],
        help_text='Which events to send, e.g. ["started", "completed", "failed"].',
    )
    format = models.CharField(
        max_length=10, choices=WebhookFormat.choices, default=WebhookFormat.JSON
    )
    session = models.ForeignKey(
        LoadTestSession,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhooks",
        help_text="Empty: a global webhook, for every session (admin role only).",
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        permissions = [("manage_global_webhooks", "Can manage webhooks for every session")]

    def __str__(self) -> str:
        scope = f"session {self.session_id}" if self.session_id else "global"
        return f"{self.name} ({scope})"

    def clean(self) -> None:
        try:
            validation.check_webhook_url(self.url, target_hosts())
        except ValidationError as exc:
            raise ValidationError({"url": exc.messages}) from exc


def target_hosts() -> list[str]:
    """The hosts of every target: load may be sent there."""
    hosts = []
    for base_url in Target.objects.values_list("base_url", flat=True):
        try:
            hosts.append(urlsplit(base_url).hostname or "")
        except ValueError:  # validated when saved; a row changed behind our back
            continue
    return hosts
