"""The backend-neutral parts of ``Backend``: ``run_to_end`` (the endpoint probe's way)."""

from __future__ import annotations

from collections.abc import Iterator

from launcher.backends.base import WorkloadGone
from launcher.spec import ContainerSpec
from tests.unit.fake_backend import FakeBackend, Script


class LogsGone(FakeBackend):
    """An engine that has dropped the container by the time its output is asked for."""

    def logs(self, handle: str, *, follow: bool, tail: int | None = None) -> Iterator[bytes]:
        raise WorkloadGone(handle)
        yield b""  # pragma: no cover


def test_run_to_end_gives_the_code_and_output_and_removes_it() -> None:
    backend = FakeBackend({"probe": Script(exit_code=3, output=b"no model m\n")})
    spec = ContainerSpec(image="i", labels={"eval-launcher.role": "probe"})
    assert backend.run_to_end(spec, {}, 10) == (3, "no model m\n")
    assert all(w.removed for w in backend.started)


def test_run_to_end_keeps_the_exit_code_when_the_output_is_gone() -> None:
    backend = LogsGone({"probe": Script(exit_code=0)})
    spec = ContainerSpec(image="i", labels={"eval-launcher.role": "probe"})
    assert backend.run_to_end(spec, {}, 10) == (0, "")
