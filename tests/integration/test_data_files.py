"""Issue 22, item 6: what the run command keeps on disk is its owner's alone. The data folder
is 0700 and every file in it 0600 (the database with its -wal and -shm, Redis's append-only
files, the generated secrets), even where an earlier release left them readable, and the
embedded Redis refuses a client without the password generated into the data folder."""

import stat
from pathlib import Path

import pytest
import redis

from .test_run_command import RunStack

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.timeout(420)
def test_the_data_folder_is_private_and_redis_wants_its_password(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    left_open = data / "db.sqlite3-old-copy"  # as an earlier release left a file
    left_open.write_text("secret")
    left_open.chmod(0o644)
    stack = RunStack(tmp_path)
    try:
        stack.start()
        assert stack.api("get", "/targets/").status_code == 200  # the database is written

        assert mode(data) == 0o700
        # Collected static files are public (Django's storage writes them 0644); the folder
        # alone closes them to other users.
        kept = [path for path in data.rglob("*") if "static" not in path.relative_to(data).parts]
        files = [path for path in kept if path.is_file()]
        names = {path.name for path in files}
        assert {"db.sqlite3", "redis_password", "flower_basic_auth"} <= names, names
        assert any(path.parent != data for path in files), "no Redis file"  # data/redis/...
        assert {str(path): oct(mode(path)) for path in files if mode(path) != 0o600} == {}
        folders = [path for path in kept if path.is_dir()]
        assert {str(path): oct(mode(path)) for path in folders if mode(path) != 0o700} == {}

        port = int(stack.env["EMBEDDED_REDIS_PORT"])
        password = (data / "redis_password").read_text().strip()
        assert password not in stack.output()  # the banner names the file, not the password
        stranger = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            stranger.get("anything")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password="guess", socket_timeout=5).ping()
        owner = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
        assert owner.ping()
        owner.close()
        stranger.close()
        stack.interrupt()
    finally:
        stack.clean_up()
