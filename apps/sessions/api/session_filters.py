"""Finding past sessions: the history list's filters, shared by ``GET /api/sessions/`` and the
dashboard's Sessions page, so both read the same query string the same way.

Every parameter may repeat (``status=completed&status=failed``) or hold a comma-separated
list (``status=completed,failed``); several values of one parameter mean any of them, except
``tag``, where a session must carry every tag given. A bad value is a 400 naming the
parameter, never a filter silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from django.utils.datastructures import MultiValueDict
from rest_framework import serializers
from rest_framework.filters import BaseFilterBackend

from apps.sessions.api.query_params import parse_time
from apps.sessions.choices import SessionStatus
from apps.sessions.models import LoadTestSession
from apps.sessions.validation import TAGS_MAX, check_single_line, clean_tags

# Time filters: parameter -> the lookup it applies.
TIME_FILTERS = {
    "started_after": "start_time__gte",
    "started_before": "start_time__lt",
    "created_after": "created_at__gte",
    "created_before": "created_at__lt",
}
_PLAIN_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")  # a day, as a date picker sends it
VALUES_MAX = 50  # of one parameter: a list of ids, not a way to make a huge query
NAME_CHARS_MAX = 200


def _values(params: Mapping, name: str) -> list[str]:
    raw = params.getlist(name) if isinstance(params, MultiValueDict) else [params.get(name)]
    values = [part.strip() for text in raw if text for part in str(text).split(",")]
    values = [value for value in values if value]
    if len(values) > VALUES_MAX:
        raise serializers.ValidationError({name: f"At most {VALUES_MAX} values."})
    return values


def _ids(params: Mapping, name: str) -> list[int]:
    values = _values(params, name)
    bad = [value for value in values if not (value.isascii() and value.isdigit())]
    if bad or any(len(value) > 18 for value in values):
        shown = (bad or values)[0][:40]
        raise serializers.ValidationError({name: f"Give ids (whole numbers), not '{shown}'."})
    return [int(value) for value in values]


def filter_sessions(sessions: QuerySet[LoadTestSession], params: Mapping) -> QuerySet:
    """``sessions`` narrowed by the query ``params`` (target, status, tag, name and the time
    filters); a DRF ``ValidationError`` keyed by the parameter for a bad value."""
    targets = _ids(params, "target")
    if targets:
        sessions = sessions.filter(target__in=targets)
    statuses = _values(params, "status")
    unknown = [status for status in statuses if status not in SessionStatus.values]
    if unknown:
        raise serializers.ValidationError(
            {
                "status": f"No status '{unknown[0][:40]}'; choose from "
                f"{', '.join(SessionStatus.values)}."
            }
        )
    if statuses:
        sessions = sessions.filter(status__in=statuses)
    try:
        tags = clean_tags(_values(params, "tag"))
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"tag": exc.messages}) from exc
    for tag in tags:
        sessions = sessions.filter(has_tag(tag))
    name = str(params.get("name") or "").strip()
    if len(name) > NAME_CHARS_MAX:
        raise serializers.ValidationError({"name": f"At most {NAME_CHARS_MAX} characters."})
    try:
        check_single_line(name)  # a NUL, say, which PostgreSQL refuses in any query
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"name": exc.messages}) from exc
    if name:
        sessions = sessions.filter(session_name__icontains=name)
    for parameter, lookup in TIME_FILTERS.items():
        raw = params.get(parameter)
        when = parse_time(raw, parameter)
        if when is not None and parameter.endswith("_before") and _PLAIN_DATE.match(str(raw)):
            # "Started before 2026-11-30" from a date picker means up to the end of that day:
            # from and before the same day find that day's runs.
            when += timedelta(days=1)
        if when is not None:
            sessions = sessions.filter(**{lookup: when})
    return sessions


def has_tag(tag: str) -> Q:
    """Sessions whose tags hold ``tag``: one JSON element lookup per position, which every
    database Django supports can answer (a JSON ``contains`` is PostgreSQL's alone), bounded
    by TAGS_MAX."""
    query = Q()
    for position in range(TAGS_MAX):
        query |= Q(**{f"tags__{position}": tag})
    return query


class SessionHistoryFilter(BaseFilterBackend):
    """``filter_sessions`` on the API's list of sessions."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) != "list":
            return queryset
        return filter_sessions(queryset, request.query_params)
