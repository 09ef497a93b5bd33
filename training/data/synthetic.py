"""On-the-fly synthetic training data: renders of the face model with known ground truth.

Each sample draws identity (N(0, σ²)), sparse ARKit-style expression weights in the
model's expression ranges (no two antagonists together by default, see
:func:`_sample_expression`), albedo, SH lighting, head pose (yaw up to ±90°, pitch ±30°,
roll ±20° by default) and a small translation / scale jitter, renders the face with
:mod:`msma_engine.render` through the project camera, composites it over a random background,
adds occluders (hand-like blobs, glasses-like frames, hair-like strokes) and image
augmentations (colour, blur, noise, JPEG).

Crops look like Deep3DFaceRecon's aligned crops because the project camera *is* that crop:
its alignment (msma_engine/align.py) puts the template origin at the crop centre at 102 px per
decimetre, and the model origin at zero translation projects to the centre at
1015 px / 10 dm, so only a small translation and depth jitter is added.

Sample ``i`` of seed ``s`` is fully determined by ``(s, i)``: every random draw comes from
``numpy.random.default_rng([s, i])``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from msma_engine.expression_prior import REQUIRES, exclusive_pairs
from msma_engine.face_model import FaceModel
from msma_engine.render import RenderContext, channels_first, interpolate, render_mesh
from training.config import SyntheticConfig

__all__ = ["SyntheticSample", "SyntheticFaces", "sample_coefficients"]

logger = logging.getLogger(__name__)

_IMAGE_SIZE = 224


@dataclass
class SyntheticSample:
    """What a sample holds (the dataset returns it as a dict of these fields).

    Attributes:
        image: ``(3, H, W)`` float32 RGB in [0, 1].
        coeffs: ``(n_coeffs,)`` ground-truth coefficients in the model's layout.
        vertices: ``(V, 3)`` posed world vertices, metres.
        landmarks: ``(68, 2)`` landmark pixels.
        mask: ``(1, H, W)`` float32 visible skin (face skin not covered by occluders).
        face_mask: ``(1, H, W)`` float32 pixels covered by the rendered face model.
    """

    image: torch.Tensor
    coeffs: torch.Tensor
    vertices: torch.Tensor
    landmarks: torch.Tensor
    mask: torch.Tensor
    face_mask: torch.Tensor


def sample_coefficients(model: FaceModel, cfg: SyntheticConfig, rng: np.random.Generator) -> torch.Tensor:
    """Draw one coefficient vector ``(n_coeffs,)`` (float32) with the generator's priors."""
    lay = model.layout
    out = np.zeros(lay.total, np.float64)
    sl = lay.slices()
    out[sl["id"]] = rng.normal(0.0, cfg.id_std, lay.n_id)
    out[sl["tex"]] = rng.normal(0.0, cfg.tex_std, lay.n_tex)
    out[sl["exp"]] = _sample_expression(model, cfg, rng)
    # Pose: half the samples near frontal, the rest spread over the full range, so
    # profiles are covered without starving the common near-frontal case.
    yaw_max = math.radians(cfg.max_yaw_deg)
    yaw = rng.normal(0.0, yaw_max / 3) if rng.uniform() < 0.5 else rng.uniform(-yaw_max, yaw_max)
    pitch = rng.uniform(-1, 1) * math.radians(cfg.max_pitch_deg)
    roll = rng.uniform(-1, 1) * math.radians(cfg.max_roll_deg)
    out[sl["angles"]] = [pitch, float(np.clip(yaw, -yaw_max, yaw_max)), roll]
    # Lighting: white-ish light with a brightness offset, a small tint and random direction.
    gamma = np.zeros((3, 9))
    gamma[:, 0] = rng.uniform(-0.35, 0.35) + rng.normal(0.0, 0.04, 3)
    gamma[:, 1:] = rng.normal(0.0, cfg.light_std, 8)[None] + rng.normal(0.0, cfg.light_std * 0.15, (3, 8))
    out[sl["gamma"]] = gamma.reshape(-1)
    cam = model.camera
    scale = 1.0 + rng.uniform(-cfg.scale_jitter, cfg.scale_jitter)
    depth = cam.distance / scale
    shift = rng.uniform(-cfg.shift_jitter_px, cfg.shift_jitter_px, 2)
    out[sl["trans"]] = [shift[0] * depth / cam.focal, -shift[1] * depth / cam.focal, cam.distance - depth]
    return torch.as_tensor(out, dtype=torch.float32)


