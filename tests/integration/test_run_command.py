"""The README's run command: everything starts, answers where it says, a child that crashes
comes back (the embedded Redis too, with its data), sessions outlive a stop and start of the
whole service, and Ctrl-C ends it all."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from loadtest_project.embedded_redis import free_port
from loadtest_project.procfile import RELEASE, RestartBackoff

from ..support.sessions import BRISK
from ..support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BANNER_END = "Press Ctrl-C to stop everything."

pytestmark = pytest.mark.integration


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""  # exited meanwhile


class RunStack:
    """``manage.py runstack`` as a user runs it, in a data folder of its own; started again
    with the same folder and ports, it is the same service after a restart."""

    def __init__(
        self, tmp_path: Path, workers: int = 1, allow_any_local_port: bool = False
    ) -> None:
        self.tmp_path = tmp_path
        self.workers = workers
        self.ports = {name: free_port() for name in ("WEB_PORT", "FLOWER_PORT", "APP_PORT")}
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("REDIS_URL", "DATABASE_URL", "TARGET_APP_URL", "DJANGO_SETTINGS_MODULE")
        }
        self.env.update(
            {name: str(port) for name, port in self.ports.items()},
            EMBEDDED_REDIS_PORT=str(free_port()),
            DATA_DIR=str(tmp_path / "data"),
            ADMIN_PASSWORD="run-command-test",
            PYTHONUNBUFFERED="1",
        )
        if allow_any_local_port:  # its sessions send to counting servers on random ports
            self.env["ALLOWED_TARGET_HOSTS"] = "127.0.0.1:*,localhost:*"
        self.web = f"http://127.0.0.1:{self.ports['WEB_PORT']}"
        self.process: subprocess.Popen | None = None
        self.runs = 0

    def start(self, timeout_s: float = 300) -> None:
        self.runs += 1
        self.log_path = self.tmp_path / f"runstack-{self.runs}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runstack", "--workers", str(self.workers)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_for_output(BANNER_END, timeout_s)
        self.token = re.search(r"Authorization: Token (\w+)", self.output()).group(1)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            assert self.process.poll() is None, self.output()[-3000:]
            assert time.monotonic() < deadline, f"{text!r} not printed within {timeout_s} s"
            time.sleep(0.2)

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def child(self, marker: str) -> psutil.Process | None:
        """The run command's own child whose command line has ``marker`` (a Celery worker's
        main process, not its pool)."""
        for child in psutil.Process(self.process.pid).children():
            if marker in command_line(child):
                return child
        return None

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}"}
        return requests.request(method, f"{self.web}/api{path}", headers=headers, timeout=10,
                                **kwargs)  # fmt: skip

    def session(self, session_id: int) -> dict | None:
        """The session as the API shows it, or None while the web process does not answer."""
        try:
            response = self.api("get", f"/sessions/{session_id}/")
        except requests.ConnectionError:
            return None
        return response.json() if response.ok else None

    def start_session(self, server) -> int:
        """A session sending load to ``server`` until stopped."""
        target = self.api("post", "/targets/", json={"name": "counting",
                                                     "base_url": server.base_url})  # fmt: skip
        assert target.status_code == 201, target.text
        endpoint = {"target": target.json()["id"], "name": "ping", "url": "/ping"}
        assert self.api("post", "/endpoints/", json=endpoint).status_code == 201
        body = {"session_name": "kept", "target": target.json()["id"], "concurrent_users": 2,
                "duration_minutes": 0, **BRISK}  # fmt: skip
        session = self.api("post", "/sessions/", json=body)
        assert session.status_code == 201, session.text
        session_id = session.json()["id"]
        assert self.api("post", f"/sessions/{session_id}/start/").status_code == 202
        return session_id

    def interrupt(self) -> None:
        """Ctrl-C: the run command stops everything it started and leaves nothing behind."""
        children = self.children()
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=90) == 0, self.output()[-3000:]
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], [command_line(process) for process in alive]

    def clean_up(self) -> None:
        if self.process is not None and self.process.poll() is None:
            for child in self.children():
                child.kill()
            self.process.kill()
            self.process.wait()


@pytest.fixture
def stack(tmp_path):
    running = RunStack(tmp_path, allow_any_local_port=True)
    yield running
    running.clean_up()


def test_restart_backoff_doubles_to_a_ceiling_and_resets_after_a_stable_run():
    backoff = RestartBackoff(first_s=1, max_s=30, stable_after_s=60)
    assert [backoff.delay_s(uptime_s=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_s(uptime_s=61) == 1  # it had stayed up: a fresh crash
    assert backoff.delay_s(uptime_s=1) == 2


def test_runstack_starts_every_process_and_ctrl_c_stops_them_all(tmp_path):
    stack = RunStack(tmp_path, workers=2)
    try:
        stack.start()
        web, ports = stack.web, stack.ports
        assert requests.get(f"{web}/", timeout=10).status_code == 200
        targets = stack.api("get", "/targets/")
        assert targets.status_code == 200
        assert targets.json()["results"][0]["base_url"] == f"http://localhost:{ports['APP_PORT']}"
        flower = f"http://127.0.0.1:{ports['FLOWER_PORT']}/"
        assert requests.get(flower, timeout=10).status_code == 401  # never open
        # Its own credentials, from the banner; the admin's do not open it.
        flower_user, flower_password = re.search(
            r"Flower .* user '(\w+)', password (\S+)", stack.output()
        ).groups()
        assert requests.get(flower, auth=(flower_user, flower_password), timeout=10).ok
        refused = requests.get(flower, auth=("admin", "run-command-test"), timeout=10)
        assert refused.status_code == 401
        # /metrics is on, behind a token generated into the data folder (named, not shown).
        token_file = re.search(r"Metrics .* token in (\S+)>", stack.output()).group(1)
        assert requests.get(f"{web}/metrics", timeout=10).status_code == 401
        metrics_token = Path(token_file).read_text().strip()
        assert metrics_token not in stack.output()
        scraped = requests.get(f"{web}/metrics", timeout=10,
                               headers={"Authorization": f"Bearer {metrics_token}"})  # fmt: skip
        assert scraped.status_code == 200
        assert "loadtest_workers 2.0" in scraped.text
        app = requests.get(f"http://127.0.0.1:{ports['APP_PORT']}/health", timeout=10)
        assert app.json() == {"status": "ok"}

        names = " ".join(command_line(child) for child in stack.children())
        for expected in (
            "uvicorn",
            "-Q load",
            "-Q control",
            "beat",
            "flower",
            "demo_target",
            "redis-server",
        ):
            assert expected in names, expected
        assert names.count("-n load1@") + names.count("-n load2@") >= 2
        # The Procfile's one-off `release` step is never started: runstack prepared first.
        assert "manage.py prepare" not in names
        assert f"{RELEASE:>8} | " not in stack.output()

        stack.interrupt()
    finally:
        stack.clean_up()


@pytest.mark.timeout(420)
def test_a_crashed_child_is_restarted_and_the_session_goes_on(stack, counting_server):
    """The embedded Redis killed: the supervisor restarts it and the session carries on.
    (The control worker, beat and web are killed in test_process_kills.py, which also checks
    the counts stay exact; a Redis lost without persistence may lose a second of counts.)"""
    stack.start()
    session_id = stack.start_session(counting_server)
    wait_until(lambda: counting_server.total > 20, timeout_s=30)

    for name, marker in (("redis", "redis-server"),):
        victim = stack.child(marker)
        victim.kill()  # kill -9
        stack.wait_for_output(f"{name} exited with code -9; restarting in 1 s", timeout_s=10)
        stack.wait_for_output(f"{name} restarted (pid ", timeout_s=30)
        assert stack.child(marker).pid != victim.pid
        # It works again: the API answers, and the session's figures keep moving, which needs
        # the monitor (control worker and beat), Redis and the load worker.
        before = wait_until(lambda: stack.session(session_id), timeout_s=30)["total_requests"]
        wait_until(
            lambda before=before: (
                (stack.session(session_id) or {}).get("total_requests", 0) > before + 20
            ),
            timeout_s=30,
        )
        assert stack.session(session_id)["status"] == "running", name

    assert stack.api("post", f"/sessions/{session_id}/stop/").status_code == 202
    wait_until(lambda: stack.session(session_id)["status"] == "stopped", timeout_s=30)
    stack.interrupt()


@pytest.mark.timeout(420)
def test_a_session_outlives_a_stop_and_start_of_the_whole_service(stack, counting_server):
    stack.start()
    session_id = stack.start_session(counting_server)
    wait_until(lambda: counting_server.total > 20, timeout_s=30)

    stack.interrupt()
    received = counting_server.total
    stack.start()  # the same data folder: the database, and Redis's append-only file

    wait_until(lambda: counting_server.total > received + 20, timeout_s=60)  # load again
    session = stack.session(session_id)
    assert session["status"] == "running", session
    before = session["total_requests"]
    wait_until(lambda: stack.session(session_id)["total_requests"] > before + 20, timeout_s=30)
    assert stack.api("post", f"/sessions/{session_id}/stop/").status_code == 202
    session = wait_until(
        lambda: (found := stack.session(session_id))["status"] != "stopping" and found,
        timeout_s=30,
    )
    assert session["status"] == "stopped", session
    stack.interrupt()
