"""Video and image sequences → per-frame coefficients for animation (regression-only path).

Reading: :func:`open_frames` takes a video file (``.mp4``, ``.mov``, ``.webm``, ``.avi``,
``.mkv``, ``.m4v`` — decoded by OpenCV's ``VideoCapture``, already a dependency) or a folder
of images (an image sequence, in natural order: ``frame_2`` before ``frame_10``) and yields
``(H, W, 3)`` uint8 RGB frames.

Tracking: :func:`track_sequence` detects the face on the first frame (and every
``redetect_every`` frames, or when tracking is lost); in between, the next frame's face box
comes from the previous frame's 68 landmarks, so the per-frame cost is the landmarker, the
224 crop and one network forward pass. Each frame gets coefficients from the network's
regression (or, without weights, from the mean face posed by PnP on the landmarks) and,
optionally, the test-time fit.

Smoothing: :func:`smooth_sequence` gives the whole sequence one identity and albedo (the
mean over tracked frames) and smooths expression, pose, light and translation with a
centred Gaussian in time (:func:`gaussian_smooth`: no lag, renormalised at the ends; the
Blender animation uses the same function). Importing this module does not load torch.
:func:`frame_to_frame_rms` measures jitter: the RMS change of the coefficients between
consecutive frames.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msma_engine.errors import ImageError, MSMAError
from msma_engine.timing import Stopwatch

__all__ = ["VIDEO_SUFFIXES", "FrameSource", "open_frames", "FaceSequence", "track_sequence", "gaussian_smooth",
           "smooth_sequence", "frame_to_frame_rms"]

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


@dataclass
class FrameSource:
    """Frames of a video file or an image folder.

    Attributes:
        path: the file or folder.
        fps: frames per second (the file's; 0 when unknown, e.g. an image folder).
        count: number of frames (a video's container may only estimate it).
        files: the image files of a folder (empty for a video).
    """

    path: Path
    fps: float
    count: int
    files: list[Path] = field(default_factory=list)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files:
            from msma_engine.image_io import load_image

            for f in self.files:
                yield load_image(f).pixels
            return
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield np.ascontiguousarray(frame[..., ::-1])
        finally:
            cap.release()


def open_frames(path: str | Path) -> FrameSource:
    """Open a video file or an image-sequence folder.

    Raises:
        ImageError: missing path, unsupported suffix, an undecodable video or an empty folder.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise ImageError(f"no images ({', '.join(_IMAGE_SUFFIXES)}) in the sequence folder {path}")
        return FrameSource(path, 0.0, len(files), files)
    if not path.exists():
        raise ImageError(f"video not found: {path}")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ImageError(f"{path}: not a video file ({', '.join(VIDEO_SUFFIXES)}) nor an image folder")
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ImageError(f"{path}: OpenCV cannot decode this video")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return FrameSource(path, fps, count)


@dataclass
class FaceSequence:
    """Per-frame coefficients of one face through a sequence.

    Attributes:
        coeffs: ``(T, C)`` float32 coefficients in the face model's layout (rows of frames
            without a face hold the previous tracked frame's values, or zeros before the first).
        tracked: ``(T,)`` bool, a face was found in the frame.
        landmarks: ``(T, 68, 2)`` float32 photo-pixel landmarks (NaN where not tracked).
        crop_matrices: ``(T, 2, 3)`` photo → crop matrices (NaN where not tracked).
        fps: the source's frame rate (0 unknown).
        seconds: ``(T,)`` processing time per frame (reading excluded).
    """

    coeffs: np.ndarray
    tracked: np.ndarray
    landmarks: np.ndarray
    crop_matrices: np.ndarray
    fps: float
    seconds: np.ndarray


def _box_from_landmarks(lm: np.ndarray, shape: tuple[int, ...]):
    from msma_engine.detect import FaceDetection, five_from_68

    lo, hi = lm.min(0), lm.max(0)
    h, w = shape[:2]
    box = np.array([max(lo[0], 0), max(lo[1], 0), min(hi[0], w - 1), min(hi[1], h - 1)], np.float64)
    return FaceDetection(box=box, score=1.0, points5=five_from_68(lm), source="track")


def track_sequence(frames, reconstructor, fit: str | None = None, redetect_every: int = 30,
                   max_frames: int | None = None) -> FaceSequence:
    """Coefficients of the largest face in every frame.

    Args:
        frames: a :class:`FrameSource` or any iterable of ``(H, W, 3)`` uint8 RGB frames.
        reconstructor: a :class:`msma_engine.pipeline.Reconstructor` (model, optional network,
            detector and landmarker backends).
        fit: test-time fitting preset per frame, or None for regression only.
        redetect_every: run the face detector every this many frames (0 = only when lost).
        max_frames: stop after this many frames.

    Returns:
        :class:`FaceSequence`.

    Raises:
        NoFaceError: no frame shows a face.
    """
    import torch

    from msma_engine.align import align_crop
    from msma_engine.detect import detect_faces, five_from_68, landmarks68, pick_face
    from msma_engine.errors import NoFaceError
    from msma_engine.fitting import FaceFitter, FitTarget, rigid_pose_from_landmarks

    rec = reconstructor
    model, dev = rec.model, rec.device
    size = model.camera.image_size[0]
    lay = model.layout
    fitter = FaceFitter(model, fit, ctx=rec.ctx) if fit is not None else None
    rows, tracked, lms, mats, secs = [], [], [], [], []
    det, last = None, np.zeros(lay.total, np.float32)
    for t, pixels in enumerate(frames):
        if max_frames is not None and t >= max_frames:
            break
        clock = Stopwatch()
        try:
            if det is None or (redetect_every and t % redetect_every == 0):
                det = pick_face(detect_faces(pixels, rec.detector), "largest", image_name=f"frame {t}",
                                min_size=rec.min_face_size)[0]
            lm = landmarks68(pixels, det, rec.landmarker).points
        except MSMAError as exc:
            logger.debug("frame %d: no face (%s)", t, exc)
            det = None
            rows.append(last.copy())
            tracked.append(False)
            lms.append(np.full((68, 2), np.nan, np.float32))
            mats.append(np.full((2, 3), np.nan))
            secs.append(clock.elapsed)
            continue
        crop = align_crop(five_from_68(lm), rec.template)
        crop_img = crop.warp(pixels, size)
        lm_crop = crop.apply(lm)
        image = torch.as_tensor(crop_img, dtype=torch.float32, device=dev).permute(2, 0, 1)[None] / 255.0
        if rec.network is not None:
            with torch.no_grad():
                coeffs = rec.network.predict_crops(image).float()
        else:
            coeffs = lay.zeros(1, device=dev)
            angles, trans = rigid_pose_from_landmarks(model, lm_crop, coeffs)
            s = lay.slices()
            coeffs[0, s["angles"]] = torch.as_tensor(angles, dtype=torch.float32)
            coeffs[0, s["trans"]] = torch.as_tensor(trans, dtype=torch.float32)
        if fitter is not None:
            valid = crop.warp(np.ones(pixels.shape[:2], np.float32), size)
            target = FitTarget(image=image, landmarks=torch.as_tensor(lm_crop, dtype=torch.float32, device=dev)[None],
                               valid=torch.as_tensor(valid, dtype=torch.float32, device=dev)[None, None])
            coeffs = fitter.fit(target, init=coeffs, rigid_init=rec.network is None).coeffs
        last = coeffs[0].detach().cpu().numpy().astype(np.float32)
        rows.append(last.copy())
        tracked.append(True)
        lms.append(lm.astype(np.float32))
        mats.append(crop.matrix.copy())
        secs.append(clock.elapsed)
        det = _box_from_landmarks(lm, pixels.shape)
    if not any(tracked):
        raise NoFaceError(f"no face in any of the {len(rows)} frames")
    first = tracked.index(True)
    for t in range(first):  # frames before the first face take its values
        rows[t] = rows[first].copy()
    return FaceSequence(coeffs=np.stack(rows), tracked=np.array(tracked), landmarks=np.stack(lms),
                        crop_matrices=np.stack(mats), fps=float(getattr(frames, "fps", 0.0)), seconds=np.array(secs))


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian smoothing along the first axis.

    Args:
        values: ``(T, ...)`` per-frame values.
        sigma: standard deviation in frames (``<= 0``: unchanged copy). The kernel is
            truncated at 3σ and renormalised at the sequence ends (no lag, no pull to zero).

    Returns:
        ``(T, ...)`` smoothed values (float64).
    """
    vals = np.asarray(values, dtype=np.float64)
    if sigma <= 0 or len(vals) < 2:
        return vals.copy()
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    t = len(vals)
    flat = vals.reshape(t, -1)
    out = np.empty_like(flat)
    for i in range(t):
        idx = i + offsets
        ok = (idx >= 0) & (idx < t)
        w = kernel[ok] / kernel[ok].sum()
        out[i] = w @ flat[idx[ok]]
    return out.reshape(vals.shape)


def smooth_sequence(seq: FaceSequence, layout, sigma: float = 1.5) -> np.ndarray:
    """One identity and albedo for the sequence, smoothed motion.

    Args:
        seq: :func:`track_sequence` output.
        layout: the face model's :class:`~msma_engine.face_model.CoeffLayout`.
        sigma: Gaussian width in frames for expression, angles (unwrapped), light and translation.

    Returns:
        ``(T, C)`` float32 coefficients.
    """
    c = np.asarray(seq.coeffs, np.float64).copy()
    s = layout.slices()
    ok = seq.tracked
    for name in ("id", "tex"):
        c[:, s[name]] = c[ok][:, s[name]].mean(0)
    c[:, s["angles"]] = np.unwrap(c[:, s["angles"]], axis=0)
    for name in ("exp", "angles", "gamma", "trans"):
        c[:, s[name]] = gaussian_smooth(c[:, s[name]], sigma)
    return c.astype(np.float32)


def frame_to_frame_rms(coeffs: np.ndarray, layout,
                       groups: tuple[str, ...] = ("exp", "angles", "trans")) -> dict[str, float]:
    """RMS change between consecutive frames, per coefficient group (jitter on a still sequence).

    Args:
        coeffs: ``(T, C)``.
        layout: the face model's coefficient layout.
        groups: which groups to report (angles in radians, translation in metres).

    Returns:
        ``{group: rms}``.
    """
    c = np.asarray(coeffs, np.float64)
    d = np.diff(c, axis=0)
    s = layout.slices()
    return {g: float(np.sqrt((d[:, s[g]] ** 2).mean())) if len(d) and s[g].stop > s[g].start else float("nan")
            for g in groups}
