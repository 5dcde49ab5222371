"""The dashboard's routes (under /), and the sign-in pages (under /accounts/)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from apps.sessions.dashboard import flow_views, targets, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/new/", views.session_new, name="session-new"),
    path("sessions/<int:pk>/", views.session_detail, name="session"),
    path("workers/", views.workers, name="workers"),
    path("compare/", views.compare, name="compare"),
    path("schedules/", views.schedules, name="schedules"),
    path("targets/", targets.target_list, name="targets"),
    path("targets/<int:pk>/", targets.target_detail, name="target"),
    path("flows/", flow_views.flow_list, name="flows"),
    path("flows/new/", flow_views.flow_edit, name="flow-new"),
    path("flows/<int:pk>/", flow_views.flow_edit, name="flow-edit"),
    path("flows/<int:pk>/delete/", flow_views.flow_delete, name="flow-delete"),
]

account_urlpatterns = [
    # Django's LoginView authenticates with the request, so django-axes counts failures and
    # locks out here as on every other password form.
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="dashboard/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
