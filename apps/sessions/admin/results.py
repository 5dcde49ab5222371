"""A run's results in the admin, read only: statistics, time series, events, errors, requests."""

from django.contrib import admin

from apps.sessions.access.masking import mask_text
from apps.sessions.admin.common import ReadOnlyAdmin, count_column, ms_column
from apps.sessions.models import (
    EndpointStats,
    ErrorSample,
    FlowStats,
    LoadTestSession,
    RequestLogEntry,
    SessionEvent,
    TimeSeriesPoint,
)
from apps.workers.secrets import plan_secrets


class SessionFiguresAdmin(admin.ModelAdmin):
    """Statistics rows by session, read-only: the monitor writes them."""

    # One session's rows, or one target's: never every session's rows mixed with no way to
    # tell them apart (the session column names each row's run).
    list_filter = [
        ("session__target", admin.RelatedOnlyFieldListFilter),
        "session__status",
        ("session", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["session"]
    search_fields = ["name", "session__session_name"]
    ordering = ["-session__created_at", "name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(FlowStats)
class FlowStatsAdmin(SessionFiguresAdmin):
    """Flows' figures by session, read-only, like the endpoint statistics."""

    list_display = [
        "session",
        "name",
        count_column("iterations"),
        count_column("failed_iterations"),
        ms_column("mean_ms"),
        ms_column("p50_ms"),
        ms_column("p95_ms"),
        ms_column("p99_ms"),
        ms_column("max_ms"),
        "updated_at",
    ]


@admin.register(EndpointStats)
class EndpointStatsAdmin(SessionFiguresAdmin):
    list_display = [
        "session",
        "name",
        count_column("requests"),
        count_column("failures"),
        ms_column("p50_ms"),
        ms_column("p95_ms"),
        ms_column("p99_ms"),
        ms_column("max_ms"),
        "updated_at",
    ]

    def get_fields(self, request, obj=None):
        # Figures are read by every role: the URL's secrets (``?api_key=``) are masked.
        fields = super().get_fields(request, obj)
        return list(dict.fromkeys("masked_url" if name == "url" else name for name in fields))

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "masked_url"]

    @admin.display(description="URL")
    def masked_url(self, row: EndpointStats) -> str:
        return session_masked(row.session, row.url)


@admin.register(TimeSeriesPoint)
class TimeSeriesPointAdmin(admin.ModelAdmin):
    list_display = [
        "session",
        "timestamp",
        "resolution_s",
        count_column("requests"),
        count_column("failures"),
        ms_column("mean_ms", sortable=False),
    ]
    list_filter = ["session"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ErrorSample)
class ErrorSampleAdmin(ReadOnlyAdmin):
    list_display = ["at", "session", "endpoint", "failure_class", "status", "message"]
    list_filter = ["failure_class", "session"]
    search_fields = ["message", "trace_id"]


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "session", "kind", "masked_message", "actor", "via", "hostname", "shard"]
    list_filter = ["kind", "via", "session"]
    search_fields = ["message", "actor"]
    list_select_related = ["session"]

    def get_fields(self, request, obj=None):
        # A message may quote a configured secret (an end detail): masked, as in the report.
        fields = super().get_fields(request, obj)
        return list(dict.fromkeys("masked_message" if f == "message" else f for f in fields))

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "masked_message"]

    @admin.display(description="message")
    def masked_message(self, event: SessionEvent) -> str:
        return session_masked(event.session, event.message)


@admin.register(RequestLogEntry)
class RequestLogEntryAdmin(ReadOnlyAdmin):
    """A session's request log is part of its results: whoever may view sessions may read it,
    in the admin as in the API."""

    list_display = ["at", "session", "endpoint", "method", "path", "status", "failure_class",
                    ms_column("latency_ms"), "hostname"]  # fmt: skip
    list_filter = ["session", "failure_class", "endpoint"]
    search_fields = ["endpoint", "path", "trace_id"]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("loadtests.view_loadtestsession")


def session_masked(session: LoadTestSession, text: str) -> str:
    """``text`` with the secrets of the session's plan masked."""
    return mask_text(text, plan_secrets(session.read_plan()))
