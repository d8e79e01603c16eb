"""The task catalog: which image and command run a task, and what endpoint type it needs.

Two kinds of task:

- **Built-in** tasks (harness ``eval-launcher``: humaneval, gsm8k) run in the launcher's own
  image as ``launcher harness run_eval --run_config FILE``.
- **External** tasks: the reference system's public catalog (``data/external-tasks.tsv``,
  nemo-evaluator-launcher 0.2.6: 421 tasks of 23 harnesses), run in their harness image as
  ``nemo-evaluator run_eval --run_config FILE`` (the evaluation-container contract).

A config names a task by its short name (``mmlu_pro``) or qualified as ``harness.task``
(``simple_evals.mmlu_pro``). Resolution, modelled on the reference (its
``get_task_from_mapping``: a name without a dot must match exactly one task, else it is an
error listing the ``harness.task`` choices; its own docs cite ``ifeval``, which exists in two
harnesses, as a name that fails -- there with a traceback, here with one line):

1. ``harness.task`` that names a known task: that task.
2. A short name that is a built-in task: the built-in. This is our one addition to the
   reference rule (which has no built-ins): ``humaneval`` means the built-in one, which runs
   anywhere, rather than being ambiguous between ``simple_evals`` and
   ``bigcode-evaluation-harness``; those stay reachable by their qualified names.
3. A short name that exactly one external task has: that task.
4. A short name that several external tasks share. The reference errors here (with a
   traceback), yet its own example configs use such names (``ifeval``, ``gpqa_diamond``):
   they were unambiguous when written, before harnesses such as ``codec`` reused them. So the
   tasks that take the target's endpoint type are kept, and of those the one whose harness
   comes first in ``HARNESS_PREFERENCE`` (the older, general-purpose harnesses first) is used,
   with a one-line notice on stderr naming the choice and the qualified name that pins
   another. When none takes the endpoint type: error, ``ambiguous task 'X': qualify it as
   one of 'h1.X', 'h2.X'``.
5. A legacy short name the reference's older catalog had (``LEGACY_NAMES``, e.g. ``mbpp``):
   the task it became, for the target's endpoint type, with the same kind of notice.
6. Anything else: error naming the closest known names (short and qualified), and pointing to
   ``launcher ls tasks``. Matching is exact and case-sensitive, as in the reference.

``evaluation.tasks[].container`` pins an image: for a known task it replaces the catalog image
(the endpoint type is still checked); with a name the catalog does not know, it makes a
**custom** task (harness ``custom``): the name is passed verbatim as ``config.type`` to
``nemo-evaluator run_eval`` in that image, and the endpoint type is not checked. A catalog row
with no image (none in the packaged catalog, which is the reference's 0.2.6 one) runs only with
a pinned container.

The TSV is parsed once, lazily. No Docker here.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from importlib import resources

import attrs

from launcher.errors import ConfigError

DEFAULT_IMAGE = "eval-launcher:latest"
IMAGE_ENV = "EVAL_LAUNCHER_IMAGE"  # overrides the image of the built-in tasks
BUILTIN_HARNESS = "eval-launcher"
CUSTOM_HARNESS = "custom"
EXTERNAL_TSV = "data/external-tasks.tsv"
TSV_HEADER = ("harness", "task", "image", "endpoint_types")
TARGET_ENDPOINT_TYPES = ("chat", "completions")  # what target.api_endpoint.type accepts
LIST_HINT = "list them with `launcher ls tasks`"
MAX_SUGGESTIONS = 5
CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@attrs.frozen
class TaskSpec:
    name: str  # the task as the harness knows it: config.type in the run config
    harness: str
    image: str  # "" when the catalog knows no public image (a container must be pinned)
    endpoint_types: tuple[str, ...]
    builtin: bool

    @property
    def qualified_name(self) -> str:
        return f"{self.harness}.{self.name}"

    def entrypoint(self) -> str:
        """Set explicitly, so the command does not depend on the image's ENTRYPOINT."""
        return "launcher" if self.builtin else "nemo-evaluator"

    def command(self, run_config_path: str) -> list[str]:
        if self.builtin:
            return ["harness", "run_eval", "--run_config", run_config_path]
        return ["run_eval", "--run_config", run_config_path]

    def to_json(self) -> dict[str, object]:
        return {"task": self.name, "harness": self.harness,
                "qualified_name": self.qualified_name, "image": self.image or None,
                "endpoint_types": list(self.endpoint_types), "builtin": self.builtin}


