"""Whole training batches made on the training device (GPU): synthetic renders + real photos.

:class:`DeviceSynthetic` renders a synthetic batch in one call on the device — the same
coefficient priors (:func:`training.data.synthetic.sample_coefficients`, sample ``i`` drawn
from ``(seed, i)``) and the same renderer as :class:`~training.data.synthetic.SyntheticFaces`,
with backgrounds (colour gradients, smooth colour noise), a bar occluder and colour / blur /
noise augmentation done as tensor operations. What the per-sample CPU generator has and this
one has not: the hand, glasses and hair occluders and JPEG artefacts (OpenCV drawing and
encoding); the CPU generator stays the reference.

:class:`DeviceBatches` is the trainer's batch stream when ``data.generator = "device"``: step
``k`` is real or synthetic as :class:`~training.data.mixed.MixedStepSampler` decides; real
batches come from :class:`~training.data.folder.FaceFolder` through a DataLoader (worker
processes decode the cached JPEGs, prefetching), synthetic ones from :class:`DeviceSynthetic`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from msma_engine.face_model import FaceModel
from msma_engine.render import RenderContext, channels_first
from training.config import SyntheticConfig
from training.data.mixed import MixedStepSampler
from training.data.synthetic import SyntheticFaces, sample_coefficients

__all__ = ["DeviceSynthetic", "DeviceBatches"]


def _blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian blur of ``(B, 3, H, W)`` with ``sigma (B,)`` pixels (0 = none)."""
    radius = 5
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-0.5 * (x[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, K)
    b, c, h, w = img.shape
    flat = img.reshape(1, b * c, h, w)
    kx = k.repeat_interleave(c, 0)[:, None, None, :]
    ky = k.repeat_interleave(c, 0)[:, None, :, None]
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kx, groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), ky, groups=b * c)
    out = flat.reshape(b, c, h, w)
    return torch.where((sigma > 0)[:, None, None, None], out, img)


