"""The threaded job and its main-thread consumer (the operator's modal logic), without Blender data.

The worker is driven step by step with a semaphore (one permit = one image may finish) and
a queue that says which image it has entered, so no test waits on a clock.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from msma_engine.errors import ModelFileError, NoFaceError
from msma_blender.jobs import JobConsumer, JobRequest, JobState, ReconstructJob
from msma_blender.pipeline import EngineSettings, InputError, collect_images, natural_key

WAIT = 10  # seconds; only reached when the code under test hangs


class FakeSession:
    """``reconstruct`` of a photo named ``noface*`` raises NoFaceError; others return one result.

    Args:
        gated: each reconstruct waits for a permit of :attr:`permits` (the test releases them).
    """

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
        return [SimpleNamespace(image_path=str(path))]

    def wait_entered(self, name: str) -> None:
        assert self.entered.get(timeout=WAIT) == name


class FakeBuilder:
    """Records what it builds; ``badmesh`` photos raise ValueError, ``crash`` ones RuntimeError."""

    def __init__(self):
        self.faces, self.animations = [], []

    def face(self, result):
        stem = Path(result.image_path).stem
        if "badmesh" in stem:
            raise ValueError("mesh has no faces")
        if "crash" in stem:
            raise RuntimeError("Blender data is read-only here")
        self.faces.append(stem)
        return SimpleNamespace(name=stem)

    def animation(self, frames):
        self.animations.append([Path(f.image_path).stem for f in frames])
        return SimpleNamespace(name="anim")


def _images(*names):
    return [Path(n) for n in names]


def _consumer(request, session, builder=None):
    reports = []
    consumer = JobConsumer(ReconstructJob(request, session_factory=lambda s: session), builder or FakeBuilder(),
                           report=lambda level, message: reports.append((level, message)))
    return consumer, reports


def _run_sync(request, session):
    job = ReconstructJob(request, session_factory=lambda s: session)
    job.run()
    return job, job.poll()


def test_events_in_order_and_errors_reported():
    session = FakeSession()
    req = JobRequest(images=_images("a.jpg", "noface.jpg", "c.jpg"), fit="fast", texture_size=256)
    job, events = _run_sync(req, session)
    assert [e.kind for e in events] == ["faces", "error", "faces", "done"]
    assert events[0].results[0].image_path == "a.jpg"
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
    job = ReconstructJob(JobRequest(images=_images(*(f"{i}.jpg" for i in range(5)))),
                         session_factory=lambda s: session)
    job.start()
    session.wait_entered("0.jpg")  # the worker is inside image 0
    job.cancel()
    session.permits.release()
    assert job.wait(WAIT), "the worker did not stop after cancel"
    assert [e.kind for e in job.poll()] == ["done"]  # image 0's result is dropped
    assert len(session.calls) == 1 and job.completed == 0 and session.entered.empty()


class TestConsumer:
    """The Reconstruct Face operator's timer / Esc / execute logic, with a fake builder."""

    def test_progress_builds_as_results_arrive(self):
        session = FakeSession(gated=True)
        consumer, reports = _consumer(JobRequest(images=_images("a.jpg", "b.jpg", "c.jpg")), session)
        consumer.start()
        session.wait_entered("a.jpg")
        assert consumer.step() is None and consumer.built == [] and consumer.progress == 0.0
        session.permits.release()
        session.wait_entered("b.jpg")  # a's result is queued before b starts
        assert consumer.step() is None
        assert [o.name for o in consumer.built] == ["a"] and consumer.progress == pytest.approx(1 / 3)
        assert consumer.status == "1/3 image(s) done" and consumer.state is JobState.RUNNING
        session.permits.release(2)
        assert consumer.job.wait(WAIT)
        outcome = consumer.step()
        assert outcome.state is JobState.FINISHED and outcome.finished and outcome.level == "INFO"
        assert outcome.message == "MSMA: created a, b, c" and outcome.status == "3/3 image(s) done"
        assert consumer.progress == 1.0 and reports == []
        assert consumer.step() == outcome  # a late timer tick changes nothing

    def test_esc_stops_the_worker_and_builds_nothing_more(self):
        session = FakeSession(gated=True)
        builder = FakeBuilder()
        consumer, _ = _consumer(JobRequest(images=_images("a.jpg", "b.jpg", "c.jpg", "d.jpg")), session, builder)
        consumer.start()
        session.wait_entered("a.jpg")
        session.permits.release()
        session.wait_entered("b.jpg")
        assert consumer.step() is None and builder.faces == ["a"]
        session.permits.release()
        session.wait_entered("c.jpg")  # b's result is queued, not built yet

        outcome = consumer.cancel()  # Esc
        assert outcome.state is JobState.CANCELLED and outcome.level == "WARNING"
        assert outcome.message == "MSMA: cancelled" and outcome.status == "Cancelled after 2 of 4 image(s)"
        assert outcome.finished  # "a" was built: the operator keeps it as one undo step
        session.permits.release()  # let c end: its result must be dropped, d never start
        assert consumer.job.wait(WAIT), "the worker did not stop after Esc"
        assert consumer.step() == outcome and consumer.cancel() == outcome
        assert builder.faces == ["a"] and [o.name for o in consumer.built] == ["a"]
        assert [c[0] for c in session.calls] == ["a.jpg", "b.jpg", "c.jpg"]

    def test_esc_during_an_animation_leaves_no_object(self):
        session = FakeSession(gated=True)
        builder = FakeBuilder()
        consumer, _ = _consumer(JobRequest(images=_images("f1.png", "f2.png", "f3.png"), animation=True),
                                session, builder)
        consumer.start()
        session.wait_entered("f1.png")
        session.permits.release()
        session.wait_entered("f2.png")
        assert consumer.step() is None  # frame 1 collected, nothing built yet
        outcome = consumer.cancel()
        session.permits.release(2)
        assert consumer.job.wait(WAIT)
        assert not outcome.finished and consumer.step() == outcome
        assert builder.animations == [] and builder.faces == [] and consumer.built == []

    def test_errors_are_reported_and_summed_up(self):
        session = FakeSession()
        consumer, reports = _consumer(
            JobRequest(images=_images("a.jpg", "noface.jpg", "badmesh.jpg")), session)
        outcome = consumer.run_sync()
        assert reports == [("WARNING", "noface.jpg: no face found"), ("ERROR", "badmesh.jpg: mesh has no faces")]
        assert outcome.state is JobState.FINISHED and outcome.level == "WARNING" and outcome.finished
        assert outcome.message == ("MSMA: created a; 2 failed: noface.jpg: no face found (+1 more in the Info log)")
        assert outcome.status == "3/3 image(s) done, 2 failed"

    def test_nothing_built_is_an_error_outcome(self):
        consumer, _ = _consumer(JobRequest(images=_images("noface.jpg")), FakeSession())
        outcome = consumer.run_sync()
        assert (outcome.level, outcome.finished) == ("ERROR", False)
        assert outcome.message == "MSMA: no face was reconstructed: noface.jpg: no face found"

    def test_a_builder_crash_fails_the_job_and_stops_the_worker(self):
        session = FakeSession(gated=True)
        consumer, _ = _consumer(JobRequest(images=_images("crash.jpg", "b.jpg", "c.jpg")), session)
        consumer.start()
        session.wait_entered("crash.jpg")
        session.permits.release()
        session.wait_entered("b.jpg")
        outcome = consumer.step()
        assert outcome.state is JobState.FAILED and outcome.level == "ERROR" and not outcome.finished
        assert outcome.message == "MSMA: Blender data is read-only here"
        assert outcome.status == "Failed: Blender data is read-only here"
        session.permits.release()
        assert consumer.job.wait(WAIT) and len(session.calls) == 2  # c never started

    def test_finished_job_builds_faces_and_one_animation(self):
        session = FakeSession()
        builder = FakeBuilder()
        consumer, _ = _consumer(JobRequest(images=_images("a.jpg", "b.jpg")), session, builder)
        assert consumer.run_sync().message == "MSMA: created a, b"
        assert builder.faces == ["a", "b"]

        anim_builder = FakeBuilder()
        consumer, _ = _consumer(JobRequest(images=_images("f1.png", "noface.png", "f3.png"), animation=True),
                                FakeSession(), anim_builder)
        outcome = consumer.run_sync()
        assert anim_builder.animations == [["f1", "f3"]] and anim_builder.faces == []
        assert outcome.message.startswith("MSMA: created anim; 1 failed")


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
