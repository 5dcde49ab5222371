"""``manage.py loadtest`` as a subprocess on the test database and Redis, and the YAML
configuration files a CI would hand it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loadtest(workers, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """The command in its own process, on the test database and Redis, like the workers."""
    env = {**os.environ, **workers.env, "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "manage.py", "loadtest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def write_config(tmp_path, target_url: str, **fields) -> Path:
    config = {
        "session_name": "ci smoke",
        "target": target_url,
        "concurrent_users": 3,
        "duration_minutes": 0.05,  # 3 s
        "request_interval_min": 0.05,
        "request_interval_max": 0.1,
        **fields,
    }
    path = tmp_path / "loadtest.yaml"
    path.write_text(
        "# A CI smoke test\n"
        + "".join(f"{name}: {json.dumps(value)}\n" for name, value in config.items())
    )
    return path
