"""Implausible faces are refused before fitting (issue 14.9: an upside-down photo gave a garbage face, exit 0)."""

from __future__ import annotations

import numpy as np
import pytest

from msma_engine.errors import ImplausibleFaceError
from msma_engine.plausibility import check_landmark_geometry, check_upright


def _upright_landmarks() -> np.ndarray:
    """A rough upright iBUG-68 layout: eyes at y=100, mouth at y=150, IOD 50 px."""
    lm = np.zeros((68, 2))
    lm[36:42] = [100, 100]
    lm[42:48] = [150, 100]
    lm[48:68] = [125, 150]
    lm[27:36] = [125, 125]
    return lm + np.random.default_rng(0).normal(scale=1.0, size=(68, 2))


def test_geometry_accepts_upright_and_tilted_faces():
    lm = _upright_landmarks()
    check_landmark_geometry(lm)
    angle = np.radians(60)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    check_landmark_geometry(lm @ rot.T)


@pytest.mark.parametrize("transform", ["vflip", "rot180"])
def test_geometry_refuses_flipped_and_turned_landmarks(transform):
    lm = _upright_landmarks()
    lm = lm * [1, -1] if transform == "vflip" else -lm
    with pytest.raises(ImplausibleFaceError, match="not an upright face"):
        check_landmark_geometry(lm, "p.jpg")


@pytest.fixture(scope="module")
def astronaut_face():
    from skimage import data

    from msma_engine.detect import detect_faces, pick_face

    img = data.astronaut()
    flipped = np.ascontiguousarray(img[::-1])
    return [(im, pick_face(detect_faces(im), "largest")[0]) for im in (img, flipped)]


def test_upside_down_photo_is_refused(astronaut_face):
    (upright, det), (flipped, det_flipped) = astronaut_face
    check_upright(upright, det)
    # The landmarker fits an upright template into the flipped face, so the geometry check passes;
    # the orientation check is what catches it.
    with pytest.raises(ImplausibleFaceError, match="upside down"):
        check_upright(flipped, det_flipped, name="flipped.png")
