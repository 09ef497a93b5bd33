"""BlazeFace face detection (MediaPipe's short- and full-range models) in PyTorch.

The networks are MediaPipe's own (Apache-2.0), converted once by
``tools/convert_mediapipe.py`` into ``msma_engine/data/`` and run by
:class:`~msma_engine.detect.tflite_graph.TFLiteGraph`. Around them this module
reproduces MediaPipe's ``face_detection_{short,full}_range`` graphs:

1. the whole photo, letterboxed to a square (black bars), resampled to the
   model's input (128² short range, 192² full range), values in ``[-1, 1]``;
2. SSD anchors (``SsdAnchorsCalculator``), box and keypoint decoding
   (``TensorsToDetectionsCalculator``: x, y, w, h order, scores through a
   sigmoid of the logit clipped to ±100);
3. weighted non-maximum suppression (IoU > 0.3 clusters, score-weighted mean of
   boxes and keypoints, the cluster keeps its best score).

Short range is made for faces filling a good part of the picture (selfies,
portraits, the landmarker's face crops); full range finds faces down to a few
percent of the photo width.

Keypoint order (six points): image-left eye (the subject's right), image-right
eye, nose tip, mouth centre, image-left ear tragion, image-right ear tragion.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from msma_engine.detect.base import check_image
from msma_engine.detect.roi import RotatedRect, warp_rect
from msma_engine.detect.tflite_graph import TFLiteGraph, load_graph

__all__ = ["BlazeFace", "BlazeFaceBox", "ssd_anchors", "weighted_nms"]

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class _Variant:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with MediaPipe's interpolated-scale anchor, else 1


_VARIANTS = {
    "short": _Variant("mediapipe_face_detection_short_range.npz", 128, (8, 16, 16, 16), 2),
    "full": _Variant("mediapipe_face_detection_full_range.npz", 192, (4,), 1),
}


@dataclass(frozen=True)
class BlazeFaceBox:
    """One BlazeFace detection in photo pixels.

    Attributes:
        box: ``(4,)`` ``x0, y0, x1, y1``.
        keypoints: ``(6, 2)`` in the order of the module doc.
        score: Confidence in ``[0, 1]``.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def ssd_anchors(size: int, strides: tuple[int, ...], per_layer: int) -> np.ndarray:
    """Anchor centres of MediaPipe's fixed-size SSD anchors, ``(N, 2)`` in ``[0, 1]``.

    Consecutive layers with the same stride share one grid, their anchors
    interleaved per cell, as ``SsdAnchorsCalculator`` orders them.
    """
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        grid = -(-size // strides[i])
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        cell = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell, per_layer * (j - i), axis=0))
        i = j
    return np.concatenate(centres).astype(np.float64)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou_threshold: float
                 ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` ``x0, y0, x1, y1``.
        points: ``(N, K, 2)`` keypoints.
        scores: ``(N,)``.
        iou_threshold: Boxes overlapping the cluster's best by more than this join it.

    Returns:
        ``(box, points, score)`` per cluster, best first; box and points are the
        score-weighted means of the cluster, score the best one's.
    """
    order = list(np.argsort(-scores, kind="stable"))
    out = []
    while order:
        best = boxes[order[0]]
        rest = boxes[order]
        ix = np.clip(np.minimum(rest[:, 2], best[2]) - np.maximum(rest[:, 0], best[0]), 0, None)
        iy = np.clip(np.minimum(rest[:, 3], best[3]) - np.maximum(rest[:, 1], best[1]), 0, None)
        inter = ix * iy
        area = (rest[:, 2] - rest[:, 0]) * (rest[:, 3] - rest[:, 1])
        union = area + (best[2] - best[0]) * (best[3] - best[1]) - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        members = np.asarray(order)[iou > iou_threshold]
        if members.size:
            w = scores[members]
            box = (boxes[members] * w[:, None]).sum(0) / w.sum()
            pts = (points[members] * w[:, None, None]).sum(0) / w.sum()
        else:
            box, pts = best, points[order[0]]
        out.append((box, pts, float(scores[order[0]])))
        remaining = [k for k, m in zip(order, iou > iou_threshold) if not m]
        if len(remaining) == len(order):
            break
        order = remaining
    return out


@lru_cache(maxsize=None)
def _graph(file: str) -> TFLiteGraph:
    return load_graph(DATA / file)


class BlazeFace:
    """MediaPipe's BlazeFace face detector.

    Args:
        variant: ``"short"`` (128² input, faces within ~2 m) or ``"full"`` (192²,
            small faces too).
        min_score: Detections scoring below are dropped before suppression.
        iou_threshold: Weighted-NMS overlap threshold (MediaPipe: 0.3).

    Raises:
        ModelFileError: the converted model file is missing.
    """

    def __init__(self, variant: Literal["short", "full"] = "short", min_score: float = 0.5,
                 iou_threshold: float = 0.3) -> None:
        if variant not in _VARIANTS:
            raise ValueError(f"BlazeFace variant must be 'short' or 'full', got {variant!r}")
        self.variant = variant
        self._cfg = _VARIANTS[variant]
        self._net = _graph(self._cfg.file)
        self._anchors = ssd_anchors(self._cfg.size, self._cfg.strides, self._cfg.anchors_per_layer)
        self.min_score = float(min_score)
        self.iou_threshold = float(iou_threshold)
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[BlazeFaceBox]:
        """Faces in ``(H, W, 3)`` ``uint8`` RGB, best first, in photo pixels."""
        image = check_image(image)
        h, w = image.shape[:2]
        side = float(max(h, w))
        rect = RotatedRect(w / 2, h / 2, side, side)
        size = self._cfg.size
        tensor = warp_rect(image, rect, (size, size), replicate_border=False, value_range=(-1.0, 1.0))
        with self._lock, torch.inference_mode():
            raw_boxes, raw_scores = (o[0].double().numpy() for o in self._net(torch.from_numpy(tensor)))
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[:, 0], -100.0, 100.0)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, anchors, scores = raw_boxes[keep] / size, self._anchors[keep], scores[keep]
        centre = raw[:, :2] + anchors
        half = 0.5 * raw[:, 2:4]
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :]
        found = []
        for box, pts, score in weighted_nms(boxes, points, scores, self.iou_threshold):
            # Tensor-normalised -> photo pixels (the letterbox square is centred on the photo).
            box_px = (box.reshape(2, 2) - 0.5) * side + [w / 2, h / 2]
            pts_px = (pts - 0.5) * side + [w / 2, h / 2]
            found.append(BlazeFaceBox(box=box_px.reshape(4), keypoints=pts_px, score=score))
        return found
