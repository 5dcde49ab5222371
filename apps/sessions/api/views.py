"""REST endpoints: the catalog, sessions with their actions and results, workers, audit.

Every route needs an authenticated user with the permission its action names (see
``permissions``); state changes go through ``services``; configuration changes are recorded
in the history.
"""

from collections.abc import Mapping

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from redis.exceptions import RedisError
from rest_framework import filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.sessions.access import config_history
from apps.sessions.access.masking import may_see_secrets
from apps.sessions.api import comparison_params
from apps.sessions.api.export import EXPORT_TABLES, CSVRenderer, export_document, export_rows
from apps.sessions.api.query_params import LongPages, parse_since
from apps.sessions.api.serializers.access import AuditEntrySerializer, ConfigChangeSerializer
from apps.sessions.api.serializers.catalog import (
    EndpointSerializer,
    FlowSerializer,
    TargetSerializer,
)
from apps.sessions.api.serializers.integrations import WebhookSerializer
from apps.sessions.api.serializers.results import (
    ErrorSampleSerializer,
    RequestLogEntrySerializer,
    SessionEventSerializer,
    TimeSeriesPointSerializer,
)
from apps.sessions.api.serializers.sessions import (
    LoadTestSessionSerializer,
    ScheduleSerializer,
    StartedSessionSerializer,
)
from apps.sessions.api.session_filters import SessionHistoryFilter
from apps.sessions.api.snapshots import stats_snapshot
from apps.sessions.api.surfaces import request_via
from apps.sessions.catalog.flow_changes import delete_flow
from apps.sessions.choices import EventKind, SessionStatus, Via
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.integrations.webhook_settings import delete_webhook
from apps.sessions.lifecycle.editing import clone_session, delete_session, update_session
from apps.sessions.lifecycle.schedules import delete_schedule
from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import emergency_stop, stop_session
from apps.sessions.models import (
    AuditEntry,
    Endpoint,
    Flow,
    LoadTestSession,
    Schedule,
    Target,
    Webhook,
)
from apps.sessions.results import comparison
from apps.sessions.results.baselines import clear_baseline, set_baseline
from apps.sessions.results.charts import chart
from apps.sessions.results.report import render_report, report_filename
from apps.workers.control import get_redis
from apps.workers.inventory import live_workers, worker_summary

HISTORY_PARAMETERS = [
    OpenApiParameter("target", OpenApiTypes.STR, description="Target id(s), comma-separated."),
    OpenApiParameter("status", OpenApiTypes.STR, description="Status(es), comma-separated."),
    OpenApiParameter("tag", OpenApiTypes.STR, description="Carries every tag given."),
    OpenApiParameter("name", OpenApiTypes.STR, description="Name contains (any case)."),
    *(
        OpenApiParameter(name, OpenApiTypes.DATETIME, description="ISO 8601 or epoch s.")
        for name in ("started_after", "started_before", "created_after", "created_before")
    ),
]


class HTMLReportRenderer(BaseRenderer):
    """Lets ``?format=html`` and ``Accept: text/html`` reach the report action; the action
    answers with its own HttpResponse, and an error (404, 403) as plain text."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return str(data).encode(self.charset)


class HistoryMixin:
    """Record who changed which configuration field (the configuration history)."""

    def perform_update(self, serializer):
        before = config_history.snapshot(serializer.instance)
        instance = serializer.save()
        config_history.record_changes(
            instance, before, user=self.request.user, via=request_via(self.request)
        )

    @extend_schema(responses=ConfigChangeSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """Who changed which field of this object, when, from what to what (newest first)."""
        changes = config_history.history_of(self.get_object())
        page = self.paginate_queryset(changes)
        return self.get_paginated_response(ConfigChangeSerializer(page, many=True).data)


class TargetViewSet(HistoryMixin, viewsets.ModelViewSet):
    """Applications under test. A target's host must be on ALLOWED_TARGET_HOSTS."""

    queryset = Target.objects.all()
    serializer_class = TargetSerializer
    action_permissions = {"history": "view"}
    search_fields = ["name", "base_url", "description"]
    ordering_fields = ["name", "created_at"]


