from __future__ import annotations

import os
import time
from pathlib import Path

from launcher.harness.sandbox import run_program


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # an unreaped zombie counts as dead
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def _wait_dead(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _dead(pid):
            return True
        time.sleep(0.05)
    return _dead(pid)


def test_passing_program_passes() -> None:
    outcome = run_program("assert sum([1, 2, 3]) == 6\nprint('ok')\n", timeout=10)
    assert outcome.passed
    assert outcome.reason == "passed"


def test_assertion_failure_fails_with_reason() -> None:
    outcome = run_program("def f():\n    return 1\n\nassert f() == 2, 'wrong value'\n")
    assert not outcome.passed
    assert "AssertionError: wrong value" in outcome.reason


def test_syntax_error_fails() -> None:
    outcome = run_program("def f(:\n")
    assert not outcome.passed
    assert "SyntaxError" in outcome.reason


def test_infinite_loop_times_out_quickly() -> None:
    start = time.monotonic()
    outcome = run_program("while True:\n    pass\n", timeout=1.0)
    elapsed = time.monotonic() - start
    assert not outcome.passed
    assert outcome.reason == "timed out after 1s"
    assert elapsed < 2.0


def test_cpu_limit_kills_busy_program() -> None:
    outcome = run_program("while True:\n    pass\n", timeout=10.0, cpu_seconds=1)
    assert not outcome.passed
    assert outcome.reason.startswith("killed by SIG")  # SIGXCPU, or SIGKILL at the hard limit
    assert outcome.seconds < 5


def test_memory_limit() -> None:
    program = "x = bytearray(1024 ** 3)\n"
    outcome = run_program(program, memory_bytes=256 * 1024**2)
    assert not outcome.passed
    assert "MemoryError" in outcome.reason


def test_forked_children_are_killed_on_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    program = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "while True:\n    time.sleep(0.05)\n"
    )
    outcome = run_program(program, timeout=1.5)
    assert outcome.reason == "timed out after 1.5s"
    child = int(pidfile.read_text())
    assert _wait_dead(child), f"child {child} of the timed-out program is still running"


def test_background_children_are_killed_after_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    program = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    time.sleep(60)\n    os._exit(0)\n"
        f"open({str(pidfile)!r}, 'w').write(str(pid))\n"
    )
    start = time.monotonic()
    outcome = run_program(program, timeout=10)
    assert outcome.passed
    assert time.monotonic() - start < 5
    assert _wait_dead(int(pidfile.read_text()))


def test_isolated_environment_and_cwd(monkeypatch) -> None:
    monkeypatch.setenv("SECRET_API_KEY", "sk-do-not-leak")
    program = (
        "import os, sys\n"
        "assert 'SECRET_API_KEY' not in os.environ, 'env leaked'\n"
        "assert os.path.basename(os.getcwd()).startswith('sandbox-')\n"
        "assert sys.flags.isolated == 1\n"
        "assert sys.stdin.read() == ''\n"
        "open('scratch.txt', 'w').write('x')\n"
    )
    outcome = run_program(program)
    assert outcome.passed, outcome.reason
