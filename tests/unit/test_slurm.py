"""The Slurm executor's pure parts: settings from the reference's keys, ``run.sub`` (golden
files for both container runtimes), the CLI output parsers, and chains of resubmitted jobs."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from launcher import slurm_script
from launcher.backends.slurm import SlurmBackend
from launcher.backends.slurm_cli import Runner, SlurmJob, parse_sacct, parse_sbatch, parse_squeue
from launcher.config import Execution, Mounts, SlurmDeployment
from launcher.envvars import EnvVar
from launcher.errors import ConfigError
from launcher.hostpaths import HostSource
from launcher.slurm_settings import SlurmSettings, check_local, seconds, settings
from launcher.spec import ContainerSpec, MountSpec

GOLDEN = Path(__file__).parent / "fixtures" / "slurm"
JOB_DIR = "/lustre/evals/20260101_000000-abc/humaneval.0"
SPEC = ContainerSpec(
    image="eval-launcher:latest", entrypoint="launcher",
    command=("harness", "run_eval", "--run_config", "/results/run_config.yml"),
    name="eval-launcher-abc-0",
    env=(EnvVar("HOME", literal="/tmp"), EnvVar("API_KEY", host_name="MY_KEY"),
         EnvVar("NGC_API_KEY", host_name="NGC_API_KEY"),
         EnvVar("SCRATCH", host_name="SCRATCH_DIR", runtime=True)),
    mounts=(MountSpec("/results", HostSource("bind", f"{JOB_DIR}/artifacts")),
            MountSpec("/datasets", HostSource("bind", "/lustre/data/gsm8k"), read_only=True)),
    labels={"eval-launcher.invocation": "abc", "eval-launcher.job": "abc.0",
            "eval-launcher.task": "humaneval"},
    user="1000:1000", network="evals", add_hosts=(("host.docker.internal", "host-gateway"),))


def slurm(**kw: object) -> Execution:
    base: dict = {"type": "slurm", "output_dir": "/lustre/evals", "account": "my-acct",
                  "partition": "batch", "gres": "gpu:8", "walltime": "01:00:00",
                  "sbatch_extra_flags": {"exclusive": True, "constraint": "h100 nvl",
                                         "switches": 1, "reservation": None,
                                         "oversubscribe": False}}
    return Execution(**{**base, **kw})


@pytest.mark.parametrize("runtime", ["docker", "pyxis"])
def test_run_sub_matches_its_golden_file(runtime: str) -> None:
    text = slurm_script.render_run_sub(SPEC, settings(slurm(container_runtime=runtime), "c.yaml"),
                                       JOB_DIR, "job abc.0 (task humaneval)")
    golden = GOLDEN / f"{runtime}.sub"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def test_run_sub_names_env_vars_and_never_values() -> None:
    text = slurm_script.render_run_sub(SPEC, settings(slurm(container_runtime="docker"), "c"),
                                       JOB_DIR, "job")
    assert "-e API_KEY=\"${MY_KEY}\"" in text and "-e NGC_API_KEY " in text
    assert "MY_KEY, NGC_API_KEY (sbatch --export)" in text
    pyxis = slurm_script.render_run_sub(SPEC, settings(slurm(), "c"), JOB_DIR, "job")
    assert 'export API_KEY="${MY_KEY}"' in pyxis
    assert "--container-env API_KEY,HOME,NGC_API_KEY,SCRATCH" in pyxis


def test_sbatch_header_flags_and_optional_keys() -> None:
    lines = slurm_script.sbatch_header(
        settings(slurm(account=None, gres=None, partition=None, sbatch_extra_flags={}), "c"),
        "n", "/d/logs", {"a": "1"})
    assert lines == ["#SBATCH --job-name n", "#SBATCH --time 01:00:00", "#SBATCH --nodes 1",
                     "#SBATCH --ntasks-per-node 1", "#SBATCH --no-requeue",
                     "#SBATCH --output /d/logs/slurm-%j.log", "#SBATCH --comment a=1"]


def test_walltime_forms() -> None:
    assert seconds("01:00:00") == 3600 and seconds("2-00:00:00") == 172800
    assert seconds("30") == 1800 and seconds("05:30") == 330 and seconds("1-2") == 93600
    assert settings(slurm(walltime=3600), "c").walltime == "01:00:00"  # YAML 1.1's 01:00:00
    assert settings(slurm(max_walltime=None), "c").max_walltime is None
    with pytest.raises(ConfigError, match="execution.walltime"):
        settings(slurm(walltime="soon"), "c")
    with pytest.raises(ConfigError, match="execution.max_walltime"):
        settings(slurm(max_walltime="0"), "c")


@pytest.mark.parametrize(("kw", "key"), [
    ({"container_runtime": "enroot"}, "execution.container_runtime"),
    ({"output_dir": "./results"}, "execution.output_dir"),
    ({"num_nodes": 0}, "execution.num_nodes"),
    ({"sbatch_extra_flags": {"--bad": 1}}, "execution.sbatch_extra_flags.--bad"),
    ({"sbatch_extra_flags": {"x": [1]}}, "execution.sbatch_extra_flags.x"),
    ({"gpus_per_node": 0}, "execution.gpus_per_node"),
    ({"num_instances": 2}, "execution.num_instances"),
    ({"eval_ray_cluster": True}, "execution.eval_ray_cluster"),
    ({"mounts": Mounts(auxiliary={"judge": {"/a": "/b"}})}, "execution.mounts.auxiliary"),
    ({"sbatch_comment": "cost|center=7"}, "execution.sbatch_comment"),
    ({"sbatch_comment": "two\nlines"}, "execution.sbatch_comment"),
    ({"sbatch_comment": "eval-launcher.job=x.0"}, "execution.sbatch_comment"),
    ({"num_nodes": 2, "deployment": SlurmDeployment(n_tasks=1)},
     "execution.deployment.n_tasks"),
])
def test_bad_slurm_values_name_their_key(kw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(slurm(**kw), "c.yaml")
    assert err.value.key == key


def test_slurm_keys_under_the_local_executor_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        check_local(Execution(partition="batch"), "c.yaml")
    assert err.value.key == "execution.partition" and "execution.type: slurm" in err.value.message
    with pytest.raises(ConfigError):
        check_local(Execution(mounts=Mounts(mount_home=False)), "c.yaml")
    for kw in ({"sbatch_comment": "x"}, {"num_instances": 2}, {"subproject": "p"}):
        with pytest.raises(ConfigError, match="execution.type: slurm"):
            check_local(Execution(**kw), "c.yaml")
    with pytest.raises(ConfigError) as err:
        check_local(Execution(deployment=SlurmDeployment(n_tasks=2)), "c.yaml")
    assert err.value.key == "execution.deployment.n_tasks"
    check_local(Execution(), "c.yaml")


def test_the_reference_header_keys() -> None:
    """gpus_per_node replaces gres; sbatch_comment goes before the labels (which are still
    read back from it, as squeue prints them); subproject names the job as the reference
    does."""
    ours = settings(slurm(gpus_per_node=4, sbatch_comment="team=evals, ticket 12",
                          subproject="nel", num_nodes=2,
                          deployment=SlurmDeployment(n_tasks=4)), "c")
    text = slurm_script.render_run_sub(SPEC, ours, JOB_DIR, "job", server=SERVER)
    assert "#SBATCH --gpus-per-node 4\n" in text and "--gres" not in text
    assert "#SBATCH --job-name my-acct-nel.eval-launcher-abc-0\n" in text
    line = next(x for x in text.splitlines() if x.startswith("#SBATCH --comment "))
    assert line.startswith("#SBATCH --comment 'team=evals, ticket 12,eval-launcher.")
    listed = parse_squeue(f"12|RUNNING|{shlex.split(line)[2]}|{JOB_DIR}/run.sub\n")
    assert slurm_script.parse_comment(listed[0].comment) == SPEC.labels
    assert "--comment 'team=evals, ticket 12,eval-launcher." in text.split("next=", 1)[1]
    server_step = text.split("--container-image vllm", 1)[0].rsplit("srun", 1)[1]
    assert "--nodes 2" in server_step and "--ntasks 4" in server_step
    eval_step = text.split("--container-image eval-launcher", 1)[0].rsplit("srun", 1)[1]
    assert "--nodes 1" in eval_step and "--ntasks 1" in eval_step  # the client runs once
    assert settings(slurm(num_nodes=3), "c").server_tasks == 3  # the reference's default


def test_a_deployment_in_a_slurm_job_waits_up_to_the_walltime_by_default() -> None:
    """As the reference: the image import and the model download happen inside the job."""
    assert slurm(walltime="04:00:00").readiness_timeout(deployed=True) == 14400
    assert slurm(walltime=3600).readiness_timeout(deployed=True) == 3600  # YAML 1.1's 01:00:00
    assert slurm(endpoint_readiness_timeout=90).readiness_timeout(deployed=True) == 90
    assert slurm().readiness_timeout(deployed=False) == 30
    assert Execution().readiness_timeout(deployed=True) == 600


def test_ssh_destination() -> None:
    assert SlurmSettings(hostname="login", username="me").destination == "me@login"
    assert SlurmSettings(hostname="login").destination == "login"
    assert not SlurmSettings().remote


def test_cli_parsers() -> None:
    text = ("12|RUNNING|a=1|/d/run.sub\n13_1|PENDING|a=1|/d/run.sub\n"
            "14|PENDING|a=1,eval-launcher.resubmit-of=12|/d/run.sub\n")
    assert parse_squeue(text) == [SlurmJob(12, "RUNNING", "a=1", "/d/run.sub"),
                                  SlurmJob(14, "PENDING", "a=1,eval-launcher.resubmit-of=12",
                                           "/d/run.sub")]
    assert parse_sbatch("42\n") == 42 and parse_sbatch("43;cluster") == 43
    assert parse_sacct("5|TIMEOUT\n5.batch|CANCELLED\n6|CANCELLED by 0\n") == {
        5: "TIMEOUT", 6: "CANCELLED"}
    with pytest.raises(ValueError):
        parse_sbatch("sbatch: error")


class FakeRunner:
    """squeue answers scripted; nothing else is called in these tests."""

    where = "fake"

    def __init__(self, jobs: list[SlurmJob]) -> None:
        self.jobs = jobs

    def squeue(self) -> list[SlurmJob]:
        return self.jobs


def chain_backend(jobs: list[SlurmJob], tmp_path: Path) -> SlurmBackend:
    return SlurmBackend(SlurmSettings(runtime="docker"), str(tmp_path),
                        runner=FakeRunner(jobs))  # type: ignore[arg-type]


def test_a_resubmitted_job_continues_its_chain(tmp_path: Path) -> None:
    labels = "eval-launcher.invocation=abc,eval-launcher.job=abc.0"
    script = f"{tmp_path}/humaneval.0/run.sub"
    jobs = [SlurmJob(7, "COMPLETED", labels, script),  # an older chain (before a resume)
            SlurmJob(10, "TIMEOUT", labels, script),
            SlurmJob(11, "RUNNING", f"{labels},eval-launcher.resubmit-of=10", script),
            SlurmJob(12, "PENDING", f"{labels},eval-launcher.resubmit-of=11", script)]
    backend = chain_backend(jobs, tmp_path)
    found = backend.find({"eval-launcher.invocation": "abc"})
    assert [w.handle for w in found] == ["7", "10"]
    assert found[1].fact.status == "running" and "eval-launcher.resubmit-of" not in found[1].labels
    assert backend.job_states("abc")["abc.0"].status == "running"  # the newest chain
    (tmp_path / "humaneval.0" / "logs").mkdir(parents=True)
    (tmp_path / "humaneval.0" / "logs" / "slurm-7.rc").write_text("3\n")
    fact = backend.state("7")
    assert fact is not None and (fact.status, fact.exit_code) == ("exited", 3)


def test_chain_end_states(tmp_path: Path) -> None:
    labels = "eval-launcher.job=abc.0"
    done = [SlurmJob(10, "COMPLETED", labels, "/x/run.sub"),
            SlurmJob(11, "CANCELLED", f"{labels},eval-launcher.resubmit-of=10", "/x/run.sub")]
    fact = chain_backend(done, tmp_path).state("10")
    assert fact is not None and (fact.status, fact.exit_code) == ("exited", 0)
    timed_out = [SlurmJob(10, "TIMEOUT", labels, "/x/run.sub")]
    fact = chain_backend(timed_out, tmp_path).state("10")
    assert fact is not None and fact.exit_code == slurm_script.EXIT_TIMEOUT


def test_a_deployment_is_reached_on_loopback_with_pyxis_and_by_name_with_docker(
        tmp_path: Path) -> None:
    """pyxis containers share the node's network (the server runs in a step of the same job,
    as in the reference); docker's run on the job's own network, the server by its alias."""
    import yaml

    from launcher.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "defaults": [{"execution": "slurm/default"}, {"deployment": "generic"}, "_self_"],
        "execution": {"output_dir": "/lustre/x"},
        "deployment": {"image": "srv:1", "served_model_name": "m", "command": "serve",
                       "port": 9000},
        "evaluation": {"tasks": [{"name": "humaneval"}]}}))
    config, _ = load_config(str(path))
    assert config.execution.container_runtime == "pyxis"
    assert config.target.api_endpoint.url == "http://127.0.0.1:9000/v1/chat/completions"
    config, _ = load_config(str(path), ["execution.container_runtime=docker"])
    assert config.target.api_endpoint.url == (
        "http://eval-launcher-server:9000/v1/chat/completions")


SERVER = slurm_script.InJobServer(
    server=ContainerSpec(
        image="vllm/vllm-openai:v0.9.0", entrypoint="vllm",
        command=("serve", "/checkpoint", "--port", "8000", "--served-model-name", "m"),
        name="eval-launcher-abc-server",
        env=(EnvVar("HF_TOKEN", host_name="HF_TOKEN"), EnvVar("VLLM_LOG", literal="info")),
        mounts=(MountSpec("/checkpoint", HostSource("bind", "/lustre/ckpt"), read_only=True),),
        labels={"eval-launcher.invocation": "abc", "eval-launcher.role": "server"}),
    waiter=ContainerSpec(image="eval-launcher:latest", entrypoint="launcher",
                         command=("probe-endpoint",), name="eval-launcher-abc-waiter"),
    port=8000, health_path="/health", timeout=600.0)


def test_run_sub_with_a_pyxis_deployment_matches_its_golden_file() -> None:
    """The server's srun step in the background with its log, a curl poll of its health on
    the node's loopback, then the evaluation step; both --overlap."""
    text = slurm_script.render_run_sub(SPEC, settings(slurm(), "c.yaml"), JOB_DIR,
                                       "job abc.0 (task humaneval)", server=SERVER)
    golden = GOLDEN / "pyxis_deployment.sub"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()
    assert "HF_TOKEN, MY_KEY, NGC_API_KEY (sbatch --export)" in text
    assert text.index("--container-image vllm/vllm-openai:v0.9.0") < text.index(
        "curl") < text.index("--container-image eval-launcher:latest")


