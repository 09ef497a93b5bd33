"""Video / image-sequence input: reading, tracking a moving face, smoothing jitter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from msma_engine.errors import ImageError
from msma_engine.face_model import DEFAULT_MODEL_PATH
from msma_engine.video import frame_to_frame_rms, gaussian_smooth, open_frames, smooth_sequence, track_sequence


def _frames(n: int = 8, shift: int = 3, noise: float = 0.0) -> list[np.ndarray]:
    from skimage.data import astronaut

    base = np.pad(astronaut(), ((0, 0), (32, 32), (0, 0)), mode="edge")
    rng = np.random.default_rng(0)
    out = []
    for t in range(n):
        f = np.roll(base, shift * t, axis=1)[:, 32:-32]
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
        out.append(np.ascontiguousarray(f))
    return out


def test_image_folder_in_natural_order(tmp_path):
    for t in range(11):
        Image.fromarray(np.full((8, 8, 3), t, np.uint8)).save(tmp_path / f"frame_{t}.png")  # value = frame number
    src = open_frames(tmp_path)
    assert src.count == 11 and [f[0, 0, 0] for f in src] == list(range(11))  # frame_2 before frame_10


def test_video_file_roundtrip(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = _frames(6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, frames[0].shape[1::-1])
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v")
    for f in frames:
        writer.write(f[..., ::-1])
    writer.release()
    src = open_frames(path)
    got = list(src)
    assert src.fps == pytest.approx(25.0) and len(got) == 6 and got[0].shape == frames[0].shape
    assert np.abs(got[3].astype(float) - frames[3]).mean() < 12  # lossy codec, same picture (RGB order)
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ImageError, match="not a video"):
        open_frames(tmp_path / "notes.txt")
    with pytest.raises(ImageError, match="not found"):
        open_frames(tmp_path / "missing.mp4")


def test_gaussian_smooth_keeps_ramps_and_removes_noise():
    t = np.arange(50, dtype=float)
    ramp = np.stack([t, 2 * t], 1)
    assert np.allclose(gaussian_smooth(ramp, 2.0)[6:-6], ramp[6:-6])  # no lag in the middle
    noisy = np.random.default_rng(0).normal(size=(200, 3))
    assert gaussian_smooth(noisy, 2.0).std() < 0.5 * noisy.std()
    assert np.array_equal(gaussian_smooth(noisy, 0), noisy)


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason=f"{DEFAULT_MODEL_PATH} not built")
def test_tracking_follows_a_moving_face_and_smoothing_lowers_jitter():
    from msma_engine.pipeline import Reconstructor

    rec = Reconstructor()
    frames = _frames(8, shift=4, noise=6.0)
    seq = track_sequence(frames, rec, redetect_every=0)
    assert seq.tracked.all() and seq.coeffs.shape == (8, rec.model.layout.total)
    # The face moves 4 px right per frame: so do the tracked landmarks (an independent truth).
    moves = np.diff(seq.landmarks.mean(1), axis=0)
    assert np.allclose(moves[:, 0], 4.0, atol=1.5) and np.allclose(moves[:, 1], 0.0, atol=1.5)
    smooth = smooth_sequence(seq, rec.model.layout, sigma=2.0)
    s = rec.model.layout.slices()
    assert np.ptp(smooth[:, s["id"]], axis=0).max() == 0  # one identity
    raw, smoothed = frame_to_frame_rms(seq.coeffs, rec.model.layout), frame_to_frame_rms(smooth, rec.model.layout)
    assert smoothed["angles"] < raw["angles"]
