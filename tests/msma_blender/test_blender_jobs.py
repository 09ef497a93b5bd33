"""The threaded job: events, engine errors reported per image, cancellation; input collection."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
import pytest

from msma_engine.errors import ModelFileError, NoFaceError
from msma_blender.jobs import JobRequest, ReconstructJob
from msma_blender.pipeline import EngineSettings, InputError, collect_images, natural_key


WAIT = 10  # seconds; only reached when the code under test hangs


class FakeSession:
    """``reconstruct`` of a photo named ``noface*`` raises NoFaceError; others return one result.

    Args:
        gated: each reconstruct waits for a permit of :attr:`permits` (the test releases them).
    """

    exp_basis = np.zeros((2, 3, 3))

    def __init__(self, gated: bool = False):
        self.calls = []
        self.entered: queue.Queue[str] = queue.Queue()
        self.permits = threading.Semaphore(0) if gated else None

    def reconstruct(self, path, fit, texture_size, face):
        name = Path(path).name
        self.calls.append((name, fit, texture_size, face))
        self.entered.put(name)
        if self.permits is not None and not self.permits.acquire(timeout=WAIT):
            raise AssertionError(f"{name}: the test never let this image finish")
        if "noface" in name:
            raise NoFaceError(f"{path}: no face found")
        return [f"result:{name}"]

    def wait_entered(self, name: str) -> None:
        assert self.entered.get(timeout=WAIT) == name


def _run_sync(request, session):
    job = ReconstructJob(request, session_factory=lambda s: session)
    job.run()
    return job, job.poll()


def test_events_in_order_and_errors_reported():
    session = FakeSession()
    req = JobRequest(images=[Path("a.jpg"), Path("noface.jpg"), Path("c.jpg")], fit="fast", texture_size=256)
    job, events = _run_sync(req, session)
    assert [e.kind for e in events] == ["faces", "error", "faces", "done"]
    assert events[0].results == ["result:a.jpg"] and events[0].exp_basis is session.exp_basis
    assert events[1].message == "noface.jpg: no face found"
    assert session.calls[0] == ("a.jpg", "fast", 256, "largest")
    assert job.progress == 1.0 and job.finished


def test_animation_keeps_largest_face():
    session = FakeSession()
    _run_sync(JobRequest(images=[Path("f1.png")], face="all", animation=True), session)
    assert session.calls[0][3] == "largest"


def test_session_failure_is_one_error():
    def factory(settings):
        raise ModelFileError(f"{settings.model_path}: not a face model")

    job = ReconstructJob(JobRequest(images=[Path("a.jpg")], settings=EngineSettings(model_path="bad.npz")),
                         session_factory=factory)
    job.run()
    events = job.poll()
    assert [e.kind for e in events] == ["error", "done"]
    assert "bad.npz: not a face model" in events[0].message


def test_missing_dependency_message():
    def factory(settings):
        raise ImportError("No module named 'torch'")

    job = ReconstructJob(JobRequest(images=[Path("a.jpg")]), session_factory=factory)
    job.run()
    assert "Install Dependencies" in job.poll()[0].message


def test_thread_cancel_drops_current_and_stops():
    session = FakeSession(gated=True)
    job = ReconstructJob(JobRequest(images=[Path(f"{i}.jpg") for i in range(5)]), session_factory=lambda s: session)
    job.start()
    session.wait_entered("0.jpg")  # the worker is inside image 0
    job.cancel()
    session.permits.release()
    assert job.wait(WAIT), "the worker did not stop after cancel"
    assert [e.kind for e in job.poll()] == ["done"]  # image 0's result is dropped
    assert len(session.calls) == 1 and job.completed == 0 and session.entered.empty()


class TestCollectImages:
    def test_folder_natural_order(self, tmp_path):
        for name in ("frame10.png", "frame2.png", "frame1.png", "notes.txt"):
            (tmp_path / name).write_bytes(b"x")
        (tmp_path / "sub").mkdir()
        assert [p.name for p in collect_images([tmp_path])] == ["frame1.png", "frame2.png", "frame10.png"]
        assert natural_key(Path("a2.png")) < natural_key(Path("a10.png"))

    def test_errors_name_the_path(self, tmp_path):
        with pytest.raises(InputError, match="missing.jpg: no such file"):
            collect_images([tmp_path / "missing.jpg"])
        (tmp_path / "notes.txt").write_text("x")
        with pytest.raises(InputError, match="not an image"):
            collect_images([tmp_path / "notes.txt"])
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(InputError, match="empty: no images"):
            collect_images([empty])

    def test_duplicates_removed(self, tmp_path):
        (tmp_path / "a.jpg").write_bytes(b"x")
        assert len(collect_images([tmp_path / "a.jpg", tmp_path])) == 1
