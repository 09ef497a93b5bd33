"""Tests for backend selection and face picking (msma_engine.detect.select)."""

from __future__ import annotations

import numpy as np
import pytest

from msma_engine.detect import select
from msma_engine.detect.base import FaceDetection
from msma_engine.errors import BackendUnavailableError, FaceTooSmallError, MultipleFacesError, NoFaceError


def _det(x0: float, y0: float, side: float, score: float = 0.99) -> FaceDetection:
    pts = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]) * side + [x0, y0]
    return FaceDetection(box=[x0, y0, x0 + side, y0 + side], score=score, points5=pts, source="test")


class TestPickFace:
    faces = [_det(300, 10, 80), _det(10, 10, 120), _det(600, 10, 50)]

    def test_largest(self):
        (face,) = select.pick_face(self.faces)
        assert face.size == 120

    def test_number_counts_left_to_right(self):
        assert select.pick_face(self.faces, 0)[0].box[0] == 10
        assert select.pick_face(self.faces, 2)[0].box[0] == 600
        assert select.pick_face(self.faces, -1)[0].box[0] == 600

    def test_all_left_to_right(self):
        assert [f.box[0] for f in select.pick_face(self.faces, "all")] == [10, 300, 600]
        assert [f.box[0] for f in select.pick_face(self.faces, "all", min_size=60)] == [10, 300]

    def test_no_face(self):
        with pytest.raises(NoFaceError, match=r"no face found in holiday\.jpg"):
            select.pick_face([], image_name="holiday.jpg")

    def test_bad_number(self):
        with pytest.raises(NoFaceError, match=r"face number 3 requested but g\.jpg has 3 face\(s\), numbered 0-2"):
            select.pick_face(self.faces, 3, image_name="g.jpg")

    def test_only_with_several(self):
        with pytest.raises(MultipleFacesError, match=r"3 faces found in g\.jpg where one was expected"):
            select.pick_face(self.faces, "only", image_name="g.jpg")
        assert select.pick_face(self.faces[:1], "only")[0].size == 80

    def test_too_small(self):
        with pytest.raises(FaceTooSmallError,
                           match=r"face in s\.jpg is too small: 30x30 px found, the minimum is 40 px"):
            select.pick_face([_det(0, 0, 30)], image_name="s.jpg")
        with pytest.raises(FaceTooSmallError, match=r"all 3 face\(s\) in image are too small: "
                                                    r"the largest is 120 px, the minimum is 200 px"):
            select.pick_face(self.faces, "all", min_size=200)

    def test_low_scores_ignored_when_a_sure_face_exists(self):
        weak_big = _det(500, 0, 300, score=0.75)
        (face,) = select.pick_face([*self.faces, weak_big])
        assert face.size == 120
        assert len(select.pick_face([*self.faces, weak_big], "all")) == 3
        assert select.pick_face([weak_big])[0] is weak_big  # nothing surer: keep it

    def test_unknown_which(self):
        with pytest.raises(ValueError, match="'biggest'"):
            select.pick_face(self.faces, "biggest")


class TestOnPhotos:
    def test_real_photo_full_path(self, real_photo):
        name, img = real_photo
        (face,) = select.pick_face(select.detect_faces(img), image_name=name)
        lm = select.landmarks68(img, face)
        assert lm.points.shape == (68, 2) and lm.source in select.LANDMARKERS
        assert lm.source == select.get_landmarker("auto").name

    def test_one_face_in_each_photo(self, real_photo):
        # The Obama portrait also yields a background detection at ~0.75, which must not count.
        name, img = real_photo
        assert len(select.pick_face(select.detect_faces(img), "only", image_name=name)) == 1

    def test_two_astronauts(self, astronaut):
        pair = np.concatenate([astronaut, astronaut], axis=1)
        dets = select.detect_faces(pair)
        assert len(dets) == 2
        with pytest.raises(MultipleFacesError, match="2 faces found in pair"):
            select.pick_face(dets, "only", image_name="pair")
        left, right = select.pick_face(dets, "all")
        assert left.box[2] < 512 < right.box[0]

    def test_blank_image_has_no_face(self):
        blank = np.full((480, 640, 3), 200, np.uint8)
        with pytest.raises(NoFaceError, match="no face found in blank.png"):
            select.pick_face(select.detect_faces(blank), image_name="blank.png")

    def test_tiny_image_has_no_face(self, astronaut):
        import cv2

        tiny = cv2.resize(astronaut, (20, 20), interpolation=cv2.INTER_AREA)
        with pytest.raises(NoFaceError):
            select.pick_face(select.detect_faces(tiny), image_name="tiny.png")

    def test_small_face_is_reported_too_small(self, astronaut):
        import cv2

        # The astronaut's face is ~90 px wide at 512 px; at 192 px it is ~34 px.
        small = cv2.resize(astronaut, (192, 192), interpolation=cv2.INTER_AREA)
        dets = select.detect_faces(small)
        assert dets, "the shrunken face should still be detected"
        with pytest.raises(FaceTooSmallError, match=r"small\.png is too small: \d+x\d+ px found, the minimum is 40 px"):
            select.pick_face(dets, image_name="small.png")


class TestBackends:
    def test_unknown_names(self):
        with pytest.raises(ValueError, match="unknown detector 'yolo'"):
            select.get_detector("yolo")
        with pytest.raises(ValueError, match="unknown landmarker 'x'"):
            select.get_landmarker("x")

    def test_auto_prefers_mtcnn(self):
        assert select.get_detector().name == "mtcnn"

    def test_auto_resolution_is_cached(self, monkeypatch):
        assert select.get_landmarker() is select.get_landmarker()
        probes = []

        def missing():
            probes.append("mtcnn")
            raise BackendUnavailableError("pretend facenet-pytorch is absent")

        monkeypatch.setitem(select.DETECTORS, "mtcnn", missing)
        select.clear_backends()
        try:
            first = select.get_detector()
            assert select.get_detector() is first and probes == ["mtcnn"]  # "auto" probed the missing one once
        finally:
            select.clear_backends()

    def test_auto_falls_back_and_reports(self, monkeypatch):
        def missing():
            raise BackendUnavailableError("pretend facenet-pytorch is absent")

        monkeypatch.setitem(select.DETECTORS, "mtcnn", missing)
        select.clear_backends()
        try:
            assert select.get_detector().name == "mediapipe"
            monkeypatch.setitem(select.DETECTORS, "mediapipe", missing)
            select.clear_backends()
            with pytest.raises(BackendUnavailableError, match="mtcnn: pretend.*mediapipe: pretend"):
                select.get_detector()
        finally:
            select.clear_backends()
