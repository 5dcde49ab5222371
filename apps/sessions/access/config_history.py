"""Configuration history: who changed which field, when.

Recorded by the API's update views, the admin, and ``live.change_users``; never for
statistics or status, which are results, not configuration. Secrets are never stored: every
header value is kept as a fingerprint (so a changed credential still shows as a change), and
the body's and URL's secrets are masked by value (``apps.workers.secrets``).
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

from django.conf import settings

from apps.sessions.models import ConfigChange, Endpoint, Flow, LoadTestSession, Target, Webhook
from apps.workers.secrets import REDACTED, describe_url, endpoint_secrets, mask_secrets

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
            "expected_statuses",
            "checks",
        ),
    ),
    Target: (
        "target",
        ("name", "base_url", "description", "baseline_session", "regression_margin_pct"),
    ),
    Webhook: ("webhook", ("name", "url", "secret", "events", "format", "session", "enabled")),
    # A flow's steps are one more field, "steps": written whole, compared whole.
    Flow: ("flow", ("target", "name", "weight", "description")),
}


def fingerprint(value: str) -> str:
    """REDACTED with a short keyed hash: two versions of a header compare without showing
    either (keyed with SECRET_KEY, so a short secret cannot be found by hashing guesses)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()
    return f"{REDACTED} #{digest[:8]}"


def snapshot(instance) -> dict:
    """The tracked fields' values, JSON-ready, secrets masked."""
    _, fields = TRACKED_FIELDS[type(instance)]
    secrets = (
        endpoint_secrets(instance.headers, instance.body, instance.url)
        if isinstance(instance, Endpoint)
        else set()
    )
    values = {}
    for name in fields:
        field = instance._meta.get_field(name).attname  # a foreign key: its id, "target_id"
        value = getattr(instance, field)
        if isinstance(value, Decimal):
            value = str(value)
        if field == "headers":
            value = {name: fingerprint(str(header)) for name, header in (value or {}).items()}
        elif isinstance(instance, Webhook) and field in ("url", "secret"):
            # A webhook's URL may carry a credential in its path or query (Slack's does):
            # its host is shown, the rest only as a fingerprint.
            if value and field == "url":
                value = f"{describe_url(value)}/... {fingerprint(value)}"
            elif value:
                value = fingerprint(value)
        elif field in ("body", "url"):
            value = mask_secrets(value, secrets)
        values[field] = value
    if isinstance(instance, Flow):
        values["steps"] = _flow_steps(instance)
    return values


def _flow_steps(flow: Flow) -> list[dict]:
    """A flow's steps as stored, for its history: endpoint by id and name."""
    return [
        {
            "endpoint": step.endpoint_id,
            "endpoint_name": step.endpoint.name,
            "think_time_s": step.think_time_s,
            "extract": step.extract,
        }
        for step in flow.steps.select_related("endpoint").order_by("position")
    ]


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


def record_feed_change(
    target: Target, before: dict | None, after: dict | None, user=None, via: str = "api"
) -> ConfigChange | None:
    """One history row on the target, field ``feed``, when its data feed came, changed or
    went: the feeds' summaries (name, columns, rows, size, hash, mode), never their values."""
    if before == after:
        return None
    return ConfigChange.objects.create(
        object_type=TRACKED_FIELDS[Target][0],
        object_id=target.pk,
        object_repr=str(target)[:200],
        field="feed",
        old_value=before,
        new_value=after,
        changed_by=user if user is not None and user.is_authenticated else None,
        via=via,
    )