class EndpointSearch(filters.SearchFilter):
    """``?search=`` on URLs only for whoever may read them unmasked: otherwise a reader could
    confirm a guessed ``api_key`` one search at a time."""

    def get_search_fields(self, view, request):
        fields = super().get_search_fields(view, request) or []
        return fields if may_see_secrets(request.user) else [f for f in fields if f != "url"]


class EndpointViewSet(HistoryMixin, viewsets.ModelViewSet):
    """Requests the virtual users send. Secrets (header values, secret-looking body and query
    values) are shown masked; `?reveal=true` shows them to the roles that may edit endpoints."""

    queryset = Endpoint.objects.select_related("target")
    serializer_class = EndpointSerializer
    filter_backends = [
        EndpointSearch if backend is filters.SearchFilter else backend
        for backend in api_settings.DEFAULT_FILTER_BACKENDS
    ]
    action_permissions = {"history": "view"}
    filterset_fields = ["target", "method"]
    search_fields = ["name", "url", "description"]
    ordering_fields = ["name", "weight", "created_at"]


class FlowViewSet(HistoryMixin, viewsets.ModelViewSet):
    """Multi-step flows of a target's endpoints, with their steps nested (written whole).
    The catalog's permissions: whoever may edit endpoints may edit flows."""

    queryset = Flow.objects.select_related("target").prefetch_related("steps__endpoint")
    serializer_class = FlowSerializer
    permission_model = Endpoint
    action_permissions = {"history": "view"}
    filterset_fields = ["target"]
    search_fields = ["name", "description"]
    ordering_fields = ["name", "weight", "created_at"]

    def perform_update(self, serializer):
        serializer.save()  # save_flow records the history, steps included

    def perform_destroy(self, flow):
        delete_flow(flow, user=self.request.user)


