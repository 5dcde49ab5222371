"""Flower has credentials of its own (generated, long, kept in DATA_DIR; FLOWER_BASIC_AUTH
overrides), listens on 127.0.0.1 unless FLOWER_HOST says otherwise, never starts without
basic auth, and asks for it on /metrics too. Flower is started from the Procfile's own line,
as the run command starts it."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from apps.ops.management.commands.prepare import flower_basic_auth
from loadtest_project.embedded_redis import free_port
from loadtest_project.procfile import ManagedProcess, ProcessGroup, read_procfile

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


@pytest.fixture
def data_dir(tmp_path, settings, monkeypatch) -> Path:
    settings.DATA_DIR = tmp_path
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    return tmp_path


def start_flower(group: ProcessGroup, redis_url: str, data_dir: Path, **env: str):
    port = free_port()
    process = group.start(
        "flower",
        read_procfile()["flower"],
        env={"REDIS_URL": redis_url, "DATA_DIR": str(data_dir), "PORT": str(port), **env},
        log_path=data_dir / "flower.log",
    )
    return process, f"http://127.0.0.1:{port}/"


@pytest.fixture
def processes() -> Iterator[ProcessGroup]:
    """Flower processes of a test; FLOWER_HOST unset, so the Procfile's default applies."""
    group = ProcessGroup({k: v for k, v in os.environ.items() if k != "FLOWER_HOST"})
    yield group
    group.stop_all(grace_s=5)


def wait_until_answering(process: ManagedProcess, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.running(), log.read_text(errors="replace")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"Flower did not answer within {START_TIMEOUT_S} s")


def listening_addresses(pid: int) -> set[str]:
    leader = psutil.Process(pid)
    sockets = []
    for process in [leader, *leader.children(recursive=True)]:
        sockets += process.net_connections(kind="inet")
    return {sock.laddr.ip for sock in sockets if sock.status == psutil.CONN_LISTEN}


def test_flower_takes_its_own_generated_credentials_and_listens_locally(
    data_dir, processes, redis_url
):
    credentials = flower_basic_auth()
    user, _, password = credentials.partition(":")
    assert user == "flower" and len(password) >= 32
    process, url = start_flower(processes, redis_url, data_dir, FLOWER_BASIC_AUTH=credentials)
    wait_until_answering(process, url, data_dir / "flower.log")

    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=("admin", "the-admins-password"), timeout=10).status_code == 401
    assert requests.get(url, auth=(user, password + "x"), timeout=10).status_code == 401
    assert requests.get(url, auth=(user, password), timeout=10).status_code == 200
    assert listening_addresses(process.pid) == {"127.0.0.1"}


def test_flowers_metrics_need_its_credentials_too(data_dir, processes, redis_url):
    # Issue 22, item 10: /metrics answered anyone (the workers' names, task names and counts).
    credentials = flower_basic_auth()
    user, _, password = credentials.partition(":")
    process, url = start_flower(processes, redis_url, data_dir, FLOWER_BASIC_AUTH=credentials)
    wait_until_answering(process, url, data_dir / "flower.log")

    assert requests.get(url + "metrics", timeout=10).status_code == 401
    assert requests.get(url + "metrics", auth=(user, "wrong"), timeout=10).status_code == 401
    answer = requests.get(url + "metrics", auth=(user, password), timeout=10)
    assert answer.status_code == 200 and "flower_" in answer.text
    # The liveness probe stays open: it tells nothing.
    assert requests.get(url + "healthcheck", timeout=10).text == "OK"


@pytest.mark.parametrize("credentials", ["", "flower:", ":secret-only"])
def test_flower_refuses_to_start_without_basic_auth(data_dir, processes, redis_url, credentials):
    process, _ = start_flower(processes, redis_url, data_dir, FLOWER_BASIC_AUTH=credentials)
    assert process.popen.wait(timeout=START_TIMEOUT_S) != 0
    log = (data_dir / "flower.log").read_text(errors="replace")
    assert "Flower refuses to start without authentication" in log


def test_generated_credentials_are_kept_for_their_owner_and_an_override_wins(data_dir, monkeypatch):
    first = flower_basic_auth()
    assert flower_basic_auth() == first  # generated once
    saved = data_dir / "flower_basic_auth"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:chosen-password")
    assert flower_basic_auth() == "ops:chosen-password"
    assert saved.read_text() == first


def test_compose_publishes_flower_on_127_0_0_1_by_default_with_required_credentials():
    flower = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["flower"]
    assert flower["ports"] == ["${FLOWER_HOST:-127.0.0.1}:${FLOWER_PORT:-5555}:5555"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert "--conf=loadtest_project/flowerconfig.py" in flower["command"]
