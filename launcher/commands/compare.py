"""`launcher compare BASE CANDIDATE`: scores and a paired item-by-item test per task."""

from __future__ import annotations

import json

from launcher import comparison, outcomes, runs
from launcher.errors import ConfigError


def load_outcomes(output_dir: str, ident: str) -> tuple[runs.Run, dict[str, outcomes.TaskOutcome]]:
    run, index = runs.find(output_dir, ident)
    return run, outcomes.task_outcomes(run, index)


def compare(output_dir: str, base: str, candidate: str, as_json: bool) -> int:
    base_run, base_tasks = load_outcomes(output_dir, base)
    cand_run, cand_tasks = load_outcomes(output_dir, candidate)
    result = comparison.compare(base_run.invocation_id, base_tasks, cand_run.invocation_id,
                                cand_tasks)
    if not result.tasks:
        raise ConfigError(
            f"invocations {base_run.invocation_id} ({', '.join(base_tasks) or 'no tasks'}) and "
            f"{cand_run.invocation_id} ({', '.join(cand_tasks) or 'no tasks'}) have no task in "
            "common: compare runs of the same tasks")
    if as_json:
        print(json.dumps(comparison.as_dict(result), indent=2))
    else:
        print(comparison.render_text(result))
    return 0
