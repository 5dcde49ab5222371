#!/usr/bin/env python3
"""What the container test needs where no image registry can be reached: a Docker engine,
base images built from Debian's packages, and Compose v2 beside Debian's Compose 1.29.

    python3 scripts/containers.py engine        start a Docker engine unless one answers
    python3 scripts/containers.py base-images   build the base images (cached by content)
                                                and print the .env lines that use them
    python3 scripts/containers.py compose       print the Compose commands found

The compose file takes its base images from variables (PYTHON_IMAGE, REDIS_IMAGE,
POSTGRES_IMAGE) whose defaults are the official images, so users keep those; the test passes
these instead. Each is a Debian bookworm `minbase` made by debootstrap from the machine's own
Debian mirror, the machine's CA bundle copied in (pip in the image build then trusts what the
machine trusts), imported with `docker import`, and tagged by a digest of everything that
goes into it: a second run finds it and builds nothing.

Standard library only: .ci/run runs it before anything is installed. Needs root for
debootstrap and dockerd (Debian's docker.io, docker-compose and debootstrap packages).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Images, build cache and the engine's own files: kept between runs, so the base images and
# the project image's layers are built once per machine.
DATA_ROOT = Path(os.environ.get("CONTAINERS_DATA_ROOT", "/var/tmp/loadtest-docker"))
ENGINE_START_TIMEOUT_S = 60
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Compose v2 from Debian's next release (a static Go binary; bookworm only has 1.29).
COMPOSE_V2_DEB = "pool/main/d/docker-compose/docker-compose_2.26.1-4_amd64.deb"
COMPOSE_V2_SHA256 = "47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea"
COMPOSE_V2_IN_DEB = "usr/libexec/docker/cli-plugins/docker-compose"
# Bump when the way images are made changes: every base image is rebuilt.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class BaseImage:
    """A base image made from Debian packages, standing in for an official one."""

    name: str  # the compose variable it fills, e.g. PYTHON_IMAGE
    packages: tuple[str, ...]
    # `docker import --change` lines (USER, ENTRYPOINT, ...).
    changes: tuple[str, ...] = ()
    # Files of scripts/base_images copied into the image: source name -> absolute path.
    files: dict[str, str] = field(default_factory=dict)
    # Folders created for a user: path -> (user, octal mode).
    folders: dict[str, tuple[str, str]] = field(default_factory=dict)
    # What the packages' installation made that the image must not have (glob patterns).
    removed: tuple[str, ...] = ()

    def digest(self) -> str:
        parts = [json.dumps([RECIPE_VERSION, SUITE, asdict(self)], sort_keys=True).encode()]
        parts += [(HERE / "base_images" / name).read_bytes() for name in sorted(self.files)]
        parts.append(CA_BUNDLE.read_bytes() if CA_BUNDLE.exists() else b"")
        return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]

    @property
    def tag(self) -> str:
        return f"loadtest-base-{self.name.split('_')[0].lower()}:{self.digest()}"


BASE_IMAGES = (
    # The project's Dockerfile makes its virtualenv with python3 -m venv and its user with
    # useradd (passwd); procps gives ps for looking inside a running container.
    BaseImage(
        name="PYTHON_IMAGE",
        packages=("python3", "python3-venv", "python3-pip", "ca-certificates", "passwd", "procps"),
        changes=("ENV LANG=C.UTF-8",),
    ),
    BaseImage(
        name="REDIS_IMAGE",
        packages=("redis-server",),
        changes=("USER redis", "WORKDIR /var/lib/redis", 'CMD ["redis-server"]'),
    ),
    # Started like the official image: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB make
    # the cluster on an empty data folder (the entrypoint script says how).
    BaseImage(
        name="POSTGRES_IMAGE",
        packages=("postgresql",),
        changes=(
            "ENV LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data",
            "USER postgres",
            'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]',
        ),
        files={"postgres-entrypoint.sh": "/usr/local/bin/postgres-entrypoint.sh"},
        folders={
            "/var/lib/postgresql/data": ("postgres", "700"),
            "/run/postgresql": ("postgres", "2775"),
        },
        # The cluster Debian's package made while installing (on whatever port was free on
        # the building machine): pg_isready would ask that one's port.
        removed=("etc/postgresql/*", "var/lib/postgresql/[0-9]*"),
    ),
)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, **kwargs)


# --- the engine --------------------------------------------------------------------------------


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        answer = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return answer.returncode == 0


def why_no_engine() -> str | None:
    """Why this machine cannot start an engine, or None if it can."""
    if shutil.which("docker") is None:
        return "the docker client is not installed (Debian: apt-get install docker.io)"
    if shutil.which("dockerd") is None:
        return "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "no Docker engine answers, and starting one (dockerd) needs root"
    return None


def start_engine() -> subprocess.Popen | None:
    """Start dockerd unless an engine answers; returns the process started, or None.

    vfs storage works on any file system (no overlay mounts inside a container), and without
    iptables the engine leaves the machine's firewall alone: containers reach each other on
    their compose network, by service name, and nothing outside.
    """
    if engine_answers():
        return None
    reason = why_no_engine()
    if reason:
        raise RuntimeError(reason)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    log = (DATA_ROOT / "dockerd.log").open("ab")
    engine = subprocess.Popen(
        ["dockerd", "--storage-driver=vfs", "--iptables=false", "--data-root", DATA_ROOT / "data",
         "--exec-root", DATA_ROOT / "exec", "--pidfile", DATA_ROOT / "dockerd.pid"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if engine.poll() is not None:
            raise RuntimeError(f"dockerd exited ({engine.returncode}); see {DATA_ROOT}/dockerd.log")
        if engine_answers():
            return engine
        time.sleep(0.5)
    stop_engine(engine)
    raise RuntimeError(f"dockerd did not answer within {ENGINE_START_TIMEOUT_S} s")


def stop_engine(engine: subprocess.Popen) -> None:
    """Stop an engine this module started (it stops its containerd and containers too)."""
    if engine.poll() is None:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(timeout=30)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()


# --- base images -------------------------------------------------------------------------------


def debian_mirror(
    sources: Path = Path("/etc/apt/sources.list.d/debian.sources"),
    classic: Path = Path("/etc/apt/sources.list"),
) -> str:
    """The machine's own Debian mirror (what apt uses), or Debian's default."""
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    if classic.exists():
        for line in classic.read_text().splitlines():
            words = line.split()
            if len(words) > 2 and words[0] == "deb" and "security" not in words[1]:
                return words[1]
    return DEFAULT_MIRROR


def image_exists(tag: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return found.returncode == 0


def build_base_image(image: BaseImage, mirror: str) -> str:
    """The image's tag, built now unless an image of the same digest exists."""
    if image_exists(image.tag):
        return image.tag
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DATA_ROOT, prefix="rootfs-") as folder:
        rootfs = Path(folder) / "rootfs"
        log = Path(folder) / "debootstrap.log"
        with log.open("wb") as output:
            done = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(image.packages)}",
                 SUITE, rootfs, mirror],
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap of {image.name} failed:\n{log.read_text()[-3000:]}")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        if CA_BUNDLE.exists():
            (rootfs / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
            shutil.copy(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for name, destination in image.files.items():
            target = rootfs / destination.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(HERE / "base_images" / name, target)
            target.chmod(0o755)
        for pattern in image.removed:
            for path in rootfs.glob(pattern):
                shutil.rmtree(path)
        for path, (user, mode) in image.folders.items():
            run(["chroot", rootfs, "install", "-d", "-o", user, "-g", user, "-m", mode, path])
        changes = [arg for change in image.changes for arg in ("--change", change)]
        archive = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        run(["docker", "import", *changes, "-", image.tag], stdin=archive.stdout,
            stdout=subprocess.DEVNULL)  # fmt: skip
        archive.wait()
    return image.tag


def build_base_images() -> dict[str, str]:
    """Compose variable -> image tag, for every base image (built in parallel)."""
    mirror = debian_mirror()
    with ThreadPoolExecutor(max_workers=len(BASE_IMAGES)) as pool:
        tags = pool.map(lambda image: build_base_image(image, mirror), BASE_IMAGES)
        return {image.name: tag for image, tag in zip(BASE_IMAGES, tags, strict=True)}


# --- compose -----------------------------------------------------------------------------------


def compose_v2() -> list[str] | None:
    """Compose v2: the docker plugin if installed, else Debian's package unpacked into the
    data root (fetched once from the machine's mirror, checked against its digest)."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    binary = DATA_ROOT / "compose-v2" / COMPOSE_V2_IN_DEB
    if not binary.exists():
        if shutil.which("dpkg-deb") is None:
            return None
        try:
            with urllib.request.urlopen(f"{debian_mirror()}/{COMPOSE_V2_DEB}", timeout=120) as got:
                package = got.read()
        except OSError:
            return None
        if hashlib.sha256(package).hexdigest() != COMPOSE_V2_SHA256:
            return None
        binary.parent.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(suffix=".deb", dir=DATA_ROOT) as deb:
            deb.write(package)
            deb.flush()
            run(["dpkg-deb", "-x", deb.name, DATA_ROOT / "compose-v2"])
    return [str(binary)]


def compose_v1() -> list[str] | None:
    """Debian bookworm's docker-compose 1.29 (the Python one), if installed."""
    binary = shutil.which("docker-compose")
    if binary is None:
        return None
    version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True)
    return [binary] if version.stdout.startswith("1.") else None


def main(argv: list[str]) -> int:
    if argv == ["engine"]:
        engine = start_engine()
        print("An engine answers." if engine is None else f"Started dockerd (pid {engine.pid}).")
        return 0
    if argv == ["base-images"]:
        for name, tag in build_base_images().items():
            print(f"{name}={tag}")
        return 0
    if argv == ["compose"]:
        print(f"Compose v2: {compose_v2()}\nCompose 1.29: {compose_v1()}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
