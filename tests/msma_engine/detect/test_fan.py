"""Tests for the optional FAN landmarker (skipped without face-alignment)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msma_engine.detect import fan
from msma_engine.errors import BackendUnavailableError


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    fan.clear_cache()
    yield tmp_path
    fan.clear_cache()


def test_no_cached_weights_means_unavailable(empty_hub):
    with pytest.raises(BackendUnavailableError, match="2DFAN4.*never does"):
        fan.fan_weights_path()
    with pytest.raises(BackendUnavailableError, match="face-alignment|2DFAN4"):
        fan.FANLandmarker()


@pytest.mark.slow  # numba compiles face-alignment's heat-map decoding (~25 s)
def test_runs_with_cached_state_dict(empty_hub, astronaut):
    # Randomly initialised FAN weights: checks loading, cropping and coordinate mapping only.
    models = pytest.importorskip("face_alignment.models", reason="face-alignment (and numba) not installed")
    torch.manual_seed(0)
    (empty_hub / "checkpoints").mkdir()
    torch.save(models.FAN(4).state_dict(), empty_hub / "checkpoints" / "2DFAN4-test.pth.tar")
    from msma_engine.detect.mtcnn import MTCNNDetector

    face = MTCNNDetector().detect(astronaut)[0]
    lm = fan.FANLandmarker().landmarks(astronaut, face)
    assert lm.shape == (68, 2) and np.all(np.isfinite(lm))
    # Heat-map maxima always lie in FAN's crop: a square of side ~(w + h) / 195 * 200 about the face.
    side = (face.width + face.height) / 195.0 * 200.0
    centre = 0.5 * (face.box[:2] + face.box[2:]) - [0, 0.12 * face.height]
    assert np.all(np.abs(lm - centre) <= 0.5 * side + 2)


def test_real_weights(astronaut):
    fan.clear_cache()
    try:
        lm68 = fan.FANLandmarker()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    from msma_engine.detect.mtcnn import MTCNNDetector

    face = MTCNNDetector().detect(astronaut)[0]
    lm = lm68.landmarks(astronaut, face)
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean() and lm[36:48, 1].mean() < lm[48:68, 1].mean()
    iod = np.linalg.norm(face.points5[1] - face.points5[0])
    assert np.linalg.norm(lm[30] - face.points5[2]) < 0.2 * iod
