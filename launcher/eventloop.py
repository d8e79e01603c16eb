"""One way to run a coroutine to completion: on uvloop where it is installed, else asyncio's own
loop.

uvloop (libuv, from PyPI) runs the same asyncio code with less CPU per callback and per socket
operation; the harness's request phase and the reference endpoint spend most of their CPU in
the event loop and aiohttp's transport calls, so this is where the harness's CPU per request
goes down (see docs/benchmarks.md). ``EVAL_LAUNCHER_EVENT_LOOP=asyncio`` picks asyncio's loop
(to compare, or if uvloop misbehaves on some platform); nothing else changes with the loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "EVAL_LAUNCHER_EVENT_LOOP"


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` unless ``choice`` (default: ``$EVAL_LAUNCHER_EVENT_LOOP``) is
    ``asyncio`` or uvloop is not installed; None means asyncio's default loop."""
    choice = (choice if choice is not None else os.environ.get(ENV, "")).strip().lower()
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name(choice: str | None = None) -> str:
    return "asyncio" if loop_factory(choice) is None else "uvloop"


def run(main: Coroutine[Any, Any, T], *, choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
