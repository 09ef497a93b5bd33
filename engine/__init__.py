"""MSMA engine: single-photo 3D face reconstruction without Blender.

Main entry points (imported lazily so ``import engine`` stays cheap)::

    from engine import reconstruct
    result = reconstruct("photo.jpg")          # -> engine.result.FaceResult

    from engine import load_face_model
    model = load_face_model()                  # the shipped default head (CC0)

The command line is ``python -m engine --help``.
"""

from __future__ import annotations

import importlib

__all__ = ["reconstruct", "Reconstructor", "FaceResult", "FaceModel", "load_face_model"]

_LAZY = {
    "reconstruct": "engine.pipeline",
    "Reconstructor": "engine.pipeline",
    "FaceResult": "engine.result",
    "FaceModel": "engine.face_model",
    "load_face_model": "engine.face_model",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
