"""Configuration history: who changed which field, when.

Recorded by the services every surface calls (``via``: page, api, admin, cli, schedule,
system); never for statistics or status, which are results, not configuration. Values are
stored as JSON and shown as text people read (``readable``). Secrets are never stored: every
header value is kept as a fingerprint (so a changed credential still shows as a change), and
the body's and URL's secrets are masked by value (``apps.workers.secrets``).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
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


# How much of a value the history shows: its text is cut after VALUE_TEXT_CHARS (the count of
# the rest said), lists and mappings after VALUE_ITEMS_SHOWN items, nesting after
# VALUE_DEPTH_SHOWN levels. A stored value is bounded by the fields' own limits, but a page
# of history must stay readable whatever one row holds.
VALUE_TEXT_CHARS = 500
VALUE_ITEMS_SHOWN = 50
VALUE_DEPTH_SHOWN = 4
# Characters that would garble the page's text or reorder it (line breaks, bidirectional
# overrides) are shown as escapes rather than acted on.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def readable(value) -> str:
    """A history value as text people read: weights as "checkout 2, browse 1", lists as
    "a, b", nested mappings in parentheses, none as "(none)", never a Python or JSON repr."""
    text = _readable(value, 0)
    if len(text) > VALUE_TEXT_CHARS:
        text = f"{text[:VALUE_TEXT_CHARS]}… ({len(text) - VALUE_TEXT_CHARS:,} more characters)"
    return text


def _readable(value, depth: int) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return _integer(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # 2.0 -> "2", as people write a weight
        return repr(value)  # 0.1, 1e+300, nan, inf
    if isinstance(value, str):
        return _text(value) if value else "(empty)"
    if isinstance(value, dict | list | tuple) and not value:
        return "(none)"
    if depth >= VALUE_DEPTH_SHOWN:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())
        # A mapping of numbers (weights) reads "checkout 2, browse 1"; others "name: value".
        numbers = all(_is_number(item) for _, item in items)
        parts = [
            f"{_text(str(key))}{' ' if numbers else ': '}{_readable(item, depth + 1)}"
            for key, item in items[:VALUE_ITEMS_SHOWN]
        ]
        return _joined(parts, len(items), ", ", depth, "()")
    if isinstance(value, list | tuple):
        shown = value[:VALUE_ITEMS_SHOWN]
        nested = any(isinstance(item, dict | list | tuple) for item in shown)
        parts = [_readable(item, depth + 1) for item in shown]
        return _joined(parts, len(value), "; " if nested else ", ", depth, "[]")
    return _text(str(value))


def _joined(parts: list[str], total: int, separator: str, depth: int, brackets: str) -> str:
    if total > len(parts):
        parts.append(f"… {total - len(parts):,} more")
    text = separator.join(parts)
    return f"{brackets[0]}{text}{brackets[1]}" if depth else text


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # past Python's digit limit for int -> str (4,300 digits)
        return f"a number of {value.bit_length():,} bits"


def _text(value: str) -> str:
    """A string as shown: its head only (the whole is cut later anyway), control and
    direction characters as escapes."""
    head = value[: VALUE_TEXT_CHARS + 1]
    shown = "".join(
        char.encode("unicode_escape").decode("ascii")
        if char in _BIDI_CONTROLS or unicodedata.category(char) == "Cc"
        else char
        for char in head
    )
    return shown + ("…" if len(value) > len(head) else "")
