"""Which photo pixels may be baked into the albedo: skin, brows and lips, nothing else.

:func:`skin_sampling_mask` builds, for one face, a soft per-pixel weight over the photo:

* **geometry** from landmarks: the eyes (dilated past the lashes), the inner mouth (teeth,
  tongue), the nostrils and — with dense MediaPipe Face Mesh points — everything outside the
  face oval get weight 0; brows and lips are labelled and kept as they are;
* **skin colour**: a robust Gaussian of the chroma ``(log R/G, log B/G)`` fitted on two cheek
  discs (iteratively trimmed mean and covariance), plus a floor on the log luminance, scores
  every other pixel; hair (also a blond fringe darker than the forehead), glasses frames,
  hands, clothes and background fall outside it and get weight 0.

Landmarks are either the 478 dense Face Mesh points (``(478, 2)`` photo pixels, iris points
468-477 included) or the 68 iBUG points of the fitted mesh projected into the photo; the
68-point layout drives the eyes, mouth, nostrils and cheeks in both cases (dense points are
mapped with :func:`~msma_engine.detect.mediapipe_mesh.mesh_to_ibug68`), the dense ones add
the face oval and finer eye, brow and lip contours.

Everything is computed in a window around the face (the landmarks' box, widened) so large
photos cost no more than small ones. Units: photo pixels, pixel centres at +0.5.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from msma_engine.errors import ShapeError

__all__ = ["SKIN", "BROW", "LIPS", "EXCLUDED", "PhotoMask", "SkinColourModel", "fit_skin_colour",
           "skin_sampling_mask", "landmarks68_of", "eye_contours", "cheek_discs"]

logger = logging.getLogger(__name__)

# Labels of :attr:`PhotoMask.label`.
EXCLUDED, SKIN, BROW, LIPS = 0, 1, 2, 3

# MediaPipe Face Mesh contours (vertex ids, in order around each polygon).
_MP_FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
                 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
_MP_EYES = ((33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
            (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466))
_MP_BROWS = ((107, 66, 105, 63, 70, 46, 53, 52, 65, 55), (336, 296, 334, 293, 300, 276, 283, 282, 295, 285))
_MP_LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
_MP_LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)


@dataclass(frozen=True)
class SkinColourModel:
    """Gaussian of skin chroma ``(log R/G, log B/G)`` and the median log luminance.

    Attributes:
        mean: ``(2,)`` chroma mean.
        cov: ``(2, 2)`` chroma covariance.
        log_lum: median ``log`` of the mean of R, G, B (0-255 scale).
        lum_sigma: robust standard deviation of ``log_lum`` (1.4826 MAD, floored).
        n: pixels the model was fitted on.
        saturation: median saturation ``1 − min/max`` of those pixels.
    """

    mean: np.ndarray
    cov: np.ndarray
    log_lum: float
    lum_sigma: float
    n: int
    saturation: float = 0.3

    def distance(self, rgb: np.ndarray) -> np.ndarray:
        """Mahalanobis distance ``(...)`` of the chroma of ``rgb`` ``(..., 3)`` (0-255 values)."""
        f = _chroma(rgb) - self.mean
        inv = np.linalg.inv(self.cov)
        return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", f, inv, f), 0.0))


@dataclass
class PhotoMask:
    """Soft sampling weight and label of the photo pixels in a window around one face.

    Attributes:
        weight: ``(h, w)`` float32 in [0, 1] — how much each pixel may contribute to the albedo.
        label: ``(h, w)`` uint8 — :data:`SKIN`, :data:`BROW`, :data:`LIPS` or :data:`EXCLUDED`.
        origin: ``(x0, y0)`` photo pixel of the window's top-left corner.
        skin_model: the fitted :class:`SkinColourModel` (None when the cheeks gave too few pixels).
    """

    weight: np.ndarray
    label: np.ndarray
    origin: tuple[int, int]
    skin_model: SkinColourModel | None


def _chroma(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32) + 1.0
    return np.stack([np.log(rgb[..., 0] / rgb[..., 1]), np.log(rgb[..., 2] / rgb[..., 1])], axis=-1)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    return 1.0 - rgb.min(-1) / np.maximum(rgb.max(-1), 1.0)


def _log_lum(rgb: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(rgb, np.float32).mean(-1) + 1.0)


def landmarks68_of(points: np.ndarray) -> np.ndarray:
    """68 iBUG points ``(68, 2)`` from 68 points or 468/478 dense Face Mesh points."""
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] not in (68, 468, 478):
        raise ShapeError(f"landmarks must be (68, 2) or (478, 2) photo pixels, got {pts.shape}")
    if pts.shape[0] == 68:
        return pts
    from msma_engine.detect.mediapipe_mesh import mesh_to_ibug68

    return mesh_to_ibug68(pts)


def eye_contours(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eyelid-margin polygons ``((K, 2), (K, 2))`` (subject's right eye first) from 68 or 478 points."""
    pts = np.asarray(points, np.float64)[:, :2]
    if pts.shape[0] >= 468:
        return pts[list(_MP_EYES[0])], pts[list(_MP_EYES[1])]
    lm = landmarks68_of(pts)
    return lm[36:42], lm[42:48]


