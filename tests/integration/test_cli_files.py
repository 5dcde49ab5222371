"""The CLI's files: config files refused with the field and line, a session's configuration
exported and read back, and a target's catalog imported (the demo's example file)."""

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.sessions.cli.catalog import CatalogError, import_endpoints
from apps.sessions.cli.config_file import ConfigError, build_session, read_config
from apps.sessions.cli.run import Run, RunOptions
from apps.sessions.models import ConfigChange, Endpoint, EndpointStats, LoadTestSession, Target

from ..support.sessions import create_session, make_target

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def problem(tmp_path, name: str, text: str | bytes, **options) -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as caught:
        build_session(read_config(path), options.get("target"), options.get("thresholds", []))
    return str(caught.value).replace(str(path), name)


def test_config_files_are_refused_with_the_field_and_the_line(tmp_path, api, counting_server):
    make_target(api, counting_server)
    url = counting_server.base_url
    assert problem(tmp_path, "a.yaml", "session_name: x\nconcurrent_users: [1\n").startswith(
        "a.yaml:3:1: not valid YAML"
    )
    assert problem(tmp_path, "a.json", '{"session_name": "x",\n  "x": }').startswith(
        "a.json:2:8: not valid JSON"
    )
    assert problem(tmp_path, "a.json", '{"a": NaN}').startswith("a.json:1:7: not valid JSON: NaN")
    assert "nested deeper than 64" in problem(tmp_path, "a.json", "[" * 100_000)
    assert (
        problem(tmp_path, "a.json", '{"a": 1, "a": 2}')
        == "a.json: not valid JSON: 'a' is given twice."
    )
    assert problem(tmp_path, "a.yaml", "[" * 2**20) == "a.yaml:1: nested deeper than 64 levels."
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 9)}]\n" for n in range(9)
    )
    assert problem(tmp_path, "a.yaml", laughs) == (
        "a.yaml:2: YAML aliases (*name) are not accepted."
    )
    assert problem(tmp_path, "a.yaml", "[1, 2]").startswith("a.yaml: must be a mapping")
    assert problem(tmp_path, "a.yaml", b"session_name: \xff").startswith("a.yaml: not UTF-8")
    assert problem(tmp_path, "a.yaml", "x: " + "y" * 2**21) == "a.yaml: larger than 1024 KiB."
    assert problem(tmp_path, "a.yaml", "session_name: a\nsession_name: b\n") == (
        "a.yaml:2: 'session_name' is given twice (first on line 1)."
    )
    assert problem(tmp_path, "a.yaml", "session_name: a\nusers: 3\n").startswith(
        "a.yaml:2: unknown field 'users'; the fields are target, session_name"
    )
    text = f"session_name: a\ntarget: {url}\nthresholds:\n  - p95_ms < 5\n  - p95_ms < nan\n"
    assert problem(tmp_path, "a.yaml", text) == (
        "a.yaml:5: thresholds: Threshold 2: 'nan' is not a number (digits, a decimal point, "
        "an exponent)."
    )
    text = f"session_name: a\ntarget: {url}\n"
    assert problem(tmp_path, "a.yaml", text, thresholds=["p95 < 1"]).startswith(
        "--threshold: thresholds: Threshold 1: Unknown metric 'p95'"
    )
    assert problem(tmp_path, "a.yaml", text + "duration_minutes: .nan\n").startswith(
        "a.yaml:3: duration_minutes:"
    )
    assert problem(tmp_path, "a.yaml", "session_name: a\ntarget: nowhere\n").startswith(
        "a.yaml:2: target: No target 'nowhere'"
    )
    both = problem(tmp_path, "a.yaml", text + "concurrent_users: -5\nramp_up_seconds: 1e9\n")
    assert both.splitlines()[0].startswith("a.yaml:3: concurrent_users:")
    assert both.splitlines()[1].startswith("a.yaml:4: ramp_up_seconds:")
    assert not LoadTestSession.objects.exists()


