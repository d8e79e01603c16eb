"""CLI startup quality: `--help` stays light (no Docker SDK, cattrs, YAML, Hydra, OmegaConf,
python-dotenv or MLflow loaded), `--version` prints the package version, and every visible
command's help shows an example.

No timing here: speed is measured by benchmarks/cli_startup.sh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import launcher
from launcher.cli import cli

REPO = Path(__file__).resolve().parents[2]

# Heavy modules that only real work may load; `--help` must not.
HEAVY = ("docker", "cattrs", "yaml", "hydra", "omegaconf", "dotenv", "antlr4", "aiohttp",
         "mlflow")

# Runs the real entry point (launcher.cli:main, as the console script does) with sys.argv set,
# and at interpreter exit -- whatever way main() ends: return, sys.exit, exception -- writes the
# heavy modules then in sys.modules to the file named by argv[1].
PROBE = """
import atexit, json, sys
out, heavy, args = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]

def report():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    with open(out, "w") as f:
        json.dump(loaded, f)

atexit.register(report)
sys.argv = ["launcher", *args]
from launcher.cli import main
main()
"""


def commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    """Every (path, command) below `group`, depth first, hidden ones included."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL = list(commands())
VISIBLE = [(path, cmd) for path, cmd in ALL if not cmd.hidden]


def run_probe(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), ",".join(HEAVY), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.exists(), f"probe wrote nothing: {proc.stderr}"
    return proc, json.loads(out.read_text())


def test_command_tree_is_found():
    names = {" ".join(path) for path, _ in ALL}
    assert {"run", "status", "ls", "ls tasks", "ls runs", "config validate"} <= names


@pytest.mark.parametrize("path", [()] + [path for path, _ in ALL],
                         ids=lambda path: " ".join(("launcher", *path)))
def test_help_loads_no_heavy_modules(tmp_path, path):
    proc, loaded = run_probe(tmp_path, *path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    assert loaded == [], f"`launcher {' '.join(path)} --help` imported {loaded}"


def test_version_prints_package_version_and_loads_no_heavy_modules(tmp_path):
    proc, loaded = run_probe(tmp_path, "--version")
    assert proc.returncode == 0, proc.stderr
    assert launcher.__version__ in proc.stdout
    assert loaded == []


def test_version_via_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "launcher", "--version"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(launcher.__version__)


def test_probe_sees_heavy_imports(tmp_path):
    """The probe itself works: a command that does load YAML is reported as such."""
    config = tmp_path / "eval.yaml"
    config.write_text("execution:\n  output_dir: ./results\n")
    proc, loaded = run_probe(tmp_path, "config", "show", str(config))
    assert "yaml" in loaded, (loaded, proc.stderr)


@pytest.mark.parametrize("path", [()] + [path for path, _ in VISIBLE],
                         ids=lambda path: " ".join(("launcher", *path)))
def test_help_has_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="launcher")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, (
        f"`launcher {' '.join(path)} --help` shows no example:\n{result.output}")
