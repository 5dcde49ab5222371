"""Routes under /api/."""

from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("targets", views.TargetViewSet)
router.register("endpoints", views.EndpointViewSet)
router.register("sessions", views.LoadTestSessionViewSet)

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("emergency-stop/", views.EmergencyStopView.as_view(), name="emergency-stop"),
    path("workers/", views.WorkersView.as_view(), name="workers"),
    path("", include(router.urls)),
]
