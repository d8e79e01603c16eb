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
def bench_for(tmp_path, launcher_image, network, reference_endpoint, gsm8k_dir):
    """Factory: a Bench whose reference endpoint (accuracy 1.0) also knows ``custom`` files
    (paths under the bench's config folder) and loads GSM8K iff ``gsm8k``."""

    def make(*custom: str, gsm8k: bool = True) -> Bench:
        bench = Bench(tmp_path, launcher_image, network.name, "", gsm8k_dir)
        extra = [arg for name in custom for arg in ("--dataset", f"/config/{name}")]
        endpoint = reference_endpoint(1.0, 0, *extra, gsm8k=gsm8k,
                                      volumes=((str(bench.config_dir), "/config"),))
        bench.url = endpoint.url
        return bench

    return make


def write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path.parent.chmod(0o755)


def results_of(b: Bench, job: str) -> dict:
    (inv,) = b.invocations()
    return yaml.safe_load((inv / job / "artifacts" / "results.yml").read_text())["results"]


def test_custom_jsonl_task_scored_by_regex(tmp_path, bench_for):
    rows = [{"id": "who", "question": "Who are you?", "answer": "reference endpoint"},
            {"id": "model", "question": "Are you a model?", "answer": "not a language model"},
            {"id": "miss", "question": "Capital of France?", "answer": "Paris"}]
    write_jsonl(tmp_path / "config" / "custom" / "questions.jsonl", rows)
    # The endpoint answers each question with its answer text; the task's regexes differ.
    write_jsonl(tmp_path / "config" / "regex" / "questions.jsonl",
                [{**rows[0], "answer": "^reference"}, {**rows[1], "answer": "language model$"},
                 {**rows[2], "answer": "^Rome$"}])
    bench = bench_for("custom/questions.jsonl")
    config = bench.config([{"name": "custom", "dataset_dir": "/config/regex",
                            "nemo_evaluator_config": {"config": {"params": {"extra": {
                                "dataset_path": "questions.jsonl", "scoring": "regex"}}}}}],
                          limit=10)
    run = bench.launcher("run", "--config", config)
    assert run.exit_code == 0, run.stderr[-3000:]
    score = results_of(bench, "custom.0")["tasks"]["custom"]["metrics"]["regex_match"][
        "scores"]["regex_match"]
    assert score["value"] == pytest.approx(2 / 3)  # "^Rome$" does not match "Paris"
    assert score["stats"]["count"] == 3


def test_gsm8k_against_an_endpoint_without_its_data_fails_naming_the_data(bench_for):
    """The reference endpoint never guesses: without GSM8K data it answers HTTP 422 naming the
    data and the flag, and the task fails with that line instead of scoring 0."""
    bench = bench_for(gsm8k=False)
    config = bench.config([{"name": "gsm8k", "dataset_dir": "/data/gsm8k"}], limit=5)
    run = bench.launcher("run", "--config", config)
    assert run.exit_code != 0
    (inv,) = bench.invocations()
    log = (inv / "gsm8k.0" / "logs" / "stdout.log").read_text()
    assert "GSM8K data is not loaded: restart it with --dataset-dir DIR" in log, log[-3000:]
    assert not (inv / "gsm8k.0" / "artifacts" / "results.yml").exists()
    (job,) = bench.status(inv.name.split("-")[-1])
    assert job["state"] == "failed" and job["value"] is None


def test_mmlu_from_a_folder_of_csv_files(tmp_path, bench_for):
    root = tmp_path / "config" / "mmlu" / "data"
    subjects = ["abstract_algebra", "anatomy"]
    known = []
    for split, n in (("dev", 5), ("test", 3)):
        (root / split).mkdir(parents=True)
        for subject in subjects:
            with open(root / split / f"{subject}_{split}.csv", "w", newline="") as fh:
                writer = csv.writer(fh)
                for i in range(n):
                    row = [f"{subject} {split} question {i}?", "w", "x", "y", "z", "ABCD"[i % 4]]
                    writer.writerow(row)
                    if split == "test":  # the endpoint knows the test questions' letters
                        known.append({"question": row[0], "choices": row[1:5], "answer": row[5]})
    write_jsonl(tmp_path / "config" / "known" / "mmlu.jsonl", known)
    bench = bench_for("known/mmlu.jsonl")
    config = bench.config([{"name": "mmlu", "dataset_dir": "/config/mmlu",
                            "nemo_evaluator_config": {"config": {"params": {"extra": {
                                "subjects": subjects, "num_fewshot": 5}}}}}], limit=10)
    run = bench.launcher("run", "--config", config)
    assert run.exit_code == 0, run.stderr[-3000:]
    results = results_of(bench, "mmlu.0")
    scores = results["tasks"]["mmlu"]["metrics"]["accuracy"]["scores"]
    assert set(scores) == {"micro", "macro"}
    assert scores["micro"]["stats"]["count"] == 6  # 3 test questions x 2 subjects
    assert scores["micro"]["value"] == 1.0  # every letter right at accuracy 1.0
    assert set(results["groups"]["mmlu"]["groups"]) == set(subjects)
    (inv,) = bench.invocations()
    prompts = [json.loads(line)["prompt"] for line in
               (inv / "mmlu.0" / "artifacts" / "samples.jsonl").read_text().splitlines()]
    assert len(prompts) == 6
    text = json.dumps(prompts[0])
    assert "The following are multiple choice questions (with answers) about" in text
    assert text.count("Answer:") == 6  # five shots and the question
