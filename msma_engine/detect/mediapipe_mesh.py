"""68 iBUG landmarks, all 478 Face Mesh points, and a fallback detector, from MediaPipe's models.

MediaPipe's Face Mesh with attention (Apache-2.0) places 478 points (468 mesh
vertices + 10 iris points). It runs here in PyTorch — the converted models in
``msma_engine/data/`` (:mod:`~msma_engine.detect.facemesh`,
:mod:`~msma_engine.detect.blazeface`); the ``mediapipe`` package is not needed
and not imported. The results match ``mediapipe.solutions.face_mesh`` 0.10.21
(``refine_landmarks=True``) to about 0.001 px (tests/msma_engine/detect/test_mediapipe_parity.py).
:data:`MP_TO_IBUG68` picks, for every iBUG 300-W
point, one mesh vertex or the mean of two. The table follows the widely used
correspondence of Peizhi Yan's "Mediapipe_2_Dlib_Landmarks" (MIT), checked by
drawing it on real photos; it is written out here from the mesh topology:

====== ================================================ =========================
iBUG   meaning                                          mesh vertices
====== ================================================ =========================
0-16   jaw, image-left ear level → chin (8) →         127 234 93 132+58 58+172 136 150 176 152
       image-right                                      400 379 365 397+288 361 323 454 356
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
landmarker works on a square crop around the detection box (2× the box side,
resized to at most 512 px), finds the face there with short-range BlazeFace (as
MediaPipe's Face Mesh graph does) and meshes the detection nearest the crop centre.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict

import numpy as np

from msma_engine.detect.base import FaceDetection, check_image, five_from_68
from msma_engine.detect.blazeface import BlazeFace
from msma_engine.detect.facemesh import FaceMesh, roi_from_detection
from msma_engine.errors import NoFaceError
from msma_engine.image_io import to_cv2_affine

__all__ = ["MP_TO_IBUG68", "MediaPipeLandmarker", "MediaPipeDetector", "forget_meshes", "mesh_to_ibug68"]

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
_MAX_FACES = 4  # MediaPipe's max_num_faces as this landmarker always set it
_RECENT = 8  # meshes remembered

# The mediapipe detector meshes each face for its five points and the pipeline's landmarker
# (another instance) then asks for the same face: recent meshes are remembered by image
# content, box and settings, for all instances of this process.
_RECENT_MESHES: OrderedDict[tuple, np.ndarray] = OrderedDict()
_RECENT_LOCK = threading.Lock()


def forget_meshes() -> None:
    """Forget the remembered meshes (benchmarks do, to time the work itself)."""
    with _RECENT_LOCK:
        _RECENT_MESHES.clear()


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """Map Face Mesh points ``(..., 468 or 478, D)`` to iBUG 68 order ``(..., 68, D)``."""
    mesh = np.asarray(mesh)
    return 0.5 * (mesh[..., _PAIRS[:, 0], :] + mesh[..., _PAIRS[:, 1], :])


class MediaPipeLandmarker:
    """68-point landmarker (and 478-point mesh) on MediaPipe Face Mesh.

    Args:
        min_confidence: Score threshold of the short-range BlazeFace run inside the crop.

    Raises:
        ModelFileError: a converted model file is missing from ``msma_engine/data``.
    """

    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.3) -> None:
        self.min_confidence = float(min_confidence)
        self._detector = BlazeFace("short", min_score=min_confidence)
        self._mesh = FaceMesh()

    def mesh(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """All 478 Face Mesh points of the face in ``detection``.

        Args:
            image: ``(H, W, 3)`` ``uint8`` RGB.
            detection: The face to mark; its box chooses the crop.

        Returns:
            ``(478, 3)`` float64: x, y in image pixels, z in image pixels along the
            camera axis (MediaPipe's relative depth, smaller = nearer; 0 near the face centre).

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
        # The mesh depends only on the crop (≤ 512², cheap to hash) and where it sits in the photo.
        key = (hashlib.blake2b(crop.data, digest_size=16).digest(), m.tobytes(), self.min_confidence)
        with _RECENT_LOCK:
            if key in _RECENT_MESHES:
                _RECENT_MESHES.move_to_end(key)
                return _RECENT_MESHES[key].copy()
        pts = self._crop_mesh(crop)
        if pts is None:
            raise NoFaceError(
                f"MediaPipe Face Mesh found no face inside the box "
                f"({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) px"
            )
        pts[:, 0] = (pts[:, 0] - m[0, 2]) / scale
        pts[:, 1] = (pts[:, 1] - m[1, 2]) / scale
        pts[:, 2] = pts[:, 2] / scale
        with _RECENT_LOCK:
            _RECENT_MESHES[key] = pts
            while len(_RECENT_MESHES) > _RECENT:
                _RECENT_MESHES.popitem(last=False)
        return pts.copy()

    def _crop_mesh(self, crop: np.ndarray) -> np.ndarray | None:
        """``(478, 3)`` crop-pixel mesh of the detected face nearest the crop centre, or None."""
        out = crop.shape[0]
        faces = self._detector.detect(crop)[:_MAX_FACES]
        centre = np.array([out / 2, out / 2])
        faces.sort(key=lambda f: np.linalg.norm(0.5 * (f.box[:2] + f.box[2:]) - centre))
        for face in faces:
            result = self._mesh.run(crop, roi_from_detection(face))
            if result is not None:
                return result.points.copy()
        return None

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """``(68, 2)`` iBUG landmarks in image pixels of the face in ``detection``."""
        return mesh_to_ibug68(self.mesh(image, detection)[:, :2])


class MediaPipeDetector:
    """Five-point detector: full-range BlazeFace boxes + Face Mesh points.

    Boxes and scores come from MediaPipe's full-range face detector (faces down
    to a few percent of the photo); the five points are derived from the 68
    mapped mesh landmarks (:func:`five_from_68`).

    Args:
        min_confidence: BlazeFace score threshold.
        max_side: Longest side the detector runs on (larger images are first
            downscaled with area averaging, as before MediaPipe saw them).
    """

    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.5, max_side: int = 1280) -> None:
        self._detector = BlazeFace("full", min_score=min_confidence)
        self._landmarker = MediaPipeLandmarker()
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
        detections = []
        for det in self._detector.detect(small):
            # Back to full-resolution pixels through the exact resize ratios.
            ratio = np.array([w / small.shape[1], h / small.shape[0]] * 2)
            box = det.box * ratio
            provisional = FaceDetection(box=box, score=det.score, points5=np.zeros((5, 2)), source=self.name)
            try:
                points68 = self._landmarker.landmarks(image, provisional)
            except NoFaceError:
                logger.debug("mediapipe: no mesh for BlazeFace box %s; dropped", box.round(1))
                continue
            detections.append(FaceDetection(box=box, score=det.score, points5=five_from_68(points68), source=self.name))
        detections.sort(key=lambda d: -d.score)
        return detections
