"""Users in the role groups, and API clients signed in as them."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from apps.sessions.access.roles import sync_roles


def persona(username: str, role: str):
    """A user in one of the role groups (recreated if a transactional test flushed them)."""
    sync_roles(Group, Permission)
    user = get_user_model().objects.create_user(username, password=f"{username}-pw-42")
    user.groups.add(Group.objects.get(name=role))
    return user


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
