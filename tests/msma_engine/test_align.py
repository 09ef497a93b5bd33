"""Tests for msma_engine.align: Deep3DFaceRecon's five-point crop and its exact inverse."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from msma_engine.align import RESCALE_FACTOR, CropTransform, align_crop, pos, template_from_landmarks68
from msma_engine.errors import ShapeError
from shared_data import BFM_HELPERS

LM3D = BFM_HELPERS / "similarity_Lm3D_all.mat"

# A plausible five-point template in metres (model frame: +x subject's left, +y up, +z forward).
TEMPLATE_M = np.array([
    [-0.031, 0.029, 0.010],   # image-left eye (subject's right)
    [0.031, 0.029, 0.010],
    [0.000, -0.005, 0.055],   # nose tip
    [-0.025, -0.038, 0.022],
    [0.025, -0.038, 0.022],
])


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _project(template: np.ndarray, s: float, centre_px: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Weak-perspective image points (y down) of a template placed at ``centre_px``."""
    cam = template @ rot.T
    return np.stack([centre_px[0] + s * cam[:, 0], centre_px[1] - s * cam[:, 1]], axis=1)


class TestPOS:
    def test_recovers_scale_and_translation(self):
        rot = _rotation(0.3, -0.2, 0.1)
        xp = (TEMPLATE_M @ rot.T)[:, :2] * 2500.0 + [40.0, -7.0]
        t, s = pos(xp, TEMPLATE_M)
        np.testing.assert_allclose(t, [40.0, -7.0], atol=1e-9)
        assert s == pytest.approx(2500.0, rel=1e-9)

    def test_two_column_template(self):
        xp = TEMPLATE_M[:, :2] * 3.0 + 1.0
        t, s = pos(xp, TEMPLATE_M[:, :2])
        np.testing.assert_allclose(t, [1.0, 1.0], atol=1e-9)
        assert s == pytest.approx(3.0)

    def test_shape_errors(self):
        with pytest.raises(ShapeError, match=r"\(5, 3\)"):
            pos(np.zeros((4, 2)), TEMPLATE_M)
        with pytest.raises(ShapeError, match=r"\(5, 4\)"):
            pos(np.zeros((5, 2)), np.zeros((5, 4)))


class TestAlignCrop:
    def test_frontal_face_geometry(self):
        # A frontal face 3000 px per metre, template origin at (700, 400) in the photo.
        pts = _project(TEMPLATE_M, 3000.0, np.array([700.0, 400.0]), np.eye(3))
        tf = align_crop(pts, TEMPLATE_M)
        np.testing.assert_allclose(tf.apply([700.0, 400.0]), [112.0, 112.0], atol=1e-9)
        # 102 crop pixels per decimetre = 1020 per metre.
        assert tf.scale == pytest.approx(10 * RESCALE_FACTOR / 3000.0)
        crop_pts = tf.apply(pts)
        np.testing.assert_allclose(crop_pts[1, 0] - crop_pts[0, 0], 0.062 * 1020.0, rtol=1e-9)
        np.testing.assert_allclose(tf.matrix[0, 1], 0.0)  # scale + translation only, as Deep3DFaceRecon

    def test_units(self):
        pts = _project(TEMPLATE_M, 3000.0, np.array([700.0, 400.0]), np.eye(3))
        a = align_crop(pts, TEMPLATE_M)
        b = align_crop(pts, TEMPLATE_M * 10.0, metres_per_unit=0.1)  # the same template in decimetres
        np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-9)

    def test_round_trip(self):
        rot = _rotation(0.4, 0.1, -0.3)
        pts = _project(TEMPLATE_M, 5123.0, np.array([1500.3, 900.7]), rot)
        tf = align_crop(pts, TEMPLATE_M)
        rng = np.random.default_rng(0)
        photo = rng.uniform([0, 0], [3000, 2000], size=(1000, 2))
        np.testing.assert_allclose(tf.inverse(tf.apply(photo)), photo, atol=1e-6)
        crop = rng.uniform(0, 224, size=(50, 3, 2))
        np.testing.assert_allclose(tf.apply(tf.inverse(crop)), crop, atol=1e-6)
        np.testing.assert_allclose(
            np.vstack([tf.inverse_matrix, [0, 0, 1]]) @ np.vstack([tf.matrix, [0, 0, 1]]), np.eye(3), atol=1e-12
        )

    def test_bad_input(self):
        with pytest.raises(ShapeError, match=r"points5 must be \(5, 2\), got \(68, 2\)"):
            align_crop(np.zeros((68, 2)), TEMPLATE_M)
        with pytest.raises(ShapeError, match="template"):
            align_crop(np.zeros((5, 2)), TEMPLATE_M[:4])
        with pytest.raises(ValueError, match="non-finite"):
            align_crop(np.full((5, 2), np.nan), TEMPLATE_M)
        with pytest.raises(ValueError, match="singular"):
            CropTransform(matrix=np.zeros((2, 3)))


