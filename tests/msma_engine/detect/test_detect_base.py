"""Tests for the detection interface types (msma_engine.detect.base)."""

from __future__ import annotations

import numpy as np
import pytest

from msma_engine.detect.base import FaceDetection, FaceDetector, Landmarker68, Landmarks68, check_image, five_from_68
from msma_engine.errors import ShapeError


def test_five_from_68_follows_deep3dfacerecon():
    pts = np.random.default_rng(1).normal(size=(68, 3))
    five = five_from_68(pts)
    np.testing.assert_allclose(five[0], 0.5 * (pts[36] + pts[39]))
    np.testing.assert_allclose(five[1], 0.5 * (pts[42] + pts[45]))
    np.testing.assert_allclose(five[2:], pts[[30, 48, 54]])
    assert five_from_68(np.stack([pts, pts])).shape == (2, 5, 3)
    with pytest.raises(ShapeError, match=r"\(67, 3\)"):
        five_from_68(pts[:67])


def test_face_detection_fields_and_checks():
    det = FaceDetection(box=[10, 20, 50, 80], score=np.float32(0.9), points5=np.zeros((5, 2)), source="x")
    assert det.width == 40 and det.height == 60 and det.size == 40 and det.area == 2400
    assert det.box.dtype == np.float64 and isinstance(det.score, float)
    with pytest.raises(ShapeError, match=r"got shape \(3,\)"):
        FaceDetection(box=[0, 0, 1], score=1, points5=np.zeros((5, 2)), source="x")
    with pytest.raises(ShapeError, match=r"got \(4, 2\)"):
        FaceDetection(box=[0, 0, 1, 1], score=1, points5=np.zeros((4, 2)), source="x")


def test_landmarks68():
    lm = Landmarks68(points=np.arange(136).reshape(68, 2), source="x")
    np.testing.assert_allclose(lm.five(), five_from_68(lm.points))
    with pytest.raises(ShapeError):
        Landmarks68(points=np.zeros((5, 2)), source="x")


def test_check_image():
    assert check_image(np.zeros((4, 5, 3), np.uint8)).shape == (4, 5, 3)
    for bad in (np.zeros((4, 5), np.uint8), np.zeros((4, 5, 4), np.uint8), np.zeros((4, 5, 3), np.float32)):
        with pytest.raises(ShapeError, match="expected an \\(H, W, 3\\) uint8"):
            check_image(bad)


def test_backends_satisfy_protocols():
    from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker
    from msma_engine.detect.mtcnn import MTCNNDetector

    assert isinstance(MTCNNDetector(), FaceDetector)
    assert isinstance(MediaPipeLandmarker(), Landmarker68)
