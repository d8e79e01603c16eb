"""Following several logs at once (``logs <id>.server -f`` of a Slurm run: one server log per
job): all are read until each one's end, a header whenever the output switches file."""

from __future__ import annotations

from pathlib import Path

from launcher.commands import manage


def ends_after(calls: int):
    count = [0]

    def ended() -> bool:
        count[0] += 1
        return count[0] > calls

    return ended


def test_parallel_logs_are_followed_together_with_a_header_on_each_switch(
        tmp_path: Path, capsys, monkeypatch) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("a1\n")
    b.write_text("b1\n")
    writes = {2: (b, "b2\n"), 3: (a, "a2\n")}  # appended while followed
    rounds = [0]

    def sleep(_: float) -> None:
        rounds[0] += 1
        if rounds[0] in writes:
            path, text = writes[rounds[0]]
            with open(path, "a") as fh:
                fh.write(text)

    monkeypatch.setattr(manage.time, "sleep", sleep)
    manage._follow_files([("== a ==", str(a), 3, ends_after(4)),
                          ("== b ==", str(b), 0, ends_after(2))])
    assert capsys.readouterr().out == "== b ==\nb1\nb2\n== a ==\na2\n"
