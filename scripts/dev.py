#!/usr/bin/env python3
"""The two commands of the README, needing nothing but Python 3.11+:

    python3 scripts/dev.py run    install, then run the whole service until Ctrl-C
    python3 scripts/dev.py test   install the test tools, run the static checks, then the
                                  whole test suite (--no-checks: the suite only;
                                  --unit: tests/unit alone, the tier without processes)
    python3 scripts/dev.py check  install the test tools, then the static checks only
    python3 scripts/dev.py bench  install the benchmark tools, then run bench/ (--quick)

They create ``.venv`` beside this repository on first use and reinstall only when the
requirements change. Extra arguments go to ``manage.py runstack`` or to pytest.
The test command runs the tests in parallel (pytest-xdist, TEST_WORKERS processes, default
4: the tests mostly wait on worker processes, so more processes than cores pays), each
process with its own Redis, Celery workers, test database and temporary folders. Passing
``-n``/``--numprocesses``, ``-p no:xdist`` or setting TEST_REDIS_URL (one shared Redis)
runs it as given instead; ``-n 0`` runs everything in one process, for debugging.
The static checks are ruff's lint, ruff's format check and mypy (configured in
pyproject.toml), and the docs site's strict build (mkdocs.yml: a broken link or anchor in
docs/ fails it); the test command stops before pytest if one fails, so that CI (which runs
the test command) fails on them too.
Unless SECRET_KEY or SECRET_KEY_FILE is set, they create ``data/secret_key`` once
(``$DATA_DIR/secret_key``) and pass it on as SECRET_KEY_FILE: the service refuses to start
without a key, and every process it starts must share one.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
MINIMUM_PYTHON = (3, 11)
# Run by the test and check commands, in this order, each as ``python -m ...`` in the venv.
STATIC_CHECKS = (
    ("ruff check", ["ruff", "check", "."]),
    ("ruff format", ["ruff", "format", "--check", "."]),
    ("mypy", ["mypy"]),
    # Into site/ (git ignores it). Not --quiet: it silences the warnings --strict counts.
    ("mkdocs", ["mkdocs", "build", "--strict", "--site-dir", "site"]),
)
SKIP_CHECKS = "--no-checks"  # test command only: while iterating; CI never passes it
UNIT_ONLY = "--unit"  # test command only: the tests/unit tier alone (seconds, no processes)
UNIT_TIER = "tests/unit"
# Parallel processes for the test command: the shortest wall time on 2 cores without flaky
# tests (measured: see the README). Tests that must not overlap share an xdist_group.
DEFAULT_TEST_WORKERS = "4"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_installed(requirements: str) -> Path:
    """Create the virtualenv and install ``requirements`` unless already done for this file."""
    if sys.version_info < MINIMUM_PYTHON:
        sys.exit(f"Python {'.'.join(map(str, MINIMUM_PYTHON))}+ is needed; this is {sys.version}.")
    python = venv_python()
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    files = [ROOT / requirements, ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
    stamp = VENV / f".installed-{Path(requirements).stem}"
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"Installing {requirements} ...", flush=True)
        subprocess.run(
            [python, "-m", "pip", "install", "--disable-pip-version-check", "-q",
             "-r", ROOT / requirements],
            check=True,
        )  # fmt: skip
        stamp.write_text(digest)
    return python


def ensure_secret_key(data_dir: Path) -> Path:
    """``data_dir/secret_key``: a random key made once, readable by its owner only."""
    key_file = data_dir / "secret_key"
    if not key_file.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key:
            key.write(secrets.token_urlsafe(50))
    return key_file


def static_checks(python: Path) -> bool:
    """Run every check, even after one failed, so that one run shows every problem."""
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")  # material's banner about its successor
    failed, timings = [], []
    for name, args in STATIC_CHECKS:
        print(f"$ {' '.join(args)}", flush=True)
        started = time.monotonic()
        if subprocess.run([python, "-m", *args]).returncode != 0:
            failed.append(name)
        timings.append(f"{name} {time.monotonic() - started:.1f} s")
    if failed:
        print(f"Static checks failed: {', '.join(failed)}. Fix them ('ruff format .' formats; "
              f"'ruff check --fix .' fixes what it can), or pass {SKIP_CHECKS} to the test "
              "command while iterating.", file=sys.stderr, flush=True)  # fmt: skip
        return False
    print(f"Static checks passed ({', '.join(timings)}).", flush=True)
    return True


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "check", "bench"):
        print(__doc__)
        return 2
    command, extra = argv[0], argv[1:]
    os.chdir(ROOT)
    if not (os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE")):
        data_dir = Path(os.environ.get("DATA_DIR", ROOT / "data")).resolve()
        os.environ["SECRET_KEY_FILE"] = str(ensure_secret_key(data_dir))
    if command == "run":
        python = ensure_installed("requirements.txt")
        return replace_process([str(python), "manage.py", "runstack", *extra])
    if command == "bench":
        python = ensure_installed("bench/requirements.txt")
        return replace_process([str(python), "-m", "bench.run", *extra])
    python = ensure_installed("requirements-dev.txt")
    if command == "check":
        return 0 if static_checks(python) else 1
    if UNIT_ONLY in extra:
        extra = [*(arg for arg in extra if arg != UNIT_ONLY), UNIT_TIER]
    if SKIP_CHECKS in extra:
        extra = [arg for arg in extra if arg != SKIP_CHECKS]
    elif not static_checks(python):
        return 1
    return replace_process([str(python), "-m", "pytest", *parallel(extra), *extra])


def parallel(extra: list[str]) -> list[str]:
    """pytest-xdist's options, unless the arguments choose (``-n``, ``-p no:xdist``), ask for
    the container test, or the tests share one Redis (TEST_REDIS_URL: the worker processes
    would see each other's keys)."""
    chosen = any(
        arg.startswith(("-n", "--numprocesses", "--dist")) or arg in ("no:xdist", "-pno:xdist")
        for arg in extra
    )
    # The container test (-m containers) is one compose stack, whose tests run in turn on it:
    # it runs in one process (several would each start a stack under the same names).
    containers = any("containers" in arg for arg in extra)
    if chosen or containers or os.environ.get("TEST_REDIS_URL"):
        return []
    return ["-n", os.environ.get("TEST_WORKERS", DEFAULT_TEST_WORKERS), "--dist", "loadgroup"]


def replace_process(args: list[str]) -> int:
    """Become the command, so Ctrl-C and exit codes reach it directly (no middleman that
    would kill it before it has stopped its own children)."""
    if os.name == "nt":
        return subprocess.call(args)
    os.execv(args[0], args)
    return 0  # not reached


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
