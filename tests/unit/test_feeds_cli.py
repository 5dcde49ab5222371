"""Data feeds from the command line: ``loadtest feed upload|show|delete`` through the services
(history ``via: cli``), bad files refused naming the file and line (exit 2), and a catalog
file's ``target.feed`` imported with its endpoints, or nothing when either is wrong."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from apps.sessions.cli.catalog import CatalogError, import_endpoints
from apps.sessions.models import ConfigChange, DataFeed, Endpoint, Target

pytestmark = pytest.mark.django_db

CSV = b"sku,qty\nA-1,1\nB-2,2\nC-3,3\n"


@pytest.fixture
def target(db) -> Target:
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:8000")


def loadtest(*args: str) -> str:
    out = StringIO()
    call_command("loadtest", *args, stdout=out)
    return out.getvalue()


def test_upload_show_and_delete(tmp_path, target):
    path = tmp_path / "skus.csv"
    path.write_bytes(CSV)
    said = loadtest("feed", "upload", "shop", str(path), "--mode", "random")
    assert said.strip() == (
        f"Target {target.pk} 'shop': data feed skus.csv, 3 rows of sku, qty, mode random."
    )
    feed = DataFeed.objects.get(target=target)
    assert feed.rows == [["A-1", "1"], ["B-2", "2"], ["C-3", "3"]]
    assert ConfigChange.objects.get(field="feed").via == "cli"

    shown = loadtest("feed", "show", str(target.pk))  # by id, as well as by name or URL
    assert "columns:  sku, qty" in shown and "rows:     3 (" in shown
    assert "mode:     random" in shown and "    A-1,1" in shown
    assert "has no data feed" not in shown
    assert "data feed deleted" in loadtest("feed", "delete", "http://127.0.0.1:8000")
    assert not DataFeed.objects.exists()
    assert "has no data feed" in loadtest("feed", "show", "shop")
    assert "nothing to delete" in loadtest("feed", "delete", "shop")


def test_a_new_upload_keeps_the_mode_unless_given(tmp_path, target):
    path = tmp_path / "a.csv"
    path.write_bytes(CSV)
    loadtest("feed", "upload", "shop", str(path), "--mode", "per_user")
    path.write_bytes(b"sku\nZ\n")
    loadtest("feed", "upload", "shop", str(path))
    feed = DataFeed.objects.get()
    assert (feed.mode, feed.columns) == ("per_user", ["sku"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"sku,qty\nA,1\nB\n", "bad.csv: Line 3 has 1 field; the header has 2 (sku, qty)."),
        (b"", "bad.csv: The file is empty"),
        (b"\x00\x01binary", "bad.csv: The file holds a NUL byte (at byte 1)"),
        (None, "bad.csv: cannot read it (No such file or directory)."),
    ],
)
def test_bad_files_are_refused_with_exit_2_naming_the_file(tmp_path, target, content, expected):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CommandError) as caught:
        loadtest("feed", "upload", "shop", str(path))
    assert caught.value.returncode == 2
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(expected)
    assert not DataFeed.objects.exists()


@override_settings(FEED_MAX_BYTES=1024 * 1024)
def test_a_ten_megabyte_file_is_refused_by_its_size(tmp_path, target):
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:
        file.write(b"id\n")
        file.truncate(10 * 2**20)
    with pytest.raises(CommandError, match=r"10,485,760 bytes; a data feed may be at most 1,048"):
        loadtest("feed", "upload", "shop", str(path))


def test_an_unknown_target_or_mode_is_refused(tmp_path, target):
    path = tmp_path / "a.csv"
    path.write_bytes(CSV)
    with pytest.raises(CommandError, match="No target 'nowhere'"):
        loadtest("feed", "show", "nowhere")
    with pytest.raises(CommandError, match="invalid choice: 'shuffle'"):
        loadtest("feed", "upload", "shop", str(path), "--mode", "shuffle")


def catalog(tmp_path: Path, feed_yaml: str, csv: bytes | None = CSV) -> Path:
    if csv is not None:
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / "skus.csv").write_bytes(csv)
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "target:\n  name: shop\n  base_url: http://127.0.0.1:8000\n"
        + feed_yaml
        + "endpoints:\n  - name: item\n    url: /items/{{ feed.sku }}\n"
    )
    return path


def test_a_catalog_file_brings_its_feed_relative_to_itself(tmp_path, target):
    path = catalog(tmp_path, "  feed:\n    file: data/skus.csv\n    mode: random\n")
    said = import_endpoints(str(path))
    assert "1 endpoint(s) added" in said
    assert "Data feed skus.csv: 3 rows of sku, qty, mode random." in said
    feed = DataFeed.objects.get(target=target)
    assert (feed.row_count, feed.mode) == (3, "random")


def test_a_json_catalog_file_too(tmp_path, target):
    (tmp_path / "skus.csv").write_bytes(CSV)
    path = tmp_path / "catalog.json"
    path.write_text(
        '{"target": {"base_url": "http://127.0.0.1:8000",\n'
        '            "feed": {"file": "skus.csv", "mode": "x"}},\n'
        ' "endpoints": [{"name": "a", "url": "/a"}]}'
    )
    with pytest.raises(CatalogError) as caught:
        import_endpoints(str(path))
    assert str(caught.value) == (
        f"{path}:2: target.feed.mode: Unknown mode 'x'; choose one of sequential, random, per_user."
    )


@pytest.mark.parametrize(
    ("feed_yaml", "csv", "expected"),
    [
        ("  feed: users.csv\n", CSV, "catalog.yaml:4: target.feed: must be a mapping"),
        ("  feed:\n    path: a.csv\n", CSV, "catalog.yaml:4: target.feed: unknown field 'path'"),
        ("  feed:\n    mode: random\n", CSV, "catalog.yaml:4: target.feed.file: required"),
        (
            "  feed:\n    file: data/skus.csv\n    mode: shuffle\n",
            CSV,
            "catalog.yaml:4: target.feed.mode: Unknown mode 'shuffle'",
        ),
        (
            "  feed:\n    file: data/skus.csv\n",
            b"sku,qty\nA\n",
            "catalog.yaml:4: target.feed.file: data/skus.csv: Line 2 has 1 field",
        ),
        (
            "  feed:\n    file: data/missing.csv\n",
            None,
            "catalog.yaml:4: target.feed.file: data/missing.csv: cannot read it",
        ),
    ],
)
def test_a_bad_feed_in_a_catalog_file_stores_nothing(tmp_path, target, feed_yaml, csv, expected):
    path = catalog(tmp_path, feed_yaml, csv)
    with pytest.raises(CatalogError) as caught:
        import_endpoints(str(path))
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(expected)
    assert not DataFeed.objects.exists()
    assert not Endpoint.objects.exists()


def test_a_bad_endpoint_leaves_the_feed_out_too(tmp_path, target):
    path = catalog(tmp_path, "  feed:\n    file: data/skus.csv\n")
    path.write_text(path.read_text() + "    weight: -1\n")
    with pytest.raises(CatalogError, match=r"endpoints\[0\]\.weight"):
        import_endpoints(str(path))
    assert not DataFeed.objects.exists()
