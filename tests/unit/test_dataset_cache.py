"""The launcher's dataset cache: GSM8K fetched once by the launcher (sha256-checked) into the
cache folder, which becomes the dataset_dir of every gsm8k task that has none; offline with an
empty cache, a run stops with one line before anything starts (exit 3)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from launcher import dataset_cache
from launcher.config import load_config
from launcher.errors import EnvironmentProblem
from launcher.harness import datasets
from launcher.testing.synthetic import gsm8k_dir

DATA = gsm8k_dir()
UNREACHABLE = "http://127.0.0.1:9/test.jsonl"


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("EVAL_LAUNCHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EVAL_LAUNCHER_GSM8K_URL", UNREACHABLE)
    monkeypatch.delenv("GSM8K_DATA_DIR", raising=False)
    # The synthetic file stands in for GSM8K: its checksum is pinned as the real one is.
    monkeypatch.setattr(datasets, "GSM8K_SHA256", datasets.sha256_file(DATA / "test.jsonl"))
    return tmp_path / "cache"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """GSM8K served on loopback; the list collects the paths requested."""
    hits: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(DATA)))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("EVAL_LAUNCHER_GSM8K_URL",
                       f"http://127.0.0.1:{server.server_address[1]}/test.jsonl")
    yield hits
    server.shutdown()
    server.server_close()


def config_of(tmp_path: Path, *tasks: dict):
    data = {"execution": {"output_dir": str(tmp_path / "out")},
            "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions", "model_id": "m"}},
            "evaluation": {"tasks": list(tasks)}}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(str(path), (), {})[0]


def test_only_gsm8k_tasks_without_data_of_their_own(tmp_path: Path) -> None:
    config = config_of(tmp_path, {"name": "humaneval"}, {"name": "gsm8k"},
                       {"name": "gsm8k", "dataset_dir": str(DATA)},
                       {"name": "eval-launcher.gsm8k",
                        "nemo_evaluator_config": {"config": {"params": {"extra": {
                            "dataset_dir": "/d"}}}}},
                       {"name": "eval-launcher.gsm8k"})
    assert dataset_cache.needs_gsm8k(config) == [1, 4]


def test_fetched_once_then_mounted_from_the_cache(tmp_path: Path, cache: Path,
                                                  served: list[str]) -> None:
    config = config_of(tmp_path, {"name": "humaneval"}, {"name": "gsm8k"})
    assert dataset_cache.fill(config, source="eval.yaml", download=False) is config  # dry run
    assert served == []
    filled = dataset_cache.fill(config, source="eval.yaml", download=True)
    assert filled.evaluation.tasks[1].dataset_dir == str(cache / "gsm8k")
    assert filled.evaluation.tasks[0].dataset_dir is None
    assert (cache / "gsm8k" / "test.jsonl").read_bytes() == (DATA / "test.jsonl").read_bytes()
    assert len(served) == 1
    again = dataset_cache.fill(config, source="eval.yaml", download=True)
    assert again == filled and len(served) == 1  # cached: no second download
    assert dataset_cache.fill(config, source="eval.yaml", download=False) == filled
    (cache / "gsm8k" / "test.jsonl").write_text("tampered\n")  # a bad copy is fetched anew
    assert dataset_cache.fill(config, source="eval.yaml", download=True) == filled
    assert len(served) == 2


def test_offline_and_not_cached_is_one_line_with_the_fix(tmp_path: Path, cache: Path) -> None:
    config = config_of(tmp_path, {"name": "humaneval"}, {"name": "gsm8k"})
    with pytest.raises(EnvironmentProblem) as info:
        dataset_cache.fill(config, source="eval.yaml", download=True)
    assert info.value.exit_code == 3
    message = info.value.message
    assert message.startswith(
        f"eval.yaml, key 'evaluation.tasks[1].dataset_dir': GSM8K is not in the dataset cache"
        f" {cache} and cannot be fetched (cannot download GSM8K from {UNREACHABLE}: ")
    assert message.endswith("give a folder holding GSM8K's test.jsonl:"
                            " -o evaluation.tasks.1.dataset_dir=/path/to/gsm8k")
    assert "\n" not in message


def test_datasets_fetch_command(tmp_path: Path, cache: Path, served: list[str]) -> None:
    from click.testing import CliRunner

    from launcher.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["datasets", "fetch", "gsm8k"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(cache / "gsm8k" / "test.jsonl")
    assert runner.invoke(cli, ["datasets", "fetch", "gsm8k"]).exit_code == 0
    assert len(served) == 1  # the second one found the verified copy
    unknown = runner.invoke(cli, ["datasets", "fetch", "mmlu"])
    assert unknown.exit_code != 0 and "only gsm8k is downloaded" in str(unknown.exception)


def test_datasets_fetch_offline_exits_3(tmp_path: Path, cache: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "launcher", "datasets", "fetch", "gsm8k"],
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "EVAL_LAUNCHER_CACHE": str(cache),
                               "EVAL_LAUNCHER_GSM8K_URL": UNREACHABLE, "HOME": str(tmp_path)})
    assert proc.returncode == 3
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: cannot download GSM8K from {UNREACHABLE}")
    assert not list(cache.rglob("*.jsonl"))
