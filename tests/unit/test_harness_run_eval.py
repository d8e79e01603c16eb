from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import launcher.testing.reference_endpoint as ref  # noqa: E402
from launcher.harness.run_eval import main  # noqa: E402
from launcher.testing.synthetic import gsm8k_dir  # noqa: E402

DATA = gsm8k_dir()
if not (DATA / "test.jsonl").is_file():
    pytest.skip(f"{DATA} missing", allow_module_level=True)


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[float, str]]:
    """One reference endpoint per accuracy, on free ports of 127.0.0.1."""
    servers = {a: ref.make_server("127.0.0.1", 0, a, 0, str(DATA)) for a in (0.0, 0.5, 1.0)}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield {
        a: f"http://127.0.0.1:{s.server_address[1]}/v1/chat/completions" for a, s in servers.items()
    }
    for server in servers.values():
        server.shutdown()
        server.server_close()


def _write_config(
    tmp_path: Path, task: str, url: str, limit: int | None, **extra_params: Any
) -> tuple[Path, Path]:
    out = tmp_path / "results"
    api: dict[str, Any] = {"url": url, "model_id": "my-model", "type": "chat"}
    api.update(extra_params.pop("api", {}))
    params: dict[str, Any] = {"limit_samples": limit, "parallelism": 4, **extra_params}
    params.setdefault("extra", {"dataset_dir": str(DATA)})
    cfg = {
        "config": {"type": task, "output_dir": str(out), "params": params},
        "target": {"api_endpoint": api},
    }
    path = tmp_path / "run_config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path, out


@pytest.mark.parametrize(
    ("task", "limit", "accuracy", "expected"),
    [
        ("gsm8k", 40, 1.0, 1.0),
        ("gsm8k", 40, 0.0, 0.0),
        ("gsm8k", 10, 0.5, 0.5),
        ("humaneval", 20, 1.0, 1.0),
        ("humaneval", 20, 0.0, 0.0),
        ("humaneval", 20, 0.5, 0.5),
    ],
)
def test_end_to_end(
    endpoints: dict[float, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    task: str,
    limit: int,
    accuracy: float,
    expected: float,
) -> None:
    config, out = _write_config(tmp_path, task, endpoints[accuracy], limit)
    assert main(str(config)) == 0

    metric = {"gsm8k": "exact_match", "humaneval": "pass@1"}[task]
    stdout = capsys.readouterr().out.strip().splitlines()
    assert stdout[-1] == f"{task} {metric}={expected:.4f} (n={limit})"

    doc = yaml.safe_load((out / "results.yml").read_text())
    assert set(doc) == {"config", "target", "results"}
    score = doc["results"]["tasks"][task]["metrics"][metric]["scores"][metric]
    assert score["value"] == expected
    assert score["stats"]["count"] == limit
    p = expected
    assert score["stats"]["stderr"] == pytest.approx((p * (1 - p) / (limit - 1)) ** 0.5)
    assert doc["target"] == {"api_endpoint": {"model_id": "my-model", "url": endpoints[accuracy]}}
    assert doc["config"]["type"] == task
    assert doc["config"]["params"]["limit_samples"] == limit
    assert doc["config"]["params"]["max_retries"] == 5  # defaults are echoed

    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == limit
    samples = [json.loads(line) for line in lines]
    assert sum(s["score"] for s in samples) == round(expected * limit)
    first = samples[0]
    assert {"id", "prompt", "response", "score", "target"} <= set(first)
    assert first["id"] == ("gsm8k/0" if task == "gsm8k" else "HumanEval/0")
    assert first["prompt"][0]["role"] == "user"
    if task == "gsm8k":
        assert [s["id"] for s in samples] == [f"gsm8k/{i}" for i in range(limit)]
        assert first["target"] == "124"  # the first synthetic problem's
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temp files left


def test_api_key_is_sent_and_never_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    server = ref.make_server("127.0.0.1", 0, 1.0, 0, str(DATA))

    server.observers.append(
        lambda request: seen.append(request.headers.get("Authorization"))
        if request.method == "POST" else None)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    secret = "sk-test-0123456789-secret"
    monkeypatch.setenv("MY_ENDPOINT_KEY", secret)
    monkeypatch.setenv("NEMO_EVALUATOR_DATASET_DIR", str(DATA))
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    config, out = _write_config(
        tmp_path, "gsm8k", url, 5, extra={}, api={"api_key_name": "MY_ENDPOINT_KEY"}
    )
    try:
        assert main(str(config)) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [f"Bearer {secret}"] * 5
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    files = [f for f in out.rglob("*") if f.is_file()]
    assert any(f.name == "responses.sqlite" for f in files)
    for f in files:
        try:
            data = f.read_bytes()
        except FileNotFoundError:  # the cache's -wal/-shm files go when its close ends
            continue
        assert secret.encode() not in data, f.name


def test_missing_api_key_variable_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    config, out = _write_config(
        tmp_path, "gsm8k", "http://127.0.0.1:9/v1", 1, api={"api_key_name": "UNSET_KEY_VAR"}
    )
    assert main(str(config)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "UNSET_KEY_VAR" in err[0]
    assert not out.exists()


def test_unreachable_endpoint_fails_without_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, out = _write_config(tmp_path, "gsm8k", "http://127.0.0.1:9/v1", 3, max_retries=0)
    assert main(str(config)) == 1
    err = capsys.readouterr().err
    assert "error: http://127.0.0.1:9/v1: connection error" in err
    assert not (out / "results.yml").exists()


def test_unknown_task_and_bad_config_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = _write_config(tmp_path, "no_such_task", "http://127.0.0.1:9/v1", 1)
    assert main(str(config)) == 2
    assert "unknown task 'no_such_task'" in capsys.readouterr().err
    assert main(str(tmp_path / "nope.yml")) == 2


def test_missing_dataset_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = _write_config(
        tmp_path, "gsm8k", "http://127.0.0.1:9/v1", 1, extra={"dataset_dir": str(tmp_path)}
    )
    assert main(str(config)) == 3
    assert "has no test.jsonl" in capsys.readouterr().err


def test_results_document_puts_request_stats_after_the_metrics() -> None:
    from launcher.harness.results import results_document
    from launcher.harness.scoring import Score, Summary

    summary = Summary({"m": {"m": Score(0.5, 0.1, 4)}})
    doc = results_document("t", summary, {}, "model", "http://x", {"count": 4})
    assert list(doc["results"]["tasks"]["t"]) == ["metrics", "request_stats"]
    assert doc["results"]["tasks"]["t"]["request_stats"] == {"count": 4}
    for stats in (None, {}):
        doc = results_document("t", summary, {}, "model", "http://x", stats)
        assert list(doc["results"]["tasks"]["t"]) == ["metrics"]
