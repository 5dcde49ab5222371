"""The Docker image's steps work as the users they run as, checked without Docker.

No Docker engine runs here, so the test plays the image: it reads the Dockerfile and runs its
build steps in a temporary folder laid out like the image (its absolute paths moved under that
folder), as root until the file's USER and as that user after it, with the unprivileged
`nobody` standing for the image's APP_USER. Then it runs the compose `web` service's command
(`manage.py prepare`, then uvicorn) as `nobody`, as the container would, and fetches the admin
login page and its static files. Reading both files keeps the test in step with them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from loadtest_project.embedded_redis import free_port

from .admin_page import assert_admin_login_served

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="plays root and nobody: needs root"),
]

ROOT = Path(__file__).resolve().parent.parent
IMAGE_USER = "nobody"  # stands for the image's APP_USER
# Runs a command as that user. This machine's Python lives under /root, private to root, where
# the image's is world-readable: the read-search capability stands in for that difference. It
# lets the user read any file and leaves what it may write exactly as `nobody`'s.
AS_IMAGE_USER = [
    "setpriv",
    f"--reuid={IMAGE_USER}",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]
# Steps that only make sense in a real image: here `nobody` already exists and the packages
# are this virtualenv's.
IMAGE_ONLY_STEPS = ("useradd ", "pip install ")


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def dockerignored(context: Path):
    """A copytree ``ignore`` for the .dockerignore patterns this project uses."""
    patterns = [line.strip() for line in (context / ".dockerignore").read_text().splitlines()]
    patterns = [pattern for pattern in patterns if pattern and not pattern.startswith("#")]
    assert not any(pattern.startswith("!") for pattern in patterns), "teach the test '!'"

    def ignore(folder: str, names: list[str]) -> set[str]:
        relative_folder = Path(folder).relative_to(context)
        ignored = set()
        for name in names:
            relative = (relative_folder / name).as_posix()
            for pattern in patterns:
                if pattern.startswith("**/"):
                    matched = fnmatch.fnmatch(name, pattern[3:])
                else:
                    matched = fnmatch.fnmatch(relative, pattern.rstrip("/"))
                if matched:
                    ignored.add(name)
        return ignored

    return ignore


class Image:
    """A folder laid out like the image's file system, and the build steps' state."""

    def __init__(self, root: Path, build_args: dict[str, str]) -> None:
        self.root = root
        self.build_args = build_args
        # The commands find this virtualenv's python, as the image finds its own.
        self.env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
        }
        self.image_paths: list[str] = []  # absolute paths of the image, now under root
        self.workdir = root
        self.user: str | None = None  # None: root

    def inside(self, image_path: str) -> Path:
        self.image_paths.append(image_path)
        return self.root / image_path.lstrip("/")

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda match: self.env[match.group(1)], text)

    def run(self, keyword: str, arguments: str) -> None:
        if keyword in ("FROM", "EXPOSE", "CMD"):
            return
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            self.env[name] = self.build_args.get(name, default)
        elif keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                self.env[name] = str(self.inside(value)) if value.startswith("/") else value
        elif keyword == "WORKDIR":
            self.workdir = self.inside(arguments)
            self.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            assert not arguments.startswith("--"), f"teach the test COPY options: {arguments}"
            source, destination = arguments.split()
            target = self.workdir / destination
            if source == ".":
                shutil.copytree(ROOT, target, ignore=dockerignored(ROOT), dirs_exist_ok=True)
            else:
                shutil.copy2(ROOT / source, target)
        elif keyword == "USER":
            self.user = self.expand(arguments)
            assert self.user == IMAGE_USER, f"USER {arguments}: not the APP_USER"
        elif keyword == "RUN":
            self.run_step(arguments)
        else:
            raise AssertionError(f"teach the test the Dockerfile instruction {keyword}")

    def run_step(self, command: str) -> None:
        if command.startswith(IMAGE_ONLY_STEPS):
            return
        for image_path in self.image_paths:  # it would touch this machine's own folders
            assert image_path not in command, f"use the variable, not {image_path}: {command}"
        as_user = [] if self.user is None else AS_IMAGE_USER
        done = subprocess.run(
            [*as_user, "/bin/sh", "-c", command],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def image_root() -> Iterator[Path]:
    # Not pytest's tmp_path, whose parents are private to root: an image's folders are not.
    root = Path(tempfile.mkdtemp(prefix="image-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def build(image_root: Path) -> Image:
    """The Dockerfile's steps, as root and then as its USER (`nobody` for APP_USER)."""
    image = Image(image_root, build_args={"APP_USER": IMAGE_USER})
    instructions = dockerfile_instructions()
    assert ("ARG", "APP_USER=loadtest") in instructions
    for keyword, arguments in instructions:
        image.run(keyword, arguments)
    assert image.user == IMAGE_USER, "the image must not run as root"
    return image


def web_command(port: int) -> list[str]:
    """The compose `web` service's command, listening on 127.0.0.1:port."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["web"]["command"]
    assert "manage.py prepare" in command
    for in_the_image, here in (
        ("--host 0.0.0.0", "--host 127.0.0.1"),
        ("--port 8000", f"--port {port}"),
    ):
        assert in_the_image in command, f"{in_the_image!r} not in the web command: {command}"
        command = command.replace(in_the_image, here)
    return shlex.split(command)


def test_image_steps_work_as_their_users_and_the_web_serves_static_files(image_root, redis_url):
    image = build(image_root)
    static_root = Path(image.env["STATIC_ROOT"])
    assert (static_root / "staticfiles.json").exists()
    assert static_root.stat().st_uid == Path(image.env["DATA_DIR"]).stat().st_uid != 0
    assert (image.workdir / "manage.py").stat().st_uid == 0  # the code is root's

    port = free_port()
    start_env = {
        **image.env,
        "SECRET_KEY": "image-test-key",  # compose: from .env
        "REDIS_URL": redis_url,
        "ALLOWED_HOSTS": "127.0.0.1",
        "ADMIN_PASSWORD": "image-test-password",
    }
    log_path = image_root / "web.log"
    with log_path.open("wb") as log:
        web = subprocess.Popen(
            [*AS_IMAGE_USER, *web_command(port)],
            cwd=image.workdir,
            env=start_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert_admin_login_served(
            f"http://127.0.0.1:{port}", lambda: web.poll() is None, log_path.read_text
        )
        database = Path(image.env["DATA_DIR"]) / "db.sqlite3"
        assert database.stat().st_uid == static_root.stat().st_uid  # prepared as the user
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            os.killpg(web.pid, signal.SIGKILL)
        web.wait(timeout=10)


def test_prepare_says_what_to_fix_when_the_static_folder_is_not_the_users(image_root):
    """The old image's mistake (static files collected as root at build) ends with a message
    naming the folder, not a traceback."""
    image = build(image_root)
    static_root = Path(image.env["STATIC_ROOT"])
    subprocess.run(["chown", "-R", "root", str(static_root)], check=True)
    env = {**image.env, "SECRET_KEY": "image-test-key", "ADMIN_PASSWORD": "image-test-pw"}
    done = subprocess.run(
        [*AS_IMAGE_USER, sys.executable, "manage.py", "prepare"],
        cwd=image.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"Cannot write the static files to {static_root}" in done.stderr, done.stderr
