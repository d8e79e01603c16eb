"""NeMo Evaluator Launcher-shaped configs (tests/unit/fixtures/nemo_configs/, written for this
suite in the shapes of the reference's public examples), through the real CLI: the supported
key families dry-run clean with no secret in the output; the families this launcher does not
have yet are refused in one line that says what to do instead, before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).parent / "fixtures" / "nemo_configs"
SECRET = "nvapi-nemo-shaped-0123456789abcdef"
ENV = {"NGC_API_KEY": SECRET, "HF_TOKEN": "hf-secret-value-123456",
       "HF_TOKEN_FOR_GPQA_DIAMOND": "hf-gpqa-secret-654321",
       "JUDGE_API_KEY": "judge-secret-value-778899", "API_KEY": "api-secret-value-445566"}


def launcher(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NEMO_EVALUATOR_TRUST_PRE_CMD"}
    env.update(ENV, DOCKER_HOST=f"unix://{tmp_path}/nowhere.sock")  # never reached
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=tmp_path)


GOOD = {
    "local_llama_style": ["ifeval", "gpqa_diamond", "mbpp-chat"],
    "helpers_and_siblings": ["gsm8k", "humaneval", "mmlu_pro"],
    "env_mounts_docker_args": ["ifeval", "mgsm"],
    "metadata_and_hooks": ["gsm8k"],
    "vllm_deployment": ["ifeval", "gsm8k"],
    "slurm_eval_only": ["ifeval", "gsm8k"],
    "slurm_docker_runtime": ["humaneval"],
    "slurm_vllm": ["ifeval", "gsm8k"],
    "slurm_pyxis_vllm": ["ns_ifbench", "ns_hle", "tau2_bench_telecom", "ruler-64k-chat"],
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_supported_families_dry_run_clean(tmp_path: Path, name: str) -> None:
    config = CONFIGS / f"{name}.yaml"
    out = tmp_path / "out"
    (tmp_path / "hf_cache").mkdir()  # execution.mounts.evaluation's ./hf_cache
    valid = launcher(tmp_path, "config", "validate", str(config))
    assert valid.returncode == 0, valid.stderr
    assert f"({len(GOOD[name])} tasks: {', '.join(GOOD[name])})" in valid.stdout
    dry = launcher(tmp_path, "run", "--config", str(config), "--dry-run",
                   "-o", f"execution.output_dir={out}")
    assert dry.returncode == 0, dry.stderr
    assert "Traceback" not in dry.stderr
    for value in ENV.values():
        assert value not in dry.stdout + dry.stderr + valid.stdout + valid.stderr
    document = yaml.safe_load(dry.stdout)
    if name in ("vllm_deployment", "slurm_vllm"):  # the endpoint is the launcher's own model server
        assert document["config"]["target"]["api_endpoint"]["url"] == (
            "http://eval-launcher-server:8000/v1/chat/completions")
    elif name == "slurm_pyxis_vllm":  # ... in a step of the same job, on the node's loopback
        assert document["config"]["target"]["api_endpoint"]["url"] == (
            "http://127.0.0.1:8000/v1/chat/completions")
    else:
        assert document["config"]["target"]["api_endpoint"]["api_key_name"] == "NGC_API_KEY"
    if name.startswith("slurm"):  # the batch scripts it would submit
        subs = {k: v for k, v in document["scripts"].items() if k.endswith("/run.sub")}
        assert len(subs) == len(GOOD[name])
        assert all(v.startswith("#!/bin/bash\n#SBATCH --job-name ") for v in subs.values())
        if name == "slurm_vllm":  # the server in each job, ready before the evaluation
            assert all("vllm/vllm-openai" in v and "--gpus all" in v and "probe-endpoint" in v
                       for v in subs.values())
        if name == "slurm_pyxis_vllm":  # the server's srun step, its health, then the task's
            for v in subs.values():
                assert v.index("--container-image vllm/vllm-openai:v0.13.0") < v.index(
                    "http://127.0.0.1:8000/health") < v.index("run_eval")
                assert "API_KEY,HF_TOKEN,HOME,JUDGE_API_KEY" in v and "docker" not in v
                assert "#SBATCH --job-name my_account-nemo-evaluator-launcher.eval-" in v
    assert not out.exists()  # a dry run writes nothing


def test_families_resolve_as_the_reference_means_them(tmp_path: Path) -> None:
    dry = launcher(tmp_path, "run", "--config", str(CONFIGS / "helpers_and_siblings.yaml"),
                   "--dry-run", "-o", f"execution.output_dir={tmp_path / 'out'}")
    document = yaml.safe_load(dry.stdout)
    text = dry.stdout
    assert document["config"]["target"]["api_endpoint"]["model_id"] == (
        "meta/llama-3.1-8b-instruct")  # from the sibling file
    assert "limit_samples: 20" in text and "limit_samples: 5" in text  # task-level wins
    hooks = launcher(tmp_path, "run", "--config", str(CONFIGS / "metadata_and_hooks.yaml"),
                     "--dry-run", "-o", f"execution.output_dir={tmp_path / 'out'}")
    assert hooks.returncode == 0 and "NEMO_EVALUATOR_TRUST_PRE_CMD=1" in hooks.stderr
    assert yaml.safe_load(hooks.stdout)["config"]["user_provided_metadata"] == {
        "team": "evals", "ticket": "EVAL-123"}
    env = launcher(tmp_path, "run", "--config", str(CONFIGS / "env_mounts_docker_args.yaml"),
                   "--dry-run", "-o", f"execution.output_dir={tmp_path / 'out'}")
    assert env.returncode == 0, env.stderr
    assert "--gpus all" in env.stdout and "/tmp:/scratch" in env.stdout
    assert 'SCRATCH_DIR="${EVAL_SCRATCH_DIR-}"' in env.stdout  # runtime: may be unset


REFUSED = {
    "refused_slurm_keys": "key 'execution.num_nodes': is a key of the Slurm executor: set "
                          "execution.type: slurm",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_families_not_here_yet_are_refused_saying_what_to_do(tmp_path: Path, name: str) -> None:
    for args in (["config", "validate", str(CONFIGS / f"{name}.yaml")],
                 ["run", "--config", str(CONFIGS / f"{name}.yaml"),
                  "-o", f"execution.output_dir={tmp_path / 'out'}"]):
        proc = launcher(tmp_path, *args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert f"{name}.yaml" in lines[0] and REFUSED[name] in lines[0], lines[0]
    assert not (tmp_path / "out").exists()
