"""``manage.py role USERNAME viewer|operator|admin``: give a user one of the roles.

A user has one role at a time; "admin" also lets them into the Django admin (is_staff), where
they manage users; ``--staff`` lets a viewer or an operator in too (they see and do there what
their role allows). The command says which it set, so a staff flag is never cleared silently.
``--create`` makes the user first, without a password (set one in the admin, or use the
token it prints).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from apps.sessions.access.roles import ADMIN, ROLE_PERMISSIONS, sync_roles


class Command(BaseCommand):
    help = "Give a user the viewer, operator or admin role (and print an API token)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=sorted(ROLE_PERMISSIONS))
        parser.add_argument("--create", action="store_true", help="Create the user first.")
        parser.add_argument(
            "--staff",
            action="store_true",
            help="Let a viewer or operator into the Django admin too (admins always are).",
        )

    def handle(self, *args, username: str, role: str, create: bool, staff: bool, **options) -> None:
        sync_roles(Group, Permission)
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"No user {username!r}; add --create to make one.")
            user = user_model.objects.create_user(username)
        user.groups.remove(*Group.objects.filter(name__in=list(ROLE_PERMISSIONS)))
        user.groups.add(Group.objects.get(name=role))
        user.is_staff = role == ADMIN or user.is_superuser or staff
        user.save(update_fields=["is_staff"])
        token, _ = Token.objects.get_or_create(user=user)
        admin_access = (
            "may use the Django admin"
            if user.is_staff
            else "may not use the Django admin (--staff lets them)"
        )
        password = (
            "" if user.has_usable_password() else " It has no password yet: set one in the admin."
        )
        self.stdout.write(
            f"{username} is now {role} and {admin_access}.{password} API token: {token.key}"
        )
