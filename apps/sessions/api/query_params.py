"""Query parameters checked before use: a bad one is a 400 that says what to send instead.

DRF's defaults answer a bad ``page`` with 404, ignore a bad ``page_size`` or ``ordering``
silently, and a date out of range reached the database as an OverflowError (a 500).
"""

from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination


def _positive_int(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else None


class StrictPages(PageNumberPagination):
    """Pages of 50; ``page`` must be a number from 1 (or ``last``). A page past the end is
    still a 404, as DRF answers it."""

    invalid_page_message = "Page {page_number} does not exist: {message}."

    def paginate_queryset(self, queryset, request, view=None):
        page = request.query_params.get(self.page_query_param)
        if page is not None and page not in self.last_page_strings and not _positive_int(page):
            raise serializers.ValidationError(
                {self.page_query_param: "Give a page number from 1 (or 'last')."}
            )
        if self.page_size_query_param:
            size = request.query_params.get(self.page_size_query_param)
            if size is not None and not (
                _positive_int(size) and _positive_int(size) <= self.max_page_size
            ):
                raise serializers.ValidationError(
                    {self.page_size_query_param: f"Give a number from 1 to {self.max_page_size}."}
                )
        return super().paginate_queryset(queryset, request, view)


class LongPages(StrictPages):
    """Time series and logs: a day of per-second points is 86,400 rows."""

    page_size = 1000
    page_size_query_param = "page_size"
    max_page_size = 10000


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=`` naming a field it cannot sort by is refused, not ignored."""

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw:
            fields = self.get_valid_fields(queryset, view, {"request": request})
            valid = {name for name, _ in fields}
            terms = [term.strip() for term in raw.split(",") if term.strip()]
            unknown = [term for term in terms if term.removeprefix("-") not in valid]
            if unknown:
                raise serializers.ValidationError(
                    {
                        self.ordering_param: f"Cannot sort by {', '.join(unknown)[:200]}; "
                        f"choose from {', '.join(sorted(valid))} (a leading '-' reverses)."
                    }
                )
        return super().get_ordering(request, queryset, view)


def parse_since(raw: str | None) -> datetime | None:
    """An ISO 8601 time, in UTC (a time without a zone is taken as UTC)."""
    return parse_time(raw, "since")


def parse_time(raw: str | None, name: str) -> datetime | None:
    """An ISO 8601 time or epoch seconds, in UTC (a time without a zone is taken as UTC);
    a bad one is a 400 naming the parameter ``name``."""
    if raw in (None, ""):
        return None
    out_of_range = {name: "Out of range: give a time between years 1 and 9999 in UTC."}
    try:
        epoch_s = float(raw)
    except ValueError:
        pass
    else:
        try:
            return datetime.fromtimestamp(epoch_s, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise serializers.ValidationError(out_of_range) from exc
    try:
        parsed = parse_datetime(raw)
    except ValueError:
        parsed = None
    if parsed is None:
        raise serializers.ValidationError(
            {name: "Give an ISO 8601 date and time, as in 2025-01-31T12:00:00Z, or epoch seconds."}
        )
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise serializers.ValidationError(out_of_range) from exc