def harness_image() -> str:
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def builtin_tasks() -> dict[str, TaskSpec]:
    image = harness_image()
    return {
        # humaneval: 164 problems, code executed; gsm8k: exact match on the final number;
        # mmlu: 57 subjects from the standard CSVs; custom: the user's own JSONL.
        "humaneval": TaskSpec("humaneval", BUILTIN_HARNESS, image, ("chat",), True),
        "gsm8k": TaskSpec("gsm8k", BUILTIN_HARNESS, image, ("chat",), True),
        "mmlu": TaskSpec("mmlu", BUILTIN_HARNESS, image, ("chat", "completions"), True),
        "custom": TaskSpec("custom", BUILTIN_HARNESS, image, ("chat", "completions"), True),
    }


@functools.cache
def external_tasks() -> tuple[TaskSpec, ...]:
    """The packaged catalog of external tasks, in file order (parsed once)."""
    text = resources.files("launcher").joinpath(EXTERNAL_TSV).read_text(encoding="utf-8")
    return parse_tsv(text)


def parse_tsv(text: str) -> tuple[TaskSpec, ...]:
    lines = text.splitlines()
    if not lines or tuple(lines[0].split("\t")) != TSV_HEADER:
        raise ValueError(f"{EXTERNAL_TSV}: expected the header {'/'.join(TSV_HEADER)}")
    tasks = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(TSV_HEADER) or not fields[0] or not fields[1]:
            raise ValueError(f"{EXTERNAL_TSV}, line {number}: expected 4 tab-separated fields")
        harness, task, image, types = (f.strip() for f in fields)
        endpoint_types = tuple(t.strip() for t in types.split(",") if t.strip())
        tasks.append(TaskSpec(task, harness, image, endpoint_types, False))
    return tuple(tasks)


def all_tasks() -> list[TaskSpec]:
    """Built-in tasks first, then the external ones in catalog order."""
    return [*builtin_tasks().values(), *external_tasks()]


def display_name(spec: TaskSpec) -> str:
    """How messages name a task: built-ins by their name, external ones qualified."""
    return spec.name if spec.builtin else spec.qualified_name


def find(name: str) -> TaskSpec | list[TaskSpec] | None:
    """Resolve a task name: the task, the external tasks an ambiguous short name matches, or
    None when it names no known task (see the module docstring for the rules)."""
    builtins = builtin_tasks()
    if "." in name:
        harness, task = name.split(".", 1)
        if harness == BUILTIN_HARNESS:
            return builtins.get(task)
        return next((t for t in external_tasks() if t.harness == harness and t.name == task),
                    None)
    if name in builtins:
        return builtins[name]
    matches = [t for t in external_tasks() if t.name == name]
    if len(matches) == 1:
        return matches[0]
    return matches or None


def lookup(name: str, *, source: str | None, key: str) -> TaskSpec:
    """The task a config names, or a ConfigError at ``key`` (unknown or ambiguous)."""
    return _known(name, find(name), source=source, key=key)


