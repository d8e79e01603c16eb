"""Integration fixtures: the real Docker Engine, the image built from this repo, a reference
endpoint container, and the launcher started AS A CONTAINER with the host's socket mounted.

No registry here: testcontainers runs without Ryuk, so every container and network a test
makes is removed by its fixture, and leftovers are swept by label at session end.

Other people run eval-launcher containers on the same engine: every container, network and
volume this session creates (directly, or through the launcher via ``EVAL_LAUNCHER_LABELS``)
carries ``eval-launcher.test-session=<uuid4>``, and the sweep and the assertions look only
at those.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import attrs  # noqa: E402
import docker  # noqa: E402
import pytest  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402

from launcher.testing.synthetic import write_gsm8k  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEST_LABEL = "eval-launcher.test"
ENDPOINT_ALIAS = "refep"
SESSION_KEY = "eval-launcher.test-session"
SESSION_ID = uuid.uuid4().hex
SESSION = f"{SESSION_KEY}={SESSION_ID}"  # a label filter, and EVAL_LAUNCHER_LABELS' value
SESSION_LABELS = {SESSION_KEY: SESSION_ID}
os.environ["EVAL_LAUNCHER_LABELS"] = SESSION  # the launcher run from this process, too


def ours(label: str | None = None) -> dict[str, list[str]]:
    """A ``filters=`` value: this session's resources (carrying ``label`` too, if given)."""
    return {"label": [SESSION, *([label] if label else [])]}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the integration tests need a running Docker Engine (set DOCKER_HOST or "
                    f"start dockerd): {exc}", pytrace=False)
    yield client
    for container in client.containers.list(all=True, ignore_removed=True, filters=ours()):
        container.remove(force=True)
    for net in client.networks.list(filters=ours()):
        with contextlib.suppress(docker.errors.APIError):
            net.remove()


@pytest.fixture(scope="session")
def launcher_image(docker_client: docker.DockerClient) -> str:
    """The image built from this checkout by the project's own build script (warm: seconds)."""
    tag = os.environ.get("EVAL_LAUNCHER_TEST_IMAGE", "eval-launcher:latest")
    if os.environ.get("EVAL_LAUNCHER_SKIP_BUILD") != "1":
        # one build at a time (pytest -n: each worker has this session fixture)
        lock = Path(tempfile.gettempdir()) / "eval-launcher-test-build.lock"
        with open(lock, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            proc = subprocess.run(["bash", str(REPO / "scripts" / "build-images.sh"),
                                   "--quiet", "--tag", tag], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"building {tag} failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    docker_client.images.get(tag)
    return tag


@pytest.fixture(scope="session")
def gsm8k_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a GSM8K-shaped ``test.jsonl`` the tests write themselves (not GSM8K)."""
    folder = tmp_path_factory.mktemp("gsm8k")
    write_gsm8k(folder)
    folder.chmod(0o755)  # read by evaluation containers running as another uid
    return folder


@pytest.fixture
def network() -> Iterator[Network]:
    with Network(docker_network_kw={"labels": SESSION_LABELS}) as net:
        yield net


@attrs.frozen
class Endpoint:
    container: DockerContainer
    url: str  # as seen from containers on the network

    def stats(self) -> dict:
        """The endpoint's own request counts (``GET /stats``): outcomes and ok answers per item."""
        code, out = self.container.exec(["python", "-c", (
            "import urllib.request as u, sys; sys.stdout.write("
            "u.urlopen('http://127.0.0.1:8000/stats', timeout=5).read().decode())")])
        assert code == 0, out
        return json.loads(out)


def _wait_healthy(container: DockerContainer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    probe = "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=1)"
    while time.monotonic() < deadline:
        code, _ = container.exec(["python", "-c", probe])
        if code == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"reference endpoint not healthy:\n{container.get_logs()}")


@pytest.fixture
def reference_endpoint(launcher_image: str, network: Network, gsm8k_dir: Path):
    """Factory: start a reference endpoint container with a given accuracy on ``network``."""
    started: list[DockerContainer] = []

    def start(accuracy: float, latency_ms: float = 0, *extra: str, gsm8k: bool = True,
              volumes: tuple[tuple[str, str], ...] = (),
              env: dict[str, str] | None = None) -> Endpoint:
        """``gsm8k``: load the GSM8K-shaped data; ``volumes``: (host, container) read-only;
        ``env``: its environment (e.g. the key ``--api-key-env`` names)."""
        data = ["--dataset-dir", "/data/gsm8k"] if gsm8k else []
        container = (
            DockerContainer(launcher_image)
            .with_command(["reference-endpoint", "--port", "8000", "--accuracy", str(accuracy),
                           "--latency-ms", str(latency_ms), *data, *extra])
            .with_volume_mapping(str(gsm8k_dir), "/data/gsm8k", "ro")
            .with_network(network)
            .with_network_aliases(ENDPOINT_ALIAS)
            .with_kwargs(labels={TEST_LABEL: "endpoint", **SESSION_LABELS}, init=True)
        )
        for host, target in volumes:
            container = container.with_volume_mapping(host, target, "ro")
        for name, value in (env or {}).items():
            container = container.with_env(name, value)
        container.start()
        started.append(container)
        _wait_healthy(container)
        return Endpoint(container, f"http://{ENDPOINT_ALIAS}:8000/v1/chat/completions")

    yield start
    for container in started:
        container.stop()


@attrs.frozen
class LauncherRun:
    exit_code: int
    stdout: str
    stderr: str


def launcher_container(image: str, args: list[str], *, volumes: list[tuple[str, str, str]],
                       socket: bool = True, workdir: str | None = None,
                       env: dict[str, str] | None = None,
                       user: str | None = None) -> DockerContainer:
    """``-v /var/run/docker.sock:... <volumes> eval-launcher <args>``, not started yet."""
    container = DockerContainer(image).with_command(args)
    if socket:
        container = container.with_volume_mapping("/var/run/docker.sock",
                                                  "/var/run/docker.sock", "rw")
    for host, target, mode in volumes:
        container = container.with_volume_mapping(host, target, mode)
    # The built-in tasks (and a detached run's supervisor) run this session's image, not
    # whatever eval-launcher:latest is on a shared engine.
    defaults = {"EVAL_LAUNCHER_LABELS": SESSION, "EVAL_LAUNCHER_IMAGE": image}
    for key, value in {**defaults, **(env or {})}.items():
        container = container.with_env(key, value)
    kwargs: dict = {"labels": {TEST_LABEL: "launcher", **SESSION_LABELS}}
    if workdir:
        kwargs["working_dir"] = workdir
    if user:
        kwargs["user"] = user
    return container.with_kwargs(**kwargs)


def run_launcher_container(image: str, args: list[str], *, volumes: list[tuple[str, str, str]],
                           socket: bool = True, workdir: str | None = None,
                           env: dict[str, str] | None = None, timeout: float = 600,
                           user: str | None = None) -> LauncherRun:
    """``docker run --rm -v /var/run/docker.sock:... <volumes> eval-launcher <args>``."""
    container = launcher_container(image, args, volumes=volumes, socket=socket, workdir=workdir,
                                   env=env, user=user)
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        status = wrapped.wait(timeout=timeout)
        out = wrapped.logs(stdout=True, stderr=False).decode()
        err = wrapped.logs(stdout=False, stderr=True).decode()
        return LauncherRun(int(status["StatusCode"]), out, err)
    finally:
        container.stop()


def wait_http(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_for(predicate, timeout: float = 60.0, every: float = 0.2):
    """``predicate()``'s first truthy value, polled every ``every`` s; AssertionError after
    ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")
