"""Map the domain's exceptions to HTTP answers a person can act on (never a 500 for input)."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.sessions.errors import EngineUnavailable, SessionStateError

logger = logging.getLogger(__name__)

REDIS_UNREACHABLE = (
    "Redis is unreachable ({error}), and this call needs it. Check that Redis is running at "
    "REDIS_URL, then try again; reading sessions and their results keeps working meanwhile."
)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):  # Django refused to read the body: say why
        return Response(
            {
                "detail": f"The request body is larger than "
                f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes (MAX_REQUEST_BODY_BYTES)."
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ProtectedError):
        kinds = sorted({str(obj._meta.verbose_name_plural) for obj in exc.protected_objects})
        return Response(
            {"detail": f"Still used by {', '.join(kinds)}: delete those first."},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, RestrictedError):
        return Response({"detail": restricted_message(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, SessionStateError):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, EngineUnavailable):
        return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | BrokerUnavailable):
        # A backstop: the calls known to need Redis say so themselves (EngineUnavailable);
        # this is one that did not expect it. The traceback shows where.
        logger.warning("Redis unreachable during %s", _view_name(context), exc_info=exc)
        return Response(
            {"detail": REDIS_UNREACHABLE.format(error=exc)},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response({"detail": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


def _view_name(context) -> str:
    view = context.get("view")
    return type(view).__name__ if view is not None else "a request"


def restricted_message(exc: RestrictedError) -> str:
    """An endpoint a flow calls cannot be deleted alone: say which flows call it."""
    flows = sorted({str(getattr(obj, "flow", obj)) for obj in exc.restricted_objects})
    return (
        f"Still called by {', '.join(flows[:10])}: remove it from those flows (or delete "
        "them) first."
    )