def _known(name: str, found: TaskSpec | list[TaskSpec] | None, *, source: str | None,
           key: str) -> TaskSpec:
    """``find(name)``'s answer as one task, or the ConfigError for an unknown or ambiguous name."""
    if isinstance(found, TaskSpec):
        return found
    if found:
        choices = ", ".join(f"'{t.qualified_name}'" for t in found)
        raise ConfigError(f"ambiguous task '{name}': qualify it as one of {choices}",
                          source=source, key=key)
    close = suggestions(name)
    if close:
        hint = f"did you mean {', '.join(repr(c) for c in close)}? ({LIST_HINT})"
    else:
        hint = f"({LIST_HINT}; a task of your own image needs its 'container' set)"
    raise ConfigError(f"unknown task '{name}'{';' if close else ''} {hint}", source=source,
                      key=key)


# Which harness an ambiguous short name means (rule 4): the general-purpose harnesses the
# reference's examples were written against first; later, specialised ones that reuse names
# (contamination detection) last. Harnesses not listed rank between, in catalog order.
HARNESS_PREFERENCE = ("lm-evaluation-harness", "simple_evals", "bigcode-evaluation-harness",
                      "nemo_skills", "helm", "mmath", "livecodebench")
HARNESS_LAST = ("codec",)
# Rule 5: short names of the reference's older catalog -> the qualified name per endpoint type.
LEGACY_NAMES = {
    "mbpp": {"chat": "bigcode-evaluation-harness.mbpp-chat",
             "completions": "bigcode-evaluation-harness.mbpp-completions"},
    "mbppplus": {"chat": "bigcode-evaluation-harness.mbppplus-chat",
                 "completions": "bigcode-evaluation-harness.mbppplus-completions"},
}


def _rank(spec: TaskSpec) -> tuple[int, int]:
    if spec.harness in HARNESS_PREFERENCE:
        return (0, HARNESS_PREFERENCE.index(spec.harness))
    return (2, 0) if spec.harness in HARNESS_LAST else (1, 0)


def prefer(name: str, found: TaskSpec | list[TaskSpec] | None, endpoint_type: str, *,
           source: str | None, key: str) -> TaskSpec | list[TaskSpec] | None:
    """Rules 4 and 5: one task for an ambiguous or legacy short name, with a notice on
    stderr; ``found`` unchanged when there is nothing to choose."""
    if found is None and name in LEGACY_NAMES and endpoint_type in LEGACY_NAMES[name]:
        chosen = find(LEGACY_NAMES[name][endpoint_type])
        if isinstance(chosen, TaskSpec):
            notice(f"task '{name}' of the reference's older catalog is now"
                   f" '{chosen.qualified_name}' ({endpoint_type}); using it (write that name to"
                   " silence this)", source=source, key=key)
            return chosen
    if not isinstance(found, list):
        return found
    usable = sorted((t for t in found if endpoint_type in t.endpoint_types), key=_rank)
    if not usable:
        return found
    chosen, others = usable[0], [t for t in found if t != usable[0]]
    notice(f"task '{name}' is in {len(found)} harnesses; using '{chosen.qualified_name}'"
           f" ({endpoint_type}); to run another, name it: "
           + " or ".join(f"'{t.qualified_name}'" for t in others), source=source, key=key)
    return chosen


def notice(message: str, *, source: str | None, key: str) -> None:
    """One line on stderr: what the launcher chose for the user, at the key they wrote."""
    where = ", ".join(p for p in (source, f"key '{key}'") if p)
    print(f"notice: {where}: {message}", file=sys.stderr)


