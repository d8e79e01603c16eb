"""gate: policy parsing, evaluation (GO / NO-GO / INCONCLUSIVE and their exit codes), JUnit
XML read back by xml.etree, the $GITHUB_STEP_SUMMARY table, and bad input as one line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from launcher import cli, gate_policy
from launcher.commands.gate import gate
from launcher.errors import ConfigError
from launcher.gate_eval import Status, Verdict
from tests.unit.fake_runs import make_run

GOOD = [1] * 8 + [0] * 2  # 0.8
BAD = [1] * 6 + [0] * 4  # 0.6


@pytest.fixture
def pair_of_runs(tmp_path, fake, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    base = make_run(tmp_path, {"gsm8k": GOOD, "humaneval": GOOD})
    cand = make_run(tmp_path, {"gsm8k": BAD, "humaneval": GOOD})
    capsys.readouterr()
    return str(tmp_path / "out"), base.invocation_id, cand.invocation_id


def run_gate(out, cand, capsys, **kw):
    args = {"baseline": None, "min_score": None, "max_drop": None, "policy_file": None,
            "junit": None, "as_json": True, **kw}
    code = gate(out, cand, **args)
    return code, json.loads(capsys.readouterr().out)


def test_min_score_go_and_no_go(pair_of_runs, capsys):
    out, base, cand = pair_of_runs
    code, data = run_gate(out, base, capsys, min_score=0.7)
    assert (code, data["verdict"]) == (0, "GO")
    code, data = run_gate(out, cand, capsys, min_score=0.7)
    assert (code, data["verdict"]) == (1, "NO-GO")
    failed = [c for c in data["checks"] if c["status"] == "fail"]
    assert [(c["task"], c["threshold"]) for c in failed] == [("gsm8k", "min_score")]


def test_max_drop_against_baseline_and_junit(pair_of_runs, capsys, tmp_path):
    out, base, cand = pair_of_runs
    junit = tmp_path / "gate.xml"
    code, data = run_gate(out, cand, capsys, baseline=base, max_drop=0.05, min_score=0.5,
                          junit=str(junit))
    assert code == 1 and data["verdict"] == "NO-GO" and data["baseline"] == base
    root = ET.parse(junit).getroot()
    (suite,) = root.iter("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 4  # 2 tasks x 2 thresholds
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    failing = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    assert failing == [("gsm8k", "max_drop: drop <= 0.05")]
    message = next(c for c in cases if c.find("failure") is not None).find("failure")
    assert "0.8000 -> 0.6000" in message.get("message")


def test_inconclusive_without_baseline_or_with_missing_task(pair_of_runs, capsys, tmp_path):
    out, base, cand = pair_of_runs
    code, data = run_gate(out, cand, capsys, max_drop=0.05)
    assert (code, data["verdict"]) == (4, "INCONCLUSIVE")
    assert "no baseline" in data["checks"][0]["reason"]
    policy = tmp_path / "policy.yaml"
    policy.write_text("tasks:\n  mmlu: {min_score: 0.5}\n  gsm8k: {min_score: 0.5}\n")
    code, data = run_gate(out, cand, capsys, policy_file=str(policy))
    assert (code, data["verdict"]) == (4, "INCONCLUSIVE")
    assert {c["task"]: c["status"] for c in data["checks"]} == {
        "gsm8k": "pass", "mmlu": "inconclusive"}


def test_policy_severity_default_and_task_blocks(pair_of_runs, capsys, tmp_path):
    out, base, cand = pair_of_runs
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: {max_drop: 0.05}\n"
                      "tasks:\n  gsm8k: {min_score: 0.7, severity: advisory}\n")
    code, data = run_gate(out, cand, capsys, baseline=base, policy_file=str(policy))
    # gsm8k breaks both thresholds but is advisory: reported, GO
    assert (code, data["verdict"]) == (0, "GO")
    gsm = [c for c in data["checks"] if c["task"] == "gsm8k"]
    assert {(c["threshold"], c["status"], c["severity"]) for c in gsm} == {
        ("max_drop", "fail", "advisory"), ("min_score", "fail", "advisory")}
    junit = tmp_path / "gate.xml"
    gate(out, cand, base, None, None, str(policy), str(junit), False)
    assert "GO" in capsys.readouterr().out
    suite = next(ET.parse(junit).getroot().iter("testsuite"))
    assert suite.get("failures") == "0" and suite.get("skipped") == "2"


def test_github_step_summary_gets_a_markdown_table(pair_of_runs, capsys, tmp_path,
                                                   monkeypatch):
    out, base, cand = pair_of_runs
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _ = run_gate(out, cand, capsys, baseline=base, max_drop=0.05)
    assert code == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "### Evaluation gate: **NO-GO**" in text
    lines = [line for line in text.splitlines() if line.startswith("| gsm8k")]
    assert len(lines) == 1 and "❌ fail" in lines[0] and "0.6000" in lines[0]
    assert "| humaneval | max_drop: drop <= 0.05 | critical | 0.8000 | 0.8000 | ✅ pass" in text


def test_policy_parse_errors():
    with pytest.raises(ConfigError, match="unknown key"):
        gate_policy.parse({"defaults": {}}, "p.yaml")
    with pytest.raises(ConfigError, match="tasks.gsm8k.min_score"):
        gate_policy.parse({"tasks": {"gsm8k": {"min_score": "high"}}}, "p.yaml")
    with pytest.raises(ConfigError, match="critical or advisory"):
        gate_policy.parse({"default": {"severity": "fatal"}}, "p.yaml")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        gate_policy.parse({"default": {"min_score": 70}}, "p.yaml")
    policy = gate_policy.with_flags(gate_policy.parse(
        {"default": {"min_score": 0.1}, "tasks": {"a": {"max_drop": 0.2}}}, "p"), 0.5, None)
    assert policy.for_task("a") == gate_policy.Thresholds(0.5, 0.2, None)


def test_verdict_exit_codes_are_documented_values():
    assert [v.exit_code for v in Verdict] == [0, 1, 4]
    assert Status.INCONCLUSIVE.value == "inconclusive"


@pytest.mark.parametrize("args, needle", [
    (["--min-score", "0.5", "--policy", "nope.yaml"], "policy file nope.yaml does not exist"),
    ([], "nothing to check"),
    (["--min-score", "2"], "between 0 and 1"),
    (["--min-score", "0.5", "--junit", "/no/such/dir/g.xml"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(pair_of_runs, capsys, monkeypatch, args, needle):
    out, base, cand = pair_of_runs
    monkeypatch.setattr("sys.argv", ["launcher", "gate", cand, "--output-dir", out, *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1


def test_bad_policy_yaml_is_one_line(pair_of_runs, capsys, monkeypatch, tmp_path):
    out, base, cand = pair_of_runs
    policy = tmp_path / "p.yaml"
    policy.write_text("default: [unclosed\n")
    monkeypatch.setattr("sys.argv", ["launcher", "gate", cand, "--output-dir", out,
                                     "--policy", str(policy)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "p.yaml" in err


def test_the_example_policy_parses():
    from pathlib import Path

    from launcher.commands.gate import load_policy

    path = Path(__file__).resolve().parents[2] / "examples" / "gate" / "policy.yaml"
    policy = load_policy(str(path))
    assert policy.for_task("gsm8k") == gate_policy.Thresholds(
        0.7, 0.05, gate_policy.Severity.CRITICAL)
    assert policy.for_task("humaneval").severity == gate_policy.Severity.ADVISORY


def test_a_job_without_results_is_inconclusive_not_go(tmp_path, fake, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    cand = make_run(tmp_path, {"gsm8k": GOOD, "humaneval": None})
    capsys.readouterr()
    code, data = run_gate(str(tmp_path / "out"), cand.invocation_id, capsys, min_score=0.5,
                          junit="gate.xml")  # a relative path: the current folder
    assert (code, data["verdict"]) == (4, "INCONCLUSIVE")
    he = next(c for c in data["checks"] if c["task"] == "humaneval")
    assert he["status"] == "inconclusive" and "no scores" in he["reason"]
    suite = next(ET.parse(tmp_path / "gate.xml").getroot().iter("testsuite"))
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")
