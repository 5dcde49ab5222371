"""Sessions and schedules in the admin: created, started, stopped, changed live and deleted
through the lifecycle's functions, as from the API."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.forms.models import construct_instance
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.sessions.access.masking import mask_text, masked_plan, may_see_secrets
from apps.sessions.access.permissions import OPERATE_SESSIONS
from apps.sessions.admin.common import (
    SERVICE_REFUSALS,
    count_column,
    dashboard_path,
    is_live,
    ms_column,
    refusal,
)
from apps.sessions.catalog.defaults import find_default_target
from apps.sessions.choices import SessionStatus, Via
from apps.sessions.errors import SessionStateError
from apps.sessions.lifecycle.editing import (
    check_deletable,
    create_session,
    delete_session,
    update_session,
)
from apps.sessions.lifecycle.schedules import delete_schedule, save_schedule
from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import EndpointStats, FlowStats, LoadTestSession, Schedule, SessionEvent
from apps.sessions.results import units
from apps.sessions.results.baselines import set_baseline
from apps.sessions.validation import TAG_CHARS_MAX, TAGS_MAX, clean_tags, tags_from_text
from apps.workers.secrets import plan_secrets


class EndpointStatsInline(admin.TabularInline):
    model = EndpointStats
    extra = 0
    can_delete = False
    fields = [
        "name",
        count_column("requests"),
        count_column("failures"),
        "failures_by_class",
        count_column("cut_by_stop"),
        count_column("unreached"),
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
    """The session's events; a message may quote a configured secret (a target's error page
    echoing a token), masked for whoever may not edit endpoints."""

    model = SessionEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "message", "actor", "via", "hostname", "shard"]
    readonly_fields = fields
    ordering = ["-at", "-pk"]

    def get_fields(self, request, obj=None):
        if may_see_secrets(request.user):
            return self.fields
        return ["masked_message" if name == "message" else name for name in self.fields]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="message")
    def masked_message(self, event: SessionEvent) -> str:
        return mask_text(event.message, plan_secrets(event.session.read_plan()))

    def has_add_permission(self, request, obj=None) -> bool:
        return False


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
                    "-"
                    if result["observed"] is None
                    else units.figure(result["metric"], result["observed"]),
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
            fields = ["dashboard", *fields, "threshold_verdicts"]
        else:
            fields = list(self.readonly_fields)
        if may_see_secrets(request.user):
            return fields
        # The originals stay read-only (out of the form); get_fields shows the stand-ins.
        return [
            *fields,
            *(self.MASKED_FIELDS[name] for name in fields if name in self.MASKED_FIELDS),
        ]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if may_see_secrets(request.user):
            return fields
        # The stored plan holds the endpoints' headers and bodies as they ran.
        shown = [self.MASKED_FIELDS.get(name, name) for name in fields]
        return list(dict.fromkeys(shown))

    MASKED_FIELDS = {"plan": "masked_plan", "end_detail": "masked_end_detail"}

    @admin.display(description="plan")
    def masked_plan(self, session: LoadTestSession):
        return masked_plan(session.plan)

    @admin.display(description="end detail")
    def masked_end_detail(self, session: LoadTestSession) -> str:
        return mask_text(session.end_detail, plan_secrets(session.read_plan()))

    def has_operate_permission(self, request) -> bool:
        """Who sees and may run the start and stop actions (operator and admin roles)."""
        return request.user.has_perm(OPERATE_SESSIONS)

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            create_session(obj, user=request.user, via=Via.ADMIN)
            return
        stored = LoadTestSession.objects.get(pk=obj.pk)  # obj already holds the form's values
        changes = {name: getattr(obj, name) for name in form.changed_data}
        update_session(stored, changes, user=request.user, via=Via.ADMIN)

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
                lambda session, user, via: set_baseline(session, user=user, via=via),
                "marked as its target's baseline",
            )

    def _apply(self, request, queryset, service, verb: str) -> None:
        for session in queryset:
            try:
                service(session, user=request.user, via=Via.ADMIN)
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
