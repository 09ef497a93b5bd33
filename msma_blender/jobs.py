"""A reconstruction job: the engine runs in a worker thread, Blender data is made elsewhere.

- :class:`ReconstructJob` (worker side) only produces :class:`JobEvent` objects
  (FaceResults or error lines) in a queue.
- :class:`JobConsumer` (main-thread side) drains that queue, hands results to a
  :class:`Builder` and keeps the job's state (running → finished / cancelled / failed),
  its progress line and the final :class:`Outcome`. The Reconstruct Face operator's
  timer, Esc and execute paths only call it and show what it returns, so the whole
  modal logic runs in tests with a fake builder.

No ``bpy`` import here.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .pipeline import EngineSettings, error_line, get_session

__all__ = ["Builder", "JobConsumer", "JobEvent", "JobRequest", "JobState", "Outcome", "ReconstructJob",
           "missing_dependency_message"]

log = logging.getLogger(__name__)


@dataclass
class JobRequest:
    """What to reconstruct.

    Attributes:
        images: photos (or frames, in order).
        settings: engine set-up (model, weights, device).
        fit: ``"default"``, ``"fast"`` or None (network only).
        texture_size: albedo texture size in pixels.
        face: ``"largest"`` or ``"all"``.
        animation: frames of one sequence (keep the largest face of each).
    """

    images: list[Path]
    settings: EngineSettings = field(default_factory=EngineSettings)
    fit: str | None = "default"
    texture_size: int = 1024
    face: str = "largest"
    animation: bool = False


@dataclass
class JobEvent:
    """One message from the worker.

    Attributes:
        kind: ``"faces"`` (results of one image), ``"error"`` (one line for the user) or ``"done"``.
        index: image index (-1 when not about one image).
        path: the image, if any.
        results: FaceResults of the image (``"faces"``), each with its model's topology.
        message: the error line.
    """

    kind: str
    index: int = -1
    path: Path | None = None
    results: list = field(default_factory=list)
    message: str = ""


def missing_dependency_message(err: ImportError) -> str:
    return (f"Python dependencies are missing ({err}): use 'Install Dependencies' in the MSMA add-on "
            "preferences, or run its 'Copy pip Commands' in a terminal (docs/BLENDER.md)")


class ReconstructJob:
    """Runs :class:`JobRequest` in a thread; :meth:`poll` hands its events to the main thread.

    Args:
        request: the work.
        session_factory: ``EngineSettings -> session`` with ``reconstruct()``
            (default: the cached :func:`.pipeline.get_session`).
    """

    def __init__(self, request: JobRequest, session_factory: Callable = get_session):
        self.request = request
        self._factory = session_factory
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.completed = 0
        self.finished = False

    @property
    def total(self) -> int:
        return len(self.request.images)

    @property
    def progress(self) -> float:
        return self.completed / self.total if self.total else 1.0

    def start(self) -> None:
        """Run in a daemon thread (a cancelled job's thread may finish its current image)."""
        self._thread = threading.Thread(target=self.run, name="msma-reconstruct", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop after the current image; its result is dropped."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a started worker thread to end; True when it has (or never started)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def poll(self) -> list[JobEvent]:
        """Events produced since the last call (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def run(self) -> None:
        """The worker loop; also usable synchronously (then :meth:`poll` returns everything)."""
        from msma_engine.errors import MSMAError  # first engine import; fails when dependencies are missing

        req = self.request
        try:
            session = self._factory(req.settings)
        except ImportError as err:
            self._events.put(JobEvent("error", message=missing_dependency_message(err)))
            session = None
        except (MSMAError, OSError) as err:
            self._events.put(JobEvent("error", message=str(err)))
            session = None
        face = "largest" if req.animation else req.face
        for i, path in enumerate(req.images if session is not None else []):
            if self.cancelled:
                break
            try:
                results = session.reconstruct(path, fit=req.fit, texture_size=req.texture_size, face=face)
                event = JobEvent("faces", index=i, path=path, results=results)
            except MSMAError as err:
                event = JobEvent("error", index=i, path=path, message=error_line(path, err))
            except Exception as err:  # noqa: BLE001 - a worker must report, not die silently
                log.exception("reconstructing %s failed", path)
                event = JobEvent("error", index=i, path=path, message=error_line(path, f"unexpected error: {err}"))
            if self.cancelled:
                break
            self.completed = i + 1
            self._events.put(event)
        self.finished = True
        self._events.put(JobEvent("done"))


class JobState(enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"  # the worker's "done" arrived and everything it sent was built
    CANCELLED = "cancelled"  # Esc: the worker stops after its current image, nothing more is built
    FAILED = "failed"  # building raised something other than a reported ValueError


@dataclass(frozen=True)
class Outcome:
    """How a job ended, for the operator to show.

    Attributes:
        state: the final :class:`JobState`.
        level: report level, ``"INFO"``, ``"WARNING"`` or ``"ERROR"``.
        message: the report (a popup in Blender's UI).
        status: the sidebar's last status line.
        finished: the operator returns ``{"FINISHED"}`` (something was built, so there is
            an undo step) rather than ``{"CANCELLED"}``.
    """

    state: JobState
    level: str
    message: str
    status: str
    finished: bool


class Builder(Protocol):
    """Makes the Blender objects; each call returns one complete object (with a ``name``).

    A ``ValueError`` means "this result cannot be built" and is reported; the job goes on.
    """

    def face(self, result: Any) -> Any: ...

    def animation(self, frames: list) -> Any: ...


class JobConsumer:
    """The main-thread side of a :class:`ReconstructJob`: events → built objects → an outcome.

    Args:
        job: the job (started by :meth:`start`, or run here by :meth:`run_sync`).
        builder: makes the objects (the operator's: ``bpy``; tests': a fake).
        report: ``(level, message)`` for each problem as it happens (Blender's Info log).

    Attributes:
        state: :class:`JobState`; leaves RUNNING once, in :meth:`step` or :meth:`cancel`.
        outcome: the :class:`Outcome`, fixed when the state leaves RUNNING (None before).
        built: the objects built so far; errors: the problem lines reported so far.

    Only the main thread calls this; ``builder`` is only called from :meth:`step`. An
    animation is built once, from all its frames, when the job finishes: a cancelled or
    failed animation leaves no object.
    """

    def __init__(self, job: ReconstructJob, builder: Builder, report: Callable[[str, str], None]):
        self.job = job
        self.builder = builder
        self.report = report
        self.state = JobState.RUNNING
        self.outcome: Outcome | None = None
        self.built: list = []
        self.errors: list[str] = []
        self._frames: list = []
        self._failure = ""

    @property
    def progress(self) -> float:
        """Fraction of images done, in [0, 1]."""
        return self.job.progress

    @property
    def status(self) -> str:
        """The progress line, e.g. ``"2/5 image(s) done, 1 failed"``."""
        failed = f", {len(self.errors)} failed" if self.errors else ""
        return f"{self.job.completed}/{self.job.total} image(s) done{failed}"

    def start(self) -> None:
        """Start the worker thread; then call :meth:`step` on a timer."""
        self.job.start()

    def run_sync(self) -> Outcome:
        """Run the whole job in this thread (scripts, background mode) and build everything."""
        self.job.run()
        outcome = self.step()
        if outcome is None:  # run() always ends with "done"
            raise RuntimeError("the job ended without its 'done' event")
        return outcome

    def step(self) -> Outcome | None:
        """Build what the worker sent since the last call; the :class:`Outcome` once it has ended.

        Returns:
            None while the job runs; afterwards the outcome (also on every later call).
        """
        if self.state is not JobState.RUNNING:
            return self.outcome
        try:
            done = False
            for event in self.job.poll():
                if event.kind == "error":
                    self._error(event.message)
                elif event.kind == "faces":
                    if self.job.request.animation:
                        self._frames.append(event.results[0])
                    else:
                        for result in event.results:
                            self._build(self.builder.face, result, where=f"{result.image_path}: ")
                elif event.kind == "done":
                    done = True
            if done and self._frames:
                self._build(self.builder.animation, self._frames, where="")
        except Exception as err:  # noqa: BLE001 - a timer must never die with the "running" flag set
            log.exception("building the face objects failed")
            self.job.cancel()
            self._failure = str(err)
            return self._end(JobState.FAILED)
        return self._end(JobState.FINISHED) if done else None

    def cancel(self) -> Outcome:
        """Esc: stop the worker after its current image and build nothing more.

        Results already sent but not yet built are dropped with the rest; objects built
        before stay (each is complete).
        """
        if self.state is not JobState.RUNNING:
            return self.outcome
        self.job.cancel()
        self.job.poll()  # free what was sent: it will not be built
        return self._end(JobState.CANCELLED)

    def _error(self, message: str, level: str = "WARNING") -> None:
        self.errors.append(message)
        self.report(level, message)

    def _build(self, make: Callable, what: Any, where: str) -> None:
        try:
            self.built.append(make(what))
        except ValueError as err:
            self._error(f"{where}{err}", level="ERROR")

    def _end(self, state: JobState) -> Outcome:
        self.state = state
        self.outcome = self._summary()
        return self.outcome

    def _summary(self) -> Outcome:
        finished = bool(self.built)
        if self.state is JobState.CANCELLED:
            return Outcome(self.state, "WARNING", "MSMA: cancelled",
                           f"Cancelled after {self.job.completed} of {self.job.total} image(s)", finished)
        if self.state is JobState.FAILED:
            return Outcome(self.state, "ERROR", f"MSMA: {self._failure}", f"Failed: {self._failure}", finished)
        reason = ""
        if self.errors:
            more = f" (+{len(self.errors) - 1} more in the Info log)" if len(self.errors) > 1 else ""
            reason = f"{self.errors[0]}{more}"
        if self.built:
            names = ", ".join(o.name for o in self.built[:5]) + (" ..." if len(self.built) > 5 else "")
            failed = f"; {len(self.errors)} failed: {reason}" if reason else ""
            return Outcome(self.state, "WARNING" if reason else "INFO", f"MSMA: created {names}{failed}",
                           self.status, True)
        return Outcome(self.state, "ERROR", "MSMA: no face was reconstructed" + (f": {reason}" if reason else ""),
                       self.status, False)
