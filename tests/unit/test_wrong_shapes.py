"""Our own files in a folder others can write (invocation.json, results.yml) of the wrong
shape: read as missing, never a traceback (status, ls runs, info and the run table read them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launcher import record, report
from tests.unit.test_bad_input import BOMB

RECORDS = ["[1, 2]", '"text"', "5", "null", '{"jobs": 5}', '{"jobs": [1]}',
           '{"invocation_id": [], "jobs": [{"spec": 1}]}', '{"host_view": 3, "jobs": []}',
           '{"host_view": {"mounts": []}, "jobs": [{"spec": {}}]}', "[" * 100_000, "{bad json"]


@pytest.mark.parametrize("text", RECORDS, ids=range(len(RECORDS)))
def test_a_record_of_another_shape_is_no_record(tmp_path: Path, text: str) -> None:
    (tmp_path / record.RECORD).write_text(text)
    assert record.load(str(tmp_path)) is None


RESULTS = ["[1, 2]", "results: [1]", "results: {tasks: [1]}", "results: {tasks: {t: [1]}}",
           "results: {tasks: {t: {metrics: {m: 5}}}}",
           "results: {tasks: {t: {metrics: {m: {scores: {s: [1]}}}}}}",
           "results: {tasks: {t: {metrics: {m: {scores: {s: {value: true}}}}}}}",
           "results: {tasks: {t: {metrics: {m: {scores: {s: {value: 1, stats: 7}}}}}}}",
           "results: {tasks: {t: {metrics: {m: {scores: {s: {value: 1, stats: {stderr: x}}}}}}}}",
           "\x00\x01", ": : :", BOMB, "x: " + "[" * 300 + "]" * 300]


@pytest.mark.parametrize("text", RESULTS, ids=range(len(RESULTS)))
def test_results_of_another_shape_give_no_scores_and_no_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "results.yml").write_text(text)
    scores = report.read_scores(str(tmp_path))
    assert all(isinstance(s.value, float) for s in scores)
    assert all(s.stderr is None for s in scores)  # none of these has a numeric stderr


def test_good_results_still_read(tmp_path: Path) -> None:
    (tmp_path / "results.yml").write_text(json.dumps({"results": {"tasks": {"gsm8k": {
        "metrics": {"exact_match": {"scores": {"exact_match": {
            "value": 0.5, "stats": {"stderr": 0.1, "count": 10}}}}}}}}}))
    assert report.read_scores(str(tmp_path)) == [
        report.Score("gsm8k", "exact_match", "exact_match", 0.5, 0.1, 10)]
