"""`launcher report`'s page: ReportData (launcher/report_data.py) → one self-contained HTML
string. Pure. Inline CSS and JS only, the plot an inline SVG; no request leaves the page (its
Content-Security-Policy allows nothing but its own style and script, by hash). Every text
that came from a run (model replies, prompts, task names, ids) is HTML-escaped, so a reply
holding markup or a script shows as text."""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Sequence

import attrs

from launcher.report import Score
from launcher.report_data import JobReport, ReportData, RequestSummary, RunReport, Sample

PALETTE = 8  # series colours in the CSS: .s0 .. .s7, then they repeat

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --head: #f6f8fa;
  --ok: #1a7f37; --fail: #cf222e; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 24px 32px 48px; color: var(--fg);
  background: var(--bg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
p.meta, .note { color: var(--muted); margin: 4px 0 10px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left;
  vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.missing { color: var(--muted); }
td.nowrap { white-space: nowrap; }
.stderr, .count { color: var(--muted); font-size: 12px; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin-right: 6px; vertical-align: -1px; }
.s0 { fill: #0969da; background: #0969da; } .s1 { fill: #d4760a; background: #d4760a; }
.s2 { fill: #1a7f37; background: #1a7f37; } .s3 { fill: #8250df; background: #8250df; }
.s4 { fill: #cf222e; background: #cf222e; } .s5 { fill: #1b7c83; background: #1b7c83; }
.s6 { fill: #9a6700; background: #9a6700; } .s7 { fill: #6e7781; background: #6e7781; }
figure { margin: 0; overflow-x: auto; }
svg#score-plot { display: block; max-width: 100%; height: auto; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  fill: var(--fg); }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .err { stroke: #1f2328; stroke-width: 1.2; }
svg .value { font-size: 11px; fill: var(--muted); }
svg .nobar { font-size: 11px; fill: var(--fail); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 6px 0 0; padding: 0;
  list-style: none; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 20px;
  margin: 8px 0; padding: 8px 10px; background: var(--head); border: 1px solid var(--line);
  border-radius: 6px; }
.controls label { display: inline-flex; align-items: center; gap: 6px; }
.controls select { font: inherit; padding: 2px 4px; }
#shown-count { margin-left: auto; color: var(--muted); }
#sample-table td { font-size: 13px; }
#sample-table td.text-cell { min-width: 180px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 14em; overflow: auto;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  margin: 0; }
.prompt, .target { max-width: 420px; max-height: 9em; } .reply { max-width: 460px; }
.verdict { font-weight: 600; white-space: nowrap; }
.verdict.ok { color: var(--ok); } .verdict.fail { color: var(--fail); }
tr.failed td:first-child { box-shadow: inset 3px 0 0 var(--fail); }
.reason { display: block; margin-top: 4px; color: var(--muted); font-size: 12px; }
.empty { color: var(--muted); font-style: italic; }
"""

SCRIPT = """
(function () {
  var table = document.getElementById("sample-table");
  if (!table) { return; }
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var failures = document.getElementById("failures-only");
  var task = document.getElementById("task-filter");
  var run = document.getElementById("run-filter");
  var count = document.getElementById("shown-count");
  function apply() {
    var shown = 0;
    rows.forEach(function (row) {
      var show = (!failures.checked || row.dataset.ok === "0") &&
        (task.value === "" || row.dataset.task === task.value) &&
        (!run || run.value === "" || row.dataset.run === run.value);
      row.hidden = !show;
      if (show) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " samples shown";
  }
  failures.addEventListener("change", apply);
  task.addEventListener("change", apply);
  if (run) { run.addEventListener("change", apply); }
  apply();
})();
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(SCRIPT)}; "
       "img-src data:; base-uri 'none'; form-action 'none'")


def render(data: ReportData) -> str:
    ids = ", ".join(r.invocation_id[:8] for r in data.runs)
    body = "\n".join([
        "<header>", "<h1>Evaluation report</h1>",
        f'<p class="meta">{_plural(len(data.runs), "invocation")} · '
        f'{_plural(sum(len(r.jobs) for r in data.runs), "job")} · generated '
        f"{esc(data.generated)} by eval-launcher {esc(data.version)}</p>", "</header>",
        _section("invocations", "Invocations", runs_table(data.runs)),
        _section("scores", "Scores", scores_table(data.runs)),
        _section("plot", "Headline score per task", plot(data.runs)),
        _section("requests", "Requests", requests_table(data.runs)),
        _section("samples", "Samples", sample_browser(data)),
    ])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>eval-launcher report: {esc(ids)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n<script>{SCRIPT}</script>\n</body>\n</html>\n")


def _section(ident: str, title: str, content: str) -> str:
    return f'<section id="{ident}">\n<h2>{esc(title)}</h2>\n{content}\n</section>'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _label(run: RunReport) -> str:
    return f"{run.invocation_id[:8]} · {run.model_id or 'unknown model'}"


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _int(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


# ------------------------------------------------------------------------------ tables


def runs_table(runs: Sequence[RunReport]) -> str:
    rows = []
    for i, run in enumerate(runs):
        tasks = ", ".join(j.task for j in run.jobs) or "–"
        rows.append(
            f'<tr><td class="nowrap"><span class="swatch s{i % PALETTE}"></span><code>'
            f'{esc(run.invocation_id)}</code></td><td class="nowrap">{esc(run.created)}</td>'
            f"<td>{esc(run.model_id or '–')}</td><td><code>{esc(run.url or '–')}</code></td>"
            f"<td>{esc(tasks)}</td></tr>")
    return ("<table><thead><tr><th>invocation</th><th>started</th><th>model</th>"
            "<th>endpoint</th><th>tasks</th></tr></thead><tbody>\n" + "\n".join(rows)
            + "\n</tbody></table>")


def task_names(runs: Sequence[RunReport]) -> list[str]:
    """Every task of the runs, in the order first seen."""
    return list(dict.fromkeys(j.task for r in runs for j in r.jobs))


def scores_table(runs: Sequence[RunReport]) -> str:
    """One row per task and score, one column per invocation: value ± stderr (n)."""
    keys: dict[tuple[str, str, str], None] = {}
    for task in task_names(runs):
        for run in runs:
            for job in run.jobs:
                if job.task == task:
                    for s in job.scores:
                        keys[(task, s.metric, s.score)] = None
    found = {(r.invocation_id, j.task, s.metric, s.score): s
             for r in runs for j in r.jobs for s in j.scores}
    has_job = {(r.invocation_id, j.task) for r in runs for j in r.jobs}
    head = "".join(f'<th class="num"><span class="swatch s{i % PALETTE}"></span>'
                   f"{esc(_label(r))}</th>" for i, r in enumerate(runs))
    rows = []
    for task, metric, name in keys:
        cells = []
        for run in runs:
            found_score = found.get((run.invocation_id, task, metric, name))
            if found_score is not None:
                cells.append(f'<td class="num">{_score_cell(found_score)}</td>')
            else:
                cells.append('<td class="num missing">'
                             f"{'–' if (run.invocation_id, task) in has_job else 'not run'}"
                             "</td>")
        score = metric if name == metric else f"{metric} / {name}"
        rows.append(f"<tr><td>{esc(task)}</td><td>{esc(score)}</td>{''.join(cells)}</tr>")
    for task in task_names(runs):  # jobs that wrote no results.yml
        if not any(k[0] == task for k in keys):
            rows.append(f'<tr><td>{esc(task)}</td><td class="missing">no results.yml</td>'
                        + "".join('<td class="num missing">–</td>' for _ in runs) + "</tr>")
    return ('<table id="score-table"><thead><tr><th>task</th><th>score</th>' + head
            + "</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n"
            '<p class="note">value ± standard error (number of samples); the first score of '
            "a task is its headline score.</p>")


def _score_cell(s: Score) -> str:
    stderr = f' <span class="stderr">± {_num(s.stderr)}</span>' if s.stderr is not None else ""
    count = f' <span class="count">(n={s.count})</span>' if s.count is not None else ""
    return f"{_num(s.value)}{stderr}{count}"


def requests_table(runs: Sequence[RunReport]) -> str:
    many = len(runs) > 1
    rows = []
    for run in runs:
        for job in run.jobs:
            rows.append(_request_row(run, job, job.requests, many))
    if not any(j.requests for r in runs for j in r.jobs):
        return '<p class="empty">No request stats in these runs\' results.yml.</p>'
    head = ("<th>invocation</th>" if many else "") + "".join(
        f'<th class="num">{h}</th>' if i else f"<th>{h}</th>" for i, h in enumerate((
            "task", "requests", "ok", "cached", "retries", "errors", "p50 s", "p90 s", "p99 s",
            "max s", "prompt tokens", "completion tokens", "req/s")))
    return (f'<table id="request-table"><thead><tr>{head}</tr></thead><tbody>\n'
            + "\n".join(rows) + "\n</tbody></table>\n"
            '<p class="note">Latency of successful attempts, in seconds (p50/p90/p99 are '
            "percentiles); errors count failed attempts by kind, retried or not.</p>")


def _request_row(run: RunReport, job: JobReport, stats: RequestSummary | None,
                 many: bool) -> str:
    first = f"<td><code>{esc(run.invocation_id[:8])}</code></td>" if many else ""
    if stats is None:
        return (f"<tr>{first}<td>{esc(job.task)}</td>"
                '<td class="missing" colspan="12">no request stats</td></tr>')
    latency = dict(stats.latency)
    kinds = ", ".join(f"{k}: {n}" for k, n in stats.errors if n)
    errors = f"{stats.error_count}" + (f' <span class="count">({esc(kinds)})</span>'
                                       if kinds else "")
    cells = [_int(stats.requests), _int(stats.succeeded), _int(stats.cached),
             _int(stats.retries), errors,
             *(_num(latency.get(k), 3) for k in ("p50", "p90", "p99", "max")),
             _int(stats.prompt_tokens), _int(stats.completion_tokens),
             _num(stats.requests_per_s, 1)]
    return (f"<tr>{first}<td>{esc(job.task)}</td>"
            + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")


# ------------------------------------------------------------------------------ plot


@attrs.frozen
class _Bar:
    series: int
    run: RunReport
    job: JobReport | None


def plot(runs: Sequence[RunReport]) -> str:
    """Grouped bars: one group per task, one bar per invocation (its headline score), with
    ± 1 standard error whiskers."""
    tasks = task_names(runs)
    if not tasks:
        return '<p class="empty">No tasks in these runs.</p>'
    by = {(r.invocation_id, j.task): j for r in runs for j in r.jobs}
    values = [s.value + (s.stderr or 0) for j in by.values() if (s := j.headline)]
    top = _nice_top(max(values, default=1.0))
    n = len(runs)
    bar = max(14, min(44, 160 // n))
    gap = 28
    group = max(n * bar + gap, 120)  # room for the task's name under its bars
    left, right, top_pad, height, bottom = 56, 16, 22, 240, 56
    width = max(360, left + right + len(tasks) * group)
    base = top_pad + height

    def y(v: float) -> float:
        return base - max(0.0, min(v, top)) / top * height

    out = [f'<svg id="score-plot" xmlns="http://www.w3.org/2000/svg" role="img" '
           f'width="{width}" height="{base + bottom}" viewBox="0 0 {width} {base + bottom}" '
           'aria-label="headline score per task and invocation">']
    for tick in _ticks(top):
        ty = y(tick)
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{ty:.1f}" '
                   f'y2="{ty:.1f}"/><text x="{left - 8}" y="{ty + 4:.1f}" '
                   f'text-anchor="end">{_tick_label(tick)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top_pad}" y2="{base}"/>'
               f'<line class="axis" x1="{left}" x2="{width - right}" y1="{base}" '
               f'y2="{base}"/>')
    out.append(f'<text x="14" y="{top_pad + height / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top_pad + height / 2:.0f})">score</text>')
    for t, task in enumerate(tasks):
        x0 = left + t * group + (group - n * bar) / 2
        for bar_ in (_Bar(i, r, by.get((r.invocation_id, task))) for i, r in enumerate(runs)):
            out.append(_bar_svg(bar_, task, x0 + bar_.series * bar, bar, y, base))
        label = task if len(task) <= 22 else task[:21] + "…"
        cx = x0 + n * bar / 2
        out.append(f'<text x="{cx:.1f}" y="{base + 18}" text-anchor="middle">'
                   f"<title>{esc(task)}</title>{esc(label)}</text>")
        metrics = {f"{s.metric}/{s.score}" if s.metric != s.score else s.metric
                   for r in runs if (j := by.get((r.invocation_id, task))) and (s := j.headline)}
        if len(metrics) == 1:
            (metric,) = metrics
            out.append(f'<text class="value" x="{cx:.1f}" y="{base + 33}" '
                       f'text-anchor="middle">{esc(metric[:28])}</text>')
    out.append("</svg>")
    legend = "".join(f'<li><span class="swatch s{i % PALETTE}"></span>{esc(_label(r))}</li>'
                     for i, r in enumerate(runs))
    return ("<figure>" + "".join(out) + f'<ul class="legend">{legend}</ul></figure>\n'
            '<p class="note">Bars: each task\'s headline score per invocation; whiskers: ± 1 '
            "standard error. Hover a bar for its value.</p>")


def _bar_svg(b: _Bar, task: str, x: float, width: float, y, base: float) -> str:
    s = b.job.headline if b.job else None
    if s is None:
        why = "not run" if b.job is None else "no result"
        return (f'<text class="nobar" x="{x + width / 2:.1f}" y="{base - 4}" '
                f'text-anchor="middle">×<title>{esc(task)} · {esc(_label(b.run))}: '
                f"{why}</title></text>")
    top = y(s.value)
    tip = (f"{task} · {_label(b.run)}: {s.metric}/{s.score} = {_num(s.value)}"
           + (f" ± {_num(s.stderr)}" if s.stderr is not None else "")
           + (f" (n={s.count})" if s.count is not None else ""))
    parts = [f'<rect class="bar s{b.series % PALETTE}" x="{x + 1:.1f}" y="{top:.1f}" '
             f'width="{width - 2:.1f}" height="{max(0.0, base - top):.1f}">'
             f"<title>{esc(tip)}</title></rect>"]
    label_y = top - 5
    if s.stderr:
        lo, hi = y(s.value - s.stderr), y(s.value + s.stderr)
        cx = x + width / 2
        parts.append(f'<path class="err" d="M{cx:.1f} {lo:.1f}V{hi:.1f}M{cx - 4:.1f} '
                     f'{hi:.1f}h8M{cx - 4:.1f} {lo:.1f}h8"/>')
        label_y = min(label_y, hi - 5)
    parts.append(f'<text class="value" x="{x + width / 2:.1f}" y="{label_y:.1f}" '
                 f'text-anchor="middle">{_num(s.value, 2 if width < 30 else 3)}</text>')
    return "".join(parts)


def _nice_top(value: float) -> float:
    """1.0 for fractions; otherwise the next 1, 2 or 5 times a power of ten."""
    if value <= 1.0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _ticks(top: float) -> list[float]:
    return [top * i / 4 for i in range(5)]


def _tick_label(value: float) -> str:
    return f"{value:g}" if value >= 10 else f"{value:.2f}"


# ------------------------------------------------------------------------------ samples


def sample_browser(data: ReportData) -> str:
    runs = data.runs
    jobs = [(r, j) for r in runs for j in r.jobs]
    total = sum(len(j.samples) for _, j in jobs)
    notes = []
    for run, job in jobs:
        who = f"{job.task}" + (f" ({run.invocation_id[:8]})" if len(runs) > 1 else "")
        if not job.has_samples:
            notes.append(f"{esc(who)}: no samples.jsonl")
        elif job.truncated:
            notes.append(f"{esc(who)}: the first {len(job.samples):,} of "
                         f"{job.samples_total:,} samples ({job.failures_total:,} failed in "
                         "all)")
    cap = (f'<p class="note" id="sample-cap">At most {data.max_samples:,} samples per job are '
           "embedded (<code>--max-samples</code>). " + "; ".join(notes) + ".</p>"
           if notes else "")
    if not total:
        return cap + '<p class="empty">No samples to show.</p>'
    tasks = task_names(runs)
    task_select = ('<label>task <select id="task-filter"><option value="">all tasks</option>'
                   + "".join(f'<option value="{esc(t)}">{esc(t)}</option>' for t in tasks)
                   + "</select></label>")
    run_select = ""
    if len(runs) > 1:
        run_select = ('<label>invocation <select id="run-filter"><option value="">all '
                      "invocations</option>" + "".join(
                          f'<option value="{esc(r.invocation_id)}">{esc(_label(r))}</option>'
                          for r in runs) + "</select></label>")
    failed = sum(1 for _, j in jobs for s in j.samples if s.correct is False)
    controls = ('<div class="controls"><label><input type="checkbox" id="failures-only"> '
                f"failures only ({failed:,})</label>{task_select}{run_select}"
                f'<span id="shown-count">{total:,} samples</span></div>')
    many = len(runs) > 1
    head = (("<th>invocation</th>" if many else "") + "<th>task</th><th>id</th><th>prompt</th>"
            "<th>reply</th><th>extracted answer</th><th>target</th><th>correct</th>")
    rows = "\n".join(_sample_row(run, job, s, many) for run, job in jobs for s in job.samples)
    return (cap + controls + f'<table id="sample-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{rows}\n</tbody></table>")


def _sample_row(run: RunReport, job: JobReport, s: Sample, many: bool) -> str:
    ok = "" if s.correct is None else ("1" if s.correct else "0")
    verdict = ('<span class="verdict">–</span>' if s.correct is None else
               '<span class="verdict ok">✓ yes</span>' if s.correct else
               '<span class="verdict fail">✗ no</span>')
    ident = s.item_id + (f" #{s.index}" if s.index else "")
    extracted = (_text(s.extracted) if s.extracted is not None else
                 '<span class="empty">–</span>')
    if s.note:
        extracted += f'<span class="reason">{esc(s.note)}</span>'
    first = f"<td><code>{esc(run.invocation_id[:8])}</code></td>" if many else ""
    failed = ' class="failed"' if ok == "0" else ""
    return (f'<tr data-task="{esc(job.task)}" data-run="{esc(run.invocation_id)}" '
            f'data-ok="{ok}"{failed}>'
            f"{first}<td>{esc(job.task)}</td><td><code>{esc(ident)}</code></td>"
            f'<td class="text-cell">{_text(s.prompt, "prompt")}</td>'
            f'<td class="text-cell">{_text(s.reply, "reply")}</td>'
            f"<td>{extracted}</td>"
            f"<td>{_text(s.target, 'target') if s.target is not None else '–'}</td>"
            f"<td>{verdict}</td></tr>")


def _text(value: str, kind: str = "") -> str:
    cls = f"text {kind}".strip()
    return f'<div class="{cls}">{esc(value)}</div>'
