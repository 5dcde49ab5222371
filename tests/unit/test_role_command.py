"""`manage.py role`: roles are granted from the command line, one at a time."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_role_command_creates_grants_and_switches(capsys):
    call_command("role", "carol", "viewer", "--create")
    carol = get_user_model().objects.get(username="carol")
    assert carol.has_perm("loadtests.view_loadtestsession")
    assert not carol.has_perm("loadtests.operate_loadtestsession")
    assert "API token:" in capsys.readouterr().out

    call_command("role", "carol", "admin")
    carol = get_user_model().objects.get(username="carol")  # fresh permission cache
    assert [group.name for group in carol.groups.all()] == ["admin"]
    assert carol.is_staff and carol.has_perm("loadtests.emergency_stop")


def test_role_command_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="--create"):
        call_command("role", "nobody", "viewer")


def test_staff_access_is_given_on_request_and_never_taken_silently(capsys):
    call_command("role", "dora", "operator", "--create", "--staff")
    assert get_user_model().objects.get(username="dora").is_staff
    out = capsys.readouterr().out
    assert "may use the Django admin" in out
    assert "no password yet" in out

    call_command("role", "dora", "viewer")  # without --staff: said, not silent
    assert not get_user_model().objects.get(username="dora").is_staff
    assert "may not use the Django admin (--staff lets them)" in capsys.readouterr().out