def _sample_expression(model: FaceModel, cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Sparse expression weights ``(n_exp,)``: a few active units, uniform inside their range.

    With ``cfg.plausible_expressions`` no two units of an exclusive pair
    (:data:`msma_engine.expression_prior.ANTAGONISTS`) are drawn together, and a unit that
    needs another (:data:`~msma_engine.expression_prior.REQUIRES`: ``mouthClose`` needs
    ``jawOpen``) brings it along at least as strong. Otherwise any units, as before.
    """
    n_exp = model.layout.n_exp
    exp = np.zeros(n_exp)
    if not n_exp:
        return exp
    n_active = min(n_exp, rng.poisson(cfg.exp_active))
    ranges = model.expression_range.cpu().numpy().astype(np.float64)
    if not cfg.plausible_expressions:
        active = rng.choice(n_exp, size=n_active, replace=False)
        lo, hi = ranges[active, 0], ranges[active, 1]
        exp[active] = lo + (hi - lo) * rng.uniform(0.0, 1.0, n_active)
        return exp
    names = list(model.expression_names)
    excluded = {i: set() for i in range(n_exp)}
    for a, b in exclusive_pairs(names):
        excluded[a].add(b)
        excluded[b].add(a)
    active: list[int] = []
    for i in rng.permutation(n_exp):
        if len(active) == n_active:
            break
        if not excluded[int(i)] & set(active):
            active.append(int(i))
    lo, hi = ranges[active, 0], ranges[active, 1]
    exp[active] = lo + (hi - lo) * rng.uniform(0.0, 1.0, len(active))
    index = {n: i for i, n in enumerate(names)}
    for unit, needs in REQUIRES:
        if unit in index and needs in index and exp[index[unit]] > 0:
            exp[index[needs]] = max(exp[index[needs]], exp[index[unit]])
    return exp


# --- backgrounds ------------------------------------------------------------------------
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random ``(size, size, 3)`` float32 background: gradient, smooth noise or a texture."""
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # linear colour gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        img = c0 + (c1 - c0) * t[..., None]
    elif kind == 1:  # smooth coloured noise
        cells = int(rng.integers(2, 12))
        low = rng.uniform(0, 1, (cells, cells, 3)).astype(np.float32)
        img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    else:  # sinusoidal "texture" (stripes, checks, waves)
        img = np.zeros((size, size, 3), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            f = rng.uniform(2, 30)
            a = rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy) + rng.uniform(0, 2 * np.pi))
            img += wave[..., None] * rng.uniform(-0.3, 0.3, 3)
        img += rng.uniform(0.2, 0.8, 3)
    img = img + rng.normal(0, rng.uniform(0, 0.03), img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


# --- occluders --------------------------------------------------------------------------
def _draw(canvas: np.ndarray, mask: np.ndarray, colour, draw_fn) -> None:
    """Draw one shape into a float image and its coverage into ``mask``."""
    layer = np.zeros(mask.shape, np.uint8)
    draw_fn(layer)
    cover = layer > 0
    canvas[cover] = colour
    mask[cover] = 1.0


def _hand(img: np.ndarray, occ: np.ndarray, rng: np.random.Generator, lm: np.ndarray) -> None:
    """A palm ellipse with finger capsules entering from the lower face or a side."""
    size = img.shape[0]
    anchor = lm[int(rng.choice([3, 8, 13, 48, 54, 57]))] + rng.normal(0, 10, 2)
    colour = np.clip(np.array([0.85, 0.62, 0.5]) * rng.uniform(0.4, 1.2) + rng.normal(0, 0.05, 3), 0, 1)
    angle = rng.uniform(0, 360)
    axes = (int(rng.uniform(22, 40)), int(rng.uniform(28, 48)))
    centre = tuple(int(v) for v in np.clip(anchor, 0, size - 1))
    _draw(img, occ, colour, lambda l: cv2.ellipse(l, centre, axes, angle, 0, 360, 255, -1))
    direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    normal = np.array([-direction[1], direction[0]])
    for k in range(int(rng.integers(2, 5))):
        base = np.array(centre) + direction * axes[1] * 0.8 + normal * (k - 1.5) * axes[0] * 0.45
        tip = base + direction * rng.uniform(20, 40) + rng.normal(0, 4, 2)
        width = int(rng.uniform(7, 12))
        _draw(img, occ, colour * rng.uniform(0.9, 1.05),
              lambda l, b=base, t=tip, w=width: cv2.line(l, tuple(int(v) for v in b), tuple(int(v) for v in t), 255, w))


def _glasses(img: np.ndarray, occ: np.ndarray, rng: np.random.Generator, lm: np.ndarray) -> None:
    """Two rims around the eyes and a bridge; optionally tinted lenses (partial cover)."""
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_dist = max(np.linalg.norm(right - left), 8.0)
    colour = rng.uniform(0, 0.35, 3) if rng.uniform() < 0.7 else rng.uniform(0, 1, 3)
    thick = int(rng.integers(1, 4))
    axes = (int(eye_dist * rng.uniform(0.35, 0.5)), int(eye_dist * rng.uniform(0.25, 0.38)))
    roll = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
    if rng.uniform() < 0.3:  # sunglasses: dark lenses fully occlude the eyes
        lens = rng.uniform(0, 0.2, 3)
        for c in (left, right):
            _draw(img, occ, lens, lambda l, c=c: cv2.ellipse(l, tuple(int(v) for v in c), axes, roll, 0, 360, 255, -1))
    for c in (left, right):
        _draw(img, occ, colour, lambda l, c=c: cv2.ellipse(l, tuple(int(v) for v in c), axes, roll, 0, 360, 255, thick))
    direction = (right - left) / eye_dist
    a, b = left + direction * axes[0], right - direction * axes[0]
    _draw(img, occ, colour, lambda l: cv2.line(l, tuple(int(v) for v in a), tuple(int(v) for v in b), 255, thick))


def _hair(img: np.ndarray, occ: np.ndarray, rng: np.random.Generator, lm: np.ndarray) -> None:
    """Thin curved strands falling over the forehead and the face sides."""
    top = lm[17:27].mean(0) - np.array([0.0, 25.0])
    colour = rng.uniform(0, 1) * np.array([0.35, 0.25, 0.15]) + rng.uniform(0, 0.1, 3)
    for _ in range(int(rng.integers(5, 30))):
        start = top + rng.normal(0, [35, 12])
        pts = [start]
        step = np.array([rng.normal(0, 3), rng.uniform(3, 8)])
        for _ in range(int(rng.integers(4, 14))):
            step = step + rng.normal(0, 1.2, 2)
            pts.append(pts[-1] + step)
        poly = np.round(np.array(pts)).astype(np.int32).reshape(-1, 1, 2)
        width = int(rng.integers(1, 4))
        _draw(img, occ, np.clip(colour + rng.normal(0, 0.03, 3), 0, 1),
              lambda l, p=poly, w=width: cv2.polylines(l, [p], False, 255, w))


# --- image augmentation -------------------------------------------------------------------
def _augment(img: np.ndarray, cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, blur, noise and JPEG compression on a float ``(H, W, 3)`` image."""
    if rng.uniform() < cfg.p_color:
        img = img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)  # contrast / brightness
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * rng.uniform(0.5, 1.4)  # saturation
        img = img * rng.uniform(0.9, 1.1, 3)  # white balance
        img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)  # gamma
    if rng.uniform() < cfg.p_blur:
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.4, 1.8))
    if rng.uniform() < cfg.p_noise:
        img = img + rng.normal(0, rng.uniform(0.005, 0.04), img.shape)
    img = np.clip(img, 0, 1)
    if rng.uniform() < cfg.p_jpeg:
        q = int(rng.integers(30, 95))
        ok, buf = cv2.imencode(".jpg", np.round(img[..., ::-1] * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0
    return img.astype(np.float32)


class SyntheticFaces(Dataset):
    """Deterministic synthetic dataset of face-model renders.

    Args:
        model: the face model (on the CPU; rendering runs in the data pipeline).
        cfg: sampling ranges and augmentation probabilities.
        seed: dataset seed; sample ``i`` depends only on ``(seed, i)``.
        length: number of samples (an "epoch").
        ctx: render context (pure-PyTorch backend by default).
        augment: apply occluders and image augmentations (off = clean renders, for
            checking the ground truth).

    Example:
        >>> ds = SyntheticFaces(load_face_model(), SyntheticConfig(), seed=0, length=1000)
        >>> ds[0]["image"].shape
        torch.Size([3, 224, 224])
    """

    def __init__(self, model: FaceModel, cfg: SyntheticConfig | None = None, seed: int = 0, length: int = 10000,
                 ctx: RenderContext | None = None, augment: bool = True) -> None:
        if tuple(model.camera.image_size) != (_IMAGE_SIZE, _IMAGE_SIZE):
            raise ValueError(f"the generator renders {_IMAGE_SIZE}² crops; the model's camera is "
                             f"{model.camera.image_size}")
        self.model = model
        self.cfg = cfg or SyntheticConfig()
        self.seed = int(seed)
        self.length = int(length)
        self.ctx = ctx or RenderContext("torch")
        self.augment = augment

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        """The random generator of sample ``index``."""
        return np.random.default_rng([self.seed, int(index)])

    @torch.no_grad()
    def render(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clean render of coefficients ``(B, n)``: channels-last image ``(B, H, W, 3)``, face mask
        and skin mask ``(B, H, W, 1)``, vertices, landmarks."""
        model = self.model
        out = model(coeffs)
        cam = model.camera
        res = render_mesh(self.ctx, out.vertices, model.triangles, cam.image_size, project=cam.world_to_clip,
                          colors=out.vertex_colors, cull_backfaces=True)
        skin = interpolate(model.skin_mask[:, None], res.fragments, model.triangles)
        face = res.mask
        return {
            "image": res.image.clamp(0, 1),
            "face_mask": face,
            "skin": (skin > 0.5).to(face.dtype) * face,
            "vertices": out.vertices,
            "landmarks": out.landmarks_2d,
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"sample {index} is outside the dataset of {self.length}")
        rng = self.rng(index)
        coeffs = sample_coefficients(self.model, self.cfg, rng)
        r = self.render(coeffs[None])
        face = r["face_mask"][0, ..., 0].numpy()
        fg = r["image"][0].numpy()
        bg = _background(rng, _IMAGE_SIZE)
        img = fg * face[..., None] + bg * (1.0 - face[..., None])
        occ = np.zeros(face.shape, np.float32)
        lm = r["landmarks"][0].numpy()
        if self.augment:
            img = np.ascontiguousarray(img, dtype=np.float32)
            for draw in (_hand, _glasses, _hair):
                if rng.uniform() < self.cfg.p_occluder:
                    draw(img, occ, rng, lm)
            img = _augment(img, self.cfg, rng)
        mask = channels_first(r["skin"])[0] * torch.from_numpy(1.0 - occ)[None]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)),
            "coeffs": coeffs,
            "vertices": r["vertices"][0],
            "landmarks": r["landmarks"][0],
            "mask": mask.float(),
            "face_mask": channels_first(r["face_mask"])[0].float(),
        }
