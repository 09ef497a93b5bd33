"""Tests for msma_engine.timing on a fake clock (no sleeps)."""

from __future__ import annotations

import pytest

from msma_engine import timing


@pytest.fixture
def clock(monkeypatch):
    """``time.perf_counter`` as seen by msma_engine.timing, advanced by hand."""
    now = [100.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    return now


def test_timed_adds_up_repeats_and_counts_a_failed_block(clock):
    timings = {}
    with timing.timed(timings, "fit"):
        clock[0] += 2.0
    with timing.timed(timings, "fit"):
        clock[0] += 0.5
    with pytest.raises(RuntimeError), timing.timed(timings, "bake"):
        clock[0] += 1.25
        raise RuntimeError("boom")
    assert timings == {"fit": 2.5, "bake": 1.25}


def test_stopwatch_laps_split_the_elapsed_time(clock):
    watch = timing.Stopwatch()
    clock[0] += 3.0
    first = watch.lap()
    clock[0] += 0.25
    second = watch.lap()
    clock[0] += 1.0
    assert (first, second) == (3.0, 0.25)
    assert watch.elapsed == 4.25 and watch.lap() == 1.0
