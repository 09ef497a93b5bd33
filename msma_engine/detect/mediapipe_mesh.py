"""68 iBUG landmarks (and a fallback detector) from MediaPipe Face Mesh.

MediaPipe's Face Mesh (Apache-2.0, weights inside the ``mediapipe`` wheel)
places 478 points (468 mesh vertices + 10 iris points with
``refine_landmarks``). :data:`MP_TO_IBUG68` picks, for every iBUG 300-W
point, one mesh vertex or the mean of two. The table follows the widely used
correspondence of Peizhi Yan's "Mediapipe_2_Dlib_Landmarks" (MIT), checked by
drawing it on real photos; it is written out here from the mesh topology:

====== ================================================ =========================
iBUG   meaning                                          mesh vertices
====== ================================================ =========================
0-16   jaw, image-left ear level → chin (8) → image-right 127 234 93 132+58 58+172 136 150 176 152 400 379 365 397+288 361 323 454 356
17-21  image-left brow, outer → inner                   156 70+63 105 66 107+55
22-26  image-right brow, inner → outer                  336+285 296 334 293+300 383
27-30  nose bridge, top → tip (30)                      168+6 197+195 5 4
31-35  nostril base, image-left → image-right           98 97 2 326 327
36-41  image-left eye from outer corner, clockwise      33 160 158 133 153 144
42-47  image-right eye from inner corner, clockwise     362 385 387 263 373 380
48-59  outer lips from image-left corner, clockwise     61 39 37 0 267 269 291 321 314 17 84 91
60-67  inner lips from image-left corner, clockwise     78 82 13 312 308 317 14 87
====== ================================================ =========================

The mesh's jaw line runs along the visible face outline, close to but not
identical with the 300-W annotators' jaw. Against dlib's 300-W predictor on
the three public test photos, points 17-67 differ by 4-5 % of the
inter-ocular distance on average, jaw points 0-16 by 12-14 %.

Face Mesh works best when the face fills a good part of its input, so the
landmarker runs it on a square crop around the detection box (2× the box
side, resized to at most 512 px) and keeps the mesh nearest the crop centre.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from msma_engine.detect.base import FaceDetection, check_image, five_from_68
from msma_engine.image_io import to_cv2_affine
from msma_engine.errors import BackendUnavailableError, NoFaceError

__all__ = ["MP_TO_IBUG68", "MediaPipeLandmarker", "MediaPipeDetector", "mesh_to_ibug68"]

logger = logging.getLogger(__name__)

MP_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    # jaw 0-16
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),
    # brows 17-26
    (156,), (70, 63), (105,), (66,), (107, 55),
    (336, 285), (296,), (334,), (293, 300), (383,),
    # nose 27-35
    (168, 6), (197, 195), (5,), (4,), (98,), (97,), (2,), (326,), (327,),
    # eyes 36-47
    (33,), (160,), (158,), (133,), (153,), (144,),
    (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 48-59
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    # inner lips 60-67
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)
"""For each iBUG 300-W landmark, the Face Mesh vertices whose mean gives it."""

_PAIRS = np.array([(ids[0], ids[-1]) for ids in MP_TO_IBUG68])

_CROP_SCALE = 2.0
_CROP_MAX = 512


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """Map Face Mesh points ``(..., 468 or 478, D)`` to iBUG 68 order ``(..., 68, D)``."""
    mesh = np.asarray(mesh)
    return 0.5 * (mesh[..., _PAIRS[:, 0], :] + mesh[..., _PAIRS[:, 1], :])


def _import_mediapipe():
    try:
        import mediapipe as mp

        return mp.solutions
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(
            f"the MediaPipe landmarker needs 'mediapipe==0.10.21' (with mp.solutions): {exc}"
        ) from exc


class MediaPipeLandmarker:
    """68-point landmarker on MediaPipe Face Mesh.

    Args:
        min_confidence: Face Mesh's internal face-detection confidence.

    Raises:
        BackendUnavailableError: mediapipe is not installed.
    """

    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.3) -> None:
        solutions = _import_mediapipe()
        self._mesh = solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=4, refine_landmarks=True, min_detection_confidence=min_confidence
        )
        self._lock = threading.Lock()

    def mesh(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """All 478 Face Mesh points of the face in ``detection``.

        Args:
            image: ``(H, W, 3)`` ``uint8`` RGB.
            detection: The face to mark; its box chooses the crop.

        Returns:
            ``(478, 3)`` float64: x, y in image pixels, z in MediaPipe's units
            (roughly pixels of the crop, smaller = nearer).

        Raises:
            NoFaceError: Face Mesh finds no face in the crop.
        """
        import cv2

        image = check_image(image)
        x0, y0, x1, y1 = detection.box
        side = _CROP_SCALE * max(x1 - x0, y1 - y0, 1.0)
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        scale = min(1.0, _CROP_MAX / side)
        out = max(int(round(side * scale)), 32)
        scale = out / side
        # Crop pixel (u, v) <- image (cx + (u - out/2)/scale, ...): one affine warp does crop, pad and resize.
        m = np.array([[scale, 0.0, out / 2 - scale * cx], [0.0, scale, out / 2 - scale * cy]])
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        crop = cv2.warpAffine(
            image, to_cv2_affine(m), (out, out), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
        )
        with self._lock:
            result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            raise NoFaceError(
                f"MediaPipe Face Mesh found no face inside the box "
                f"({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) px"
            )
        meshes = [np.array([(p.x, p.y, p.z) for p in f.landmark]) * out for f in result.multi_face_landmarks]
        centre = np.array([out / 2, out / 2])
        best = min(meshes, key=lambda pts: np.linalg.norm(pts[:, :2].mean(0) - centre))
        pts = best.copy()
        pts[:, 0] = (pts[:, 0] - m[0, 2]) / scale
        pts[:, 1] = (pts[:, 1] - m[1, 2]) / scale
        pts[:, 2] = pts[:, 2] / scale
        return pts

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """``(68, 2)`` iBUG landmarks in image pixels of the face in ``detection``."""
        return mesh_to_ibug68(self.mesh(image, detection)[:, :2])


class MediaPipeDetector:
    """Fallback five-point detector: BlazeFace boxes + Face Mesh points.

    Boxes and scores come from MediaPipe's full-range face detector; the five
    points are derived from the 68 mapped mesh landmarks (:func:`five_from_68`).

    Args:
        min_confidence: BlazeFace score threshold.
        max_side: Longest side the detector runs on (larger images are downscaled).
    """

    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.5, max_side: int = 1280) -> None:
        solutions = _import_mediapipe()
        self._detector = solutions.face_detection.FaceDetection(
            min_detection_confidence=min_confidence, model_selection=1
        )
        self._landmarker = MediaPipeLandmarker()
        self._lock = threading.Lock()
        self.max_side = int(max_side)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces in ``(H, W, 3)`` ``uint8`` RGB; returns detections by decreasing score."""
        import cv2

        image = check_image(image)
        h, w = image.shape[:2]
        small = image
        if max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        with self._lock:
            result = self._detector.process(small)
        detections = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = np.array([rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h])
            provisional = FaceDetection(box=box, score=det.score[0], points5=np.zeros((5, 2)), source=self.name)
            try:
                points68 = self._landmarker.landmarks(image, provisional)
            except NoFaceError:
                logger.debug("mediapipe: no mesh for BlazeFace box %s; dropped", box.round(1))
                continue
            detections.append(
                FaceDetection(box=box, score=det.score[0], points5=five_from_68(points68), source=self.name)
            )
        detections.sort(key=lambda d: -d.score)
        return detections

