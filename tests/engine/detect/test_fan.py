"""Tests for the optional FAN landmarker (skipped without face-alignment and cached weights)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import BackendUnavailableError


def _landmarker():
    from engine.detect.fan import FANLandmarker

    return FANLandmarker()


def test_unavailable_reason_names_the_package():
    try:
        _landmarker()
    except BackendUnavailableError as exc:
        assert "face-alignment" in str(exc) or "2DFAN4" in str(exc)
    else:
        pytest.skip("face-alignment and cached FAN weights are present")


def test_landmarks_on_astronaut(astronaut):
    try:
        lm68 = _landmarker()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    from engine.detect.mtcnn import MTCNNDetector

    face = MTCNNDetector().detect(astronaut)[0]
    lm = lm68.landmarks(astronaut, face)
    assert lm.shape == (68, 2)
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean() and lm[36:48, 1].mean() < lm[48:68, 1].mean()
    iod = np.linalg.norm(face.points5[1] - face.points5[0])
    assert np.linalg.norm(lm[30] - face.points5[2]) < 0.2 * iod
