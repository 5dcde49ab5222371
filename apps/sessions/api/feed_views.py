"""``/api/targets/{id}/feed/``: a target's data feed, read, uploaded, re-moded and removed.

One route for the one feed a target has: GET its metadata and first rows; PUT a CSV file
(multipart field ``file`` with ``mode``, or the raw CSV as a ``text/csv`` body with
``?mode=`` and ``?filename=``); PATCH ``{"mode": ...}``; DELETE. The writes need the
permission to change targets (the admin role) and go through ``save_feed``,
``set_feed_mode`` and ``delete_feed``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.sessions.access.permissions import CHANGE_TARGETS
from apps.sessions.api.parsers import BoundedJSONParser
from apps.sessions.api.serializers.catalog import DataFeedSerializer
from apps.sessions.api.surfaces import request_via
from apps.sessions.catalog.feeds import delete_feed, save_feed, set_feed_mode
from apps.sessions.models import DataFeed, Target

VIEW_TARGETS = "loadtests.view_target"
READING = frozenset({"GET", "HEAD", "OPTIONS"})


def too_large(size_bytes: int | None = None) -> ValidationError:
    """The refusal of a file over FEED_MAX_BYTES (its size, when known), as a 400."""
    size = f"is {size_bytes:,} bytes" if size_bytes is not None else "is larger than that"
    return ValidationError(
        {
            "file": [
                f"A data feed may be at most {settings.FEED_MAX_BYTES:,} bytes (FEED_MAX_BYTES); "
                f"this file {size}. Keep fewer rows, or ask the operator to raise the limit."
            ]
        }
    )


class CSVBodyParser(BaseParser):
    """A raw ``text/csv`` body, as bytes; read no further than one byte past FEED_MAX_BYTES,
    so a huge body is refused without being held in memory."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        data = stream.read(settings.FEED_MAX_BYTES + 1)
        if len(data) > settings.FEED_MAX_BYTES:
            raise too_large()
        return data


class TargetFeedView(APIView):
    """A target's data feed: the CSV rows its endpoints' templates read as
    ``{{ feed.<column> }}`` (see the README, "Data feeds")."""

    parser_classes = [MultiPartParser, CSVBodyParser, BoundedJSONParser]

    @property
    def required_permission(self) -> str:
        if self.request.method in READING:
            return VIEW_TARGETS
        return CHANGE_TARGETS

    def target(self, pk: int) -> Target:
        return get_object_or_404(Target, pk=pk)

    def feed(self, target: Target) -> DataFeed:
        feed = DataFeed.objects.filter(target=target).select_related("uploaded_by").first()
        if feed is None:
            raise NotFound(
                f"Target '{target.name}' has no data feed; PUT a CSV file to give it one."
            )
        return feed

    @extend_schema(responses=DataFeedSerializer)
    def get(self, request, pk: int):
        """The feed's name, columns, rows, size, mode, who uploaded it when, and its first
        rows; 404 when the target has none."""
        return Response(DataFeedSerializer(self.feed(self.target(pk))).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "mode",
                OpenApiTypes.STR,
                enum=["sequential", "random", "per_user"],
                description="With a text/csv body (a multipart upload has a mode field).",
            )
        ],
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "mode": {"type": "string", "enum": ["sequential", "random", "per_user"]},
                },
                "required": ["file"],
            },
            "text/csv": OpenApiTypes.STR,
        },
        responses={200: DataFeedSerializer, 201: DataFeedSerializer},
    )
    def put(self, request, pk: int):
        """Upload the feed (replacing any): 201 for a new one, 200 for a replacement, 400
        naming the line or limit for a bad file; the mode stays unless given."""
        target = self.target(pk)
        data, filename, mode = self._upload(request)
        existed = DataFeed.objects.filter(target=target).exists()
        feed = save_feed(
            target, data, mode=mode, filename=filename, user=request.user, via=request_via(request)
        )
        return Response(
            DataFeedSerializer(feed).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )

    @extend_schema(
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["sequential", "random", "per_user"]}
                },
            }
        },
        responses=DataFeedSerializer,
    )
    def patch(self, request, pk: int):
        """Change the mode only (``{"mode": "random"}``); the rows stay."""
        target = self.target(pk)
        body = request.data
        if not isinstance(body, dict) or set(body) != {"mode"}:
            raise ValidationError(
                {
                    "mode": [
                        'PATCH takes only the mode, as JSON: {"mode": "sequential" | "random" '
                        '| "per_user"}. PUT a file to change the rows.'
                    ]
                }
            )
        self.feed(target)  # 404 before the permission's 403 would not hide anything
        feed = set_feed_mode(target, body["mode"], user=request.user, via=request_via(request))
        return Response(DataFeedSerializer(feed).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        """Remove the feed (204); 404 when the target has none."""
        target = self.target(pk)
        if not delete_feed(target, user=request.user, via=request_via(request)):
            self.feed(target)  # says it has none
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _upload(self, request) -> tuple[bytes, str, str | None]:
        """The file's bytes, its name and the mode asked for (None: keep)."""
        query = request.query_params
        if isinstance(request.data, bytes):
            return request.data, query.get("filename", ""), query.get("mode")
        if request.content_type.startswith("multipart/form-data"):
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationError(
                    {"file": ["Attach the CSV file in the multipart field 'file'."]}
                )
            if upload.size > settings.FEED_MAX_BYTES:
                raise too_large(upload.size)
            mode = request.data.get("mode") or query.get("mode")
            return upload.read(), upload.name or "", mode
        if request.content_type.startswith("text/csv"):  # an empty body: no stream to parse
            return b"", query.get("filename", ""), query.get("mode")
        raise ValidationError(
            {
                "file": [
                    "Send the CSV as multipart/form-data (field 'file', optional 'mode') or as "
                    "a text/csv body (with ?mode=)."
                ]
            }
        )
