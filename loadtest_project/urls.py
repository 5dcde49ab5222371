"""Top-level routes: the admin, the REST API and a landing page."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns = [
    path(
        "",
        TemplateView.as_view(
            template_name="home.html", extra_context={"flower_url": settings.FLOWER_URL}
        ),
        name="home",
    ),
    path("admin/", admin.site.urls),
    path("api/", include("apps.sessions.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
]
