"""The catalog in the admin: targets, endpoints, flows with their steps, data feeds."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.html import format_html, format_html_join

from apps.sessions.access.masking import masked_endpoint_url, masked_request, may_see_secrets
from apps.sessions.access.permissions import (
    ADD_FLOWS,
    CHANGE_FLOWS,
    CHANGE_TARGETS,
    OPERATE_SESSIONS,
    VIEW_FLOWS,
)
from apps.sessions.admin.common import CatalogPermissionsMixin, HistoryAdminMixin, refusal
from apps.sessions.catalog.feed_csv import PREVIEW_ROWS, FeedError, parse_feed_csv
from apps.sessions.catalog.feeds import delete_feed, save_feed, set_feed_mode
from apps.sessions.catalog.flow_changes import delete_flow, save_flow
from apps.sessions.catalog.flows import check_flow
from apps.sessions.models import DataFeed, Endpoint, Flow, FlowStep, Target
from apps.sessions.results.baselines import clear_baseline


class EndpointInline(admin.TabularInline):
    model = Endpoint
    extra = 0
    fields = ["name", "method", "url", "weight", "timeout_s", "description"]

    def get_fields(self, request, obj=None):
        if may_see_secrets(request.user):
            return self.fields
        return ["name", "method", "masked_url", "weight", "timeout_s", "description"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "masked_url"]

    @admin.display(description="URL")
    def masked_url(self, endpoint: Endpoint) -> str:
        return masked_endpoint_url(endpoint)


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
    """Whoever may not edit endpoints reads them with their secrets masked
    (``access.masking``): the URL, headers and body are shown by masked stand-ins."""

    list_display = ["name", "target", "method", "url", "weight", "timeout_s"]
    list_filter = ["target", "method"]
    search_fields = ["name", "url", "description"]
    MASKED_FIELDS = {"url": "masked_url", "headers": "masked_headers", "body": "masked_body"}

    def get_list_display(self, request):
        if may_see_secrets(request.user):
            return self.list_display
        return [self.MASKED_FIELDS.get(name, name) for name in self.list_display]

    def get_search_fields(self, request):
        # Searching the URL would tell a reader a masked key, one guess at a time.
        if may_see_secrets(request.user):
            return self.search_fields
        return [name for name in self.search_fields if name not in self.MASKED_FIELDS]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None or may_see_secrets(request.user):
            return [name for name in fields if name not in self.MASKED_FIELDS.values()]
        return list(dict.fromkeys(self.MASKED_FIELDS.get(name, name) for name in fields))

    def get_readonly_fields(self, request, obj=None):
        if may_see_secrets(request.user):
            return super().get_readonly_fields(request, obj)
        return [*super().get_readonly_fields(request, obj), *self.MASKED_FIELDS.values()]

    @admin.display(description="URL")
    def masked_url(self, endpoint: Endpoint) -> str:
        return masked_endpoint_url(endpoint)

    @admin.display(description="headers")
    def masked_headers(self, endpoint: Endpoint) -> dict:
        return masked_request(endpoint.headers, endpoint.body, endpoint.url)[0]

    @admin.display(description="body")
    def masked_body(self, endpoint: Endpoint) -> str:
        return masked_request(endpoint.headers, endpoint.body, endpoint.url)[1]


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
