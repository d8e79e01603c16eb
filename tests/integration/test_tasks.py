"""The data-driven built-in tasks on the real engine: a custom JSONL task and MMLU, each from a
dataset folder mounted into the evaluation container, run by the launcher container."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from tests.integration.test_job_management import Bench

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(tmp_path, launcher_image, network, reference_endpoint, gsm8k_dir):
    endpoint = reference_endpoint(1.0)
    return Bench(tmp_path, launcher_image, network.name, endpoint.url, gsm8k_dir)


def results_of(b: Bench, job: str) -> dict:
    (inv,) = b.invocations()
    return yaml.safe_load((inv / job / "artifacts" / "results.yml").read_text())["results"]


def test_custom_jsonl_task_scored_by_regex(bench):
    data = bench.config_dir / "custom"
    data.mkdir()
    rows = [{"id": "who", "question": "Who are you?", "answer": "reference endpoint"},
            {"id": "model", "question": "Are you a model?", "answer": "not a language model"},
            {"id": "miss", "question": "Capital of France?", "answer": "Paris"}]
    (data / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = bench.config([{"name": "custom", "dataset_dir": "/config/custom",
                            "nemo_evaluator_config": {"config": {"params": {"extra": {
                                "dataset_path": "questions.jsonl", "scoring": "regex"}}}}}],
                          limit=10)
    run = bench.launcher("run", "--config", config)
    assert run.exit_code == 0, run.stderr[-3000:]
    score = results_of(bench, "custom.0")["tasks"]["custom"]["metrics"]["regex_match"][
        "scores"]["regex_match"]
    assert score["value"] == pytest.approx(2 / 3)  # the endpoint's fixed text matches 2 of 3
    assert score["stats"]["count"] == 3


def test_mmlu_from_a_folder_of_csv_files(bench):
    root = bench.config_dir / "mmlu" / "data"
    subjects = ["abstract_algebra", "anatomy"]
    for split, n in (("dev", 5), ("test", 3)):
        (root / split).mkdir(parents=True)
        for subject in subjects:
            with open(root / split / f"{subject}_{split}.csv", "w", newline="") as fh:
                writer = csv.writer(fh)
                for i in range(n):
                    writer.writerow([f"{subject} question {i}?", "w", "x", "y", "z", "ABCD"[i % 4]])
    config = bench.config([{"name": "mmlu", "dataset_dir": "/config/mmlu",
                            "nemo_evaluator_config": {"config": {"params": {"extra": {
                                "subjects": subjects, "num_fewshot": 5}}}}}], limit=10)
    run = bench.launcher("run", "--config", config)
    assert run.exit_code == 0, run.stderr[-3000:]
    results = results_of(bench, "mmlu.0")
    scores = results["tasks"]["mmlu"]["metrics"]["accuracy"]["scores"]
    assert set(scores) == {"micro", "macro"}
    assert scores["micro"]["stats"]["count"] == 6  # 3 test questions x 2 subjects
    assert scores["micro"]["value"] == 0.0  # the reference endpoint does not know MMLU
    assert set(results["groups"]["mmlu"]["groups"]) == set(subjects)
    (inv,) = bench.invocations()
    prompts = [json.loads(line)["prompt"] for line in
               (inv / "mmlu.0" / "artifacts" / "samples.jsonl").read_text().splitlines()]
    assert len(prompts) == 6
    text = json.dumps(prompts[0])
    assert "The following are multiple choice questions (with answers) about" in text
    assert text.count("Answer:") == 6  # five shots and the question
