"""export --dest local: rows per job/task/metric/score in JSON and CSV, upserted by job id
(twice makes no duplicates), other destinations refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from launcher import cli
from launcher.commands.export import export
from tests.unit.fake_runs import make_run


@pytest.fixture
def two_runs(tmp_path, fake, capsys):
    a = make_run(tmp_path, {"gsm8k": [1, 1, 0, 0], "humaneval": [1, 0]}, model="m-a")
    b = make_run(tmp_path, {"gsm8k": [1, 1, 1, 0], "humaneval": None}, model="m-b")
    capsys.readouterr()
    return str(tmp_path / "out"), a, b


def test_json_rows_and_upsert(two_runs, tmp_path, capsys):
    out, a, b = two_runs
    dest = tmp_path / "exp"
    dest.mkdir()
    o = [f"export.local.output_dir={dest}"]
    assert export(out, [a.invocation_id], "local", o) == 0
    rows = json.loads((dest / "export.json").read_text())
    assert [(r["job_id"], r["task"], r["value"]) for r in rows] == [
        (f"{a.invocation_id}.0", "gsm8k", 0.5), (f"{a.invocation_id}.1", "humaneval", 0.5)]
    first = rows[0]
    assert set(first) == {"invocation_id", "job_id", "task", "metric", "score", "value",
                          "stderr", "count", "model_id", "timestamp"}
    assert (first["metric"], first["score"], first["count"], first["model_id"]) == (
        "accuracy", "accuracy", 4, "m-a")
    assert first["stderr"] > 0 and first["timestamp"]
    # again, plus the other run: a's rows replaced, b's added, b's job without results skipped
    capsys.readouterr()
    assert export(out, [a.invocation_id, b.invocation_id[:8]], "local", o) == 0
    said = capsys.readouterr().out
    assert "2 earlier rows of these jobs replaced" in said
    assert f"skipped job {b.invocation_id}.1: no results.yml" in said
    rows = json.loads((dest / "export.json").read_text())
    assert len(rows) == 3 and len({r["job_id"] for r in rows}) == 3
    assert export(out, [f"{b.invocation_id}.0"], "local", o) == 0
    assert json.loads((dest / "export.json").read_text()) == rows


def test_csv_default_folder_and_upsert(two_runs, capsys):
    out, a, b = two_runs
    o = ["export.local.format=csv"]
    for _ in range(2):
        assert export(out, [a.invocation_id, b.invocation_id], "local", o) == 0
    with open(f"{out}/export.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    assert {r["model_id"] for r in rows} == {"m-a", "m-b"}
    assert float(next(r for r in rows if r["invocation_id"] == b.invocation_id)["value"]) == 0.75


@pytest.mark.parametrize("args, needle", [
    (["--dest", "mlflow"], "export.mlflow.tracking_uri is required"),
    (["--dest", "mlflow", "-o", "export.mlflow.colour=red"], "unknown key 'colour'"),
    (["--dest", "mlflow", "-o", "export.mlflow.tags=x"], "export.mlflow.tags.NAME=VALUE"),
    (["--dest", "mlflow", "-o", "export.mlflow.tracking_uri=http://x",
      "-o", "export.mlflow.log_logs=maybe"], "use true or false"),
    (["--dest", "gsheets"], "--dest gsheets: gsheets is not built yet"),
    (["--dest", "s3"], "--dest s3: unknown destination 's3'"),
    (["--dest", "wandb", "-o", "export.wandb.log_mode=all"], "use per_task or multi_task"),
    (["--dest", "wandb", "-o", "export.wandb.mode=cloud"], "use online or offline"),
    (["--dest", "wandb", "-o", "export.wandb.projcet=x"], "unknown key 'projcet'"),
    (["-o", "export.local.format=xml"], "use json or csv"),
    (["-o", "export.local.colour=red"], "unknown key 'colour'"),
    (["-o", "export.mlflow.tracking_uri=x"], "applies to --dest mlflow"),
    (["-o", "export.local.output_dir=/no/such/dir"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(two_runs, capsys, monkeypatch, args, needle):
    out, a, _ = two_runs
    monkeypatch.setattr("sys.argv", ["launcher", "export", a.invocation_id, "--output-dir", out,
                                     *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1


def test_the_reference_shorthand_flags(two_runs, capsys, monkeypatch, tmp_path):
    """``--format csv --output-filename NAME`` as the reference's ``nel export`` has them."""
    out, a, _ = two_runs
    monkeypatch.setattr("sys.argv", ["launcher", "export", a.invocation_id, "--output-dir", out,
                                     "--format", "csv", "--output-filename", "scores.csv"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 0, capsys.readouterr().err
    assert (Path(out) / "scores.csv").read_text().startswith("invocation_id,job_id,task,")
    monkeypatch.setattr("sys.argv", ["launcher", "export", a.invocation_id, "--output-dir", out,
                                     "--dest", "mlflow", "--format", "csv"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: --format applies to --dest local")


def test_a_foreign_file_is_not_overwritten(two_runs, capsys):
    out, a, _ = two_runs
    with open(f"{out}/export.json", "w") as fh:
        fh.write('{"mine": true}')
    with pytest.raises(Exception, match="not a JSON export"):
        export(out, [a.invocation_id], "local", [])
    with open(f"{out}/export.json") as fh:
        assert fh.read() == '{"mine": true}'


def test_mlflow_keys_names_and_uris_without_mlflow():
    from launcher import export_mlflow as m
    from launcher.commands.export import options

    assert options("mlflow", ["export.mlflow.tracking_uri=http://h:5000",
                              "export.mlflow.tags.team.sub=x"]) == {
        "tracking_uri": "http://h:5000", "tags.team.sub": "x"}
    assert m.sanitize("pass@1 (k=1)") == "pass_1 _k_1_"
    assert m.shown_uri("https://u:tok@host:8443/mlflow") == "https://***@host:8443/mlflow"
    assert m.shown_uri("http://h:5000") == "http://h:5000"
    assert m.flatten({"a": {"b": 1}, "c": [1, 2], "d": None}, "meta") == {
        "meta.a.b": "1", "meta.c": "[1, 2]"}
