"""A target's data feed saved, re-moded and removed: the one path of every surface."""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.sessions.access import config_history
from apps.sessions.access.permissions import CHANGE_TARGETS, require_permission
from apps.sessions.catalog.feed_csv import FeedError, parse_feed_csv
from apps.sessions.choices import FeedMode
from apps.sessions.models import DataFeed, Target

FEED_FILENAME_CHARS_MAX = 200


def check_feed_mode(mode: object) -> str:
    if mode not in FeedMode.values:
        raise ValidationError(
            {
                "mode": [
                    f"Unknown mode {str(mode)[:40]!r}; choose one of {', '.join(FeedMode.values)}."
                ]
            }
        )
    return str(mode)


def clean_feed_filename(filename: object) -> str:
    """The file's own name, without directories or characters a page or log line cannot show."""
    name = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    return name[:FEED_FILENAME_CHARS_MAX]


def save_feed(
    target: Target,
    data: bytes,
    *,
    mode: object = None,
    filename: object = "",
    user=None,
    via: str = "api",
) -> DataFeed:
    """Give ``target`` the data feed in ``data`` (CSV bytes), replacing any it had; ``mode``
    None keeps the current one (sequential for a new feed). Checked whole first (see
    ``feeds.parse_feed_csv``): a bad file changes nothing. Recorded in the target's
    configuration history (field ``feed``: name, columns, rows, size, hash, mode; never the
    values)."""
    require_permission(user, CHANGE_TARGETS, "change targets' data feeds")
    if mode is not None:
        mode = check_feed_mode(mode)
    try:
        columns, rows = parse_feed_csv(data)
    except FeedError as exc:
        raise ValidationError({"file": [str(exc)]}) from exc
    with transaction.atomic():
        target = Target.objects.select_for_update().get(pk=target.pk)
        feed = DataFeed.objects.filter(target=target).first()
        before = feed.summary() if feed is not None else None
        if feed is None:
            feed = DataFeed(target=target)
        feed.filename = clean_feed_filename(filename)
        feed.columns = columns
        feed.rows = rows
        feed.row_count = len(rows)
        feed.size_bytes = len(data)
        feed.sha256 = hashlib.sha256(data).hexdigest()
        if mode is not None:
            feed.mode = mode
        feed.uploaded_at = timezone.now()
        feed.uploaded_by = user if user is not None and user.is_authenticated else None
        feed.save()
        config_history.record_feed_change(target, before, feed.summary(), user=user, via=via)
    return feed


def set_feed_mode(target: Target, mode: object, *, user=None, via: str = "api") -> DataFeed:
    """Change how the target's feed hands out rows (the rows stay); sessions started later
    use it."""
    require_permission(user, CHANGE_TARGETS, "change targets' data feeds")
    mode = check_feed_mode(mode)
    with transaction.atomic():
        feed = DataFeed.objects.select_for_update().filter(target=target).first()
        if feed is None:
            raise DataFeed.DoesNotExist(f"Target '{target.name}' has no data feed.")
        before = feed.summary()
        feed.mode = mode
        feed.save(update_fields=["mode"])
        config_history.record_feed_change(target, before, feed.summary(), user=user, via=via)
    return feed


def delete_feed(target: Target, *, user=None, via: str = "api") -> bool:
    """Remove the target's data feed; returns whether it had one. Sessions already started
    keep theirs (it is in their plan)."""
    require_permission(user, CHANGE_TARGETS, "change targets' data feeds")
    with transaction.atomic():
        feed = DataFeed.objects.select_for_update().filter(target=target).first()
        if feed is None:
            return False
        before = feed.summary()
        feed.delete()
        config_history.record_feed_change(target, before, None, user=user, via=via)
    return True
