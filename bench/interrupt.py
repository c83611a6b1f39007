"""Ctrl-C and SIGTERM stop the benchmark cleanly, its servers included.

Python's own SIGINT handler raises KeyboardInterrupt wherever the interpreter happens to be;
inside a protocol callback, uvloop catches it as a connection error and the run goes on. So a
signal cancels the event loop's tasks instead, and `run` turns that into KeyboardInterrupt
once the loop has closed; outside a loop the signal raises KeyboardInterrupt at once. Either
way the servers' context managers then stop them.
"""

import asyncio
import signal
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def install() -> None:
    """Handle SIGTERM, and SIGINT unless it is ignored (a background job of a script)."""
    signal.signal(signal.SIGTERM, _handle)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _handle)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on uvloop; a signal meanwhile raises KeyboardInterrupt."""
    try:
        return uvloop.run(coroutine)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def _handle(signum: int, frame: FrameType | None) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise KeyboardInterrupt from None
    loop.call_soon_threadsafe(_cancel_all, loop)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
