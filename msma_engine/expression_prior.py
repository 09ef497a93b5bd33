"""Priors on expression coefficients that match the basis: ARKit blendshapes or a PCA basis.

A 52-unit ARKit basis (the default head's) is not a Gaussian space: units are activations
in [0, 1], most are zero on any one face, some pairs cannot both be on (``jawLeft`` and
``jawRight``), and left/right halves usually move together. A 2D landmark fit with only an
isotropic Gaussian prior explains a smile by an implausible mix (a pout plus dimples plus
both jaw sides). :class:`ExpressionPrior` states the structure as least-squares residuals
(so the Levenberg-Marquardt fit stays one solver) plus a linear sparsity term:

- **range**: box bounds from ``model.expression_range`` (the solver projects onto them);
  units with no displacement (``tongueOut`` on a mesh without a tongue) are pinned to 0;
- **sparsity**: ``w_sparse · Σ β`` (an L1 norm, as all weights are ≥ 0);
- **antagonists**: ``w_antagonist · min(β_a, β_b)²`` for each exclusive pair (:data:`ANTAGONISTS`);
- **left/right coupling**: ``w_symmetry · (β_L − β_R)²`` for each ``…Left``/``…Right`` pair;
- **jaw/lip**: ARKit's ``mouthClose`` only acts with ``jawOpen``: ``w_antagonist · relu(β_close − β_jaw)²``;
- **small Gaussian** ``w_gauss · |β|²`` for conditioning.

Eye-look units barely move the mesh (1-4 mm of eyelid) and cannot be told apart by
landmarks; :func:`eye_look_from_iris` sets them from the iris points, and the fit pins them.

A PCA basis (BFM09's 64 components) gets the Gaussian prior of Deep3DFaceRecon only
(:meth:`ExpressionPrior.gaussian`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from msma_engine.dense_landmarks import EYE_CORNERS, IRIS_LEFT, IRIS_RIGHT
from msma_engine.errors import ShapeError

__all__ = ["ANTAGONISTS", "REQUIRES", "ExpressionPrior", "PriorWeights", "is_arkit", "eye_look_from_iris", "EYE_LOOK",
           "exclusive_pairs"]

ANTAGONISTS: tuple[tuple[str, str], ...] = (
    ("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"),
    ("mouthSmileLeft", "mouthFrownLeft"), ("mouthSmileRight", "mouthFrownRight"),
    ("mouthSmileLeft", "mouthPucker"), ("mouthSmileRight", "mouthPucker"),
    ("mouthSmileLeft", "mouthFunnel"), ("mouthSmileRight", "mouthFunnel"),
    ("mouthStretchLeft", "mouthPucker"), ("mouthStretchRight", "mouthPucker"),
    ("mouthRollUpper", "mouthShrugUpper"), ("mouthRollLower", "mouthShrugLower"),
    ("mouthPucker", "mouthFunnel"),
    ("eyeLookInLeft", "eyeLookOutLeft"), ("eyeLookInRight", "eyeLookOutRight"),
    ("eyeLookUpLeft", "eyeLookDownLeft"), ("eyeLookUpRight", "eyeLookDownRight"),
    ("eyeBlinkLeft", "eyeWideLeft"), ("eyeBlinkRight", "eyeWideRight"),
    ("browDownLeft", "browOuterUpLeft"), ("browDownRight", "browOuterUpRight"),
    ("browDownLeft", "browInnerUp"), ("browDownRight", "browInnerUp"),
    ("cheekPuff", "mouthPucker"),
)
"""Pairs of ARKit units that move the same features in opposite directions."""

REQUIRES: tuple[tuple[str, str], ...] = (("mouthClose", "jawOpen"),)
"""``(a, b)``: unit ``a`` only acts together with ``b`` at least as strong (ARKit's
``mouthClose`` closes the lips of an open jaw)."""

EYE_LOOK = tuple(f"eyeLook{d}{s}" for d in ("Down", "In", "Out", "Up") for s in ("Left", "Right"))

_ARKIT_CORE = {"jawOpen", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight"}


def is_arkit(names: list[str]) -> bool:
    """Whether an expression basis is ARKit-style (named blendshapes in [0, 1])."""
    return _ARKIT_CORE.issubset(names)


def exclusive_pairs(names: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """Index pairs ``(a, b)`` of the :data:`ANTAGONISTS` present in ``names`` (empty for a PCA basis)."""
    index = {n: i for i, n in enumerate(names)}
    return [(index[a], index[b]) for a, b in ANTAGONISTS if a in index and b in index]


@dataclass(frozen=True)
class PriorWeights:
    """Weights of the ARKit prior terms, in the units of the landmark term (see module doc).

    Chosen on 12 LFW/UTKFace photos (not those of the held-out benchmark) and the test
    portraits: at half these weights the held-out dense error drops 3 % but pout units reach
    0.13 on the astronaut's smile; at twice, the error rises 3 % and Obama's smile drops to
    0.26-0.39 (0.46-0.50 here).

    Attributes:
        sparse: L1 weight per unit.
        antagonist: weight of ``min(β_a, β_b)²`` per exclusive pair.
        symmetry: weight of ``(β_L − β_R)²`` per left/right pair.
        gauss: Gaussian weight ``|β|²`` (conditioning).
    """

    sparse: float = 1.2e-4
    antagonist: float = 3e-3
    symmetry: float = 1.2e-4
    gauss: float = 6e-6


@dataclass(frozen=True)
class ExpressionPrior:
    """The expression prior of one basis, as explicit index tables (immutable, thread-safe).

    Attributes:
        arkit: True for an ARKit basis (structured prior), False for PCA (Gaussian only).
        lower, upper: ``(K,)`` bounds (pinned units have ``lower == upper == 0``).
        pairs: ``(P, 2)`` int64 antagonist pairs.
        sym: ``(S, 2)`` int64 left/right pairs.
        sym_scale: ``(S,)`` per-pair multipliers of the coupling weight, or None (all 1).
        close_jaw: ``(mouthClose, jawOpen)`` indices or None.
        weights: :class:`PriorWeights`.
        names: unit names.
    """

    arkit: bool
    lower: torch.Tensor
    upper: torch.Tensor
    pairs: torch.Tensor
    sym: torch.Tensor
    close_jaw: tuple[int, int] | None
    weights: PriorWeights
    names: tuple[str, ...]
    sym_scale: torch.Tensor | None = None

    @staticmethod
    def for_model(model, weights: PriorWeights = PriorWeights()) -> "ExpressionPrior":
        """The prior matching ``model``'s expression basis (ARKit structure or Gaussian)."""
        names = list(model.expression_names)
        rng = model.expression_range.detach().cpu().double()
        lo = torch.minimum(rng[:, 0], torch.zeros_like(rng[:, 0]))
        hi = torch.maximum(rng[:, 1], torch.zeros_like(rng[:, 1]))
        dead = model.exp_basis.detach().abs().amax(dim=(1, 2)).cpu() < 1e-7
        lo, hi = lo.masked_fill(dead, 0.0), hi.masked_fill(dead, 0.0)
        if not is_arkit(names):
            empty = torch.zeros(0, 2, dtype=torch.int64)
            return ExpressionPrior(False, lo, hi, empty, empty, None, weights, tuple(names))
        index = {n: i for i, n in enumerate(names)}
        pairs = exclusive_pairs(names)
        sym = [(i, index[n[:-4] + "Right"]) for i, n in enumerate(names)
               if n.endswith("Left") and n[:-4] + "Right" in index and n not in EYE_LOOK]
        close, jaw = REQUIRES[0]  # the prior has one such term
        cj = (index[close], index[jaw]) if {close, jaw} <= index.keys() else None
        as_t = lambda p: torch.as_tensor(p, dtype=torch.int64).reshape(-1, 2)  # noqa: E731
        return ExpressionPrior(True, lo, hi, as_t(pairs), as_t(sym), cj, weights, tuple(names))

    @staticmethod
    def gaussian_only(model) -> "ExpressionPrior":
        """The Gaussian prior alone (the pre-ARKit behaviour; for comparisons)."""
        p = ExpressionPrior.for_model(model)
        empty = torch.zeros(0, 2, dtype=torch.int64)
        return ExpressionPrior(False, p.lower, p.upper, empty, empty, None, p.weights, p.names)

    def residuals(self, exp: torch.Tensor, scale: float) -> torch.Tensor:
        """Least-squares residuals of the structured terms (no sparsity: see :meth:`linear`).

        Args:
            exp: ``(K,)`` expression weights.
            scale: overall prior multiplier (the fit's ``reg_scale``).

        Returns:
            ``(M,)`` residuals whose squares sum to the prior's quadratic part.
        """
        w = self.weights
        if not self.arkit:
            return exp.new_zeros(0)
        r = [(scale * w.gauss) ** 0.5 * exp]
        if len(self.pairs):
            r.append((scale * w.antagonist) ** 0.5 * torch.minimum(exp[self.pairs[:, 0]], exp[self.pairs[:, 1]]))
        if len(self.sym):
            r.append(self._sym_factor(scale, exp) * (exp[self.sym[:, 0]] - exp[self.sym[:, 1]]))
        if self.close_jaw is not None:
            c, j = self.close_jaw
            r.append((scale * w.antagonist) ** 0.5 * torch.relu(exp[c] - exp[j])[None])
        return torch.cat(r)

    def residuals_and_jacobian(self, exp: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`residuals` and their Jacobian ``(M, K)`` (written out: the solver calls it often)."""
        r = self.residuals(exp, scale)
        k = exp.shape[0]
        if not self.arkit:
            return r, exp.new_zeros(0, k)
        w = self.weights
        blocks = [(scale * w.gauss) ** 0.5 * torch.eye(k, dtype=exp.dtype, device=exp.device)]
        if len(self.pairs):
            a, b = self.pairs[:, 0], self.pairs[:, 1]
            j = exp.new_zeros(len(a), k)
            rows = torch.arange(len(a))
            first = exp[a] <= exp[b]
            j[rows, torch.where(first, a, b)] = (scale * w.antagonist) ** 0.5
            blocks.append(j)
        if len(self.sym):
            j = exp.new_zeros(len(self.sym), k)
            rows = torch.arange(len(self.sym))
            f = self._sym_factor(scale, exp)
            j[rows, self.sym[:, 0]] = f
            j[rows, self.sym[:, 1]] = -f
            blocks.append(j)
        if self.close_jaw is not None:
            c, jw = self.close_jaw
            j = exp.new_zeros(1, k)
            if exp[c] > exp[jw]:
                j[0, c], j[0, jw] = (scale * w.antagonist) ** 0.5, -(scale * w.antagonist) ** 0.5
            blocks.append(j)
        return r, torch.cat(blocks)

    def _sym_factor(self, scale: float, like: torch.Tensor) -> torch.Tensor:
        """``(S,)`` square roots of the coupling weights."""
        f = torch.full((len(self.sym),), (scale * self.weights.symmetry) ** 0.5, dtype=like.dtype, device=like.device)
        return f if self.sym_scale is None else f * self.sym_scale.to(f).sqrt()

    def linear(self, scale: float) -> float:
        """Weight of the L1 sparsity term ``Σ β`` (0 for PCA bases)."""
        return scale * self.weights.sparse if self.arkit else 0.0

    def pinned(self, values: dict[str, float]) -> "ExpressionPrior":
        """A copy with the named units fixed to ``values`` (e.g. eye-look from the iris)."""
        lo, hi = self.lower.clone(), self.upper.clone()
        for name, v in values.items():
            if name in self.names:
                i = self.names.index(name)
                lo[i] = hi[i] = float(min(max(v, float(self.lower[i])), float(self.upper[i])))
        return ExpressionPrior(self.arkit, lo, hi, self.pairs, self.sym, self.close_jaw, self.weights, self.names,
                               self.sym_scale)

    def relaxed(self, support: torch.Tensor, keep: float = 0.0) -> "ExpressionPrior":
        """The prior of a debiasing refit on ``support`` ``(K,)`` bool (a relaxed lasso).

        Units outside the support are pinned to 0 (units already pinned by :meth:`pinned`
        keep their value). The terms that shrink the kept units towards 0 are scaled by
        ``keep`` in [0, 1]: the L1 term, and the left/right coupling of a unit whose partner
        is outside the support (it would pull a one-sided unit down to its pinned partner).
        ``keep = 0`` is the plain relaxed lasso, ``keep = 1`` the full prior on the support.
        """
        free = support.to(self.lower.device) | (self.lower == self.upper)
        lo, hi = self.lower.masked_fill(~free, 0.0), self.upper.masked_fill(~free, 0.0)
        sym_scale = None
        if len(self.sym):
            inside = support[self.sym[:, 0]] & support[self.sym[:, 1]]
            sym_scale = torch.where(inside, 1.0, keep).double()
            if self.sym_scale is not None:
                sym_scale = sym_scale * self.sym_scale
        return ExpressionPrior(self.arkit, lo, hi, self.pairs, self.sym, self.close_jaw,
                               replace(self.weights, sparse=self.weights.sparse * keep), self.names, sym_scale)

    def violations(self, exp: np.ndarray, threshold: float = 0.2) -> list[tuple[str, str]]:
        """Antagonist pairs both above ``threshold`` in ``exp`` ``(K,)`` (for checks and logs)."""
        exp = np.asarray(exp)
        return [(self.names[a], self.names[b]) for a, b in self.pairs.tolist()
                if exp[a] > threshold and exp[b] > threshold]


def eye_look_from_iris(points: np.ndarray, dead_zone: float = 0.12, at_one_h: float = 0.5,
                       at_one_v: float = 0.35) -> dict[str, float]:
    """ARKit eye-look weights from the Face Mesh iris centres and eye corners.

    Per eye, the iris centre is expressed in the eye's frame: ``h`` along the corner axis
    (positive towards the outer corner) and ``v`` across it (positive up in the image),
    both in units of half the corner-to-corner width; the two eyes are averaged into one
    gaze (eyes turn together; vergence is ignored). A weight is ``(|h| − dead_zone) /
    (at_one_h − dead_zone)`` clipped to [0, 1] (``v`` alike), so a centred iris gives all
    zeros and no antagonist pair can be on together. The dead zone absorbs the detector's
    jitter and the iris' natural offset from the corner line; the scale (0.5 half-widths
    for a full ARKit look) is a geometric assumption: a 24 mm eyeball turning ~35° moves
    the iris about half of the 15 mm half-width of the eye opening.

    Args:
        points: ``(478, 2+)`` Face Mesh points (pixels).

    Returns:
        ``{"eyeLookOutLeft": …, …}`` — all eight units.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[0] != 478:
        raise ShapeError(f"eye look needs the 478 Face Mesh points with iris, got {p.shape}")
    hv = {}
    for side, iris in (("Right", IRIS_RIGHT), ("Left", IRIS_LEFT)):
        outer, inner = p[EYE_CORNERS[side[0]][0], :2], p[EYE_CORNERS[side[0]][1], :2]
        half = 0.5 * np.linalg.norm(outer - inner)
        u = (outer - inner) / max(2 * half, 1e-9)
        n = np.array([u[1], -u[0]])
        if n[1] > 0:  # image y grows downwards: make n point up
            n = -n
        d = p[iris[0], :2] - 0.5 * (outer + inner)
        hv[side] = (float(d @ u) / max(half, 1e-9), float(d @ n) / max(half, 1e-9))
    # The eyes turn together: one gaze (towards the subject's right = right eye out, left eye in).
    h_right = 0.5 * (hv["Right"][0] - hv["Left"][0])
    v = 0.5 * (hv["Right"][1] + hv["Left"][1])
    ramp = lambda x, one: float(np.clip((abs(x) - dead_zone) / (one - dead_zone), 0.0, 1.0))  # noqa: E731
    out = {}
    for side, h in (("Right", h_right), ("Left", -h_right)):
        out[f"eyeLookOut{side}"] = ramp(h, at_one_h) if h > 0 else 0.0
        out[f"eyeLookIn{side}"] = ramp(h, at_one_h) if h < 0 else 0.0
        out[f"eyeLookUp{side}"] = ramp(v, at_one_v) if v > 0 else 0.0
        out[f"eyeLookDown{side}"] = ramp(v, at_one_v) if v < 0 else 0.0
    return out