class TestWarp:
    @staticmethod
    def _coordinate_image(h: int, w: int) -> np.ndarray:
        """float32 image whose channels hold each pixel centre's (x, y) and a constant."""
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        return np.dstack([xs, ys, np.ones_like(xs)])

    @pytest.mark.parametrize("scale", [1.7, 0.8, 0.2])
    def test_samples_the_mapped_location(self, scale):
        # Bilinear (and area) resampling of a linear ramp is exact, so each crop pixel must hold
        # the photo coordinates that CropTransform.inverse gives for its centre.
        img = self._coordinate_image(1400, 1300)
        tf = CropTransform(matrix=np.array([[scale, 0, 112 - scale * 650.3], [0, scale, 112 - scale * 700.6]]))
        crop = tf.warp(img)
        assert crop.shape == (224, 224, 3) and crop.dtype == np.float32
        rows, cols = np.mgrid[8:216, 8:216]
        expected = tf.inverse(np.stack([cols + 0.5, rows + 0.5], axis=-1))
        # OpenCV quantises sampling positions to 1/32 pixel of the image it samples (the
        # area-reduced copy when the crop shrinks more than 2x).
        tol = 1.0 / 32.0 / min(1.0, 2.0 * scale) + 1e-3
        np.testing.assert_allclose(crop[8:216, 8:216, :2], expected, atol=tol)

    def test_other_size_and_outside_is_black(self):
        img = np.full((100, 100, 3), 255, np.uint8)
        tf = CropTransform(matrix=np.array([[1.0, 0, 150.0], [0, 1.0, 0.0]]))
        out = tf.warp(img, size=112)
        assert out.shape == (112, 112, 3)
        assert (out[:, :50] == 0).all() and (out[10:40, 90:] == 255).all()
        far = CropTransform(matrix=np.array([[1.0, 0, 500.0], [0, 1.0, 0.0]]))
        assert (far.warp(img) == 0).all()


@pytest.mark.skipif(not LM3D.exists(), reason=f"{LM3D} (Deep3DFaceRecon's lm3d) not present")
class TestOnRealPhoto:
    def test_template_from_landmarks68(self):
        from scipy.io import loadmat

        lm = loadmat(str(LM3D))["lm"]
        five = template_from_landmarks68(lm)
        # Deep3DFaceRecon's load_lm3d, written out.
        idx = np.array([31, 37, 40, 43, 46, 49, 55]) - 1
        ref = np.stack([lm[idx[0]], lm[idx[[1, 2]]].mean(0), lm[idx[[3, 4]]].mean(0), lm[idx[5]], lm[idx[6]]])
        np.testing.assert_allclose(five, ref[[1, 2, 0, 3, 4]])
        with pytest.raises(ShapeError):
            template_from_landmarks68(lm[:, :2])

    def test_crop_keeps_landmarks_on_the_face(self):
        from scipy.io import loadmat

        from msma_engine.detect import detect_faces, landmarks68, pick_face

        img = skimage.data.astronaut()
        template = template_from_landmarks68(loadmat(str(LM3D))["lm"])
        (face,) = pick_face(detect_faces(img))
        tf = align_crop(face.points5, template, metres_per_unit=0.1)
        crop = tf.warp(img)
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
        lm_photo = landmarks68(img, face).points
        lm_mapped = tf.apply(lm_photo)
        # Landmarking the crop again finds the same content where the transform put it.
        (crop_face,) = pick_face(detect_faces(crop))
        lm_crop = landmarks68(crop, crop_face).points
        iod = np.linalg.norm(lm_mapped[36:42].mean(0) - lm_mapped[42:48].mean(0))
        err = np.linalg.norm(lm_crop - lm_mapped, axis=1)
        assert np.median(err) < 0.03 * iod and err[27:68].max() < 0.08 * iod
        # Deep3DFaceRecon's framing: face centred, eye distance about 0.62 dm x 102 px/dm.
        assert 50 < iod < 75
        assert np.all(np.abs(lm_mapped[30] - 112) < 25)