def fit_skin_colour(pixels: np.ndarray, min_pixels: int = 30, chroma_floor: float = 0.02,
                    lum_floor: float = 0.08) -> SkinColourModel | None:
    """Robust chroma Gaussian and luminance statistics of ``pixels`` ``(N, 3)`` (0-255).

    Near-black and clipped pixels are dropped; the Gaussian is refitted twice on the pixels
    within 2.5 of its Mahalanobis distance (trims pores, lashes, stubble and glare). The
    chroma standard deviations are floored at ``chroma_floor`` (JPEG-flattened cheeks would
    otherwise give a model tighter than the face's own colour variation).

    Returns:
        The model, or None with fewer than ``min_pixels`` usable pixels.
    """
    px = np.asarray(pixels, np.float32).reshape(-1, 3)
    px = px[(px.max(-1) < 250.0) & (px.mean(-1) > 15.0)]
    if len(px) < min_pixels:
        return None
    f = _chroma(px)
    keep = np.ones(len(f), bool)
    mean, cov = np.median(f, axis=0), None
    for _ in range(3):
        mean = f[keep].mean(0) if cov is not None else mean
        d = f - mean
        cov = np.cov(d[keep].T) + np.eye(2) * chroma_floor ** 2
        m = np.sqrt(np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d))
        keep = m < 2.5
        if keep.sum() < min_pixels:
            return None
    lum = _log_lum(px[keep])
    med = float(np.median(lum))
    sigma = float(max(1.4826 * np.median(np.abs(lum - med)), lum_floor))
    return SkinColourModel(mean=mean.astype(np.float64), cov=cov.astype(np.float64), log_lum=med, lum_sigma=sigma,
                           n=int(keep.sum()), saturation=float(np.median(_saturation(px[keep]))))


def _poly(mask: np.ndarray, pts: np.ndarray, origin: np.ndarray, value: int) -> None:
    cv2.fillPoly(mask, [np.round((pts - origin) * 4).astype(np.int32)], value, lineType=cv2.LINE_8, shift=2)


def _disc(mask: np.ndarray, centre: np.ndarray, radius: float, origin: np.ndarray, value: int) -> None:
    c = np.round((np.asarray(centre) - origin) * 4).astype(int)
    cv2.circle(mask, (int(c[0]), int(c[1])), int(round(radius * 4)), value, -1, lineType=cv2.LINE_8, shift=2)


