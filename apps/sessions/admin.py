"""The Django admin: manage the catalog and sessions, start and stop them, read results.

Every change to a session goes through ``services``, as from the API: the same checks, the
same permissions, the same history. Users are managed here too, without a way up for a
non-superuser (see ``UserAdmin``).
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet, construct_instance
from django.http import HttpResponseRedirect
from django.urls import get_script_prefix, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.sessions.access import config_history
from apps.sessions.access.permissions import (
    ADD_FLOWS,
    CHANGE_FLOWS,
    CHANGE_TARGETS,
    DELETE_FLOWS,
    MANAGE_GLOBAL_WEBHOOKS,
    OPERATE_SESSIONS,
    VIEW_FLOWS,
)
from apps.sessions.catalog.defaults import find_default_target
from apps.sessions.catalog.feed_files import PREVIEW_ROWS, FeedError, parse_feed_csv
from apps.sessions.catalog.feeds import delete_feed, save_feed, set_feed_mode
from apps.sessions.catalog.flow_changes import delete_flow, save_flow
from apps.sessions.catalog.flows import check_flow
from apps.sessions.integrations.webhook_settings import (
    check_webhook_scope,
    delete_webhook,
    save_webhook,
)
from apps.sessions.integrations.webhooks import describe_url
from apps.sessions.lifecycle.editing import (
    check_deletable,
    create_session,
    delete_session,
    update_session,
)
from apps.sessions.lifecycle.errors import EngineUnavailable, SessionStateError
from apps.sessions.lifecycle.schedules import delete_schedule, save_schedule
from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import (
    AuditEntry,
    ConfigChange,
    DataFeed,
    Endpoint,
    EndpointStats,
    ErrorSample,
    Flow,
    FlowStats,
    FlowStep,
    LoadTestSession,
    RequestLogEntry,
    Schedule,
    SessionEvent,
    Target,
    TimeSeriesPoint,
    Webhook,
)
from apps.sessions.models.choices import SessionStatus
from apps.sessions.results.baselines import clear_baseline, set_baseline
from apps.sessions.validation import TAG_CHARS_MAX, TAGS_MAX, clean_tags, tags_from_text


def count_column(field: str):
    """A column (or read-only field) showing a count with thousands separators, sortable."""

    def column(obj) -> str | None:
        value = getattr(obj, field)
        return None if value is None else f"{value:,}"

    column.__name__ = field
    return admin.display(description=field.replace("_", " "), ordering=field)(column)


def ms_column(field: str, sortable: bool = True):
    """A column (or read-only field) showing milliseconds to 1 decimal: the stored floats
    carry microsecond noise (12.3456789) that nobody reads. A computed figure (a property,
    not a column) is not ``sortable``."""

    def column(obj) -> str | None:
        value = getattr(obj, field)
        return None if value is None else f"{value:,.1f}"

    column.__name__ = field
    ordering = field if sortable else None
    return admin.display(description=field.replace("_", " "), ordering=ordering)(column)


def dashboard_path(session: LoadTestSession) -> str:
    """The session's live dashboard page, ``/sessions/<id>/`` under the site's prefix."""
    return f"{get_script_prefix()}sessions/{session.pk}/"


class HistoryAdminMixin:
    """Record configuration changes made in the admin, as the API does."""

    def save_model(self, request, obj, form, change) -> None:
        before = config_history.snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        if before is not None:
            config_history.record_changes(obj, before, user=request.user, via="admin")

    def save_formset(self, request, form, formset, change) -> None:
        # The forms have already copied the new values onto their instances: read the old
        # ones from the database.
        befores = {
            inline.instance.pk: config_history.snapshot(
                type(inline.instance).objects.get(pk=inline.instance.pk)
            )
            for inline in formset.initial_forms
            if inline.has_changed() and type(inline.instance) in config_history.TRACKED_FIELDS
        }
        super().save_formset(request, form, formset, change)
        for instance, _ in formset.changed_objects:
            if instance.pk in befores:
                config_history.record_changes(instance, befores[instance.pk], user=request.user,
                                       via="admin")  # fmt: skip


class EndpointInline(admin.TabularInline):
    model = Endpoint
    extra = 0
    fields = ["name", "method", "url", "weight", "timeout_s", "description"]


@admin.register(Target)
class TargetAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ["name", "base_url", "endpoint_count", "baseline_session", "updated_at"]
    search_fields = ["name", "base_url"]
    inlines = [EndpointInline]
    # The baseline is set from a session (its action, the API, the dashboard), cleared here.
    readonly_fields = ["baseline_session"]
    actions = ["clear_baselines"]

    @admin.display(description="endpoints")
    def endpoint_count(self, target: Target) -> int:
        return target.endpoints.count()

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm(OPERATE_SESSIONS)

    @admin.action(permissions=["operate"], description="Clear the baseline of selected targets")
    def clear_baselines(self, request, queryset) -> None:
        for target in queryset:
            try:
                clear_baseline(target, user=request.user, via="admin")
            except PermissionDenied as exc:
                self.message_user(request, f"{target}: {refusal(exc)}", messages.ERROR)
            else:
                self.message_user(request, f"{target}: no baseline now.", messages.SUCCESS)


@admin.register(Endpoint)
class EndpointAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ["name", "target", "method", "url", "weight", "timeout_s"]
    list_filter = ["target", "method"]
    search_fields = ["name", "url", "description"]


class CatalogPermissionsMixin:
    """Flows are part of the catalog: the admin asks for the endpoints' permissions, as the
    API and the services do (``ADD_FLOWS``...)."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW_FLOWS)

    def has_add_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(ADD_FLOWS)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(CHANGE_FLOWS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(DELETE_FLOWS)


class FlowStepFormSet(BaseInlineFormSet):
    """The steps, checked with their flow as one whole (``flows.check_flow``): the rules and
    messages of the API. ``flow_steps`` holds them, in order, for ``FlowAdmin.save_related``."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [
            form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        kept.sort(key=lambda form: form.cleaned_data["position"])
        self.flow_steps = [
            FlowStep(
                endpoint=form.cleaned_data["endpoint"],
                think_time_s=form.cleaned_data["think_time_s"],
                extract=form.cleaned_data.get("extract") or [],
            )
            for form in kept
        ]
        try:
            check_flow(self.instance, self.flow_steps)
        except ValidationError as exc:
            # The flow's own fields are shown beside them by the flow's form.
            # A message that names its step already ("Flow 'shop', step 2 (cart-add): ...")
            # is not led by the step's label again.
            problems = [
                message if message.startswith("Flow '") else f"{_step_label(key)}: {message}"
                for key, messages in exc.message_dict.items()
                if key.startswith("steps")
                for message in messages
            ]
            if problems:
                raise ValidationError(problems) from exc


def _step_label(key: str) -> str:
    """``steps[1].endpoint`` as a person counts: "Step 2, endpoint"."""
    head, _, field = key.partition(".")
    if "[" not in head:
        return "Steps"
    number = int(head[head.index("[") + 1 : -1]) + 1
    return f"Step {number}, {field}" if field else f"Step {number}"


class FlowStepInline(CatalogPermissionsMixin, admin.TabularInline):
    model = FlowStep
    formset = FlowStepFormSet
    extra = 1
    fields = ["position", "endpoint", "think_time_s", "extract"]
    ordering = ["position"]

    def has_change_permission(self, request, obj=None) -> bool:
        user = request.user
        return user.has_perm(ADD_FLOWS) or user.has_perm(CHANGE_FLOWS)

    has_add_permission = has_delete_permission = has_change_permission


@admin.register(Flow)
class FlowAdmin(CatalogPermissionsMixin, admin.ModelAdmin):
    """Flows with their steps inline; saved whole through ``save_flow``."""

    list_display = ["name", "target", "weight", "step_count", "updated_at"]
    list_filter = ["target"]
    search_fields = ["name", "description"]
    inlines = [FlowStepInline]

    @admin.display(description="steps")
    def step_count(self, flow: Flow) -> int:
        return flow.steps.count()

    def save_model(self, request, obj, form, change) -> None:
        pass  # saved with its steps, in save_related

    def save_related(self, request, form, formsets, change) -> None:
        (steps,) = [formset for formset in formsets if isinstance(formset, FlowStepFormSet)]
        save_flow(form.instance, steps.flow_steps, user=request.user, via="admin")
        # The admin's change message reads what the formset saved: the steps, written whole.
        steps.new_objects, steps.changed_objects, steps.deleted_objects = [], [], []

    def delete_model(self, request, obj) -> None:
        delete_flow(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for flow in queryset:
            delete_flow(flow, user=request.user)


@admin.register(FlowStep)
class FlowStepAdmin(admin.ModelAdmin):
    """Every flow's steps, to read and find; they are edited within their flow (written
    whole, checked together)."""

    list_display = ["flow", "position", "endpoint", "think_time_s"]
    list_filter = ["flow__target"]
    list_select_related = ["flow", "endpoint"]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW_FLOWS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class EndpointStatsInline(admin.TabularInline):
    model = EndpointStats
    extra = 0
    can_delete = False
    fields = [
        "name",
        count_column("requests"),
        count_column("failures"),
        "failures_by_class",
        "check_failures",
        ms_column("p50_ms"),
        ms_column("p95_ms"),
        ms_column("p99_ms"),
        ms_column("max_ms"),
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class FlowStatsInline(admin.TabularInline):
    """A session's multi-step flows: iterations, failed ones and durations (first send to
    last answer); each step's requests are in the endpoint rows above."""

    model = FlowStats
    extra = 0
    can_delete = False
    fields = [
        "name",
        count_column("iterations"),
        count_column("failed_iterations"),
        "failure_rate_shown",
        ms_column("mean_ms"),
        ms_column("p50_ms"),
        ms_column("p95_ms"),
        ms_column("p99_ms"),
        ms_column("max_ms"),
    ]
    readonly_fields = fields

    @admin.display(description="failure rate")
    def failure_rate_shown(self, obj: FlowStats) -> str | None:
        rate = obj.failure_rate
        return None if rate is None else f"{rate:.2%}"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the monitor's copy of Redis: nobody edits it

    def has_delete_permission(self, request, obj=None) -> bool:
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


