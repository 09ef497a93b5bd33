"""Named skin regions of a face model (forehead, cheeks) and their texels, plus a colour distance.

Regions are found on the mean shape from the 68 landmark vertices, so they work for any
model with the iBUG landmark layout (metres, model frame: +x subject's left, +y up):

* **forehead**: skin above the brows by 1 cm or more, between the eyes' outer corners;
* **cheeks**: skin between the lower eyelids and the nostril base, outside the nose wings
  by 1 cm and inside the eyes' outer corners.

Used to measure a baked albedo (forehead-vs-cheek colour difference: hair or glare on the
forehead shows as a large difference) in the texture benchmark and tests.
"""

from __future__ import annotations

import cv2
import numpy as np

from msma_engine.errors import ShapeError

__all__ = ["face_regions", "median_lab_delta_e"]


def face_regions(mean_shape: np.ndarray, landmark_indices: np.ndarray, skin: np.ndarray) -> dict[str, np.ndarray]:
    """Per-vertex ``(V,)`` bool masks ``{"forehead", "cheeks"}``.

    Args:
        mean_shape: ``(V, 3)`` metres.
        landmark_indices: ``(68,)`` vertex of each iBUG landmark.
        skin: ``(V,)`` bool, the model's skin vertices (regions stay inside it).
    """
    v = np.asarray(mean_shape, np.float64)
    lm = v[np.asarray(landmark_indices, np.int64)]
    if v.ndim != 2 or v.shape[1] != 3 or lm.shape != (68, 3):
        raise ShapeError(f"mean_shape must be (V, 3) and landmark_indices (68,), got {v.shape}, {lm.shape}")
    x, y = v[:, 0], v[:, 1]
    half_eyes = 0.5 * abs(lm[36, 0] - lm[45, 0])
    front = v[:, 2] > lm[:, 2].min()
    forehead = (y > lm[17:27, 1].max() + 0.01) & (np.abs(x) < half_eyes) & front
    wing = max(abs(lm[31, 0]), abs(lm[35, 0]))
    cheeks = ((y < min(lm[41, 1], lm[46, 1]) - 0.008) & (y > lm[33, 1]) & (np.abs(x) > wing + 0.01)
              & (np.abs(x) < half_eyes) & front)
    skin = np.asarray(skin, bool)
    return {"forehead": forehead & skin, "cheeks": cheeks & skin}


def median_lab_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """CIE76 ΔE between the median CIELAB colours of two sets of sRGB uint8 colours ``(N, 3)``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != 3 or b.shape[1] != 3 or not len(a) or not len(b):
        raise ShapeError(f"colours must be non-empty (N, 3), got {a.shape} and {b.shape}")
    lab = [np.median(cv2.cvtColor(c.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[:, 0], axis=0)
           for c in (a, b)]
    return float(np.linalg.norm(lab[0] - lab[1]))
