"""The extension's bridge to the engine: input collection, model/weights resolution, a cached session.

No ``bpy`` here, so it runs in the worker thread and in tests. The engine (and torch) are
imported lazily, on first use, so Blender can enable the extension before its Python
dependencies are installed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

# Shared with the engine's command line (standard library only, importable before the dependencies).
from msma_engine.cli_common import IMAGE_SUFFIXES, error_line, natural_key

__all__ = [
    "IMAGE_SUFFIXES",
    "EngineSession",
    "EngineSettings",
    "InputError",
    "clear_sessions",
    "collect_images",
    "default_model_path",
    "default_weights_path",
    "error_line",
    "get_session",
    "natural_key",
]

log = logging.getLogger(__name__)

# Network weights shipped beside this package in the extension zip (build.py).
_ASSET_DIR = Path(__file__).resolve().parent / "assets"


class InputError(ValueError):
    """A user-supplied input path is missing or holds no images; the message names it."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders into image files, folders' images sorted naturally.

    Args:
        paths: image files and/or folders (a folder contributes its images, not sub-folders).

    Returns:
        Image paths in order, without duplicates.

    Raises:
        InputError: a path does not exist, is not an image, or a folder has no images.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                           key=natural_key)
            if not found:
                raise InputError(path, f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
            out.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(path, f"not an image file (expected one of {', '.join(sorted(IMAGE_SUFFIXES))})")
            out.append(path)
        else:
            raise InputError(path, "no such file or folder")
    seen, unique = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def default_model_path() -> Path:
    """The default face model: package data of the installed engine."""
    from msma_engine.face_model import DEFAULT_MODEL_PATH

    return Path(DEFAULT_MODEL_PATH)


def default_weights_path() -> Path | None:
    """Network weights shipped in the extension's assets/ (None: let the engine pick its default)."""
    for pattern in ("*.pt", "*.pth"):
        found = sorted(_ASSET_DIR.glob(pattern))
        if found:
            return found[0]
    return None


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs to be set up; equal settings share one cached session.

    Attributes:
        model_path: face-model ``.npz`` (empty: the default model).
        weights_path: network weights (empty: the weights shipped in the extension, if any,
            else none: the engine starts from the mean face posed on the landmarks).
        device: ``"cpu"`` or ``"cuda"``.
    """

    model_path: str = ""
    weights_path: str = ""
    device: str = "cpu"


class EngineSession:
    """A loaded face model and reconstructor, reused across images and button presses.

    Args:
        settings: :class:`EngineSettings`.
    """

    def __init__(self, settings: EngineSettings):
        from msma_engine.face_model import load_face_model
        from msma_engine.pipeline import Reconstructor

        self.settings = settings
        model_path = Path(settings.model_path) if settings.model_path else default_model_path()
        weights = settings.weights_path or default_weights_path()
        self.model = load_face_model(model_path)
        self.reconstructor = Reconstructor(model=self.model, weights=weights, device=settings.device)
        self._lock = threading.Lock()

    def reconstruct(self, image_path: str | Path, fit: str | None = "default", texture_size: int = 1024,
                    face: str | int = "largest") -> list:
        """Reconstruct the faces of one photo.

        Args:
            face: ``"largest"``, ``"only"``, a face number, or ``"all"`` (every face, left to right).

        Returns:
            ``list[FaceResult]`` (one item unless ``face == "all"``).

        Raises:
            msma_engine.errors.MSMAError: the engine's one-line user errors.
        """
        rec = self.reconstructor
        with self._lock:  # one reconstruction at a time per session (torch threads are shared)
            if face == "all":
                return rec.reconstruct_all(str(image_path), fit=fit, texture_size=texture_size)
            return [rec.reconstruct(str(image_path), fit=fit, texture_size=texture_size, face=face)]


_SESSIONS: dict[EngineSettings, EngineSession] = {}
_SESSIONS_LOCK = threading.Lock()


def get_session(settings: EngineSettings) -> EngineSession:
    """The cached session for ``settings`` (built on first use; only the latest is kept)."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(settings)
        if session is None:
            _SESSIONS.clear()  # a model + network is large; keep one
            session = _SESSIONS[settings] = EngineSession(settings)
        return session


def clear_sessions() -> None:
    """Drop the cached session (its model and network); the next :func:`get_session` loads anew."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()