def refusal(exc: Exception) -> str:
    """What a refused change says to the person who tried it."""
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


# Refusals of the services that a page shows as a message; the view's transaction has rolled
# back whatever the attempt had written.
SERVICE_REFUSALS = (SessionStateError, EngineUnavailable, ValidationError)


def is_live(session: LoadTestSession) -> bool:
    """Starting or running: the session's live fields (its users) still change its load."""
    return session.status in (SessionStatus.STARTING, SessionStatus.RUNNING)


class SessionAdminForm(forms.ModelForm):
    """Tags as one comma-separated line rather than raw JSON."""

    tags = forms.CharField(
        required=False,
        max_length=TAGS_MAX * (TAG_CHARS_MAX + 2),
        help_text="Comma-separated labels (letters, digits, - _ . :), e.g. nightly, checkout; "
        "they can change at any status.",
    )

    class Meta:
        model = LoadTestSession
        fields = "__all__"  # noqa: DJ007 (the admin narrows them to its fieldsets)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["tags"] = ", ".join(self.instance.tags or [])

    def clean_tags(self) -> list[str]:
        return clean_tags(tags_from_text(self.cleaned_data.get("tags") or ""))

    def _post_clean(self) -> None:
        """A started session's configuration is read-only here and not judged again (its
        target's endpoints may have changed since it ran): its tags are checked above and
        its users by ``change_users``."""
        if self.instance.pk is None or self.instance.status == SessionStatus.PENDING:
            super()._post_clean()
            return
        self.instance = construct_instance(
            self, self.instance, self._meta.fields, self._meta.exclude
        )


