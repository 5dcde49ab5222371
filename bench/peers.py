"""The peers, run on the same targets in the same run: Locust (FastHttpUser) and wrk."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .targets import ROOT, pinned

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def run_locust(url: str, users: int, seconds: float, cpu: int | None) -> dict:
    """Locust FastHttpUser, one process, ``users`` users spawned at once, no wait time."""
    with tempfile.TemporaryDirectory() as directory:
        prefix = str(Path(directory, "run"))
        command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", url.rstrip("/"), "-u", str(users), "-r", str(users),
            "-t", f"{int(seconds)}s", "--csv", prefix, "--only-summary",
            "--loglevel", "WARNING",
        ]  # fmt: skip
        started = time.monotonic()
        subprocess.run(pinned(command, cpu), cwd=ROOT, capture_output=True, check=False)
        elapsed = time.monotonic() - started
        with open(f"{prefix}_stats.csv") as handle:
            rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    requests = int(total["Request Count"])
    return {
        "requests": requests,
        "failures": int(total["Failure Count"]),
        "rps": requests / seconds,
        "p50_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
        "elapsed_s": elapsed,
    }


def run_wrk(url: str, connections: int, seconds: float, cpu: int | None) -> dict:
    """wrk with one thread; its --latency percentiles are the reference for latency truth."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url]
    output = subprocess.run(pinned(command, cpu), capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    percentiles = {
        int(m.group(1)): _ms(float(m.group(2)), m.group(3))
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    sent = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", output)
    requests = int(sent.group(1))
    elapsed_s = _ms(float(sent.group(2)), sent.group(3)) / 1000
    return {"requests": requests, "rps": requests / elapsed_s,
            "p50_ms": percentiles[50], "p99_ms": percentiles[99]}  # fmt: skip


def _ms(value: float, unit: str) -> float:
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def versions() -> dict[str, str]:
    """The peers' version numbers, for the table's header."""
    found = {}
    for name, command in (("locust", [sys.executable, "-m", "locust", "--version"]),
                          ("wrk", ["wrk", "--version"])):  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            found[name] = "missing"
            continue
        match = re.search(r"(\d+\.\d+[\w.-]*)", result.stdout + result.stderr)
        found[name] = match.group(1) if match else "unknown"
    return found
