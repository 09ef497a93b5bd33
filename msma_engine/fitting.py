"""Test-time fitting of the face model to one aligned photo crop (analysis by synthesis).

:class:`FaceFitter` owns its optimised parameters (one ``nn.Parameter`` per coefficient
group) and minimises, with Adam, the losses of :mod:`msma_engine.fit_losses` through the
differentiable renderer (:mod:`msma_engine.render`). The network regression path is separate;
its output is just another starting point here.

Schedule (see :data:`QUALITY_PRESETS`):

1. **rigid**: closed-form pose from the 68 landmarks (:func:`rigid_pose_from_landmarks`,
   OpenCV PnP on the inner 51 points), then Levenberg-Marquardt on the pose (all 68).
2. **shape**: Levenberg-Marquardt on pose, identity and expression with the landmark and
   regularisation terms (no rendering; the landmark rows of the bases only, so an
   iteration costs milliseconds and the landmark term is solved to convergence).
3. **light**: SH lighting and albedo coefficients in closed form (the render is linear in
   each given the other: :func:`solve_lighting`, :func:`solve_albedo`), alternated.
4. **photometric**: Adam on the skin-masked photometric loss + regularisation: albedo and
   light on the fixed geometry by default, or everything (with the landmark term,
   rendering at ``render_size`` per step) with ``FitConfig.photo_geometry``.

Weights. The paper's losses (Deep3DFaceRecon's values: photometric 1.92, landmark 1.6e-3
on squared 224-crop pixels, regularisation 3e-4 × (1.0|α|² + 0.8|β|² + 1.7e-2|γ|²),
light colour 10) are kept, with the landmark term rewritten in inter-ocular units: a
224-crop face has an inter-ocular distance of about 60 px, so 1.6e-3 px⁻² becomes
1.6e-3 × 60² ≈ 5.8. Our identity/expression/albedo coefficients have unit-variance priors
like Deep3DFaceRecon's scaled BFM, so the regularisation weights carry over unchanged.
For one photo the balance between the landmark and the prior terms decides how far the
shape may stray from the mean: in Bayesian terms the ratio of the two weights is the
landmark noise variance. Deep3DFaceRecon's ratio (3e-4 / 5.8 per unit |α|²) assumes noise
of about 0.13 IOD per point over 68 points, which holds the default head near its mean
(identity norm ≈ 2, far below the √80 ≈ 9 a typical face has, and a landmark error of
≈ 5 % IOD). ``reg_scale`` = 0.03 (noise ≈ 0.02 IOD, the accuracy of the detectors)
gives identity norms ≈ 10, as the unit-variance prior expects, and ≈ 3.4 % IOD on the
test portraits; weaker priors fit the landmarks closer only with implausible shapes.
Expression coefficients are projected to the model's ``expression_range`` after every
step (ARKit-style models have ranges like [0, 1]).

Not done: the identity-embedding (perceptual) loss — no differentiable face-recognition
network ships with the project; :class:`FaceFitter` takes an ``identity_loss`` callable
as the hook for one. The reflectance loss is not needed, as the texture is baked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import cv2
import numpy as np
import torch
from torch import nn

from msma_engine.errors import ShapeError
from msma_engine.face_model import FaceModel
from msma_engine.fit_losses import (
    coefficient_regularisation,
    gamma_regularisation,
    inter_ocular_distance,
    landmark_loss,
    landmark_nme,
    landmark_weights,
    photometric_loss,
)
from msma_engine.geometry import euler_to_rotation, rotation_to_euler
from msma_engine.render import RenderContext, interpolate, rasterize
from msma_engine.shading import SH_INIT_DC, sh_basis, sh_irradiance

__all__ = [
    "Quality",
    "FitConfig",
    "QUALITY_PRESETS",
    "FitTarget",
    "FitOutput",
    "FaceFitter",
    "rigid_pose_from_landmarks",
    "solve_lighting",
    "solve_albedo",
]

logger = logging.getLogger(__name__)

Quality = Literal["fast", "default", "high"]


@dataclass(frozen=True)
class FitConfig:
    """Fitting schedule and loss weights.

    Attributes:
        rigid_iters: Levenberg-Marquardt iterations on the pose only (landmarks).
        shape_iters: Levenberg-Marquardt iterations on pose + identity + expression
            (landmarks + regularisation).
        light_rounds: alternations of the closed-form light / albedo solves.
        photo_steps: Adam steps on everything with the photometric loss.
        render_size: side of the square render used by the photometric stage (the 224 crop
            scaled; smaller is faster).
        lr_pose, lr_shape, lr_colour: Adam learning rates of the photometric stage (radians
            and metres share lr_pose, translation is scaled by 0.1 internally).
        w_landmark, w_photo, w_reg, w_gamma: loss weights (see module doc).
        w_id, w_exp, w_tex: relative regularisation weights λα, λβ, λγ.
        reg_scale: multiplier of ``w_reg`` when fitting one photo (see module doc).
        inner_mouth_weight: landmark weight of points 60-67.
        photo_geometry: let the photometric stage move pose and shape too (full analysis by
            synthesis). Off by default: the model has no hair, eyes or beard, so on photos
            the photometric term pulls the geometry away from the landmarks (+1.5 % IOD
            on the test portraits); with it off, the stage refines albedo and light on the
            fixed geometry, which needs one rasterization instead of one per step.
    """

    rigid_iters: int = 8
    shape_iters: int = 25
    light_rounds: int = 2
    photo_steps: int = 30
    render_size: int = 192
    lr_pose: float = 1e-2
    lr_shape: float = 2e-2
    lr_colour: float = 1e-2
    w_landmark: float = 5.8
    w_photo: float = 1.92
    w_reg: float = 3e-4
    w_gamma: float = 10.0
    w_id: float = 1.0
    w_exp: float = 0.8
    w_tex: float = 1.7e-2
    reg_scale: float = 0.03
    inner_mouth_weight: float = 20.0
    photo_geometry: bool = False

    def __post_init__(self) -> None:
        for name in ("rigid_iters", "shape_iters", "light_rounds", "photo_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.render_size < 16:
            raise ValueError(f"FitConfig.render_size must be >= 16, got {self.render_size}")


QUALITY_PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(rigid_iters=4, shape_iters=8, light_rounds=2, photo_steps=0, render_size=128),
    "default": FitConfig(),
    "high": FitConfig(rigid_iters=8, shape_iters=25, light_rounds=3, photo_steps=100, render_size=224),
}
"""Speed/quality settings. On a 2-core CPU "fast" fits in ~0.15 s, "default" in ~0.5 s (the
landmark stages converge there: more shape iterations change nothing on the test portraits),
"high" in ~1.2 s (more photometric steps at the full crop size)."""


@dataclass
class FitTarget:
    """What the fit is matched to, all on the 224 crop of the face model's camera.

    Attributes:
        image: ``(1, 3, S, S)`` float crop in [0, 1] (S = the camera's crop size).
        landmarks: ``(1, 68, 2)`` detected landmarks, crop pixels.
        valid: ``(1, 1, S, S)`` float, 1 where the crop shows photo pixels (0 where the crop
            runs off the photo).
    """

    image: torch.Tensor
    landmarks: torch.Tensor
    valid: torch.Tensor

    def __post_init__(self) -> None:
        if self.image.ndim != 4 or self.image.shape[:2] != (1, 3):
            raise ShapeError(f"FitTarget.image must be (1, 3, S, S), got {tuple(self.image.shape)}")
        if self.landmarks.shape != (1, 68, 2):
            raise ShapeError(f"FitTarget.landmarks must be (1, 68, 2), got {tuple(self.landmarks.shape)}")
        if self.valid.shape != (1, 1, *self.image.shape[2:]):
            raise ShapeError(f"FitTarget.valid must be (1, 1, S, S), got {tuple(self.valid.shape)}")


@dataclass
class FitOutput:
    """Result of :meth:`FaceFitter.fit`.

    Attributes:
        coeffs: ``(1, C)`` fitted coefficients (detached).
        metrics: ``landmark_nme_start/fit`` (fraction of the inter-ocular distance) and
            ``photometric_start/fit`` (mean per-pixel RGB L2 error on the rendered skin).
        timings: seconds per stage.
    """

    coeffs: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def rigid_pose_from_landmarks(model: FaceModel, landmarks: np.ndarray, coeffs: torch.Tensor | None = None,
                              points: slice | np.ndarray = slice(17, 68)) -> tuple[np.ndarray, np.ndarray]:
    """Head pose that projects the model's 3D landmarks onto detected ones (PnP).

    Uses the model's camera (focal, principal point, distance). The jaw contour (0-16) is
    left out by default: on a photo it follows the silhouette, not fixed vertices.

    Args:
        model: the face model.
        landmarks: ``(68, 2)`` target landmarks in the model camera's pixels.
        coeffs: ``(1, C)`` coefficients whose shape (id, exp) is posed; None = the mean face.
        points: which landmarks to use.

    Returns:
        ``angles`` ``(3,)`` radians (pitch, yaw, roll) and ``trans`` ``(3,)`` metres.
    """
    lm2d = np.asarray(landmarks, dtype=np.float64)
    if lm2d.shape != (68, 2):
        raise ShapeError(f"landmarks must be (68, 2), got {lm2d.shape}")
    with torch.no_grad():
        c = model.layout.split(coeffs if coeffs is not None else model.layout.zeros(1, device=model.mean_shape.device))
        lm3d = model.shape(c.id, c.exp)[0, model.landmark_indices].double().cpu().numpy()
    cam = model.camera
    k = np.array([[cam.focal, 0.0, cam.center[0]], [0.0, cam.focal, cam.center[1]], [0.0, 0.0, 1.0]])
    obj, img = lm3d[points], lm2d[points]
    # OpenCV's camera looks down +z with y down: X_cv = S·X_world + (0, 0, d), S = diag(1, −1, −1).
    # Start from a frontal head at the distance that matches the landmarks' spread.
    spread_img = np.linalg.norm(img - img.mean(0), axis=1).mean()
    spread_obj = np.linalg.norm(obj[:, :2] - obj[:, :2].mean(0), axis=1).mean()
    depth = cam.focal * spread_obj / max(spread_img, 1e-6)
    rvec0 = cv2.Rodrigues(np.diag([1.0, -1.0, -1.0]))[0]
    tvec0 = np.array([[(img[:, 0].mean() - cam.center[0]) * depth / cam.focal],
                      [(img[:, 1].mean() - cam.center[1]) * depth / cam.focal], [depth]])
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, rvec0, tvec0, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or not np.all(np.isfinite(rvec)) or tvec[2, 0] <= 0:
        logger.warning("PnP failed; starting from a frontal pose at the landmark-matched distance")
        rvec, tvec = rvec0, tvec0
    r_cv = cv2.Rodrigues(rvec)[0]
    s = np.diag([1.0, -1.0, -1.0])
    rot = s @ r_cv
    trans = s @ (tvec[:, 0] - np.array([0.0, 0.0, cam.distance]))
    angles = rotation_to_euler(torch.as_tensor(rot)[None])[0].numpy()
    # rotation_to_euler assumes |yaw| < 90°; check the round trip so a flipped solution is caught.
    if not np.allclose(euler_to_rotation(torch.as_tensor(angles)[None])[0].numpy(), rot, atol=1e-6):
        logger.warning("PnP pose outside the Euler range; using a frontal pose")
        rot, angles = np.eye(3), np.zeros(3)
        trans = s @ (tvec0[:, 0] - np.array([0.0, 0.0, cam.distance]))
    return angles.astype(np.float64), trans.astype(np.float64)


def solve_lighting(albedo: torch.Tensor, normals: torch.Tensor, target: torch.Tensor,
                   weight: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """Least-squares SH lighting for fixed albedo and normals (the render is linear in it).

    Solves, per colour channel, ``target_c ≈ albedo_c · (basis(n) · g_c)`` over the weighted
    pixels, with a small ridge towards the default light.

    Args:
        albedo: ``(N, 3)`` per-pixel albedo.
        normals: ``(N, 3)`` unit normals.
        target: ``(N, 3)`` observed colours.
        weight: ``(N,)`` pixel weights.
        ridge: Tikhonov weight relative to the data term.

    Returns:
        ``(1, 27)`` gamma coefficients (DC offset of :data:`SH_INIT_DC` removed).
    """
    basis = sh_basis(normals).double()  # (N, 9)
    w = weight.double()[:, None]
    prior = torch.zeros(9, dtype=torch.float64, device=basis.device)
    prior[0] = SH_INIT_DC
    out = []
    lam = ridge * float(w.sum()) + 1e-9
    for ch in range(3):
        a = basis * albedo[:, ch : ch + 1].double()
        lhs = (a * w).T @ a + lam * torch.eye(9, dtype=torch.float64, device=a.device)
        rhs = (a * w).T @ target[:, ch].double() + lam * prior
        out.append(torch.linalg.solve(lhs, rhs))
    g = torch.stack(out)  # (3, 9)
    g[:, 0] -= SH_INIT_DC
    return g.reshape(1, 27).to(albedo.dtype)


def solve_albedo(mean: torch.Tensor, basis: torch.Tensor, irradiance: torch.Tensor, target: torch.Tensor,
                 weight: torch.Tensor, prior_weight: float) -> torch.Tensor:
    """Least-squares albedo coefficients for fixed lighting (linear before clamping).

    Minimises ``Σ_n w_n |irr_n ⊙ (mean_n + B_n γ) − target_n|² + prior_weight · |γ|²``.

    Args:
        mean: ``(N, 3)`` per-pixel mean albedo.
        basis: ``(N, 3, K)`` per-pixel albedo basis.
        irradiance: ``(N, 3)``.
        target: ``(N, 3)``.
        weight: ``(N,)``.
        prior_weight: weight of the unit-variance prior (in the data term's units).

    Returns:
        ``(1, K)``.
    """
    k = basis.shape[-1]
    a = (basis * irradiance[..., None]).double().reshape(-1, k)  # (3N, K)
    r = (target - irradiance * mean).double().reshape(-1)
    w = weight.double().repeat_interleave(3)[:, None]
    lhs = (a * w).T @ a + prior_weight * torch.eye(k, dtype=torch.float64, device=a.device)
    rhs = (a * w).T @ r
    return torch.linalg.solve(lhs, rhs)[None].to(mean.dtype)


class FaceFitter:
    """Fits a :class:`~msma_engine.face_model.FaceModel` to one aligned crop.

    The model is not modified; its coefficient groups are this object's parameters during
    :meth:`fit`.

    Args:
        model: the face model (its camera defines the crop).
        config: schedule and weights, or a quality name (``"fast"``, ``"default"``, ``"high"``).
        ctx: render context (pure PyTorch by default).
        identity_loss: optional ``(rendered (1,3,S,S), image (1,3,S,S), mask) -> ()`` loss,
            e.g. a face-recognition embedding distance; added in the photometric stage with
            weight ``identity_weight``.
        identity_weight: its weight (the paper's perceptual weight is 0.2).
    """

    def __init__(self, model: FaceModel, config: FitConfig | Quality = "default", ctx: RenderContext | None = None,
                 identity_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 identity_weight: float = 0.2) -> None:
        if isinstance(config, str):
            if config not in QUALITY_PRESETS:
                raise ValueError(f"fit quality must be one of {sorted(QUALITY_PRESETS)}, got {config!r}")
            config = QUALITY_PRESETS[config]
        self.model = model
        self.config = config
        self.ctx = ctx or RenderContext("torch")
        self.identity_loss = identity_loss
        self.identity_weight = identity_weight
        lm = model.landmark_indices
        # Landmark-only stages evaluate just these rows of the bases.
        self._lm_mean = model.mean_shape[lm]
        self._lm_id = model.id_basis[:, lm]
        self._lm_exp = model.exp_basis[:, lm]
        self._lm_weights = landmark_weights(config.inner_mouth_weight, device=model.mean_shape.device)
        self._alb_mean, self._alb_basis = self._vertex_albedo_space()

    def _vertex_albedo_space(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(V, 3)`` and basis ``(K, V, 3)`` of the vertex albedo (before clamping)."""
        m = self.model
        with torch.no_grad():
            if m.albedo_space == "vertex":
                return m.albedo_mean, m.albedo_basis
            mean = m.vertex_albedo(m.albedo_mean[None])[0]
            basis = m.vertex_albedo(m.albedo_basis) if m.layout.n_tex else m.albedo_basis.new_zeros(0, m.n_vertices, 3)
            return mean, basis

    # --- pieces --------------------------------------------------------------------------
    def landmarks_2d(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(1, 68, 2)`` projected landmarks from the parameter dict (cheap: landmark rows only)."""
        pts = (self._lm_mean + torch.einsum("bk,kvc->bvc", p["id"], self._lm_id)
               + torch.einsum("bk,kvc->bvc", p["exp"], self._lm_exp))
        posed = pts @ euler_to_rotation(p["angles"]).transpose(1, 2) + p["trans"][:, None]
        return self.model.camera.project(posed)

    def render(self, coeffs: torch.Tensor, size: int, with_normals: bool = False):
        """Render ``coeffs`` at ``size``² on the crop.

        Returns:
            ``(out, image (1, 3, S, S), skin (1, 1, S, S), fragments, normals)``; the skin
            weight is the interpolated skin mask on covered pixels; ``normals``
            ``(1, S, S, 3)`` only when asked for (else None).
        """
        m = self.model
        out = m(coeffs)
        cam = m.camera.scaled(size / m.camera.image_size[0])
        frags = rasterize(self.ctx, cam.world_to_clip(out.vertices), m.triangles, (size, size), cull_backfaces=True)
        # One interpolation pass for colour and skin weight (background is zero in both).
        attr = torch.cat([out.vertex_colors, m.skin_mask[None, :, None].expand(out.vertex_colors.shape[0], -1, 1)], -1)
        pix = interpolate(attr, frags, m.triangles).permute(0, 3, 1, 2)
        normals = interpolate(out.normals, frags, m.triangles) if with_normals else None
        return out, pix[:, :3], pix[:, 3:], frags, normals

    def _photo_error(self, coeffs: torch.Tensor, image: torch.Tensor, valid: torch.Tensor, size: int) -> float:
        with torch.no_grad():
            _, rendered, skin, _, _ = self.render(coeffs, size)
            return float(photometric_loss(rendered, image, skin * valid))

    # --- the fit -----------------------------------------------------------------------------
    def fit(self, target: FitTarget, init: torch.Tensor | None = None, rigid_init: bool = True) -> FitOutput:
        """Fit the model to ``target``.

        Args:
            target: crop image, detected landmarks and valid-pixel mask.
            init: ``(1, C)`` starting coefficients (e.g. the network's); None = the mean face.
            rigid_init: replace the starting pose by :func:`rigid_pose_from_landmarks`
                (always done when ``init`` is None).

        Returns:
            :class:`FitOutput` with the coefficients and before/after metrics.
        """
        cfg, m = self.config, self.model
        layout = m.layout
        dev = m.mean_shape.device
        if init is None:
            init, rigid_init = layout.zeros(1, device=dev), True
        if init.shape != (1, layout.total):
            raise ShapeError(f"init coefficients must be (1, {layout.total}), got {tuple(init.shape)}")
        init = init.detach().to(dev, torch.float32).clone()
        size = cfg.render_size
        image = nn.functional.interpolate(target.image.to(dev), size=(size, size), mode="area")
        valid = (nn.functional.interpolate(target.valid.to(dev), size=(size, size), mode="area") > 0.99).float()
        lm_t = target.landmarks.to(dev, torch.float32)
        iod = inter_ocular_distance(lm_t)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()

        if rigid_init:
            angles, trans = rigid_pose_from_landmarks(m, lm_t[0].cpu().numpy(), init)
            s = layout.slices()
            init[0, s["angles"]] = torch.as_tensor(angles, dtype=torch.float32)
            init[0, s["trans"]] = torch.as_tensor(trans, dtype=torch.float32)
        # "start" = the pipeline's starting point: the network's output, or the mean face posed by PnP.
        with torch.no_grad():
            start_nme = float(landmark_nme(m(init).landmarks_2d, lm_t)[0])
        params = {k: nn.Parameter(v.clone()) for k, v in vars(layout.split(init)).items()}
        exp_lo, exp_hi = m.expression_range[:, 0], m.expression_range[:, 1]
        exp_lo, exp_hi = torch.minimum(exp_lo, torch.zeros_like(exp_lo)), torch.maximum(exp_hi, torch.zeros_like(exp_hi))

        def project_exp() -> None:
            with torch.no_grad():
                params["exp"].copy_(torch.maximum(torch.minimum(params["exp"], exp_hi), exp_lo))

        project_exp()

        def coeffs() -> torch.Tensor:
            return torch.cat([params[k] for k in layout.names], dim=1)

        def lm_term() -> torch.Tensor:
            return cfg.w_landmark * landmark_loss(self.landmarks_2d(params), lm_t, self._lm_weights, iod)

        def reg_term(scale: float) -> torch.Tensor:
            return scale * cfg.w_reg * coefficient_regularisation(params["id"], params["exp"], params["tex"],
                                                                   cfg.w_id, cfg.w_exp, cfg.w_tex)

        lm_sqrt_w = (cfg.w_landmark * self._lm_weights / self._lm_weights.sum()).sqrt()
        self._levenberg_marquardt(params, ("angles", "trans"), lm_t, iod, lm_sqrt_w, 0.0, cfg.rigid_iters, exp_lo, exp_hi)
        timings["fit_rigid"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        self._levenberg_marquardt(params, ("id", "exp", "angles", "trans"), lm_t, iod, lm_sqrt_w,
                                  cfg.reg_scale * cfg.w_reg, cfg.shape_iters, exp_lo, exp_hi)
        timings["fit_shape"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        photo_start = self._photo_error(init, image, valid, size)
        for _ in range(cfg.light_rounds):
            self._solve_colour(params, coeffs, image, valid, size)
        timings["fit_light"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        if cfg.photo_steps and cfg.photo_geometry:
            def photo_loss() -> torch.Tensor:
                c = coeffs()
                _, rendered, skin, _, _ = self.render(c, size)
                mask = skin * valid
                loss = (cfg.w_photo * photometric_loss(rendered, image, mask) + lm_term() + reg_term(cfg.reg_scale)
                        + cfg.w_gamma * cfg.w_reg * gamma_regularisation(params["gamma"]))
                if self.identity_loss is not None:
                    loss = loss + self.identity_weight * self.identity_loss(rendered, image, mask)
                return loss

            # Translation is in metres and small: a 10x smaller step keeps it in step with the angles.
            groups = [{"params": [params["angles"]], "lr": cfg.lr_pose},
                      {"params": [params["trans"]], "lr": cfg.lr_pose * 0.1},
                      {"params": [params["id"], params["exp"]], "lr": cfg.lr_shape},
                      {"params": [params["tex"], params["gamma"]], "lr": cfg.lr_colour}]
            self._adam(groups, cfg.photo_steps, photo_loss, project_exp)
        elif cfg.photo_steps:
            self._fit_colour(params, coeffs, image, valid, size)
        timings["fit_photo"] = time.perf_counter() - t3

        final = coeffs().detach()
        with torch.no_grad():
            fit_nme = float(landmark_nme(m(final).landmarks_2d, lm_t)[0])
        metrics = {
            "landmark_nme_start": start_nme,
            "landmark_nme_fit": fit_nme,
            "photometric_start": photo_start,
            "photometric_fit": self._photo_error(final, image, valid, size),
        }
        timings["fit"] = time.perf_counter() - t0
        logger.info("fit: landmark NME %.4f -> %.4f, photometric %.4f -> %.4f in %.2fs",
                    start_nme, fit_nme, metrics["photometric_start"], metrics["photometric_fit"], timings["fit"])
        return FitOutput(coeffs=final, metrics=metrics, timings=timings)

    def _fit_colour(self, params: dict[str, nn.Parameter], coeffs: Callable[[], torch.Tensor],
                    image: torch.Tensor, valid: torch.Tensor, size: int) -> None:
        """Adam on albedo and light only, on a fixed rasterization of the current geometry."""
        cfg, m = self.config, self.model
        with torch.no_grad():
            out, _, skin, frags, _ = self.render(coeffs(), size)
            basis = sh_basis(out.normals)  # (1, V, 9): fixed, the geometry does not move
            mask = skin * valid
        dc = torch.zeros(1, 3, 9, device=basis.device)
        dc[:, :, 0] = SH_INIT_DC

        def loss() -> torch.Tensor:
            alb = (self._alb_mean + torch.einsum("bk,kvc->bvc", params["tex"], self._alb_basis)).clamp(0.0, 1.0)
            irr = torch.einsum("bvk,bck->bvc", basis, params["gamma"].view(1, 3, 9) + dc)
            rendered = interpolate(alb * irr, frags, m.triangles).permute(0, 3, 1, 2)
            return (cfg.w_photo * photometric_loss(rendered, image, mask)
                    + cfg.reg_scale * cfg.w_reg * cfg.w_tex * (params["tex"] ** 2).sum()
                    + cfg.w_gamma * cfg.w_reg * gamma_regularisation(params["gamma"]))

        self._adam([{"params": [params["tex"], params["gamma"]], "lr": cfg.lr_colour}], cfg.photo_steps, loss)

    def _levenberg_marquardt(self, params: dict[str, nn.Parameter], keys: tuple[str, ...], lm_t: torch.Tensor,
                             iod: torch.Tensor, sqrt_w: torch.Tensor, reg: float, iters: int,
                             exp_lo: torch.Tensor, exp_hi: torch.Tensor) -> None:
        """Damped Gauss-Newton on the landmark (+ regularisation) objective over ``keys``.

        Minimises exactly the landmark and regularisation terms of the photometric stage
        (``w_landmark · landmark_loss + reg · (w_id|α|² + w_exp|β|²)``), written as a sum of
        squared residuals; the expression coefficients are clamped to their range.
        """
        if iters <= 0:
            return
        cfg = self.config
        sizes = [params[k].shape[1] for k in keys]
        fixed = {k: v.detach() for k, v in params.items()}
        reg_w = {"id": (reg * cfg.w_id) ** 0.5, "exp": (reg * cfg.w_exp) ** 0.5}

        def residual(x: torch.Tensor) -> torch.Tensor:
            parts = dict(zip(keys, torch.split(x, sizes)))
            p = {k: parts[k][None] if k in parts else fixed[k] for k in ("id", "exp", "angles", "trans")}
            r = [((self.landmarks_2d(p)[0] - lm_t[0]) * (sqrt_w[:, None] / iod[0])).reshape(-1)]
            r += [reg_w[k] * parts[k] for k in ("id", "exp") if k in parts and reg > 0]
            return torch.cat(r)

        def clamp(x: torch.Tensor) -> torch.Tensor:
            if "exp" not in keys:
                return x
            parts = list(torch.split(x, sizes))
            i = keys.index("exp")
            parts[i] = torch.maximum(torch.minimum(parts[i], exp_hi), exp_lo)
            return torch.cat(parts)

        x = torch.cat([params[k].detach()[0] for k in keys]).double()
        lm_t, iod, sqrt_w = lm_t.double(), iod.double(), sqrt_w.double()
        saved = (self._lm_mean, self._lm_id, self._lm_exp)
        self._lm_mean, self._lm_id, self._lm_exp = (t.double() for t in saved)
        fixed = {k: v.double() for k, v in fixed.items()}
        try:
            r = residual(x)
            cost, damping = float(r @ r), 1e-3
            for _ in range(iters):
                jac = torch.func.jacfwd(residual)(x)
                jtj, grad = jac.T @ jac, jac.T @ r
                diag = torch.diagonal(jtj).clamp_min(1e-9)
                for _ in range(6):  # raise the damping until the step lowers the cost
                    step = torch.linalg.solve(jtj + damping * torch.diag(diag), -grad)
                    x_new = clamp(x + step)
                    r_new = residual(x_new)
                    cost_new = float(r_new @ r_new)
                    if cost_new < cost:
                        x, r, cost, damping = x_new, r_new, cost_new, max(damping / 3.0, 1e-7)
                        break
                    damping *= 4.0
                else:
                    break
        finally:
            self._lm_mean, self._lm_id, self._lm_exp = saved
        with torch.no_grad():
            for k, v in zip(keys, torch.split(x.float(), sizes)):
                params[k].copy_(v[None])

    @staticmethod
    def _adam(groups: list[dict], steps: int, closure: Callable[[], torch.Tensor],
              after_step: Callable[[], None] | None = None) -> None:
        if steps <= 0:
            return
        opt = torch.optim.Adam(groups)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = closure()
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step()

    def _solve_colour(self, params: dict[str, nn.Parameter], coeffs: Callable[[], torch.Tensor],
                      image: torch.Tensor, valid: torch.Tensor, size: int) -> None:
        """One round of closed-form light then albedo on the current geometry."""
        cfg, m = self.config, self.model
        with torch.no_grad():
            out, _, skin, frags, pix_n = self.render(coeffs(), size, with_normals=True)
            w = (skin * valid)[0, 0].reshape(-1)
            sel = w > 0.5
            if int(sel.sum()) < 50:
                logger.warning("only %d skin pixels visible; skipping the light solve", int(sel.sum()))
                return
            tris = m.triangles
            normals = pix_n[0].reshape(-1, 3)[sel]
            normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            target = image[0].permute(1, 2, 0).reshape(-1, 3)[sel]
            albedo = interpolate(out.vertex_albedo, frags, tris)[0].reshape(-1, 3)[sel]
            params["gamma"].copy_(solve_lighting(albedo, normals, target, w[sel]))
            if m.layout.n_tex:
                irr = sh_irradiance(normals[None], params["gamma"])[0]
                mean = interpolate(self._alb_mean, frags, tris)[0].reshape(-1, 3)[sel]
                k = self._alb_basis.shape[0]
                basis = interpolate(self._alb_basis.permute(1, 2, 0).reshape(1, m.n_vertices, 3 * k), frags, tris)
                basis = basis[0].reshape(-1, 3, k)[sel]
                # The data term is a sum over pixels; express the prior per pixel like the photometric loss.
                prior = cfg.w_reg * cfg.w_tex / cfg.w_photo * float(w[sel].sum())
                params["tex"].copy_(solve_albedo(mean, basis, irr, target, w[sel], prior))
