"""Beat's health check (`manage.py check_beat`, the compose file's `beat` healthcheck): healthy
only while beat's periodic tick has recently reached the control worker."""

from __future__ import annotations

import time

import pytest
from django.core.management import CommandError, call_command

from apps.sessions.lifecycle import monitor
from apps.sessions.lifecycle.monitor import BEAT_TICK_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_tick_yet(redis_client):
    redis_client.delete(BEAT_TICK_KEY)
    yield
    redis_client.delete(BEAT_TICK_KEY)


def test_unhealthy_before_any_tick() -> None:
    with pytest.raises(CommandError, match="No tick of beat has reached the control worker"):
        call_command("check_beat")


def test_the_periodic_task_makes_it_healthy(capsys) -> None:
    monitor.monitor_active_sessions()
    call_command("check_beat")
    assert "Beat ticked" in capsys.readouterr().out


def test_an_old_tick_is_unhealthy_and_says_what_may_be_stuck(redis_client) -> None:
    redis_client.set(BEAT_TICK_KEY, repr(time.time() - 120))
    with pytest.raises(CommandError, match=r"120 s ago .*beat, the broker or the control worker"):
        call_command("check_beat", "--max-age", "30")
    call_command("check_beat", "--max-age", "300")
