"""``pre_cmd`` / ``post_cmd`` (``evaluation.*`` and ``evaluation.tasks[].*``, the task's own
winning): shell commands run in the evaluation container before and after the evaluation, as
the reference runs them, behind its trust switch.

The reference sources ``pre_cmd`` in the shell that then runs the evaluation (so its
``export``\\ s reach it; if it fails, the evaluation does not run) and runs ``post_cmd`` from an
EXIT trap (also after a failed evaluation), exiting with the evaluation's code (here
``post_cmd`` runs in a subshell, so not even its ``exit`` changes that code). The wrapper
below does the same in POSIX ``sh``, with the user's text as data (positional arguments
``eval``\\ ed), not spliced into the script; the evaluation runs as a child whose SIGTERM the
shell forwards, so ``docker stop`` still stops it gracefully and ``post_cmd`` still runs.

Trust: a config is often someone else's (a colleague's, an example from the web), and shell in
it runs with the dataset, the endpoint's key and the results at hand. So hooks run only when the
person launching says so, with the reference's switch ``NEMO_EVALUATOR_TRUST_PRE_CMD=1`` in the
launcher's OWN environment: not a config key (whoever wrote the config would set it) and not
from ``--env-file`` or a ``.env`` beside the config (they travel with the config). Without it a
run is refused before anything starts; ``--dry-run`` and ``config validate`` only note it, so the
commands can be reviewed first, as the reference allows.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from launcher.errors import ConfigError

if TYPE_CHECKING:
    from launcher.config import Config

TRUST_ENV = "NEMO_EVALUATOR_TRUST_PRE_CMD"
SHELL = "/bin/sh"
ARGV0 = "eval-launcher-hooks"
# $1 pre_cmd, $2 post_cmd, then the evaluation's command. Names prefixed so the user's text,
# evaluated in this shell, does not clobber them by accident.
SCRIPT = (
    '_el_pre=$1 _el_post=$2; shift 2; eval "$_el_pre" || exit; "$@" & _el_child=$!; '
    "trap 'kill -TERM \"$_el_child\" 2>/dev/null' TERM INT; "
    'wait "$_el_child"; _el_code=$?; '
    'while kill -0 "$_el_child" 2>/dev/null; do wait "$_el_child"; _el_code=$?; done; '
    '(eval "$_el_post"); exit "$_el_code"'
)


@attrs.frozen
class Hooks:
    pre_cmd: str = ""
    post_cmd: str = ""

    def wrap(self, entrypoint: str, command: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        """The container's entrypoint and command that run the hooks around ``entrypoint
        command...``."""
        return SHELL, ("-c", SCRIPT, ARGV0, self.pre_cmd, self.post_cmd, entrypoint, *command)


def for_task(config: Config, index: int) -> tuple[Hooks | None, list[str]]:
    """The hooks of ``evaluation.tasks[index]`` (its own, else the evaluation's) and the keys
    they were written at."""
    task = config.evaluation.tasks[index]
    keys, values = [], []
    for name in ("pre_cmd", "post_cmd"):
        own = getattr(task, name)
        value = own or getattr(config.evaluation, name)
        values.append(value)
        if value:
            keys.append(f"evaluation.tasks[{index}].{name}" if own else f"evaluation.{name}")
    if not any(values):
        return None, []
    return Hooks(*values), keys


def trusted(environ: Mapping[str, str] | None = None) -> bool:
    return (os.environ if environ is None else environ).get(TRUST_ENV) == "1"


CORE = ("runs shell commands in the evaluation container, which a config from elsewhere must not "
        "do unless you say so")


def how_to_trust(in_container: bool, argv: list[str] | None = None) -> str:
    if in_container:
        return f"add -e {TRUST_ENV}=1 to the `docker run` of the launcher container"
    words = shlex.join(["launcher", *(sys.argv[1:] if argv is None else argv)])
    return f"run `{TRUST_ENV}=1 {words}` (or `export {TRUST_ENV}=1` first)"


def check(config: Config, *, source: str, running: bool, in_container: bool = False,
          environ: Mapping[str, str] | None = None, argv: list[str] | None = None) -> None:
    """Refuse a run whose tasks have hooks unless trusted (``running``); for a dry run or a
    validation, a note on stderr that says what a run will need."""
    keys = [key for i in range(len(config.evaluation.tasks)) for key in for_task(config, i)[1]]
    if not keys or trusted(environ):
        return
    value = (os.environ if environ is None else environ).get(TRUST_ENV)
    now = f" ({TRUST_ENV} is '{value}'; only 1 counts)" if value is not None else ""
    if running:
        raise ConfigError(f"{CORE}{now}: read them, then {how_to_trust(in_container, argv)}",
                          source=source, key=keys[0])
    how = (f"-e {TRUST_ENV}=1 on the launcher container" if in_container
           else f"`export {TRUST_ENV}=1`")
    print(f"note: {source}, key '{keys[0]}': {CORE}{now}; a run needs {TRUST_ENV}=1 in the "
          f"launcher's environment ({how})", file=sys.stderr)
