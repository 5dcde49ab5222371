"""Configuration history (the seed's 設定変更の履歴): who changed which field, when.

Recorded by the API's update views, the admin, and ``services.change_users``; never for
statistics or status, which are results, not configuration. Header values that carry
credentials are stored masked.
"""

from __future__ import annotations

from decimal import Decimal

from .models import ConfigChange, Endpoint, LoadTestSession, Target

SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}
)
REDACTED = "[redacted]"

TRACKED_FIELDS: dict[type, tuple[str, tuple[str, ...]]] = {
    LoadTestSession: ("session", LoadTestSession.CONFIG_FIELDS),
    Endpoint: (
        "endpoint",
        (
            "target",
            "name",
            "url",
            "method",
            "weight",
            "timeout_s",
            "description",
            "headers",
            "body",
        ),
    ),
    Target: ("target", ("name", "base_url", "description")),
}


def mask_headers(headers: dict) -> dict:
    return {
        name: REDACTED if name.lower() in SENSITIVE_HEADERS else value
        for name, value in (headers or {}).items()
    }


def snapshot(instance) -> dict:
    """The tracked fields' values, JSON-ready, secrets masked."""
    _, fields = TRACKED_FIELDS[type(instance)]
    values = {}
    for name in fields:
        field = instance._meta.get_field(name).attname  # a foreign key: its id, "target_id"
        value = getattr(instance, field)
        if isinstance(value, Decimal):
            value = str(value)
        if field == "headers":
            value = mask_headers(value)
        values[field] = value
    return values


def record_changes(instance, before: dict, user=None, via: str = "api") -> list[ConfigChange]:
    """Write one history row per field that differs between ``before`` and now."""
    object_type, _ = TRACKED_FIELDS[type(instance)]
    after = snapshot(instance)
    changes = [
        ConfigChange(
            object_type=object_type,
            object_id=instance.pk,
            object_repr=str(instance)[:200],
            field=field,
            old_value=before.get(field),
            new_value=value,
            changed_by=user if user is not None and user.is_authenticated else None,
            via=via,
        )
        for field, value in after.items()
        if before.get(field) != value
    ]
    return ConfigChange.objects.bulk_create(changes)


def history_of(instance):
    object_type, _ = TRACKED_FIELDS[type(instance)]
    return ConfigChange.objects.filter(object_type=object_type, object_id=instance.pk)
