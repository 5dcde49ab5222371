"""The README's run command: everything starts, answers where it says, and Ctrl-C ends it all."""

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
from loadtest_project.procfile import RELEASE

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""  # exited meanwhile


def test_runstack_starts_every_process_and_ctrl_c_stops_them_all(tmp_path):
    ports = {name: free_port() for name in ("WEB_PORT", "FLOWER_PORT", "APP_PORT")}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL", "TARGET_APP_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        {name: str(port) for name, port in ports.items()},
        EMBEDDED_REDIS_PORT=str(free_port()),
        DATA_DIR=str(tmp_path / "data"),
        ADMIN_PASSWORD="run-command-test",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "runstack.log"
    with open(log_path, "wb") as log:
        runstack = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "Press Ctrl-C to stop everything." not in log_path.read_text(errors="replace"):
            assert runstack.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no banner within 120 s"
            time.sleep(0.5)
        banner = log_path.read_text(errors="replace")
        token = re.search(r"Authorization: Token (\w+)", banner).group(1)
        web = f"http://127.0.0.1:{ports['WEB_PORT']}"
        assert requests.get(f"{web}/", timeout=10).status_code == 200
        targets = requests.get(
            f"{web}/api/targets/", headers={"Authorization": f"Token {token}"}, timeout=10
        )
        assert targets.status_code == 200
        assert targets.json()["results"][0]["base_url"] == f"http://localhost:{ports['APP_PORT']}"
        flower = f"http://127.0.0.1:{ports['FLOWER_PORT']}/"
        assert requests.get(flower, timeout=10).status_code == 401  # never open
        # Its own credentials, from the banner; the admin's do not open it.
        flower_user, flower_password = re.search(
            r"Flower .* user '(\w+)', password (\S+)", banner
        ).groups()
        assert requests.get(flower, auth=(flower_user, flower_password), timeout=10).ok
        refused = requests.get(flower, auth=("admin", "run-command-test"), timeout=10)
        assert refused.status_code == 401
        app = requests.get(f"http://127.0.0.1:{ports['APP_PORT']}/health", timeout=10)
        assert app.json() == {"status": "ok"}

        children = psutil.Process(runstack.pid).children(recursive=True)
        names = " ".join(command_line(child) for child in children)
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
        assert f"{RELEASE:>8} | " not in log_path.read_text(errors="replace")

        runstack.send_signal(signal.SIGINT)
        assert runstack.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], [command_line(process) for process in alive]
    finally:
        if runstack.poll() is None:
            runstack.kill()
        for child in psutil.Process().children(recursive=True):
            if "runstack" in command_line(child):
                child.kill()