def resolve(name: str, *, container: str | None, endpoint_type: str, source: str | None,
            key: str, type_key: str = "target.api_endpoint.type") -> TaskSpec:
    """The spec that runs ``evaluation.tasks[i]`` (``key`` is that path), checked against
    the endpoint type the task uses (set at ``type_key``). A pinned ``container`` replaces the
    image, or makes an unknown name a custom task."""
    found = find(name)
    if not (container and found is None):
        found = prefer(name, found, endpoint_type, source=source, key=f"{key}.name")
    if container and found is None:
        if not CUSTOM_NAME.fullmatch(name):
            raise ConfigError(f"custom task name '{name}' may only hold letters, digits and "
                              "'_', '-', '.' (it names the job's folder)", source=source,
                              key=f"{key}.name")
        return TaskSpec(name, CUSTOM_HARNESS, container, (), False)
    spec = _known(name, found, source=source, key=f"{key}.name")
    check_endpoint_type(spec, endpoint_type, source=source, key=f"{key}.name",
                        type_key=type_key)
    if container:
        return attrs.evolve(spec, image=container)
    if not spec.image:
        raise ConfigError(
            f"task '{display_name(spec)}' has no public image in the catalog; set "
            f"{key}.container to an image that runs it", source=source, key=f"{key}.container")
    return spec


def check_endpoint_type(spec: TaskSpec, endpoint_type: str, *, source: str | None,
                        key: str, type_key: str = "target.api_endpoint.type") -> None:
    if endpoint_type in spec.endpoint_types:
        return
    wanted = " or ".join(spec.endpoint_types) or "unknown"
    message = (f"task '{display_name(spec)}' needs a {wanted} endpoint but "
               f"{type_key} is '{endpoint_type}'")
    usable = [t for t in spec.endpoint_types if t in TARGET_ENDPOINT_TYPES]
    fixes = [f"set {type_key} to {' or '.join(usable)} (with a URL of that kind)"
             ] if usable else [f"the launcher drives only {' and '.join(TARGET_ENDPOINT_TYPES)} "
                               "endpoints, so it cannot run this task"]
    siblings = [t for t in all_tasks() if t.name == spec.name and t != spec
                and endpoint_type in t.endpoint_types]
    if siblings:
        names = ", ".join(f"'{display_name(t)}'" for t in siblings)
        fixes.append(f"use {names}, which takes {endpoint_type}")
    raise ConfigError(f"{message}; {', or '.join(fixes)}", source=source, key=key)


def suggestions(name: str, n: int = 3) -> list[str]:
    """The known names closest to ``name``, as the user could write them: a short name when it
    resolves on its own, else its qualified names."""
    tasks = all_tasks()
    qualified = [t.qualified_name for t in tasks]
    out: list[str] = []
    if "." in name:
        harness, task = name.split(".", 1)
        same_task = [t for t in tasks if t.name == task]  # the right task in another harness
        same_task.sort(key=lambda t: -difflib.SequenceMatcher(None, harness, t.harness).ratio())
        out += [t.qualified_name for t in same_task]
        in_harness = [t.name for t in tasks if t.harness == harness]
        if in_harness:  # a typo in the task part: compare it with that harness's tasks only
            out += [f"{harness}.{hit}" for hit in closest(task, in_harness, n)]
        else:  # a typo in the harness (or both)
            out += closest(name, qualified, n)
    else:
        for hit in closest(name, [*(t.name for t in tasks), *qualified], n):
            found = find(hit)
            if isinstance(found, list):
                out += [t.qualified_name for t in found]
            else:
                out.append(hit)
    return list(dict.fromkeys(out))[:MAX_SUGGESTIONS]


def closest(word: str, pool: Iterable[str], n: int = 3, cutoff: float = 0.6,
            margin: float = 0.1) -> list[str]:
    """Like difflib.get_close_matches (case-insensitive), but keeps only the matches nearly as
    close as the best one, so one clear match is suggested alone."""
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word.lower())
    scored: list[tuple[float, str]] = []
    for candidate in dict.fromkeys(pool):
        matcher.set_seq1(candidate.lower())
        if (matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff
                and (ratio := matcher.ratio()) >= cutoff):
            scored.append((ratio, candidate))
    scored.sort(key=lambda s: -s[0])
    if not scored:
        return []
    best = scored[0][0]
    return [c for r, c in scored if r >= best - margin][:n]


def harnesses() -> Sequence[str]:
    return list(dict.fromkeys(t.harness for t in all_tasks()))
