"""Planning: turn a validated config into one Invocation of N Jobs. Pure data, no Docker.

A Job says everything needed to start its evaluation container: image, command, env var
NAMES, mounts (as the launcher sees them; translated to host paths later), labels and the
run config the harness reads from ``/results/run_config.yml``.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import Any

import attrs

from launcher import catalog, dockerargs, envvars, hooks, keypaths, taskparams
from launcher.config import Config, deep_merge, task_evaluator_config
from launcher.deployment import gpu_value
from launcher.dockerargs import DockerArgs
from launcher.envvars import EnvVar
from launcher.errors import ConfigError
from launcher.labels import LABEL_INVOCATION, LABEL_JOB, LABEL_TASK

RESULTS_MOUNT = "/results"
API_KEY_FILE_MOUNT = "/run/secrets/eval-launcher-api-key"  # target.api_endpoint.api_key_file
RUN_CONFIG_NAME = "run_config.yml"


@attrs.frozen
class Mount:
    source: str  # a path as the launcher sees it, or a volume name when is_named
    target: str
    read_only: bool = False
    is_named: bool = False


@attrs.frozen
class Job:
    index: int
    job_id: str
    task: str
    image: str
    entrypoint: str
    command: tuple[str, ...]
    env: tuple[EnvVar, ...]
    mounts: tuple[Mount, ...]
    labels: dict[str, str]
    job_dir: str
    run_config: dict[str, Any]
    docker: DockerArgs
    container_name: str
    timeout: float | None = None
    hooks: hooks.Hooks | None = None  # pre_cmd/post_cmd around the command (spec.for_job)
    gpus: str | None = None  # "all" or a count: a GPU device request (tasks[].gpus)

    @property
    def artifacts_dir(self) -> str:
        return os.path.join(self.job_dir, "artifacts")

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.job_dir, "logs")


@attrs.frozen
class Server:
    """The model server of an invocation (``deployment:``), shared by all its jobs: started
    before the first, reached on the invocation's own network as ``alias``, stopped after
    the last (see ``launcher/serverplan.py`` and ``launcher/server.py``)."""

    type: str
    image: str
    entrypoint: str
    command: tuple[str, ...]
    env: tuple[EnvVar, ...]
    mounts: tuple[Mount, ...]
    labels: dict[str, str]
    container_name: str
    network: str
    alias: str
    port: int
    health_path: str
    gpus: str | None
    shm_size: str | None
    readiness_timeout: float

    @property
    def health_url(self) -> str:
        return f"http://{self.alias}:{self.port}{self.health_path}"


@attrs.frozen
class Invocation:
    invocation_id: str
    created: str  # ISO 8601, UTC
    output_dir: str
    dir: str
    jobs: tuple[Job, ...]
    server: Server | None = None


def new_invocation_id() -> str:
    return secrets.token_hex(8)


def build(
    config: Config,
    *,
    source: str,
    invocation_id: str | None = None,
    now: datetime | None = None,
) -> Invocation:
    now = now or datetime.now(UTC)
    inv_id = invocation_id or new_invocation_id()
    output_dir = os.path.abspath(os.path.expanduser(config.execution.output_dir))
    inv_dir = os.path.join(output_dir, f"{now:%Y%m%d_%H%M%S}-{inv_id}")
    extra = dockerargs.parse(config.execution.extra_docker_args, source=source)
    network = None
    if config.deployment.enabled:  # the jobs join the invocation's network, where the server is
        if extra.network:
            raise ConfigError("--network cannot be combined with a deployment: the evaluation "
                              "containers join the invocation's own network, where the model "
                              "server is", source=source, key="execution.extra_docker_args")
        network = f"eval-launcher-{inv_id}"
        extra = attrs.evolve(extra, network=network)
    if config.target.api_endpoint.adapter_config:  # a wrong type fails here, not in a container
        from launcher.harness.adapters import parse_adapter_config

        parse_adapter_config(config.target.api_endpoint.adapter_config, source=source,
                             warn=lambda _message: None)
    jobs = []
    for index, task in enumerate(config.evaluation.tasks):
        key = f"evaluation.tasks[{index}]"
        # Unknown/ambiguous name, endpoint type mismatch, no image: ConfigError at the key.
        endpoint_type = task.endpoint_type or config.target.api_endpoint.type
        spec = catalog.resolve(task.name, container=task.container, endpoint_type=endpoint_type,
                               source=source, key=key,
                               type_key=f"{key}.endpoint_type" if task.endpoint_type
                               else "target.api_endpoint.type")
        job_id = f"{inv_id}.{index}"
        job_dir = os.path.join(inv_dir, f"{spec.name}.{index}")
        run_config_path = f"{RESULTS_MOUNT}/{RUN_CONFIG_NAME}"
        env = envvars.merge(
            [("env_vars", config.env_vars), ("evaluation.env_vars", config.evaluation.env_vars),
             (f"{key}.env_vars", task.env_vars)],
            source=source,
        )
        env = _with_api_key(env, config.target.api_endpoint.api_key_name)
        env.extend(extra.env)
        mounts = [Mount(os.path.join(job_dir, "artifacts"), RESULTS_MOUNT)]
        if task.dataset_dir:
            dataset_dir = os.path.abspath(os.path.expanduser(task.dataset_dir))
            if not os.path.isdir(dataset_dir):
                raise ConfigError(
                    f"dataset folder '{dataset_dir}' does not exist (as the launcher sees it; "
                    "inside the launcher container, mount it with -v)",
                    source=source, key=f"{key}.dataset_dir",
                )
            mounts.append(Mount(dataset_dir, task.dataset_mount_path, read_only=True))
            from launcher.harness.datasets import DATASET_ENV  # the variable the harness reads

            env.append(EnvVar(DATASET_ENV, literal=task.dataset_mount_path))
        mounts.extend(
            Mount(v.source if v.is_named else os.path.abspath(os.path.expanduser(v.source)),
                  v.target, v.read_only, v.is_named)
            for v in extra.volumes
        )
        mounts.extend(_evaluation_mounts(config, source))
        if config.target.api_endpoint.api_key_file is not None:
            mounts.append(_key_file_mount(config.target.api_endpoint.api_key_file, spec,
                                          source=source, key=key))
        evaluator_config = task_evaluator_config(config, task)
        run_config = render_run_config(config, evaluator_config, spec.name, endpoint_type)
        if spec.builtin and config.user_provided_metadata:  # our harness copies it to results
            run_config["user_provided_metadata"] = config.user_provided_metadata
        if task.endpoint_type:
            _check_task_url(run_config, task.endpoint_type, source=source, key=key)
        # A built-in task's params by the harness's own checks, before any container starts.
        taskparams.check(run_config, spec.name, builtin=spec.builtin,
                         task_config=task.nemo_evaluator_config,
                         evaluation_config=config.evaluation.nemo_evaluator_config,
                         index=index, source=source)
        jobs.append(Job(
            index=index,
            job_id=job_id,
            task=spec.name,
            image=task.container or spec.image,
            entrypoint=spec.entrypoint(),
            command=tuple(spec.command(run_config_path)),
            env=tuple(env),
            mounts=tuple(mounts),
            labels={LABEL_INVOCATION: inv_id, LABEL_JOB: job_id, LABEL_TASK: spec.name},
            job_dir=job_dir,
            run_config=run_config,
            docker=extra,
            container_name=f"eval-launcher-{inv_id}-{index}",
            timeout=task.timeout,
            hooks=hooks.for_task(config, index)[0],
            gpus=gpu_value(config.execution.evaluation_gpu_visible if task.gpus is None
                           else task.gpus, f"{key}.gpus", source),
        ))
    server = None
    if network is not None:
        from launcher import serverplan

        server = serverplan.build(config, inv_id, network, source)
    return Invocation(inv_id, now.isoformat(timespec="seconds"), output_dir, inv_dir, tuple(jobs),
                      server)


def _check_task_url(run_config: dict[str, Any], endpoint_type: str, *, source: str,
                    key: str) -> None:
    """A notice when a task's own endpoint type would go to a URL of the other kind (the
    reference sends it there all the same; the task's nemo_evaluator_config can name its own)."""
    url = str(run_config["target"]["api_endpoint"].get("url") or "")
    path = url.split("?", 1)[0].rstrip("/")
    other = ("chat" if path.endswith("/chat/completions") else
             "completions" if path.endswith("/completions") else None)
    if other is not None and other != endpoint_type:
        catalog.notice(f"{endpoint_type} requests of this task go to {url}, a {other} URL; give "
                       f"the task its own in {key}.nemo_evaluator_config.target.api_endpoint.url",
                       source=source, key=f"{key}.endpoint_type")


