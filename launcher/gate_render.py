"""The gate's verdict for people and for CI: a text table, JUnit XML (one test case per
task × threshold; violated critical thresholds are failures, unchecked ones errors, advisory
ones skipped with a message) and a Markdown table for $GITHUB_STEP_SUMMARY. Pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from launcher import report
from launcher.gate_eval import Check, GateResult, Status
from launcher.gate_policy import Severity

_MARK = {Status.PASS: "✅ pass", Status.FAIL: "❌ fail", Status.INCONCLUSIVE: "❔ inconclusive"}


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _rows(result: GateResult) -> list[tuple[str, ...]]:
    return [(c.task, c.name, c.severity.value, _num(c.value), _num(c.baseline), c.status.value,
             c.reason) for c in result.checks]


HEADER = ("task", "threshold", "severity", "score", "baseline", "status", "why")


def _title(result: GateResult) -> str:
    against = f" against baseline {result.baseline_id}" if result.baseline_id else ""
    return f"gate {result.verdict.value}: candidate {result.candidate_id}{against}"


def render_text(result: GateResult) -> str:
    return "\n".join([_title(result), report.format_table(_rows(result), HEADER)])


def render_markdown(result: GateResult) -> str:
    lines = [f"### Evaluation gate: **{result.verdict.value}**", "",
             f"Candidate `{result.candidate_id}`"
             + (f", baseline `{result.baseline_id}`" if result.baseline_id else ""), "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for c in result.checks:
        cells = (c.task, c.name, c.severity.value, _num(c.value), _num(c.baseline),
                 _MARK[c.status], c.reason)
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines) + "\n\n"


def render_junit(result: GateResult) -> str:
    checks = result.checks
    failures = sum(1 for c in checks if _kind(c) == "failure")
    errors = sum(1 for c in checks if _kind(c) == "error")
    skipped = sum(1 for c in checks if _kind(c) == "skipped")
    suites = ET.Element("testsuites", name="launcher gate")
    suite = ET.SubElement(suites, "testsuite", name=f"gate {result.candidate_id}",
                          tests=str(len(checks)), failures=str(failures), errors=str(errors),
                          skipped=str(skipped))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="verdict", value=result.verdict.value)
    ET.SubElement(props, "property", name="candidate", value=result.candidate_id)
    if result.baseline_id:
        ET.SubElement(props, "property", name="baseline", value=result.baseline_id)
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=c.task, name=c.name)
        kind = _kind(c)
        if kind:
            ET.SubElement(case, kind, message=_message(c))
        out = f"score {_num(c.value)}, baseline {_num(c.baseline)}, severity {c.severity.value}"
        ET.SubElement(case, "system-out").text = out
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        suites, encoding="unicode") + "\n"


def _kind(check: Check) -> str | None:
    if check.status == Status.PASS:
        return None
    if check.severity == Severity.ADVISORY:
        return "skipped"
    return "failure" if check.status == Status.FAIL else "error"


def _message(check: Check) -> str:
    prefix = "advisory, not enforced: " if check.severity == Severity.ADVISORY else ""
    return f"{prefix}{check.status.value}: {check.reason}"
