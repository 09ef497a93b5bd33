"""MediaPipe 0.10.21 itself, run the way the ported models are used: the parity reference.

Test- and benchmark-time only (``mediapipe`` is not a run-time dependency). The
functions mirror :class:`msma_engine.detect.mediapipe_mesh.MediaPipeLandmarker`
(the same 2× box crop, ``mediapipe.solutions.face_mesh`` with
``refine_landmarks=True``, the mesh nearest the crop centre) and the full-range
BlazeFace detector, so that their outputs can be compared point for point.
"""

from __future__ import annotations

import numpy as np

from msma_engine.detect.base import FaceDetection
from msma_engine.errors import BackendUnavailableError
from msma_engine.image_io import to_cv2_affine

__all__ = ["solutions", "reference_mesh", "reference_boxes"]


def solutions():
    """``mediapipe.solutions`` of mediapipe 0.10.21.

    Raises:
        BackendUnavailableError: mediapipe (with ``solutions``) is not importable.
    """
    try:
        import mediapipe as mp

        return mp.solutions
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(
            f"the parity reference needs mediapipe==0.10.21 with mp.solutions: {exc}") from exc


def reference_mesh(image: np.ndarray, detection: FaceDetection) -> np.ndarray | None:
    """mediapipe's Face Mesh on the landmarker's crop: ``(478, 3)`` photo pixels, or None (no face)."""
    import cv2

    x0, y0, x1, y1 = detection.box
    side = 2.0 * max(x1 - x0, y1 - y0, 1.0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    out = max(int(round(side * min(1.0, 512 / side))), 32)
    scale = out / side
    m = np.array([[scale, 0.0, out / 2 - scale * cx], [0.0, scale, out / 2 - scale * cy]])
    crop = cv2.warpAffine(image, to_cv2_affine(m), (out, out), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    with solutions().face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=True,
                                        min_detection_confidence=0.3) as mesh:
        faces = mesh.process(crop).multi_face_landmarks
    if not faces:
        return None
    pts = min((np.array([(p.x, p.y, p.z) for p in f.landmark]) * out for f in faces),
              key=lambda p: np.linalg.norm(p[:, :2].mean(0) - out / 2))
    pts[:, :2] = (pts[:, :2] - m[:, 2]) / scale
    pts[:, 2] /= scale
    return pts


def reference_boxes(image: np.ndarray, full_range: bool = True, min_score: float = 0.5) -> np.ndarray:
    """mediapipe's face detector on the whole photo: ``(N, 4)`` boxes in photo pixels, best first."""
    h, w = image.shape[:2]
    with solutions().face_detection.FaceDetection(min_detection_confidence=min_score,
                                                  model_selection=int(full_range)) as det:
        found = sorted(det.process(image).detections or [], key=lambda d: -d.score[0])
    boxes = [d.location_data.relative_bounding_box for d in found]
    corners = [[r.xmin * w, r.ymin * h, (r.xmin + r.width) * w, (r.ymin + r.height) * h] for r in boxes]
    return np.array(corners).reshape(-1, 4)