class DeviceSynthetic:
    """Synthetic batches rendered on ``model``'s device.

    Args:
        model: the face model, on the device that renders.
        cfg: generator settings (poses, light, augmentation probabilities).
        seed: sample ``i`` has the coefficients of ``SyntheticFaces(seed=seed)[i]``.
        ctx: render context (nvdiffrast on CUDA when installed, else the PyTorch rasteriser).
    """

    def __init__(self, model: FaceModel, cfg: SyntheticConfig | None = None, seed: int = 0,
                 ctx: RenderContext | None = None) -> None:
        self.model = model
        self.cfg = cfg or SyntheticConfig()
        self.seed = int(seed)
        self._renderer = SyntheticFaces(model, self.cfg, seed=seed, length=1, ctx=ctx or RenderContext("auto"))

    @torch.no_grad()
    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """Samples ``indices``: ``image (B, 3, 224, 224)``, ``coeffs``, ``vertices``, ``landmarks``,
        ``mask`` (visible skin), ``face_mask`` — the fields of :class:`SyntheticFaces`, on the device."""
        cfg, model = self.cfg, self.model
        dev = model.mean_shape.device
        rngs = [np.random.default_rng([self.seed, int(i)]) for i in indices]
        coeffs = torch.stack([sample_coefficients(model, cfg, r) for r in rngs]).to(dev)
        r = {k: channels_first(v) if k in ("image", "face_mask", "skin") else v
             for k, v in self._renderer.render(coeffs).items()}
        b = len(indices)
        size = r["image"].shape[-1]
        g = torch.Generator(device=dev).manual_seed(int(np.random.default_rng([self.seed, int(indices[0]), 5])
                                                        .integers(2 ** 62)))

        def u(*shape, lo=0.0, hi=1.0):
            return lo + (hi - lo) * torch.rand(*shape, generator=g, device=dev)

        # Backgrounds: half linear colour gradients, half smooth colour noise.
        yy, xx = torch.meshgrid(torch.linspace(0, 1, size, device=dev), torch.linspace(0, 1, size, device=dev),
                                indexing="ij")
        ang = u(b, lo=0, hi=2 * math.pi)
        t = torch.cos(ang)[:, None, None] * xx + torch.sin(ang)[:, None, None] * yy
        t_min, t_max = t.amin((1, 2), keepdim=True), t.amax((1, 2), keepdim=True)
        t = (t - t_min) / (t_max - t_min).clamp_min(1e-6)
        c0, c1 = u(b, 3, 1, 1), u(b, 3, 1, 1)
        grad = c0 + (c1 - c0) * t[:, None]
        noise = F.interpolate(u(b, 3, 6, 6), size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        bg = torch.where((u(b) < 0.5)[:, None, None, None], grad, noise)
        face = r["face_mask"]
        img = r["image"] * face + bg * (1 - face)
        # Bar occluder (a hand / microphone / scarf stand-in) across the lower or upper face.
        lm = r["landmarks"]
        has = u(b) < cfg.p_occluder
        centre = lm[:, 48:68].mean(1) + (u(b, 2) - 0.5) * 60
        half = torch.stack([u(b, lo=15, hi=60), u(b, lo=6, hi=20)], 1)
        inside = ((xx[None] * size - centre[:, 0, None, None]).abs() < half[:, 0, None, None]) & \
                 ((yy[None] * size - centre[:, 1, None, None]).abs() < half[:, 1, None, None])
        occ = (inside & has[:, None, None]).to(img.dtype)[:, None]
        img = img * (1 - occ) + u(b, 3, 1, 1) * occ
        # Colour jitter, blur, noise (the CPU generator's ranges).
        jit = (u(b) < cfg.p_color)[:, None, None, None]
        j = img * u(b, 1, 1, 1, lo=0.7, hi=1.3) + u(b, 1, 1, 1, lo=-0.1, hi=0.1)
        grey = j.mean(1, keepdim=True)
        j = (grey + (j - grey) * u(b, 1, 1, 1, lo=0.5, hi=1.4)) * u(b, 3, 1, 1, lo=0.9, hi=1.1)
        j = j.clamp(0, 1) ** u(b, 1, 1, 1, lo=0.8, hi=1.25)
        img = torch.where(jit, j, img)
        img = _blur(img, torch.where(u(b) < cfg.p_blur, u(b, lo=0.4, hi=1.8), torch.zeros(b, device=dev)))
        sd = torch.where(u(b) < cfg.p_noise, u(b, lo=0.005, hi=0.04), torch.zeros(b, device=dev))
        img = (img + sd[:, None, None, None] * torch.randn(img.shape, generator=g, device=dev)).clamp(0, 1)
        return {"image": img.contiguous(), "coeffs": coeffs, "vertices": r["vertices"], "landmarks": lm,
                "mask": (r["skin"] * (1 - occ)).float(), "face_mask": face.float()}


class DeviceBatches:
    """The trainer's batch stream with synthetic batches rendered on the training device.

    Args:
        model: the face model (CPU copy; moved to the device when iteration starts).
        cfg: generator settings.
        seed: data seed.
        real: optional :class:`FaceFolder` of training photos mixed in.
        fraction, pair_fraction: see :class:`MixedStepSampler`.
        num_workers: DataLoader workers that decode the real photos.
    """

    def __init__(self, model: FaceModel, cfg: SyntheticConfig, seed: int = 0, real: Dataset | None = None,
                 fraction: float = 0.0, pair_fraction: float = 0.5, num_workers: int = 0) -> None:
        self.model, self.cfg, self.seed, self.real = model, cfg, seed, real
        self.fraction, self.pair_fraction, self.num_workers = fraction, pair_fraction, num_workers
        self.n_synth = 2 ** 40  # fresh synthetic indices for every step

    def __len__(self) -> int:
        return self.n_synth + (len(self.real) if self.real is not None else 0)

    def batch_iterator(self, batch_size: int, steps: int, start_step: int, device: torch.device, rank: int = 0,
                       world_size: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        """Batches ``[start_step, steps)``; batch ``k`` depends on ``(seed, k, rank)`` only."""
        person = np.asarray(self.real.person) if self.real is not None else np.zeros(0, np.int64)
        sampler = MixedStepSampler(self.n_synth, person, batch_size, steps, start_step, self.seed,
                                   self.fraction if self.real is not None else 0.0, self.pair_fraction, rank,
                                   world_size)
        model = copy.deepcopy(self.model).to(device) if device.type != "cpu" else self.model
        synth = DeviceSynthetic(model, self.cfg, self.seed,
                                RenderContext("auto" if device.type == "cuda" else "torch"))
        real_iter = None
        if self.real is not None and sampler.fraction > 0:
            loader = DataLoader(self.real, batch_sampler=_RealSteps(sampler, start_step, steps),
                                num_workers=self.num_workers, pin_memory=device.type == "cuda",
                                prefetch_factor=4 if self.num_workers else None, persistent_workers=False)
            real_iter = iter(loader)
        for k in range(start_step, steps):
            if sampler.is_real(k):
                yield {key: v.to(device, non_blocking=True) for key, v in next(real_iter).items()}
            else:
                yield synth.batch(sampler.batch(k))


class _RealSteps:
    """The real batches of steps ``[start, steps)`` in step order, as indices into the real set (lazy)."""

    def __init__(self, sampler: MixedStepSampler, start: int, steps: int) -> None:
        self.sampler, self.start, self.steps = sampler, start, steps

    def __iter__(self) -> Iterator[list[int]]:
        n = self.sampler.n_synth
        for k in range(self.start, self.steps):
            if self.sampler.is_real(k):
                yield [i - n for i in self.sampler.batch(k)]
