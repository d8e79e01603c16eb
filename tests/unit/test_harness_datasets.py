from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from launcher.harness import datasets
from launcher.harness.datasets import cache_dir, resolve_gsm8k, sha256_file
from launcher.harness.errors import DatasetError
from launcher.testing.synthetic import gsm8k_dir

DATA = gsm8k_dir()



class _Quiet(SimpleHTTPRequestHandler):
    hits = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hits += 1
        super().do_GET()


StartServer = Callable[[Path], tuple[str, type[_Quiet]]]


@pytest.fixture
def file_server() -> Iterator[StartServer]:
    servers: list[ThreadingHTTPServer] = []

    def start(directory: Path) -> tuple[str, type[_Quiet]]:
        handler = type("Handler", (_Quiet,), {"hits": 0})
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
        )
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/test.jsonl", handler

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("GSM8K_DATA_DIR", "NEMO_EVALUATOR_DATASET_DIR", "EVAL_LAUNCHER_GSM8K_URL"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("EVAL_LAUNCHER_CACHE", str(cache))
    return cache


def test_explicit_dir_wins() -> None:
    assert resolve_gsm8k(str(DATA)) == DATA / "test.jsonl"


def test_env_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEMO_EVALUATOR_DATASET_DIR", str(DATA))
    assert resolve_gsm8k(None) == DATA / "test.jsonl"
    monkeypatch.setenv("NEMO_EVALUATOR_DATASET_DIR", "/nonexistent")
    monkeypatch.setenv("GSM8K_DATA_DIR", str(DATA.parent))  # <dir>/gsm8k/test.jsonl
    assert resolve_gsm8k(None) == DATA / "test.jsonl"


def test_explicit_dir_without_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"has no test\.jsonl"):
        resolve_gsm8k(str(tmp_path))


def test_download_verify_and_cache(
    file_server: StartServer, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = file_server(DATA)
    monkeypatch.setenv("EVAL_LAUNCHER_GSM8K_URL", url)
    # The synthetic file stands in for GSM8K: pin its checksum as the real one is pinned.
    monkeypatch.setattr(datasets, "GSM8K_SHA256", sha256_file(DATA / "test.jsonl"))
    path = resolve_gsm8k(None)
    assert path == clean_env / "gsm8k" / "test.jsonl"
    assert sha256_file(path) == datasets.GSM8K_SHA256
    assert handler.hits == 1
    assert resolve_gsm8k(None) == path  # cached: no second download
    assert handler.hits == 1
    assert [p.name for p in path.parent.iterdir()] == ["test.jsonl"]  # no temp files left

    path.write_text("tampered\n")  # a bad cache entry is replaced
    assert sha256_file(resolve_gsm8k(None)) == datasets.GSM8K_SHA256
    assert handler.hits == 2


def test_download_checksum_mismatch(
    file_server: StartServer, clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "test.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    url, _ = file_server(corrupt)
    monkeypatch.setenv("EVAL_LAUNCHER_GSM8K_URL", url)
    with pytest.raises(DatasetError, match="corrupt: sha256"):
        resolve_gsm8k(None)
    leftovers = list((clean_env / "gsm8k").iterdir())
    assert leftovers == []  # neither the temp file nor a cached copy


def test_download_failure_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAL_LAUNCHER_GSM8K_URL", "http://127.0.0.1:9/test.jsonl")
    with pytest.raises(DatasetError, match="cannot download GSM8K"):
        resolve_gsm8k(None)


def test_cache_dir_falls_back_when_home_is_unusable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("EVAL_LAUNCHER_CACHE")
    not_a_dir = tmp_path / "home-is-a-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("HOME", str(not_a_dir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert cache_dir() == tmp_path / "tmp" / "eval-launcher-cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "eval-launcher"


# -- MMLU and custom files (see also test_harness_mmlu.py / test_harness_custom.py) -----------


def test_dataset_dir_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from launcher.harness.datasets import dataset_dir_from

    monkeypatch.delenv("A_DIR", raising=False)
    monkeypatch.setenv("B_DIR", "/b")
    assert dataset_dir_from("/x", "A_DIR", "B_DIR") == "/x"
    assert dataset_dir_from(None, "A_DIR", "B_DIR") == "/b"
    monkeypatch.setenv("A_DIR", "/a")
    assert dataset_dir_from("", "A_DIR", "B_DIR") == "/a"
    assert dataset_dir_from(None) is None


def test_mmlu_env_var_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from launcher.harness.datasets import mmlu_subjects, resolve_mmlu

    for name in ("one", "two"):
        (tmp_path / name / "test").mkdir(parents=True)
        (tmp_path / name / "test" / f"{name}_test.csv").write_text("q,1,2,3,4,A\n")
    monkeypatch.setenv("NEMO_EVALUATOR_DATASET_DIR", str(tmp_path / "two"))
    assert resolve_mmlu(None) == tmp_path / "two"
    monkeypatch.setenv("MMLU_DATA_DIR", str(tmp_path / "one"))
    assert resolve_mmlu(None) == tmp_path / "one"
    assert mmlu_subjects(resolve_mmlu(None)) == ["one"]


def test_mmlu_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from launcher.harness.datasets import resolve_mmlu

    monkeypatch.delenv("MMLU_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match="MMLU needs its dataset folder"):
        resolve_mmlu(None)
    with pytest.raises(DatasetError, match=f"MMLU dataset folder {tmp_path} does not have"):
        resolve_mmlu(str(tmp_path))


def test_load_jsonl_numbers_lines(tmp_path: Path) -> None:
    from launcher.harness.datasets import load_jsonl

    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert load_jsonl(path) == [(1, {"a": 1}), (3, {"a": 2})]
    with pytest.raises(DatasetError, match="cannot read"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_load_gsm8k_names_the_file_line(tmp_path: Path) -> None:
    from launcher.harness.datasets import load_gsm8k

    path = tmp_path / "test.jsonl"
    good = '{"question": "1 + 1?", "answer": "2 #### 2"}'
    path.write_text(f'{good}\n\n{good}\n{{"question": "no answer"}}\n')
    with pytest.raises(DatasetError, match=r"test\.jsonl: line 4 is not a GSM8K item"):
        load_gsm8k(path)
    path.write_text(f"{good}\n\n{good}\n")
    assert [row["answer"] for row in load_gsm8k(path)] == ["2 #### 2", "2 #### 2"]
    with pytest.raises(DatasetError, match="cannot read"):
        load_gsm8k(tmp_path / "missing.jsonl")
