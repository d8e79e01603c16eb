"""``deployment:``: a model server the launcher starts for the invocation. The typed block
(the reference's keys), how it fills ``target.api_endpoint`` and its checks. Pure.

Types and their packaged defaults (``launcher/data/configs/deployment/<type>.yaml``, the
reference's defaults): ``vllm``, ``sglang``, ``trtllm`` (an image and a serve command built
from the parallelism keys), ``nim`` (the NIM image's start script), ``generic`` (your image
and command). ``none`` (the default) evaluates an endpoint that already runs.

With a deployment, ``target.api_endpoint.url`` and ``model_id`` come from it: the server is
reached by the evaluation containers on the invocation's private network, by the name
``SERVER_HOST``, at ``deployment.port`` and the endpoint path of the target's type; on Slurm
with pyxis (containers on the node's own network, the server in a step of the same job) at
``127.0.0.1``, as in the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from launcher.errors import ConfigError

SERVER_HOST = "eval-launcher-server"  # the server's name on the invocation's network
LOOPBACK = "127.0.0.1"  # Slurm with pyxis: the server in another step on the same node
TYPES = ("none", "vllm", "sglang", "nim", "trtllm", "generic")
GPU_TYPES = ("vllm", "sglang", "nim", "trtllm")
CHECKPOINT_MOUNT = "/checkpoint"
CACHE_MOUNT = "/cache"


@attrs.frozen
class Endpoints:
    chat: str = "/v1/chat/completions"
    completions: str = "/v1/completions"
    health: str = "/health"
    embedding: str | None = None
    ranking: str | None = None


@attrs.frozen
class Deployment:
    type: str = "none"
    image: str | None = None
    command: str | None = None
    base_command: str | None = None  # vllm's command before any addition (the reference's)
    port: int = 8000
    served_model_name: str | None = None
    hf_model_handle: str | None = None
    checkpoint_path: str | None = None  # mounted read-only at /checkpoint
    cache_path: str | None = None  # mounted at /cache
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    data_parallel_size: int | None = None
    gpu_memory_utilization: float | None = None
    extra_args: str = ""
    env_vars: dict[str, str] = attrs.field(factory=dict)
    endpoints: Endpoints = attrs.field(factory=Endpoints)
    gpus: Any = None  # "all", a count, or null (none); the GPU types default to "all"
    shm_size: str | None = None

    @property
    def enabled(self) -> bool:
        return self.type != "none"

    def gpu_request(self) -> str | None:
        """``all``, a count as text, or None: the server's GPU device request."""
        return gpu_value(self.gpus, "deployment.gpus", "")


def fill_target(data: dict[str, Any], source: str) -> None:
    """With a deployment, ``target.api_endpoint.url``/``model_id`` come from it (as in the
    reference, where writing them is an error): set them as interpolations, resolved with the
    rest of the config."""
    deployment = data.get("deployment")
    if not isinstance(deployment, Mapping) or deployment.get("type", "none") == "none":
        return
    target = data.setdefault("target", {})
    endpoint = target.setdefault("api_endpoint", {}) if isinstance(target, dict) else None
    if not isinstance(endpoint, dict):
        return  # the type check reports it at its key
    for key in ("url", "model_id"):
        if endpoint.get(key, "???") != "???":
            raise ConfigError(
                f"comes from the deployment (deployment.type: {deployment.get('type')}): "
                f"remove it{'; set deployment.served_model_name' if key == 'model_id' else ''}",
                source=source, key=f"target.api_endpoint.{key}")
    kind = endpoint.get("type", "chat")
    kind = kind if kind in ("chat", "completions") else "chat"
    host = LOOPBACK if on_node_network(data.get("execution")) else SERVER_HOST
    endpoint["url"] = f"http://{host}:${{deployment.port}}${{deployment.endpoints.{kind}}}"
    endpoint["model_id"] = "${deployment.served_model_name}"


def on_node_network(execution: Any) -> bool:
    """Slurm with pyxis (the Slurm default), from an ``execution`` block (a config's or a
    record's): the server shares the node's network."""
    if not isinstance(execution, Mapping) or execution.get("type") != "slurm":
        return False
    return execution.get("container_runtime", "pyxis") != "docker"


def gpu_value(value: Any, key: str, source: str) -> str | None:
    """``all``/``true``, a count, device indices (a list ``[0, 1]``, ``"0,1"`` or
    ``"device=0,1"``), or none (``null``, ``false``, ``none``, 0) as the ``--gpus`` value of
    a device request: "all", a count, "device=0,1", or None; ConfigError at ``key``
    otherwise."""
    if value is None or value is False or value == "none" or value == 0:
        return None
    if value is True or value == "all":
        return "all"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return None if int(value) == 0 else str(int(value))
    indices = value if isinstance(value, list) else (
        value.removeprefix("device=").split(",") if isinstance(value, str) else None)
    if indices and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                       or isinstance(i, str) and i.strip().isdigit() for i in indices):
        return "device=" + ",".join(str(int(i)) for i in indices)
    raise ConfigError(f"expected 'all', a number of GPUs, device indices ([0, 1] or "
                      f"\"device=0,1\") or null, got {value!r}", source=source, key=key)


def check(deployment: Deployment, source: str, execution: Any = None,
          tasks: Sequence[Any] = ()) -> None:
    """What the types cannot say: a known type, an image and a command, a model to serve;
    GPU requests of the server and of the evaluation containers."""
    if execution is not None:
        gpu_value(execution.evaluation_gpu_visible, "execution.evaluation_gpu_visible", source)
    for i, task in enumerate(tasks):
        gpu_value(task.gpus, f"evaluation.tasks[{i}].gpus", source)
    if deployment.type not in TYPES:
        raise ConfigError(f"expected one of {', '.join(TYPES)}, got '{deployment.type}'",
                          source=source, key="deployment.type")
    if not deployment.enabled:
        return
    for key in ("image", "command", "served_model_name"):
        if not getattr(deployment, key):
            raise ConfigError(f"a deployment of type {deployment.type} needs a value here",
                              source=source, key=f"deployment.{key}")
    if deployment.type in ("vllm", "sglang") and not (deployment.checkpoint_path
                                                      or deployment.hf_model_handle):
        raise ConfigError("set deployment.checkpoint_path (a local checkpoint, mounted at "
                          "/checkpoint) or deployment.hf_model_handle (a Hugging Face model)",
                          source=source, key="deployment.checkpoint_path")
    if deployment.type == "trtllm" and not deployment.checkpoint_path:
        raise ConfigError("trtllm serves a local checkpoint: set deployment.checkpoint_path",
                          source=source, key="deployment.checkpoint_path")
    if not 0 < deployment.port < 65536:
        raise ConfigError(f"expected a TCP port, got {deployment.port}", source=source,
                          key="deployment.port")
    gpu_value(deployment.gpus, "deployment.gpus", source)
    for name, path in attrs.asdict(deployment.endpoints).items():
        if path is not None and not str(path).startswith("/"):
            raise ConfigError(f"expected a path starting with '/', got '{path}'",
                              source=source, key=f"deployment.endpoints.{name}")
