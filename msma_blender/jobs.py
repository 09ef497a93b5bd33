"""A reconstruction job: the engine runs in a worker thread, Blender data is made elsewhere.

The worker only produces :class:`JobEvent` objects (FaceResults or error lines) in a
queue; the modal operator drains the queue on a timer in Blender's main thread, where
all ``bpy`` data is created. No ``bpy`` import here.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .pipeline import EngineSettings, error_line, get_session

__all__ = ["JobEvent", "JobRequest", "ReconstructJob", "missing_dependency_message"]

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