class UnsharedRunner:
    """A cluster over ssh that does not see this machine's output folder."""

    where = "login (ssh)"

    def __init__(self, sees: bool) -> None:
        self.sees, self.calls = sees, []

    def run(self, argv, env=None, timeout=60):
        from launcher.backends.slurm_cli import Result

        self.calls.append(list(argv))
        return Result(0 if self.sees else 1, "", "")

    def sbatch(self, script, export, env):
        self.calls.append(["sbatch", script])
        return 42


def test_over_ssh_an_output_folder_the_cluster_does_not_share_is_one_line(
        tmp_path: Path) -> None:
    """Checked at the first submission, before any sbatch: the folder must be shared at the
    same path (the launcher copies nothing); a probe's scratch folder is removed again."""
    from launcher.errors import EnvironmentProblem

    remote = SlurmSettings(hostname="login", username="me", runtime="docker")
    runner = UnsharedRunner(sees=False)
    backend = SlurmBackend(remote, str(tmp_path), runner=runner)  # type: ignore[arg-type]
    probe = ContainerSpec(image="eval-launcher:latest", command=("probe-endpoint",),
                          labels={"eval-launcher.role": "probe"})
    with pytest.raises(EnvironmentProblem) as err:
        backend.start(probe, {})
    assert "me@login does not see" in str(err.value) and "execution.output_dir" in str(err.value)
    assert [c[0] for c in runner.calls] == ["test"]  # nothing submitted
    from launcher.backends.slurm import SCRATCH

    assert not (tmp_path / SCRATCH).exists() or not list((tmp_path / SCRATCH).iterdir())
    runner = UnsharedRunner(sees=True)
    backend = SlurmBackend(remote, str(tmp_path), runner=runner)  # type: ignore[arg-type]
    assert backend.start(probe, {}) == "42" and backend.start(probe, {}) == "42"
    assert [c[0] for c in runner.calls] == ["test", "sbatch", "sbatch"]  # checked once