class WebhookViewSet(viewsets.ModelViewSet):
    """Webhooks: a session's (operator role) or global, for every session (admin role).

    The secret is write-only; the URL's host, if load may be sent there, must pass the
    allow-list like a target's. The README's Notifications section shows how to verify the
    signature."""

    queryset = Webhook.objects.select_related("session", "created_by")
    serializer_class = WebhookSerializer
    action_permissions = {"history": "view"}
    filterset_fields = ["session", "enabled", "format"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]

    def perform_destroy(self, webhook):
        delete_webhook(webhook, user=self.request.user)

    @extend_schema(responses=ConfigChangeSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """Who changed which field of this webhook, when (the secret and the URL's path and
        query as fingerprints only); ``save_webhook`` records it."""
        changes = config_history.history_of(self.get_object())
        page = self.paginate_queryset(changes)
        return self.get_paginated_response(ConfigChangeSerializer(page, many=True).data)


class ScheduleViewSet(viewsets.ModelViewSet):
    """Schedules of load: a template session run on an interval or a crontab, inside an
    optional window, never overlapping itself (a firing while the previous run is active is
    skipped and counted). Each run is an ordinary session (``runs``)."""

    queryset = Schedule.objects.select_related("created_by", "template")
    serializer_class = ScheduleSerializer
    filterset_fields = ["enabled", "template"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at", "last_run_at"]

    def perform_destroy(self, schedule):
        delete_schedule(schedule, user=self.request.user)


@extend_schema_view(
    list=extend_schema(
        parameters=HISTORY_PARAMETERS,
        description="Sessions, newest first, each with its whole-run figures (duration_s, "
        "users, rps, error_rate, p95_ms); filter by target, status, tag, name and time.",
    )
)
class LoadTestSessionViewSet(HistoryMixin, viewsets.ModelViewSet):
    """Load-test sessions: create from a configuration, start, stop, read results.

    A pending session's configuration can be changed freely; a running one's
    ``concurrent_users`` only (the load changes live); a finished one's not at all. Only a
    session that is not running can be deleted.
    """

    # The endpoints' rows come with the page: each row's summary figures merge them.
    queryset = LoadTestSession.objects.select_related(
        "target", "created_by", "started_by", "stopped_by"
    ).prefetch_related("endpoint_stats")
    serializer_class = LoadTestSessionSerializer
    action_permissions = {
        "start": "operate",
        "stop": "operate",
        "clone": "add",
        "stats": "view",
        "timeseries": "view",
        "chart": "view",
        "errors": "view",
        "requests": "view",
        "export": "view",
        "report": "view",
        "history": "view",
        "event_log": "view",
        "distribution": "view",
        "baseline": "operate",
    }
    filter_backends = [SessionHistoryFilter, *api_settings.DEFAULT_FILTER_BACKENDS]
    # target, status, tag, name and the time filters: history_filters.py.
    filterset_fields = ["end_reason", "created_by"]
    search_fields = ["session_name"]
    ordering_fields = ["created_at", "start_time", "end_time", "total_requests", "status"]

    def get_serializer_context(self):
        # Only one session's answer carries its deltas against the baseline (not lists).
        return {**super().get_serializer_context(), "with_baseline": self.action == "retrieve"}

    def perform_update(self, serializer):
        serializer.save()  # update_session records the history

    def perform_destroy(self, session):
        delete_session(session, user=self.request.user)

    def update(self, request, *args, **kwargs):
        session = self.get_object()
        if session.status == SessionStatus.PENDING:
            return super().update(request, *args, **kwargs)
        # Once started, the configuration is what ran; the service says what the status still
        # allows (live concurrent_users and endpoint_weights), so only a PATCH is read, field
        # by field.
        if not kwargs.get("partial"):
            raise SessionStateError(
                f"Session {session.pk} is {session.status}; PATCH the fields to change "
                "(only concurrent_users and endpoint_weights while it runs) instead of replacing "
                "it whole."
            )
        if not isinstance(request.data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Send a JSON object, not {type(request.data).__name__}."]}
            )
        changes = dict(request.data.items())
        if "concurrent_users" in changes:
            try:
                changes["concurrent_users"] = serializers.IntegerField().run_validation(
                    changes["concurrent_users"]
                )
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"concurrent_users": exc.detail}) from exc
        session = update_session(session, changes, user=request.user, via=request_via(request))
        return Response(self.get_serializer(session).data)

    @extend_schema(request=None, responses={202: StartedSessionSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Queue the session's shards; 202 while it starts, 409 if it is not pending, 503 if
        Redis is down. ``warnings`` says when the load workers cannot take every shard now."""
        session = start_session(self.get_object(), user=request.user, via=request_via(request))
        started = StartedSessionSerializer(session, context=self.get_serializer_context())
        return Response(started.data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: LoadTestSessionSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Every shard stops sending within a second; the status becomes final when they
        have flushed their last counts."""
        session = stop_session(self.get_object(), user=request.user, via=request_via(request))
        return Response(self.get_serializer(session).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter(
                "config",
                OpenApiTypes.STR,
                enum=["start", "end"],
                description="Which users and weights to copy, for a session changed while it "
                "ran: as configured at the start (default) or as it ended. In the query "
                "string or the body.",
            )
        ],
        responses={201: LoadTestSessionSerializer},
    )
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        """A new pending session with this one's configuration: its users and weights as
        configured at the start (``config=start``, the default) or as it ended (``end``)."""
        config, via = _clone_config(request), request_via(request)
        session = clone_session(self.get_object(), user=request.user, config=config, via=via)
        return Response(self.get_serializer(session).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """Totals and per-endpoint figures, as of the monitor's last pass (about 1 s ago)."""
        return Response(stats_snapshot(self.get_object()))

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Points after this."),
        ],
        responses=TimeSeriesPointSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=LongPages)
    def timeseries(self, request, pk=None):
        """One point per second: requests, failures, unavailable, suppressed, mean latency."""
        points = self.get_object().timeseries.order_by("timestamp")
        since = parse_since(request.query_params.get("since"))
        if since is not None:
            points = points.filter(timestamp__gt=since)
        page = self.paginate_queryset(points)
        return self.get_paginated_response(TimeSeriesPointSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.STR, description="ISO 8601 or epoch s."),
            OpenApiParameter("to", OpenApiTypes.STR, description="ISO 8601 or epoch s."),
            OpenApiParameter("points", OpenApiTypes.INT, description="At most (1-2000)."),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["get"])
    def chart(self, request, pk=None):
        """The time series bucketed for a chart: at most ``points`` (default 1000) entries
        over ``from``..``to`` (default: the whole run), in columns."""
        return Response(chart(self.get_object(), request.query_params))

    @extend_schema(responses=ErrorSampleSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=LongPages)
    def errors(self, request, pk=None):
        """The sampled error log: a few failures per endpoint and class and second, newest
        first, the newest ERROR_SAMPLES_KEPT kept."""
        samples = self.get_object().error_samples.order_by("-at", "-pk")
        page = self.paginate_queryset(samples)
        return self.get_paginated_response(ErrorSampleSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, description="Kind(s), comma-separated."),
            OpenApiParameter("via", OpenApiTypes.STR, description="Surface(s), comma-separated."),
        ],
        responses=SessionEventSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=LongPages, url_path="event-log")
    def event_log(self, request, pk=None):
        """The session's events kept, newest first: each lifecycle step (created, started,
        load began, users and weights changed, stop asked, emergency stop, ended) with who
        and through which surface, and the engine's and monitor's notices. ``?kind=`` and
        ``?via=`` filter (comma-separated); an unknown value is a 400 naming it."""
        events = self.get_object().events.order_by("-at", "-pk")
        for name, choices in (("kind", EventKind), ("via", Via)):
            wanted = _choices_param(request.query_params.get(name), name, choices)
            if wanted:
                events = events.filter(**{f"{name}__in": wanted})
        page = self.paginate_queryset(events)
        return self.get_paginated_response(SessionEventSerializer(page, many=True).data)

    @extend_schema(responses=RequestLogEntrySerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=LongPages)
    def requests(self, request, pk=None):
        """The request log of a session with enable_logging: a few requests per endpoint each
        second, any outcome, newest first, the newest REQUEST_LOG_KEPT kept."""
        entries = self.get_object().request_log.order_by("-at", "-pk")
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(RequestLogEntrySerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
            OpenApiParameter(
                "table",
                OpenApiTypes.STR,
                enum=list(EXPORT_TABLES),
                description="CSV only: which table (default endpoints).",
            ),
        ],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): str},
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer])
    def export(self, request, pk=None):
        """The session's results as a download: JSON (everything) or CSV (one table)."""
        session = self.get_object()
        if request.accepted_renderer.format == "csv":
            table = request.query_params.get("table", "endpoints")
            if table not in EXPORT_TABLES:
                raise serializers.ValidationError(
                    {"table": f"Choose one of: {', '.join(EXPORT_TABLES)}."}
                )
            data, name = export_rows(session, table), f"session-{session.pk}-{table}.csv"
        else:
            data, name = export_document(session), f"session-{session.pk}.json"
        return Response(data, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @extend_schema(responses={(200, "text/html"): str})
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, HTMLReportRenderer])
    def report(self, request, pk=None):
        """The session's report: one self-contained HTML file (summary, thresholds, charts,
        endpoints, errors, configuration with secrets masked, environment) that opens
        offline in any browser."""
        session = self.get_object()
        return HttpResponse(
            render_report(session),
            content_type="text/html; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{report_filename(session)}"'},
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                OpenApiTypes.STR,
                description="Quantiles from 0 to 1, comma-separated (e.g. 0.999,0.9999): the "
                f"latency at each as well (at most {comparison_params.QUANTILES_MAX}).",
            ),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["get"])
    def distribution(self, request, pk=None):
        """The latency distribution from the stored histograms: a percentile curve (quantile,
        ms) for all endpoints and for each, and with ``q`` the latency at any quantile."""
        session = self.get_object()
        quantiles = comparison_params.parse_quantiles(request.query_params.get("q"))
        return Response(
            {"session": session.pk, "endpoints": comparison.distribution(session, quantiles)}
        )

    @extend_schema(request=None, responses={200: TargetSerializer})
    @action(detail=True, methods=["post", "delete"])
    def baseline(self, request, pk=None):
        """POST: make this finished (completed or stopped) session its target's baseline;
        DELETE: the target has no baseline any more (409 unless this session is it)."""
        session = self.get_object()
        if request.method == "POST":
            target = set_baseline(session, user=request.user, via=request_via(request))
        else:
            target = session.target
            if target.baseline_session_id != session.pk:
                raise SessionStateError(
                    f"Session {session.pk} is not the baseline of target '{target.name}' "
                    + (
                        f"(session {target.baseline_session_id} is)."
                        if target.baseline_session_id
                        else "(it has none)."
                    )
                )
            target = clear_baseline(target, user=request.user, via=request_via(request))
        return Response(TargetSerializer(target, context=self.get_serializer_context()).data)


