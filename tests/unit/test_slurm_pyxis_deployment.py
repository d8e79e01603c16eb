"""The control flow of a pyxis ``run.sub`` with a deployment, run by bash: pyxis is not in
Debian, so ``srun`` here is a stand-in that drops its container options and runs the command
on this machine (pyxis containers share the node's network, as these processes share
loopback). The server is a real HTTP server; the evaluation a real ``curl`` against it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher import slurm_script
from launcher.envvars import EnvVar
from launcher.slurm_settings import SlurmSettings
from launcher.spec import ContainerSpec

SRUN = """#!/bin/bash
out=
while [[ $# -gt 0 ]]; do
  case $1 in
    --overlap|--no-container-mount-home|--container-entrypoint) shift ;;
    --output) out=$2; shift 2 ;;
    --*) shift 2 ;;
    *) break ;;
  esac
done
if [[ -n $out ]]; then exec "$@" >"$out" 2>&1; else exec "$@"; fi
"""

SERVER = """
import http.server, sys, time
started = time.monotonic()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = time.monotonic() - started > 0.3
        code = 200 if ready or self.path != "/health" else 503
        print("request", self.path, code, flush=True)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"answer")
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_run_sub(tmp_path: Path, server_args: tuple[str, ...], port: int,
                  timeout: float = 30.0, then: str = "") -> tuple[Path, dict[str, str], Path]:
    """(run.sub, its environment, the job folder); ``then``: shell the evaluation runs after
    its request."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(SRUN)
    for name in ("sbatch", "scancel", "scontrol"):  # no cluster: no next job in the chain
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    job_dir = tmp_path / "job"
    answer = job_dir / "answer"
    evaluation = ContainerSpec(
        image="eval-launcher:latest", entrypoint="/bin/sh",
        command=("-c", f'curl -sf "http://127.0.0.1:{port}/v1/chat/completions?k=$API_KEY" '
                       f'-o {answer}; echo "${{SERVER_ONLY-unset}}" > {job_dir}/seen; {then}'),
        name="eval-launcher-abc-0", env=(EnvVar("API_KEY", host_name="MY_KEY"),),
        labels={"eval-launcher.job": "abc.0"})
    server = slurm_script.InJobServer(
        server=ContainerSpec(image="vllm/vllm-openai:v0", entrypoint=sys.executable,
                             command=server_args, name="eval-launcher-abc-server",
                             env=(EnvVar("SERVER_ONLY", literal="1"),)),
        waiter=ContainerSpec(image="unused"), port=port, timeout=timeout)
    script = tmp_path / "run.sub"
    script.write_text(slurm_script.render_run_sub(evaluation, SlurmSettings(), str(job_dir),
                                                  "job", server=server))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7",
           "MY_KEY": "k1"}
    env.pop("SERVER_ONLY", None)
    return script, env, job_dir


def run_sub(tmp_path: Path, server_args: tuple[str, ...], port: int,
            timeout: float = 30.0) -> tuple[subprocess.CompletedProcess[str], Path]:
    script, env, job_dir = write_run_sub(tmp_path, server_args, port, timeout)
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                          timeout=60)
    return proc, job_dir


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_evaluation_runs_once_the_server_is_healthy_and_the_server_is_stopped(
        tmp_path: Path) -> None:
    port = free_port()
    proc, job_dir = run_sub(tmp_path, ("-c", SERVER, str(port)), port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (job_dir / "answer").read_text() == "answer"
    assert (job_dir / "logs" / "slurm-7.rc").read_text().strip() == "0"
    log = (job_dir / "logs" / "server.log").read_text().splitlines()
    asked = [line for line in log if line.startswith("request /v1/")]
    assert asked == ["request /v1/chat/completions?k=k1 200"]  # the key by name, after ready
    assert "request /health 503" in log and "request /health 200" in log
    assert log.index("request /health 200") < log.index(asked[0])
    assert not port_open(port)  # the server ended with the job
    assert (job_dir / "seen").read_text() == "unset\n"  # the server's variables stay its own


def test_a_cancelled_job_stops_both_steps(tmp_path: Path) -> None:
    """TERM to the batch script (scancel --batch, a signal before the walltime): the
    evaluation step and the server are stopped, exit 143."""
    port = free_port()
    script, env, job_dir = write_run_sub(tmp_path, ("-c", SERVER, str(port)), port,
                                         then=f"echo $$ > {tmp_path}/eval.pid; exec sleep 60")
    proc = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pid_file = tmp_path / "eval.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    evaluation = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    time.sleep(0.2)
    assert not alive(evaluation)
    assert not port_open(port)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_health_path_that_never_answers_is_bounded(tmp_path: Path) -> None:
    """A server that accepts connections and never answers (loading) does not hang the poll:
    each curl is bounded, the readiness timeout holds."""
    port = free_port()
    silent = ("-c", "import socket, sys, time\ns = socket.socket()\n"
                    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                    "s.bind(('127.0.0.1', int(sys.argv[1])))\ns.listen(64)\n"
                    "print('listening', flush=True)\nconns = []\n"
                    "while True:\n    conns.append(s.accept())", str(port))
    started = time.monotonic()
    proc, job_dir = run_sub(tmp_path, silent, port, timeout=1.0)
    took = time.monotonic() - started
    assert proc.returncode == 125, proc.stdout + proc.stderr
    assert "was not ready after 1 s" in proc.stdout and "listening" in proc.stdout
    assert took < 20, took


@pytest.mark.parametrize(("server_args", "timeout", "said"), [
    (("-c", "import sys; print('no GPU found', flush=True); sys.exit(3)"), 30.0,
     "exited before it got ready"),
    (("-c", "import time; print('loading', flush=True); time.sleep(60)"), 0.6,
     "was not ready after 0.6 s"),
])
def test_a_server_that_never_gets_ready_fails_the_job_with_its_last_lines(
        tmp_path: Path, server_args: tuple[str, ...], timeout: float, said: str) -> None:
    port = free_port()
    proc, job_dir = run_sub(tmp_path, server_args, port, timeout=timeout)
    assert proc.returncode == 125, proc.stdout + proc.stderr
    assert f"eval-launcher: the model server {said}" in proc.stdout
    assert server_args[1].split("'")[1] in proc.stdout  # its last lines
    assert not (job_dir / "answer").exists()  # the evaluation never started
    assert (job_dir / "logs" / "slurm-7.rc").read_text().strip() == "125"
