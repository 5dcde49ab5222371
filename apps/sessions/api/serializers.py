"""JSON shapes of the API. Field names follow the seed's EndpointConfig and LoadTestConfig."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from apps.sessions.catalog.defaults import (
    default_catalog_weights,
    default_flow_weights,
    find_default_target,
)
from apps.sessions.catalog.feed_files import PREVIEW_ROWS
from apps.sessions.catalog.flow_changes import save_flow
from apps.sessions.catalog.flows import check_flow, steps_as_data, steps_from_data
from apps.sessions.integrations.webhook_settings import save_webhook
from apps.sessions.lifecycle.editing import create_session, update_session
from apps.sessions.lifecycle.schedules import save_schedule
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
    target_hosts,
)
from apps.sessions.models.choices import WebhookEvent
from apps.sessions.results.comparison import against_baseline
from apps.sessions.results.thresholds import Figures
from apps.sessions.results.verdicts import whole_session_figures
from apps.sessions.validation import (
    TAGS_MAX,
    TIMEOUT_S_MAX,
    TIMEOUT_S_MIN,
    BoundedJSONDecoder,
    check_endpoint_templates,
    check_headers,
    check_host_header,
    check_session_config,
    check_single_line,
    check_webhook_secret,
    check_webhook_url,
    clean_tags,
)
from apps.workers.checks import normalise_statuses, parse_checks
from apps.workers.secrets import REDACTED, mask_headers_by_name


class TargetSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=100, required=False, validators=[check_single_line])

    class Meta:
        model = Target
        fields = [
            "id",
            "name",
            "base_url",
            "description",
            "baseline_session",
            "regression_margin_pct",
            "created_at",
            "updated_at",
        ]
        # Set through POST/DELETE /api/sessions/{id}/baseline/ (set_baseline).
        read_only_fields = ["baseline_session"]

    def validate(self, attrs):
        if not attrs.get("name") and "base_url" in attrs:
            attrs["name"] = attrs["base_url"][: Target._meta.get_field("name").max_length]
        if attrs.get("name") and (
            Target.objects.filter(name=attrs["name"])
            .exclude(pk=getattr(self.instance, "pk", None))
            .exists()
        ):
            raise serializers.ValidationError({"name": "A target with this name already exists."})
        return attrs


class EndpointSerializer(serializers.ModelSerializer):
    # An integer id, not anything Django can turn into one (1.5 would silently be 1).
    target = serializers.PrimaryKeyRelatedField(
        queryset=Target.objects.all(), pk_field=serializers.IntegerField()
    )
    timeout = serializers.FloatField(
        source="timeout_s", required=False, min_value=TIMEOUT_S_MIN, max_value=TIMEOUT_S_MAX
    )

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "target",
            "name",
            "url",
            "method",
            "weight",
            "timeout",
            "description",
            "headers",
            "body",
            "expected_statuses",
            "checks",
            "created_at",
            "updated_at",
        ]

    def validate_expected_statuses(self, spec):
        """Stored normalised (``200-299,300-399`` becomes ``200-399``)."""
        try:
            return normalise_statuses(spec)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_checks(self, checks):
        try:
            parse_checks(checks)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return checks

    def validate_headers(self, headers):
        try:
            check_headers(headers)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        # A client sending back what it read keeps the stored secret rather than "[redacted]".
        stored = self.instance.headers if self.instance is not None else {}
        return {
            name: stored[name] if value == REDACTED and name in stored else value
            for name, value in headers.items()
        }

    def validate(self, attrs):
        """A custom Host header goes through the allow-list, as the URL does."""
        endpoint = Endpoint(
            **{
                name: attrs.get(name, getattr(self.instance, name, None))
                for name in ("target", "url", "headers", "name")
            }
        )
        try:
            endpoint.check_name_free_of_flows()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if endpoint.target is not None and endpoint.url:
            try:
                check_host_header(endpoint.absolute_url(), endpoint.headers)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"headers": exc.messages}) from exc
        self._check_templates(attrs)
        return attrs

    def _check_templates(self, attrs: dict) -> None:
        """The request templates, as ``Endpoint.clean`` checks them for the admin and files."""
        fields = {
            name: attrs.get(name, getattr(self.instance, name, None))
            for name in ("url", "headers", "body")
        }
        try:
            check_endpoint_templates(**fields)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc

    def to_representation(self, endpoint):
        data = super().to_representation(endpoint)
        data["headers"] = mask_headers_by_name(data.get("headers") or {})
        return data


class FlowSerializer(serializers.ModelSerializer):
    """A flow with its steps nested: ``steps`` is written whole (each ``{endpoint: <id or
    name>, think_time_s, extract}``) and read with each step's position and endpoint name.
    Checked and saved by ``save_flow``, as from the admin and the dashboard."""

    target = serializers.PrimaryKeyRelatedField(
        queryset=Target.objects.all(), pk_field=serializers.IntegerField()
    )
    steps = serializers.JSONField(
        help_text='E.g. [{"endpoint": "login", "think_time_s": 0.5, "extract": [{"name": '
        '"csrf_token", "json_path": "$.csrf_token"}]}, {"endpoint": "cart-view"}].'
    )

    class Meta:
        model = Flow
        fields = ["id", "target", "name", "weight", "description", "steps", "created_at",
                  "updated_at"]  # fmt: skip
        validators: list = []  # one target, one name: checked by flows.check_flow, by field

    def validate(self, attrs):
        flow = self.instance or Flow()
        target = attrs.get("target", getattr(self.instance, "target", None))
        try:
            if "steps" in attrs:
                steps = steps_from_data(target, attrs["steps"])
            else:  # a PATCH without steps keeps them
                steps = [
                    FlowStep(
                        endpoint=step.endpoint,
                        think_time_s=step.think_time_s,
                        extract=step.extract,
                    )
                    for step in flow.steps.select_related("endpoint")
                ]
            candidate = Flow(
                pk=flow.pk,
                target=target,
                name=attrs.get("name", flow.name),
                weight=attrs.get("weight", flow.weight),
                description=attrs.get("description", flow.description),
            )
            check_flow(candidate, steps)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        attrs["steps"] = steps
        return attrs

    def to_representation(self, flow):
        data = super().to_representation(flow)
        data["steps"] = steps_as_data(flow.steps.all())
        return data

    def create(self, validated_data):
        steps = validated_data.pop("steps")
        flow = Flow(**validated_data)
        return save_flow(flow, steps, user=self.context["request"].user, via="api")

    def update(self, flow, validated_data):
        steps = validated_data.pop("steps")
        for name, value in validated_data.items():
            setattr(flow, name, value)
        return save_flow(flow, steps, user=self.context["request"].user, via="api")


class LoadTestSessionSerializer(serializers.ModelSerializer):
    """A session is created from a LoadTestConfig; everything else is read-only."""

    target = serializers.PrimaryKeyRelatedField(
        queryset=Target.objects.all(),
        pk_field=serializers.IntegerField(),
        required=False,
        help_text="Target id; omitted, the target at TARGET_APP_URL is used.",
    )
    concurrent_users = serializers.IntegerField(default=10)
    duration_minutes = serializers.DecimalField(max_digits=10, decimal_places=4, default=30)
    request_interval_min = serializers.FloatField(default=1.0)
    request_interval_max = serializers.FloatField(default=5.0)
    endpoint_weights = serializers.JSONField(default=dict, decoder=BoundedJSONDecoder)
    max_errors_per_minute = serializers.IntegerField(default=100)
    target_rps = serializers.FloatField(
        default=None,
        allow_null=True,
        help_text="Open model: requests/s held whatever the target's latency; null: closed model.",
    )
    ramp_up_seconds = serializers.FloatField(default=0.0)
    thresholds = serializers.JSONField(
        default=list,
        decoder=BoundedJSONDecoder,
        help_text="Pass/fail thresholds, one text each: '[ENDPOINT:] METRIC OP NUMBER [abort]', "
        "e.g. 'p95_ms < 500', 'checkout: error_rate < 0.01 abort' (see the README).",
    )
    threshold_results = serializers.JSONField(
        read_only=True,
        help_text="Each threshold's latest judgement: expression, scope, metric, observed, "
        "passed (null: not judged yet), note, evaluated_at, aborted, final.",
    )
    tags = serializers.JSONField(
        default=list,
        decoder=BoundedJSONDecoder,
        help_text=f'Up to {TAGS_MAX} labels (letters, digits, - _ . :), e.g. ["nightly"]; '
        "they can change at any status.",
    )
    requests_per_second = serializers.SerializerMethodField()
    # The history list's figures for the whole run: its endpoints' histograms merged.
    duration_s = serializers.SerializerMethodField(help_text="Seconds of load so far.")
    users = serializers.IntegerField(
        source="concurrent_users", read_only=True, help_text="Virtual users (as last set)."
    )
    rps = serializers.SerializerMethodField(help_text="Requests/s over the whole run.")
    error_rate = serializers.SerializerMethodField(
        help_text="Failures / requests over the whole run (null before any request)."
    )
    p95_ms = serializers.SerializerMethodField(
        help_text="95th percentile latency of all endpoints' requests together."
    )
    created_by = serializers.StringRelatedField()
    started_by = serializers.StringRelatedField()
    stopped_by = serializers.StringRelatedField()

    class Meta:
        model = LoadTestSession
        fields = [
            "id",
            *LoadTestSession.CONFIG_FIELDS,
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
            "requests_per_second",
            "duration_s",
            "users",
            "rps",
            "error_rate",
            "p95_ms",
            "threshold_results",
            "results_final_at",
        ]
        read_only_fields = [
            "status",
            "created_at",
            "start_time",
            "load_started_at",
            "end_time",
            "status_detail",
            "end_reason",
            "end_detail",
            "total_requests",
            "total_failures",
            "results_final_at",
        ]

    def get_requests_per_second(self, session: LoadTestSession) -> float:
        return round(session.requests_per_second(), 2)

    def to_representation(self, session):
        data = super().to_representation(session)
        # One session's page: its deltas against its target's baseline. Not in lists, where
        # it would read every listed session's results.
        if self.context.get("with_baseline"):
            data["baseline_comparison"] = against_baseline(session)
        return data

    def _whole(self, session: LoadTestSession) -> Figures:
        """Computed once per session and response (four fields read it)."""
        cached = getattr(session, "_whole_figures", None)
        if cached is None:
            cached = session._whole_figures = whole_session_figures(session)
        return cached

    def get_duration_s(self, session: LoadTestSession) -> float:
        return round(session.elapsed_seconds(), 3)

    def get_rps(self, session: LoadTestSession) -> float | None:
        rate = self._whole(session).observe("rps")
        return None if rate is None else round(rate, 2)

    def get_error_rate(self, session: LoadTestSession) -> float | None:
        rate = self._whole(session).observe("error_rate")
        return None if rate is None else round(rate, 6)

    def get_p95_ms(self, session: LoadTestSession) -> float | None:
        p95_ms = self._whole(session).p95_ms
        return None if p95_ms is None else round(p95_ms, 3)

    def validate_tags(self, tags):
        try:
            return clean_tags(tags)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    def validate(self, attrs):
        if self.instance is not None:
            # A partial update is checked as the whole configuration it would produce.
            for name in LoadTestSession.CONFIG_FIELDS:
                attrs.setdefault(name, getattr(self.instance, name))
        target = attrs.get("target")
        if target is not None:
            default_weights = dict(target.endpoints.values_list("name", "weight"))
            flow_weights = dict(target.flows.values_list("name", "weight"))
        else:
            # Validate against the default catalog without creating anything yet.
            existing = find_default_target()
            default_weights = (
                dict(existing.endpoints.values_list("name", "weight"))
                if existing is not None
                else default_catalog_weights()
            )
            flow_weights = (
                dict(existing.flows.values_list("name", "weight"))
                if existing is not None
                else default_flow_weights()
            )
        try:
            check_session_config(attrs, default_weights, flow_weights)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if target is not None:
            try:
                target.full_clean(validate_unique=False)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(
                    {"target": [f"{m}" for m in exc.messages]}
                ) from exc
        return attrs

    # Saving goes through the services, as in the admin: the same checks, history and author.
    def create(self, validated_data):
        user = self.context["request"].user
        return create_session(LoadTestSession(**validated_data), user=user)

    def update(self, session, validated_data):
        user = self.context["request"].user
        return update_session(session, validated_data, user=user, via="api")


class StartedSessionSerializer(LoadTestSessionSerializer):
    """The answer to a start: the session, and what may keep its load from starting now."""

    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="E.g. fewer free load worker processes than the session has shards.",
    )

    class Meta(LoadTestSessionSerializer.Meta):
        fields = [*LoadTestSessionSerializer.Meta.fields, "warnings"]


# The duration summary an endpoint's and a flow's figures share (``DurationFigures``).
DURATION_FIELDS = ["min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"]


class EndpointStatsSerializer(serializers.ModelSerializer):
    class Meta:
        model = EndpointStats
        fields = [
            "name",
            "method",
            "url",
            "requests",
            "failures",
            "failures_by_class",
            "not_sent",
            "check_failures",
            *DURATION_FIELDS,
        ]


class FlowStatsSerializer(serializers.ModelSerializer):
    """One multi-step flow's figures: iterations ended, those that failed (a step failed and
    the later ones were not sent) and iteration durations in ms, first send to last answer,
    think times between steps included."""

    failure_rate = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="failed_iterations / iterations (null before the first iteration ended).",
    )

    class Meta:
        model = FlowStats
        fields = [
            "name",
            "flow_id",
            "iterations",
            "failed_iterations",
            "failure_rate",
            *DURATION_FIELDS,
        ]


class SessionEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = SessionEvent
        fields = ["at", "kind", "message", "hostname", "shard"]


class TimeSeriesPointSerializer(serializers.ModelSerializer):
    """A point covers ``resolution_s`` seconds from ``timestamp`` (1, or 60 and 3600 once
    downsampled): its counts are totals over that period, ``requests_per_s`` their rate."""

    mean_ms = serializers.FloatField(read_only=True)
    requests_per_s = serializers.FloatField(read_only=True)

    class Meta:
        model = TimeSeriesPoint
        fields = [
            "timestamp",
            "resolution_s",
            "requests",
            "requests_per_s",
            "failures",
            "unavailable",
            "suppressed",
            "mean_ms",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "users",
            "failures_by_class",
        ]


class ErrorSampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ErrorSample
        fields = ["at", "endpoint", "failure_class", "status", "message", "hostname", "trace_id"]


class RequestLogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = RequestLogEntry
        fields = ["at", "endpoint", "method", "path", "status", "failure_class", "latency_ms",
                  "hostname", "trace_id"]  # fmt: skip


class ConfigChangeSerializer(serializers.ModelSerializer):
    changed_by = serializers.StringRelatedField()

    class Meta:
        model = ConfigChange
        fields = [
            "changed_at",
            "changed_by",
            "via",
            "object_type",
            "object_id",
            "field",
            "old_value",
            "new_value",
        ]


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "at",
            "username",
            "method",
            "path",
            "action",
            "status_code",
            "remote_addr",
            "user_agent",
        ]


class WebhookSerializer(serializers.ModelSerializer):
    """A webhook; its ``secret`` is write-only (``has_secret`` says whether one is set).
    Saved through ``save_webhook``, which checks who may manage which scope."""

    session = serializers.PrimaryKeyRelatedField(
        queryset=LoadTestSession.objects.all(),
        pk_field=serializers.IntegerField(),
        required=False,
        allow_null=True,
        help_text="Session id; null or omitted: a global webhook (admin role only).",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=Webhook._meta.get_field("secret").max_length,
        validators=[check_webhook_secret],
        help_text="Signs each body (X-Loadtest-Signature); never shown again. Omit on a "
        'change to keep it, send "" to remove it.',
    )
    has_secret = serializers.SerializerMethodField()
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        allow_empty=False,
        max_length=len(WebhookEvent.values),
    )
    url = serializers.CharField(
        max_length=Webhook._meta.get_field("url").max_length, trim_whitespace=False
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "name",
            "url",
            "secret",
            "has_secret",
            "events",
            "format",
            "session",
            "enabled",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_by", "created_at", "updated_at"]

    def get_has_secret(self, webhook) -> bool:
        return bool(webhook.secret)

    def validate_url(self, url: str) -> str:
        try:
            check_webhook_url(url, target_hosts())
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return url

    def validate_events(self, events: list[str]) -> list[str]:
        if len(set(events)) != len(events):
            raise serializers.ValidationError("An event is listed twice.")
        return events

    def create(self, validated_data):
        user = self.context["request"].user
        return save_webhook(Webhook(**validated_data), user=user)

    def update(self, webhook, validated_data):
        for name, value in validated_data.items():
            setattr(webhook, name, value)
        return save_webhook(webhook, user=self.context["request"].user, via="api")


class ScheduleSerializer(serializers.ModelSerializer):
    """A schedule of load; beat's PeriodicTask behind it is the services' business."""

    # An integer id, not anything Django can turn into one (1.5 would silently be 1).
    template = serializers.PrimaryKeyRelatedField(
        queryset=LoadTestSession.objects.all(),
        pk_field=serializers.IntegerField(),
        help_text="The session whose configuration each run copies.",
    )
    window_days = serializers.JSONField(default=list, decoder=BoundedJSONDecoder)
    created_by = serializers.StringRelatedField()
    runs = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = [
            "id",
            "name",
            "template",
            "interval_seconds",
            "crontab",
            "window_days",
            "window_start",
            "window_end",
            "time_zone",
            "run_duration_minutes",
            "enabled",
            "created_by",
            "created_at",
            "last_run_at",
            "last_skipped_at",
            "skipped_runs",
            "last_message",
            "runs",
        ]
        read_only_fields = [
            "created_at",
            "last_run_at",
            "last_skipped_at",
            "skipped_runs",
            "last_message",
        ]

    def get_runs(self, schedule: Schedule) -> list[int]:
        """The ids of the newest runs (sessions), newest first."""
        return list(schedule.runs.order_by("-pk").values_list("pk", flat=True)[:20])

    # Saved through the services, as in the admin: the same checks, owner and PeriodicTask.
    def create(self, validated_data):
        user = self.context["request"].user
        return save_schedule(Schedule(**validated_data), user=user)

    def update(self, schedule, validated_data):
        for name, value in validated_data.items():
            setattr(schedule, name, value)
        return save_schedule(schedule, user=self.context["request"].user)


class DataFeedSerializer(serializers.ModelSerializer):
    """A target's data feed as the API shows it: what it is and its first rows, never the
    whole file (``GET /api/targets/{id}/feed/``)."""

    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    preview = serializers.SerializerMethodField()

    class Meta:
        model = DataFeed
        fields = [
            "target",
            "filename",
            "columns",
            "row_count",
            "size_bytes",
            "sha256",
            "mode",
            "uploaded_at",
            "uploaded_by",
            "preview",
        ]
        read_only_fields = fields

    def get_preview(self, feed: DataFeed) -> list[list[str]]:
        """The first rows (PREVIEW_ROWS), each a list of values in the columns' order."""
        return feed.preview(PREVIEW_ROWS)
