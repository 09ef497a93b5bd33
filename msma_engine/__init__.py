"""MSMA engine: single-photo 3D face reconstruction without Blender.

Main entry points (imported lazily so ``import msma_engine`` stays cheap)::

    from msma_engine import reconstruct, reconstruct_all
    result = reconstruct("photo.jpg")          # -> one msma_engine.result.FaceResult (largest face)
    faces = reconstruct_all("group.jpg")       # -> list[FaceResult], left to right
    result.topology                            # shared FaceTopology: triangles, UVs, expression basis
    result.timings.as_dict(), result.metrics   # Timings, FitMetrics

    from msma_engine import load_face_model
    model = load_face_model()                  # the shipped default head (CC0)

The command line is ``python -m msma_engine --help``.
"""

from __future__ import annotations

import importlib

__all__ = ["reconstruct", "reconstruct_all", "Reconstructor", "FaceResult", "FaceTopology", "Timings",
           "FitMetrics", "FaceModel", "load_face_model"]

_LAZY = {
    "reconstruct": "msma_engine.pipeline",
    "Reconstructor": "msma_engine.pipeline",
    "reconstruct_all": "msma_engine.pipeline",
    "FaceResult": "msma_engine.result",
    "FaceTopology": "msma_engine.topology",
    "Timings": "msma_engine.result",
    "FitMetrics": "msma_engine.result",
    "FaceModel": "msma_engine.face_model",
    "load_face_model": "msma_engine.face_model",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'msma_engine' has no attribute {name!r}")
