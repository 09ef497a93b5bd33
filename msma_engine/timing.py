"""Wall-clock timing of named steps into a ``{name: seconds}`` dict.

Example:
    >>> timings = {}
    >>> with timed(timings, "load"):
    ...     pass
    >>> sorted(timings)
    ['load']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

__all__ = ["timed", "Stopwatch"]


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds spent in the ``with`` body to ``timings[name]`` (also on an exception)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


class Stopwatch:
    """Seconds since creation: ``Stopwatch().elapsed`` (``time.perf_counter`` based)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since the stopwatch was made."""
        return time.perf_counter() - self.start
