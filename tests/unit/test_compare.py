"""compare: the exact McNemar test, item pairing and flips, and the command on invocation
folders written the way the launcher writes them."""

from __future__ import annotations

import json
import math

import pytest

from launcher import cli
from launcher.commands.compare import compare
from launcher.paired import Verdict, mcnemar_p, pair
from tests.unit.fake_runs import make_run


def test_mcnemar_matches_the_binomial_by_hand():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    # b=1, c=9: 2 * (C(10,0) + C(10,1)) / 2^10
    assert math.isclose(mcnemar_p(1, 9), 2 * 11 / 1024)
    assert math.isclose(mcnemar_p(9, 1), mcnemar_p(1, 9))
    assert math.isclose(mcnemar_p(0, 5), 2 / 32)
    assert 0 < mcnemar_p(200, 260) < 0.01  # large n stays exact, no overflow


def test_pairing_counts_flips_by_item_and_ignores_unmatched():
    base = {("a", 0): True, ("b", 0): True, ("c", 0): False, ("d", 0): False, ("x", 0): True}
    cand = {("a", 0): True, ("b", 0): False, ("c", 0): True, ("d", 0): False, ("y", 0): True}
    p = pair(base, cand)
    assert (p.paired, p.both_pass, p.both_fail, p.pass_to_fail, p.fail_to_pass) == (
        4, 1, 1, 1, 1)
    assert (p.only_base, p.only_candidate) == (1, 1)
    assert p.flipped_to_fail == ("b",) and p.flipped_to_pass == ("c",)
    assert p.verdict == Verdict.SAME


def test_verdicts():
    base = {(str(i), 0): True for i in range(20)}
    worse = {(str(i), 0): i >= 12 for i in range(20)}
    assert pair(base, worse).verdict == Verdict.WORSE
    assert pair(worse, base).verdict == Verdict.BETTER
    assert pair({}, {}).verdict == Verdict.UNPAIRED


def test_compare_two_runs(tmp_path, fake, capsys):
    base = make_run(tmp_path, {"gsm8k": [1] * 16 + [0] * 4, "humaneval": [1, 0] * 5})
    cand = make_run(tmp_path, {"gsm8k": [0] * 8 + [1] * 8 + [0] * 4, "humaneval": [1, 0] * 5})
    capsys.readouterr()
    assert compare(str(tmp_path / "out"), base.invocation_id, cand.invocation_id[:6],
                   as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    by_task = {t["task"]: t for t in data["tasks"]}
    gsm = by_task["gsm8k"]
    assert gsm["paired"]["pass_to_fail"] == 8 and gsm["paired"]["fail_to_pass"] == 0
    assert gsm["verdict"] == "worse"
    assert math.isclose(gsm["scores"][0]["diff"], 0.4 - 0.8)
    assert gsm["scores"][0]["base_stderr"] > 0
    assert by_task["humaneval"]["verdict"] == "no significant difference"
    assert compare(str(tmp_path / "out"), base.invocation_id, cand.invocation_id,
                   as_json=False) == 0
    text = capsys.readouterr().out
    assert "worse" in text and "gsm8k: now failing: gsm8k/0" in text


def test_no_task_in_common_is_one_line_exit_2(tmp_path, fake, capsys, monkeypatch):
    base = make_run(tmp_path, {"gsm8k": [1, 0]})
    cand = make_run(tmp_path, {"humaneval": [1, 0]})
    capsys.readouterr()
    monkeypatch.setattr("sys.argv", ["launcher", "compare", base.invocation_id,
                                     cand.invocation_id, "--output-dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no task in common" in err and len(
        err.strip().splitlines()) == 1


def test_samples_pair_by_item_id_and_response_index(tmp_path):
    from launcher.outcomes import read_samples

    (tmp_path / "samples.jsonl").write_text("\n".join([
        json.dumps({"id": "HumanEval/0", "sample": 0, "score": 1}),
        json.dumps({"id": "HumanEval/0", "sample": 1, "score": 0}),
        json.dumps({"score": 1}),  # no id: its line number
        "not json", json.dumps({"id": "x", "score": "high"}), json.dumps([1]),
    ]) + "\n")
    assert read_samples(str(tmp_path)) == {("HumanEval/0", 0): True, ("HumanEval/0", 1): False,
                                           ("#2", 0): True}
    assert read_samples(str(tmp_path / "missing")) is None
