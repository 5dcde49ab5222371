"""REST endpoints: the catalog (targets, endpoints) and sessions with their actions."""

from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import services
from ..models import Endpoint, LoadTestSession, Target
from .serializers import (
    EndpointSerializer,
    EndpointStatsSerializer,
    LoadTestSessionSerializer,
    TargetSerializer,
)


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
    viewsets.GenericViewSet,
):
    """Load-test sessions: create from a LoadTestConfig, start, stop, read statistics."""

    queryset = LoadTestSession.objects.select_related(
        "target", "created_by", "started_by", "stopped_by"
    )
    serializer_class = LoadTestSessionSerializer

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

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
        return Response(
            {
                "session": session.pk,
                "status": session.status,
                "total_requests": session.total_requests,
                "total_failures": session.total_failures,
                "requests_per_second": round(session.requests_per_second(), 2),
                "elapsed_s": round(session.elapsed_seconds(), 3),
                "updated_at": session.stats_updated_at,
                "endpoints": EndpointStatsSerializer(session.endpoint_stats.all(), many=True).data,
            }
        )
