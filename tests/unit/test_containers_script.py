"""The pure parts of scripts/containers.py: base images named by what goes into them, and the
Debian mirror read from apt's own configuration. (tests/containers/ runs the rest for real.)"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from scripts import containers


def test_a_base_image_is_tagged_by_a_digest_of_its_recipe() -> None:
    python = next(image for image in containers.BASE_IMAGES if image.name == "PYTHON_IMAGE")
    assert re.fullmatch(r"loadtest-base-python:[0-9a-f]{16}", python.tag)
    assert python.tag == dataclasses.replace(python).tag  # the same recipe, the same image
    more = dataclasses.replace(python, packages=(*python.packages, "curl"))
    assert more.tag != python.tag  # another package: another image, built anew


def test_the_postgres_entrypoint_is_part_of_its_image_digest(tmp_path: Path, monkeypatch) -> None:
    postgres = next(image for image in containers.BASE_IMAGES if image.name == "POSTGRES_IMAGE")
    before = postgres.digest()
    copy = tmp_path / "base_images"
    copy.mkdir()
    for name in postgres.files:
        (copy / name).write_bytes(
            (containers.HERE / "base_images" / name).read_bytes() + b"\n# changed\n"
        )
    monkeypatch.setattr(containers, "HERE", tmp_path)
    assert postgres.digest() != before


def test_the_mirror_comes_from_apt_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n"
    )
    classic = tmp_path / "sources.list"
    classic.write_text(
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb http://classic.example/debian bookworm main\n"
    )
    missing = tmp_path / "missing"
    assert containers.debian_mirror(deb822, classic) == "http://mirror.example/debian"
    assert containers.debian_mirror(missing, classic) == "http://classic.example/debian"
    assert containers.debian_mirror(missing, missing) == containers.DEFAULT_MIRROR
