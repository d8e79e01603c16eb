"""``run.sub``: one job's ``ContainerSpec`` as a Slurm batch script. Pure text rendering.

The script the Slurm backend submits (and ``--dry-run`` prints): ``#SBATCH`` lines from the
execution's Slurm keys, then the container, with the same image, mounts, user and env NAMES
the local backend would use:

- ``container_runtime: docker``: ``docker run`` of the spec (``scripts.docker_run_words``) on
  the node, named, removed when the job ends, is cancelled or times out;
- ``container_runtime: pyxis``: ``srun --container-image`` (the reference's way).

Env values never appear: the submitting launcher exports them into the job by name
(``sbatch --export=NAME,...``); the script reads them from its environment. A job that
reaches its walltime resubmits itself (``--dependency=afternotok``, queued when it starts
and cancelled when it ends by itself) until the chain has run ``max_walltime``; the next
job carries ``eval-launcher.resubmit-of=<previous id>`` in its comment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from shlex import quote

import attrs

from launcher import __version__
from launcher.labels import LABEL_JOB
from launcher.scripts import docker_run_words
from launcher.slurm_settings import SlurmSettings, seconds
from launcher.spec import ContainerSpec

RUN_SUB = "run.sub"
RESUBMIT_OF = "eval-launcher.resubmit-of"
LOG_PATTERN = "slurm-%j.log"  # in the job's logs/ folder; a resubmitted job writes its own
RC_SUFFIX = ".rc"  # logs/slurm-<id>.rc: the container's exit code, when it ended by itself
WALLTIME_FILE = "slurm-walltime"  # logs/: seconds the chain has run so far
EXIT_TIMEOUT = 124
SERVER_LOG = "server.log"  # logs/: the output of the job's own model server (a deployment)
_RESUMABLE = ("TIMEOUT", "PREEMPTED", "NODE_FAIL")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@attrs.frozen
class InJobServer:
    """A deployment inside the job. docker runtime: the model server and the waiter that
    polls its health, both on a network of the job's own. pyxis: the server in an ``srun``
    step on the node (pyxis containers share the node's network), its health polled with
    curl at ``127.0.0.1:port``."""

    server: ContainerSpec
    waiter: ContainerSpec
    port: int = 8000
    health_path: str = "/health"
    timeout: float = 1800.0  # seconds to get ready
    log_name: str = SERVER_LOG  # in the job's logs/ folder


def comment(labels: Mapping[str, str], note: str | None = None) -> str:
    """The job's labels, as ``--comment`` carries them (``key=value,...``), after the user's
    ``sbatch_comment`` when there is one."""
    tags = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{note},{tags}" if note else tags


def parse_comment(text: str) -> dict[str, str]:
    """The launcher's labels in a job's comment (whatever else the comment holds)."""
    out: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if eq and key.strip().startswith("eval-launcher."):
            out[key.strip()] = value.strip()
    return out


def job_name(spec: ContainerSpec, settings: SlurmSettings | None = None) -> str:
    """The container's name; with ``subproject``, the reference's
    ``<account>-<subproject>.<name>``."""
    name = spec.name or "eval-launcher"
    if settings is None or not settings.subproject:
        return name
    prefix = f"{settings.account}-" if settings.account else ""
    return f"{prefix}{settings.subproject}.{name}"


def sbatch_header(settings: SlurmSettings, name: str, log_dir: str,
                  labels: Mapping[str, str]) -> list[str]:
    lines = [f"#SBATCH --job-name {quote(name)}", f"#SBATCH --time {settings.walltime}"]
    if settings.account:
        lines.append(f"#SBATCH --account {quote(settings.account)}")
    if settings.partition:
        lines.append(f"#SBATCH --partition {quote(settings.partition)}")
    lines += [f"#SBATCH --nodes {settings.num_nodes}",
              f"#SBATCH --ntasks-per-node {settings.ntasks_per_node}"]
    if settings.gpus_per_node is not None:
        lines.append(f"#SBATCH --gpus-per-node {settings.gpus_per_node}")
    elif settings.gres:
        lines.append(f"#SBATCH --gres {quote(settings.gres)}")
    for flag, value in settings.extra_flags:
        lines.append(f"#SBATCH --{flag}" + (f" {quote(value)}" if value is not None else ""))
    lines += ["#SBATCH --no-requeue",  # our own resubmission, below
              f"#SBATCH --output {quote(f'{log_dir}/{LOG_PATTERN}')}",
              f"#SBATCH --comment {quote(comment(labels, settings.comment))}"]
    return lines


def _chain(settings: SlurmSettings, log_dir: str, script: str, labels: Mapping[str, str]) -> str:
    """Before the container: refuse to run past max_walltime, run only after a previous job
    that timed out (or was preempted), and queue the next job in case this one times out."""
    walltime_file = quote(f"{log_dir}/{WALLTIME_FILE}")
    rc_file = f'{quote(log_dir)}/slurm-"$SLURM_JOB_ID"{RC_SUFFIX}'
    limit = seconds(settings.max_walltime) if settings.max_walltime else 0
    resumable = "|".join(_RESUMABLE)
    next_comment = quote(comment(labels, settings.comment) + f",{RESUBMIT_OF}=")
    return f"""\
prev=${{1:-}}
job_field() {{
  scontrol show job "$1" -o 2>/dev/null | tr ' ' '\\n' | sed -n "s/^$2=//p" | head -n1
}}
to_seconds() {{  # [D-]HH:MM:SS as scontrol prints RunTime
  local t=$1 d=0
  if [[ $t == *-* ]]; then d=${{t%%-*}}; t=${{t#*-}}; fi
  IFS=: read -r h m s <<<"$t"
  echo $(( ((10#$d * 24 + 10#$h) * 60 + 10#$m) * 60 + 10#${{s:-0}} ))
}}
if [[ -z $prev ]]; then
  echo 0 > {walltime_file}
else
  state=$(job_field "$prev" JobState)
  case $state in
    {resumable}) echo "eval-launcher: Slurm job $prev ended with $state: resuming" ;;
    *) echo "eval-launcher: Slurm job $prev ended with ${{state:-?}}: nothing to resume"
       exit 0 ;;
  esac
  ran=$(to_seconds "$(job_field "$prev" RunTime)")
  used=$(( $(cat {walltime_file} 2>/dev/null || echo 0) + ran ))
  echo "$used" > {walltime_file}
  if (( {limit} > 0 && used >= {limit} )); then
    echo "eval-launcher: the jobs ran $used s, max_walltime is {settings.max_walltime}: stop"
    echo {EXIT_TIMEOUT} > {rc_file}
    exit 1
  fi
fi
next=$(sbatch --parsable --dependency=afternotok:"$SLURM_JOB_ID" --export=ALL \\
  --comment {next_comment}"$SLURM_JOB_ID" {quote(script)} "$SLURM_JOB_ID") || next=
"""


def _pyxis_words(spec: ContainerSpec, settings: SlurmSettings,
                 step: tuple[str, ...] | None = None) -> list[str]:
    """``srun --container-image`` of ``spec``; ``step``: the srun options placing it (default:
    one task on the job's first node: the evaluation client, as in the reference)."""
    mounts = ",".join(f"{m.source.source}:{m.target}{':ro' if m.read_only else ''}"
                      for m in spec.mounts)
    placing = step if step is not None else ("--nodes 1", "--ntasks 1")
    words = ["srun", *placing, f"--container-image {quote(spec.image)}"]
    if mounts:
        words.append(f"--container-mounts {quote(mounts)}")
    names = sorted({v.name for v in spec.env})
    if names:
        words.append(f"--container-env {quote(','.join(names))}")
    if not settings.mount_home:
        words.append("--no-container-mount-home")
    if spec.entrypoint:
        words.append(quote(spec.entrypoint))
    else:
        words.insert(1, "--container-entrypoint")
    words += [quote(w) for w in spec.command]
    return words


def _pyxis_env(spec: ContainerSpec) -> str:
    """The container's variables, set in the job from the exported host ones (by name)."""
    lines = []
    for var in spec.env:
        if var.host_name is None:
            lines.append(f"export {var.name}={quote(var.literal or '')}")
        elif var.host_name != var.name or var.runtime:
            default = "-" if var.runtime else ""
            lines.append(f'export {var.name}="${{{var.host_name}{default}}}"')
    return "".join(f"{line}\n" for line in lines)


def _step(env: str, words: list[str], redirect: str = "") -> str:
    """An ``srun`` step in the background, its variables set in a subshell of its own (so
    neither the batch shell nor the other step sees them); ``$!`` is the srun."""
    body = "".join(f"  {line}\n" for line in env.splitlines())
    run = " \\\n    ".join(words)
    return f"(\n{body}  exec {run}\n){redirect} &\n"


def _pyxis_with_server(spec: ContainerSpec, server: InJobServer, settings: SlurmSettings,
                       log_dir: str, rc_file: str) -> str:
    """The job's own model server in an ``srun`` step of its own (``num_nodes`` nodes,
    ``deployment.n_tasks`` tasks, the reference's; its output and srun's own appended to
    ``logs/server.log``), ready (its health path answers 200 on this node's loopback) before
    the evaluation step starts on this node, stopped when the evaluation ends or the job is
    cancelled. Both steps ``--overlap``: they share the job's resources (the server holds the
    GPUs of ``--gres``)."""
    log = quote(f"{log_dir}/{server.log_name}")
    srv_step = ("--overlap", f"--nodes {settings.num_nodes}", f"--ntasks {settings.server_tasks}")
    eval_step = ("--overlap", "--nodes 1", "--ntasks 1",
                 '--nodelist "${SLURMD_NODENAME:-$(hostname)}"')
    health = quote(f"http://127.0.0.1:{server.port}{server.health_path}")
    limit = max(1, math.ceil(server.timeout))
    run_server = _step(_pyxis_env(server.server), _pyxis_words(server.server, settings, srv_step),
                       f" >>{log} 2>&1")
    run_eval = _step(_pyxis_env(spec), _pyxis_words(spec, settings, eval_step))
    return f"""\
stop_server() {{
  if [[ -n ${{server_pid:-}} ]]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  server_pid=
}}
not_ready() {{
  echo "eval-launcher: the model server $1; its last lines:"
  tail -n 20 {log} 2>/dev/null
  stop_server
  echo 125 > {rc_file}
  if [[ -n $next ]]; then scancel "$next" 2>/dev/null || true; fi
  exit 125
}}
trap 'if [[ -n ${{eval_pid:-}} ]]; then kill "$eval_pid" 2>/dev/null; fi; stop_server; exit 143' \\
  TERM INT
{run_server}server_pid=$!
command -v curl >/dev/null || not_ready "cannot be polled: no curl on this node's PATH"
deadline=$(( SECONDS + {limit} ))
until [[ $(curl -q -s --noproxy '*' --connect-timeout 2 --max-time 5 -o /dev/null \\
             -w '%{{http_code}}' {health}) == 200 ]]; do
  kill -0 "$server_pid" 2>/dev/null || not_ready "exited before it got ready"
  (( SECONDS >= deadline )) && not_ready "was not ready after {server.timeout:g} s"
  sleep 0.2
done
{run_eval}eval_pid=$!
wait "$eval_pid"
rc=$?
eval_pid=
stop_server
(exit "$rc")
"""


def _docker(spec: ContainerSpec, how: str) -> str:
    """``docker run`` of ``spec`` (its ``--rm`` replaced by ``how``), one option per line."""
    words = docker_run_words(spec)
    return " \\\n  ".join([words[0].replace("docker run --rm", f"docker run {how}", 1),
                            *words[1:]])


def _docker_with_server(spec: ContainerSpec, server: InJobServer, log_dir: str,
                        rc_file: str) -> str:
    """The job's own model server (and network), ready before its evaluation container
    starts, removed when the job ends however it ends."""
    suffix = spec.labels.get(LABEL_JOB, "job").rpartition(".")[2]
    network = f"{spec.network or 'eval-launcher'}-{suffix}"
    job = {LABEL_JOB: spec.labels[LABEL_JOB]} if LABEL_JOB in spec.labels else {}
    srv = attrs.evolve(server.server, network=network, name=f"{server.server.name}-{suffix}",
                       labels={**server.server.labels, **job})
    waiter = attrs.evolve(server.waiter, network=network, name=f"{server.waiter.name}-{suffix}",
                          labels={**server.waiter.labels, **job})
    evaluation = attrs.evolve(spec, network=network)
    names = " ".join(quote(n or "") for n in (spec.name, srv.name, waiter.name))
    labels = " ".join(f"--label {quote(f'{k}={v}')}" for k, v in srv.labels.items())
    return f"""\
cleanup() {{
  docker rm -f {names} >/dev/null 2>&1 || true
  docker network rm {quote(network)} >/dev/null 2>&1 || true
}}
trap 'cleanup; exit 143' TERM INT
cleanup
docker network create {labels} {quote(network)} >/dev/null
{_docker(srv, f"-d --rm --name {quote(srv.name or '')}")} >/dev/null
docker logs -f {quote(srv.name or '')} > {quote(f"{log_dir}/{server.log_name}")} 2>&1 &
if ! {_docker(waiter, f"--rm --name {quote(waiter.name or '')}")}; then
  echo "eval-launcher: the model server did not get ready; its last lines:"
  docker logs --tail 20 {quote(srv.name or '')} 2>&1
  echo 125 > {rc_file}
  cleanup
  if [[ -n $next ]]; then scancel "$next" 2>/dev/null || true; fi
  exit 125
fi
{_docker(evaluation, f"--rm --name {quote(spec.name or '')}")} &
wait $!
rc=$?
cleanup
(exit "$rc")
"""


def render_run_sub(spec: ContainerSpec, settings: SlurmSettings, job_dir: str, title: str,
                   labels: Mapping[str, str] | None = None,
                   server: InJobServer | None = None) -> str:
    """``run.sub`` for ``spec``; ``job_dir``: the job folder on the cluster's shared path;
    ``title``: what the header comment calls it (e.g. ``job abc.0 (task humaneval)``);
    ``server``: the deployment, run inside the job."""
    labels = dict(spec.labels if labels is None else labels)
    log_dir, script = f"{job_dir}/logs", f"{job_dir}/{RUN_SUB}"
    header = "\n".join(sbatch_header(settings, job_name(spec, settings), log_dir, labels))
    every = [*spec.env, *(server.server.env if server is not None else ())]
    host_vars = sorted({v.host_name for v in every if v.host_name and not v.runtime})
    exported = (", ".join(host_vars) or "none") + " (sbatch --export)"
    rc_file = f'{quote(log_dir)}/slurm-"$SLURM_JOB_ID"{RC_SUFFIX}'
    if settings.runtime == "docker" and server is not None:
        body = _docker_with_server(spec, server, log_dir, rc_file)
    elif settings.runtime == "docker":
        name = quote(spec.name or "eval-launcher-job")
        body = f"""\
cleanup() {{ docker rm -f {name} >/dev/null 2>&1 || true; }}
trap 'cleanup; exit 143' TERM INT
cleanup
{_docker(spec, f"--rm --name {name}")} &
wait $!
"""
    elif server is not None:
        body = _pyxis_with_server(spec, server, settings, log_dir, rc_file)
    else:
        run = " \\\n  ".join(_pyxis_words(spec, settings))
        body = f"{_pyxis_env(spec)}{run} &\nwait $!\n"
    return f"""#!/bin/bash
{header}
# {title}; generated by eval-launcher {__version__}.
# Env values are exported into the job by NAME from the submitting environment, never written
# here: {exported}.
set -uo pipefail
export PATH="${{PATH:-{_PATH}}}"
mkdir -p {quote(log_dir)}
{_chain(settings, log_dir, script, labels)}\
{body}\
rc=$?
echo "$rc" > {rc_file}
if [[ -n $next ]]; then scancel "$next" 2>/dev/null || true; fi
exit "$rc"
"""
