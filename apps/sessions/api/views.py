"""REST endpoints: the catalog, sessions with their actions, workers, emergency stop."""

from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.workers.control import get_redis
from apps.workers.inventory import live_workers

from .. import services
from ..choices import SessionStatus
from ..models import Endpoint, LoadTestSession, Target
from .serializers import (
    EndpointSerializer,
    EndpointStatsSerializer,
    LoadTestSessionSerializer,
    SessionEventSerializer,
    TargetSerializer,
)

RECENT_EVENTS = 20


class TargetViewSet(viewsets.ModelViewSet):
    """Applications under test. A target's host must be on ALLOWED_TARGET_HOSTS."""

    queryset = Target.objects.all()
    serializer_class = TargetSerializer


class EndpointViewSet(viewsets.ModelViewSet):
    """Requests the virtual users send; filter a target's with ``?target=<id>``."""

    queryset = Endpoint.objects.select_related("target")
    serializer_class = EndpointSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        target = self.request.query_params.get("target")
        if target is not None:
            queryset = queryset.filter(target_id=target) if target.isdigit() else queryset.none()
        return queryset


class LoadTestSessionViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Load-test sessions: create from a LoadTestConfig, start, stop, read statistics.

    A pending session's configuration can be changed freely; a running one's
    ``concurrent_users`` only (the load changes live); a finished one's not at all.
    """

    queryset = LoadTestSession.objects.select_related(
        "target", "created_by", "started_by", "stopped_by"
    )
    serializer_class = LoadTestSessionSerializer
    LIVE_FIELDS = frozenset({"concurrent_users"})
    action_permissions = {"start": "operate", "stop": "operate", "stats": "view"}

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    def update(self, request, *args, **kwargs):
        session = self.get_object()
        if session.status == SessionStatus.PENDING:
            return super().update(request, *args, **kwargs)
        if session.status not in (SessionStatus.STARTING, SessionStatus.RUNNING):
            raise services.SessionStateError(
                f"Session {session.pk} is {session.status}; its configuration is final."
            )
        fields = set(request.data)
        if not kwargs.get("partial") or not fields or fields - self.LIVE_FIELDS:
            others = ", ".join(sorted(fields - self.LIVE_FIELDS)) or "a full replacement"
            raise services.SessionStateError(
                f"Only concurrent_users can change while a session runs (not {others})."
            )
        try:
            users = serializers.IntegerField().run_validation(request.data["concurrent_users"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"concurrent_users": exc.detail}) from exc
        session = services.change_users(session, users, user=request.user)
        return Response(self.get_serializer(session).data)

    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Queue the session's shards; 202 while it starts, 409 if it is not pending."""
        session = services.start_session(self.get_object(), user=request.user)
        return Response(self.get_serializer(session).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Every shard stops sending within a second; the status becomes final when they
        have flushed their last counts."""
        session = services.stop_session(self.get_object(), user=request.user)
        return Response(self.get_serializer(session).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """Totals and per-endpoint figures, as of the monitor's last pass (about 1 s ago)."""
        session = self.get_object()
        endpoints = list(session.endpoint_stats.all())
        return Response(
            {
                "session": session.pk,
                "status": session.status,
                "total_requests": session.total_requests,
                "total_failures": session.total_failures,
                "requests_per_second": round(session.requests_per_second(), 2),
                "elapsed_s": round(session.elapsed_seconds(), 3),
                "updated_at": session.stats_updated_at,
                "not_sent": _sum_counts(row.not_sent for row in endpoints),
                "endpoints": EndpointStatsSerializer(endpoints, many=True).data,
                "recent_events": SessionEventSerializer(
                    session.events.order_by("-at", "-pk")[:RECENT_EVENTS], many=True
                ).data,
            }
        )


def _sum_counts(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in dicts:
        for name, count in counts.items():
            total[name] = total.get(name, 0) + count
    return total


class EmergencyStopView(APIView):
    """Stop every running session on every worker within a second, recording who did it."""

    required_permission = "loadtests.emergency_stop"

    def post(self, request):
        stopped = services.emergency_stop(user=request.user)
        return Response({"stopped_sessions": stopped})


class WorkersView(APIView):
    """Live load workers and the shards they run, from their presence keys and heartbeats."""

    required_permission = "loadtests.view_loadtestsession"

    def get(self, request):
        return Response({"workers": live_workers(get_redis())})
