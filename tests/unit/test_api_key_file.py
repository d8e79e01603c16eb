"""``target.api_endpoint.api_key_file``: the key reaches the built-in harness as a file mounted
read-only, in no container's Env; the launcher never reads it."""

from __future__ import annotations

import http.client
import json
import threading
from datetime import UTC, datetime

import pytest
import yaml

from launcher import plan
from launcher.config import load_config
from launcher.errors import ConfigError
from launcher.harness.runconfig import parse_run_config, read_key_file
from launcher.testing.reference_endpoint import make_server

SECRET = "sk-file-0123456789"


def build(tmp_path, endpoint: dict, task: dict | None = None) -> plan.Invocation:
    data = {
        "execution": {"output_dir": str(tmp_path / "out")},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m", **endpoint}},
        "evaluation": {"tasks": [task or {"name": "humaneval"}]},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    config, _ = load_config(str(path), ())
    return plan.build(config, source=str(path), invocation_id="0123456789abcdef",
                      now=datetime(2026, 1, 2, tzinfo=UTC))


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_text(SECRET + "\n")
    path.chmod(0o400)
    return path


def test_the_file_is_mounted_read_only_and_named_in_the_run_config(tmp_path, key_file):
    (job,) = build(tmp_path, {"api_key_file": str(key_file)}).jobs
    assert (str(key_file), plan.API_KEY_FILE_MOUNT, True) in [
        (m.source, m.target, m.read_only) for m in job.mounts]
    assert job.run_config["target"]["api_endpoint"]["api_key_file"] == plan.API_KEY_FILE_MOUNT
    assert not any(v.name == "API_KEY" or v.host_name for v in job.env)  # no key variable
    assert SECRET not in json.dumps(job.run_config)
    run_config = parse_run_config(job.run_config)
    assert run_config.endpoint.api_key_file == plan.API_KEY_FILE_MOUNT


@pytest.mark.parametrize(("endpoint", "task", "needle"), [
    ({"api_key_name": "K", "api_key_file": "FILE"}, None, "both set: keep one"),
    ({"api_key_file": "/nonexistent/key"}, None, "'/nonexistent/key' is not a file"),
    ({"api_key_file": "FILE"}, {"name": "ifeval", "container": "third/party:1"},
     "reads the key from the variable named by api_key_name"),
])
def test_bad_key_files_are_one_line_at_the_key(tmp_path, key_file, endpoint, task, needle):
    endpoint = {k: (str(key_file) if v == "FILE" else v) for k, v in endpoint.items()}
    with pytest.raises(ConfigError) as err:
        build(tmp_path, endpoint, task)
    assert needle in err.value.message
    assert err.value.key in ("target.api_endpoint.api_key_file", "evaluation.tasks[0]")
    assert SECRET not in str(err.value)


def test_the_harness_reads_the_key_alone_and_never_echoes_it(tmp_path):
    path = tmp_path / "k"
    path.write_text(f"  {SECRET}\n")
    assert read_key_file(str(path)) == SECRET
    for bad in ("", "\n", f"{SECRET}\nsecond line\n"):
        path.write_text(bad)
        with pytest.raises(ConfigError, match="must hold the key alone") as err:
            read_key_file(str(path))
        assert SECRET not in err.value.message
    with pytest.raises(ConfigError, match="cannot read the API key file"):
        read_key_file(str(tmp_path / "missing"))


def test_the_reference_endpoint_can_require_a_key():
    server = make_server("127.0.0.1", 0, 1.0, 0, None, api_key=SECRET)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        def status(headers: dict[str, str]) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
            conn.request("GET", "/v1/models", headers=headers)
            response = conn.getresponse()
            return response.status, response.read()

        code, body = status({"Authorization": "Bearer sk-guess-42"})
        assert code == 401 and b"sk-guess-42" not in body
        assert status({"Authorization": f"Bearer {SECRET}"})[0] == 200
        assert status({})[0] == 401
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