def _evaluation_mounts(config: Config, source: str, block: str = "evaluation") -> list[Mount]:
    """``execution.mounts.evaluation`` (or ``.deployment``): {path as the launcher sees it:
    container path[:ro]}."""
    mounts = []
    given = getattr(config.execution.mounts, block)
    for host, target in given.items():
        key = keypaths.render(["execution", "mounts", block, host])
        path, _, mode = target.partition(":")
        if mode not in ("", "ro", "rw") or not path.startswith("/"):
            raise ConfigError(f"expected an absolute container path with optional :ro, got "
                              f"'{target}'", source=source, key=key)
        local = os.path.abspath(os.path.expanduser(host))
        if not os.path.exists(local):
            raise ConfigError(f"'{local}' does not exist (as the launcher sees it; inside the "
                              "launcher container, mount it with -v)", source=source, key=key)
        mounts.append(Mount(local, path, read_only=mode == "ro"))
    return mounts


def _key_file_mount(path: str, task: catalog.TaskSpec, *, source: str, key: str) -> Mount:
    """``api_key_file``: the file, read-only at API_KEY_FILE_MOUNT; our harness reads it there
    (the key is in no container's Env). Other images read the key from a variable only."""
    if not task.builtin:
        raise ConfigError(f"task '{task.name}' runs {task.image}, which reads the key from the "
                          "variable named by api_key_name, not from a file: use api_key_name "
                          "for it", source=source, key=key)
    local = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(local):
        raise ConfigError(f"'{local}' is not a file (as the launcher sees it; inside the launcher "
                          "container, mount it with -v HOST_FILE:" + local + ":ro)",
                          source=source, key="target.api_endpoint.api_key_file")
    return Mount(local, API_KEY_FILE_MOUNT, read_only=True)