class RecordingRunner(Runner):
    """The real runner's commands, recorded instead of run; squeue lists one running
    probe job."""

    def __init__(self) -> None:
        super().__init__(SlurmSettings())
        self.calls: list[list[str]] = []

    def squeue(self) -> list[SlurmJob]:
        return [SlurmJob(5, "RUNNING", "eval-launcher.invocation=abc,eval-launcher.role=probe",
                         "/x/run.sub")]

    def scancel(self, job_ids) -> None:
        self.calls.append(["scancel", *map(str, job_ids)])

    def run(self, argv, env=None, timeout=60):
        from launcher.backends.slurm_cli import Result

        self.calls.append(list(argv))
        return Result(0, "", "")


def test_removing_a_probe_removes_only_this_invocations_containers(tmp_path: Path) -> None:
    """The docker runtime's leftover container of a cancelled job: by role AND invocation
    (by role alone it removed every probe on the engine, other users' too)."""
    runner = RecordingRunner()
    backend = SlurmBackend(SlurmSettings(runtime="docker"), str(tmp_path),
                           runner=runner)  # type: ignore[arg-type]
    backend.remove("5")
    assert runner.calls[0] == ["scancel", "5"]
    script = runner.calls[1][2]
    assert ("docker ps -aq --filter label=eval-launcher.invocation=abc "
            "--filter label=eval-launcher.role=probe |") in script