def test_export_config_writes_a_file_that_runs_the_same_session(tmp_path, api, counting_server):
    target = make_target(api, counting_server, [("ping", "/ping", 1.0), ("pong", "/pong", 2.0)])
    session_id = create_session(
        api,
        target,
        concurrent_users=7,
        duration_minutes="0.25",
        endpoint_weights={"pong": 0},
        thresholds=["ping: p95_ms < 500 abort", "error_rate < 0.01"],
        target_rps=12.5,
    )
    original = LoadTestSession.objects.get(pk=session_id)
    for form in ("yaml", "json"):
        path = tmp_path / f"exported.{form}"
        call_command("loadtest", "export-config", str(session_id), "--format", form, "-o", path)
        copy = build_session(read_config(path), None, [])
        assert copy.config() == original.config(), form
    out = StringIO()
    call_command("loadtest", "export-config", str(session_id), stdout=out)
    assert f"target: {counting_server.base_url}" in out.getvalue()
    with pytest.raises(CommandError, match="No session 999999") as caught:
        call_command("loadtest", "export-config", "999999")
    assert caught.value.returncode == 2


def test_the_demo_catalog_imports_once_and_updates_by_name(tmp_path, settings):
    settings.ALLOWED_TARGET_HOSTS = ["localhost:5001"]
    report = import_endpoints(str(EXAMPLES / "demo-endpoints.json"))
    assert report.endswith("7 endpoint(s) added, 0 updated, 7 in all.")
    assert import_endpoints(str(EXAMPLES / "demo-endpoints.json")).endswith(
        "0 endpoint(s) added, 0 updated, 7 in all."
    )
    catalog = json.loads((EXAMPLES / "demo-endpoints.json").read_text())
    catalog["endpoints"][0]["weight"] = 5
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(catalog))
    assert import_endpoints(str(changed)).endswith("0 endpoint(s) added, 1 updated, 7 in all.")
    assert Endpoint.objects.get(name="error").weight == 5
    assert ConfigChange.objects.filter(field="weight", via="cli").exists()
    assert Target.objects.count() == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"endpoints": [{"name": "a", "url": "/a"}]}, "target.base_url: required"),
        ({"target": {"base_url": "http://evil.example.com"}, "endpoints": [{"name": "a",
          "url": "/a"}]}, "target.base_url: Host 'evil.example.com:80' is not on the allow-list"),
        ({"target": {"base_url": "http://localhost:5001"}, "endpoints": [{"name": "a",
          "url": "/a", "weight": -1}]}, "endpoints[0].weight:"),
        ({"target": {"base_url": "http://localhost:5001"}, "endpoints": [{"name": "a",
          "url": "/a", "wieght": 1}]}, "endpoints[0].wieght: Unknown field"),
        ({"target": {"base_url": "http://localhost:5001"}, "endpoints": []}, "endpoints: must"),
        ({"target": "x", "endpoints": [{}]}, "target: must be an object"),
        ({"targets": {}}, "unknown field 'targets'"),
    ],
)  # fmt: skip
def test_a_bad_catalog_names_the_field_and_stores_nothing(tmp_path, settings, document, message):
    settings.ALLOWED_TARGET_HOSTS = ["localhost:5001"]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CatalogError, match=None) as caught:
        import_endpoints(str(path))
    assert message in str(caught.value)
    assert not Target.objects.exists() and not Endpoint.objects.exists()


def test_the_example_config_reads_against_the_demo_catalog(settings):
    settings.ALLOWED_TARGET_HOSTS = ["localhost:5001"]
    import_endpoints(str(EXAMPLES / "demo-endpoints.json"))
    session = build_session(read_config(EXAMPLES / "ci-smoke.yaml"), None, [])
    assert session.target.base_url == "http://localhost:5001"
    assert len(session.thresholds) == 4 and session.thresholds[-1].endswith("abort")


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_a_bar_rewritten_in_place(api, counting_server):
    session = LoadTestSession.objects.get(
        pk=create_session(
            api,
            make_target(api, counting_server),
            duration_minutes="1",
            thresholds=["failures < 1"],
        )
    )
    LoadTestSession.objects.filter(pk=session.pk).update(
        status="running", load_started_at=timezone.now() - timedelta(seconds=15),
        threshold_results=[{"passed": False}],
    )  # fmt: skip
    EndpointStats.objects.create(session=session, name="ping", method="GET", url="/", requests=300,
                                 failures=3, p95_ms=12.5)  # fmt: skip
    session.refresh_from_db()
    terminal = Terminal()
    Run(RunOptions(config="-"), terminal, StringIO())._progress(session)
    text = terminal.getvalue()
    assert text.startswith("\r[######                  ]  25% running")
    assert "requests 300  failures 3 (1.0%)" in text and "p95 12.5 ms" in text
    assert "thresholds 0 pass, 1 fail" in text and "\n" not in text