def _with_api_key(env: list[EnvVar], api_key_name: str | None) -> list[EnvVar]:
    """The harness reads the key from the variable NAMED api_key_name: pass it through."""
    if api_key_name and all(var.name != api_key_name for var in env):
        env.append(EnvVar(api_key_name, host_name=api_key_name))
    return env


def render_run_config(config: Config, evaluator_config: dict[str, Any], task: str,
                      endpoint_type: str | None = None) -> dict[str, Any]:
    """The run config in the evaluation-container contract (no secret values, only names).
    ``endpoint_type``: the task's own (``evaluation.tasks[i].endpoint_type``) when it has one;
    a ``target.api_endpoint`` in its ``nemo_evaluator_config`` still wins, as in the reference."""
    ep = config.target.api_endpoint
    api_endpoint: dict[str, Any] = {"url": ep.url, "model_id": ep.model_id,
                                    "type": endpoint_type or ep.type,
                                    "api_key_name": ep.api_key_name}
    if ep.api_key_file is not None:
        api_endpoint["api_key_file"] = API_KEY_FILE_MOUNT
    if ep.adapter_config:
        api_endpoint["adapter_config"] = ep.adapter_config
    base = {"config": {"params": {}}, "target": {"api_endpoint": api_endpoint}}
    merged = deep_merge(base, evaluator_config)
    merged["config"]["type"] = task
    merged["config"]["output_dir"] = RESULTS_MOUNT
    return merged
