"""Wall-clock timing: named steps into a ``{name: seconds}`` dict, or a stopwatch with laps.

The one timing helper of the engine, the Blender extension and training (benchmarks keep
their own min-of-N loops). ``timed`` wraps a block; ``Stopwatch.lap()`` times consecutive
stages of a long function without re-indenting it.

Example:
    >>> timings = {}
    >>> with timed(timings, "load"):
    ...     pass
    >>> sorted(timings)
    ['load']
    >>> clock = Stopwatch()
    >>> timings["first"] = clock.lap()   # seconds since the start
    >>> timings["second"] = clock.lap()  # seconds since the previous lap
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
        self._last = self.start

    @property
    def elapsed(self) -> float:
        """Seconds since the stopwatch was made."""
        return time.perf_counter() - self.start

    def lap(self) -> float:
        """Seconds since the previous lap (or since creation for the first); the laps add up
        to :attr:`elapsed`."""
        now = time.perf_counter()
        out, self._last = now - self._last, now
        return out