def _disc_kernel(radius: float) -> np.ndarray:
    r = max(1, int(round(radius)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    return cv2.dilate(mask, _disc_kernel(radius))


def cheek_discs(lm68: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Two cheek sample discs ``(centre (2,), radius)`` in photo pixels from 68 landmarks.

    Each centre lies between the lower eyelid, the nostril wing, the mouth corner and the
    jaw on its side, pulled towards the nose so a turned head keeps it on the cheek.
    """
    iod = float(np.linalg.norm(lm68[36:42].mean(0) - lm68[42:48].mean(0)))
    out = []
    for eye, wing, mouth, jaw in ((41, 31, 48, 2), (46, 35, 54, 14)):
        c = 0.3 * lm68[eye] + 0.3 * lm68[wing] + 0.15 * lm68[mouth] + 0.25 * lm68[jaw]
        out.append((c, 0.14 * iod))
    return out


def skin_sampling_mask(photo: np.ndarray, landmarks: np.ndarray, *, skin_model: SkinColourModel | None = None,
                       chroma_ok: float = 2.5, chroma_max: float = 4.5, dark_ok: float = 0.6,
                       dark_max: float = 1.0) -> PhotoMask:
    """The soft per-pixel sampling weight of one face (see the module docstring).

    Args:
        photo: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(68, 2)`` (fitted mesh, projected) or ``(478, 2)`` (Face Mesh) photo pixels.
        skin_model: a given colour model; default: fitted on the cheek discs of this photo.
        chroma_ok, chroma_max: Mahalanobis chroma distances where the skin weight starts to
            fall from 1 and where it reaches 0.
        dark_ok, dark_max: how far (natural log) below the cheeks' median luminance a pixel
            starts to lose weight and has none (hair, shadows in the nostrils).

    Returns:
        :class:`PhotoMask`.
    """
    img = np.asarray(photo)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ShapeError(f"photo must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
    pts = np.asarray(landmarks, np.float64)
    lm = landmarks68_of(pts)
    dense = pts if pts.shape[0] >= 468 else None
    iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    # Window: the landmarks' box, widened by one inter-ocular distance (forehead, jaw edge).
    h_img, w_img = img.shape[:2]
    lo = np.floor(np.maximum(pts.min(0) - 1.2 * iod, 0)).astype(int)
    hi = np.ceil(np.minimum(pts.max(0) + 1.0 * iod, [w_img, h_img])).astype(int)
    if np.any(hi - lo < 4):
        raise ShapeError(f"landmarks lie outside the {w_img}x{h_img} photo: box {lo}-{hi}")
    x0, y0 = int(lo[0]), int(lo[1])
    win = img[y0:int(hi[1]), x0:int(hi[0])]
    origin = np.array([x0, y0], np.float64)
    shape = win.shape[:2]

    if skin_model is None:
        cheeks = np.zeros(shape, np.uint8)
        for c, r in cheek_discs(lm):
            _disc(cheeks, c, r, origin, 1)
        skin_model = fit_skin_colour(win[cheeks > 0])
    if skin_model is None:
        logger.warning("too few cheek pixels for a skin-colour model: geometry-only sampling mask")
        weight = np.ones(shape, np.float32)
    else:
        d = skin_model.distance(win)
        w_chroma = np.clip((chroma_max - d) / (chroma_max - chroma_ok), 0.0, 1.0)
        below = skin_model.log_lum - _log_lum(win)
        w_dark = np.clip((dark_max - below) / (dark_max - dark_ok), 0.0, 1.0)
        weight = (w_chroma * w_dark).astype(np.float32)
        # Close (pores, freckles and stubble dots smaller than ~3 % of the inter-ocular
        # distance stay skin), then erode (drops skin-coloured specks in hair and the blended
        # pixels along hair strands and frames that are neither skin nor occluder).
        weight = cv2.morphologyEx(weight, cv2.MORPH_CLOSE, _disc_kernel(0.015 * iod))
        weight = cv2.erode(weight, _disc_kernel(0.012 * iod))

    label = np.full(shape, SKIN, np.uint8)
    if dense is not None:
        # Face Mesh's oval stops short of the hairline: its upper half is widened by 12 %
        # (hair there is the colour model's job).
        ring = dense[list(_MP_FACE_OVAL)]
        centre = ring.mean(0)
        ring = np.where((ring[:, 1] < centre[1])[:, None], centre + 1.12 * (ring - centre), ring)
        oval = np.zeros(shape, np.uint8)
        _poly(oval, ring, origin, 1)
        label[oval == 0] = EXCLUDED
    # Brows (kept whatever their colour), lips (outer contour minus the inner mouth).
    brows = np.zeros(shape, np.uint8)
    lips = np.zeros(shape, np.uint8)
    holes = np.zeros(shape, np.uint8)
    if dense is not None:
        for b in _MP_BROWS:
            _poly(brows, dense[list(b)], origin, 1)
        _poly(lips, dense[list(_MP_LIPS_OUTER)], origin, 1)
        inner = np.zeros(shape, np.uint8)
        _poly(inner, dense[list(_MP_LIPS_INNER)], origin, 1)
    else:
        for b in (slice(17, 22), slice(22, 27)):
            seg = lm[b]
            # A band around the brow line, about 0.12 IOD thick.
            cv2.polylines(brows, [np.round((seg - origin) * 4).astype(np.int32)], False, 1,
                          thickness=max(1, int(round(0.12 * iod))), shift=2)
        _poly(lips, lm[48:60], origin, 1)
        inner = np.zeros(shape, np.uint8)
        _poly(inner, lm[60:68], origin, 1)
    for contour in eye_contours(pts):
        _poly(holes, contour, origin, 1)
    # Past the lashes and the lid margin; the inner mouth past the lip line (teeth edges).
    holes = _dilate(holes, 0.06 * iod)
    holes |= _dilate(inner, 0.03 * iod)
    for a, b in ((31, 32), (34, 35)):
        down = (lm[30] - lm[33]) / max(np.linalg.norm(lm[30] - lm[33]), 1e-6)
        _disc(holes, 0.5 * (lm[a] + lm[b]) + 0.02 * iod * down, 0.06 * iod, origin, 1)
    brows = _dilate(brows, 0.03 * iod)
    label[(brows > 0) & (label != EXCLUDED)] = BROW
    label[(lips > 0) & (inner == 0) & (label != EXCLUDED)] = LIPS
    label[holes > 0] = EXCLUDED

    weight = np.where(label == SKIN, weight, (label != EXCLUDED).astype(np.float32))
    if skin_model is not None:
        below = skin_model.log_lum - _log_lum(win)
        # Lips keep their not-too-dark part (a dark open-mouth gap the contour missed); brows
        # their not-brighter-than-skin part (glare or a skin gap next to the brow band).
        lip_w = np.clip((1.2 - below) / 0.4, 0.0, 1.0)
        # ... and their coloured part: teeth the inner contour missed are bright and grey.
        lip_w *= np.clip((_saturation(win) - 0.5 * skin_model.saturation) / (0.25 * skin_model.saturation), 0.0, 1.0)
        weight = np.where(label == LIPS, lip_w, weight)
        weight = np.where(label == BROW, np.clip((below + 0.3) / 0.2, 0.0, 1.0), weight)
    weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), max(0.5, 0.01 * iod))
    weight[label == EXCLUDED] = 0.0
    return PhotoMask(weight=weight.astype(np.float32), label=label, origin=(x0, y0), skin_model=skin_model)
