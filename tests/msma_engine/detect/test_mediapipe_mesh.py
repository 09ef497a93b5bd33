"""Tests for the MediaPipe Face Mesh landmarker and fallback detector (PyTorch port; always available)."""

from __future__ import annotations

import numpy as np
import pytest

from msma_engine.detect.base import FaceDetection, five_from_68
from msma_engine.errors import NoFaceError

from msma_engine.detect import mediapipe_mesh as mp_mesh


@pytest.fixture(scope="module")
def landmarker():
    return mp_mesh.MediaPipeLandmarker()


@pytest.fixture(scope="module")
def mtcnn():
    from msma_engine.detect.mtcnn import MTCNNDetector

    return MTCNNDetector()


def check_ibug_layout(lm: np.ndarray, box: np.ndarray) -> None:
    """Geometric sanity of 68 iBUG points on an upright face."""
    x0, y0, x1, y1 = box
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    assert np.all((lm[:, 0] > x0 - mx) & (lm[:, 0] < x1 + mx)), "landmarks outside the face box (x)"
    assert np.all((lm[:, 1] > y0 - my) & (lm[:, 1] < y1 + my)), "landmarks outside the face box (y)"
    left_eye, right_eye = lm[36:42].mean(0), lm[42:48].mean(0)
    assert left_eye[0] < right_eye[0], "eye 36-41 must be the image-left eye"
    assert lm[0, 0] < lm[8, 0] < lm[16, 0], "jaw runs image-left -> chin -> image-right"
    assert lm[48, 0] < lm[54, 0] and lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]
    assert lm[17:22, 0].mean() < lm[22:27, 0].mean()
    eyes_y, mouth_y = lm[36:48, 1].mean(), lm[48:68, 1].mean()
    assert lm[17:27, 1].mean() < eyes_y < lm[30, 1] < mouth_y < lm[8, 1], \
        "brows, eyes, nose tip, mouth, chin top to bottom"
    assert lm[27, 1] < lm[28, 1] < lm[29, 1] < lm[30, 1], "nose bridge runs downwards"
    tol = 0.02 * np.linalg.norm(right_eye - left_eye)  # a closed mouth puts 62 and 66 together
    assert lm[51, 1] < lm[62, 1] < lm[66, 1] + tol and lm[66, 1] < lm[57, 1], "outer/inner lips in order"


class TestMapping:
    def test_table(self):
        table = mp_mesh.MP_TO_IBUG68
        assert len(table) == 68
        assert all(1 <= len(ids) <= 2 and all(0 <= i < 468 for i in ids) for ids in table)

    def test_mesh_to_ibug68_averages_pairs(self):
        mesh = np.arange(478 * 2, dtype=float).reshape(478, 2)
        out = mp_mesh.mesh_to_ibug68(mesh)
        assert out.shape == (68, 2)
        np.testing.assert_allclose(out[3], 0.5 * (mesh[132] + mesh[58]))
        np.testing.assert_allclose(out[30], mesh[4])


class TestLandmarker:
    def test_real_photos(self, landmarker, mtcnn, real_photo):
        name, img = real_photo
        face = max(mtcnn.detect(img), key=lambda d: d.area)
        lm = landmarker.landmarks(img, face)
        assert lm.shape == (68, 2)
        check_ibug_layout(lm, face.box)

    def test_agrees_with_mtcnn_points(self, landmarker, mtcnn, real_photo):
        name, img = real_photo
        face = max(mtcnn.detect(img), key=lambda d: d.area)
        five = five_from_68(landmarker.landmarks(img, face))
        iod = np.linalg.norm(face.points5[1] - face.points5[0])
        err = np.linalg.norm(five - face.points5, axis=1) / iod
        # On average within 5 % of the inter-ocular distance. Single points differ more for
        # systematic reasons: MTCNN marks the pupil, iBUG the corners' midpoint; MTCNN's nose
        # point sits a little below the 300-W nose tip (point 30).
        assert err.mean() < 0.05, f"{name}: {err.round(3)}"
        assert err.max() < 0.12, f"{name}: {err.round(3)}"

    def test_picks_the_face_in_the_box(self, landmarker, mtcnn, astronaut):
        pair = np.concatenate([astronaut, astronaut], axis=1)
        dets = sorted(mtcnn.detect(pair), key=lambda d: d.box[0])
        left, right = (landmarker.landmarks(pair, d) for d in dets)
        np.testing.assert_allclose(right - [512, 0], left, atol=2.0)

    def test_large_image(self, landmarker, mtcnn, astronaut):
        import cv2

        face = mtcnn.detect(astronaut)[0]
        small = landmarker.landmarks(astronaut, face)
        big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
        big_face = FaceDetection(box=face.box * 4, score=face.score, points5=face.points5 * 4, source="test")
        large = landmarker.landmarks(big, big_face)
        iod = np.linalg.norm(small[36:42].mean(0) - small[42:48].mean(0))
        assert np.median(np.linalg.norm(large / 4 - small, axis=1)) < 0.03 * iod

    def test_mesh_is_478_points_and_remembered_per_image(self, landmarker, mtcnn, astronaut):
        face = mtcnn.detect(astronaut)[0]
        mesh = landmarker.mesh(astronaut, face)
        assert mesh.shape == (478, 3)
        np.testing.assert_allclose(mp_mesh.mesh_to_ibug68(mesh[:, :2]), landmarker.landmarks(astronaut, face))
        mesh[:] = 0  # callers get copies: the remembered mesh must not change
        assert np.abs(landmarker.mesh(astronaut, face)).max() > 100
        flipped = np.ascontiguousarray(astronaut[:, ::-1])  # other content, same box -> a different mesh
        mirrored_box = [512 - face.box[2], face.box[1], 512 - face.box[0], face.box[3]]
        other = landmarker.mesh(flipped, FaceDetection(box=mirrored_box,
                                                       score=1.0, points5=np.zeros((5, 2)), source="test"))
        # The nose tip, mirrored.
        np.testing.assert_allclose(512 - other[4, 0], landmarker.mesh(astronaut, face)[4, 0], atol=4.0)

    def test_no_face_in_box(self, landmarker):
        blank = np.full((400, 400, 3), 90, np.uint8)
        det = FaceDetection(box=[100, 100, 300, 300], score=1.0, points5=np.zeros((5, 2)), source="test")
        with pytest.raises(NoFaceError, match=r"no face inside the box \(100, 100, 300, 300\)"):
            landmarker.landmarks(blank, det)


class TestDetector:
    def test_astronaut(self, mtcnn, astronaut):
        detector = mp_mesh.MediaPipeDetector()
        (face,) = detector.detect(astronaut)
        assert face.source == "mediapipe" and face.score > 0.5
        ref = mtcnn.detect(astronaut)[0]
        iod = np.linalg.norm(ref.points5[1] - ref.points5[0])
        assert np.linalg.norm(face.points5 - ref.points5, axis=1).max() < 0.12 * iod
        assert detector.detect(np.full((200, 300, 3), 128, np.uint8)) == []
