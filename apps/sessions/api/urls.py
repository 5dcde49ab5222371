"""Routes under /api/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.settings import api_settings

from apps.sessions.access.lockout import lockout_response
from apps.sessions.api import feed_views, streams, throttles, views


class ObtainToken(ObtainAuthToken):
    """Username and password for a token; rate-limited like every other route (DRF's own
    view is not, which would leave passwords open to guessing), and under the sign-in
    lockout: the serializer authenticates with this request, so axes counts the failure
    against the user and the address, and a locked-out caller gets 429 saying when to retry."""

    throttle_classes = [throttles.AnonymousThrottle, throttles.UserThrottle]
    # The bounded JSON parser, as everywhere (DRF's view names its own, unbounded one).
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)  # context: {"request": request}
        if serializer.is_valid():
            token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
            return Response({"token": token.key})
        if getattr(request, "axes_locked_out", False):
            return lockout_response(request)
        raise ValidationError(serializer.errors)


class APIRoot(DefaultRouter.APIRootView):
    """The list of the API's resources, for any signed-in user."""

    required_permission = ""


class Router(DefaultRouter):
    APIRootView = APIRoot


router = Router()
router.register("targets", views.TargetViewSet)
router.register("endpoints", views.EndpointViewSet)
router.register("flows", views.FlowViewSet)
router.register("sessions", views.LoadTestSessionViewSet)
router.register("schedules", views.ScheduleViewSet)
router.register("audit", views.AuditEntryViewSet)
router.register("webhooks", views.WebhookViewSet)

urlpatterns = [
    path("auth/token/", ObtainToken.as_view(), name="api-token"),
    path("emergency-stop/", views.EmergencyStopView.as_view(), name="emergency-stop"),
    path("workers/", views.WorkersView.as_view(), name="workers"),
    path("sessions/<int:pk>/events/", streams.session_events, name="session-events"),
    path("sessions/compare/", views.CompareView.as_view(), name="session-compare"),
    path("targets/<int:pk>/feed/", feed_views.TargetFeedView.as_view(), name="target-feed"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include(router.urls)),
]
