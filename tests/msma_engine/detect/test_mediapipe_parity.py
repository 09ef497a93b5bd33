"""Parity of the PyTorch port with mediapipe 0.10.21 itself (skipped where mediapipe is absent).

The reference (tools/mediapipe_reference.py) runs ``mediapipe.solutions`` on
exactly the input the port gets, so differences come only from the port.
Issue 11's bar is ≤ 1 px mean over the landmarks; the port measures ~0.003 px,
so the bounds here are far tighter, to catch a regression early.
"""

from __future__ import annotations

import numpy as np
import pytest

from msma_engine.detect.base import FaceDetection
from msma_engine.detect.blazeface import BlazeFace
from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker
from msma_engine.errors import BackendUnavailableError

reference = pytest.importorskip("tools.mediapipe_reference")


@pytest.fixture(scope="module", autouse=True)
def _needs_mediapipe():
    try:
        reference.solutions()
    except BackendUnavailableError as exc:
        pytest.skip(f"mediapipe 0.10.21 (the parity reference) is not importable: {exc}")


@pytest.fixture(scope="module")
def mtcnn():
    from msma_engine.detect.mtcnn import MTCNNDetector

    return MTCNNDetector()


def _cases(real_photo, mtcnn):
    import cv2

    name, img = real_photo
    face = max(mtcnn.detect(img), key=lambda d: d.area)
    yield name, img, face
    # Rotated by 25° (exercises the ROI rotation) and with the face cut by the photo edge
    # (exercises edge replication in the 192² input).
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 25.0, 1.0)
    turned = cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REFLECT)
    yield f"{name} rotated", turned, max(mtcnn.detect(turned), key=lambda d: d.area)
    x0, y0, x1, y1 = face.box
    cut = np.ascontiguousarray(img[:, int(x0 + 0.25 * (x1 - x0)):])
    shift = np.array([int(x0 + 0.25 * (x1 - x0)), 0, int(x0 + 0.25 * (x1 - x0)), 0])
    yield f"{name} cut", cut, FaceDetection(box=face.box - shift, score=1.0, points5=np.zeros((5, 2)), source="test")


def test_face_mesh_matches_mediapipe(real_photo, mtcnn):
    landmarker = MediaPipeLandmarker()
    for name, img, face in _cases(real_photo, mtcnn):
        ref = reference.reference_mesh(img, face)
        assert ref is not None, f"{name}: mediapipe found no face"
        ours = landmarker.mesh(img, face)
        d = np.linalg.norm(ours[:, :2] - ref[:, :2], axis=1)
        assert d.mean() < 0.05 and d.max() < 0.5, f"{name}: mean {d.mean():.4f} px, max {d.max():.4f} px"
        assert np.abs(ours[:, 2] - ref[:, 2]).max() < 0.5, f"{name}: z differs"


@pytest.mark.parametrize("variant", ["short", "full"])
def test_detection_boxes_match_mediapipe(real_photo, variant):
    name, img = real_photo
    ours = np.array([d.box for d in BlazeFace(variant).detect(img)]).reshape(-1, 4)
    ref = reference.reference_boxes(img, full_range=variant == "full")
    assert ours.shape == ref.shape, f"{name}: {len(ours)} boxes vs mediapipe's {len(ref)}"
    np.testing.assert_allclose(ours, ref, atol=0.05)