@admin.register(LoadTestSession)
class LoadTestSessionAdmin(admin.ModelAdmin):
    form = SessionAdminForm
    list_display = [
        "id",
        "session_name",
        "target",
        "status",
        count_column("concurrent_users"),
        "target_rps",
        "duration_minutes",
        count_column("total_requests"),
        count_column("total_failures"),
        "start_time",
        "end_time",
        "end_reason",
        "dashboard",
    ]
    list_filter = ["status", "end_reason", "target"]
    search_fields = ["session_name"]
    actions = ["start_sessions", "stop_sessions", "mark_baseline", "delete_selected"]
    inlines = [EndpointStatsInline, FlowStatsInline, SessionEventInline]
    readonly_fields = [
        "dashboard",
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
        "threshold_verdicts",
    ]

    def get_inlines(self, request, obj):
        """The flows' table only on the page of a session with flow figures: most sessions
        have no flows (and a new session's form then needs no data for an empty table)."""
        inlines = super().get_inlines(request, obj)
        if obj is None or not obj.flow_stats.exists():
            inlines = [inline for inline in inlines if inline is not FlowStatsInline]
        return inlines

    @admin.display(description="threshold results")
    def threshold_verdicts(self, session: LoadTestSession) -> str:
        """Each threshold's judgement as a line a person reads: pass/fail, observed value."""
        if not session.threshold_results:
            return "-"
        words = {True: "PASS", False: "FAIL", None: "not judged yet"}
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} (observed {}){}{}",
            (
                (
                    result["expression"],
                    words[result["passed"]],
                    "-" if result["observed"] is None else f"{result['observed']:.15g}",
                    f"; {result['note']}" if result.get("note") else "",
                    "; stopped the session" if result["aborted"] else "",
                )
                for result in session.threshold_results
            ),
        )

    @admin.display(description="dashboard")
    def dashboard(self, session: LoadTestSession) -> str:
        if session.pk is None:
            return "-"
        return format_html('<a href="{}">Live dashboard</a>', dashboard_path(session))

    def get_changeform_initial_data(self, request):
        """A new session's target is the default target (TARGET_APP_URL), when it exists."""
        initial = super().get_changeform_initial_data(request)
        default = find_default_target()
        if default is not None:
            initial.setdefault("target", default.pk)
        return initial

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != SessionStatus.PENDING:
            # A session's configuration is what ran; while it runs, only its load changes.
            # (Its endpoint weights change live from the API and the dashboard, which show
            # one input per endpoint, rather than from the admin's raw JSON.)
            # Tags are labels, not configuration: they change at any status.
            editable = {"id", "concurrent_users", "tags"} if is_live(obj) else {"id", "tags"}
            fields = [field.name for field in self.model._meta.fields if field.name not in editable]
            return ["dashboard", *fields, "threshold_verdicts"]
        return self.readonly_fields

    def has_operate_permission(self, request) -> bool:
        """Who sees and may run the start and stop actions (operator and admin roles)."""
        return request.user.has_perm(OPERATE_SESSIONS)

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            create_session(obj, user=request.user)
            return
        stored = LoadTestSession.objects.get(pk=obj.pk)  # obj already holds the form's values
        changes = {name: getattr(obj, name) for name in form.changed_data}
        update_session(stored, changes, user=request.user, via="admin")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        session = self.get_object(request, unquote(object_id)) if object_id else None
        if session is not None and session.is_active:
            # No Delete link on a session whose load may still run (the page would refuse).
            extra_context = {**(extra_context or {}), "show_delete": False}
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SERVICE_REFUSALS as exc:  # e.g. started while the form was open; Redis down
            self.message_user(request, refusal(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        """Refuse, with the reason, to delete a session whose load may still run."""
        session = self.get_object(request, unquote(object_id))
        try:
            if session is not None and self.has_delete_permission(request, session):
                check_deletable(session)  # before the confirmation page, too
            return super().delete_view(request, object_id, extra_context)
        except SessionStateError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            url = reverse("admin:loadtests_loadtestsession_change", args=[session.pk])
            return HttpResponseRedirect(url)

    def delete_model(self, request, obj) -> None:
        delete_session(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for session in queryset:
            delete_session(session, user=request.user)

    def get_deleted_objects(self, objs, request):
        """A session's results go with it: deleting the session is the permission needed.

        The result tables are read-only in the admin, which would otherwise refuse every
        session that has run.
        """
        deleted, model_count, _, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected

    @admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
    def delete_selected(self, request, queryset):
        """Django's bulk delete, refused whole while any selected session may still send."""
        try:
            for session in queryset:
                check_deletable(session)
            with transaction.atomic():
                return django_delete_selected(self, request, queryset)
        except SessionStateError as exc:
            self.message_user(request, f"{exc} Nothing was deleted.", messages.ERROR)
            return None

    @admin.action(permissions=["operate"], description="Start selected sessions")
    def start_sessions(self, request, queryset) -> None:
        self._apply(request, queryset, start_session, "started")

    @admin.action(permissions=["operate"], description="Stop selected sessions")
    def stop_sessions(self, request, queryset) -> None:
        self._apply(request, queryset, stop_session, "asked to stop")

    @admin.action(permissions=["operate"], description="Mark as its target's baseline")
    def mark_baseline(self, request, queryset) -> None:
        """One finished session per target: a target has a single baseline."""
        by_target: dict[int, list[LoadTestSession]] = {}
        for session in queryset.select_related("target"):
            by_target.setdefault(session.target_id, []).append(session)
        for sessions in by_target.values():
            if len(sessions) > 1:
                ids = ", ".join(f"#{session.pk}" for session in sessions)
                self.message_user(
                    request,
                    f"{sessions[0].target.name}: choose one session as its baseline, not {ids}.",
                    messages.ERROR,
                )
                continue
            self._apply(
                request,
                sessions,
                lambda session, user: set_baseline(session, user=user, via="admin"),
                "marked as its target's baseline",
            )

    def _apply(self, request, queryset, service, verb: str) -> None:
        for session in queryset:
            try:
                service(session, user=request.user)
            except (*SERVICE_REFUSALS, PermissionDenied) as exc:
                self.message_user(request, f"{session}: {refusal(exc)}", messages.ERROR)
            else:
                self.message_user(request, f"{session}: {verb}.", messages.SUCCESS)


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Schedules of load; saved and deleted through the services, which keep beat's
    PeriodicTask in step (django-celery-beat's own pages show those, read them there)."""

    list_display = [
        "name",
        "template",
        "interval_seconds",
        "crontab",
        "enabled",
        "last_run_at",
        "last_skipped_at",
        "skipped_runs",
    ]
    list_filter = ["enabled"]
    search_fields = ["name"]
    raw_id_fields = ["template"]
    readonly_fields = [
        "created_by",
        "created_at",
        "last_run_at",
        "last_skipped_at",
        "skipped_runs",
        "last_message",
    ]

    def save_model(self, request, obj, form, change) -> None:
        save_schedule(obj, user=request.user)

    def delete_model(self, request, obj) -> None:
        delete_schedule(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for schedule in queryset:
            delete_schedule(schedule, user=request.user)


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
    search_fields = ["message", "trace_id"]


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "session", "kind", "message", "hostname", "shard"]
    list_filter = ["kind", "session"]
    search_fields = ["message"]


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


class WebhookForm(forms.ModelForm):
    """The secret is never shown: the field starts empty, and empty keeps the stored one
    (``clear_secret`` removes it)."""

    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        max_length=Webhook._meta.get_field("secret").max_length,
        help_text="Signs each body (X-Loadtest-Signature). Leave empty to keep the current secret.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the secret.")

    class Meta:
        model = Webhook
        fields = ["name", "url", "secret", "clear_secret", "events", "format", "session",
                  "enabled"]  # fmt: skip

    def clean(self):
        data = super().clean()
        # Checked here too, so the admin says why beside the field instead of a 403 page.
        try:
            check_webhook_scope(self.user, data.get("session") and data["session"].pk)
        except PermissionDenied as exc:
            self.add_error("session", str(exc))
        return data

    def _post_clean(self):
        stored_secret = self.instance.secret
        super()._post_clean()
        if self.cleaned_data.get("clear_secret"):
            self.instance.secret = ""
        elif not self.cleaned_data.get("secret"):
            self.instance.secret = stored_secret


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Webhooks, saved through ``services`` with the API's checks: a session's by its
    operators, a global one by the admin role."""

    form = WebhookForm
    list_display = ["name", "scope", "host", "events", "format", "enabled", "updated_at"]
    list_filter = ["enabled", "format"]
    search_fields = ["name"]

    @admin.display(description="scope")
    def scope(self, webhook: Webhook) -> str:
        return f"session #{webhook.session_id}" if webhook.session_id else "global"

    @admin.display(description="receiver")
    def host(self, webhook: Webhook) -> str:
        return describe_url(webhook.url)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.user = request.user
        return form

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and not self._may_manage_scope(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and not self._may_manage_scope(request, obj):
            return False
        return super().has_delete_permission(request, obj)

    @staticmethod
    def _may_manage_scope(request, webhook: Webhook) -> bool:
        return webhook.session_id is not None or request.user.has_perm(MANAGE_GLOBAL_WEBHOOKS)

    def save_model(self, request, obj, form, change) -> None:
        save_webhook(obj, user=request.user, via="admin")

    def delete_model(self, request, obj) -> None:
        delete_webhook(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for webhook in queryset:
            delete_webhook(webhook, user=request.user)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    """Users, managed by the admin role without a way up.

    Roles are groups; superuser status and raw permissions can be granted only by a
    superuser, and a superuser's account (its password too) only changed by one.
    """

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        return readonly

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


class DataFeedForm(forms.ModelForm):
    """Upload a feed's CSV (checked here, so a bad file is explained beside the field) and
    choose its mode; the rows themselves are never shown as an editable field."""

    file = forms.FileField(
        required=False,
        help_text="A CSV file (UTF-8) with a header row of column names; at most FEED_MAX_BYTES. "
        "On a change, leave empty to keep the rows and change only the mode.",
    )

    class Meta:
        model = DataFeed
        fields = ["target", "file", "mode"]

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is None:
            if self.instance.pk is None:
                self.add_error("file", "Choose the CSV file of the new feed.")
            return data
        if upload.size > settings.FEED_MAX_BYTES:
            self.add_error(
                "file",
                f"The file is {upload.size:,} bytes; a data feed may be at most "
                f"{settings.FEED_MAX_BYTES:,} bytes (FEED_MAX_BYTES).",
            )
            return data
        self.csv_bytes = upload.read()
        try:
            parse_feed_csv(self.csv_bytes)
        except FeedError as exc:
            self.add_error("file", str(exc))
        return data


@admin.register(DataFeed)
class DataFeedAdmin(admin.ModelAdmin):
    """Targets' data feeds, saved through ``services`` (the API's checks and history). The
    permission is the catalog's: changing targets (the admin role); viewers may look."""

    form = DataFeedForm
    list_display = ["target", "filename", "row_count_column", "columns_text", "mode",
                    "uploaded_at", "uploaded_by"]  # fmt: skip
    list_filter = ["mode"]
    search_fields = ["target__name", "filename"]
    readonly_fields = ["filename", "columns_text", "row_count_column", "size_bytes", "sha256",
                       "preview_table", "uploaded_at", "uploaded_by"]  # fmt: skip

    @admin.display(description="rows", ordering="row_count")
    def row_count_column(self, feed: DataFeed) -> str:
        return f"{feed.row_count:,}"

    @admin.display(description="columns")
    def columns_text(self, feed: DataFeed) -> str:
        return ", ".join(feed.columns)

    @admin.display(description="first rows")
    def preview_table(self, feed: DataFeed) -> str:
        if not feed.pk:
            return "—"
        head = format_html_join("", "<th>{}</th>", ((name,) for name in feed.columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((value,) for value in row)),)
                for row in feed.preview(PREVIEW_ROWS)
            ),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head,
                           body)  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "target"] if obj is not None else fields

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("loadtests.view_target") or self.has_change_permission(
            request, obj
        )

    def has_add_permission(self, request) -> bool:
        return request.user.has_perm(CHANGE_TARGETS)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(CHANGE_TARGETS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(CHANGE_TARGETS)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def save_model(self, request, obj, form, change) -> None:
        csv_bytes = getattr(form, "csv_bytes", None)
        if csv_bytes is None:
            feed = set_feed_mode(obj.target, obj.mode, user=request.user, via="admin")
        else:
            feed = save_feed(
                obj.target,
                csv_bytes,
                mode=obj.mode,
                filename=form.cleaned_data["file"].name,
                user=request.user,
                via="admin",
            )
        obj.pk = feed.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj) -> None:
        delete_feed(obj.target, user=request.user, via="admin")

    def delete_queryset(self, request, queryset) -> None:
        for feed in queryset.select_related("target"):
            delete_feed(feed.target, user=request.user, via="admin")
