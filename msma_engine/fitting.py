"""Test-time fitting of the face model to one aligned photo crop (analysis by synthesis).

Schedule (see :data:`QUALITY_PRESETS`):

1. **rigid**: closed-form pose from the 68 landmarks (:func:`rigid_pose_from_landmarks`,
   OpenCV PnP on the inner 51 points), then Levenberg-Marquardt on the pose.
2. **shape**: Levenberg-Marquardt on pose, identity and expression with the landmark and
   prior terms (no rendering; the landmark rows of the bases only, :class:`LandmarkRows`,
   so an iteration costs milliseconds and the landmark term is solved to convergence).
   ARKit bases then get a **debiasing refit** (relaxed lasso): the L1 term chose which units
   are on, but it also shrinks them (a true 0.6 smile came back as 0.4), so the units it
   kept are refitted with the other units at 0 and the priors scaled to the landmark noise
   the sparse fit left (``FitConfig.noise_ref``): on points the model explains almost
   exactly the shrinking terms go, on a detector's noisy points they stay.
3. **light**: SH lighting and albedo coefficients in closed form (the render is linear in
   each given the other: :func:`solve_lighting`, :func:`solve_albedo`), alternated.
4. **photometric**: Adam on the skin-masked photometric loss: albedo and light on the
   fixed geometry by default, or everything with ``FitConfig.photo_geometry``.

Landmarks. With the 478 dense Face Mesh points (``FitTarget.dense``) and a model that
carries a dense correspondence (:mod:`msma_engine.dense_landmarks`), the landmark term
uses all of them with per-region weights (:class:`~msma_engine.dense_landmarks.RegionWeights`);
face-oval points are measured along the outline's normal only (a turned head's outline
is a silhouette, not a fixed line of skin) and the iris points set the eye-look units
(:func:`~msma_engine.expression_prior.eye_look_from_iris`). Otherwise the 68 iBUG points
are used, all with weight 1: Deep3DFaceRecon's weight 20 on the inner mouth was tuned for
FAN's inner-lip convention and, on our detector's, pulls fitted mouths into a pout.

Weights. The landmark term is ``w_landmark · Σ w_i |p_i − q_i|² / (Σ w_i · iod²)`` (inter-
ocular units, so it does not depend on the crop scale; Deep3DFaceRecon's 1.6e-3 px⁻² on
a 224 crop with iod ≈ 60 px is ≈ 5.8). Identity has the unit-variance Gaussian prior
``reg_scale · w_reg · w_id |α|²``; the balance of the two is the landmark noise variance.
Expressions have the prior of :mod:`msma_engine.expression_prior` (ARKit structure, or
Gaussian for PCA bases). The paper's terms themselves live in :mod:`msma_engine.losses`,
shared with training.

Threading contract: a :class:`FaceFitter` is immutable after construction (its tables are
built once, in both float32 and float64) and :meth:`FaceFitter.fit` keeps every
optimised quantity local, so one fitter may serve several threads at once.

Not done: the identity-embedding (perceptual) loss — no differentiable face-recognition
network ships with the project; :class:`FaceFitter` takes an ``identity_loss`` callable
as the hook for one. The reflectance loss is not needed, as the texture is baked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Literal

import cv2
import numpy as np
import torch
from torch import nn

from msma_engine.camera import PerspectiveCamera
from msma_engine.dense_landmarks import N_DENSE, OVAL, RegionWeights, contour_normals, point_weights, surface_points
from msma_engine.errors import ShapeError
from msma_engine.expression_prior import ExpressionPrior, PriorWeights, eye_look_from_iris
from msma_engine.face_model import FaceModel, FaceOutput
from msma_engine.geometry import euler_to_rotation, rotation_to_euler
from msma_engine.losses import (
    PAPER_WEIGHTS,
    gamma_regularisation,
    inter_ocular_distance,
    landmark_nme,
    photometric_loss,
)
from msma_engine.render import Fragments, RenderContext, channels_first, interpolate, rasterize
from msma_engine.result import FitScores
from msma_engine.shading import SH_INIT_DC, sh_basis, sh_irradiance
from msma_engine.timing import Stopwatch

__all__ = [
    "Quality",
    "FitConfig",
    "QUALITY_PRESETS",
    "FitTarget",
    "FitOutput",
    "FitRender",
    "LandmarkRows",
    "FaceFitter",
    "levenberg_marquardt",
    "landmark_residuals",
    "render_coeffs",
    "rigid_pose_from_landmarks",
    "solve_lighting",
    "solve_albedo",
]

logger = logging.getLogger(__name__)

Quality = Literal["fast", "default"]


@dataclass(frozen=True)
class FitConfig:
    """Fitting schedule and loss weights.

    Attributes:
        rigid_iters: Levenberg-Marquardt iterations on the pose only (landmarks).
        shape_iters: Levenberg-Marquardt iterations on pose + identity + expression.
        light_rounds: alternations of the closed-form light / albedo solves.
        photo_steps: Adam steps of the photometric stage.
        render_size: side of the square render used by the photometric stage.
        lr_pose, lr_shape, lr_colour: Adam learning rates of the photometric stage.
        w_landmark, w_photo, w_reg, w_gamma: loss weights (see module doc).
        w_id, w_exp, w_tex: relative regularisation weights λα, λβ, λγ.
        reg_scale: multiplier of ``w_reg`` for the identity (and PCA-expression) Gaussian
            prior when fitting one photo.
        prior_scale: multiplier of the ARKit expression prior's weights.
        prior: the ARKit prior's term weights.
        dense: use the 478 dense points when the target and the model have them.
        regions: per-region weights of the dense points.
        inner_mouth_weight: weight of the 68-point fallback's inner-mouth points 60-67.
        photo_geometry: let the photometric stage move pose and shape too. Off by default:
            the model has no hair, eyes or beard, so on photos the photometric term pulls
            the geometry away from the landmarks.
        debias_iters: Levenberg-Marquardt iterations of the debiasing refit after the shape
            stage (ARKit bases; 0 = none, the plain sparse fit): identity, pose and the
            expression units above ``support_threshold`` refitted with the other units held
            at 0 and the shrinking terms scaled by ``strength ** keep_power``
            (:meth:`ExpressionPrior.relaxed`; a relaxed lasso on clean points, nearly the
            sparse fit on noisy ones).
        support_threshold: a unit belongs to the refit's support when the sparse fit gives
            it more than this.
        noise_ref: landmark noise level (RMS, inter-ocular units) at which the priors have
            their configured strength. The refit scales the identity and expression priors
            by ``strength = (σ / noise_ref)²`` clipped to ``[min_strength, 1]``, σ the
            sparse fit's weighted RMS landmark residual: MAP prior weights are proportional
            to the noise variance, so points that the model explains almost exactly are
            trusted more. When ``strength < 1`` the sparse fit is first run again with the
            scaled priors (its support was chosen under the stronger ones), and σ is
            measured again on that fit, up to ``noise_rounds`` times while the strength
            keeps falling (a fixed point of the noise estimate: under a prior that is too
            strong, part of the residual is the prior's own doing). Face Mesh on 40
            LFW/UTKFace photos leaves σ = 0.0096-0.044 (median 0.016, strength ≈ 1); the
            model's own exact points 0.004-0.008; 0 = off.
        min_strength: the lower clip of that scale.
        keep_power: how fast the refit's shrinking terms vanish as the points get cleaner.
        noise_rounds: at most this many noise estimates and sparse refits (see ``noise_ref``).
    """

    rigid_iters: int = 8
    shape_iters: int = 12
    light_rounds: int = 2
    photo_steps: int = 30
    render_size: int = 192
    lr_pose: float = 1e-2
    lr_shape: float = 2e-2
    lr_colour: float = 1e-2
    w_landmark: float = 5.8
    w_photo: float = PAPER_WEIGHTS["photometric"]
    w_reg: float = PAPER_WEIGHTS["regularisation"]
    w_gamma: float = PAPER_WEIGHTS["gamma"]
    w_id: float = PAPER_WEIGHTS["reg_id"]
    w_exp: float = PAPER_WEIGHTS["reg_exp"]
    w_tex: float = PAPER_WEIGHTS["reg_tex"]
    reg_scale: float = 0.03
    prior_scale: float = 1.0
    prior: PriorWeights = field(default_factory=PriorWeights)
    dense: bool = True
    regions: RegionWeights = field(default_factory=RegionWeights)
    inner_mouth_weight: float = 1.0
    photo_geometry: bool = False
    debias_iters: int = 6
    support_threshold: float = 0.05
    noise_ref: float = 0.01
    min_strength: float = 0.1
    keep_power: float = 4.0
    noise_rounds: int = 3

    def __post_init__(self) -> None:
        for name in ("rigid_iters", "shape_iters", "light_rounds", "photo_steps", "debias_iters", "noise_rounds"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.render_size < 16:
            raise ValueError(f"FitConfig.render_size must be >= 16, got {self.render_size}")
        if not 0.0 < self.min_strength <= 1.0:
            raise ValueError(f"FitConfig.min_strength must be in (0, 1], got {self.min_strength}")


QUALITY_PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(rigid_iters=4, shape_iters=6, light_rounds=2, photo_steps=0, render_size=128),
    "default": FitConfig(),
}
"""Speed/quality settings. There is no "high": more photometric steps at the full crop size
left the geometry as it was and did not lower the photometric error (0.1277 vs 0.1270 on 12
photos, 3× the time), and letting the photometric stage move the geometry (``photo_geometry``)
doubled the held-out dense-landmark error (0.032 vs 0.015 IOD): the model has no hair, eyes
or beard, so matching colours pulls the shape off the face (issue 17 note)."""


@dataclass
class FitTarget:
    """What the fit is matched to, all on the 224 crop of the face model's camera.

    Attributes:
        image: ``(1, 3, S, S)`` float crop in [0, 1] (S = the camera's crop size).
        landmarks: ``(1, 68, 2)`` detected landmarks, crop pixels.
        valid: ``(1, 1, S, S)`` float, 1 where the crop shows photo pixels.
        dense: ``(1, 478, 2)`` Face Mesh points, crop pixels, or None.
        dense_mask: ``(478,)`` bool, the dense points the fit may use (None = all); the
            held-out benchmark fits on a subset and measures on the rest.
    """

    image: torch.Tensor
    landmarks: torch.Tensor
    valid: torch.Tensor
    dense: torch.Tensor | None = None
    dense_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 4 or self.image.shape[:2] != (1, 3):
            raise ShapeError(f"FitTarget.image must be (1, 3, S, S), got {tuple(self.image.shape)}")
        if self.landmarks.shape != (1, 68, 2):
            raise ShapeError(f"FitTarget.landmarks must be (1, 68, 2), got {tuple(self.landmarks.shape)}")
        if self.valid.shape != (1, 1, *self.image.shape[2:]):
            raise ShapeError(f"FitTarget.valid must be (1, 1, S, S), got {tuple(self.valid.shape)}")
        if self.dense is not None and self.dense.shape != (1, N_DENSE, 2):
            raise ShapeError(f"FitTarget.dense must be (1, {N_DENSE}, 2), got {tuple(self.dense.shape)}")
        if self.dense_mask is not None and self.dense_mask.shape != (N_DENSE,):
            raise ShapeError(f"FitTarget.dense_mask must be ({N_DENSE},), got {tuple(self.dense_mask.shape)}")


@dataclass
class FitOutput:
    """Result of :meth:`FaceFitter.fit`.

    Attributes:
        coeffs: ``(1, C)`` fitted coefficients (detached).
        scores: the fit's quality figures (:class:`~msma_engine.result.FitScores`).
        timings: seconds per stage (``fit_rigid``, ``fit_shape``, ``fit_light``, ``fit_photo``
            and the whole ``fit``).
    """

    coeffs: torch.Tensor
    scores: FitScores
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FitRender:
    """One render of coefficients on the crop (:func:`render_coeffs`).

    Attributes:
        output: the model's :class:`~msma_engine.face_model.FaceOutput`.
        image: ``(1, 3, S, S)`` shaded colours (0 on background).
        skin: ``(1, 1, S, S)`` interpolated skin weight (0 on background).
        fragments: the rasterization.
        normals: ``(1, S, S, 3)`` interpolated normals, or None when not asked for.
    """

    output: FaceOutput
    image: torch.Tensor
    skin: torch.Tensor
    fragments: Fragments
    normals: torch.Tensor | None = None


def render_coeffs(model: FaceModel, ctx: RenderContext, coeffs: torch.Tensor, size: int,
                  with_normals: bool = False) -> FitRender:
    """Render ``coeffs`` at ``size``² on the model camera's crop (backfaces culled)."""
    out = model(coeffs)
    cam = model.camera.scaled(size / model.camera.image_size[0])
    frags = rasterize(ctx, cam.world_to_clip(out.vertices), model.triangles, (size, size), cull_backfaces=True)
    # One interpolation pass for colour and skin weight (background is zero in both).
    skin = model.skin_mask[None, :, None].expand(out.vertex_colors.shape[0], -1, 1)
    pix = channels_first(interpolate(torch.cat([out.vertex_colors, skin], -1), frags, model.triangles))
    normals = interpolate(out.normals, frags, model.triangles) if with_normals else None
    return FitRender(out, pix[:, :3], pix[:, 3:], frags, normals)


@dataclass(frozen=True)
class LandmarkRows:
    """The rows of the shape model under a set of landmarks: ``mean + A_id α + A_exp β`` there.

    The same linear model as :meth:`FaceModel.shape`, restricted to P points (vertices or
    barycentric surface points), so landmark-only stages cost milliseconds.

    Attributes:
        mean: ``(P, 3)`` metres; id: ``(Kid, P, 3)``; exp: ``(Kexp, P, 3)``.
    """

    mean: torch.Tensor
    id: torch.Tensor
    exp: torch.Tensor

    @staticmethod
    def of_vertices(model: FaceModel, idx: torch.Tensor) -> "LandmarkRows":
        return LandmarkRows(model.mean_shape[idx], model.id_basis[:, idx], model.exp_basis[:, idx])

    @staticmethod
    def of_surface(model: FaceModel, idx: torch.Tensor, bary: torch.Tensor) -> "LandmarkRows":
        return LandmarkRows(surface_points(model.mean_shape[None], idx, bary)[0],
                            surface_points(model.id_basis, idx, bary), surface_points(model.exp_basis, idx, bary))

    def to(self, dtype: torch.dtype) -> "LandmarkRows":
        return LandmarkRows(self.mean.to(dtype), self.id.to(dtype), self.exp.to(dtype))

    def project(self, camera: PerspectiveCamera, id_c: torch.Tensor, exp_c: torch.Tensor, angles: torch.Tensor,
                trans: torch.Tensor) -> torch.Tensor:
        """``(B, P, 2)`` pixels of the posed points (coefficients ``(B, n)``)."""
        pts = (self.mean + torch.einsum("bk,kvc->bvc", id_c, self.id) + torch.einsum("bk,kvc->bvc", exp_c, self.exp))
        return camera.project(pts @ euler_to_rotation(angles).transpose(1, 2) + trans[:, None])


def levenberg_marquardt(residual: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], x0: torch.Tensor,
                        iters: int, lower: torch.Tensor | None = None, upper: torch.Tensor | None = None,
                        linear: torch.Tensor | None = None) -> torch.Tensor:
    """Projected, damped Gauss-Newton on ``|r(x)|² + linear · x`` (a pure function).

    Args:
        residual: ``x (N,) → (r (M,), J (M, N))``, the residuals and their Jacobian.
        x0: ``(N,)`` start (its dtype is the solver's; float64 recommended).
        iters: outer iterations (each raises the damping up to 6 times until the cost drops).
        lower, upper: ``(N,)`` box bounds, steps are projected onto them (None = unbounded).
        linear: ``(N,)`` weights of a linear cost term (an L1 norm on non-negative
            variables), or None.

    Returns:
        ``(N,)`` the solution (a new tensor).
    """
    lin = torch.zeros_like(x0) if linear is None else linear.to(x0)

    def project(v: torch.Tensor) -> torch.Tensor:
        if lower is not None:
            v = torch.maximum(v, lower.to(v))
        if upper is not None:
            v = torch.minimum(v, upper.to(v))
        return v

    x = project(x0.detach().clone())
    r, jac = residual(x)
    cost, damping = float(r @ r + lin @ x), 1e-3
    lo = None if lower is None else lower.to(x)
    hi = None if upper is None else upper.to(x)
    for _ in range(iters):
        jtj, grad = jac.T @ jac, jac.T @ r + 0.5 * lin
        # Projected Newton: variables held at a bound by their gradient stay out of the step
        # (else projecting the full step back onto the box wastes most iterations).
        free = torch.ones_like(x, dtype=torch.bool)
        if lo is not None:
            free &= ~((x <= lo + 1e-12) & (grad > 0))
        if hi is not None:
            free &= ~((x >= hi - 1e-12) & (grad < 0))
        jtj_f, grad_f = jtj[free][:, free], grad[free]
        diag = torch.diagonal(jtj_f).clamp_min(1e-9)
        for _ in range(6):  # raise the damping until the step lowers the cost
            step = torch.zeros_like(x)
            step[free] = torch.linalg.solve(jtj_f + damping * torch.diag(diag), -grad_f)
            x_new = project(x + step)
            r_new, jac_new = residual(x_new)
            cost_new = float(r_new @ r_new + lin @ x_new)
            if cost_new < cost:
                x, r, jac, cost, damping = x_new, r_new, jac_new, cost_new, max(damping / 3.0, 1e-7)
                break
            damping *= 4.0
        else:
            break
    return x


def landmark_residuals(rows: LandmarkRows, camera: PerspectiveCamera, p: dict[str, torch.Tensor],
                       target: torch.Tensor, scale: torch.Tensor, oval: torch.Tensor | None = None,
                       normals: torch.Tensor | None = None, keys: tuple[str, ...] = ()
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled landmark residuals and (analytically) their Jacobian w.r.t. ``keys``.

    Residuals are ``scale_i · (p_i − q_i)``, 2 per point, except the ``oval`` points, which
    give one: the component along their outline ``normals``. The shape is linear in the
    identity and expression coefficients, so their Jacobian columns are the projection's
    derivative times the posed basis rows; the pose's come from the rotation's derivative.

    Args:
        rows: the landmark rows (float64 for the solver).
        camera: the crop camera.
        p: ``id, exp, angles, trans`` each ``(1, n)``.
        target: ``(P, 2)`` pixels.
        scale: ``(P,)`` per-point factor (``sqrt(weight) / iod``).
        oval: ``(O,)`` indices of outline points, or None.
        normals: ``(O, 2)`` unit outline normals.
        keys: coefficient groups to differentiate by (column order); empty = no Jacobian.

    Returns:
        ``r (M,)`` and ``J (M, Σ n_key)`` (None when ``keys`` is empty).
    """
    rot = euler_to_rotation(p["angles"])[0]
    x = rows.mean + torch.einsum("k,kvc->vc", p["id"][0], rows.id) + torch.einsum("k,kvc->vc", p["exp"][0], rows.exp)
    y = x @ rot.T + p["trans"][0]
    d = (camera.project(y) - target) * scale[:, None]  # (P, 2)
    keep = torch.ones(len(target), dtype=torch.bool, device=target.device)
    if oval is not None:
        keep[oval] = False

    def rows_of(a: torch.Tensor) -> torch.Tensor:  # (P, 2, ...) → residual rows (M, ...)
        parts = [a[keep].reshape(-1, *a.shape[2:])]
        if oval is not None:
            parts.append(torch.einsum("oc,oc...->o...", normals, a[oval]))
        return torch.cat(parts)

    r = rows_of(d)
    if not keys:
        return r, None
    z = camera.distance - y[:, 2]
    f = camera.focal
    zero = torch.zeros_like(z)
    j_y = torch.stack([torch.stack([f / z, zero, f * y[:, 0] / z ** 2], -1),
                       torch.stack([zero, -f / z, -f * y[:, 1] / z ** 2], -1)], 1) * scale[:, None, None]  # (P, 2, 3)
    cols = []
    for k in keys:
        if k in ("id", "exp"):
            basis = rows.id if k == "id" else rows.exp
            posed = (basis.reshape(-1, 3) @ rot.T).reshape(basis.shape)  # (K, P, 3)
            cols.append(torch.einsum("pij,kpj->pik", j_y, posed))
        elif k == "trans":
            cols.append(j_y)
        elif k == "angles":
            cols.append(torch.einsum("pij,mjl,pl->pim", j_y, _rotation_derivative(p["angles"][0]), x))
        else:
            raise ValueError(f"unknown coefficient group {k!r}")
    return r, rows_of(torch.cat(cols, dim=-1))


def _rotation_derivative(angles: torch.Tensor) -> torch.Tensor:
    """``(3, 3, 3)``: ∂R/∂(pitch, yaw, roll) of :func:`~msma_engine.geometry.euler_to_rotation` at ``(3,)`` angles."""
    x, y, z = angles.unbind()
    o, n = torch.ones_like(x), torch.zeros_like(x)
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    m = lambda *v: torch.stack(v).view(3, 3)  # noqa: E731
    rx, ry, rz = m(o, n, n, n, cx, -sx, n, sx, cx), m(cy, n, sy, n, o, n, -sy, n, cy), m(cz, -sz, n, sz, cz, n, n, n, o)
    dx = m(n, n, n, n, -sx, -cx, n, cx, -sx)
    dy = m(-sy, n, cy, n, n, n, -cy, n, -sy)
    dz = m(-sz, -cz, n, cz, -sz, n, n, n, n)
    return torch.stack([rz @ ry @ dx, rz @ dy @ rx, dz @ ry @ rx])


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

    Immutable after construction and safe to share between threads (see module doc);
    the model is not modified.

    Args:
        model: the face model (its camera defines the crop).
        config: schedule and weights, or a quality name (``"fast"``, ``"default"``).
        ctx: render context (pure PyTorch by default).
        identity_loss: optional ``(rendered (1,3,S,S), image (1,3,S,S), mask) -> ()`` loss,
            e.g. a face-recognition embedding distance; added in the photometric stage with
            weight ``identity_weight``.
        identity_weight: its weight (the paper's perceptual weight is 0.2).
        prior: expression prior; None = :meth:`ExpressionPrior.for_model` with ``config.prior``.
    """

    def __init__(self, model: FaceModel, config: FitConfig | Quality = "default", ctx: RenderContext | None = None,
                 identity_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 identity_weight: float = 0.2, prior: ExpressionPrior | None = None) -> None:
        if isinstance(config, str):
            if config not in QUALITY_PRESETS:
                raise ValueError(f"fit quality must be one of {sorted(QUALITY_PRESETS)}, got {config!r}")
            config = QUALITY_PRESETS[config]
        self.model = model
        self.config = config
        self.ctx = ctx or RenderContext("torch")
        self.identity_loss = identity_loss
        self.identity_weight = identity_weight
        self.prior = prior or ExpressionPrior.for_model(model, config.prior)
        dev = model.mean_shape.device
        rows68 = LandmarkRows.of_vertices(model, model.landmark_indices)
        self._rows68 = {torch.float32: rows68, torch.float64: rows68.to(torch.float64)}
        w68 = torch.ones(68, dtype=torch.float64, device=dev)
        w68[60:68] = config.inner_mouth_weight
        self._w68 = w68
        self._rows_dense: dict[torch.dtype, LandmarkRows] | None = None
        if model.dense_landmark_vertices is not None:
            rows = LandmarkRows.of_surface(model, model.dense_landmark_vertices, model.dense_landmark_weights)
            self._rows_dense = {torch.float32: rows, torch.float64: rows.to(torch.float64)}
        self._w_dense = torch.as_tensor(point_weights(config.regions), device=dev)
        self._alb_mean, self._alb_basis = self._vertex_albedo_space()

    @property
    def has_dense(self) -> bool:
        """Whether the model carries the dense correspondence."""
        return self._rows_dense is not None

    def _vertex_albedo_space(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(V, 3)`` and basis ``(K, V, 3)`` of the vertex albedo before clamping (linear in γ,
        unlike :meth:`FaceModel.albedo`, which clamps; the colour stages need the linear form)."""
        m = self.model
        with torch.no_grad():
            if m.albedo_space == "vertex":
                return m.albedo_mean, m.albedo_basis
            mean = m.vertex_albedo(m.albedo_mean[None])[0]
            basis = m.vertex_albedo(m.albedo_basis) if m.layout.n_tex else m.albedo_basis.new_zeros(0, m.n_vertices, 3)
            return mean, basis

    # --- pieces --------------------------------------------------------------------------
    def render(self, coeffs: torch.Tensor, size: int, with_normals: bool = False) -> FitRender:
        """Render ``coeffs`` at ``size``² on the crop (:func:`render_coeffs`)."""
        return render_coeffs(self.model, self.ctx, coeffs, size, with_normals)

    def dense_points(self, coeffs: torch.Tensor) -> torch.Tensor:
        """``(B, 478, 2)`` projected dense points of ``coeffs`` ``(B, C)`` (crop pixels).

        Raises:
            ShapeError: the model has no dense correspondence.
        """
        if self._rows_dense is None:
            raise ShapeError(f"face model {self.model.name!r} has no dense landmark correspondence")
        c = self.model.layout.split(coeffs)
        return self._rows_dense[coeffs.dtype].project(self.model.camera, c.id, c.exp, c.angles, c.trans)

    def _photo_error(self, coeffs: torch.Tensor, image: torch.Tensor, valid: torch.Tensor, size: int) -> float:
        with torch.no_grad():
            r = self.render(coeffs, size)
            return float(photometric_loss(r.image, image, r.skin * valid))

    def _landmark_setup(self, target: FitTarget, lm_t: torch.Tensor):
        """Rows, targets ``(P, 2)``, per-point weights ``(P,)``, oval rows/normals and the prior."""
        use_dense = self.config.dense and target.dense is not None and self._rows_dense is not None
        if not use_dense:
            return self._rows68, lm_t[0].double(), self._w68, None, None, self.prior
        dense = target.dense[0].to(self._w_dense.device).double()
        w = self._w_dense.clone()
        if target.dense_mask is not None:
            w = w * target.dense_mask.to(w.device).double()
        oval = torch.as_tensor(OVAL, device=w.device)
        normals = torch.as_tensor(contour_normals(dense.cpu().numpy()), device=w.device, dtype=torch.float64)
        prior = self.prior
        if prior.arkit:
            prior = prior.pinned(eye_look_from_iris(dense.cpu().numpy()))
        return self._rows_dense, dense, w, oval, normals, prior

    # --- the fit -----------------------------------------------------------------------------
    def fit(self, target: FitTarget, init: torch.Tensor | None = None, rigid_init: bool = True) -> FitOutput:
        """Fit the model to ``target``.

        Args:
            target: crop image, detected landmarks (68 and optionally dense) and valid-pixel mask.
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
        clock = Stopwatch()

        if rigid_init:
            angles, trans = rigid_pose_from_landmarks(m, lm_t[0].cpu().numpy(), init)
            s = layout.slices()
            init[0, s["angles"]] = torch.as_tensor(angles, dtype=torch.float32)
            init[0, s["trans"]] = torch.as_tensor(trans, dtype=torch.float32)
        with torch.no_grad():
            start_nme = float(landmark_nme(m(init).landmarks_2d, lm_t)[0])
        rows, pts_t, w, oval, normals, prior = self._landmark_setup(target, lm_t)
        sqrt_w = (cfg.w_landmark * w / w.sum()).sqrt()
        is_oval = torch.zeros(len(w), dtype=torch.bool, device=w.device)
        if oval is not None:
            is_oval[oval] = True
        iod64 = iod.double()

        scale = sqrt_w / iod64[0]

        def lm_residual(p: dict[str, torch.Tensor], keys: tuple[str, ...] = ()):
            """Landmark residuals (and Jacobian w.r.t. ``keys``) in ``p``'s dtype."""
            dt = p["id"].dtype
            return landmark_residuals(rows[dt], m.camera, p, pts_t.to(dt), scale.to(dt), oval,
                                      None if normals is None else normals.to(dt), keys)

        reg = cfg.reg_scale * cfg.w_reg
        id_w = (reg * cfg.w_id) ** 0.5

        def prior_of(pr: ExpressionPrior, strength: float = 1.0
                     ) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
            def exp_prior(exp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                """Expression prior residuals of ``(K,)`` weights and their Jacobian."""
                if pr.arkit:
                    return pr.residuals_and_jacobian(exp, cfg.prior_scale * strength)
                c = (strength * reg * cfg.w_exp) ** 0.5
                return c * exp, c * torch.eye(len(exp), dtype=exp.dtype, device=exp.device)
            return exp_prior

        exp_prior = prior_of(prior)

        def prior_residual(p: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.cat([id_w * p["id"][0], exp_prior(p["exp"][0])[0]])

        state = {k: v.double() for k, v in vars(layout.split(init)).items()}
        all_units = torch.ones(layout.n_exp, dtype=torch.bool)
        state["exp"] = torch.maximum(torch.minimum(state["exp"], prior.upper.to(dev)[None]), prior.lower.to(dev)[None])
        self._solve_landmarks(state, ("angles", "trans"), lm_residual, None, prior, cfg.rigid_iters)
        timings["fit_rigid"] = clock.lap()
        keys = ("id", "exp", "angles", "trans")
        self._solve_landmarks(state, keys, lm_residual, (id_w, exp_prior), prior, cfg.shape_iters)
        strength = 1.0
        if cfg.debias_iters and cfg.shape_iters and prior.arkit:  # a refit of the shape stage, if it ran
            for _ in range(cfg.noise_rounds if cfg.noise_ref > 0 else 0):
                # |r|² = w_landmark · σ² (see the module doc's landmark term)
                sigma2 = float((lm_residual(state)[0] ** 2).sum()) / cfg.w_landmark
                new = min(max(sigma2 / cfg.noise_ref ** 2, cfg.min_strength), 1.0)
                if new >= strength:
                    break
                strength = new  # points better than the prior assumed: choose the support again
                self._solve_landmarks(state, keys, lm_residual, (id_w * strength ** 0.5, prior_of(prior, strength)),
                                      prior.relaxed(all_units, strength), cfg.shape_iters)
            relaxed = prior.relaxed(state["exp"][0] > cfg.support_threshold, strength ** cfg.keep_power)
            self._solve_landmarks(state, keys, lm_residual, (id_w * strength ** 0.5, prior_of(relaxed, strength)),
                                  relaxed, cfg.debias_iters)
        timings["fit_shape"] = clock.lap()

        params = {k: nn.Parameter(v.float().clone()) for k, v in state.items()}

        def coeffs() -> torch.Tensor:
            return torch.cat([params[k] for k in layout.names], dim=1)

        photo_start = self._photo_error(init, image, valid, size)
        for _ in range(cfg.light_rounds):
            self._solve_colour(params, coeffs, image, valid, size)
        timings["fit_light"] = clock.lap()

        if cfg.photo_steps and cfg.photo_geometry:
            exp_lo, exp_hi = prior.lower.float().to(dev), prior.upper.float().to(dev)
            lin = prior.linear(cfg.prior_scale)

            def project_exp() -> None:
                with torch.no_grad():
                    params["exp"].copy_(torch.maximum(torch.minimum(params["exp"], exp_hi), exp_lo))

            def photo_loss() -> torch.Tensor:
                r = self.render(coeffs(), size)
                mask = r.skin * valid
                lm_r, pr_r = lm_residual(params)[0], prior_residual(params)
                loss = (cfg.w_photo * photometric_loss(r.image, image, mask) + (lm_r ** 2).sum() + (pr_r ** 2).sum()
                        + lin * params["exp"].sum() + cfg.w_gamma * cfg.w_reg * gamma_regularisation(params["gamma"]))
                if self.identity_loss is not None:
                    loss = loss + self.identity_weight * self.identity_loss(r.image, image, mask)
                return loss

            # Translation is in metres and small: a 10x smaller step keeps it in step with the angles.
            groups = [{"params": [params["angles"]], "lr": cfg.lr_pose},
                      {"params": [params["trans"]], "lr": cfg.lr_pose * 0.1},
                      {"params": [params["id"], params["exp"]], "lr": cfg.lr_shape},
                      {"params": [params["tex"], params["gamma"]], "lr": cfg.lr_colour}]
            _adam(groups, cfg.photo_steps, photo_loss, project_exp)
        elif cfg.photo_steps:
            self._fit_colour(params, coeffs, image, valid, size)
        timings["fit_photo"] = clock.lap()

        final = coeffs().detach()
        dense_nme = None
        with torch.no_grad():
            nme_fit = float(landmark_nme(m(final).landmarks_2d, lm_t)[0])
            if oval is not None:  # dense: the error on the points the fit used
                p64 = {k: v.double() for k, v in vars(layout.split(final)).items()}
                pred = rows[torch.float64].project(m.camera, p64["id"], p64["exp"], p64["angles"], p64["trans"])[0]
                dense_nme = float((pred - pts_t).norm(dim=-1)[w > 0].mean() / iod64[0])
        scores = FitScores(landmark_nme_start=start_nme, landmark_nme_fit=nme_fit, photometric_start=photo_start,
                           photometric_fit=self._photo_error(final, image, valid, size), dense_nme_fit=dense_nme,
                           prior_strength=strength)
        timings["fit"] = clock.elapsed
        logger.info("fit: landmark NME %.4f -> %.4f, photometric %.4f -> %.4f in %.2fs",
                    start_nme, nme_fit, photo_start, scores.photometric_fit, timings["fit"])
        return FitOutput(coeffs=final, scores=scores, timings=timings)

    def _solve_landmarks(self, state: dict[str, torch.Tensor], keys: tuple[str, ...], lm_residual: Callable,
                         prior: tuple[float, Callable[[torch.Tensor], torch.Tensor]] | None,
                         exp_prior: ExpressionPrior, iters: int) -> None:
        """Levenberg-Marquardt on ``keys`` of ``state`` (float64 ``(1, n)`` tensors, replaced in place).

        Args:
            lm_residual: ``(p, keys) → (r, J)`` landmark residuals (:func:`landmark_residuals`).
            prior: ``(identity weight, expression residual function)``, or None for no prior.
            exp_prior: the bounds and sparsity weight of the expressions.
        """
        if iters <= 0:
            return
        sizes = [state[k].shape[1] for k in keys]
        offsets = dict(zip(keys, np.cumsum([0] + sizes[:-1]).tolist()))
        dev = state["id"].device
        n = sum(sizes)
        inf = torch.full((n,), float("inf"), dtype=torch.float64, device=dev)
        lower, upper, linear = -inf, inf.clone(), torch.zeros_like(inf)
        if "exp" in keys:
            sl = slice(offsets["exp"], offsets["exp"] + sizes[keys.index("exp")])
            lower, upper = lower.clone(), upper
            lower[sl], upper[sl] = exp_prior.lower.to(dev), exp_prior.upper.to(dev)
            linear[sl] = exp_prior.linear(self.config.prior_scale)

        def residual(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            parts = dict(zip(keys, torch.split(x, sizes)))
            p = {k: parts[k][None] if k in parts else state[k] for k in ("id", "exp", "angles", "trans")}
            r, jac = lm_residual(p, keys)
            if prior is None:
                return r, jac
            id_w, exp_fn = prior
            r_id = id_w * p["id"][0]
            j_id = x.new_zeros(len(r_id), n)
            if "id" in parts:
                sl_id = slice(offsets["id"], offsets["id"] + len(r_id))
                j_id[:, sl_id] = id_w * torch.eye(len(r_id), dtype=x.dtype, device=dev)
            r_exp, j_e = exp_fn(p["exp"][0])
            j_exp = x.new_zeros(len(r_exp), n)
            if "exp" in parts:
                j_exp[:, offsets["exp"]:offsets["exp"] + j_e.shape[1]] = j_e
            return torch.cat([r, r_id, r_exp]), torch.cat([jac, j_id, j_exp])

        x = levenberg_marquardt(residual, torch.cat([state[k][0] for k in keys]), iters, lower, upper, linear)
        for k, v in zip(keys, torch.split(x, sizes)):
            state[k] = v[None]

    def _fit_colour(self, params: dict[str, nn.Parameter], coeffs: Callable[[], torch.Tensor],
                    image: torch.Tensor, valid: torch.Tensor, size: int) -> None:
        """Adam on albedo and light only, on a fixed rasterization of the current geometry."""
        cfg, m = self.config, self.model
        with torch.no_grad():
            r = self.render(coeffs(), size)
            out, skin, frags = r.output, r.skin, r.fragments
            basis = sh_basis(out.normals)  # (1, V, 9): fixed, the geometry does not move
            mask = skin * valid
        dc = torch.zeros(1, 3, 9, device=basis.device)
        dc[:, :, 0] = SH_INIT_DC

        def loss() -> torch.Tensor:
            alb = (self._alb_mean + torch.einsum("bk,kvc->bvc", params["tex"], self._alb_basis)).clamp(0.0, 1.0)
            irr = torch.einsum("bvk,bck->bvc", basis, params["gamma"].view(1, 3, 9) + dc)
            rendered = channels_first(interpolate(alb * irr, frags, m.triangles))
            return (cfg.w_photo * photometric_loss(rendered, image, mask)
                    + cfg.reg_scale * cfg.w_reg * cfg.w_tex * (params["tex"] ** 2).sum()
                    + cfg.w_gamma * cfg.w_reg * gamma_regularisation(params["gamma"]))

        _adam([{"params": [params["tex"], params["gamma"]], "lr": cfg.lr_colour}], cfg.photo_steps, loss)

    def _solve_colour(self, params: dict[str, nn.Parameter], coeffs: Callable[[], torch.Tensor],
                      image: torch.Tensor, valid: torch.Tensor, size: int) -> None:
        """One round of closed-form light then albedo on the current geometry."""
        cfg, m = self.config, self.model
        with torch.no_grad():
            r = self.render(coeffs(), size, with_normals=True)
            out, skin, frags, pix_n = r.output, r.skin, r.fragments, r.normals
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


def _adam(groups: list[dict], steps: int, closure: Callable[[], torch.Tensor],
          after_step: Callable[[], None] | None = None) -> None:
    """``steps`` Adam steps on ``closure`` (optionally projecting after each)."""
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
