"""``loadtest import-endpoints FILE``: a target's catalog of endpoints from a JSON or YAML file.

The file is ``{"target": {"name", "base_url", "description"}, "endpoints": [...]}`` (or just
the list of endpoints, with ``--target``), each endpoint in the API's fields (``name``,
``url``, ``method``, ``weight``, ``timeout``, ``description``, ``headers``, ``body``), and
optionally ``"flows": [{"name", "weight", "description", "steps": [{"endpoint": <name>,
"think_time_s", "extract"}]}]``. The target may name a data feed,
``feed: {file: users.csv, mode: random}`` (the CSV's path relative to the catalog file),
stored with the endpoints and flows or not at all. ``examples/demo-endpoints.json`` is the
demo target's. Importing again updates endpoints and flows by name (recorded in the
configuration history) and adds new ones; none is deleted.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.sessions.catalog.feeds import save_feed
from apps.sessions.catalog.imports import import_catalog
from apps.sessions.cli.config_file import ConfigError, read_document
from apps.sessions.cli.feed_command import FeedCommandError, read_catalog_feed


class CatalogError(Exception):
    """The file is not a usable catalog; the message names the field."""


def import_endpoints(path: str, base_url: str | None = None) -> str:
    try:
        document, _ = read_document(path)
    except ConfigError as exc:
        raise CatalogError(str(exc)) from exc
    if isinstance(document, list):
        document = {"endpoints": document}
    if not isinstance(document, dict):
        raise CatalogError(f"{path}: must be an object with 'target' and 'endpoints'.")
    unknown = sorted(str(key) for key in document if key not in ("target", "endpoints", "flows"))
    if unknown:
        raise CatalogError(f"{path}: unknown field '{unknown[0][:60]}'; the fields are "
                           "target, endpoints, flows.")  # fmt: skip
    target = document.get("target") or {}
    if not isinstance(target, dict):
        raise CatalogError(f"{path}: target: must be an object with name, base_url, description.")
    if base_url is not None:
        target = {**target, "base_url": base_url}
    if not target.get("base_url"):
        raise CatalogError(f"{path}: target.base_url: required (in the file or --target).")
    endpoints = document.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        raise CatalogError(f"{path}: endpoints: must be a non-empty list.")
    flows = document.get("flows") or []
    if not isinstance(flows, list):
        raise CatalogError(f"{path}: flows: must be a list of flows (name, weight, steps).")
    feed = None
    if "feed" in target:
        target = dict(target)
        try:
            feed = read_catalog_feed(path, target.pop("feed"))
        except FeedCommandError as exc:
            raise CatalogError(str(exc)) from exc
    try:
        with transaction.atomic():  # the endpoints, flows and feed, or nothing
            found, created, updated = import_catalog(target, endpoints, flows=flows)
            if feed is not None:
                stored = save_feed(
                    found, feed.data, mode=feed.mode, filename=feed.filename, via="cli"
                )
    except ValidationError as exc:
        problems = (
            [f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()]
            if hasattr(exc, "error_dict")
            else exc.messages
        )
        raise CatalogError(f"{path}: {_named_entry(problems[0], endpoints)}") from exc
    report = (
        f"Target {found.pk} '{found.name}' ({found.base_url}): {created} endpoint(s) added, "
        f"{updated} updated, {found.endpoints.count()} in all"
        + (f"; {len(flows)} flow(s) written, {found.flows.count()} in all." if flows else ".")
    )
    if feed is not None:
        report += (
            f" Data feed {stored.filename}: {stored.row_count:,} rows of "
            f"{', '.join(stored.columns)}, mode {stored.mode}."
        )
    return report


def _named_entry(problem: str, endpoints: list) -> str:
    """``problem`` with the name of the endpoint it is about in front, when it is about one
    (``endpoints[2].body: ...``): in a long file, the name is what a reader looks for."""
    match = re.match(r"endpoints\[(\d+)\]", problem)
    if match is None or int(match.group(1)) >= len(endpoints):
        return problem
    entry = endpoints[int(match.group(1))]
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"endpoint {str(name)[:100]!r}: {problem}" if isinstance(name, str) else problem
