"""The targets the benchmark starts itself, on 127.0.0.1 only, pinned to their own core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from loadtest_project.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120;
  client_body_temp_path {dir};
  proxy_temp_path {dir};
  fastcgi_temp_path {dir};
  uwsgi_temp_path {dir};
  scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "ok\\n"; }}
    # Figure o: a rendered /items/<number> is answered; a path whose placeholders were sent
    # as text (no templating on the shard path) gets a 500, which the figure refuses.
    location ~ "^/items/[0-9]+$" {{ return 200 "ok\\n"; }}
    location /items/ {{ return 500; }}
    location /json {{
      default_type application/json;
      return 200 '{{"status": "ok", "items": [{{"id": 7}}]}}';
    }}
  }}
}}
"""


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """Run ``command`` on one core when the machine has more than one."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def ensure_tools() -> list[str]:
    """nginx and wrk from Debian's packages, installed when missing (and root). Returns what
    is still missing."""
    missing = [tool for tool in ("nginx", "wrk") if not _which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"Installing {', '.join(missing)} from Debian's packages ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env,
                       stdout=subprocess.DEVNULL, check=False)  # fmt: skip
    return [tool for tool in ("nginx", "wrk") if not _which(tool)]


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def wait_http(url: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


class Nginx:
    """nginx with one worker process and a tiny 200 answer: the generator, not the target,
    is the bottleneck."""

    def __init__(self, cpu: int | None) -> None:
        self.port = free_port()
        self.cpu = cpu
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> Nginx:
        conf = Path(self.dir, "nginx.conf")
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port))
        self.process = subprocess.Popen(pinned([_which("nginx"), "-c", str(conf)], self.cpu))
        wait_http(self.url)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def version(self) -> str:
        result = subprocess.run([_which("nginx"), "-v"], capture_output=True, text=True)
        return result.stderr.strip().removeprefix("nginx version: nginx/")


class CountingTarget:
    """bench/counting_target.py in its own process; read its count through /__bench/."""

    def __init__(self, cpu: int | None) -> None:
        self.port = free_port()
        self.cpu = cpu

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> CountingTarget:
        command = [sys.executable, "-m", "bench.counting_target", "--port", str(self.port)]
        self.process = subprocess.Popen(pinned(command, self.cpu), cwd=ROOT,
                                        stdout=subprocess.DEVNULL)  # fmt: skip
        wait_http(f"{self.url}__bench/stats")
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def _post(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + path, method="POST"), timeout=5)

    def reset(self, delay_ms: float = 0) -> None:
        self._post("__bench/reset")
        self._post(f"__bench/delay?ms={delay_ms}")

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}__bench/stats", timeout=5) as answer:
            return json.load(answer)
