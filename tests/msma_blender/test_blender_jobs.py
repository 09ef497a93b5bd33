"""The threaded job: events, engine errors reported per image, cancellation; input collection."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from msma_engine.errors import ModelFileError, NoFaceError
from msma_blender.jobs import JobRequest, ReconstructJob
from msma_blender.pipeline import EngineSettings, InputError, collect_images, natural_key


class FakeSession:
    def __init__(self, gate: threading.Event | None = None):
        self.calls = []
        self.gate = gate

    def reconstruct(self, path, fit, texture_size, face):
        self.calls.append((Path(path).name, fit, texture_size, face))
        if self.gate is not None:
            self.gate.wait(5)
        if "noface" in Path(path).name:
            raise NoFaceError(f"{path}: no face found")
        return [f"result:{Path(path).name}"]


def _run_sync(request, session):
    job = ReconstructJob(request, session_factory=lambda s: session)
    job.run()
    return job, job.poll()


def test_events_in_order_and_errors_reported():
    session = FakeSession()
    req = JobRequest(images=[Path("a.jpg"), Path("noface.jpg"), Path("c.jpg")], fit="fast", texture_size=256)
    job, events = _run_sync(req, session)
    assert [e.kind for e in events] == ["faces", "error", "faces", "done"]
    assert events[0].results == ["result:a.jpg"]
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
    gate = threading.Event()
    session = FakeSession(gate)
    job = ReconstructJob(JobRequest(images=[Path(f"{i}.jpg") for i in range(5)]), session_factory=lambda s: session)
    job.start()
    time.sleep(0.1)
    job.cancel()
    gate.set()
    deadline = time.time() + 5
    events = []
    while time.time() < deadline and not any(e.kind == "done" for e in events):
        events += job.poll()
        time.sleep(0.01)
    assert [e.kind for e in events] == ["done"]
    assert len(session.calls) == 1 and job.completed == 0


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
