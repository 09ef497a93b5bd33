"""Tests for the PyTorch MTCNN re-implementation."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from msma_engine.detect import mtcnn as mtcnn_module
from msma_engine.detect.mtcnn import MTCNNDetector, nms
from msma_engine.errors import BackendUnavailableError, ShapeError


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector()


def _check_layout(det) -> None:
    x0, y0, x1, y1 = det.box
    p = det.points5
    assert x0 < x1 and y0 < y1
    assert np.all((p[:, 0] > x0) & (p[:, 0] < x1) & (p[:, 1] > y0) & (p[:, 1] < y1))
    assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0], "image-left points must come first"
    assert max(p[0, 1], p[1, 1]) < p[2, 1] < min(p[3, 1], p[4, 1]), "eyes above nose above mouth"


class TestMTCNNDetector:
    def test_real_photos(self, detector, real_photo):
        name, img = real_photo
        dets = detector.detect(img)
        assert dets, f"no face in {name}"
        face = max(dets, key=lambda d: d.area)
        assert face.score > 0.99 and face.source == "mtcnn"
        assert face.size > 60
        _check_layout(face)
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)

    def test_astronaut_face_position(self, detector, astronaut):
        (face,) = detector.detect(astronaut)
        # The astronaut's face is around x 180-270, y 60-175 in the 512x512 photo.
        centre = 0.5 * (face.box[:2] + face.box[2:])
        assert np.all(np.abs(centre - [224, 118]) < 15)

    def test_two_faces_side_by_side(self, detector, astronaut):
        pair = np.concatenate([astronaut, astronaut], axis=1)
        dets = detector.detect(pair)
        assert len(dets) == 2
        xs = sorted(0.5 * (d.box[0] + d.box[2]) for d in dets)
        assert xs[0] < 512 < xs[1]
        assert abs((xs[1] - xs[0]) - 512) < 5

    def test_blank_image(self, detector):
        assert detector.detect(np.full((300, 400, 3), 128, np.uint8)) == []

    def test_tiny_image(self, detector):
        assert detector.detect(np.full((20, 20, 3), 200, np.uint8)) == []

    def test_large_image_maps_back(self, detector, astronaut):
        import cv2

        (small,) = detector.detect(astronaut)
        big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
        (large,) = detector.detect(big)
        iod = np.linalg.norm(small.points5[0] - small.points5[1]) * 4
        assert np.abs(large.points5 - 4 * small.points5).max() < 0.08 * iod
        assert np.abs(large.box - 4 * small.box).max() < 0.15 * large.size

    def test_rejects_bad_image(self, detector):
        with pytest.raises(ShapeError, match=r"float64 \(10, 10, 3\)"):
            detector.detect(np.zeros((10, 10, 3)))

    def test_missing_weights(self, monkeypatch):
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "facenet_pytorch" else real(n, *a))
        with pytest.raises(BackendUnavailableError, match="facenet-pytorch"):
            mtcnn_module.mtcnn_weights_dir()


class TestNMS:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])

    def test_union(self):
        # IoU(0,1) = 81/119 = 0.68; box 3 lies inside box 0 (IoU 0.16).
        assert nms(self.boxes, self.scores, 0.5).tolist() == [3, 0, 2]
        assert nms(self.boxes, self.scores, 0.7).tolist() == [3, 0, 1, 2]

    def test_min(self):
        # Box 3 is fully inside 0 and 1: intersection over the smaller area is 1.
        assert nms(self.boxes, self.scores, 0.7, mode="min").tolist() == [3, 2]

    def test_empty_and_bad_mode(self):
        assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
        with pytest.raises(ValueError, match="'iou'"):
            nms(self.boxes, self.scores, 0.5, mode="iou")
