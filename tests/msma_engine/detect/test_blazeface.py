"""Tests for the PyTorch BlazeFace detector (anchors, suppression, detection geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from msma_engine.detect.blazeface import BlazeFace, ssd_anchors, weighted_nms


class TestAnchors:
    def test_counts_match_the_models(self):
        assert ssd_anchors(128, (8, 16, 16, 16), 2).shape == (896, 2)
        assert ssd_anchors(192, (4,), 1).shape == (2304, 2)

    def test_layout(self):
        a = ssd_anchors(128, (8, 16, 16, 16), 2)
        np.testing.assert_allclose(a[:2], [[0.5 / 16, 0.5 / 16]] * 2)  # two anchors per 16×16 cell
        np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])  # x runs fastest
        np.testing.assert_allclose(a[512:518], [[0.5 / 8, 0.5 / 8]] * 6)  # three stride-16 layers share cells


def test_weighted_nms_averages_a_cluster_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    points = np.stack([boxes[:, :2], boxes[:, 2:]], axis=1)
    scores = np.array([0.9, 0.6, 0.8])
    out = weighted_nms(boxes, points, scores, 0.3)
    assert [round(s, 2) for _, _, s in out] == [0.9, 0.8]
    np.testing.assert_allclose(out[0][0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)
    np.testing.assert_allclose(out[1][0], boxes[2])


@pytest.fixture(scope="module", params=["short", "full"])
def blazeface(request):
    return BlazeFace(request.param)


def test_astronaut_eyes_agree_with_mtcnn(blazeface, astronaut):
    from msma_engine.detect.mtcnn import MTCNNDetector

    (face,) = blazeface.detect(astronaut)
    ref = MTCNNDetector().detect(astronaut)[0]
    iod = np.linalg.norm(ref.points5[1] - ref.points5[0])
    # Keypoints 0/1 are the image-left/right eye centres, like MTCNN's points 0/1.
    assert np.linalg.norm(face.keypoints[:2] - ref.points5[:2], axis=1).max() < 0.15 * iod
    assert face.score > 0.7


def test_letterbox_maps_back_to_photo_pixels(blazeface, astronaut):
    # The same face padded into a wide photo: the box must move with it (the square input changes
    # scale). Much wider and short range loses the face, as MediaPipe's own does (900 px: none).
    wide = np.zeros((512, 700, 3), np.uint8)
    wide[:, 94:606] = astronaut
    (face,) = blazeface.detect(astronaut)
    (moved,) = blazeface.detect(wide)
    side = face.box[2] - face.box[0]
    np.testing.assert_allclose(moved.box, face.box + [94, 0, 94, 0], atol=0.1 * side)  # a wrong map: >= 0.3


def test_no_face(blazeface):
    assert blazeface.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_unknown_variant():
    with pytest.raises(ValueError, match="'short' or 'full', got 'medium'"):
        BlazeFace("medium")
