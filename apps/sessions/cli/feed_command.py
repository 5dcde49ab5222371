"""``loadtest feed upload|show|delete TARGET``: a target's data feed from the command line, and
the ``feed:`` of a catalog file's target (``loadtest import-endpoints``).

Like the other subcommands it acts as the system (whoever runs ``manage.py`` holds the
server's secrets); the changes go through ``services`` all the same, so they are checked
and recorded in the target's configuration history (``via: cli``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.sessions.catalog.feed_csv import PREVIEW_ROWS, FeedError, parse_feed_csv
from apps.sessions.catalog.feeds import check_feed_mode, delete_feed, save_feed
from apps.sessions.choices import FeedMode
from apps.sessions.cli.config_file import find_target
from apps.sessions.models import DataFeed, Target

FEED_FILE_FIELDS = ("file", "mode")


class FeedCommandError(Exception):
    """The command cannot do what was asked; the message says why (exit 2)."""


def target_of(reference: str) -> Target:
    """A target by id, base URL or name."""
    if reference.strip().isdigit():
        target = Target.objects.filter(pk=int(reference)).first()
        if target is not None:
            return target
    try:
        return find_target(reference)
    except ValidationError as exc:
        messages = exc.message_dict["target"] if hasattr(exc, "error_dict") else exc.messages
        raise FeedCommandError(f"target: {messages[0]}") from exc


def read_feed_file(path: Path) -> bytes:
    """The file's bytes; one larger than FEED_MAX_BYTES is refused before it is read."""
    try:
        size = path.stat().st_size
        if size > settings.FEED_MAX_BYTES:
            raise FeedCommandError(
                f"{path}: {size:,} bytes; a data feed may be at most "
                f"{settings.FEED_MAX_BYTES:,} bytes (FEED_MAX_BYTES)."
            )
        return path.read_bytes()
    except OSError as exc:
        raise FeedCommandError(f"{path}: cannot read it ({exc.strerror or exc}).") from exc


def _words(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def upload(reference: str, file: str, mode: str | None) -> str:
    target = target_of(reference)
    path = Path(file)
    data = read_feed_file(path)
    try:
        feed = save_feed(target, data, mode=mode, filename=path.name, via="cli")
    except ValidationError as exc:
        messages = exc.message_dict if hasattr(exc, "error_dict") else {"file": exc.messages}
        if "file" in messages:
            raise FeedCommandError(f"{path}: {messages['file'][0]}") from exc
        raise FeedCommandError(_words(exc)) from exc
    return (
        f"Target {target.pk} '{target.name}': data feed {feed.filename}, "
        f"{feed.row_count:,} rows of {', '.join(feed.columns)}, mode {feed.mode}."
    )


def show(reference: str) -> str:
    target = target_of(reference)
    feed = DataFeed.objects.filter(target=target).first()
    if feed is None:
        return f"Target {target.pk} '{target.name}' has no data feed."
    lines = [
        f"Target {target.pk} '{target.name}': data feed {feed.filename or '(unnamed)'}",
        f"  columns:  {', '.join(feed.columns)}",
        f"  rows:     {feed.row_count:,} ({feed.size_bytes:,} bytes)",
        f"  mode:     {feed.mode}",
        f"  uploaded: {feed.uploaded_at:%Y-%m-%d %H:%M:%S %Z}"
        + (f" by {feed.uploaded_by.get_username()}" if feed.uploaded_by else ""),
        f"  first rows (of {feed.row_count:,}):",
    ]
    lines += [f"    {','.join(row)}" for row in feed.preview(PREVIEW_ROWS)]
    return "\n".join(lines)


def delete(reference: str) -> str:
    target = target_of(reference)
    if delete_feed(target, via="cli"):
        return f"Target {target.pk} '{target.name}': data feed deleted."
    return f"Target {target.pk} '{target.name}' had no data feed: nothing to delete."


# --- the catalog file's target.feed -----------------------------------------------------------


@dataclass
class FeedSpec:
    """A catalog file's ``target.feed``: the CSV (read and checked) and the mode."""

    data: bytes
    filename: str
    mode: str | None


def read_catalog_feed(catalog_path: str | Path, value: object) -> FeedSpec:
    """``target.feed`` of the catalog file at ``catalog_path``: ``{file: CSV path relative to
    the catalog file, mode: sequential|random|per_user}``, checked whole; ``FeedCommandError``
    naming the file, the line of ``feed`` and the key otherwise."""
    catalog_path = Path(catalog_path)
    line = _feed_line(catalog_path)
    where = f"{catalog_path}:{line}" if line else str(catalog_path)
    if not isinstance(value, dict):
        raise FeedCommandError(
            f"{where}: target.feed: must be a mapping with file (a CSV file, relative to this "
            f"file) and mode ({', '.join(FeedMode.values)})."
        )
    unknown = sorted(str(key) for key in value if key not in FEED_FILE_FIELDS)
    if unknown:
        raise FeedCommandError(
            f"{where}: target.feed: unknown field '{unknown[0][:60]}'; the fields are "
            f"{', '.join(FEED_FILE_FIELDS)}."
        )
    file = value.get("file")
    if not isinstance(file, str) or not file.strip():
        raise FeedCommandError(
            f"{where}: target.feed.file: required: the CSV file's path, relative to this file."
        )
    mode = value.get("mode")
    if mode is not None:
        try:
            mode = check_feed_mode(mode)
        except ValidationError as exc:
            raise FeedCommandError(
                f"{where}: target.feed.mode: {exc.message_dict['mode'][0]}"
            ) from exc
    path = catalog_path.parent / file
    try:
        data = read_feed_file(path)
    except FeedCommandError as exc:
        raise FeedCommandError(f"{where}: target.feed.file: {exc}") from exc
    try:
        parse_feed_csv(data)
    except FeedError as exc:
        raise FeedCommandError(f"{where}: target.feed.file: {path}: {exc}") from exc
    return FeedSpec(data=data, filename=path.name, mode=mode)


def _feed_line(path: Path) -> int | None:
    """The line of ``feed`` under ``target`` in the catalog file (when it can be told)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            return None
        for key, value in getattr(node, "value", []) if isinstance(node, yaml.MappingNode) else []:
            if key.value == "target" and isinstance(value, yaml.MappingNode):
                for inner_key, _ in value.value:
                    if inner_key.value == "feed":
                        return inner_key.start_mark.line + 1
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if '"feed"' in line:
            return number
    return None
