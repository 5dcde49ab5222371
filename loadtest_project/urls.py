"""Top-level routes: the dashboard, the sign-in pages, the admin, the REST API and /metrics."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string
from django.urls import include, path

from apps.sessions.dashboard.urls import account_urlpatterns
from apps.sessions.integrations.prometheus import metrics_view


def bad_request(request, exception):
    """A refused request (most often a form over MAX_REQUEST_BODY_BYTES) explained, where
    Django's default page only says "Bad Request (400)"."""
    context = {"max_body_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    return HttpResponseBadRequest(render_to_string("400.html", context))


handler400 = bad_request


def no_favicon(request):
    """Browsers ask every site for /favicon.ico (the admin's and the browsable API's pages name
    none): answer with nothing, cached for a day, rather than a 404 in every console."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("", include("apps.sessions.dashboard.urls")),
    path("accounts/", include(account_urlpatterns)),
    path("admin/", admin.site.urls),
    path("api/", include("apps.sessions.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("favicon.ico", no_favicon),
    # Prometheus scrapes /metrics by default; off until METRICS_TOKEN or an address list is set.
    path("metrics", metrics_view, name="metrics"),
]
