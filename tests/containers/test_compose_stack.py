"""The compose stack for real: built, started, scaled, broken and restarted in a Docker engine.

From scratch: an engine is started when none answers, the base images are made from Debian's
packages (scripts/containers.py; cached by content), the project image is built from a copy
of this checkout, and the stack comes up with three workers. The tests then drive it over
HTTP from this machine, as a user would: the web container's API, the demo target's own count
of what it received, and `docker stop` / `docker kill` of worker containers. Compose v2 runs
the stack; Debian's docker-compose 1.29 brings it back after `down` (so both read the file
for real). Everything the tests made is removed at the end: containers, network, volumes.

Load goes only to the `app` container (the demo target), in sessions that end by themselves
or are stopped by the test; `down` ends whatever a failed test left running.

Run with `python3 scripts/dev.py test -m containers` (root, Debian's docker.io, docker-compose
and debootstrap packages; .ci/run installs them). Elsewhere it skips with the reason, except
under CI=true, where it must run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests

from loadtest_project.embedded_redis import free_port
from scripts import containers

from ..support.waiting import wait_until

# The first run builds the base images and the project image (several minutes); later runs
# find them in the engine's cache.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"web", "worker", "control", "beat", "flower", "app", "redis", "postgres"}
WORKERS = 3
USERS = 30
LOAD_SHARD_USERS = 10  # 30 users: three shards, one per worker when all three have room
HEALTHY_TIMEOUT_S = 240
# The only endpoint the sessions use: it sleeps, so 30 users cost the target no CPU. The
# weights name every endpoint and flow of the demo catalog with weight (the shop flow too:
# what a session does not name keeps its catalog weight).
SLOW_PATH = "/performance/slow"
ONLY_SLOW = {
    "slow": 1, "error": 0, "slow-query-full-scan": 0, "slow-query-complex-join": 0,
    "slow-query": 0, "n-plus-one": 0, "cpu": 0, "shop": 0,
}  # fmt: skip
LOAD_BACK_AFTER_KILL_S = 15
WORKER_STOP_GRACE_S = 30  # the compose file's stop_grace_period for workers
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "data" / "artifacts"))


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class Stack:
    """One compose project of this test, in a copy of the checkout."""

    folder: Path
    project: str
    compose: list[str]
    web_url: str
    app_url: str
    flower_url: str
    flower_auth: tuple[str, str]
    admin_password: str
    # The Compose that brings the stack back after `down` (Debian's 1.29 when installed).
    other_compose: list[str] | None = None
    token: str = ""
    log: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 600, compose: list[str] | None = None) -> str:
        command = [*(compose or self.compose), "-p", self.project, *args]
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=self.folder, capture_output=True, text=True, timeout=timeout
        )
        self.log.append(f"$ {' '.join(command)}  ({time.monotonic() - started:.0f} s)")
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def containers(self, service: str | None = None, every: bool = False) -> list[dict]:
        """`docker inspect` of the project's containers (running ones unless ``every``)."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = docker("ps", "-q", *(["-a"] if every else []), *filters).split()
        return json.loads(docker("inspect", *ids)) if ids else []

    def all_healthy(self) -> bool:
        running = self.containers()
        services = [item["Config"]["Labels"]["com.docker.compose.service"] for item in running]
        if set(services) != SERVICES or services.count("worker") != WORKERS:
            return False
        return all(item["State"].get("Health", {}).get("Status") == "healthy" for item in running)

    def wait_healthy(self) -> None:
        wait_until(self.all_healthy, HEALTHY_TIMEOUT_S, 2, what="Every service healthy")

    # --- the API, as a user drives it --------------------------------------------------------

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}"} if self.token else {}
        return requests.request(
            method, f"{self.web_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def sign_in(self) -> None:
        answer = requests.post(
            f"{self.web_url}/api/auth/token/",
            data={"username": "admin", "password": self.admin_password},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["token"]

    def start_session(self, name: str, duration_minutes: float) -> int:
        config = {
            "session_name": name,
            "concurrent_users": USERS,
            "duration_minutes": duration_minutes,
            "request_interval_min": 0.1,
            "request_interval_max": 0.5,
            "endpoint_weights": ONLY_SLOW,
        }
        created = self.api("POST", "/api/sessions/", json=config)
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        started = self.api("POST", f"/api/sessions/{session_id}/start/")
        assert started.status_code == 202, started.text
        return session_id

    def session(self, session_id: int) -> dict:
        return self.api("GET", f"/api/sessions/{session_id}/").json()

    def wait_ended(self, session_id: int, timeout_s: float = 60) -> dict:
        return wait_until(
            lambda: (found := self.session(session_id))["end_time"] and found,
            timeout_s,
            0.5,
            what=f"Session {session_id} ended",
        )

    def shards_by_worker(self, session_id: int) -> dict[str, int]:
        """Live load workers -> users of this session's shards on each."""
        answer = self.api("GET", "/api/workers/")
        assert answer.status_code == 200, answer.text
        users: dict[str, int] = {}
        for worker in answer.json()["workers"]:
            for shard in worker["shards"]:
                if shard["session"] == session_id:
                    users[worker["hostname"]] = users.get(worker["hostname"], 0) + shard["users"]
        return users

    def received(self) -> int:
        """What the demo target has received on the sessions' endpoint since it started."""
        return (
            requests.get(f"{self.app_url}/received", timeout=30).json()["paths"].get(SLOW_PATH, 0)
        )


def worker_container_by_node(stack: Stack) -> dict[str, dict]:
    """Celery node name (load@<container hostname>) -> the worker container."""
    return {f"load@{item['Config']['Hostname']}": item for item in stack.containers("worker")}


def wait_for_a_shard_on_every_worker(stack: Stack, session_id: int) -> None:
    wait_until(
        lambda: sorted(stack.shards_by_worker(session_id).values()) == [LOAD_SHARD_USERS] * WORKERS,
        30,
        0.5,
        what="The session's users running on all three workers, a shard on each",
    )


def copy_checkout(destination: Path) -> None:
    """The files of this checkout that git knows or would add (what a clean clone plus these
    changes holds), never data/, .venv or .env."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def engine_or_skip() -> subprocess.Popen | None:
    """Start an engine if none answers; without one, skip (fail under CI) with the reason."""
    try:
        return containers.start_engine()
    except RuntimeError as exc:
        reason = f"no Docker engine: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the container test)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    engine = engine_or_skip()
    compose_v2, compose_v1 = containers.compose_v2(), containers.compose_v1()
    compose = compose_v2 or compose_v1
    if compose is None:
        engine and containers.stop_engine(engine)
        pytest.fail("Neither Compose v2 nor docker-compose 1.29 is available.")
    base_images = containers.build_base_images()
    folder = Path(tempfile.mkdtemp(prefix="loadtest-compose-"))
    copy_checkout(folder)
    flower_password, admin_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    ports = {"WEB_PORT": free_port(), "APP_PORT": free_port(), "FLOWER_PORT": free_port()}
    settings = {
        **base_images,
        **ports,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FLOWER_BASIC_AUTH": f"flower:{flower_password}",
        "ADMIN_PASSWORD": admin_password,
        "LOADTEST_IMAGE": "loadtest-service-test",
        "BUILD_NETWORK": "host",  # the engine's containers have no way out; the build needs PyPI
        "WEB_HOST": "127.0.0.1",
        "LOAD_SHARD_USERS": LOAD_SHARD_USERS,
    }
    (folder / ".env").write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    built = Stack(
        folder=folder,
        project=f"ltct{secrets.token_hex(3)}",
        compose=compose,
        web_url=f"http://127.0.0.1:{ports['WEB_PORT']}",
        app_url=f"http://127.0.0.1:{ports['APP_PORT']}",
        flower_url=f"http://127.0.0.1:{ports['FLOWER_PORT']}",
        flower_auth=("flower", flower_password),
        admin_password=admin_password,
        other_compose=compose_v1,
    )
    try:
        for tool in filter(None, (compose_v2, compose_v1)):
            built.run("config", "--quiet", compose=tool)
        built.run("build")
        built.run("up", "-d", "--scale", f"worker={WORKERS}")
        built.wait_healthy()
        built.sign_in()
        yield built
    finally:
        save_logs(built)
        try:
            built.run("down", "--volumes", "--remove-orphans", "--timeout", "10")
            # The untagged copies of the image that Compose v2 leaves (one build per service).
            docker("image", "prune", "--force", "--filter", "label=loadtest.image")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            if engine is not None:
                containers.stop_engine(engine)


def save_logs(stack: Stack) -> None:
    """Every service's last lines and the commands run, for reading after a failure."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        logs = stack.run("logs", "--no-color", "--tail", "80", timeout=120)
    except AssertionError as exc:
        logs = str(exc)
    path = ARTIFACTS / "compose-stack.log"
    path.write_text("\n".join(stack.log) + "\n\n" + logs)
    print(f"Compose logs: {path}")


def test_every_service_is_healthy_and_runs_as_its_own_user(stack: Stack) -> None:
    running = stack.containers()
    by_service: dict[str, list[dict]] = {}
    for item in running:
        by_service.setdefault(item["Config"]["Labels"]["com.docker.compose.service"], []).append(
            item
        )
    assert set(by_service) == SERVICES
    assert len(by_service["worker"]) == WORKERS
    for item in running:
        assert item["State"]["Health"]["Status"] == "healthy", item["Name"]
        user = docker("exec", item["Id"], "id", "-un")
        assert docker("exec", item["Id"], "id", "-u") != "0", f"{item['Name']} runs as root"
        expected = {"redis": "redis", "postgres": "postgres"}.get(
            item["Config"]["Labels"]["com.docker.compose.service"], "loadtest"
        )
        assert user == expected, item["Name"]
    # Static files, collected at build and again at start by the same user, are served.
    page = requests.get(f"{stack.web_url}/accounts/login/", timeout=30)
    assert page.status_code == 200
    assert (
        requests.get(f"{stack.web_url}/static/dashboard/dashboard.css", timeout=30).status_code
        == 200
    )


def test_each_worker_container_is_its_own_celery_node(stack: Stack) -> None:
    listed = stack.api("GET", "/api/workers/").json()["workers"]
    load_nodes = {worker["hostname"] for worker in listed if worker["queues"] == ["load"]}
    assert load_nodes == set(worker_container_by_node(stack))
    assert len(load_nodes) == WORKERS
    assert any(worker["queues"] == ["control"] for worker in listed)
    # Flower (behind its password) sees the same nodes.
    flower = requests.get(
        f"{stack.flower_url}/api/workers", params={"refresh": 1}, auth=stack.flower_auth, timeout=60
    )
    assert flower.status_code == 200
    assert load_nodes <= set(flower.json())
    assert requests.get(f"{stack.flower_url}/api/workers", timeout=30).status_code == 401


def test_a_session_spreads_over_the_workers_and_counts_exactly(stack: Stack) -> None:
    received_before = stack.received()
    session_id = stack.start_session("spread over three", duration_minutes=0.3)
    wait_for_a_shard_on_every_worker(stack, session_id)
    ended = stack.wait_ended(session_id)
    assert ended["status"] == "completed", ended
    assert ended["total_requests"] > 0
    # Every request the workers counted, the target received, and nothing more.
    assert ended["total_requests"] == stack.received() - received_before


def test_a_stopped_worker_hands_its_shards_to_the_others(stack: Stack) -> None:
    received_before = stack.received()
    session_id = stack.start_session("one worker stopped", duration_minutes=0)
    wait_until(
        lambda: sum(stack.shards_by_worker(session_id).values()) == USERS,
        30,
        0.5,
        what="All users running",
    )
    node = next(iter(stack.shards_by_worker(session_id)))
    container = worker_container_by_node(stack)[node]
    started = time.monotonic()
    docker("stop", "--time", str(WORKER_STOP_GRACE_S), container["Id"], timeout=90)
    stop_took = time.monotonic() - started
    stopped = json.loads(docker("inspect", container["Id"]))[0]["State"]
    # Exit code 0: the worker shut down warmly, its shards flushed (137 would be SIGKILL).
    assert stopped["ExitCode"] == 0, stopped
    assert stop_took < WORKER_STOP_GRACE_S
    users = wait_until(
        lambda: sum((found := stack.shards_by_worker(session_id)).values()) == USERS and found,
        10,
        0.5,
        what="The stopped worker's users running on the others",
    )
    assert node not in users
    assert len(users) == WORKERS - 1
    stopped = stack.api("POST", f"/api/sessions/{session_id}/stop/")
    assert stopped.status_code == 202, stopped.text
    ended = stack.wait_ended(session_id)
    assert ended["status"] == "stopped"
    # The stopped worker's last statistics arrived: the count is still exact.
    assert ended["total_requests"] == stack.received() - received_before
    # Back to three workers for what follows.
    docker("start", container["Id"])
    stack.wait_healthy()


def test_a_killed_worker_s_load_is_back_within_15_s(stack: Stack) -> None:
    received_before = stack.received()
    session_id = stack.start_session("one worker killed", duration_minutes=0)
    wait_for_a_shard_on_every_worker(stack, session_id)
    node = next(iter(stack.shards_by_worker(session_id)))
    container = worker_container_by_node(stack)[node]
    docker("kill", container["Id"])
    killed_at = time.monotonic()

    def back_on_the_others() -> bool:
        users = stack.shards_by_worker(session_id)
        return node not in users and sum(users.values()) == USERS

    wait_until(
        back_on_the_others, LOAD_BACK_AFTER_KILL_S + 5, 0.5, what="Load back on the other workers"
    )
    back_after = time.monotonic() - killed_at
    print(f"Load back {back_after:.1f} s after docker kill")
    assert back_after <= LOAD_BACK_AFTER_KILL_S
    assert stack.api("POST", f"/api/sessions/{session_id}/stop/").status_code == 202
    ended = stack.wait_ended(session_id)
    # The killed worker's last second of statistics died with it: never more than received.
    received = stack.received() - received_before
    assert 0.8 * received <= ended["total_requests"] <= received
    docker("start", container["Id"])
    stack.wait_healthy()


def test_the_readme_ci_recipe_runs_headless_in_the_web_container(stack: Stack) -> None:
    """`manage.py loadtest run` in the web container, as the README's CI recipe runs it: the
    example config against the demo target, its thresholds judged, exit 0 and a JUnit file."""
    command = [
        *stack.compose, "-p", stack.project, "exec", "-T", "web",
        "python", "manage.py", "loadtest", "run", "--config", "examples/ci-smoke.yaml",
        "--target", "http://app:5000", "--junit", "/tmp/loadtest.xml", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=stack.folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    web = stack.containers("web")[0]["Id"]
    suite = ElementTree.fromstring(docker("exec", web, "cat", "/tmp/loadtest.xml"))
    cases = suite.findall(".//testcase")
    assert len(cases) == 4  # the example's four thresholds
    assert not suite.findall(".//failure") and not suite.findall(".//error")


def test_down_and_up_keeps_sessions_targets_and_results(stack: Stack) -> None:
    sessions = stack.api("GET", "/api/sessions/").json()["results"]
    targets = stack.api("GET", "/api/targets/").json()["results"]
    stats = {
        item["id"]: stack.api("GET", f"/api/sessions/{item['id']}/stats/").json()
        for item in sessions
    }
    assert len(sessions) == 4  # the three tests' sessions and the CI recipe's
    stack.run("down", "--timeout", "30")
    assert stack.containers(every=True) == []
    # Up again with the other Compose (Debian's 1.29 when present): the same file, the same
    # volumes.
    stack.compose = stack.other_compose or stack.compose
    stack.run("up", "-d", "--scale", f"worker={WORKERS}")
    stack.wait_healthy()
    assert stack.api("GET", "/api/sessions/").json()["results"] == sessions
    assert stack.api("GET", "/api/targets/").json()["results"] == targets
    for session_id, before in stats.items():
        after = stack.api("GET", f"/api/sessions/{session_id}/stats/").json()
        assert after["total_requests"] == before["total_requests"]
        assert after["endpoints"] == before["endpoints"]


def test_down_with_volumes_leaves_nothing_behind(stack: Stack) -> None:
    stack.run("down", "--volumes", "--remove-orphans", "--timeout", "10")
    label = f"label=com.docker.compose.project={stack.project}"
    assert docker("ps", "-aq", "--filter", label) == ""
    assert docker("network", "ls", "-q", "--filter", label) == ""
    assert docker("volume", "ls", "-q", "--filter", label) == ""
