"""Issue 15 on the real engine: two real runs through the launcher container against
reference endpoints at accuracy 0.8 and 0.6; `gate --baseline` blocks with exit 1 (NO-GO),
writes JUnit XML that xml.etree reads and appends the job-summary table; `compare` calls
the drop worse; `export --dest local` writes each job once however often it runs."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from tests.integration.test_job_management import GSM8K, Bench

pytestmark = pytest.mark.integration


def _url(endpoint, network) -> str:
    # Both endpoints carry the shared network alias; each has its own address on the network.
    wrapped = endpoint.container.get_wrapped_container()
    wrapped.reload()
    address = wrapped.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    return f"http://{address}:8000/v1/chat/completions"


def test_gate_blocks_a_real_drop_and_writes_junit(tmp_path, launcher_image, network,
                                                  reference_endpoint, gsm8k_dir):
    good, worse = reference_endpoint(0.8), reference_endpoint(0.6)
    b = Bench(tmp_path, launcher_image, network.name, _url(good, network), gsm8k_dir)
    ids = []
    for endpoint, name in ((good, "base.yaml"), (worse, "cand.yaml")):
        config = b.config([GSM8K], limit=20, name=name, url=_url(endpoint, network))
        run = b.launcher("run", "--config", config)
        assert run.exit_code == 0, run.stderr
        ids.append(re.search(r"^invocation ([0-9a-f]{16}):", run.stderr, re.M).group(1))
    base, cand = ids

    gate = b.launcher("gate", cand, "--baseline", base, "--max-drop", "0.05",
                      "--junit", "/results/gate.xml", "--json",
                      env={"GITHUB_STEP_SUMMARY": "/results/summary.md"})
    assert gate.exit_code == 1, gate.stdout + gate.stderr
    verdict = json.loads(gate.stdout)
    assert verdict["verdict"] == "NO-GO"
    (check,) = verdict["checks"]
    assert (check["task"], check["value"], check["baseline"]) == ("gsm8k", 0.6, 0.8)
    suite = next(ET.parse(b.results / "gate.xml").getroot().iter("testsuite"))
    (case,) = suite.findall("testcase")
    assert case.get("classname") == "gsm8k" and case.find("failure") is not None
    summary = (b.results / "summary.md").read_text()
    assert "**NO-GO**" in summary and "| gsm8k | max_drop: drop <= 0.05 |" in summary

    ok = b.launcher("gate", cand, "--min-score", "0.5")
    assert ok.exit_code == 0 and "gate GO" in ok.stdout, ok.stdout + ok.stderr

    cmp = b.launcher("compare", base, cand, "--json")
    assert cmp.exit_code == 0, cmp.stderr
    (task,) = json.loads(cmp.stdout)["tasks"]
    assert task["paired"]["paired"] == 20
    assert task["paired"]["pass_to_fail"] - task["paired"]["fail_to_pass"] == 4

    for _ in range(2):
        exp = b.launcher("export", base, cand, "--dest", "local")
        assert exp.exit_code == 0, exp.stderr
    rows = json.loads((b.results / "export.json").read_text())
    assert sorted((r["invocation_id"], r["value"]) for r in rows if r["score"] == "exact_match"
                  ) == sorted([(base, 0.8), (cand, 0.6)])
    assert len({(r["job_id"], r["metric"], r["score"]) for r in rows}) == len(rows)
