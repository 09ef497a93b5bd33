"""The dense (478-point Face Mesh) correspondence table of the default head, as the build reads it.

Written by :mod:`tools.default_head.calibrate_dense`; keyed by MakeHuman base-mesh vertex
indices so it survives re-cutting the head mesh.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from msma_engine.errors import ModelFileError

__all__ = ["DENSE_PATH", "load_dense_table"]

DENSE_PATH = Path(__file__).resolve().parent / "dense_calibrated.json"


def load_dense_table(remap: np.ndarray, path: Path = DENSE_PATH) -> tuple[np.ndarray, np.ndarray] | None:
    """The calibrated table mapped to head-vertex indices, or None when it does not exist.

    Args:
        remap: ``(V_base,)`` head index of every base-mesh vertex (-1 where cut away).
        path: the JSON table.

    Returns:
        ``(478, 3)`` int64 head-vertex indices and ``(478, 3)`` float32 barycentric weights.

    Raises:
        ModelFileError: the table is unreadable, malformed, or names a vertex the head lacks.
    """
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        base = np.asarray(raw["base_vertices"], np.int64)
        weights = np.asarray(raw["weights"], np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"cannot read dense landmark table {path}: {exc}") from exc
    if base.shape != (478, 3) or weights.shape != (478, 3):
        raise ModelFileError(f"dense landmark table {path} must hold (478, 3) vertices and weights, "
                             f"got {base.shape} and {weights.shape}")
    if base.min() < 0 or base.max() >= len(remap):
        raise ModelFileError(f"dense landmark table {path}: base vertices outside [0, {len(remap)})")
    head = remap[base]
    if (head < 0).any():
        lost = np.unique(base[head < 0]).tolist()
        raise ModelFileError(f"dense landmark table {path}: base vertices {lost[:10]} are not in the head mesh; "
                             "recalibrate (python -m tools.default_head.calibrate_dense)")
    weights = weights / weights.sum(axis=1, keepdims=True)
    return head, weights.astype(np.float32)
