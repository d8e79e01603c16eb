"""report: the page renderer (escaping of hostile model text, the plot, the sample browser
and its cap), the readers of the job folders, and `launcher report` on invocation folders
written the way the launcher writes them. The page in a real browser:
tests/integration/test_report.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from launcher import cli, report_data, report_html
from launcher.commands.report import report
from launcher.report import Score, read_request_stats
from launcher.report_data import JobReport, ReportData, RequestSummary, RunReport, Sample
from tests.unit.fake_runs import make_run

HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


class Page(HTMLParser):
    """Tags, attributes and text of a page, and whether every element closes in order."""

    VOID = {"meta", "input", "br", "img", "line", "rect", "path", "hr", "link"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.balanced = True
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack.pop() != tag:
            self.balanced = False

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str, **attrs: str) -> int:
        return sum(1 for t, a in self.tags if t == tag and all(a.get(k) == v
                                                                 for k, v in attrs.items()))


def _sample(i: int, ok: bool, reply: str = "42") -> Sample:
    return Sample(f"item/{i}", 0, f"user: question {i}", reply, reply, "42", None, ok)


def _job(task: str, value: float, samples: list[Sample], **kw) -> JobReport:
    score = Score(task, "exact_match", "exact_match", value, 0.1, len(samples))
    fails = sum(1 for s in samples if s.correct is False)
    return JobReport(task, kw.pop("job_id", f"{task}-job"), (score,), kw.pop("requests", None),
                     tuple(samples), kw.pop("total", len(samples)), kw.pop("failures", fails),
                     True)


def _data(*runs: RunReport, max_samples: int = 2000) -> ReportData:
    return ReportData(tuple(runs), "2026-12-04T01:00:00Z", max_samples, "0.0-test")


def _run(ident: str, *jobs: JobReport, model: str = "m") -> RunReport:
    return RunReport(ident * (16 // len(ident)), "2026-12-04T00:00:00Z", model,
                     "http://ep:8000/v1/chat/completions", tuple(jobs))


def test_hostile_model_text_renders_as_text_and_the_only_script_is_ours():
    job = _job("gsm8k", 0.5, [_sample(0, False, HOSTILE), _sample(1, True)])
    evil_task = RunReport("ab" * 8, "now", '<b onmouseover="x">', "http://x/\"><script>", (job,))
    page = report_html.render(_data(evil_task))
    assert "<script>alert(1)" not in page and "onerror=alert" not in page.replace(
        "onerror=alert(2)&gt;", "")
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1 and page.count("</script>") == 1
    parsed = Page(page)
    assert parsed.balanced
    assert parsed.count("script") == 1 and parsed.count("img") == 0 and parsed.count("b") == 0
    assert HOSTILE in "".join(parsed.text)  # shown to the reader, verbatim
    # the policy lets only our own script and style run, and nothing load
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = next(a["content"] for t, a in parsed.tags if t == "meta"
               and a.get("http-equiv") == "Content-Security-Policy")
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


def test_self_contained_no_url_to_fetch():
    page = report_html.render(_data(_run("a1", _job("gsm8k", 0.8, [_sample(0, True)]))))
    # the only URL is the endpoint shown as text and the SVG namespace
    assert re.findall(r"(?:src|href)=", page) == []
    assert "@import" not in page and "url(" not in page


def test_one_run_plot_scores_requests_and_samples():
    stats = RequestSummary(12, 10, 0, 2, (("timeout", 2),), (("p50", 0.0123), ("p90", 0.05),
                           ("p99", 0.09), ("mean", 0.02), ("max", 0.1)), 1200, 340, 1.5, 6.7)
    samples = [_sample(i, i % 4 != 0) for i in range(8)]
    run = _run("a1", _job("gsm8k", 0.75, samples, requests=stats),
               _job("humaneval", 0.5, [_sample(9, True)]))
    page = report_html.render(_data(run))
    parsed = Page(page)
    assert parsed.count("svg", id="score-plot") == 1
    assert sum(1 for t, a in parsed.tags if t == "rect" and "bar" in (a["class"] or "")) == 2
    assert parsed.count("tr", **{"data-ok": "0"}) == 2
    assert parsed.count("tr", **{"data-ok": "1"}) == 7
    assert parsed.count("input", id="failures-only", type="checkbox") == 1
    options = [a.get("value") for t, a in parsed.tags if t == "option"]
    assert options == ["", "gsm8k", "humaneval"]
    assert parsed.count("select", id="run-filter") == 0  # one invocation: no run selector
    text = " ".join("".join(parsed.text).split())
    assert "0.7500 ± 0.1000 (n=8)" in text
    assert "2 (timeout: 2)" in text and "0.012" in text and "1,200" in text
    assert "no request stats" in text  # humaneval has none
    assert "sample-cap" not in page  # nothing was capped


def test_several_runs_one_plot_with_a_bar_per_task_and_invocation():
    a = _run("a1", _job("gsm8k", 0.8, [_sample(0, True)]), _job("mmlu", 0.4, []), model="m-a")
    b = _run("b2", _job("gsm8k", 0.6, [_sample(0, False)]), model="m-b")
    parsed = Page(report_html.render(_data(a, b)))
    assert parsed.count("svg") == 1
    bars = [a_ for t, a_ in parsed.tags if t == "rect" and "bar" in (a_["class"] or "")]
    assert [b_["class"] for b_ in bars] == ["bar s0", "bar s1", "bar s0"]  # mmlu: b never ran
    text = "".join(parsed.text)
    assert "a1a1a1a1 · m-a" in text and "b2b2b2b2 · m-b" in text
    assert "not run" in text
    assert parsed.count("select", id="run-filter") == 1


def test_capped_samples_are_said_so():
    job = _job("gsm8k", 0.5, [_sample(i, True) for i in range(3)], total=1000, failures=500)
    page = report_html.render(_data(_run("a1", job), max_samples=3))
    text = " ".join("".join(Page(page).text).split())
    assert "At most 3 samples per job are embedded" in text
    assert "the first 3 of 1,000 samples (500 failed in all)" in text


def _write_artifacts(folder: Path, n: int, stats: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body: dict = {"metrics": {"exact_match": {"scores": {"exact_match": {
        "value": 0.5, "stats": {"count": n, "stderr": 0.1}}}}}}
    if stats:
        body["request_stats"] = stats
    (folder / "results.yml").write_text(yaml.safe_dump({"results": {"tasks": {"gsm8k": body}}}))
    lines = [json.dumps({"id": f"q{i}", "prompt": [{"role": "system", "content": "be brief"},
                                                   {"role": "user", "content": f"q {i}?"}],
                         "response": f"The answer is {i}", "score": i % 2, "target": "1",
                         "extracted": str(i)}) for i in range(n)]
    lines.insert(2, "not json")
    lines.append('{"id": "torn"')
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n")


def test_read_samples_counts_all_keeps_the_first_and_skips_junk(tmp_path):
    _write_artifacts(tmp_path, 10)
    kept, total, failures, present = report_data.read_samples(str(tmp_path), 4)
    assert (len(kept), total, failures, present) == (4, 10, 5, True)
    first = kept[0]
    assert first.prompt == "system: be brief\n\nuser: q 0?"
    assert (first.item_id, first.reply, first.extracted, first.target, first.correct) == (
        "q0", "The answer is 0", "0", "1", False)
    assert report_data.read_samples(str(tmp_path / "none"), 4) == ([], 0, 0, False)


def test_request_stats_from_results_yml(tmp_path):
    stats = {"requests": 5, "succeeded": 4, "cached": 1, "retries": 1,
             "errors": {"http_5xx": 1}, "latency_s": {"p50": 0.01, "p90": 0.02, "p99": 0.03,
                                                       "mean": 0.015, "max": 0.04},
             "tokens": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
             "wall_time_s": 0.5, "requests_per_s": 8.0}
    _write_artifacts(tmp_path, 2, stats)
    summary = report_data.request_summary(read_request_stats(str(tmp_path))["gsm8k"])
    assert summary.errors == (("http_5xx", 1),) and summary.error_count == 1
    assert dict(summary.latency)["p99"] == 0.03
    assert (summary.prompt_tokens, summary.completion_tokens) == (100, 20)


def test_long_texts_are_clipped():
    record = {"id": 1, "prompt": "p", "response": "x" * (report_data.MAX_TEXT + 5), "score": 1}
    s = report_data.sample(record, 0)
    assert len(s.reply) < report_data.MAX_TEXT + 100 and "5 more characters not shown" in s.reply


# ------------------------------------------------------------------ the command


@pytest.fixture
def two_runs(tmp_path, fake, capsys):
    a = make_run(tmp_path, {"gsm8k": [1, 1, 0, 0, 1], "humaneval": [1, 0]}, model="m-a")
    b = make_run(tmp_path, {"gsm8k": [1, 1, 1, 0, 1], "humaneval": None}, model="m-b")
    capsys.readouterr()
    return str(tmp_path / "out"), a, b


def test_report_two_runs_to_a_file(two_runs, tmp_path, capsys):
    out, a, b = two_runs
    dest = tmp_path / "r.html"
    assert report(out, [a.invocation_id[:6], b.invocation_id], str(dest), 2000) == 0
    assert capsys.readouterr().out.strip() == f"wrote {dest}: 2 invocation(s), 4 job(s), 12 samples"
    parsed = Page(dest.read_text())
    assert parsed.balanced
    assert parsed.count("tr", **{"data-run": a.invocation_id}) == 7
    assert parsed.count("tr", **{"data-run": b.invocation_id}) == 5
    assert parsed.count("tr", **{"data-ok": "0"}) == 4
    bars = [x for t, x in parsed.tags if t == "rect" and "bar" in (x["class"] or "")]
    assert len(bars) == 3  # b's humaneval wrote no results
    assert "no samples.jsonl" in "".join(parsed.text)


def test_report_default_path_cap_and_job_ids(two_runs, capsys):
    out, a, _ = two_runs
    # a job id narrows to that job; naming the invocation as well adds the rest, once
    assert report(out, [f"{a.invocation_id}.1"], None, 1) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"wrote {out}/report.html: 1 invocation(s), 1 job(s), 1 samples "
                           "(of 2; --max-samples 1)")
    page = Page((Path(out) / "report.html").read_text())
    assert page.count("tr", **{"data-task": "humaneval"}) == 1
    assert page.count("tr", **{"data-task": "gsm8k"}) == 0
    assert report(out, [f"{a.invocation_id}.1", a.invocation_id, f"{a.invocation_id}.0"],
                  None, 0) == 0
    assert "1 invocation(s), 2 job(s), 0 samples (of 7" in capsys.readouterr().out


@pytest.mark.parametrize("args, code, words", [
    (["ffffffffffffffff"], 2, "no invocation 'ffffffffffffffff'"),
    (["not-an-id"], 2, "is not an invocation id"),
    (["{a}", "-o", "/nonexistent/dir/r.html"], 2, "does not exist"),
    (["{a}", "--max-samples", "-1"], 2, "--max-samples"),
])
def test_bad_input_is_one_line(two_runs, capsys, monkeypatch, args, code, words):
    out, a, _ = two_runs
    argv = [x.replace("{a}", a.invocation_id) for x in args]
    monkeypatch.setattr("sys.argv", ["launcher", "report", *argv, "--output-dir", out])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == code
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_unwritable_target_is_exit_3(two_runs, tmp_path, capsys, monkeypatch):
    out, a, _ = two_runs
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere.html")
    monkeypatch.setattr("sys.argv", ["launcher", "report", a.invocation_id, "--output-dir", out,
                                     "-o", str(tmp_path / "link")])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 3
    assert not (tmp_path / "elsewhere.html").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
