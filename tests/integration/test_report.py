"""Issue 15's report in a real headless browser: two real runs through the launcher container
against reference endpoints at accuracy 0.8 and 0.6, `launcher report` (in the container)
renders both into one page, and Debian's Chromium (scripts/install-chromium.sh) opens it:
no console errors, the SVG plot with a bar per task and invocation, the sample table with a
row per sample, the failures filter (clicked with real mouse events) leaving exactly the
failed samples, and screenshots in tests/artifacts/ (report.png, report-failures.png). A
second test plants hostile model text and checks it shows as text, with no script run and
no dialog; a third that these checks do see errors, blocked scripts and dialogs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from launcher import report_html
from launcher.report import Score
from launcher.report_data import JobReport, ReportData, RunReport, Sample
from tests.integration.browser import Browser
from tests.integration.test_gate import _url
from tests.integration.test_job_management import GSM8K, Bench

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def _visible_rows(browser: Browser) -> int:
    return browser.eval("document.querySelectorAll('#sample-table tbody tr:not([hidden])')"
                        ".length")


def test_report_of_two_real_runs_in_headless_chromium(tmp_path, launcher_image, network,
                                                       reference_endpoint, gsm8k_dir, browser):
    good, worse = reference_endpoint(0.8), reference_endpoint(0.6)
    b = Bench(tmp_path, launcher_image, network.name, _url(good, network), gsm8k_dir)
    humaneval = {"name": "humaneval", "nemo_evaluator_config": {"config": {"params": {
        "limit_samples": 10}}}}
    ids = []
    for endpoint, name, tasks in ((good, "a.yaml", [GSM8K, humaneval]),
                                  (worse, "b.yaml", [GSM8K])):
        run = b.launcher("run", "--config", b.config(tasks, limit=20, name=name,
                                                     url=_url(endpoint, network)))
        assert run.exit_code == 0, run.stderr
        ids.append(re.search(r"^invocation ([0-9a-f]{16}):", run.stderr, re.M).group(1))
    first, second = ids
    failed = 0
    for inv in b.invocations():
        for samples in inv.glob("*/artifacts/samples.jsonl"):
            failed += sum(json.loads(line)["score"] == 0
                          for line in samples.read_text().splitlines())
    assert failed == 4 + 2 + 8  # exact: 0.8 of 20, 0.8 of 10, 0.6 of 20 right

    made = b.launcher("report", first, second, "-o", "/results/report.html")
    assert made.exit_code == 0, made.stderr
    assert made.stdout.strip() == ("wrote /results/report.html: 2 invocation(s), 3 job(s), "
                                   "50 samples")
    page = b.results / "report.html"

    browser.open(page)
    assert browser.problems() == []
    assert browser.eval("document.title") == f"eval-launcher report: {first[:8]}, {second[:8]}"
    assert browser.eval("document.querySelectorAll('svg#score-plot').length") == 1
    assert browser.eval("document.querySelectorAll('svg#score-plot rect.bar').length") == 3
    bars = browser.eval("[...document.querySelectorAll('svg#score-plot rect.bar title')]"
                        ".map(t => t.textContent)")
    assert [re.search(r"= ([0-9.]+)", t).group(1) for t in bars] == ["0.8000", "0.6000",
                                                                      "0.8000"]
    cells = browser.eval("[...document.querySelectorAll('#score-table tbody tr')]"
                         ".map(r => [...r.cells].map(c => c.textContent))")
    assert cells[0][:4] == ["gsm8k", "exact_match", "0.8000 ± 0.0918 (n=20)",
                            "0.6000 ± 0.1124 (n=20)"]
    assert browser.eval("document.querySelectorAll('#request-table tbody tr').length") == 3
    assert browser.eval("document.querySelectorAll('#sample-table tbody tr').length") == 50
    assert _visible_rows(browser) == 50
    assert browser.eval("document.getElementById('shown-count').textContent") == (
        "50 of 50 samples shown")

    shot = browser.screenshot(ARTIFACTS / "report.png", max_height=2400)
    print(f"report screenshot: {shot} (page: {page})")
    assert shot.stat().st_size > 10_000

    browser.click("#failures-only")
    assert browser.eval("document.getElementById('failures-only').checked") is True
    assert _visible_rows(browser) == failed
    browser.screenshot(ARTIFACTS / "report-failures.png")
    assert browser.eval("[...document.querySelectorAll('#sample-table tbody tr:not([hidden])')]"
                        ".every(r => r.dataset.ok === '0')")
    browser.eval("(() => { const s = document.getElementById('task-filter'); "
                 "s.value = 'humaneval'; s.dispatchEvent(new Event('change')); })()")
    assert _visible_rows(browser) == 2
    browser.click("#failures-only")
    assert _visible_rows(browser) == 10
    browser.eval("(() => { const s = document.getElementById('task-filter'); s.value = ''; "
                 "s.dispatchEvent(new Event('change')); })()")
    assert _visible_rows(browser) == 50
    assert browser.problems() == []


def test_hostile_model_text_shows_as_text_in_the_browser(tmp_path, browser):
    samples = (Sample("q0", 0, f"user: {HOSTILE}", HOSTILE, HOSTILE, "42", None, False),
               Sample("q1", 0, "user: 6 * 7?", "42", "42", "42", None, True))
    score = Score("gsm8k", "exact_match", "exact_match", 0.5, 0.5, 2)
    job = JobReport(HOSTILE, "x.0", (score,), None, samples, 2, 1, True)
    run = RunReport("0123456789abcdef", "2026-12-04T00:00:00Z", HOSTILE, HOSTILE, (job,))
    page = tmp_path / "hostile.html"
    page.write_text(report_html.render(ReportData((run,), "now", 2000, "test")))

    browser.open(page)
    assert browser.problems() == []  # no alert dialog, no blocked script, no error
    assert browser.eval("document.scripts.length") == 1
    assert browser.eval("document.querySelectorAll('img, #sample-table script').length") == 0
    reply = browser.eval("document.querySelector('#sample-table tbody tr .reply')"
                         ".textContent")
    assert reply == HOSTILE
    browser.click("#failures-only")
    assert _visible_rows(browser) == 1
    browser.screenshot(ARTIFACTS / "report-hostile.png")


def test_the_browser_check_sees_errors_blocked_scripts_and_dialogs(tmp_path, browser):
    """The checks above are not vacuous: what they assert is absent is seen when present."""
    page = tmp_path / "bad.html"
    page.write_text("<script>console.error('boom')</script><script>nope()</script>")
    browser.open(page)
    found = browser.problems()
    assert any("boom" in p for p in found) and any("nope is not defined" in p for p in found)
    good = report_html.render(ReportData((), "now", 10, "test"))
    page.write_text(good.replace("<h1>", "<script>alert(3)</script><h1>", 1))
    browser.open(page)  # our policy blocks a script that got in: the log says so
    assert any("Content Security Policy" in p for p in browser.problems())
    page.write_text("<script>alert(4)</script>")
    browser.open(page)
    assert "dialog: 4" in browser.problems()
