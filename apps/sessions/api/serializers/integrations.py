"""JSON shape of webhooks."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from apps.sessions.api.surfaces import serializer_via
from apps.sessions.choices import WebhookEvent
from apps.sessions.integrations.webhook_settings import save_webhook
from apps.sessions.models import LoadTestSession, Webhook, target_hosts
from apps.sessions.validation import check_webhook_secret, check_webhook_url


class WebhookSerializer(serializers.ModelSerializer):
    """A webhook; its ``secret`` is write-only (``has_secret`` says whether one is set).
    Saved through ``save_webhook``, which checks who may manage which scope."""

    session = serializers.PrimaryKeyRelatedField(
        queryset=LoadTestSession.objects.all(),
        pk_field=serializers.IntegerField(),
        required=False,
        allow_null=True,
        help_text="Session id; null or omitted: a global webhook (admin role only).",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=Webhook._meta.get_field("secret").max_length,
        validators=[check_webhook_secret],
        help_text="Signs each body (X-Loadtest-Signature); never shown again. Omit on a "
        'change to keep it, send "" to remove it.',
    )
    has_secret = serializers.SerializerMethodField()
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        allow_empty=False,
        max_length=len(WebhookEvent.values),
    )
    url = serializers.CharField(
        max_length=Webhook._meta.get_field("url").max_length, trim_whitespace=False
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "name",
            "url",
            "secret",
            "has_secret",
            "events",
            "format",
            "session",
            "enabled",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_by", "created_at", "updated_at"]

    def get_has_secret(self, webhook) -> bool:
        return bool(webhook.secret)

    def validate_url(self, url: str) -> str:
        try:
            check_webhook_url(url, target_hosts())
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return url

    def validate_events(self, events: list[str]) -> list[str]:
        if len(set(events)) != len(events):
            raise serializers.ValidationError("An event is listed twice.")
        return events

    def create(self, validated_data):
        user = self.context["request"].user
        return save_webhook(Webhook(**validated_data), user=user, via=serializer_via(self.context))

    def update(self, webhook, validated_data):
        for name, value in validated_data.items():
            setattr(webhook, name, value)
        return save_webhook(
            webhook, user=self.context["request"].user, via=serializer_via(self.context)
        )
