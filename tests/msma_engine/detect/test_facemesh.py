"""Tests for the PyTorch Face Mesh: ROI maths and behaviour under known image transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msma_engine.detect.blazeface import BlazeFace, BlazeFaceBox
from msma_engine.detect.facemesh import REFINEMENTS, FaceMesh, roi_from_detection
from msma_engine.detect.roi import RotatedRect, rect_to_image, warp_rect


def test_roi_from_detection():
    det = BlazeFaceBox(box=np.array([10.0, 20.0, 110.0, 100.0]),
                       keypoints=np.array([[40, 50], [80, 90]] + [[0, 0]] * 4, float),
                       score=0.9)
    roi = roi_from_detection(det)
    assert (roi.cx, roi.cy, roi.width, roi.height) == (60.0, 60.0, 150.0, 150.0)
    assert roi.rotation == pytest.approx(math.pi / 4)


def test_warp_and_map_back_agree():
    # A bright pixel inside a rotated rectangle: find it in the warped tensor and map it back.
    img = np.zeros((200, 300, 3), np.uint8)
    img[120, 170] = 255
    rect = RotatedRect(160.0, 100.0, 80.0, 80.0, math.radians(25))
    t = warp_rect(img, rect, (160, 160), replicate_border=False, value_range=(0.0, 1.0))[0, :, :, 0]
    v, u = np.unravel_index(np.argmax(t), t.shape)
    weights = t[v - 2:v + 3, u - 2:u + 3]
    vv, uu = np.mgrid[v - 2:v + 3, u - 2:u + 3]
    centre = np.array([(uu * weights).sum(), (vv * weights).sum()]) / weights.sum()
    back = rect_to_image(centre[None] / 160.0, rect)[0]
    # The tensor's pixel (u, v) samples the photo at its corner-aligned position, half a tensor pixel off centre.
    np.testing.assert_allclose(back, [170.5, 120.5], atol=0.6)


def test_refinement_tables():
    assert [len(REFINEMENTS[k]) for k in ("lips", "eye_image_left", "eye_image_right")] == [80, 71, 71]
    for ids in REFINEMENTS.values():
        assert len(set(ids)) == len(ids)


@pytest.fixture(scope="module")
def mesh_astronaut(astronaut):
    det = BlazeFace("short").detect(astronaut)[0]
    return det, FaceMesh().run(astronaut, roi_from_detection(det))


def test_mesh_layout(mesh_astronaut, astronaut):
    det, res = mesh_astronaut
    pts = res.points
    assert pts.shape == (478, 3) and res.presence > 0.9
    # Iris centres (468, 473) sit between their eye's corners (33/133 and 362/263).
    for iris, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        lo, hi = sorted((pts[a, 0], pts[b, 0]))
        assert lo < pts[iris, 0] < hi
        assert abs(pts[iris, 1] - 0.5 * (pts[a, 1] + pts[b, 1])) < 0.3 * (hi - lo)
    np.testing.assert_allclose(pts[468:473, 2], pts[list(REFINEMENTS["eye_image_left"][:16]), 2].mean())
    # BlazeFace's eye keypoints agree with the mesh's eye centres.
    iod = np.linalg.norm(pts[468, :2] - pts[473, :2])
    assert np.linalg.norm(det.keypoints[0] - pts[468, :2]) < 0.15 * iod


def test_rotated_photo_gives_rotated_mesh(mesh_astronaut, astronaut):
    import cv2

    _, res = mesh_astronaut
    centre = res.points[:468, :2].mean(0)
    rot = cv2.getRotationMatrix2D(tuple(centre), 35.0, 1.0)  # photo rotated 35° about the face
    turned = cv2.warpAffine(astronaut, rot, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    det = BlazeFace("short").detect(turned)[0]
    got = FaceMesh().run(turned, roi_from_detection(det)).points[:, :2]
    want = res.points[:, :2] @ rot[:, :2].T + rot[:, 2]
    iod = np.linalg.norm(res.points[468, :2] - res.points[473, :2])
    err = np.linalg.norm(got - want, axis=1)
    assert np.median(err) < 0.03 * iod, np.median(err) / iod
    assert err[468:].max() < 0.06 * iod


def test_no_face_in_roi_gives_none():
    blank = np.full((300, 300, 3), 100, np.uint8)
    assert FaceMesh().run(blank, RotatedRect(150, 150, 200, 200)) is None
