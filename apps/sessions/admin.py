"""The Django admin: manage the catalog and sessions, start and stop them, read results."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from . import history, services
from .models import (
    AuditEntry,
    ConfigChange,
    Endpoint,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    SessionEvent,
    Target,
    TimeSeriesPoint,
)


class HistoryAdminMixin:
    """Record configuration changes made in the admin, as the API does."""

    def save_model(self, request, obj, form, change) -> None:
        before = history.snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        if before is not None:
            history.record_changes(obj, before, user=request.user, via="admin")

    def save_formset(self, request, form, formset, change) -> None:
        # The forms have already copied the new values onto their instances: read the old
        # ones from the database.
        befores = {
            inline.instance.pk: history.snapshot(
                type(inline.instance).objects.get(pk=inline.instance.pk)
            )
            for inline in formset.initial_forms
            if inline.has_changed() and type(inline.instance) in history.TRACKED_FIELDS
        }
        super().save_formset(request, form, formset, change)
        for instance, _ in formset.changed_objects:
            if instance.pk in befores:
                history.record_changes(instance, befores[instance.pk], user=request.user,
                                       via="admin")  # fmt: skip


class EndpointInline(admin.TabularInline):
    model = Endpoint
    extra = 0
    fields = ["name", "method", "url", "weight", "timeout_s", "description"]


@admin.register(Target)
class TargetAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ["name", "base_url", "endpoint_count", "updated_at"]
    search_fields = ["name", "base_url"]
    inlines = [EndpointInline]

    @admin.display(description="endpoints")
    def endpoint_count(self, target: Target) -> int:
        return target.endpoints.count()


@admin.register(Endpoint)
class EndpointAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ["name", "target", "method", "url", "weight", "timeout_s"]
    list_filter = ["target", "method"]
    search_fields = ["name", "url", "description"]


class EndpointStatsInline(admin.TabularInline):
    model = EndpointStats
    extra = 0
    can_delete = False
    fields = [
        "name",
        "requests",
        "failures",
        "failures_by_class",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class SessionEventInline(admin.TabularInline):
    model = SessionEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "message", "hostname", "shard"]
    readonly_fields = fields
    ordering = ["-at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LoadTestSession)
class LoadTestSessionAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "session_name",
        "target",
        "status",
        "concurrent_users",
        "target_rps",
        "duration_minutes",
        "total_requests",
        "total_failures",
        "start_time",
        "end_time",
        "end_reason",
    ]
    list_filter = ["status", "end_reason", "target"]
    search_fields = ["session_name"]
    actions = ["start_sessions", "stop_sessions"]
    inlines = [EndpointStatsInline, SessionEventInline]
    readonly_fields = [
        "status",
        "created_at",
        "created_by",
        "start_time",
        "load_started_at",
        "end_time",
        "started_by",
        "stopped_by",
        "status_detail",
        "end_reason",
        "end_detail",
        "total_requests",
        "total_failures",
        "stats_updated_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != "pending":
            # A session's configuration is what ran; it cannot be edited after the start.
            return [field.name for field in self.model._meta.fields if field.name != "id"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Start selected sessions")
    def start_sessions(self, request, queryset) -> None:
        self._apply(request, queryset, services.start_session, "started")

    @admin.action(description="Stop selected sessions")
    def stop_sessions(self, request, queryset) -> None:
        self._apply(request, queryset, services.stop_session, "asked to stop")

    def _apply(self, request, queryset, service, verb: str) -> None:
        for session in queryset:
            try:
                service(session, user=request.user)
            except (services.SessionStateError, services.EngineUnavailable) as exc:
                self.message_user(request, f"{session}: {exc}", messages.ERROR)
            except ValidationError as exc:
                self.message_user(request, f"{session}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{session}: {verb}.", messages.SUCCESS)


@admin.register(EndpointStats)
class EndpointStatsAdmin(admin.ModelAdmin):
    list_display = [
        "session",
        "name",
        "requests",
        "failures",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "updated_at",
    ]
    list_filter = ["session"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TimeSeriesPoint)
class TimeSeriesPointAdmin(admin.ModelAdmin):
    list_display = ["session", "timestamp", "requests", "failures", "mean_ms"]
    list_filter = ["session"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the system: readable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConfigChange)
class ConfigChangeAdmin(ReadOnlyAdmin):
    list_display = ["changed_at", "object_type", "object_repr", "field", "old_value",
                    "new_value", "changed_by", "via"]  # fmt: skip
    list_filter = ["object_type", "via", "field"]
    search_fields = ["object_repr", "field"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "method", "path", "action", "status_code", "remote_addr"]
    list_filter = ["method", "status_code"]
    search_fields = ["username", "path", "action"]


@admin.register(ErrorSample)
class ErrorSampleAdmin(ReadOnlyAdmin):
    list_display = ["at", "session", "endpoint", "failure_class", "status", "message"]
    list_filter = ["failure_class", "session"]


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "session", "kind", "message", "hostname", "shard"]
    list_filter = ["kind", "session"]
    search_fields = ["message"]