class CompareView(APIView):
    """Sessions side by side (``?ids=1,2,3``, 2 to 10): per endpoint and in all, requests/s,
    error rate (in all and by failure class), p50/p95/p99, each with absolute and relative
    deltas against the first session, better/worse, and which figures regressed beyond the
    margin (``margin_pct``, default the first session's target's)."""

    required_permission = "loadtests.view_loadtestsession"

    @extend_schema(
        parameters=[
            OpenApiParameter("ids", OpenApiTypes.STR, required=True, description="e.g. 1,2,3"),
            OpenApiParameter("margin_pct", OpenApiTypes.NUMBER, description="0 to 1000."),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        sessions = comparison_params.parse_sessions(request.query_params.get("ids"))
        margin_pct = comparison_params.parse_margin(request.query_params.get("margin_pct"))
        return Response(comparison.compare(sessions, margin_pct=margin_pct))


class AuditEntryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The audit log: every state-changing API and admin call, newest first."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    pagination_class = LongPages
    filterset_fields = ["username", "method", "status_code"]
    search_fields = ["path", "action"]


class EmergencyStopView(APIView):
    """Stop every running session on every worker within a second, recording who did it."""

    required_permission = "loadtests.emergency_stop"

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        stopped = emergency_stop(user=request.user, via=request_via(request))
        return Response({"stopped_sessions": stopped})


class WorkersView(APIView):
    """Live workers (load and control, each with its ``role``) and the shards they run, from
    their presence keys and heartbeats; ``summary`` counts them by role."""

    required_permission = "loadtests.view_loadtestsession"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        try:
            workers = live_workers(get_redis())
        except (RedisError, OSError) as exc:
            raise EngineUnavailable(
                f"Cannot list the workers: Redis, where they announce themselves, is "
                f"unreachable ({exc}). Check that Redis is running at REDIS_URL."
            ) from exc
        return Response({"workers": workers, "summary": worker_summary(workers)})


def _clone_config(request) -> object:
    """``config`` from the body or the query string (the service checks its value); the two
    disagreeing is a 400 rather than a guess."""
    if not isinstance(request.data, Mapping):
        raise serializers.ValidationError(
            {"non_field_errors": [f"Send a JSON object, not {type(request.data).__name__}."]}
        )
    in_body = request.data.get("config")
    in_query = request.query_params.get("config")
    if in_body is not None and in_query is not None and in_body != in_query:
        raise serializers.ValidationError(
            {"config": ["Given twice with different values (body and query string): give one."]}
        )
    return in_body if in_body is not None else in_query


def _choices_param(raw: str | None, name: str, choices) -> list[str]:
    """``?name=a,b`` as a list of known values; a 400 naming the unknown ones and the known."""
    if not raw:
        return []
    given = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = sorted(set(given) - set(choices.values))
    if unknown:
        shown = ", ".join(repr(value[:40]) for value in unknown[:5])
        raise serializers.ValidationError(
            {name: [f"Unknown {name} {shown}; one of: {', '.join(choices.values)}."]}
        )
    return given
