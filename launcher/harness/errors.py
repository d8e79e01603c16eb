"""Errors the harness reports (one line each, no traceback), with their exit codes.

The harness runs inside an evaluation container; ``run_eval.main`` prints ``error: <message>``
on stderr and returns the error's exit code:

* 1 -- the evaluation could not complete (endpoint unreachable after retries, bad response);
* 2 -- the run config is wrong (``ConfigError`` from :mod:`launcher.errors`);
* 3 -- the environment is wrong (dataset missing or corrupt, output dir not writable).
"""

from __future__ import annotations

from launcher.errors import EnvironmentProblem, LauncherError

EXIT_EVAL_FAILED = 1


class EndpointError(LauncherError):
    """The model endpoint did not give a usable answer (after retries where they apply)."""

    exit_code = EXIT_EVAL_FAILED


class DatasetError(EnvironmentProblem):
    """A dataset could not be found, downloaded or verified."""
